//! Fixtures for the role builders' tests: objects from JSON (as the API server sends them), the
//! objects of Prometheus's `discovery/kubernetes/*_test.go`, and an in-memory [`Lookup`].

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use trawl_model::labels::Labels;

use super::Lookup;

/// Deserializes a Kubernetes object; panics (test only) when the JSON does not fit the type.
pub(crate) fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture matches the Kubernetes type")
}

/// A label set from pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// `labels` plus `extra` (extra wins).
pub(crate) fn with(base: &Labels, extra: &[(&str, &str)]) -> Labels {
    let mut out = base.clone();
    for (name, value) in extra {
        out.set((*name).to_owned(), (*value).to_owned());
    }
    out
}

/// Prometheus `makeNode`: a node with one InternalIP address and kubelet port 10250.
pub(crate) fn node(name: &str, address: &str, node_labels: Value, annotations: Value) -> Node {
    object(json!({
        "metadata": {"name": name, "labels": node_labels, "annotations": annotations},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }))
}

/// The pod of Prometheus `TestEndpointsDiscoveryAdd`: containers c1 (9000 mainport) and c2 (9001
/// sideport), pod IP 1.2.3.4, host IP 2.3.4.5, no phase nor conditions.
pub(crate) fn two_container_pod(namespace: &str) -> Pod {
    object(json!({
        "metadata": {"name": "testpod", "namespace": namespace, "uid": "deadbeef"},
        "spec": {
            "nodeName": "testnode",
            "containers": [
                {"name": "c1", "image": "c1:latest",
                 "ports": [{"name": "mainport", "containerPort": 9000, "protocol": "TCP"}]},
                {"name": "c2", "image": "c2:latest",
                 "ports": [{"name": "sideport", "containerPort": 9001, "protocol": "TCP"}]},
            ],
        },
        "status": {"hostIP": "2.3.4.5", "podIP": "1.2.3.4"},
    }))
}

/// The pod labels Prometheus expects for [`two_container_pod`] (with `ip` as pod IP).
pub(crate) fn two_container_pod_labels(ip: &str) -> Labels {
    labels(&[
        ("__meta_kubernetes_pod_name", "testpod"),
        ("__meta_kubernetes_pod_ip", ip),
        ("__meta_kubernetes_pod_ready", "unknown"),
        ("__meta_kubernetes_pod_node_name", "testnode"),
        ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
        ("__meta_kubernetes_pod_uid", "deadbeef"),
    ])
}

/// An in-memory [`Lookup`] over a few objects.
#[derive(Default)]
pub(crate) struct Store {
    /// Pods, found by namespace and name.
    pub pods: Vec<Pod>,
    /// Services, found by namespace and name.
    pub services: Vec<Service>,
    /// Nodes, found by name.
    pub nodes: Vec<Node>,
}

fn is(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, namespace: &str, name: &str) -> bool {
    meta.namespace.as_deref().unwrap_or_default() == namespace && meta.name.as_deref() == Some(name)
}

impl Lookup for Store {
    fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| is(&p.metadata, namespace, name))
    }
    fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| is(&s.metadata, namespace, name))
    }
    fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(name))
    }
}
