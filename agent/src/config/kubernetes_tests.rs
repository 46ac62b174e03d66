use std::path::{Path, PathBuf};

use super::*;
use crate::config::selector::{check_field_selector, check_label_selector};
use crate::config::{Config, ConfigError, env, raw};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, "agent.yml")
}

/// Parses with `${VAR}` looked up in `vars` instead of the process environment.
fn parse_with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let expanded = env::expand(text, |name| {
        vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })
    .map_err(|e| ConfigError::Expand {
        origin: "agent.yml".into(),
        line: e.line,
        message: e.message,
    })?;
    raw::parse(&expanded, "agent.yml")?.validate("agent.yml", Path::new("/etc/trawl"))
}

/// The single kubernetes_sd entry of a one-job config whose entry is `entry` (YAML lines
/// indented under `kubernetes_sd_configs:`).
fn job(entry: &str) -> String {
    format!("scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n{entry}")
}

fn sd(entry: &str) -> KubernetesSdConfig {
    let config = parse(&job(entry)).unwrap_or_else(|e| panic!("{e}"));
    config.scrape_configs[0].kubernetes_sd_configs[0].clone()
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error for:\n{text}\ngot {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts the error of entry `entry` starts with `prefix` (file:line: key) and contains `part`.
fn assert_error(entry: &str, prefix: &str, part: &str) {
    let e = error(&job(entry));
    assert!(e.starts_with(prefix), "error {e:?} should start with {prefix:?}");
    assert!(e.contains(part), "error {e:?} should contain {part:?}");
}

const KEY: &str = "scrape_configs[0].kubernetes_sd_configs[0]";

#[test]
fn minimal_entry_takes_in_cluster_defaults() {
    let k = sd("      - role: pod\n");
    assert_eq!(
        k,
        KubernetesSdConfig {
            role: Role::Pod,
            api_server: None,
            kubeconfig_file: None,
            namespaces: NamespaceDiscovery::default(),
            selectors: vec![],
            attach_metadata: AttachMetadata { node: false },
            node_name: None,
            http: HttpClientConfig::default(),
        }
    );
    assert!(k.selector(Role::Pod).is_none());
}

#[test]
fn every_role_parses_and_prints_as_written() {
    for role in Role::ALL {
        let k = sd(&format!("      - role: {role}\n"));
        assert_eq!(k.role, role);
        assert_eq!(role.to_string(), role.as_str());
    }
    assert_eq!(sd("      - role: endpointslice\n").role, Role::EndpointSlice);
}

#[test]
fn full_entry_keeps_every_key() {
    let k = sd("      - role: endpoints
        api_server: https://10.0.0.1:6443
        bearer_token_file: token
        tls_config: {ca_file: ca.crt, insecure_skip_verify: false}
        namespaces:
          names: [default, monitoring, default]
        selectors:
          - role: endpoints
            label: 'app in (web, api),!legacy'
          - role: pod
            field: status.phase=Running
          - role: node
            label: kubernetes.io/os=linux
        attach_metadata: {node: true}
        node_name: worker-1.example
");
    assert_eq!(k.role, Role::Endpoints);
    assert_eq!(
        k.api_server.as_ref().map(url::Url::as_str),
        Some("https://10.0.0.1:6443/")
    );
    assert_eq!(k.namespaces.names, ["default", "monitoring"], "duplicates are dropped");
    assert!(!k.namespaces.own_namespace);
    assert_eq!(
        k.selector(Role::Endpoints).and_then(|s| s.label.as_deref()),
        Some("app in (web, api),!legacy")
    );
    assert_eq!(
        k.selector(Role::Pod).and_then(|s| s.field.as_deref()),
        Some("status.phase=Running")
    );
    assert_eq!(k.selector(Role::Pod).and_then(|s| s.label.as_deref()), None);
    assert!(k.selector(Role::Service).is_none());
    assert!(k.attach_metadata.node);
    assert_eq!(k.node_name.as_deref(), Some("worker-1.example"));
    let auth = k.http.authorization.as_ref().unwrap();
    assert_eq!(auth.r#type, "Bearer");
    assert_eq!(auth.credentials_file.as_deref(), Some(Path::new("token")));
    assert_eq!(k.http.tls_config.ca_file.as_deref(), Some(Path::new("ca.crt")));
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let text = job(
        "      - role: node\n        kubeconfig_file: kube/config\n      - role: pod\n        api_server: http://127.0.0.1:8080\n        authorization: {credentials_file: token}\n",
    );
    let config = parse_with_env(&text, &[]).unwrap();
    let sds = &config.scrape_configs[0].kubernetes_sd_configs;
    assert_eq!(sds[0].kubeconfig_file, Some(PathBuf::from("/etc/trawl/kube/config")));
    assert_eq!(
        sds[1].http.authorization.as_ref().unwrap().credentials_file,
        Some(PathBuf::from("/etc/trawl/token"))
    );
}

#[test]
fn node_name_comes_from_the_environment() {
    let text = job("      - role: pod\n        node_name: ${NODE_NAME}\n");
    let config = parse_with_env(&text, &[("NODE_NAME", "pi-3")]).unwrap();
    assert_eq!(
        config.scrape_configs[0].kubernetes_sd_configs[0].node_name.as_deref(),
        Some("pi-3")
    );

    // Set but empty: the config names the key and the likely cause.
    let e = parse_with_env(&text, &[("NODE_NAME", "")]).unwrap_err().to_string();
    assert!(e.starts_with(&format!("agent.yml:4: {KEY}.node_name: ")), "{e}");
    assert!(e.contains("node_name is empty") && e.contains("NODE_NAME"), "{e}");

    // Empty when quoted too.
    let quoted = job("      - role: pod\n        node_name: \"${NODE_NAME}\"\n");
    let e = parse_with_env(&quoted, &[("NODE_NAME", "")]).unwrap_err().to_string();
    assert!(e.contains("node_name is empty"), "{e}");

    // Unset: the expansion itself fails, naming the variable and line.
    let e = parse_with_env(&text, &[]).unwrap_err().to_string();
    assert!(e.starts_with("agent.yml:5: ") && e.contains("NODE_NAME"), "{e}");
}

#[test]
fn node_name_is_only_for_node_local_roles() {
    for role in ["node", "pod", "endpoints", "endpointslice"] {
        assert!(
            sd(&format!("      - role: {role}\n        node_name: n1\n"))
                .node_name
                .is_some()
        );
    }
    for role in ["service", "ingress"] {
        assert_error(
            &format!("      - role: {role}\n        node_name: n1\n"),
            &format!("agent.yml:4: {KEY}.node_name: "),
            &format!("not supported for role {role}"),
        );
    }
    for bad in ["'Upper'", "'a,b'", "'n1=x'", "'-lead'", "'a..b'", "' '"] {
        assert_error(
            &format!("      - role: pod\n        node_name: {bad}\n"),
            &format!("agent.yml:4: {KEY}.node_name: "),
            "is not a valid node name",
        );
    }
}

#[test]
fn role_is_required_and_must_be_known() {
    assert_error(
        "      - namespaces: {names: [a]}\n",
        &format!("agent.yml:4: {KEY}.role: "),
        "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)",
    );
    assert_error("      - role:\n", &format!("agent.yml:4: {KEY}.role: "), "role missing");
    for bad in ["pods", "Pod", "endpoint", "'1'"] {
        let e = error(&job(&format!("      - role: {bad}\n")));
        assert!(e.contains("unknown Kubernetes SD role"), "{e}");
        assert!(e.starts_with("agent.yml:4: "), "{e}");
        assert!(e.contains(&format!("{KEY}.role")), "{e}");
    }
    let e = error(&job("      - role: [pod]\n"));
    assert!(e.contains(&format!("{KEY}.role")), "{e}");
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected_with_their_path() {
    for (entry, key) in [
        ("      - role: pod\n        rol: pod\n", format!("{KEY}.rol")),
        (
            "      - role: pod\n        namespaces: {name: [a]}\n",
            format!("{KEY}.namespaces.name"),
        ),
        (
            "      - role: pod\n        attach_metadata: {nodes: true}\n",
            format!("{KEY}.attach_metadata.nodes"),
        ),
        (
            "      - role: pod\n        selectors: [{role: pod, labels: a}]\n",
            format!("{KEY}.selectors[0].labels"),
        ),
        (
            "      - role: pod\n        preferred_node_address_types: [InternalIP]\n",
            format!("{KEY}.preferred_node_address_types"),
        ),
        (
            "      - role: pod\n        namespaces: {names: a}\n",
            format!("{KEY}.namespaces.names"),
        ),
        (
            "      - role: pod\n        attach_metadata: {node: maybe}\n",
            format!("{KEY}.attach_metadata.node"),
        ),
        (
            "      - role: pod\n        namespaces: {own_namespace: [x]}\n",
            format!("{KEY}.namespaces.own_namespace"),
        ),
        (
            "      - role: pod\n        selectors: {role: pod}\n",
            format!("{KEY}.selectors"),
        ),
        (
            "      - role: pod\n        node_name: {a: b}\n",
            format!("{KEY}.node_name"),
        ),
        (
            "      - role: pod\n        tls_config: {ca: x}\n",
            format!("{KEY}.tls_config.ca"),
        ),
    ] {
        let e = error(&job(entry));
        assert!(e.starts_with("agent.yml:"), "{e}");
        assert!(e.contains(&format!(" {key}: ")), "error {e:?} should name {key}");
    }
    // The list itself must be a list; a duplicate key is an error.
    let e = error(&job("      role: pod\n"));
    assert!(e.contains("scrape_configs[0].kubernetes_sd_configs"), "{e}");
    let e = error(&job("      - role: pod\n        role: node\n"));
    assert!(e.contains("duplicate key") && e.contains(&format!("{KEY}.role")), "{e}");
}

#[test]
fn null_sections_are_defaults() {
    let k = sd("      - role: pod\n        namespaces:\n        selectors:\n        attach_metadata:\n");
    assert_eq!(k.namespaces, NamespaceDiscovery::default());
    assert!(k.selectors.is_empty());
    assert!(!k.attach_metadata.node);
    let config = parse("scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n").unwrap();
    assert!(config.scrape_configs[0].kubernetes_sd_configs.is_empty());
}

#[test]
fn api_server_must_be_an_http_url() {
    assert_eq!(
        sd("      - role: node\n        api_server: http://127.0.0.1:8001\n")
            .api_server
            .map(|u| u.to_string()),
        Some("http://127.0.0.1:8001/".into())
    );
    assert_eq!(sd("      - role: node\n        api_server: ''\n").api_server, None);
    for (bad, part) in [
        ("localhost:6443", "scheme must be 'http' or 'https'"),
        ("ftp://h/", "scheme must be 'http' or 'https'"),
        ("not a url", "invalid URL"),
        ("http://", "invalid URL"),
    ] {
        assert_error(
            &format!("      - role: node\n        api_server: '{bad}'\n"),
            &format!("agent.yml:4: {KEY}.api_server: "),
            part,
        );
    }
}

#[test]
fn client_sources_exclude_each_other_as_in_prometheus() {
    let cases = [
        (
            "api_server: https://k:6443\n        kubeconfig_file: /k\n",
            "kubeconfig_file",
            "cannot use 'kubeconfig_file' and 'api_server' simultaneously",
        ),
        (
            "kubeconfig_file: /k\n        bearer_token: t\n",
            "kubeconfig_file",
            "cannot use a custom HTTP client configuration together with 'kubeconfig_file'",
        ),
        (
            "tls_config: {insecure_skip_verify: true}\n",
            "api_server",
            "to use custom HTTP client configuration please provide the 'api_server' URL explicitly",
        ),
        (
            "follow_redirects: false\n",
            "api_server",
            "please provide the 'api_server' URL explicitly",
        ),
        (
            "api_server: https://k:6443\n        namespaces: {own_namespace: true}\n",
            "namespaces.own_namespace",
            "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously",
        ),
        (
            "kubeconfig_file: /k\n        namespaces: {own_namespace: true}\n",
            "namespaces.own_namespace",
            "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously",
        ),
    ];
    for (keys, field, part) in cases {
        assert_error(
            &format!("      - role: pod\n        {keys}"),
            &format!("agent.yml:4: {KEY}.{field}: "),
            part,
        );
    }
    // The HTTP client keys' own rules apply too.
    assert_error(
        "      - role: pod\n        api_server: https://k\n        bearer_token: a\n        bearer_token_file: b\n",
        &format!("agent.yml:4: {KEY}.bearer_token: "),
        "at most one of bearer_token & bearer_token_file",
    );
    // Allowed: own_namespace in cluster, names too.
    let k = sd("      - role: pod\n        namespaces: {own_namespace: true, names: [a]}\n");
    assert!(k.namespaces.own_namespace);
    assert_eq!(k.namespaces.names, ["a"]);
}

#[test]
fn empty_namespace_names_are_rejected() {
    assert_error(
        "      - role: pod\n        namespaces: {names: [a, '']}\n",
        &format!("agent.yml:4: {KEY}.namespaces.names: "),
        "namespace name is empty",
    );
}

#[test]
fn selectors_only_for_watched_roles() {
    let allowed: [(&str, &[&str]); 6] = [
        ("pod", &["pod"]),
        ("service", &["service"]),
        ("endpoints", &["pod", "service", "endpoints"]),
        ("endpointslice", &["pod", "service", "endpointslice"]),
        ("node", &["node"]),
        ("ingress", &["ingress"]),
    ];
    for (role, ok) in allowed {
        for sel in Role::ALL.map(Role::as_str) {
            let entry =
                format!("      - role: {role}\n        selectors:\n          - role: {sel}\n            label: a=b\n");
            if ok.contains(&sel) {
                let k = sd(&entry);
                assert_eq!(k.selectors[0].label.as_deref(), Some("a=b"));
            } else {
                assert_error(
                    &entry,
                    &format!("agent.yml:6: {KEY}.selectors[0].role: "),
                    &format!("{role} role supports only {} selectors", ok.join(", ")),
                );
            }
        }
    }
}

#[test]
fn node_selectors_need_attach_metadata() {
    let entry = "      - role: pod\n        selectors: [{role: node, label: zone=a}]\n";
    let e = error(&job(entry));
    assert!(
        e.contains("pod role supports only pod selectors") && e.contains("attach_metadata"),
        "{e}"
    );
    let k = sd(&format!("{entry}        attach_metadata: {{node: true}}\n"));
    assert_eq!(k.selector(Role::Node).and_then(|s| s.label.as_deref()), Some("zone=a"));
    let k = sd(
        "      - role: endpointslice\n        attach_metadata: {node: true}\n        selectors: [{role: node, field: metadata.name=n1}]\n",
    );
    assert_eq!(
        k.selector(Role::Node).and_then(|s| s.field.as_deref()),
        Some("metadata.name=n1")
    );
    // Other roles accept attach_metadata and ignore it, as Prometheus.
    assert!(
        sd("      - role: service\n        attach_metadata: {node: true}\n")
            .attach_metadata
            .node
    );
    let e = error(&job(
        "      - role: service\n        attach_metadata: {node: true}\n        selectors: [{role: node}]\n",
    ));
    assert!(e.contains("service role supports only service selectors"), "{e}");
}

#[test]
fn duplicate_selector_roles_are_rejected() {
    assert_error(
        "      - role: endpoints\n        selectors:\n          - {role: pod, label: a=b}\n          - {role: service}\n          - {role: pod, field: x=y}\n",
        &format!("agent.yml:8: {KEY}.selectors[2].role: "),
        "duplicated selector role: pod",
    );
}

#[test]
fn empty_selectors_are_none() {
    let k = sd("      - role: pod\n        selectors: [{role: pod, label: '', field: ' '}]\n");
    assert_eq!(
        k.selectors,
        vec![SelectorConfig {
            role: Role::Pod,
            label: None,
            field: None
        }]
    );
}

#[test]
fn label_selector_syntax_follows_kubernetes() {
    for ok in [
        "a",
        "!a",
        "a=b",
        "a==b",
        "a!=b",
        "a=",
        "a in (b, c)",
        "a notin (b)",
        "a in ()",
        "x>1",
        "x < 10",
        "app.kubernetes.io/name=web,tier!=db, !legacy",
        "example.com/a-b_c.d=V_1.2-x",
        "  a = b  ",
    ] {
        assert_eq!(check_label_selector(ok), Ok(()), "{ok}");
    }
    for bad in [
        ",",
        "a,",
        "=b",
        "a=b=c",
        "a b",
        "!",
        "!a=b",
        "a in b",
        "a in (b",
        "a in (b c)",
        "x>y",
        "a=(b)",
        "-a=b",
        "a=-b",
        "UPPER.COM/a=b",
        "a=b,,c",
        &format!("{}=b", "k".repeat(64)),
        &format!("a={}", "v".repeat(64)),
        "a/b/c=d",
        "a=b)",
    ] {
        assert!(check_label_selector(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn field_selector_syntax_follows_kubernetes() {
    for ok in [
        "spec.nodeName=n1",
        "metadata.name==a,status.phase!=Failed",
        "a=",
        "a=b\\,c",
        "a=b\\=c\\\\",
        "a=b,",
        ",a=b",
    ] {
        assert_eq!(check_field_selector(ok), Ok(()), "{ok}");
    }
    for bad in ["a", "a=b,c", "=b", "a=b\\x", "a\\=b", "!=x"] {
        assert!(check_field_selector(bad).is_err(), "{bad:?} should be rejected");
    }
    assert_error(
        "      - role: pod\n        selectors: [{role: pod, field: 'spec.nodeName'}]\n",
        &format!("agent.yml:5: {KEY}.selectors[0].field: "),
        "invalid field selector \"spec.nodeName\"",
    );
    assert_error(
        "      - role: pod\n        selectors: [{role: pod, label: 'a in b'}]\n",
        &format!("agent.yml:5: {KEY}.selectors[0].label: "),
        "invalid label selector \"a in b\"",
    );
}

#[test]
fn errors_point_at_the_entry_in_its_job() {
    let text = "scrape_configs:
  - job_name: a
    kubernetes_sd_configs:
      - role: pod
  - job_name: b
    kubernetes_sd_configs:
      - role: node
      - role: ingress
        node_name: n1
";
    let e = error(text);
    assert!(
        e.starts_with("agent.yml:8: scrape_configs[1].kubernetes_sd_configs[1].node_name: "),
        "{e}"
    );
}

#[test]
fn equal_entries_hash_equal_so_jobs_can_share_a_discoverer() {
    use std::collections::HashSet;
    let config = parse(
        "scrape_configs:
  - job_name: a
    kubernetes_sd_configs: [{role: pod, namespaces: {names: [x]}}]
  - job_name: b
    kubernetes_sd_configs: [{role: pod, namespaces: {names: [x]}}, {role: pod}]
",
    )
    .unwrap();
    let all: Vec<&KubernetesSdConfig> = config
        .scrape_configs
        .iter()
        .flat_map(|s| &s.kubernetes_sd_configs)
        .collect();
    assert_eq!(all[0], all[1]);
    assert_ne!(all[0], all[2]);
    assert_eq!(all.into_iter().collect::<HashSet<_>>().len(), 2);
}

#[test]
fn hostile_inputs_fail_cleanly() {
    // Deeply nested or huge values must give errors, not panics.
    let nested = format!(
        "      - role: pod\n        node_name: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(parse(&job(&nested)).is_err());
    let long = format!("      - role: pod\n        node_name: {}\n", "a".repeat(300));
    assert!(error(&job(&long)).contains("not a valid node name"));
    let selector = format!(
        "      - role: pod\n        selectors: [{{role: pod, label: '{}'}}]\n",
        "(".repeat(10_000)
    );
    assert!(error(&job(&selector)).contains("invalid label selector"));
    let unicode = "      - role: pod\n        selectors: [{role: pod, label: 'ä=ö', field: 'ä=\\\\ö'}]\n";
    assert!(error(&job(unicode)).contains("not a valid label key"));
}

#[test]
fn check_config_counts_entries_and_checks_their_files() {
    use crate::config::{Summary, check_config};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    let write = |entries: &str| {
        std::fs::write(
            &path,
            format!("scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n{entries}"),
        )
        .unwrap();
    };
    write("      - role: pod\n      - role: node\n        kubeconfig_file: kube.yml\n");
    let e = check_config(&path).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "{}: scrape_configs[0].kubernetes_sd_configs[1].kubeconfig_file: cannot read",
            path.display()
        )),
        "{e}"
    );
    std::fs::write(dir.path().join("kube.yml"), "apiVersion: v1\n").unwrap();
    let summary = check_config(&path).unwrap();
    assert_eq!(
        summary,
        Summary {
            scrape_configs: 1,
            remote_write: 0,
            file_sd_files: 0,
            kubernetes_sd_configs: 2,
        }
    );
    assert_eq!(
        summary.to_string(),
        "1 scrape configs, 0 remote_write, 2 kubernetes_sd configs"
    );

    write("      - role: pod\n        api_server: https://k:6443\n        tls_config: {ca_file: missing-ca.crt}\n");
    let e = check_config(&path).unwrap_err().to_string();
    assert!(
        e.contains("scrape_configs[0].kubernetes_sd_configs[0].tls_config.ca_file: cannot read"),
        "{e}"
    );
}
