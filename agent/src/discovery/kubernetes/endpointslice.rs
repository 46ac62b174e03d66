//! `role: endpointslice`, as Prometheus `discovery/kubernetes/endpointslice.go`
//! (`discovery.k8s.io/v1`): one target per endpoint, port and address, joined with the Service
//! named by the `kubernetes.io/service-name` label and with the Pods the endpoints point to;
//! container ports of those pods that no endpoint used become targets too.
//!
//! Group labels: `__meta_kubernetes_namespace`, `_endpointslice_name`,
//! `_endpointslice_address_type`, `_endpointslice_label*`, `_endpointslice_annotation*`, and the
//! service's labels. Target labels: `__address__`, `_endpointslice_port`, `_port_name`,
//! `_port_protocol`, `_port_app_protocol`, `_endpointslice_endpoint_conditions_ready/_serving/
//! _terminating`, `_endpoint_hostname`, `_endpoint_node_name`, `_endpoint_zone`,
//! `_endpoint_topology_*` and `_endpoint_topology_present_*` (deprecated topology),
//! `_address_target_kind/_name`; the pod's and container's labels for pod-backed targets; the
//! node's labels with `attach_metadata: {node: true}`.

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use trawl_model::labels::{ADDRESS, Labels};

use super::meta::{
    JoinOptions, Lookup, NAMESPACE_LABEL, add_map, add_object_meta_labels, join_host_port, merge, named_group,
};
use super::meta::{namespaced_source, node_ref_name, resolve_pod};
use super::pod::{BackingPods, PortProtocol};
use super::service::service_labels;
use crate::discovery::TargetGroup;

/// The label of an EndpointSlice naming its Service, as `discovery/v1.LabelServiceName`.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

const ADDRESS_TYPE: &str = "__meta_kubernetes_endpointslice_address_type";
const PORT: &str = "__meta_kubernetes_endpointslice_port";
const PORT_NAME: &str = "__meta_kubernetes_endpointslice_port_name";
const PORT_PROTOCOL: &str = "__meta_kubernetes_endpointslice_port_protocol";
const PORT_APP_PROTOCOL: &str = "__meta_kubernetes_endpointslice_port_app_protocol";
const READY: &str = "__meta_kubernetes_endpointslice_endpoint_conditions_ready";
const SERVING: &str = "__meta_kubernetes_endpointslice_endpoint_conditions_serving";
const TERMINATING: &str = "__meta_kubernetes_endpointslice_endpoint_conditions_terminating";
const HOSTNAME: &str = "__meta_kubernetes_endpointslice_endpoint_hostname";
const NODE_NAME: &str = "__meta_kubernetes_endpointslice_endpoint_node_name";
const ZONE: &str = "__meta_kubernetes_endpointslice_endpoint_zone";
const TARGET_KIND: &str = "__meta_kubernetes_endpointslice_address_target_kind";
const TARGET_NAME: &str = "__meta_kubernetes_endpointslice_address_target_name";
const TOPOLOGY_PREFIX: &str = "__meta_kubernetes_endpointslice_endpoint_topology_";
const TOPOLOGY_PRESENT_PREFIX: &str = "__meta_kubernetes_endpointslice_endpoint_topology_present_";

/// The source of an EndpointSlice's group, `"endpointslice/<namespace>/<name>"`, as Prometheus
/// `endpointSliceSourceFromNamespaceAndName`; also used for the empty group sent on deletion.
pub(crate) fn source(namespace: &str, name: &str) -> String {
    namespaced_source("endpointslice", namespace, name)
}

/// The target group of `es`, as Prometheus `EndpointSlice.buildEndpointSlice`, joined through
/// `lookup`.
///
/// With `opts.node_name` (node-local mode), an endpoint is kept only when its `Node` target (or,
/// without one, its `nodeName`) is that node. A slice without a name gives an empty group; one
/// without ports or endpoints a group with labels and no targets.
pub(crate) fn group(es: &EndpointSlice, lookup: &dyn Lookup, opts: &JoinOptions) -> TargetGroup {
    let (mut group, namespace, _) = match named_group(&es.metadata, source) {
        Ok(named) => named,
        Err(empty) => return empty,
    };
    group.labels.set(NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    group.labels.set(ADDRESS_TYPE.to_owned(), es.address_type.clone());
    add_object_meta_labels(&mut group.labels, &es.metadata, "endpointslice");
    let service_name = es.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
    if let Some(svc) = service_name.and_then(|svc| lookup.service(namespace, svc)) {
        merge(&mut group.labels, &service_labels(svc));
    }

    let ports = es.ports.as_deref().unwrap_or_default();
    let mut pods = BackingPods::default();
    for endpoint in &es.endpoints {
        // Prometheus's node of an endpoint: its Node target, else its nodeName.
        let node = node_ref_name(endpoint.target_ref.as_ref()).or(endpoint.node_name.as_deref());
        if !opts.keeps(node) {
            continue;
        }
        let pod = resolve_pod(lookup, endpoint.target_ref.as_ref());
        for port in ports {
            for addr in &endpoint.addresses {
                let mut target = endpoint_labels(addr, endpoint, port);
                opts.attach(&mut target, lookup, node);
                if let Some(pod) = pod {
                    pods.add(pod, port.port, PortProtocol::Container, &mut target);
                }
                group.targets.push(target);
            }
        }
    }
    pods.push_unused_port_targets(&mut group.targets);
    group
}

/// The labels of one address of `endpoint` on `port`, before any join.
fn endpoint_labels(addr: &str, endpoint: &Endpoint, port: &EndpointPort) -> Labels {
    let mut target = Labels::new();
    let mut set = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            target.set(name.to_owned(), value);
        }
    };
    set(
        ADDRESS,
        Some(port.port.map_or_else(|| addr.to_owned(), |p| join_host_port(addr, p))),
    );
    set(PORT_NAME, port.name.clone());
    set(PORT_PROTOCOL, port.protocol.clone());
    set(PORT, port.port.map(|p| p.to_string()));
    set(PORT_APP_PROTOCOL, port.app_protocol.clone());
    let conditions = endpoint.conditions.as_ref();
    set(READY, conditions.and_then(|c| c.ready).map(|b| b.to_string()));
    set(SERVING, conditions.and_then(|c| c.serving).map(|b| b.to_string()));
    set(
        TERMINATING,
        conditions.and_then(|c| c.terminating).map(|b| b.to_string()),
    );
    set(HOSTNAME, endpoint.hostname.clone());
    if let Some(target_ref) = &endpoint.target_ref {
        set(TARGET_KIND, target_ref.kind.clone());
        set(TARGET_NAME, target_ref.name.clone());
    }
    set(NODE_NAME, endpoint.node_name.clone());
    set(ZONE, endpoint.zone.clone());
    add_map(
        &mut target,
        endpoint.deprecated_topology.as_ref(),
        TOPOLOGY_PREFIX,
        TOPOLOGY_PRESENT_PREFIX,
    );
    target
}

#[cfg(test)]
#[path = "endpointslice_tests.rs"]
mod tests;
