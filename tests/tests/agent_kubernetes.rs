//! The agent's `kubernetes_sd_configs` against the in-repo fake API server
//! (`trawl_e2e::kube_api`): pods appear and go stale, node-local mode, the meta labels of every
//! role against a table from Prometheus's documentation and sources, token rotation, restarts
//! and 410 Gone, bad input (outage, RBAC refusal, malformed objects), and one watch per resource
//! for jobs sharing a config. Pods point at real local exposition servers (pod IP 127.0.0.1,
//! container port = the server's port), so the targets are really scraped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use trawl_e2e::kube_api::objects::{
    Address, Build, Container, EndpointSlice, Endpoints, Ingress, Node, Pod, Service, uid,
};
use trawl_e2e::kube_api::{KubeApi, Options, Resource, Verb, objects};
use trawl_e2e::{Prometheus, TEXT_FORMAT, eventually, exposition_server, http_client, metric_sum, trawl_agent};

/// How long discovery may take to reflect a change (generous: debug builds, two cores).
const SETTLE: Duration = Duration::from_secs(30);

/// A pod on `node` whose only container port points at `target` (`127.0.0.1:PORT`).
fn scraped_pod(name: &str, node: &str, target: &str) -> Value {
    let port = target.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Pod::new("shop", name)
        .node(node)
        .ip("127.0.0.1")
        .host_ip("127.0.0.1")
        .container(Container::new("app", "ghcr.io/acme/app:1.0").port("metrics", port))
        .owner("ReplicaSet", "app-5d4f8c7b9")
        .label("app", "shop")
        .build()
}

/// An exposition server for one pod; returns `127.0.0.1:PORT`.
async fn target(pod: &str) -> Result<String> {
    let body = format!("# TYPE shop_requests_total counter\nshop_requests_total{{pod_self=\"{pod}\"}} 7\n");
    exposition_server(vec![("/metrics", body, TEXT_FORMAT)]).await
}

/// A job discovering pods from `api`, with the pod name as label `pod` and the pod's label
/// `version` as `version`; `extra` is appended to the `kubernetes_sd_configs` entry (indented
/// YAML keys).
fn pod_job(job: &str, api: &KubeApi, extra: &str) -> String {
    format!(
        r#"
  - job_name: {job}
    kubernetes_sd_configs:
      - role: pod
        api_server: {url}
{extra}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_label_version]
        target_label: version
"#,
        url = api.url()
    )
}

/// A full agent config scraping every second.
fn agent_config(jobs: &str, tail: &str) -> String {
    format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:{jobs}{tail}")
}

/// The active targets of `job`.
async fn targets(agent: &str, job: &str) -> Result<Vec<Value>> {
    let body: Value = http_client()
        .get(format!("{agent}/api/v1/targets"))
        .query(&[("state", "active"), ("scrapePool", job)])
        .send()
        .await?
        .json()
        .await?;
    body["data"]["activeTargets"]
        .as_array()
        .cloned()
        .with_context(|| format!("no activeTargets: {body}"))
}

/// The pod names of `job`'s targets, sorted, duplicates kept.
async fn pods(agent: &str, job: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = targets(agent, job)
        .await?
        .iter()
        .map(|t| {
            t["discoveredLabels"]["__meta_kubernetes_pod_name"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Waits until `job`'s targets are exactly the pods `want` (each once).
async fn wait_pods(agent: &str, job: &str, want: &[&str]) -> Result<()> {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    let what = format!("{job} targets = {want:?}");
    eventually(&what, SETTLE, || async {
        let got = pods(agent, job).await?;
        if got == want {
            return Ok(Some(()));
        }
        bail!("got {got:?}")
    })
    .await
}

/// The agent's `trawl_agent_sd_kubernetes_failures_total` for `role` and `reason`.
async fn failures(agent: &str, role: &str, reason: &str) -> Result<f64> {
    metric_sum(
        agent,
        "trawl_agent_sd_kubernetes_failures_total",
        &[("role", role), ("reason", reason)],
    )
    .await
}

/// Waits until the failure counter for `role`/`reason` is at least `n`.
async fn wait_failures(agent: &str, role: &str, reason: &str, n: f64) -> Result<f64> {
    eventually(
        &format!("failures_total{{role={role},reason={reason}}} >= {n}"),
        SETTLE,
        || async {
            let v = failures(agent, role, reason).await?;
            Ok((v >= n).then_some(v))
        },
    )
    .await
}

/// Writes `token` to `path` as the kubelet does when it rotates a projected token: a new file
/// renamed over the old one.
fn write_token(path: &Path, token: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, token)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// fake API server ──list/watch pods──► trawl-agent ──scrape──► web-0, web-1, web-2
///                                           │                   (exposition servers)
///                                           └──remote write──► prometheus (receiver)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_added_and_removed_become_targets_and_go_stale() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let prom = Prometheus::receiver(dir.path(), "global:\n  scrape_interval: 1h\n").await?;
    let api = KubeApi::start().await?;
    let (t0, t1, t2) = (target("web-0").await?, target("web-1").await?, target("web-2").await?);
    api.apply(scraped_pod("web-0", "node-a", &t0))?;
    api.apply(scraped_pod("web-1", "node-a", &t1))?;
    let remote = format!(
        "\nremote_write:\n  - url: {}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s}}\n",
        prom.url
    );
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&pod_job("pods", &api, ""), &remote)).await?;

    // Both pods are scraped and their series arrive with the pod label.
    eventually("up == 1 for web-0 and web-1", SETTLE, || async {
        let up = prom.query(r#"up{job="pods"} == 1"#).await?;
        let names: BTreeSet<_> = up
            .iter()
            .filter_map(|s| s["metric"]["pod"].as_str().map(str::to_owned))
            .collect();
        Ok((names == BTreeSet::from(["web-0".to_owned(), "web-1".to_owned()])).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;

    // A new pod is a target soon after its watch event (the goal is 2 s; asserted loosely).
    let added = Instant::now();
    api.apply(scraped_pod("web-2", "node-a", &t2))?;
    wait_pods(&url, "pods", &["web-0", "web-1", "web-2"])
        .await
        .with_context(|| agent.log())?;
    let latency = added.elapsed();
    println!("watch event → target: {latency:?}");
    assert!(latency < Duration::from_secs(10), "{latency:?}");
    eventually("web-2 scraped into the receiver", SETTLE, || async {
        Ok((!prom.query(r#"shop_requests_total{pod="web-2"}"#).await?.is_empty()).then_some(()))
    })
    .await?;

    // A deleted pod's target goes, and its series go stale in the receiver.
    api.delete(Resource::Pods, "shop", "web-1")?;
    wait_pods(&url, "pods", &["web-0", "web-2"]).await?;
    eventually("web-1's series to go stale", SETTLE, || async {
        let gone =
            prom.query(r#"up{pod="web-1"}"#).await?.is_empty() && prom.query(r#"{pod="web-1"}"#).await?.is_empty();
        Ok(gone.then_some(()))
    })
    .await
    .with_context(|| agent.log())?;
    assert_eq!(prom.query(r#"up{pod="web-0"} == 1"#).await?.len(), 1);

    // An evicted pod (no IP any more) is an empty group: its target goes too.
    api.apply(
        Pod::new("shop", "web-2")
            .node("node-a")
            .phase("Failed")
            .ready(false)
            .build(),
    )?;
    wait_pods(&url, "pods", &["web-0"]).await?;
    Ok(())
}

/// fake API server ──list/watch pods?fieldSelector=spec.nodeName=node-a──► trawl-agent (node-a)
///   pods a-* on node-a, b-* on node-b                                     └─scrape─► a-* only
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_local_mode_watches_only_this_nodes_pods() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    let (ta0, ta1, tb0) = (target("a-0").await?, target("a-1").await?, target("b-0").await?);
    api.apply(scraped_pod("a-0", "node-a", &ta0))?;
    api.apply(scraped_pod("b-0", "node-b", &tb0))?;
    api.apply(
        Pod::new("shop", "pending")
            .label("app", "shop")
            .phase("Pending")
            .build(),
    )?;
    let job = pod_job("pods", &api, "        node_name: node-a");
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&job, "")).await?;
    wait_pods(&url, "pods", &["a-0"]).await.with_context(|| agent.log())?;

    // Every pod list and watch asked the server for this node's pods only.
    let pod_requests: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.resource == Some(Resource::Pods) && matches!(r.verb, Verb::List | Verb::Watch))
        .collect();
    assert!(pod_requests.iter().any(|r| r.verb == Verb::Watch), "{pod_requests:?}");
    for r in &pod_requests {
        let fields = r.field_selector.as_deref().unwrap_or_default();
        assert!(fields.split(',').any(|f| f == "spec.nodeName=node-a"), "{r:?}");
        assert_eq!(r.path, "/api/v1/pods", "{r:?}");
    }

    // Pods arriving on other nodes never show; one arriving here does; one leaving goes.
    api.apply(scraped_pod("b-1", "node-b", &tb0))?;
    api.apply(scraped_pod("a-1", "node-a", &ta1))?;
    wait_pods(&url, "pods", &["a-0", "a-1"]).await?;
    api.apply(scraped_pod("a-0", "node-b", &ta0))?;
    wait_pods(&url, "pods", &["a-1"]).await?;
    assert!(targets(&url, "pods").await?.iter().all(|t| t["labels"]["pod"] == "a-1"));
    Ok(())
}

/// Replaces characters Prometheus does not allow in label names by `_` (strutil.SanitizeLabelName).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
}

/// The documented object-metadata labels of `object` for role `kind`: `__meta_kubernetes_<kind>_name`,
/// `_label_<name>`, `_labelpresent_<name>`, `_annotation_<name>`, `_annotationpresent_<name>`.
fn meta(kind: &str, object: &Value) -> Vec<(String, String)> {
    let m = &object["metadata"];
    let mut out = vec![(
        format!("__meta_kubernetes_{kind}_name"),
        m["name"].as_str().unwrap_or_default().to_owned(),
    )];
    for (field, singular) in [("labels", "label"), ("annotations", "annotation")] {
        for (k, v) in m[field].as_object().into_iter().flatten() {
            let name = sanitize(k);
            out.push((
                format!("__meta_kubernetes_{kind}_{singular}_{name}"),
                v.as_str().unwrap_or_default().to_owned(),
            ));
            out.push((
                format!("__meta_kubernetes_{kind}_{singular}present_{name}"),
                "true".to_owned(),
            ));
        }
    }
    out
}

/// One expected target: `pairs`, then `more`; empty values are left out, as Prometheus drops
/// empty labels.
fn expect(pairs: &[(&str, &str)], more: &[Vec<(String, String)>]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain(more.iter().flatten().cloned())
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The `discoveredLabels` of `job`'s targets that discovery sets (`__meta_kubernetes_*`,
/// `__address__`, `instance`), sorted.
async fn discovered(agent: &str, job: &str) -> Result<Vec<BTreeMap<String, String>>> {
    let mut out: Vec<BTreeMap<String, String>> = targets(agent, job)
        .await?
        .iter()
        .map(|t| {
            trawl_e2e::label_map(&t["discoveredLabels"])
                .into_iter()
                .filter(|(k, _)| k.starts_with("__meta_kubernetes_") || k == "__address__" || k == "instance")
                .collect()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The container id kubelet reported for container `name` (in `statuses`) of a pod's JSON.
fn container_id(pod: &Value, statuses: &str, name: &str) -> String {
    pod["status"][statuses]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .and_then(|s| s["containerID"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The objects of the label table: a node, four services, two pods (one pending), the
/// Endpoints and an EndpointSlice of the service `web`, and an ingress.
struct Fixture {
    node: Value,
    web: Value,
    db: Value,
    lb: Value,
    headless: Value,
    pod: Value,
    endpoints: Value,
    slice: Value,
    ingress: Value,
}

impl Fixture {
    fn new() -> Fixture {
        let pod = Pod::new("shop", "web-0")
            .node("node-a")
            .ip("10.1.0.7")
            .host_ip("192.168.1.21")
            .container(
                Container::new("app", "ghcr.io/acme/web:1.4")
                    .port("http", 8080)
                    .port("metrics", 9102),
            )
            .container(Container::new("envoy", "envoyproxy/envoy:v1.30"))
            .init_container(Container::new("migrate", "ghcr.io/acme/migrate:1.4"))
            .init_container(
                Container::new("log", "fluent-bit:3")
                    .port_protocol("syslog", 5140, "UDP")
                    .sidecar(),
            )
            .owner("ReplicaSet", "web-5d4f8c7b9")
            .label("app", "web")
            .label("app.kubernetes.io/part-of", "shop")
            .annotation("prometheus.io/scrape", "true")
            .annotation("kubectl.kubernetes.io/default-container", "app")
            .build();
        Fixture {
            node: Node::new("node-a")
                .arch("arm64")
                .provider_id("k8s://node-a")
                .address("Hostname", "node-a")
                .address("InternalIP", "192.168.1.21")
                .address("ExternalIP", "203.0.113.7")
                .address("InternalIP", "192.168.1.99")
                .label("node-role.kubernetes.io/worker", "")
                .build(),
            web: Service::new("shop", "web")
                .cluster_ip("10.152.183.20")
                .port("http", 80, 8080)
                .port_with("", 9102, "metrics".into(), "TCP")
                .selector("app", "web")
                .label("app", "web")
                .annotation("prometheus.io/probe", "true")
                .build(),
            db: Service::new("shop", "db")
                .external_name("db.example.com")
                .port("pg", 5432, 5432)
                .build(),
            lb: Service::new("shop", "lb")
                .load_balancer("192.168.1.240")
                .cluster_ip("10.152.183.30")
                .port_with("dns", 53, 53.into(), "UDP")
                .build(),
            headless: Service::new("shop", "peers")
                .headless()
                .port("gossip", 7946, 7946)
                .build(),
            endpoints: Endpoints::new("shop", "web")
                .address(Address::new("10.1.0.7").pod("web-0").node("node-a").hostname("web-0"))
                .address(Address::new("10.1.0.9"))
                .address(Address::new("10.1.0.8").pod("web-1").node("node-b").ready(false))
                .port("http", 8080, "TCP")
                .label("app", "web")
                .build(),
            slice: EndpointSlice::new("shop", "web-x7k2p", "web")
                .endpoint(
                    Address::new("10.1.0.7")
                        .pod("web-0")
                        .node("node-a")
                        .hostname("web-0")
                        .zone("z1"),
                )
                .endpoint(Address::new("10.1.0.8").ready(false).terminating(true))
                .port("http", 8080, "TCP", Some("http"))
                .build(),
            ingress: Ingress::new("shop", "web")
                .class("nginx")
                .rule("shop.example.com", &["/", "/api"])
                .rule("admin.example.org", &[])
                .tls(&["*.example.com"])
                .label("app", "web")
                .build(),
            pod,
        }
    }

    fn apply(&self, api: &KubeApi) -> Result<()> {
        for object in [
            &self.node,
            &self.web,
            &self.db,
            &self.lb,
            &self.headless,
            &self.pod,
            &self.endpoints,
            &self.slice,
            &self.ingress,
        ] {
            api.apply(object.clone())?;
        }
        api.apply(
            Pod::new("shop", "pending")
                .phase("Pending")
                .container(Container::new("app", "x:1").port("http", 80))
                .build(),
        )?;
        Ok(())
    }

    /// Node role: one target at the first address by type priority (InternalIP first) and the
    /// kubelet port; `instance` = node name; the first address of each type.
    fn node_targets(&self) -> Vec<BTreeMap<String, String>> {
        vec![expect(
            &[
                ("__address__", "192.168.1.21:10250"),
                ("instance", "node-a"),
                ("__meta_kubernetes_node_provider_id", "k8s://node-a"),
                ("__meta_kubernetes_node_address_InternalIP", "192.168.1.21"),
                ("__meta_kubernetes_node_address_ExternalIP", "203.0.113.7"),
                ("__meta_kubernetes_node_address_Hostname", "node-a"),
            ],
            &[meta("node", &self.node)],
        )]
    }

    /// Service role: one target per port at `<name>.<ns>.svc:<port>`; cluster IP except for
    /// ExternalName, external name for ExternalName, loadbalancer IP for LoadBalancer.
    fn service_targets(&self) -> Vec<BTreeMap<String, String>> {
        let ns = [("__meta_kubernetes_namespace", "shop")];
        let port = |svc: &Value, address: &str, name: &str, number: &str, protocol: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("__address__", address),
                ("__meta_kubernetes_service_port_name", name),
                ("__meta_kubernetes_service_port_number", number),
                ("__meta_kubernetes_service_port_protocol", protocol),
            ];
            pairs.extend_from_slice(extra);
            pairs.extend_from_slice(&ns);
            expect(&pairs, &[meta("service", svc)])
        };
        let cluster = |ip| {
            [
                ("__meta_kubernetes_service_type", "ClusterIP"),
                ("__meta_kubernetes_service_cluster_ip", ip),
            ]
        };
        let mut out = vec![
            port(
                &self.web,
                "web.shop.svc:80",
                "http",
                "80",
                "TCP",
                &cluster("10.152.183.20"),
            ),
            port(
                &self.web,
                "web.shop.svc:9102",
                "",
                "9102",
                "TCP",
                &cluster("10.152.183.20"),
            ),
            port(
                &self.headless,
                "peers.shop.svc:7946",
                "gossip",
                "7946",
                "TCP",
                &cluster("None"),
            ),
            port(
                &self.db,
                "db.shop.svc:5432",
                "pg",
                "5432",
                "TCP",
                &[
                    ("__meta_kubernetes_service_type", "ExternalName"),
                    ("__meta_kubernetes_service_external_name", "db.example.com"),
                ],
            ),
            port(
                &self.lb,
                "lb.shop.svc:53",
                "dns",
                "53",
                "UDP",
                &[
                    ("__meta_kubernetes_service_type", "LoadBalancer"),
                    ("__meta_kubernetes_service_cluster_ip", "10.152.183.30"),
                    ("__meta_kubernetes_service_loadbalancer_ip", "192.168.1.240"),
                ],
            ),
        ];
        out.sort();
        out
    }

    /// The `role: pod` labels of web-0 every pod-backed target carries (`podLabels`).
    fn pod_labels(&self) -> Vec<(String, String)> {
        let uid = uid("Pod", "shop", "web-0");
        let mut out: Vec<(String, String)> = [
            ("__meta_kubernetes_pod_ip", "10.1.0.7"),
            ("__meta_kubernetes_pod_ipv4", "10.1.0.7"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_node_name", "node-a"),
            ("__meta_kubernetes_pod_host_ip", "192.168.1.21"),
            ("__meta_kubernetes_pod_uid", uid.as_str()),
            ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
            ("__meta_kubernetes_pod_controller_name", "web-5d4f8c7b9"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        out.extend(meta("pod", &self.pod));
        out
    }

    /// Pod role: one target per container port, one port-less target per container without
    /// ports, init containers included; the container's id from its status.
    fn pod_targets(&self) -> Vec<BTreeMap<String, String>> {
        let pod = self.pod_labels();
        let ns = ("__meta_kubernetes_namespace", "shop");
        let id = |statuses, name| container_id(&self.pod, statuses, name);
        let (app, envoy) = (id("containerStatuses", "app"), id("containerStatuses", "envoy"));
        let (migrate, log) = (
            id("initContainerStatuses", "migrate"),
            id("initContainerStatuses", "log"),
        );
        let container = |name: &str, image: &str, cid: &str, init: &str| {
            vec![
                ("__meta_kubernetes_pod_container_name".to_owned(), name.to_owned()),
                ("__meta_kubernetes_pod_container_image".to_owned(), image.to_owned()),
                ("__meta_kubernetes_pod_container_id".to_owned(), cid.to_owned()),
                ("__meta_kubernetes_pod_container_init".to_owned(), init.to_owned()),
            ]
        };
        let port = |name: &str, number: &str, protocol: &str| {
            vec![
                ("__meta_kubernetes_pod_container_port_name".to_owned(), name.to_owned()),
                (
                    "__meta_kubernetes_pod_container_port_number".to_owned(),
                    number.to_owned(),
                ),
                (
                    "__meta_kubernetes_pod_container_port_protocol".to_owned(),
                    protocol.to_owned(),
                ),
            ]
        };
        let app_c = container("app", "ghcr.io/acme/web:1.4", &app, "false");
        let mut out = vec![
            expect(
                &[("__address__", "10.1.0.7:8080"), ns],
                &[pod.clone(), app_c.clone(), port("http", "8080", "TCP")],
            ),
            expect(
                &[("__address__", "10.1.0.7:9102"), ns],
                &[pod.clone(), app_c, port("metrics", "9102", "TCP")],
            ),
            expect(
                &[("__address__", "10.1.0.7"), ns],
                &[
                    pod.clone(),
                    container("envoy", "envoyproxy/envoy:v1.30", &envoy, "false"),
                ],
            ),
            expect(
                &[("__address__", "10.1.0.7"), ns],
                &[
                    pod.clone(),
                    container("migrate", "ghcr.io/acme/migrate:1.4", &migrate, "true"),
                ],
            ),
            expect(
                &[("__address__", "10.1.0.7:5140"), ns],
                &[
                    pod,
                    container("log", "fluent-bit:3", &log, "true"),
                    port("syslog", "5140", "UDP"),
                ],
            ),
        ];
        out.sort();
        out
    }

    /// The service `web`'s labels the endpoints roles attach.
    fn web_labels(&self) -> Vec<(String, String)> {
        let mut out = meta("service", &self.web);
        out.push(("__meta_kubernetes_namespace".into(), "shop".into()));
        out
    }

    /// A container of web-0 matched by an endpoint port, or one of its other ports (no id).
    fn web0_port(&self, name: &str, number: &str, init: &str) -> Vec<(String, String)> {
        let (container, image) = if init == "true" {
            ("log", "fluent-bit:3")
        } else {
            ("app", "ghcr.io/acme/web:1.4")
        };
        let protocol = if init == "true" { "UDP" } else { "TCP" };
        [
            ("__meta_kubernetes_pod_container_name", container),
            ("__meta_kubernetes_pod_container_image", image),
            ("__meta_kubernetes_pod_container_init", init),
            ("__meta_kubernetes_pod_container_port_name", name),
            ("__meta_kubernetes_pod_container_port_number", number),
            ("__meta_kubernetes_pod_container_port_protocol", protocol),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// Endpoints role: one target per address and port (ready, then not-ready addresses); pod
    /// labels and the matching container for pod-backed ones; the pod's other container ports.
    fn endpoints_targets(&self) -> Vec<BTreeMap<String, String>> {
        let group = [meta("endpoints", &self.endpoints), self.web_labels()].concat();
        let port = [
            ("__meta_kubernetes_endpoint_port_name", "http"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ];
        let mut out = vec![
            expect(
                &[
                    &port[..],
                    &[
                        ("__address__", "10.1.0.7:8080"),
                        ("__meta_kubernetes_endpoint_ready", "true"),
                        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
                        ("__meta_kubernetes_endpoint_address_target_name", "web-0"),
                        ("__meta_kubernetes_endpoint_node_name", "node-a"),
                        ("__meta_kubernetes_endpoint_hostname", "web-0"),
                    ],
                ]
                .concat(),
                &[
                    group.clone(),
                    self.pod_labels(),
                    self.web0_port("http", "8080", "false"),
                ],
            ),
            expect(
                &[
                    &port[..],
                    &[
                        ("__address__", "10.1.0.9:8080"),
                        ("__meta_kubernetes_endpoint_ready", "true"),
                    ],
                ]
                .concat(),
                std::slice::from_ref(&group),
            ),
            // web-1 is not in the store: no pod labels.
            expect(
                &[
                    &port[..],
                    &[
                        ("__address__", "10.1.0.8:8080"),
                        ("__meta_kubernetes_endpoint_ready", "false"),
                        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
                        ("__meta_kubernetes_endpoint_address_target_name", "web-1"),
                        ("__meta_kubernetes_endpoint_node_name", "node-b"),
                    ],
                ]
                .concat(),
                std::slice::from_ref(&group),
            ),
            expect(
                &[("__address__", "10.1.0.7:9102")],
                &[
                    group.clone(),
                    self.pod_labels(),
                    self.web0_port("metrics", "9102", "false"),
                ],
            ),
            expect(
                &[("__address__", "10.1.0.7:5140")],
                &[group, self.pod_labels(), self.web0_port("syslog", "5140", "true")],
            ),
        ];
        out.sort();
        out
    }

    /// EndpointSlice role: one target per endpoint address and port with its conditions, zone,
    /// node and target; pod labels as for endpoints.
    fn endpointslice_targets(&self) -> Vec<BTreeMap<String, String>> {
        let group = [
            meta("endpointslice", &self.slice),
            self.web_labels(),
            vec![("__meta_kubernetes_endpointslice_address_type".into(), "IPv4".into())],
        ]
        .concat();
        let port = [
            ("__meta_kubernetes_endpointslice_port", "8080"),
            ("__meta_kubernetes_endpointslice_port_name", "http"),
            ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
            ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
        ];
        let mut out = vec![
            expect(
                &[
                    &port[..],
                    &[
                        ("__address__", "10.1.0.7:8080"),
                        ("__meta_kubernetes_endpointslice_endpoint_conditions_ready", "true"),
                        ("__meta_kubernetes_endpointslice_endpoint_conditions_serving", "true"),
                        (
                            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
                            "false",
                        ),
                        ("__meta_kubernetes_endpointslice_endpoint_hostname", "web-0"),
                        ("__meta_kubernetes_endpointslice_endpoint_node_name", "node-a"),
                        ("__meta_kubernetes_endpointslice_endpoint_zone", "z1"),
                        ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
                        ("__meta_kubernetes_endpointslice_address_target_name", "web-0"),
                    ],
                ]
                .concat(),
                &[
                    group.clone(),
                    self.pod_labels(),
                    self.web0_port("http", "8080", "false"),
                ],
            ),
            expect(
                &[
                    &port[..],
                    &[
                        ("__address__", "10.1.0.8:8080"),
                        ("__meta_kubernetes_endpointslice_endpoint_conditions_ready", "false"),
                        ("__meta_kubernetes_endpointslice_endpoint_conditions_serving", "false"),
                        (
                            "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
                            "true",
                        ),
                    ],
                ]
                .concat(),
                std::slice::from_ref(&group),
            ),
            expect(
                &[("__address__", "10.1.0.7:9102")],
                &[
                    group.clone(),
                    self.pod_labels(),
                    self.web0_port("metrics", "9102", "false"),
                ],
            ),
            expect(
                &[("__address__", "10.1.0.7:5140")],
                &[group, self.pod_labels(), self.web0_port("syslog", "5140", "true")],
            ),
        ];
        out.sort();
        out
    }

    /// Ingress role: one target per rule host and path (`/` for a rule without paths),
    /// `https` when a TLS host (wildcards too) covers the rule's host.
    fn ingress_targets(&self) -> Vec<BTreeMap<String, String>> {
        let group = meta("ingress", &self.ingress);
        let target = |host: &str, path: &str, scheme: &str| {
            expect(
                &[
                    ("__address__", host),
                    ("__meta_kubernetes_namespace", "shop"),
                    ("__meta_kubernetes_ingress_class_name", "nginx"),
                    ("__meta_kubernetes_ingress_host", host),
                    ("__meta_kubernetes_ingress_path", path),
                    ("__meta_kubernetes_ingress_scheme", scheme),
                ],
                std::slice::from_ref(&group),
            )
        };
        let mut out = vec![
            target("shop.example.com", "/", "https"),
            target("shop.example.com", "/api", "https"),
            target("admin.example.org", "/", "http"),
        ];
        out.sort();
        out
    }
}

/// fake API server (node, services, pods, endpoints, endpointslice, ingress)
///   ──list/watch──► trawl-agent: one job per role ──► /api/v1/targets discoveredLabels
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_labels_of_every_role_match_prometheus() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    let fixture = Fixture::new();
    fixture.apply(&api)?;
    let jobs: String = ["node", "service", "pod", "endpoints", "endpointslice", "ingress"]
        .iter()
        .map(|role| {
            format!(
                "\n  - job_name: {role}\n    kubernetes_sd_configs: [{{role: {role}, api_server: '{}'}}]\n    \
                 relabel_configs: [{{source_labels: [__meta_kubernetes_pod_container_name], target_label: container}}, \
                 {{source_labels: [__meta_kubernetes_ingress_path], target_label: path}}]",
                api.url()
            )
        })
        .collect();
    // Port-less containers of one pod, and paths of one ingress host, share an address: the
    // container and path labels keep them apart (the scrape pool, as Prometheus's, merges
    // targets with equal labels). Scraping is not the
    // point here (the addresses are not real): scrape once an hour.
    let config = format!("global:\n  scrape_interval: 1h\nscrape_configs:{jobs}\n");
    let (agent, url) = trawl_agent(dir.path(), &config).await?;

    let tables = [
        ("node", fixture.node_targets()),
        ("service", fixture.service_targets()),
        ("pod", fixture.pod_targets()),
        ("endpoints", fixture.endpoints_targets()),
        ("endpointslice", fixture.endpointslice_targets()),
        ("ingress", fixture.ingress_targets()),
    ];
    for (job, want) in tables {
        let got = eventually(&format!("{job}: {} targets", want.len()), SETTLE, || async {
            let got = discovered(&url, job).await?;
            if got.len() == want.len() {
                return Ok(Some(got));
            }
            bail!("got {} targets: {got:#?}", got.len())
        })
        .await
        .with_context(|| agent.log())?;
        for (g, w) in got.iter().zip(&want) {
            let missing: BTreeMap<_, _> = w.iter().filter(|(k, v)| g.get(*k) != Some(v)).collect();
            let extra: BTreeMap<_, _> = g.iter().filter(|(k, _)| !w.contains_key(*k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{job} target {}: missing or different {missing:#?}\nunexpected {extra:#?}\ngot {g:#?}",
                w.get("__address__").map_or("?", String::as_str)
            );
        }
    }
    Ok(())
}

/// token file ─► trawl-agent ──list/watch (Bearer token-N)──► fake API server (accepts token-N)
///                    └──scrape──► a-0, a-1, a-2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_keeps_discovery_going() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = Options {
        tokens: vec!["token-1".into()],
        ..Options::default()
    };
    let api = KubeApi::start_with(options).await?;
    let token = dir.path().join("token");
    write_token(&token, "token-1")?;
    let (t0, t1, t2) = (target("a-0").await?, target("a-1").await?, target("a-2").await?);
    api.apply(scraped_pod("a-0", "node-a", &t0))?;
    let job = pod_job("pods", &api, &format!("        bearer_token_file: {}", token.display()));
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&job, "")).await?;
    wait_pods(&url, "pods", &["a-0"]).await.with_context(|| agent.log())?;
    assert!(
        api.requests()
            .iter()
            .all(|r| r.token.as_deref() == Some("token-1") && r.status != 401)
    );

    // Graceful rotation: the new token is written, the server then drops the old one and
    // restarts (cutting the watch); the agent reconnects with the new token.
    write_token(&token, "token-2")?;
    api.set_tokens(["token-2"]);
    api.clear_requests();
    api.restart().await?;
    api.apply(scraped_pod("a-1", "node-a", &t1))?;
    wait_pods(&url, "pods", &["a-0", "a-1"])
        .await
        .with_context(|| agent.log())?;
    let after = api.requests();
    assert!(
        after
            .iter()
            .any(|r| r.verb == Verb::Watch && r.token.as_deref() == Some("token-2")),
        "{after:?}"
    );
    assert!(after.iter().all(|r| r.status != 401), "{after:?}");

    // Abrupt rotation: the server only takes token-3 before the file has it; requests fail with
    // 401, the targets stay; once the file is rewritten, discovery recovers by itself.
    api.set_tokens(["token-3"]);
    api.restart().await?;
    wait_failures(&url, "pod", "unauthorized", 1.0)
        .await
        .with_context(|| agent.log())?;
    assert_eq!(pods(&url, "pods").await?, ["a-0", "a-1"]);
    write_token(&token, "token-3")?;
    api.apply(scraped_pod("a-2", "node-a", &t2))?;
    eventually("a-2 after the token is fixed", Duration::from_secs(90), || async {
        Ok((pods(&url, "pods").await? == ["a-0", "a-1", "a-2"]).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;
    Ok(())
}

/// fake API server ──restart / outage + compaction (410 Gone)──► trawl-agent ──scrape──► p-*
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_410_gone_lose_and_duplicate_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    let mut servers = Vec::new();
    for i in 0..5 {
        servers.push(target(&format!("p-{i}")).await?);
    }
    for (i, server) in servers.iter().enumerate().take(3) {
        api.apply(scraped_pod(&format!("p-{i}"), "node-a", server))?;
    }
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&pod_job("pods", &api, ""), "")).await?;
    wait_pods(&url, "pods", &["p-0", "p-1", "p-2"])
        .await
        .with_context(|| agent.log())?;

    // A restart cuts the watch; it resumes from its resourceVersion (no relist needed).
    api.restart().await?;
    api.apply(scraped_pod("p-3", "node-a", &servers[3]))?;
    wait_pods(&url, "pods", &["p-0", "p-1", "p-2", "p-3"])
        .await
        .with_context(|| agent.log())?;

    // An outage during which pods change and history is compacted: the agent keeps its
    // targets meanwhile, resumes with a stale version, gets 410 Gone, relists, and ends with
    // exactly the current pods.
    api.set_unreachable(true).await?;
    api.delete(Resource::Pods, "shop", "p-0")?;
    api.apply(scraped_pod("p-4", "node-a", &servers[4]))?;
    api.apply(with_label(scraped_pod("p-1", "node-a", &servers[1]), "version", "2"))?;
    api.compact();
    wait_failures(&url, "pod", "unreachable", 1.0)
        .await
        .with_context(|| agent.log())?;
    assert_eq!(
        pods(&url, "pods").await?,
        ["p-0", "p-1", "p-2", "p-3"],
        "targets kept during the outage"
    );
    let lists_before = api.count(Verb::List, Resource::Pods);
    api.set_unreachable(false).await?;
    wait_pods(&url, "pods", &["p-1", "p-2", "p-3", "p-4"])
        .await
        .with_context(|| agent.log())?;
    wait_failures(&url, "pod", "expired", 1.0)
        .await
        .with_context(|| agent.log())?;
    assert!(
        api.count(Verb::List, Resource::Pods) > lists_before,
        "relisted after 410"
    );
    let p1 = targets(&url, "pods").await?;
    let p1 = p1.iter().find(|t| t["labels"]["pod"] == "p-1").context("p-1")?;
    assert_eq!(p1["labels"]["version"], "2", "the update made while down: {p1}");

    // Compaction with an open watch: 410, relist, the same targets once each.
    api.compact();
    wait_failures(&url, "pod", "expired", 2.0)
        .await
        .with_context(|| agent.log())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pods(&url, "pods").await?, ["p-1", "p-2", "p-3", "p-4"]);
    Ok(())
}

/// `object` with the label `name: value` added (an update of a built object).
fn with_label(mut object: Value, name: &str, value: &str) -> Value {
    object["metadata"]["labels"][name] = value.into();
    object
}

/// fake API server (down at start, then up) ──► trawl-agent ──scrape──► a-0
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_unreachable_at_start_then_coming_up() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    api.set_unreachable(true).await?;
    let t0 = target("a-0").await?;
    api.apply(scraped_pod("a-0", "node-a", &t0))?;
    let (mut agent, url) = trawl_agent(dir.path(), &agent_config(&pod_job("pods", &api, ""), "")).await?;
    wait_failures(&url, "pod", "unreachable", 1.0)
        .await
        .with_context(|| agent.log())?;
    agent.check_running()?;
    assert!(pods(&url, "pods").await?.is_empty());

    api.set_unreachable(false).await?;
    eventually("a-0 once the API server is up", Duration::from_secs(90), || async {
        Ok((pods(&url, "pods").await? == ["a-0"]).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;
    Ok(())
}

/// fake API server (pods: 403 Forbidden for a while) ──► trawl-agent ──scrape──► a-0 (kept), a-1
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusal_is_reported_and_existing_targets_keep_being_scraped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    let (t0, t1) = (target("a-0").await?, target("a-1").await?);
    api.apply(scraped_pod("a-0", "node-a", &t0))?;
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&pod_job("pods", &api, ""), "")).await?;
    wait_pods(&url, "pods", &["a-0"]).await.with_context(|| agent.log())?;

    api.forbid(Resource::Pods);
    api.restart().await?;
    wait_failures(&url, "pod", "forbidden", 1.0)
        .await
        .with_context(|| agent.log())?;
    let log = agent.log();
    assert!(
        log.contains("RBAC") && log.contains("pods"),
        "no RBAC hint in the log:\n{log}"
    );

    // The existing target is still scraped: its last scrape moves on and it is up.
    let last_scrape = || async {
        let t = targets(&url, "pods").await?;
        let t = t.first().context("no target")?;
        Ok::<_, anyhow::Error>((
            t["lastScrape"].as_str().unwrap_or_default().to_owned(),
            t["health"].clone(),
        ))
    };
    let (before, _) = last_scrape().await?;
    eventually("a new scrape of a-0 while forbidden", SETTLE, || async {
        let (now, health) = last_scrape().await?;
        Ok((now != before && health == "up").then_some(()))
    })
    .await?;

    // Once RBAC allows it again, discovery recovers by itself.
    api.allow(Resource::Pods);
    api.apply(scraped_pod("a-1", "node-a", &t1))?;
    eventually("a-1 after RBAC allows pods", Duration::from_secs(90), || async {
        Ok((pods(&url, "pods").await? == ["a-0", "a-1"]).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;
    Ok(())
}

/// fake API server (a-0, a malformed pod; later garbage on the watch) ──► trawl-agent ──► a-*
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_objects_are_skipped_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    let (t0, t1, t2) = (target("a-0").await?, target("a-1").await?, target("a-2").await?);
    api.apply(scraped_pod("a-0", "node-a", &t0))?;
    api.apply(objects::malformed_pod("shop", "broken-0", "node-a"))?;
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&pod_job("pods", &api, ""), "")).await?;
    wait_pods(&url, "pods", &["a-0"]).await.with_context(|| agent.log())?;
    wait_failures(&url, "pod", "malformed", 1.0)
        .await
        .with_context(|| agent.log())?;

    // On the watch too: a malformed pod, a garbled line, then good pods.
    api.apply(objects::malformed_pod("shop", "broken-1", "node-a"))?;
    api.inject_watch_line(Resource::Pods, r#"{"type":"ADDED","object":42}"#);
    api.apply(scraped_pod("a-1", "node-a", &t1))?;
    wait_pods(&url, "pods", &["a-0", "a-1"])
        .await
        .with_context(|| agent.log())?;
    wait_failures(&url, "pod", "malformed", 2.0)
        .await
        .with_context(|| agent.log())?;

    // A good pod turning malformed does not stop discovery: a later good pod still comes.
    api.apply(objects::malformed_pod("shop", "a-0", "node-a"))?;
    api.apply(scraped_pod("a-2", "node-a", &t2))?;
    eventually("a-2 discovered", SETTLE, || async {
        Ok(pods(&url, "pods").await?.contains(&"a-2".to_owned()).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;
    Ok(())
}

/// fake API server ◄──one LIST + one WATCH of pods── trawl-agent (jobs pods-a, pods-b, and after
///                                                   a reload pods-c, with equal configs)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sharing_a_config_share_one_watch() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start().await?;
    let t0 = target("a-0").await?;
    api.apply(scraped_pod("a-0", "node-a", &t0))?;
    let two = format!("{}{}", pod_job("pods-a", &api, ""), pod_job("pods-b", &api, ""));
    let (agent, url) = trawl_agent(dir.path(), &agent_config(&two, "")).await?;
    wait_pods(&url, "pods-a", &["a-0"]).await.with_context(|| agent.log())?;
    wait_pods(&url, "pods-b", &["a-0"]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.open_watches(Resource::Pods), 1);
    assert_eq!(
        (
            api.count(Verb::List, Resource::Pods),
            api.count(Verb::Watch, Resource::Pods)
        ),
        (1, 1)
    );

    // A reload that adds a third job with the same config keeps the watch: no new LIST or WATCH.
    let three = format!("{two}{}", pod_job("pods-c", &api, ""));
    std::fs::write(dir.path().join("agent.yml"), agent_config(&three, ""))?;
    let reload = http_client().post(format!("{url}/-/reload")).send().await?;
    assert!(reload.status().is_success(), "reload: {}", reload.status());
    wait_pods(&url, "pods-c", &["a-0"]).await.with_context(|| agent.log())?;
    assert_eq!(api.open_watches(Resource::Pods), 1);
    assert_eq!(
        (
            api.count(Verb::List, Resource::Pods),
            api.count(Verb::Watch, Resource::Pods)
        ),
        (1, 1)
    );
    Ok(())
}
