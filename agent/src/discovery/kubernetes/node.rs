//! `role: node`, as Prometheus `discovery/kubernetes/node.go`: one target per node, at the
//! kubelet's port on the node's preferred address.
//!
//! Group labels: `__meta_kubernetes_node_name`, `_node_provider_id`, `_node_label*`,
//! `_node_annotation*`. Target labels: `__address__`, `instance` (the node name) and
//! `__meta_kubernetes_node_address_<type>` (the first address of each type).

use k8s_openapi::api::core::v1::Node;
use trawl_model::labels::{ADDRESS, INSTANCE, Labels};

use super::meta::{add_object_meta_labels, join_host_port, prefixed_name};
use crate::discovery::TargetGroup;

const PROVIDER_ID: &str = "__meta_kubernetes_node_provider_id";
const ADDRESS_PREFIX: &str = "__meta_kubernetes_node_address_";

/// Address types in the order the target address is chosen from, as Prometheus `nodeAddress`
/// (after `k8s.io/kubernetes/pkg/util/node`).
const ADDRESS_PRIORITY: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// The source of a node's group, `"node/<name>"`, as Prometheus `nodeSourceFromName`; also used
/// for the empty group sent when the node is deleted.
pub(crate) fn source(name: &str) -> String {
    format!("node/{name}")
}

/// The target group of `node`, as Prometheus `Node.buildNode`.
///
/// A node without a name gives an empty group. A node without any usable address gives a group
/// with its labels and no target (Prometheus sends nothing then, keeping the node's previous
/// target; an empty group lets it go stale instead).
pub(crate) fn group(node: &Node) -> TargetGroup {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let mut group = TargetGroup {
        source: source(name),
        ..TargetGroup::default()
    };
    if name.is_empty() {
        return group;
    }

    if let Some(provider_id) = node.spec.as_ref().and_then(|s| s.provider_id.clone()) {
        group.labels.set(PROVIDER_ID.to_owned(), provider_id);
    }
    add_object_meta_labels(&mut group.labels, &node.metadata, "node");

    let status = node.status.as_ref();
    let addresses = status.and_then(|s| s.addresses.as_deref()).unwrap_or_default();
    let first_of = |kind: &str| addresses.iter().find(|a| a.type_ == kind).map(|a| a.address.as_str());
    let Some(host) = ADDRESS_PRIORITY.iter().find_map(|kind| first_of(kind)) else {
        return group;
    };
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |k| k.port);

    let mut target = Labels::new();
    target.set(ADDRESS.to_owned(), join_host_port(host, port));
    target.set(INSTANCE.to_owned(), name.to_owned());
    for (i, address) in addresses.iter().enumerate() {
        // The first address of each type wins.
        if addresses[..i].iter().all(|earlier| earlier.type_ != address.type_) {
            target.set(prefixed_name(ADDRESS_PREFIX, &address.type_), address.address.clone());
        }
    }
    group.targets.push(target);
    group
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
