//! The Kubernetes example, `examples/kubernetes/`, checked offline (no cluster can run here):
//!
//! ```text
//!  examples/kubernetes/*.yaml ──► kubernetes-validate -k 1.33.0 --strict   (PyPI, schemas bundled;
//!        │                         a WARN, i.e. a kind or apiVersion without schema, fails too)
//!        ├─ ConfigMap agent.yml ─► trawl-agent check-config                (NODE_NAME set)
//!        └─ what no schema sees ─► names of ConfigMaps, Secrets, keys, ServiceAccounts, PVCs,
//!                                  volumes, ports and `$(VAR)`s resolve; flags exist in the
//!                                  binaries; RBAC covers each discovery role; the bucket, MinIO
//!                                  and the hashring agree with the Services and the StatefulSet
//! ```
//! Each check is also run on a deliberately broken copy, which it must reject, so none can pass
//! vacuously. YAML is read with PyYAML (installed with kubernetes-validate), as YAML 1.1 like
//! kubectl.

mod checks;
mod manifests;

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use trawl_e2e::workspace_bin;

use checks::{
    SERVICE_ACCOUNT_DIR, check_agent_config, check_flags, check_hashring, check_objstore, check_references, help_flags,
};
use manifests::{
    Manifests, example_dir, file_name, flags, kubernetes_validate, list, manifest_files, parse_yaml, strings,
};

#[test]
fn every_manifest_is_valid_for_kubernetes_1_33() -> Result<()> {
    let dir = example_dir();
    let files = manifest_files(&dir)?;
    let manifests = Manifests::load(&dir)?;
    let passed = kubernetes_validate(&files)?;
    assert_eq!(passed, manifests.docs.len(), "every resource of {files:?} validated");
    let kinds: BTreeSet<&str> = manifests.docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Secret",
        "Service",
        "StatefulSet",
        "PersistentVolumeClaim",
        "Deployment",
        "Job",
    ] {
        assert!(kinds.contains(kind), "the example has a {kind} (kinds: {kinds:?})");
    }
    Ok(())
}

#[test]
fn kubernetes_validate_rejects_broken_manifests() -> Result<()> {
    let dir = example_dir();
    let work = tempfile::tempdir()?;
    // (file, text, replaced by, what kubernetes-validate must say)
    let breakages = [
        (
            "agent-daemonset.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: \"yes\"",
            "'yes' is not of type 'boolean'",
        ),
        (
            "agent-daemonset.yaml",
            "hostNetwork: false",
            "hostNetwork: false\n      hostNetwrk: false",
            "'hostNetwrk' was unexpected",
        ),
        (
            "collector-statefulset.yaml",
            "replicas: 3",
            "replicas: three",
            "'three' is not of type 'integer'",
        ),
        (
            "collector-statefulset.yaml",
            "apiVersion: apps/v1",
            "apiVersion: apps/v1beta9",
            "Couldn't find schema for kind StatefulSet",
        ),
        (
            "agent-rbac.yaml",
            "verbs: [get, list, watch]",
            "verb: [get, list, watch]",
            "'verbs' is a required property",
        ),
        (
            "minio.yaml",
            "containerPort: 9000",
            "containerPort: \"9000\"",
            "'9000' is not of type 'integer'",
        ),
        (
            "namespace.yaml",
            "kind: Namespace",
            "kind: Namspace",
            "Couldn't find schema for kind Namspace",
        ),
    ];
    for (file, from, to, expected) in breakages {
        let original = std::fs::read_to_string(dir.join(file))?;
        assert!(original.contains(from), "{file} contains {from:?}");
        let copy = work.path().join(file);
        std::fs::write(&copy, &original)?;
        kubernetes_validate(std::slice::from_ref(&copy)).with_context(|| format!("unbroken copy of {file}"))?;
        std::fs::write(&copy, original.replacen(from, to, 1))?;
        let error = kubernetes_validate(std::slice::from_ref(&copy))
            .err()
            .with_context(|| format!("{file} with {to:?} was accepted"))?;
        assert!(format!("{error:#}").contains(expected), "{file} with {to:?}: {error:#}");
    }
    Ok(())
}

#[test]
fn kustomization_lists_every_manifest() -> Result<()> {
    let dir = example_dir();
    let kustomization = parse_yaml(&std::fs::read_to_string(dir.join("kustomization.yaml"))?)?;
    let kustomization = kustomization.first().context("kustomization.yaml is empty")?;
    let listed: BTreeSet<String> = strings(kustomization, "/resources").into_iter().collect();
    let present: BTreeSet<String> = manifest_files(&dir)?.iter().map(|f| file_name(f)).collect();
    assert_eq!(listed, present, "kustomization.yaml resources vs the files beside it");
    Ok(())
}

#[test]
fn agent_config_in_the_configmap_passes_check_config() -> Result<()> {
    let manifests = Manifests::load(&example_dir())?;
    let config = manifests.agent_config()?;
    // The kubelet jobs read the pod's service-account files, which check-config opens: give it a
    // stand-in directory with the same files.
    let work = tempfile::tempdir()?;
    let account = work.path().join("serviceaccount");
    std::fs::create_dir(&account)?;
    std::fs::write(account.join("ca.crt"), "stand-in CA\n")?;
    std::fs::write(account.join("token"), "stand-in token\n")?;
    assert!(
        config.matches(SERVICE_ACCOUNT_DIR).count() >= 4,
        "kubelet jobs use the service-account files"
    );
    let config = config.replace(SERVICE_ACCOUNT_DIR, &format!("{}/", account.display()));
    let file = work.path().join("agent.yml");
    std::fs::write(&file, &config)?;
    let jobs = list(
        parse_yaml(&config)?.first().context("agent.yml is empty")?,
        "/scrape_configs",
    )
    .len();

    let check = |node_name: Option<&str>| -> Result<std::process::Output> {
        let mut cmd = Command::new(workspace_bin("trawl-agent"));
        cmd.arg("check-config").arg(&file).env_remove("NODE_NAME");
        if let Some(n) = node_name {
            cmd.env("NODE_NAME", n);
        }
        Ok(cmd.output()?)
    };
    let out = check(Some("pi-node-1"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-config failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("SUCCESS: {jobs} scrape configs, 1 remote_write")),
        "{stdout}"
    );

    // Without NODE_NAME, or with an empty one, the agent must refuse the config rather than
    // discover the whole cluster from every node.
    for node_name in [None, Some("")] {
        let out = check(node_name)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "NODE_NAME {node_name:?} accepted");
        assert!(
            stderr.contains("NODE_NAME") || stderr.contains("node_name"),
            "NODE_NAME {node_name:?}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn manifests_reference_each_other_consistently() -> Result<()> {
    let manifests = Manifests::load(&example_dir())?;
    check_references(&manifests)?;
    check_agent_config(&manifests)?;
    check_objstore(&manifests)?;
    let agent_help = help_flags(&workspace_bin("trawl-agent"))?;
    let collector_help = help_flags(&workspace_bin("trawl-collector"))?;
    check_flags(&manifests, &agent_help, &collector_help)?;
    check_hashring(&manifests, &collector_help)?;

    // The collector's --label, after Kubernetes expands $(POD_NAME), is what the collector parses.
    let (_, collector) = manifests.container_of("trawl-collector")?;
    for (flag, value) in flags(collector) {
        if flag == "--label" {
            let (name, value) =
                trawl_collector::external_labels::parse_label_flag(&value.replace("$(POD_NAME)", "trawl-collector-0"))
                    .map_err(anyhow::Error::msg)?;
            assert_eq!((name.as_str(), value.as_str()), ("replica", "trawl-collector-0"));
        }
    }
    Ok(())
}

/// Each consistency check rejects a copy with one mistake of the kind it exists for.
#[test]
fn consistency_checks_reject_broken_copies() -> Result<()> {
    let dir = example_dir();
    let agent_help = help_flags(&workspace_bin("trawl-agent"))?;
    let collector_help = help_flags(&workspace_bin("trawl-collector"))?;
    let original = Manifests::load(&dir)?;
    type Breakage = fn(&mut Manifests) -> Result<()>;
    // (mistake, what the error must say, the mistake made)
    let cases: [(&str, &str, Breakage); 9] = [
        ("renamed agent ConfigMap", "no ConfigMap trawl-agent-config", |m| {
            m.get_mut("ConfigMap", "trawl-agent-config")?["metadata"]["name"] = json!("agent-config");
            Ok(())
        }),
        ("wrong Secret key", "has no key \"access_key\"", |m| {
            let env =
                &mut m.get_mut("StatefulSet", "trawl-collector")?["spec"]["template"]["spec"]["containers"][0]["env"];
            let var = env
                .as_array_mut()
                .context("env")?
                .iter_mut()
                .find(|e| e["name"] == "AWS_ACCESS_KEY_ID");
            var.context("AWS_ACCESS_KEY_ID")?["valueFrom"]["secretKeyRef"]["key"] = json!("access_key");
            Ok(())
        }),
        ("undefined $(VAR)", "uses $(HOSTNAME), which is not in its env", |m| {
            let args =
                &mut m.get_mut("StatefulSet", "trawl-collector")?["spec"]["template"]["spec"]["containers"][0]["args"];
            let label = args
                .as_array_mut()
                .context("args")?
                .iter_mut()
                .find(|a| a.as_str().is_some_and(|a| a.starts_with("--label=")));
            *label.context("--label")? = json!("--label=replica=\"$(HOSTNAME)\"");
            Ok(())
        }),
        (
            "probe on an undeclared port",
            "readinessProbe uses port \"metrics\"",
            |m| {
                let c = &mut m.get_mut("DaemonSet", "trawl-agent")?["spec"]["template"]["spec"]["containers"][0];
                c["readinessProbe"]["httpGet"]["port"] = json!("metrics");
                Ok(())
            },
        ),
        ("Service selecting nothing", "no pod template has the labels", |m| {
            m.get_mut("Service", "minio")?["spec"]["selector"] = json!({"app.kubernetes.io/name": "minio-typo"});
            Ok(())
        }),
        (
            "ClusterRole without endpointslices",
            "list/watch on discovery.k8s.io/endpointslices",
            |m| {
                let rules = &mut m.get_mut("ClusterRole", "trawl-agent")?["rules"];
                let rule = rules
                    .as_array_mut()
                    .context("rules")?
                    .iter_mut()
                    .find(|r| r["apiGroups"][0] == "discovery.k8s.io");
                rule.context("discovery.k8s.io rule")?["resources"] = json!([]);
                Ok(())
            },
        ),
        ("discovery that is not node-local", "discovery is not node-local", |m| {
            let config =
                m.agent_config()?
                    .replacen("node_name: \"${NODE_NAME}\"", "namespaces: {own_namespace: false}", 1);
            m.get_mut("ConfigMap", "trawl-agent-config")?["data"]["agent.yml"] = json!(config);
            Ok(())
        }),
        (
            "a flag the agent does not have",
            "has no flag --storage.tsdb.path",
            |m| {
                let args =
                    &mut m.get_mut("DaemonSet", "trawl-agent")?["spec"]["template"]["spec"]["containers"][0]["args"];
                args.as_array_mut()
                    .context("args")?
                    .push(json!("--storage.tsdb.path=/data"));
                Ok(())
            },
        ),
        ("bucket the Job does not create", "does not create blocks", |m| {
            let secret = &mut m.get_mut("Secret", "trawl-objstore")?["stringData"]["objstore.yml"];
            *secret = json!(
                secret
                    .as_str()
                    .context("objstore.yml")?
                    .replace("bucket: trawl", "bucket: blocks")
            );
            Ok(())
        }),
    ];
    for (what, expected, breakage) in cases {
        let mut manifests = original.clone();
        breakage(&mut manifests)?;
        let result = check_references(&manifests)
            .and_then(|()| check_agent_config(&manifests))
            .and_then(|()| check_objstore(&manifests))
            .and_then(|()| check_flags(&manifests, &agent_help, &collector_help))
            .and_then(|()| check_hashring(&manifests, &collector_help));
        let error = format!("{:#}", result.err().with_context(|| format!("{what}: accepted"))?);
        assert!(error.contains(expected), "{what}: rejected for another reason: {error}");
    }
    // A hashring that forgot a replica.
    let mut manifests = original.clone();
    manifests.get_mut("StatefulSet", "trawl-collector")?["spec"]["replicas"] = json!(4);
    let error = check_hashring(&manifests, &collector_help)
        .err()
        .context("4 replicas, 3 endpoints: accepted")?;
    assert!(error.to_string().contains("trawl-collector-3."), "{error:#}");
    // The collector has the hashring flags, so the StatefulSet must pass them.
    let mut manifests = original.clone();
    let args =
        &mut manifests.get_mut("StatefulSet", "trawl-collector")?["spec"]["template"]["spec"]["containers"][0]["args"];
    let kept: Vec<Value> = args
        .as_array()
        .context("collector args")?
        .iter()
        .filter(|a| !a.as_str().is_some_and(|a| a.starts_with("--receive.hashrings-file")))
        .cloned()
        .collect();
    *args = Value::Array(kept);
    let error = check_hashring(&manifests, &collector_help)
        .err()
        .context("hashring flag not passed: accepted")?;
    assert!(
        error.to_string().contains("now has --receive.hashrings-file"),
        "{error:#}"
    );
    Ok(())
}
