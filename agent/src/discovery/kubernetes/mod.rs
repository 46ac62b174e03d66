//! Kubernetes service discovery (`kubernetes_sd_configs`), as Prometheus
//! `discovery/kubernetes`: the roles node, service, pod, endpoints, endpointslice and ingress,
//! with Prometheus's `__meta_kubernetes_*` labels, plus Trawl's node-local mode
//! (`node_name: ${NODE_NAME}`) for agents running as a DaemonSet.
//!
//! How a config becomes target groups:
//!
//! ```text
//! KubernetesRegistry::subscribe(cfg, prefix, tx)         registry.rs: one discoverer per distinct cfg
//!   └─ discoverer task                                    (shared by jobs, kept through reloads)
//!        ├─ client::connect(cfg)                           client.rs: api_server | kubeconfig | in-cluster
//!        ├─ plan::watches(cfg)                             plan.rs: resources × namespaces, selectors,
//!        │                                                  node-local field selectors
//!        ├─ watch task per WatchSpec                       watch.rs: kube watcher (list, watch, bookmarks,
//!        │    Lenient<K> → Change                           410 → relist, backoff); object.rs: one object
//!        │                                                  read at a time, unused fields dropped
//!        └─ Discoverer::apply(index, Change)               discoverer.rs + store.rs: joins, relist diff,
//!             └─ role builders → TargetGroup               node.rs pod.rs service.rs endpoints.rs
//!                                                           endpointslice.rs ingress.rs (meta.rs: labels)
//!   └─ forwarder per subscriber: snapshot once synced, then changes, sources prefixed
//! ```
//!
//! Every group has a stable source (`pod/<ns>/<name>`, `node/<name>`, `svc/<ns>/<name>`, …); an
//! object that is deleted or missing from a relist is sent as an empty group with its source,
//! so its targets go stale. Errors (API server unreachable, 401/403, 5xx, undecodable
//! responses, malformed objects) are counted in [`metrics`], logged without flooding, and never
//! drop the groups already sent; the watches retry with backoff and recover by themselves.
//!
//! Memory stays proportional to what is discovered: only the kinds a join needs are stored
//! (pods, services and nodes for the endpoints roles; nodes and pods for the pod role with
//! `attach_metadata.node`), slimmed of fields no label uses, and list pages are small.

pub(crate) mod client;
pub(crate) mod discoverer;
pub(crate) mod endpoints;
pub(crate) mod endpointslice;
pub(crate) mod ingress;
pub(crate) mod meta;
pub(crate) mod metrics;
pub(crate) mod node;
pub(crate) mod object;
pub(crate) mod plan;
pub(crate) mod pod;
pub(crate) mod registry;
pub(crate) mod service;
pub(crate) mod store;
pub(crate) mod watch;

#[cfg(test)]
mod api_tests;

pub use client::ClientError;
pub use registry::KubernetesRegistry;
