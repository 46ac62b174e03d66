//! `role: service`, as Prometheus `discovery/kubernetes/service.go`: one target per service
//! port, at `<name>.<namespace>.svc:<port>`.
//!
//! Group labels: `__meta_kubernetes_namespace`, `_service_name`, `_service_label*`,
//! `_service_annotation*`. Target labels: `__address__`, `_service_port_name`,
//! `_service_port_number`, `_service_port_protocol`, `_service_type`, and `_service_cluster_ip`
//! (all types but ExternalName) or `_service_external_name` (ExternalName), plus
//! `_service_loadbalancer_ip` for type LoadBalancer.

use k8s_openapi::api::core::v1::Service;
use trawl_model::labels::{ADDRESS, Labels};

use super::meta::{NAMESPACE_LABEL, add_object_meta_labels, join_host_port, named_group, namespaced_source};
use crate::discovery::TargetGroup;

const PORT_NAME: &str = "__meta_kubernetes_service_port_name";
const PORT_NUMBER: &str = "__meta_kubernetes_service_port_number";
const PORT_PROTOCOL: &str = "__meta_kubernetes_service_port_protocol";
const CLUSTER_IP: &str = "__meta_kubernetes_service_cluster_ip";
const LOADBALANCER_IP: &str = "__meta_kubernetes_service_loadbalancer_ip";
const EXTERNAL_NAME: &str = "__meta_kubernetes_service_external_name";
const TYPE: &str = "__meta_kubernetes_service_type";

/// The source of a service's group, `"svc/<namespace>/<name>"`, as Prometheus
/// `serviceSourceFromNamespaceAndName`; also used for the empty group sent on deletion.
pub(crate) fn source(namespace: &str, name: &str) -> String {
    namespaced_source("svc", namespace, name)
}

/// The service-level labels, also attached to the groups of the endpoints and endpointslice
/// roles: `__meta_kubernetes_namespace` and the service's metadata, as Prometheus `serviceLabels`.
pub(crate) fn service_labels(svc: &Service) -> Labels {
    let mut labels = Labels::new();
    if let Some(namespace) = &svc.metadata.namespace {
        labels.set(NAMESPACE_LABEL.to_owned(), namespace.clone());
    }
    add_object_meta_labels(&mut labels, &svc.metadata, "service");
    labels
}

/// The target group of `svc`, as Prometheus `Service.buildService`. A service without a name
/// gives an empty group; one without ports a group with labels and no targets.
pub(crate) fn group(svc: &Service) -> TargetGroup {
    let (mut group, namespace, name) = match named_group(&svc.metadata, source) {
        Ok(named) => named,
        Err(empty) => return empty,
    };
    group.labels = service_labels(svc);

    let Some(spec) = &svc.spec else { return group };
    let kind = spec.type_.as_deref().unwrap_or_default();
    let host = format!("{name}.{namespace}.svc");
    for port in spec.ports.iter().flatten() {
        let mut target = Labels::new();
        target.set(ADDRESS.to_owned(), join_host_port(&host, port.port));
        target.set(PORT_NAME.to_owned(), port.name.clone().unwrap_or_default());
        target.set(PORT_NUMBER.to_owned(), port.port.to_string());
        target.set(PORT_PROTOCOL.to_owned(), port.protocol.clone().unwrap_or_default());
        target.set(TYPE.to_owned(), kind.to_owned());
        if kind == "ExternalName" {
            target.set(EXTERNAL_NAME.to_owned(), spec.external_name.clone().unwrap_or_default());
        } else {
            target.set(CLUSTER_IP.to_owned(), spec.cluster_ip.clone().unwrap_or_default());
        }
        if kind == "LoadBalancer" {
            target.set(
                LOADBALANCER_IP.to_owned(),
                spec.load_balancer_ip.clone().unwrap_or_default(),
            );
        }
        group.targets.push(target);
    }
    group
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
