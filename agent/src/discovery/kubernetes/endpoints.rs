//! `role: endpoints`, as Prometheus `discovery/kubernetes/endpoints.go`: one target per address
//! and port of each subset (ready addresses, then not-ready ones), joined with the Service of the
//! same name and with the Pods the addresses point to; container ports of those pods that no
//! address used become targets too.
//!
//! Group labels: `__meta_kubernetes_namespace`, `_endpoints_name`, `_endpoints_label*`,
//! `_endpoints_annotation*`, and the service's labels (see [`super::service::service_labels`]).
//! Target labels: `__address__`, `_endpoint_port_name`, `_endpoint_port_protocol`,
//! `_endpoint_ready`, `_endpoint_address_target_kind/_name`, `_endpoint_node_name`,
//! `_endpoint_hostname`; the pod's labels and its matching container's for pod-backed targets;
//! the node's labels with `attach_metadata: {node: true}`.

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};
use trawl_model::labels::{ADDRESS, Labels};

use super::meta::{
    JoinOptions, Lookup, NAMESPACE_LABEL, add_object_meta_labels, join_host_port, merge, named_group, namespaced_source,
};
use super::meta::{node_ref_name, resolve_pod};
use super::pod::{BackingPods, PortProtocol};
use super::service::service_labels;
use crate::discovery::TargetGroup;

const PORT_NAME: &str = "__meta_kubernetes_endpoint_port_name";
const PORT_PROTOCOL: &str = "__meta_kubernetes_endpoint_port_protocol";
const READY: &str = "__meta_kubernetes_endpoint_ready";
const TARGET_KIND: &str = "__meta_kubernetes_endpoint_address_target_kind";
const TARGET_NAME: &str = "__meta_kubernetes_endpoint_address_target_name";
const NODE_NAME: &str = "__meta_kubernetes_endpoint_node_name";
const HOSTNAME: &str = "__meta_kubernetes_endpoint_hostname";

/// The source of an endpoints object's group, `"endpoints/<namespace>/<name>"`, as Prometheus
/// `endpointsSourceFromNamespaceAndName`; also used for the empty group sent on deletion.
pub(crate) fn source(namespace: &str, name: &str) -> String {
    namespaced_source("endpoints", namespace, name)
}

/// The target group of `ep`, as Prometheus `Endpoints.buildEndpoints`, joined through `lookup`.
///
/// With `opts.node_name` (node-local mode), an address is kept only when its `nodeName` (or,
/// without one, its `Node` target) is that node. An endpoints object without a name gives an
/// empty group; one without subsets a group with labels and no targets.
pub(crate) fn group(ep: &Endpoints, lookup: &dyn Lookup, opts: &JoinOptions) -> TargetGroup {
    let (mut group, namespace, name) = match named_group(&ep.metadata, source) {
        Ok(named) => named,
        Err(empty) => return empty,
    };
    group.labels.set(NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    if let Some(svc) = lookup.service(namespace, name) {
        merge(&mut group.labels, &service_labels(svc));
    }
    add_object_meta_labels(&mut group.labels, &ep.metadata, "endpoints");

    let mut pods = BackingPods::default();
    for subset in ep.subsets.iter().flatten() {
        let ready = subset.addresses.iter().flatten().map(|a| (a, "true"));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, "false"));
        let addresses: Vec<_> = ready.chain(not_ready).collect();
        for port in subset.ports.iter().flatten() {
            for &(addr, ready) in &addresses {
                // Prometheus's node of an address: its nodeName, else its Node target.
                let node = addr
                    .node_name
                    .as_deref()
                    .or_else(|| node_ref_name(addr.target_ref.as_ref()));
                if !opts.keeps(node) {
                    continue;
                }
                let mut target = address_labels(addr, port, ready);
                opts.attach(&mut target, lookup, node);
                if let Some(pod) = resolve_pod(lookup, addr.target_ref.as_ref()) {
                    let protocol = PortProtocol::Endpoint(port.protocol.as_deref());
                    pods.add(pod, Some(port.port), protocol, &mut target);
                }
                group.targets.push(target);
            }
        }
    }
    pods.push_unused_port_targets(&mut group.targets);
    group
}

/// The labels of one address and port, before any join.
fn address_labels(addr: &EndpointAddress, port: &EndpointPort, ready: &str) -> Labels {
    let mut target = Labels::new();
    target.set(ADDRESS.to_owned(), join_host_port(&addr.ip, port.port));
    target.set(PORT_NAME.to_owned(), port.name.clone().unwrap_or_default());
    target.set(PORT_PROTOCOL.to_owned(), port.protocol.clone().unwrap_or_default());
    target.set(READY.to_owned(), ready.to_owned());
    if let Some(target_ref) = &addr.target_ref {
        target.set(TARGET_KIND.to_owned(), target_ref.kind.clone().unwrap_or_default());
        target.set(TARGET_NAME.to_owned(), target_ref.name.clone().unwrap_or_default());
    }
    if let Some(node_name) = &addr.node_name {
        target.set(NODE_NAME.to_owned(), node_name.clone());
    }
    if let Some(hostname) = &addr.hostname {
        target.set(HOSTNAME.to_owned(), hostname.clone());
    }
    target
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
