//! `role: ingress`, as Prometheus `discovery/kubernetes/ingress.go`: one target per rule and
//! path, at the rule's host (for blackbox probing).
//!
//! Group labels: `__meta_kubernetes_namespace`, `_ingress_name`, `_ingress_class_name`,
//! `_ingress_label*`, `_ingress_annotation*`. Target labels: `__address__` (the host),
//! `_ingress_host`, `_ingress_path` (`/` when empty) and `_ingress_scheme` (`https` when a TLS
//! entry covers the host, exactly or by a `*.` wildcard; else `http`). Prometheus sets no
//! `__scheme__`; relabeling copies `_ingress_scheme` where wanted.

use k8s_openapi::api::networking::v1::{Ingress, IngressRule};
use trawl_model::labels::{ADDRESS, Labels};

use super::meta::{NAMESPACE_LABEL, add_object_meta_labels, named_group, namespaced_source};
use crate::discovery::TargetGroup;

const SCHEME: &str = "__meta_kubernetes_ingress_scheme";
const HOST: &str = "__meta_kubernetes_ingress_host";
const PATH: &str = "__meta_kubernetes_ingress_path";
const CLASS_NAME: &str = "__meta_kubernetes_ingress_class_name";

/// The source of an ingress's group, `"ingress/<namespace>/<name>"`, as Prometheus
/// `ingressSourceFromNamespaceAndName`; also used for the empty group sent on deletion.
pub(crate) fn source(namespace: &str, name: &str) -> String {
    namespaced_source("ingress", namespace, name)
}

/// The target group of `ing`, as Prometheus `Ingress.buildIngress`. A rule without `http` gives
/// one target with path `/`; a rule whose `http` has no paths gives none. An ingress without a
/// name gives an empty group.
pub(crate) fn group(ing: &Ingress) -> TargetGroup {
    let (mut group, namespace, _) = match named_group(&ing.metadata, source) {
        Ok(named) => named,
        Err(empty) => return empty,
    };
    let spec = ing.spec.as_ref();
    group.labels.set(NAMESPACE_LABEL.to_owned(), namespace.to_owned());
    if let Some(class) = spec.and_then(|s| s.ingress_class_name.clone()) {
        group.labels.set(CLASS_NAME.to_owned(), class);
    }
    add_object_meta_labels(&mut group.labels, &ing.metadata, "ingress");

    let tls_hosts: Vec<&str> = spec
        .and_then(|s| s.tls.as_deref())
        .unwrap_or_default()
        .iter()
        .flat_map(|tls| tls.hosts.iter().flatten().map(String::as_str))
        .collect();
    for rule in spec.and_then(|s| s.rules.as_deref()).unwrap_or_default() {
        let host = rule.host.as_deref().unwrap_or_default();
        let scheme = if tls_hosts.iter().any(|pattern| matches_host(pattern, host)) {
            "https"
        } else {
            "http"
        };
        for path in rule_paths(rule) {
            let mut target = Labels::new();
            target.set(ADDRESS.to_owned(), host.to_owned());
            target.set(SCHEME.to_owned(), scheme.to_owned());
            target.set(HOST.to_owned(), host.to_owned());
            target.set(PATH.to_owned(), path.to_owned());
            group.targets.push(target);
        }
    }
    group
}

/// The paths of a rule, `/` for an empty one; `["/"]` for a rule without `http`.
fn rule_paths(rule: &IngressRule) -> Vec<&str> {
    match &rule.http {
        None => vec!["/"],
        Some(http) => http
            .paths
            .iter()
            .map(|p| p.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/"))
            .collect(),
    }
}

/// Whether `host` equals the TLS host `pattern` or matches it as a wildcard (`*.example.com`
/// matches exactly one more label), as Prometheus `matchesHostnamePattern`.
fn matches_host(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let mut pattern_parts = pattern.split('.');
    if pattern_parts.next() != Some("*") {
        return false;
    }
    // The wildcard stands for the host's first label; the rest must be equal, label by label.
    pattern_parts.eq(host.split('.').skip(1))
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
