//! Watched objects as the discoverer sees them: [`Lenient`] reads each listed or watched object
//! on its own (a malformed one does not fail its whole list), drops the fields no role builder
//! reads (managed fields, container env and probes, node images…) before typing it, and
//! [`Object`] carries the typed result to the discoverer.

use std::borrow::Cow;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::config::Role;

/// Namespace (empty for nodes) and name of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub(crate) struct ObjKey {
    /// Namespace; `""` for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// The key of `meta`; absent fields are empty.
    pub(crate) fn of(meta: &ObjectMeta) -> Self {
        ObjKey {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

/// A typed object of one of the watched kinds (boxed: they differ widely in size).
#[derive(Debug, Clone)]
pub(crate) enum Object {
    /// `v1/Pod`.
    Pod(Box<Pod>),
    /// `v1/Node`.
    Node(Box<Node>),
    /// `v1/Service`.
    Service(Box<Service>),
    /// `v1/Endpoints`.
    Endpoints(Box<Endpoints>),
    /// `discovery.k8s.io/v1/EndpointSlice`.
    EndpointSlice(Box<EndpointSlice>),
    /// `networking.k8s.io/v1/Ingress`.
    Ingress(Box<Ingress>),
}

/// A kind the discoverer watches: which resource it is, and which fields to drop.
pub(crate) trait Watched:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The resource, as named in config and metrics.
    const ROLE: Role;

    /// Removes fields of the raw object no role builder reads, to keep memory small.
    fn slim(_object: &mut serde_json::Map<String, Value>) {}

    /// Wraps the typed object.
    fn into_object(self) -> Object;
}

/// Removes `keys` from the object at `path` (a sequence of map keys) in `object`.
fn remove_at(object: &mut serde_json::Map<String, Value>, path: &[&str], keys: &[&str]) {
    let mut node = object;
    for key in path {
        match node.get_mut(*key) {
            Some(Value::Object(inner)) => node = inner,
            _ => return,
        }
    }
    for key in keys {
        node.remove(*key);
    }
}

/// Removes `keys` from every element of the list at `path`.
fn remove_in_list(object: &mut serde_json::Map<String, Value>, path: &[&str], list: &str, keys: &[&str]) {
    let mut node = object;
    for key in path {
        match node.get_mut(*key) {
            Some(Value::Object(inner)) => node = inner,
            _ => return,
        }
    }
    if let Some(Value::Array(items)) = node.get_mut(list) {
        for item in items.iter_mut() {
            if let Value::Object(item) = item {
                for key in keys {
                    item.remove(*key);
                }
            }
        }
    }
}

/// Container fields the pod builders do not read.
const UNUSED_CONTAINER_FIELDS: [&str; 14] = [
    "args",
    "command",
    "env",
    "envFrom",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "securityContext",
    "startupProbe",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
];

impl Watched for Pod {
    const ROLE: Role = Role::Pod;
    fn slim(object: &mut serde_json::Map<String, Value>) {
        remove_at(
            object,
            &["spec"],
            &[
                "affinity",
                "dnsConfig",
                "ephemeralContainers",
                "securityContext",
                "tolerations",
                "topologySpreadConstraints",
                "volumes",
            ],
        );
        for list in ["containers", "initContainers"] {
            remove_in_list(object, &["spec"], list, &UNUSED_CONTAINER_FIELDS);
        }
        for list in ["containerStatuses", "initContainerStatuses"] {
            remove_in_list(
                object,
                &["status"],
                list,
                &["allocatedResources", "lastState", "resources", "state", "volumeMounts"],
            );
        }
        remove_at(object, &["status"], &["ephemeralContainerStatuses"]);
    }
    fn into_object(self) -> Object {
        Object::Pod(Box::new(self))
    }
}

impl Watched for Node {
    const ROLE: Role = Role::Node;
    fn slim(object: &mut serde_json::Map<String, Value>) {
        remove_at(
            object,
            &["status"],
            &[
                "images",
                "volumesAttached",
                "volumesInUse",
                "config",
                "capacity",
                "allocatable",
            ],
        );
    }
    fn into_object(self) -> Object {
        Object::Node(Box::new(self))
    }
}

impl Watched for Service {
    const ROLE: Role = Role::Service;
    fn into_object(self) -> Object {
        Object::Service(Box::new(self))
    }
}

impl Watched for Endpoints {
    const ROLE: Role = Role::Endpoints;
    fn into_object(self) -> Object {
        Object::Endpoints(Box::new(self))
    }
}

impl Watched for EndpointSlice {
    const ROLE: Role = Role::EndpointSlice;
    fn into_object(self) -> Object {
        Object::EndpointSlice(Box::new(self))
    }
}

impl Watched for Ingress {
    const ROLE: Role = Role::Ingress;
    fn into_object(self) -> Object {
        Object::Ingress(Box::new(self))
    }
}

/// One listed or watched object: its typed form, or why it could not be read. `meta` keeps
/// only namespace, name and resourceVersion (what kube's watcher and the relist diff need).
#[derive(Debug, Clone)]
pub(crate) struct Lenient<K> {
    meta: ObjectMeta,
    /// The typed object, or the reason it is malformed.
    pub object: Result<K, String>,
}

impl<K> Lenient<K> {
    /// Namespace and name, from the raw object even when it is malformed.
    pub(crate) fn key(&self) -> ObjKey {
        ObjKey::of(&self.meta)
    }
}

impl<'de, K: Watched> Deserialize<'de> for Lenient<K> {
    /// Never fails for a JSON value: a value that is not a valid `K` becomes `Err`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(Self::from_value(value))
    }
}

impl<K: Watched> Lenient<K> {
    /// Reads `value` as a `K` after dropping unused fields.
    pub(crate) fn from_value(value: Value) -> Self {
        let Value::Object(mut map) = value else {
            return Lenient {
                meta: ObjectMeta::default(),
                object: Err("object is not a JSON object".to_owned()),
            };
        };
        let meta = minimal_meta(map.get("metadata"));
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        K::slim(&mut map);
        let object = serde_json::from_value::<K>(Value::Object(map)).map_err(|e| e.to_string());
        Lenient { meta, object }
    }
}

/// Namespace, name and resourceVersion of a raw object's metadata, each only when a string.
fn minimal_meta(metadata: Option<&Value>) -> ObjectMeta {
    let field = |name: &str| {
        metadata
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ObjectMeta {
        namespace: field("namespace"),
        name: field("name"),
        resource_version: field("resourceVersion"),
        ..ObjectMeta::default()
    }
}

impl<K: Watched> kube::Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(K::KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(K::GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(K::VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(K::URL_PATH_SEGMENT)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_malformed_object_does_not_fail_its_list() {
        let list = json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "10"},
            "items": [
                {"metadata": {"name": "good", "namespace": "a", "resourceVersion": "7"}, "spec": {"containers": [{"name": "c"}]}},
                {"metadata": {"name": "bad", "namespace": "a", "resourceVersion": "8"}, "spec": {"containers": "nope"}},
                {"metadata": {"name": 5, "labels": [1]}},
                "not an object",
            ]
        });
        let text = list.to_string();
        let parsed: kube::core::ObjectList<Lenient<Pod>> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.items.len(), 4);
        let good = &parsed.items[0];
        assert_eq!(good.object.as_ref().unwrap().metadata.name.as_deref(), Some("good"));
        assert_eq!(good.meta().resource_version.as_deref(), Some("7"));
        let bad = &parsed.items[1];
        assert!(
            bad.object.as_ref().unwrap_err().contains("invalid type"),
            "{:?}",
            bad.object
        );
        assert_eq!(
            bad.key(),
            ObjKey {
                namespace: "a".into(),
                name: "bad".into()
            }
        );
        assert!(parsed.items[2].object.is_err());
        assert_eq!(parsed.items[2].key(), ObjKey::default());
        assert!(parsed.items[3].object.is_err());
    }

    #[test]
    fn watch_events_carry_lenient_objects() {
        let line =
            r#"{"object":{"metadata":{"name":"n1","resourceVersion":"3"},"status":{"addresses":7}},"type":"MODIFIED"}"#;
        let event: kube::core::WatchEvent<Lenient<Node>> = serde_json::from_str(line).unwrap();
        let kube::core::WatchEvent::Modified(node) = event else {
            panic!("{event:?}")
        };
        assert!(node.object.is_err());
        assert_eq!(node.key().name, "n1");
        assert_eq!(node.meta().resource_version.as_deref(), Some("3"));
    }

    #[test]
    fn unused_fields_are_dropped_before_typing() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "n", "managedFields": [{"manager": "kubectl"}],
                         "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {"nodeName": "w1", "volumes": [{"name": "v"}], "containers": [
                {"name": "app", "image": "img", "ports": [{"containerPort": 8080}],
                 "env": [{"name": "SECRET", "value": "x"}], "command": ["run"]}]},
            "status": {"podIP": "10.0.0.1", "containerStatuses": [
                {"name": "app", "image": "img", "imageID": "", "ready": true, "restartCount": 0,
                 "containerID": "containerd://abc", "state": {"running": {}}}]}
        });
        let pod = Lenient::<Pod>::from_value(pod).object.unwrap();
        assert!(pod.metadata.managed_fields.is_none());
        assert_eq!(
            pod.metadata
                .annotations
                .unwrap()
                .get("prometheus.io/scrape")
                .map(String::as_str),
            Some("true")
        );
        let spec = pod.spec.unwrap();
        assert!(spec.volumes.is_none());
        assert_eq!(spec.node_name.as_deref(), Some("w1"));
        let container = &spec.containers[0];
        assert!(container.env.is_none() && container.command.is_none());
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 8080);
        let status = pod.status.unwrap();
        let cs = &status.container_statuses.unwrap()[0];
        assert!(cs.state.is_none());
        assert_eq!(cs.container_id.as_deref(), Some("containerd://abc"));

        let node = json!({"metadata": {"name": "w1"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
            "images": [{"names": ["a"], "sizeBytes": 1}]}});
        let node = Lenient::<Node>::from_value(node).object.unwrap();
        let status = node.status.unwrap();
        assert!(status.images.is_none());
        assert_eq!(status.addresses.unwrap()[0].address, "10.0.0.9");
    }

    #[test]
    fn resource_paths_follow_the_typed_kinds() {
        assert_eq!(Lenient::<Pod>::url_path(&(), Some("ns")), "/api/v1/namespaces/ns/pods");
        assert_eq!(Lenient::<Node>::url_path(&(), None), "/api/v1/nodes");
        assert_eq!(
            Lenient::<EndpointSlice>::url_path(&(), None),
            "/apis/discovery.k8s.io/v1/endpointslices"
        );
        assert_eq!(
            Lenient::<Ingress>::url_path(&(), Some("x")),
            "/apis/networking.k8s.io/v1/namespaces/x/ingresses"
        );
        assert_eq!(<Pod as Watched>::ROLE, Role::Pod);
    }
}
