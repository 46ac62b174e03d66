//! Trawl agent: discovers targets, scrapes them, relabels, and remote-writes what it scraped.
//!
//! Data flows top to bottom through these modules:
//! - [`config`]: the Prometheus-compatible YAML config (`--config.file`), loaded and validated once.
//! - [`discovery`]: target groups from `static_configs`, `file_sd_configs` and
//!   `kubernetes_sd_configs` (kube-rs watchers shared between jobs).
//! - [`scrape`]: a scrape pool per job and a scrape loop per target, with the per-target series cache.
//! - [`plugin`]: the Wasm plugin host (wasmtime) and the relabel, filter and write stages.
//! - [`remote_write`]: per-endpoint queues, shards and the remote write 1.0 client.
//! - [`http_client`]: HTTP clients with TLS (rustls + ring) and auth, shared by scraping and remote write.
//! - [`agent`]: the running agent: start, reload, shutdown.
//! - [`web`]: `/metrics`, `/-/healthy`, `/-/ready`, `/-/reload`, `/api/v1/targets`.
//! - [`spare`]: idle scrape-body and remote-write chunk buffers kept for reuse, within a budget.
//! - [`check_plugin`]: `trawl-agent check-plugin`, a plugin run on an exposition file.

pub mod agent;
pub mod check_plugin;
pub mod config;
pub mod discovery;
pub mod http_client;
pub mod plugin;
pub mod remote_write;
pub mod scrape;
pub mod spare;
pub mod web;

#[cfg(test)]
mod test_support;
