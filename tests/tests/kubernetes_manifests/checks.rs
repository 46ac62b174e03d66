//! What no schema sees: names, keys, ports, `$(VAR)`s, flags, RBAC, the bucket and the hashring
//! that the manifests use of each other and of the binaries. Each check returns the first
//! mistake it finds.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use trawl_collector::shipper::ObjstoreConfig;
use trawl_collector::shipper::objstore::Backend;

use crate::manifests::{Manifests, env_references, file_name, flags, list, parse_yaml, strings, text};

/// Where Kubernetes mounts a pod's service-account CA and token.
pub(crate) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount/";

fn check_container(m: &Manifests, ns: &str, volumes: &BTreeSet<String>, c: &Value) -> Result<()> {
    let name = c["name"].as_str().unwrap_or("?");
    let mut env = BTreeSet::new();
    for var in list(c, "/env") {
        let value = var["value"].as_str().unwrap_or_default();
        for r in env_references(value) {
            ensure!(
                env.contains(r),
                "container {name}: env {} uses $({r}), not defined before it",
                var["name"]
            );
        }
        for (kind, key_ref) in [("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")] {
            if let Some(r) = var["valueFrom"].get(key_ref) {
                let keys = m.keys(kind, ns, text(r, "/name")?)?;
                ensure!(
                    keys.contains(text(r, "/key")?),
                    "container {name}: {kind} {} has no key {}",
                    r["name"],
                    r["key"]
                );
            }
        }
        env.insert(text(var, "/name")?.to_owned());
    }
    for arg in strings(c, "/args").iter().chain(&strings(c, "/command")) {
        for r in env_references(arg) {
            ensure!(
                env.contains(r),
                "container {name}: {arg} uses $({r}), which is not in its env"
            );
        }
    }
    for mount in list(c, "/volumeMounts") {
        ensure!(
            volumes.contains(text(mount, "/name")?),
            "container {name}: no volume {}",
            mount["name"]
        );
    }
    let named: BTreeSet<&str> = list(c, "/ports").iter().filter_map(|p| p["name"].as_str()).collect();
    let numbers: BTreeSet<u64> = list(c, "/ports")
        .iter()
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let port = &c[probe]["httpGet"]["port"];
        let known = match port {
            Value::Null => true,
            Value::String(p) => named.contains(p.as_str()),
            other => other.as_u64().is_some_and(|p| numbers.contains(&p)),
        };
        ensure!(
            known,
            "container {name}: {probe} uses port {port}, which it does not declare"
        );
    }
    Ok(())
}

/// Names, keys and ports that the manifests use of each other, as the API server would resolve
/// them when the pods start (no schema checks these).
pub(crate) fn check_references(m: &Manifests) -> Result<()> {
    for (w, ns, template) in m.pod_templates() {
        let what = format!("{} {}", w["kind"], w["metadata"]["name"]);
        let labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        for (k, v) in w["spec"]["selector"]["matchLabels"].as_object().into_iter().flatten() {
            ensure!(
                labels.get(k) == Some(v),
                "{what}: selector {k}={v} does not match its pod template"
            );
        }
        let spec = &template["spec"];
        if let Some(sa) = spec["serviceAccountName"].as_str() {
            m.get("ServiceAccount", Some(ns), sa).with_context(|| what.clone())?;
        }
        let mut volumes = BTreeSet::new();
        for v in list(spec, "/volumes") {
            volumes.insert(text(v, "/name")?.to_owned());
            let (kind, source) = if let Some(s) = v.get("configMap") {
                ("ConfigMap", text(s, "/name")?)
            } else if let Some(s) = v.get("secret") {
                ("Secret", text(s, "/secretName")?)
            } else if let Some(s) = v.get("persistentVolumeClaim") {
                m.get("PersistentVolumeClaim", Some(ns), text(s, "/claimName")?)
                    .with_context(|| what.clone())?;
                continue;
            } else {
                continue;
            };
            let keys = m.keys(kind, ns, source).with_context(|| what.clone())?;
            let source_spec = v.get("configMap").or(v.get("secret")).unwrap_or(&Value::Null);
            for item in list(source_spec, "/items") {
                ensure!(
                    keys.contains(text(item, "/key")?),
                    "{what}: {kind} {source} has no key {}",
                    item["key"]
                );
            }
        }
        for claim in list(&w["spec"], "/volumeClaimTemplates") {
            volumes.insert(text(claim, "/metadata/name")?.to_owned());
        }
        for c in list(spec, "/initContainers").iter().chain(list(spec, "/containers")) {
            check_container(m, ns, &volumes, c).with_context(|| what.clone())?;
        }
        if let Some(service) = w["spec"]["serviceName"].as_str() {
            let svc = m.get("Service", Some(ns), service).with_context(|| what.clone())?;
            ensure!(
                svc["spec"]["clusterIP"] == "None",
                "{what}: its Service {service} is not headless"
            );
        }
    }
    for svc in m.of_kind("Service") {
        let name = &svc["metadata"]["name"];
        let ns = text(svc, "/metadata/namespace")?;
        let selector = svc["spec"]["selector"].as_object().cloned().unwrap_or_default();
        ensure!(!selector.is_empty(), "Service {name} selects nothing");
        let pods: Vec<&Value> = m
            .pod_templates()
            .into_iter()
            .filter(|(_, pod_ns, t)| {
                *pod_ns == ns && selector.iter().all(|(k, v)| t["metadata"]["labels"].get(k) == Some(v))
            })
            .map(|(_, _, t)| t)
            .collect();
        ensure!(
            !pods.is_empty(),
            "Service {name}: no pod template has the labels {selector:?}"
        );
        for port in list(svc, "/spec/ports") {
            if let Some(target) = port["targetPort"].as_str() {
                let declared = pods.iter().any(|t| {
                    list(t, "/spec/containers")
                        .iter()
                        .flat_map(|c| list(c, "/ports"))
                        .any(|p| p["name"] == target)
                });
                ensure!(
                    declared,
                    "Service {name}: targetPort {target} is no container port of its pods"
                );
            }
        }
    }
    for binding in m.of_kind("ClusterRoleBinding") {
        m.get("ClusterRole", None, text(binding, "/roleRef/name")?)?;
        for s in list(binding, "/subjects") {
            m.get("ServiceAccount", Some(text(s, "/namespace")?), text(s, "/name")?)?;
        }
    }
    Ok(())
}

/// The long flags a binary's `--help` lists.
pub(crate) fn help_flags(binary: &Path) -> Result<BTreeSet<String>> {
    let out = Command::new(binary).arg("--help").output()?;
    ensure!(out.status.success(), "{} --help failed", binary.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|w| w.starts_with("--"))
        .map(str::to_owned)
        .collect())
}

/// The flags of the Trawl containers exist in the binaries, files they name are mounted from the
/// ConfigMap or Secret key of that name, and the directories they write are volumes (the root
/// filesystem is read-only).
pub(crate) fn check_flags(
    m: &Manifests,
    agent_help: &BTreeSet<String>,
    collector_help: &BTreeSet<String>,
) -> Result<()> {
    for (binary, help) in [("trawl-agent", agent_help), ("trawl-collector", collector_help)] {
        let (workload, container) = m.container_of(binary)?;
        let spec = &workload["spec"]["template"]["spec"];
        let flags = flags(container);
        ensure!(!flags.is_empty(), "{binary}: no flags");
        for (flag, value) in &flags {
            ensure!(
                help.contains(flag),
                "{binary} has no flag {flag} (its --help lists {help:?})"
            );
            let path = Path::new(value);
            if !path.is_absolute() {
                continue;
            }
            let mount = list(container, "/volumeMounts")
                .iter()
                .find(|v| {
                    let dir = v["mountPath"].as_str().unwrap_or_default();
                    path == Path::new(dir) || path.parent() == Some(Path::new(dir))
                })
                .with_context(|| format!("{binary} {flag}={value}: not on a mounted volume"))?;
            let volume = list(spec, "/volumes").iter().find(|v| v["name"] == mount["name"]);
            let Some(source) = volume.and_then(|v| v.get("configMap").or(v.get("secret"))) else {
                ensure!(
                    mount["readOnly"] != true,
                    "{binary} {flag}={value}: volume is read-only"
                );
                continue;
            };
            let file = file_name(path);
            let provided = match list(source, "/items") {
                [] => {
                    let (kind, name) = match source.get("secretName") {
                        Some(s) => ("Secret", s),
                        None => ("ConfigMap", &source["name"]),
                    };
                    let ns = workload["metadata"]["namespace"].as_str().unwrap_or("default");
                    m.keys(kind, ns, name.as_str().unwrap_or_default())?.contains(&file)
                }
                items => items.iter().any(|i| i["path"] == file.as_str()),
            };
            ensure!(provided, "{binary} {flag}={value}: the mounted volume has no {file}");
        }
    }
    Ok(())
}

/// The Kubernetes resources a discovery role lists and watches, as (apiGroup, resource).
fn role_resources(role: &str) -> Result<&'static [(&'static str, &'static str)]> {
    Ok(match role {
        "node" => &[("", "nodes")],
        "pod" => &[("", "pods")],
        "service" => &[("", "services")],
        "endpoints" => &[("", "endpoints"), ("", "pods"), ("", "services")],
        "endpointslice" => &[("discovery.k8s.io", "endpointslices"), ("", "pods"), ("", "services")],
        "ingress" => &[("networking.k8s.io", "ingresses")],
        other => bail!("unknown kubernetes_sd_configs role {other}"),
    })
}

fn allows(rules: &[Value], group: &str, resource: &str, verbs: &[&str]) -> bool {
    rules.iter().any(|r| {
        strings(r, "/apiGroups").iter().any(|g| g == group)
            && strings(r, "/resources").iter().any(|x| x == resource)
            && verbs.iter().all(|v| strings(r, "/verbs").iter().any(|x| x == v))
    })
}

/// Every discovery in agent.yml is node-local and allowed by the agent's ClusterRole; kubelet
/// scrapes are allowed too; remote_write goes to a Service of the example.
pub(crate) fn check_agent_config(m: &Manifests) -> Result<()> {
    let config = parse_yaml(m.agent_config()?)?.pop().context("agent.yml is empty")?;
    let (daemonset, _) = m.container_of("trawl-agent")?;
    let account = text(daemonset, "/spec/template/spec/serviceAccountName")?;
    let binding = m
        .of_kind("ClusterRoleBinding")
        .into_iter()
        .find(|b| list(b, "/subjects").iter().any(|s| s["name"] == account))
        .with_context(|| format!("no ClusterRoleBinding for {account}"))?;
    let role = m.get("ClusterRole", None, text(binding, "/roleRef/name")?)?;
    let rules = list(role, "/rules");
    let jobs = list(&config, "/scrape_configs");
    ensure!(!jobs.is_empty(), "agent.yml has no scrape_configs");
    for job in jobs {
        let name = &job["job_name"];
        for sd in list(job, "/kubernetes_sd_configs") {
            ensure!(
                sd["node_name"] == "${NODE_NAME}",
                "job {name}: discovery is not node-local"
            );
            for (group, resource) in role_resources(text(sd, "/role")?)? {
                ensure!(
                    allows(rules, group, resource, &["list", "watch"]),
                    "job {name}: the ClusterRole does not allow list/watch on {group}/{resource}"
                );
            }
        }
        let kubelet = job["authorization"]["credentials_file"]
            .as_str()
            .is_some_and(|f| f.starts_with(SERVICE_ACCOUNT_DIR))
            && list(job, "/kubernetes_sd_configs")
                .iter()
                .any(|sd| sd["role"] == "node");
        ensure!(
            !kubelet || allows(rules, "", "nodes/metrics", &["get"]),
            "job {name} scrapes kubelets, but the ClusterRole does not allow get on nodes/metrics"
        );
    }
    for rw in list(&config, "/remote_write") {
        let url = text(rw, "/url")?;
        let authority = url
            .strip_prefix("http://")
            .and_then(|u| u.split('/').next())
            .context("remote_write url")?;
        service_at(m, authority).with_context(|| format!("remote_write {url}"))?;
    }
    Ok(())
}

/// The Service that `SERVICE.NAMESPACE.svc:PORT` names, which must have that port.
fn service_at<'a>(m: &'a Manifests, authority: &str) -> Result<&'a Value> {
    let (host, port) = authority.split_once(':').context("no port")?;
    let port: u64 = port.parse().with_context(|| format!("port {port}"))?;
    let (service, ns) = host
        .strip_suffix(".svc")
        .and_then(|h| h.split_once('.'))
        .with_context(|| format!("{host} is not SERVICE.NAMESPACE.svc"))?;
    let svc = m.get("Service", Some(ns), service)?;
    ensure!(
        list(svc, "/spec/ports")
            .iter()
            .any(|p| p["port"].as_u64() == Some(port)),
        "Service {service} has no port {port}"
    );
    Ok(svc)
}

/// The collectors' bucket is the one the MinIO Job creates, at the MinIO Service, with the
/// credentials MinIO is started with.
pub(crate) fn check_objstore(m: &Manifests) -> Result<()> {
    let secret = m.get("Secret", Some("monitoring"), "trawl-objstore")?;
    let parsed = ObjstoreConfig::parse(text(secret, "/stringData/objstore.yml")?, "objstore.yml")?;
    let Backend::S3(s3) = parsed.backend else {
        bail!("objstore.yml is not type S3")
    };
    ensure!(
        s3.credentials.is_none(),
        "keys belong in the Secret's access-key/secret-key, not objstore.yml"
    );
    let ns = text(
        service_at(m, &s3.endpoint).context("objstore.yml endpoint")?,
        "/metadata/namespace",
    )?;
    let job = m.get("Job", Some(ns), "minio-make-bucket")?;
    let mc = list(job, "/spec/template/spec/containers")
        .first()
        .context("bucket Job container")?;
    ensure!(
        strings(mc, "/args")
            .iter()
            .any(|a| a.ends_with(&format!("/{}", s3.bucket))),
        "the bucket Job does not create {}",
        s3.bucket
    );
    let mc_host = list(mc, "/env")
        .iter()
        .find(|e| e["name"] == "MC_HOST_minio")
        .context("MC_HOST_minio")?;
    ensure!(
        text(mc_host, "/value")?.ends_with(&format!("@{}", s3.endpoint)),
        "the bucket Job talks to another endpoint than {}",
        s3.endpoint
    );
    let key_ref = |c: &Value, var: &str| -> Option<(String, String)> {
        let r = &list(c, "/env").iter().find(|e| e["name"] == var)?["valueFrom"]["secretKeyRef"];
        Some((r["name"].as_str()?.to_owned(), r["key"].as_str()?.to_owned()))
    };
    let (_, collector) = m.container_of("trawl-collector")?;
    let minio = m.get("Deployment", Some(ns), "minio")?;
    let minio = list(minio, "/spec/template/spec/containers")
        .first()
        .context("MinIO container")?;
    for (collector_var, minio_var) in [
        ("AWS_ACCESS_KEY_ID", "MINIO_ROOT_USER"),
        ("AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD"),
    ] {
        let from = key_ref(collector, collector_var).with_context(|| format!("collector env {collector_var}"))?;
        ensure!(
            from.0 == "trawl-objstore",
            "collector {collector_var} comes from {from:?}"
        );
        ensure!(
            key_ref(minio, minio_var) == Some(from),
            "MinIO's {minio_var} is not the collector's {collector_var}"
        );
    }
    Ok(())
}

/// hashrings.json lists the StatefulSet's pods by their names under its headless Service; once
/// the collector has `--receive.hashrings-file`, the StatefulSet must pass it.
pub(crate) fn check_hashring(m: &Manifests, collector_help: &BTreeSet<String>) -> Result<()> {
    let config = m.get("ConfigMap", Some("monitoring"), "trawl-collector-hashrings")?;
    let rings: Value = serde_json::from_str(text(config, "/data/hashrings.json")?).context("hashrings.json")?;
    let rings = rings.as_array().context("hashrings.json is not a list")?;
    ensure!(rings.len() == 1, "one hashring expected");
    let sts = m.get("StatefulSet", Some("monitoring"), "trawl-collector")?;
    let replicas = sts["spec"]["replicas"].as_u64().context("replicas")?;
    let service = text(sts, "/spec/serviceName")?;
    let ports = list(m.get("Service", Some("monitoring"), service)?, "/spec/ports");
    let port = &ports.first().context("headless Service port")?["port"];
    let expected: Vec<String> = (0..replicas)
        .map(|i| format!("trawl-collector-{i}.{service}.monitoring.svc.cluster.local:{port}"))
        .collect();
    ensure!(
        strings(&rings[0], "/endpoints") == expected,
        "hashring endpoints {} are not {expected:?}",
        rings[0]["endpoints"]
    );
    let (_, container) = m.container_of("trawl-collector")?;
    let passed: BTreeSet<String> = flags(container).into_iter().map(|(f, _)| f).collect();
    for flag in [
        "--receive.hashrings-file",
        "--receive.local-endpoint",
        "--receive.replication-factor",
    ] {
        ensure!(
            !collector_help.contains(flag) || passed.contains(flag),
            "trawl-collector now has {flag}: pass it in collector-statefulset.yaml (see the comment in its args)"
        );
    }
    Ok(())
}
