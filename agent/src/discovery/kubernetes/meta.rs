//! Label helpers shared by the role builders, as Prometheus `discovery/kubernetes/kubernetes.go`
//! (`addObjectMetaLabels`), `endpoints.go` (`addNodeLabels`) and `util/strutil` (`SanitizeLabelName`).
//!
//! Also the two things a joining role builder needs from its caller: [`Lookup`] (the discoverer's
//! stores of pods, services and nodes) and [`JoinOptions`] (attach node metadata, node-local mode).

use std::collections::BTreeMap;
use std::fmt::Display;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use trawl_model::labels::Labels;

use crate::discovery::TargetGroup;

/// Prefix of every label the Kubernetes roles produce, as Prometheus `metaLabelPrefix`.
pub(crate) const META_PREFIX: &str = "__meta_kubernetes_";
/// The namespace of a namespaced object, as Prometheus `namespaceLabel`.
pub(crate) const NAMESPACE_LABEL: &str = "__meta_kubernetes_namespace";
/// The value of every `*present_*` label, as Prometheus `presentValue`.
pub(crate) const PRESENT: &str = "true";

/// `host:port`, with the host in brackets when it contains a colon (an IPv6 address), as Go's
/// `net.JoinHostPort` which Prometheus uses for every `__address__`.
pub(crate) fn join_host_port(host: &str, port: impl Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `"{kind}/{namespace}/{name}"`, the source of a namespaced object's group, as Prometheus
/// `podSourceFromNamespaceAndName` and its siblings.
pub(crate) fn namespaced_source(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The start of a namespaced object's group: `source(namespace, name)`, no labels, no targets,
/// with the object's namespace and name. `Err` holds that empty group when the object has no
/// name (nothing to discover; its source still lets the consumer drop what it had).
pub(crate) fn named_group(
    meta: &ObjectMeta,
    source: fn(&str, &str) -> String,
) -> Result<(TargetGroup, &str, &str), TargetGroup> {
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    let group = TargetGroup {
        source: source(namespace, name),
        ..TargetGroup::default()
    };
    if name.is_empty() {
        return Err(group);
    }
    Ok((group, namespace, name))
}

/// `prefix` followed by `key` with every character outside `[a-zA-Z0-9_]` replaced by `_` (one
/// `_` per character, not per byte), as Prometheus's `prefix + strutil.SanitizeLabelName(key)`;
/// e.g. `__meta_kubernetes_pod_label_` + `app.kubernetes.io/name`. With an empty prefix it is
/// `SanitizeLabelName` itself; the result may then start with a digit.
pub(crate) fn prefixed_name(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    name.extend(key.chars().map(sanitize_char));
    name
}

/// The character itself when valid in a label name, else `_`.
fn sanitize_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }
}

/// Adds the labels of an object's metadata under `role` (`pod`, `service`, `node`, `endpoints`,
/// `endpointslice`, `ingress`), as Prometheus `addObjectMetaLabels`:
/// `__meta_kubernetes_<role>_name`, and for each label and annotation `_<role>_label_<name>`,
/// `_<role>_labelpresent_<name>`, `_<role>_annotation_<name>`, `_<role>_annotationpresent_<name>`,
/// names sanitized. Two keys that sanitize to the same name keep the value of the later key in
/// key order (Go keeps an arbitrary one).
pub(crate) fn add_object_meta_labels(labels: &mut Labels, meta: &ObjectMeta, role: &str) {
    let prefix = format!("{META_PREFIX}{role}_");
    if let Some(name) = &meta.name {
        labels.set(format!("{prefix}name"), name.clone());
    }
    add_map(
        labels,
        meta.labels.as_ref(),
        &format!("{prefix}label_"),
        &format!("{prefix}labelpresent_"),
    );
    add_map(
        labels,
        meta.annotations.as_ref(),
        &format!("{prefix}annotation_"),
        &format!("{prefix}annotationpresent_"),
    );
}

/// For each `key: value`, sets `{value_prefix}{key}` to the value and `{present_prefix}{key}` to
/// `true`, keys sanitized, as the loops of Prometheus `addObjectMetaLabels` and the topology
/// labels of `endpointslice.go`.
pub(crate) fn add_map(
    labels: &mut Labels,
    map: Option<&BTreeMap<String, String>>,
    value_prefix: &str,
    present_prefix: &str,
) {
    for (key, value) in map.into_iter().flatten() {
        labels.set(prefixed_name(value_prefix, key), value.clone());
        labels.set(prefixed_name(present_prefix, key), PRESENT.to_owned());
    }
}

/// Adds the metadata labels of `node` (`__meta_kubernetes_node_name`, `_node_label_*`,
/// `_node_labelpresent_*`, `_node_annotation_*`, `_node_annotationpresent_*`), as Prometheus
/// `addNodeLabels` does for `attach_metadata: {node: true}`.
pub(crate) fn add_node_metadata(labels: &mut Labels, node: &Node) {
    add_object_meta_labels(labels, &node.metadata, "node");
}

/// Copies every label of `from` into `into`; `from` wins on conflict, as Go's `LabelSet.Merge`.
pub(crate) fn merge(into: &mut Labels, from: &Labels) {
    for label in from {
        into.set(label.name.clone(), label.value.clone());
    }
}

/// The Pod an object reference points to (`kind: Pod`), looked up in its own namespace, as
/// Prometheus `resolvePodRef`.
pub(crate) fn resolve_pod<'a>(lookup: &'a dyn Lookup, target: Option<&ObjectReference>) -> Option<&'a Pod> {
    let target = target?;
    if target.kind.as_deref() != Some("Pod") {
        return None;
    }
    lookup.pod(target.namespace.as_deref().unwrap_or_default(), target.name.as_deref()?)
}

/// The name of the Node an object reference points to (`kind: Node`), as Prometheus's node index
/// and `addNodeLabels` calls in `kubernetes.go`, `endpoints.go` and `endpointslice.go`.
pub(crate) fn node_ref_name(target: Option<&ObjectReference>) -> Option<&str> {
    let target = target?;
    if target.kind.as_deref() == Some("Node") {
        target.name.as_deref()
    } else {
        None
    }
}

/// Looks up the objects a role builder joins with (the discoverer's stores), as Prometheus's
/// informer stores in `endpoints.go` and `endpointslice.go`. Implementations return `None` for
/// an object they do not hold; builders then leave its labels out, as Prometheus does.
pub(crate) trait Lookup {
    /// The Pod `namespace/name`.
    fn pod(&self, namespace: &str, name: &str) -> Option<&Pod>;
    /// The Service `namespace/name`.
    fn service(&self, namespace: &str, name: &str) -> Option<&Service>;
    /// The Node `name`.
    fn node(&self, name: &str) -> Option<&Node>;
}

/// How the endpoints and endpointslice builders join and filter, from the discoverer's config:
/// Prometheus `attach_metadata.node` (`withNodeMetadata` in `endpoints.go`/`endpointslice.go`)
/// and Trawl's node-local mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JoinOptions {
    /// `attach_metadata: {node: true}`: add the labels of the node an endpoint runs on to its
    /// targets, as Prometheus `addNodeLabels`.
    pub attach_node: bool,
    /// Node-local mode (Trawl's `node_name`): keep only the endpoints on this node; endpoints
    /// whose node is unknown are dropped too.
    pub node_name: Option<String>,
}

impl JoinOptions {
    /// Whether an endpoint on `node` (its `nodeName`, or its Node target) passes the node-local
    /// filter (ours; Prometheus has none): always without a filter, else only when it names the
    /// filter's node.
    pub(crate) fn keeps(&self, node: Option<&str>) -> bool {
        match &self.node_name {
            None => true,
            Some(wanted) => node == Some(wanted.as_str()),
        }
    }

    /// Adds the labels of `node_name`'s Node when `attach_node` is set and the Node is known.
    pub(crate) fn attach(&self, labels: &mut Labels, lookup: &dyn Lookup, node_name: Option<&str>) {
        if !self.attach_node {
            return;
        }
        if let Some(node) = node_name.and_then(|name| lookup.node(name)) {
            add_node_metadata(labels, node);
        }
    }
}

#[cfg(test)]
#[path = "test_objects.rs"]
pub(crate) mod test_objects;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_strutil() {
        assert_eq!(prefixed_name("", "app.kubernetes.io/name"), "app_kubernetes_io_name");
        assert_eq!(prefixed_name("", "test-label"), "test_label");
        assert_eq!(prefixed_name("", "Ok_09"), "Ok_09");
        // One underscore per character, not per UTF-8 byte, as Go's regexp replaces runes.
        assert_eq!(prefixed_name("", "zoné/日本"), "zon____");
        assert_eq!(prefixed_name("", ""), "");
        assert_eq!(prefixed_name("", "1abc"), "1abc");
        assert_eq!(prefixed_name("__meta_x_", "a b"), "__meta_x_a_b");
    }

    #[test]
    fn joins_host_and_port_like_go() {
        assert_eq!(join_host_port("1.2.3.4", 9000), "1.2.3.4:9000");
        assert_eq!(join_host_port("2001:db8::1", "80"), "[2001:db8::1]:80");
        assert_eq!(join_host_port("svc.ns.svc", 443), "svc.ns.svc:443");
        assert_eq!(join_host_port("", 1), ":1");
    }

    #[test]
    fn object_meta_labels_cover_name_labels_and_annotations() {
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "web",
            "labels": {"app.kubernetes.io/name": "shop", "": "empty-key"},
            "annotations": {"prometheus.io/scrape": "true", "note": ""},
        }))
        .unwrap();
        let mut labels = Labels::new();
        add_object_meta_labels(&mut labels, &meta, "pod");
        assert_eq!(
            labels,
            Labels::from_pairs([
                ("__meta_kubernetes_pod_name", "web"),
                ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "shop"),
                ("__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name", "true"),
                ("__meta_kubernetes_pod_label_", "empty-key"),
                ("__meta_kubernetes_pod_labelpresent_", "true"),
                ("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "true"),
                ("__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape", "true"),
                ("__meta_kubernetes_pod_annotationpresent_note", "true"),
            ])
        );
    }

    #[test]
    fn empty_metadata_gives_no_labels() {
        let mut labels = Labels::new();
        add_object_meta_labels(&mut labels, &ObjectMeta::default(), "service");
        assert!(labels.is_empty());
    }

    #[test]
    fn node_local_filter_and_references() {
        let all = JoinOptions::default();
        assert!(all.keeps(None));
        let local = JoinOptions {
            attach_node: false,
            node_name: Some("n1".into()),
        };
        assert!(local.keeps(Some("n1")));
        assert!(!local.keeps(Some("n2")));
        assert!(!local.keeps(None));

        let node_ref = ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        };
        assert_eq!(node_ref_name(Some(&node_ref)), Some("n1"));
        let pod_ref = ObjectReference {
            kind: Some("Pod".into()),
            name: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(node_ref_name(Some(&pod_ref)), None);
        assert_eq!(node_ref_name(None), None);
    }
}
