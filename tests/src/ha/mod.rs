//! Support for the redundancy fault scenarios (`tests/tests/ha_faults.rs`) and the replication
//! benchmark (`tests/benches/replication.rs`): collectors in network namespaces
//! ([`netns`]), restartable processes ([`procs`]), counting scrape targets ([`target`]), the
//! configuration files ([`config`]), `bucket verify` ([`verify`]) and a whole fleet with its final
//! accounting ([`cluster`]). Needs root (namespaces, links).

pub mod cluster;
pub mod config;
pub mod netns;
pub mod procs;
pub mod target;
pub mod verify;

pub use cluster::{Cluster, Outcome, ScenarioSpec};
