//! The discoverer's view of watched objects: for every kind, the keys of the objects seen (for
//! the relist diff), and the objects themselves only for kinds a join or a regeneration needs
//! (pods, services and nodes joined by the endpoints roles; the endpoints objects themselves;
//! pods when their node's labels are attached). Keys are looked up without allocating.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use k8s_openapi::api::core::v1::{Node, Pod, Service};

use super::meta::Lookup;
use super::object::ObjKey;

/// Objects of one kind by namespace, then name (`""` namespace for cluster-scoped kinds).
/// Values are `None` for objects known but not kept.
#[derive(Debug)]
pub(crate) struct Store<T> {
    keep: bool,
    by_namespace: HashMap<String, HashMap<String, Option<T>>>,
}

impl<T> Store<T> {
    /// A store that keeps objects when `keep`, else only their keys.
    pub(crate) fn new(keep: bool) -> Self {
        Store {
            keep,
            by_namespace: HashMap::new(),
        }
    }

    /// Records `object` under `key`; returns whether the key was already known.
    pub(crate) fn insert(&mut self, key: ObjKey, object: T) -> bool {
        let value = self.keep.then_some(object);
        let names = self.by_namespace.entry(key.namespace).or_default();
        match names.entry(key.name) {
            Entry::Occupied(mut e) => {
                e.insert(value);
                true
            }
            Entry::Vacant(e) => {
                e.insert(value);
                false
            }
        }
    }

    /// Forgets `key`; returns whether it was known.
    pub(crate) fn remove(&mut self, key: &ObjKey) -> bool {
        let Some(names) = self.by_namespace.get_mut(&key.namespace) else {
            return false;
        };
        let known = names.remove(&key.name).is_some();
        if names.is_empty() {
            self.by_namespace.remove(&key.namespace);
        }
        known
    }

    /// The kept object `namespace/name`.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&T> {
        self.by_namespace.get(namespace)?.get(name)?.as_ref()
    }

    /// Keys in `namespace` (every namespace for `None`), sorted.
    pub(crate) fn keys(&self, namespace: Option<&str>) -> Vec<ObjKey> {
        let mut keys: Vec<ObjKey> = self
            .by_namespace
            .iter()
            .filter(|(ns, _)| namespace.is_none_or(|want| want == ns.as_str()))
            .flat_map(|(ns, names)| {
                names.keys().map(|name| ObjKey {
                    namespace: ns.clone(),
                    name: name.clone(),
                })
            })
            .collect();
        keys.sort();
        keys
    }

    /// Kept objects in `namespace` (every namespace for `None`), with their keys.
    pub(crate) fn objects(&self, namespace: Option<&str>) -> impl Iterator<Item = (&str, &str, &T)> {
        self.by_namespace
            .iter()
            .filter(move |(ns, _)| namespace.is_none_or(|want| want == ns.as_str()))
            .flat_map(|(ns, names)| {
                names
                    .iter()
                    .filter_map(move |(name, obj)| obj.as_ref().map(|o| (ns.as_str(), name.as_str(), o)))
            })
    }

    /// Number of known keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }
}

/// The joined kinds, as the role builders look them up.
#[derive(Debug)]
pub(crate) struct Joined {
    /// Pods (kept for the endpoints roles, and for the pod role with attach_metadata.node).
    pub pods: Store<Pod>,
    /// Services (kept for the endpoints roles).
    pub services: Store<Service>,
    /// Nodes (kept with attach_metadata.node).
    pub nodes: Store<Node>,
}

impl Lookup for Joined {
    fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.get(namespace, name)
    }
    fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.get(namespace, name)
    }
    fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get("", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ObjKey {
        ObjKey {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn keeps_objects_only_when_asked() {
        let mut kept = Store::new(true);
        assert!(!kept.insert(key("a", "x"), 1));
        assert!(kept.insert(key("a", "x"), 2));
        assert_eq!(kept.get("a", "x"), Some(&2));
        let mut keys_only = Store::new(false);
        keys_only.insert(key("a", "x"), 1);
        assert_eq!(keys_only.get("a", "x"), None);
        assert_eq!(keys_only.keys(None), vec![key("a", "x")]);
        assert_eq!(keys_only.objects(None).count(), 0);
    }

    #[test]
    fn keys_and_objects_filter_by_namespace() {
        let mut s = Store::new(true);
        s.insert(key("b", "2"), 'c');
        s.insert(key("a", "1"), 'a');
        s.insert(key("b", "1"), 'b');
        assert_eq!(s.keys(None), vec![key("a", "1"), key("b", "1"), key("b", "2")]);
        assert_eq!(s.keys(Some("b")), vec![key("b", "1"), key("b", "2")]);
        assert!(s.keys(Some("zz")).is_empty());
        let mut in_a: Vec<_> = s.objects(Some("a")).collect();
        in_a.sort();
        assert_eq!(in_a, vec![("a", "1", &'a')]);
        assert!(s.remove(&key("a", "1")));
        assert!(!s.remove(&key("a", "1")));
        assert!(!s.remove(&key("q", "1")));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn lookup_reads_the_kept_objects() {
        let mut joined = Joined {
            pods: Store::new(true),
            services: Store::new(false),
            nodes: Store::new(true),
        };
        let pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        joined.pods.insert(key("ns", "p"), pod);
        joined.services.insert(key("ns", "s"), Service::default());
        joined.nodes.insert(key("", "n"), Node::default());
        assert_eq!(
            joined.pod("ns", "p").and_then(|p| p.metadata.name.as_deref()),
            Some("p")
        );
        assert!(joined.pod("other", "p").is_none());
        assert!(joined.service("ns", "s").is_none(), "services are not kept here");
        assert!(joined.node("n").is_some());
    }
}
