//! The fake API server's state, as etcd and the watch cache hold it: the objects, one global
//! monotonically increasing resourceVersion, the history of changes since the last compaction
//! (watches resume from it, paginated lists read snapshots of it) and the broadcast that feeds
//! open watches.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::sync::broadcast;

use super::resource::Resource;

/// How a change altered its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One write, at resourceVersion `rv`.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) resource: Resource,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) kind: ChangeKind,
    /// The object after the change (for a deletion: its last state, at `rv`).
    pub(crate) object: Arc<Value>,
    /// The object before the change.
    pub(crate) old: Option<Arc<Value>>,
}

/// What open watches are told.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    /// A write.
    Change(Arc<Change>),
    /// History up to this resourceVersion was forgotten: every open watch gets 410 Gone.
    Compacted,
    /// A raw line for every open watch of a resource (hostile input).
    RawLine(Resource, Arc<str>),
}

/// An object's place: namespace (`""` when cluster-scoped) and name, in etcd key order.
pub(crate) type Key = (String, String);

/// A consistent read of one resource.
pub(crate) struct Snapshot {
    /// The resourceVersion it was read at.
    pub(crate) rv: u64,
    /// The objects, in key order.
    pub(crate) objects: Vec<(Key, Arc<Value>)>,
}

/// A resourceVersion older than the compaction point: 410 Gone.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) requested: u64,
    pub(crate) oldest: u64,
}

/// The objects and their history.
pub(crate) struct Store {
    rv: u64,
    compacted: u64,
    uids: u64,
    objects: BTreeMap<Resource, BTreeMap<Key, Arc<Value>>>,
    history: Vec<Arc<Change>>,
    notices: broadcast::Sender<Notice>,
}

/// The creation time stamped on objects that do not carry one.
const CREATION_TIMESTAMP: &str = "2025-06-02T09:14:07Z";

impl Store {
    /// An empty store; the first write gets resourceVersion `first_rv + 1` (real clusters'
    /// numbers are large; starting high catches clients that assume small ones).
    pub(crate) fn new(first_rv: u64) -> Store {
        Store {
            rv: first_rv,
            compacted: first_rv,
            uids: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            notices: broadcast::channel(4096).0,
        }
    }

    /// The current resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// Subscribes to notices, with the resourceVersion the subscription starts after.
    pub(crate) fn subscribe(&self) -> (broadcast::Receiver<Notice>, u64) {
        (self.notices.subscribe(), self.rv)
    }

    /// Creates or replaces an object; returns its new resourceVersion. The object needs
    /// `apiVersion`, `kind`, `metadata.name` and, when namespaced, `metadata.namespace`; the rest
    /// is stored as given (so tests can store malformed objects). `uid` and
    /// `creationTimestamp` are filled in when absent, `resourceVersion` is always set.
    pub(crate) fn apply(&mut self, mut object: Value) -> Result<u64> {
        let (resource, key) = identify(&object)?;
        let old = self.objects.get(&resource).and_then(|m| m.get(&key)).cloned();
        self.rv += 1;
        let rv = self.rv;
        let meta = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .context("metadata is not an object")?;
        let old_meta = |field: &str| old.as_ref().and_then(|o| o["metadata"].get(field)).cloned();
        if !meta.contains_key("uid") {
            self.uids += 1;
            let uid = old_meta("uid").unwrap_or_else(|| Value::from(fake_uid(self.uids)));
            meta.insert("uid".into(), uid);
        }
        if !meta.contains_key("creationTimestamp") {
            let ts = old_meta("creationTimestamp").unwrap_or_else(|| CREATION_TIMESTAMP.into());
            meta.insert("creationTimestamp".into(), ts);
        }
        meta.insert("resourceVersion".into(), rv.to_string().into());
        let object = Arc::new(object);
        self.objects
            .entry(resource)
            .or_default()
            .insert(key.clone(), object.clone());
        let kind = if old.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(resource, key, kind, object, old);
        Ok(rv)
    }

    /// Deletes an object; returns the resourceVersion of the deletion.
    pub(crate) fn delete(&mut self, resource: Resource, namespace: &str, name: &str) -> Result<u64> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(old) = self.objects.get_mut(&resource).and_then(|m| m.remove(&key)) else {
            bail!("{resource} {namespace}/{name} not found");
        };
        self.rv += 1;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = self.rv.to_string().into();
        self.record(resource, key, ChangeKind::Deleted, Arc::new(last), Some(old));
        Ok(self.rv)
    }

    fn record(&mut self, resource: Resource, key: Key, kind: ChangeKind, object: Arc<Value>, old: Option<Arc<Value>>) {
        let change = Arc::new(Change {
            rv: self.rv,
            resource,
            namespace: key.0,
            name: key.1,
            kind,
            object,
            old,
        });
        self.history.push(change.clone());
        // No receiver is fine: nobody is watching.
        let _ = self.notices.send(Notice::Change(change));
    }

    /// Forgets the history: resourceVersions before now get 410 Gone, open watches end with it.
    pub(crate) fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
        let _ = self.notices.send(Notice::Compacted);
    }

    /// Sends `line` to every open watch of `resource`.
    pub(crate) fn raw_line(&self, resource: Resource, line: &str) {
        let _ = self.notices.send(Notice::RawLine(resource, line.into()));
    }

    /// Fails with [`Expired`] when history before `rv` is gone.
    pub(crate) fn check_not_compacted(&self, rv: u64) -> Result<(), Expired> {
        if rv < self.compacted {
            return Err(Expired {
                requested: rv,
                oldest: self.compacted,
            });
        }
        Ok(())
    }

    /// The changes after `rv`, oldest first.
    pub(crate) fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, Expired> {
        self.check_not_compacted(rv)?;
        let start = self.history.partition_point(|c| c.rv <= rv);
        Ok(self.history[start..].to_vec())
    }

    /// One object now.
    pub(crate) fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&resource)?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The objects of `resource` in `namespace` (all when `None`) as they were at `rv`
    /// (`None`: now), rebuilt by undoing the newer changes.
    pub(crate) fn snapshot(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        rv: Option<u64>,
    ) -> Result<Snapshot, Expired> {
        let at = rv.unwrap_or(self.rv);
        self.check_not_compacted(at)?;
        let mut objects = self.objects.get(&resource).cloned().unwrap_or_default();
        for change in self.history.iter().rev().take_while(|c| c.rv > at) {
            if change.resource != resource {
                continue;
            }
            let key = (change.namespace.clone(), change.name.clone());
            match &change.old {
                Some(old) => objects.insert(key, old.clone()),
                None => objects.remove(&key),
            };
        }
        Ok(Snapshot {
            rv: at,
            objects: objects
                .into_iter()
                .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                .collect(),
        })
    }
}

/// The resource and key of an object about to be stored.
fn identify(object: &Value) -> Result<(Resource, Key)> {
    let api_version = object["apiVersion"].as_str().context("apiVersion missing")?;
    let kind = object["kind"].as_str().context("kind missing")?;
    let resource =
        Resource::from_kind(api_version, kind).with_context(|| format!("{api_version} {kind} is not served"))?;
    let name = object["metadata"]["name"].as_str().context("metadata.name missing")?;
    let namespace = object["metadata"]["namespace"].as_str();
    let namespace = match (resource.namespaced(), namespace) {
        (true, Some(ns)) if !ns.is_empty() => ns,
        (true, _) => bail!("{kind} {name}: metadata.namespace missing"),
        (false, None) => "",
        (false, Some(ns)) => bail!("{kind} {name} is cluster-scoped but has namespace {ns:?}"),
    };
    if name.is_empty() || name.contains('/') {
        bail!("{kind}: invalid name {name:?}");
    }
    Ok((resource, (namespace.to_owned(), name.to_owned())))
}

/// A UUID-shaped uid, distinct per object.
fn fake_uid(n: u64) -> String {
    format!(
        "8e1c4a52-{:04x}-4f0b-9d3e-{:012x}",
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, v: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"}, "spec": {"v": v}})
    }

    #[test]
    fn snapshots_rebuild_the_past() {
        let mut s = Store::new(100);
        let r1 = s.apply(pod("a", "1")).unwrap();
        let r2 = s.apply(pod("b", "1")).unwrap();
        let r3 = s.apply(pod("a", "2")).unwrap();
        let r4 = s.delete(Resource::Pods, "ns", "b").unwrap();
        assert_eq!((r1, r2, r3, r4), (101, 102, 103, 104));
        let names = |s: &Store, rv: Option<u64>| -> Vec<String> {
            s.snapshot(Resource::Pods, None, rv)
                .unwrap()
                .objects
                .iter()
                .map(|((_, n), o)| format!("{n}{}", o["spec"]["v"].as_str().unwrap()))
                .collect()
        };
        assert_eq!(names(&s, None), ["a2"]);
        assert_eq!(names(&s, Some(103)), ["a2", "b1"]);
        assert_eq!(names(&s, Some(102)), ["a1", "b1"]);
        assert_eq!(names(&s, Some(100)), Vec::<String>::new());
        let a = s.get(Resource::Pods, "ns", "a").unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "103");
        assert_eq!(
            a["metadata"]["uid"],
            s.changes_since(100).unwrap()[0].object["metadata"]["uid"]
        );
        assert_eq!(s.changes_since(102).unwrap().len(), 2);
        assert_eq!(
            s.changes_since(102).unwrap()[1].object["metadata"]["resourceVersion"],
            "104"
        );

        s.compact();
        assert!(s.snapshot(Resource::Pods, None, Some(103)).is_err());
        assert!(s.changes_since(103).is_err());
        assert!(s.changes_since(104).unwrap().is_empty());
        assert_eq!(names(&s, None), ["a2"]);
    }

    #[test]
    fn objects_without_identity_are_refused() {
        let mut s = Store::new(0);
        for bad in [
            json!({"kind": "Pod", "metadata": {"name": "a", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a/b", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a", "namespace": "n"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": "x"}),
            json!("pod"),
        ] {
            assert!(s.apply(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(s.rv(), 0);
        assert!(s.delete(Resource::Pods, "n", "a").is_err());
    }
}
