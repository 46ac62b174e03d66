//! The discoverer's state machine for one `kubernetes_sd_configs` entry, without I/O: it takes
//! the changes of every watch ([`Change`], tagged with the watch's index in the plan), keeps the
//! objects joins need, and turns them into target groups through the role builders.
//!
//! - A group is emitted only when it differs from the last one sent for its source; an object
//!   that disappears (deleted, or missing from a relist) emits an empty group.
//! - A relist (`Init`, `Apply`…, `InitDone`) deletes the objects of that watch's scope it did
//!   not list; objects listed again emit nothing when unchanged.
//! - A change of a joined object regenerates the groups that use it: a service regenerates its
//!   endpoints (same name) or slices (`kubernetes.io/service-name`); a pod the endpoints and
//!   slices pointing at it; a node (with `attach_metadata.node`) the pods, endpoints and slices
//!   on it.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Node, ObjectReference};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::meta::JoinOptions;
use super::metrics::{EventKind, Metrics};
use super::object::{ObjKey, Object};
use super::plan::WatchSpec;
use super::store::{Joined, Store};
use super::{endpoints, endpointslice, ingress, node, pod, service};
use crate::config::Role;
use crate::discovery::TargetGroup;

/// The label of an EndpointSlice naming its Service, as `discovery/v1.LabelServiceName`.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One step of a watch, as kube's `watcher::Event` with malformed objects reduced to their key.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A (re)list starts.
    Init,
    /// An object was listed, added or modified.
    Apply(Object),
    /// A listed object could not be read: it counts as listed, its last group stays.
    Keep(ObjKey),
    /// An object was deleted.
    Delete(ObjKey),
    /// The list is complete: objects of the watch's scope not listed since `Init` are gone.
    InitDone,
}

/// The groups sent so far and the changes not yet flushed.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Current groups with targets, by source.
    groups: BTreeMap<String, TargetGroup>,
    /// Groups changed since the last [`Output::take_pending`], by source.
    pending: BTreeMap<String, TargetGroup>,
}

impl Output {
    /// Records `group` when it changes what its source shows; an empty group removes it.
    pub(crate) fn emit(&mut self, group: TargetGroup) {
        if group.targets.is_empty() {
            if self.groups.remove(&group.source).is_some() {
                let empty = TargetGroup {
                    source: group.source,
                    ..TargetGroup::default()
                };
                self.pending.insert(empty.source.clone(), empty);
            }
            return;
        }
        if self.groups.get(&group.source) == Some(&group) {
            return;
        }
        self.groups.insert(group.source.clone(), group.clone());
        self.pending.insert(group.source.clone(), group);
    }

    /// The changes since the last call.
    pub(crate) fn take_pending(&mut self) -> Vec<TargetGroup> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// Every current group with targets, by source.
    pub(crate) fn snapshot(&self) -> Vec<TargetGroup> {
        self.groups.values().cloned().collect()
    }
}

/// One watch's place in the discoverer.
#[derive(Debug)]
struct WatchState {
    resource: Role,
    namespace: Option<String>,
    /// Keys listed since the last `Init`, while a list is running.
    listing: Option<HashSet<ObjKey>>,
    /// Whether the first list completed.
    synced: bool,
}

/// The state of one discoverer; see the module docs.
#[derive(Debug)]
pub(crate) struct Discoverer {
    role: Role,
    join: JoinOptions,
    watches: Vec<WatchState>,
    joined: Joined,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    ingresses: Store<()>,
    metrics: Metrics,
    /// What the groups look like, and what changed.
    pub out: Output,
}

impl Discoverer {
    /// A discoverer of `role` fed by `watches` (indexes match [`Discoverer::apply`]'s).
    pub(crate) fn new(role: Role, join: JoinOptions, watches: &[WatchSpec], metrics: Metrics) -> Self {
        let endpoints_role = matches!(role, Role::Endpoints | Role::EndpointSlice);
        Discoverer {
            role,
            joined: Joined {
                pods: Store::new(endpoints_role || (role == Role::Pod && join.attach_node)),
                services: Store::new(endpoints_role),
                nodes: Store::new(join.attach_node),
            },
            join,
            watches: watches
                .iter()
                .map(|w| WatchState {
                    resource: w.resource,
                    namespace: w.namespace.clone(),
                    listing: None,
                    synced: false,
                })
                .collect(),
            endpoints: Store::new(role == Role::Endpoints),
            slices: Store::new(role == Role::EndpointSlice),
            ingresses: Store::new(false),
            metrics,
            out: Output::default(),
        }
    }

    /// Whether every watch completed its first list.
    pub(crate) fn synced(&self) -> bool {
        self.watches.iter().all(|w| w.synced)
    }

    /// Applies one change of watch `watch`.
    pub(crate) fn apply(&mut self, watch: usize, change: Change) {
        let Some(state) = self.watches.get_mut(watch) else {
            return;
        };
        let resource = state.resource;
        match change {
            Change::Init => state.listing = Some(HashSet::new()),
            Change::Keep(key) => {
                if let Some(seen) = &mut state.listing {
                    seen.insert(key);
                }
            }
            Change::Apply(object) => {
                let key = key_of(&object);
                if let Some(seen) = &mut state.listing {
                    seen.insert(key.clone());
                }
                self.upsert(key, object);
            }
            Change::Delete(key) => self.delete(resource, &key),
            Change::InitDone => {
                let seen = state.listing.take().unwrap_or_default();
                state.synced = true;
                let namespace = state.namespace.clone();
                for key in self.keys(resource, namespace.as_deref()) {
                    if !seen.contains(&key) {
                        self.delete(resource, &key);
                    }
                }
            }
        }
    }

    fn keys(&self, resource: Role, namespace: Option<&str>) -> Vec<ObjKey> {
        match resource {
            Role::Pod => self.joined.pods.keys(namespace),
            Role::Node => self.joined.nodes.keys(namespace),
            Role::Service => self.joined.services.keys(namespace),
            Role::Endpoints => self.endpoints.keys(namespace),
            Role::EndpointSlice => self.slices.keys(namespace),
            Role::Ingress => self.ingresses.keys(namespace),
        }
    }

    fn count(&self, resource: Role, known: bool) {
        let event = if known { EventKind::Update } else { EventKind::Add };
        self.metrics.event(resource, event);
    }

    fn upsert(&mut self, key: ObjKey, object: Object) {
        match object {
            Object::Pod(p) => {
                if self.role == Role::Pod {
                    let node = self.attached_node(p.spec.as_ref().and_then(|s| s.node_name.as_deref()));
                    self.out.emit(pod::group(&p, node));
                }
                let known = self.joined.pods.insert(key.clone(), *p);
                self.count(Role::Pod, known);
                self.pod_changed(&key);
            }
            Object::Node(n) => {
                if self.role == Role::Node {
                    self.out.emit(node::group(&n));
                }
                let known = self.joined.nodes.insert(key.clone(), *n);
                self.count(Role::Node, known);
                self.node_changed(&key.name);
            }
            Object::Service(s) => {
                if self.role == Role::Service {
                    self.out.emit(service::group(&s));
                }
                let known = self.joined.services.insert(key.clone(), *s);
                self.count(Role::Service, known);
                self.service_changed(&key);
            }
            Object::Endpoints(e) => {
                if self.role == Role::Endpoints {
                    self.out.emit(endpoints::group(&e, &self.joined, &self.join));
                }
                let known = self.endpoints.insert(key, *e);
                self.count(Role::Endpoints, known);
            }
            Object::EndpointSlice(e) => {
                if self.role == Role::EndpointSlice {
                    self.out.emit(endpointslice::group(&e, &self.joined, &self.join));
                }
                let known = self.slices.insert(key, *e);
                self.count(Role::EndpointSlice, known);
            }
            Object::Ingress(i) => {
                if self.role == Role::Ingress {
                    self.out.emit(ingress::group(&i));
                }
                let known = self.ingresses.insert(key, ());
                self.count(Role::Ingress, known);
            }
        }
    }

    fn delete(&mut self, resource: Role, key: &ObjKey) {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let known = match resource {
            Role::Pod => self.joined.pods.remove(key),
            Role::Node => self.joined.nodes.remove(key),
            Role::Service => self.joined.services.remove(key),
            Role::Endpoints => self.endpoints.remove(key),
            Role::EndpointSlice => self.slices.remove(key),
            Role::Ingress => self.ingresses.remove(key),
        };
        if !known {
            return;
        }
        self.metrics.event(resource, EventKind::Delete);
        if resource == self.role {
            let source = match resource {
                Role::Pod => pod::source(ns, name),
                Role::Node => node::source(name),
                Role::Service => service::source(ns, name),
                Role::Endpoints => endpoints::source(ns, name),
                Role::EndpointSlice => endpointslice::source(ns, name),
                Role::Ingress => ingress::source(ns, name),
            };
            self.out.emit(TargetGroup {
                source,
                ..TargetGroup::default()
            });
        }
        match resource {
            Role::Pod => self.pod_changed(key),
            Role::Node => self.node_changed(name),
            Role::Service => self.service_changed(key),
            _ => {}
        }
    }

    /// The node to attach to a pod's group, with `attach_metadata.node`.
    fn attached_node(&self, node_name: Option<&str>) -> Option<&Node> {
        if !self.join.attach_node {
            return None;
        }
        self.joined.nodes.get("", node_name?)
    }

    /// Regenerates the endpoints and slices pointing at pod `key`.
    fn pod_changed(&mut self, key: &ObjKey) {
        let targets_pod = |t: Option<&ObjectReference>| {
            t.is_some_and(|t| {
                t.kind.as_deref() == Some("Pod")
                    && t.name.as_deref() == Some(key.name.as_str())
                    && t.namespace.as_deref().unwrap_or_default() == key.namespace
            })
        };
        self.regenerate_endpoints(|ep| addresses(ep).any(|a| targets_pod(a.target_ref.as_ref())));
        self.regenerate_slices(None, |es| {
            es.endpoints.iter().any(|e| targets_pod(e.target_ref.as_ref()))
        });
    }

    /// Regenerates what carries node `name`'s labels (with `attach_metadata.node`).
    fn node_changed(&mut self, name: &str) {
        if !self.join.attach_node {
            return;
        }
        let on_node = |node_name: Option<&str>, target: Option<&ObjectReference>| {
            node_name == Some(name)
                || target.is_some_and(|t| t.kind.as_deref() == Some("Node") && t.name.as_deref() == Some(name))
        };
        if self.role == Role::Pod {
            let node = self.joined.nodes.get("", name);
            for (_, _, p) in self.joined.pods.objects(None) {
                if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name) {
                    self.out.emit(pod::group(p, node));
                }
            }
        }
        self.regenerate_endpoints(|ep| addresses(ep).any(|a| on_node(a.node_name.as_deref(), a.target_ref.as_ref())));
        self.regenerate_slices(None, |es| {
            es.endpoints
                .iter()
                .any(|e| on_node(e.node_name.as_deref(), e.target_ref.as_ref()))
        });
    }

    /// Regenerates the endpoints of the same name, or the slices naming the service.
    fn service_changed(&mut self, key: &ObjKey) {
        if let Some(ep) = self.endpoints.get(&key.namespace, &key.name) {
            self.out.emit(endpoints::group(ep, &self.joined, &self.join));
        }
        self.regenerate_slices(Some(&key.namespace), |es| {
            es.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|svc| *svc == key.name)
        });
    }

    fn regenerate_endpoints(&mut self, uses: impl Fn(&Endpoints) -> bool) {
        for (_, _, ep) in self.endpoints.objects(None) {
            if uses(ep) {
                self.out.emit(endpoints::group(ep, &self.joined, &self.join));
            }
        }
    }

    fn regenerate_slices(&mut self, namespace: Option<&str>, uses: impl Fn(&EndpointSlice) -> bool) {
        for (_, _, es) in self.slices.objects(namespace) {
            if uses(es) {
                self.out.emit(endpointslice::group(es, &self.joined, &self.join));
            }
        }
    }
}

/// Ready and not-ready addresses of every subset.
fn addresses(ep: &Endpoints) -> impl Iterator<Item = &EndpointAddress> {
    ep.subsets.iter().flatten().flat_map(|s| {
        s.addresses
            .iter()
            .flatten()
            .chain(s.not_ready_addresses.iter().flatten())
    })
}

fn key_of(object: &Object) -> ObjKey {
    let meta = match object {
        Object::Pod(o) => &o.metadata,
        Object::Node(o) => &o.metadata,
        Object::Service(o) => &o.metadata,
        Object::Endpoints(o) => &o.metadata,
        Object::EndpointSlice(o) => &o.metadata,
        Object::Ingress(o) => &o.metadata,
    };
    ObjKey::of(meta)
}

#[cfg(test)]
#[path = "discoverer_tests.rs"]
mod tests;
