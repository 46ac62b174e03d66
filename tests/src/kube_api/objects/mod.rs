//! Builders of objects shaped like a real cluster's JSON (`kubectl get -o json` of a v1.33
//! cluster: uid, creationTimestamp, managedFields, full status), for [`super::KubeApi::apply`].
//!
//! ```
//! use trawl_e2e::kube_api::objects::{Build, Container, Pod};
//! let pod = Pod::new("shop", "web-0")
//!     .node("node-a")
//!     .ip("10.1.0.7")
//!     .container(Container::new("app", "ghcr.io/acme/web:1.4").port("http", 8080).port("metrics", 9102))
//!     .label("app", "web")
//!     .annotation("prometheus.io/scrape", "true")
//!     .build();
//! assert_eq!(pod["spec"]["containers"][0]["ports"][1]["containerPort"], 9102);
//! ```

use std::collections::BTreeMap;

use serde_json::{Value, json};

mod endpoints;
mod ingress;
mod node;
mod pod;
mod service;

pub use endpoints::{Address, EndpointSlice, Endpoints};
pub use ingress::Ingress;
pub use node::Node;
pub use pod::{Container, Pod};
pub use service::Service;

/// The creation time of every built object (fixed: tests compare JSON).
const CREATED: &str = "2025-06-02T09:14:07Z";

/// The metadata every object carries.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    namespace: Option<String>,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owners: Vec<Value>,
}

impl Meta {
    fn new(namespace: Option<&str>, name: &str) -> Meta {
        Meta {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            ..Meta::default()
        }
    }

    /// `metadata` as the API server returns it; `manager` names the managedFields writer.
    fn to_json(&self, kind: &str, manager: &str) -> Value {
        let mut meta = json!({
            "name": self.name,
            "uid": uid(kind, self.namespace.as_deref().unwrap_or(""), &self.name),
            "creationTimestamp": CREATED,
            "managedFields": [{
                "manager": manager,
                "operation": "Update",
                "apiVersion": "v1",
                "time": CREATED,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {}},
            }],
        });
        if let Some(ns) = &self.namespace {
            meta["namespace"] = ns.clone().into();
        }
        if !self.labels.is_empty() {
            meta["labels"] = json!(self.labels);
        }
        if !self.annotations.is_empty() {
            meta["annotations"] = json!(self.annotations);
        }
        if !self.owners.is_empty() {
            meta["ownerReferences"] = self.owners.clone().into();
        }
        meta
    }
}

/// What every builder offers: metadata setters and the final JSON.
pub trait Build: Sized {
    /// The metadata being built.
    fn meta(&mut self) -> &mut Meta;

    /// The object's JSON, with `apiVersion` and `kind`.
    fn build(&self) -> Value;

    /// Adds the label `name: value`.
    fn label(mut self, name: &str, value: &str) -> Self {
        self.meta().labels.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds the annotation `name: value`.
    fn annotation(mut self, name: &str, value: &str) -> Self {
        self.meta().annotations.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds the controlling owner `kind`/`name` (`ReplicaSet`, `DaemonSet`, `StatefulSet`,
    /// `Job`, `Node` for static pods, `Service` for EndpointSlices, …).
    fn owner(mut self, kind: &str, name: &str) -> Self {
        let api_version = match kind {
            "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Deployment" => "apps/v1",
            "Job" | "CronJob" => "batch/v1",
            _ => "v1",
        };
        self.meta().owners.push(json!({
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "uid": uid(kind, "", name),
            "controller": true,
            "blockOwnerDeletion": true,
        }));
        self
    }
}

/// A deterministic UUID-shaped uid for an object (FNV-1a of kind, namespace and name), so tests
/// can predict `__meta_kubernetes_pod_uid`.
pub fn uid(kind: &str, namespace: &str, name: &str) -> String {
    let hash = |seed: u64| {
        format!("{kind}/{namespace}/{name}")
            .bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    };
    let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x84222325_cbf29ce4));
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A namespace, `Active`, with the `kubernetes.io/metadata.name` label every namespace has.
pub fn namespace(name: &str) -> Value {
    let mut meta = Meta::new(None, name);
    meta.labels.insert("kubernetes.io/metadata.name".into(), name.into());
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta.to_json("Namespace", "kubectl-create"),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// A pod on `node` that cannot be decoded as a `v1.Pod` (containers is a string, the IP a
/// number) but has valid metadata and `spec.nodeName`, so the server stores it and serves it to
/// node-local watches too: a discoverer must skip it alone.
pub fn malformed_pod(namespace: &str, name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": Meta::new(Some(namespace), name).to_json("Pod", "kubelet"),
        "spec": {"containers": "app:8080", "nodeName": node},
        "status": {"phase": "Running", "podIP": 1234},
    })
}

/// 64 hex digits derived from `seed` (container and image ids).
fn hex64(seed: &str) -> String {
    (0..4)
        .map(|i| uid(seed, "", &i.to_string()).replace('-', "")[..16].to_owned())
        .collect()
}

#[cfg(test)]
mod tests;
