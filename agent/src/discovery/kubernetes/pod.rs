//! `role: pod`, as Prometheus `discovery/kubernetes/pod.go`: one group per pod, one target per
//! declared container port (init containers included), and one port-less target (`__address__`
//! = the pod IP) per container without ports, to be given a port by relabeling.
//!
//! Pod-level labels (`__meta_kubernetes_namespace`, `_pod_name`, `_pod_ip`, `_pod_ready`,
//! `_pod_phase`, `_pod_node_name`, `_pod_host_ip`, `_pod_uid`, `_pod_ipv4`, `_pod_ipv6`,
//! `_pod_controller_kind/_name`, `_pod_label*`, `_pod_annotation*`, and the node's labels with
//! `attach_metadata: {node: true}`) are on the group; container labels (`_pod_container_name`,
//! `_id`, `_image`, `_init`, `_port_name`, `_port_number`, `_port_protocol`) are on each target.
//!
//! Also [`BackingPods`], the pod join shared by the endpoints and endpointslice roles.

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Node, Pod};
use trawl_model::labels::{ADDRESS, Labels};

use super::meta::{
    NAMESPACE_LABEL, add_node_metadata, add_object_meta_labels, join_host_port, merge, named_group, namespaced_source,
};
use crate::discovery::TargetGroup;

const POD_IP: &str = "__meta_kubernetes_pod_ip";
const POD_IPV4: &str = "__meta_kubernetes_pod_ipv4";
const POD_IPV6: &str = "__meta_kubernetes_pod_ipv6";
const POD_READY: &str = "__meta_kubernetes_pod_ready";
const POD_PHASE: &str = "__meta_kubernetes_pod_phase";
const POD_NODE_NAME: &str = "__meta_kubernetes_pod_node_name";
const POD_HOST_IP: &str = "__meta_kubernetes_pod_host_ip";
const POD_UID: &str = "__meta_kubernetes_pod_uid";
const POD_CONTROLLER_KIND: &str = "__meta_kubernetes_pod_controller_kind";
const POD_CONTROLLER_NAME: &str = "__meta_kubernetes_pod_controller_name";
const CONTAINER_NAME: &str = "__meta_kubernetes_pod_container_name";
const CONTAINER_ID: &str = "__meta_kubernetes_pod_container_id";
const CONTAINER_IMAGE: &str = "__meta_kubernetes_pod_container_image";
const CONTAINER_INIT: &str = "__meta_kubernetes_pod_container_init";
const CONTAINER_PORT_NAME: &str = "__meta_kubernetes_pod_container_port_name";
const CONTAINER_PORT_NUMBER: &str = "__meta_kubernetes_pod_container_port_number";
const CONTAINER_PORT_PROTOCOL: &str = "__meta_kubernetes_pod_container_port_protocol";

/// The source of a pod's group, `"pod/<namespace>/<name>"`, as Prometheus `podSourceFromNamespaceAndName`;
/// also used for the empty group sent when the pod is deleted.
pub(crate) fn source(namespace: &str, name: &str) -> String {
    namespaced_source("pod", namespace, name)
}

/// The target group of `pod`, as Prometheus `Pod.buildPod`. `node` is the Node the pod runs on
/// (`spec.nodeName`), given when `attach_metadata: {node: true}`; its labels are added to the group.
///
/// A pod without a name, or without an IP yet (pending, evicted), gives a group with neither
/// labels nor targets, so targets of its previous state go stale.
pub(crate) fn group(pod: &Pod, node: Option<&Node>) -> TargetGroup {
    let (mut group, namespace, _) = match named_group(&pod.metadata, source) {
        Ok(named) => named,
        Err(empty) => return empty,
    };
    let Some(ip) = pod_ip(pod) else { return group };

    group.labels = pod_labels(pod);
    group.labels.set(NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    if let Some(node) = node {
        add_node_metadata(&mut group.labels, node);
    }

    let status = pod.status.as_ref();
    for (container, init) in containers(pod) {
        let statuses = status.and_then(|s| {
            if init {
                s.init_container_statuses.as_ref()
            } else {
                s.container_statuses.as_ref()
            }
        });
        let id = statuses
            .into_iter()
            .flatten()
            .find(|s| s.name == container.name)
            .and_then(|s| s.container_id.clone())
            .unwrap_or_default();
        let mut labels = container_labels(container, init);
        labels.set(CONTAINER_ID.to_owned(), id);

        let ports = container.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            // No port: the user adds one by relabeling.
            labels.set(ADDRESS.to_owned(), bare_address(ip));
            group.targets.push(labels);
            continue;
        }
        for port in ports {
            let mut target = labels.clone();
            target.set(ADDRESS.to_owned(), join_host_port(ip, port.container_port));
            set_port_labels(&mut target, port, port.protocol.as_deref());
            group.targets.push(target);
        }
    }
    group
}

/// The pod-level labels shared by the pod role and the pod-backed targets of the endpoints and
/// endpointslice roles, as Prometheus `podLabels` (no namespace, no node labels).
pub(crate) fn pod_labels(pod: &Pod) -> Labels {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut labels = Labels::new();
    let mut set = |name: &str, value: Option<&String>| {
        if let Some(value) = value {
            labels.set(name.to_owned(), value.clone());
        }
    };
    set(POD_IP, status.and_then(|s| s.pod_ip.as_ref()));
    set(POD_PHASE, status.and_then(|s| s.phase.as_ref()));
    set(POD_NODE_NAME, spec.and_then(|s| s.node_name.as_ref()));
    set(POD_HOST_IP, status.and_then(|s| s.host_ip.as_ref()));
    set(POD_UID, pod.metadata.uid.as_ref());

    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(owner) = controller {
        labels.set(POD_CONTROLLER_KIND.to_owned(), owner.kind.clone());
        labels.set(POD_CONTROLLER_NAME.to_owned(), owner.name.clone());
    }

    labels.set(POD_READY.to_owned(), ready(pod));
    let (ipv4, ipv6) = first_ip_per_family(pod);
    if let Some(ip) = ipv4 {
        labels.set(POD_IPV4.to_owned(), ip.to_owned());
    }
    if let Some(ip) = ipv6 {
        labels.set(POD_IPV6.to_owned(), ip.to_owned());
    }
    add_object_meta_labels(&mut labels, &pod.metadata, "pod");
    labels
}

/// `status.podIP`, or `None` while the pod has none.
fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

/// The containers, then the init containers, each with whether it is an init container.
fn containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    let spec = pod.spec.as_ref();
    let regular = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    regular.iter().map(|c| (c, false)).chain(init.iter().map(|c| (c, true)))
}

/// `_pod_container_name`, `_image` and `_init`.
fn container_labels(container: &Container, init: bool) -> Labels {
    let mut labels = Labels::new();
    labels.set(CONTAINER_NAME.to_owned(), container.name.clone());
    labels.set(CONTAINER_IMAGE.to_owned(), container.image.clone().unwrap_or_default());
    labels.set(CONTAINER_INIT.to_owned(), init.to_string());
    labels
}

/// `_pod_container_port_name`, `_number` and `_protocol` (the given protocol).
fn set_port_labels(labels: &mut Labels, port: &ContainerPort, protocol: Option<&str>) {
    labels.set(CONTAINER_PORT_NAME.to_owned(), port.name.clone().unwrap_or_default());
    labels.set(CONTAINER_PORT_NUMBER.to_owned(), port.container_port.to_string());
    labels.set(
        CONTAINER_PORT_PROTOCOL.to_owned(),
        protocol.unwrap_or_default().to_owned(),
    );
}

/// The address of a port-less target: the IP, in brackets (canonical form) when it is IPv6, as
/// RFC 3986 wants and Prometheus does.
fn bare_address(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => format!("[{v6}]"),
        _ => ip.to_owned(),
    }
}

/// `"true"`/`"false"`/… from the `Ready` condition, lowercased, or `"unknown"`.
fn ready(pod: &Pod) -> String {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or_else(|| "unknown".to_owned(), |c| c.status.to_lowercase())
}

/// The first IPv4 and the first IPv6 address of `status.podIPs` (an IPv4-mapped IPv6 address
/// counts as IPv4, as Go's `To4`); unparsable entries are skipped.
fn first_ip_per_family(pod: &Pod) -> (Option<&str>, Option<&str>) {
    let (mut v4, mut v6) = (None, None);
    let ips = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ips.as_deref())
        .unwrap_or_default();
    for ip in ips.iter().map(|p| p.ip.as_str()) {
        if v4.is_some() && v6.is_some() {
            break;
        }
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => v4 = v4.or(Some(ip)),
            Ok(IpAddr::V6(addr)) if addr.to_ipv4_mapped().is_some() => v4 = v4.or(Some(ip)),
            Ok(IpAddr::V6(_)) => v6 = v6.or(Some(ip)),
            Err(_) => {}
        }
    }
    (v4, v6)
}

/// Where `_pod_container_port_protocol` of an endpoint port matched to a container port comes
/// from: Prometheus `endpoints.go` uses the endpoint port's, `endpointslice.go` the container port's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PortProtocol<'p> {
    /// The container port's `protocol`.
    Container,
    /// The endpoint port's `protocol`.
    Endpoint(Option<&'p str>),
}

/// The pods behind the targets of one endpoints or endpointslice object, as the `seenPods` map
/// of Prometheus `buildEndpoints`/`buildEndpointSlice`: a pod-backed target gets the pod's
/// labels and the labels of the container port its port matches, and afterwards every container
/// port of those pods that no target used becomes a target of its own.
#[derive(Default)]
pub(crate) struct BackingPods<'a> {
    index: HashMap<(&'a str, &'a str), usize>,
    pods: Vec<BackingPod<'a>>,
}

/// One seen pod, its labels (computed once) and the ports its targets used.
struct BackingPod<'a> {
    pod: &'a Pod,
    labels: Labels,
    used_ports: Vec<i32>,
}

impl<'a> BackingPods<'a> {
    /// Adds the labels of `pod` to `target`, and when `port` matches a container port, that
    /// container's labels; records `port` as used. When several containers declare the port,
    /// the last one wins, as in Prometheus.
    pub(crate) fn add(&mut self, pod: &'a Pod, port: Option<i32>, protocol: PortProtocol<'_>, target: &mut Labels) {
        let key = (
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
        );
        let index = *self.index.entry(key).or_insert_with(|| {
            self.pods.push(BackingPod {
                pod,
                labels: pod_labels(pod),
                used_ports: Vec::new(),
            });
            self.pods.len() - 1
        });
        let seen = &mut self.pods[index];
        merge(target, &seen.labels);

        let Some(port) = port else { return };
        seen.used_ports.push(port);
        let matched = containers(pod)
            .filter_map(|(c, init)| {
                let ports = c.ports.as_deref().unwrap_or_default();
                ports.iter().find(|p| p.container_port == port).map(|p| (c, p, init))
            })
            .last();
        if let Some((container, container_port, init)) = matched {
            merge(target, &container_labels(container, init));
            let protocol = match protocol {
                PortProtocol::Container => container_port.protocol.as_deref(),
                PortProtocol::Endpoint(protocol) => protocol,
            };
            set_port_labels(target, container_port, protocol);
        }
    }

    /// Appends one target per container port of the seen pods (in the order first seen) that no
    /// target used; pods without an IP give none.
    pub(crate) fn push_unused_port_targets(self, targets: &mut Vec<Labels>) {
        for seen in self.pods {
            let Some(ip) = pod_ip(seen.pod) else { continue };
            for (container, init) in containers(seen.pod) {
                for port in container.ports.iter().flatten() {
                    if seen.used_ports.contains(&port.container_port) {
                        continue;
                    }
                    let mut target = container_labels(container, init);
                    target.set(ADDRESS.to_owned(), join_host_port(ip, port.container_port));
                    set_port_labels(&mut target, port, port.protocol.as_deref());
                    merge(&mut target, &seen.labels);
                    targets.push(target);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
