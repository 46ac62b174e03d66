//! Trawl collector: receives remote write, keeps a head per tenant with a WAL, cuts Prometheus TSDB
//! blocks and ships them to object storage.
//!
//! Data flows top to bottom through these modules:
//! - [`receive`]: `POST /api/v1/receive` — decode, validate, pick the tenant, append, answer like Thanos Receive.
//! - [`hashring`]: which collectors own a series (Thanos's hashrings.json, `hashmod`, `ketama`).
//! - [`replicate`]: each series to its owners — local append, forwards to peers, quorum.
//! - [`tenants`]: one [`head::Head`] per tenant under `<tsdb.path>/<tenant>/`.
//! - [`head`]: in-memory series with XOR chunks, the WAL written before a request is acknowledged,
//!   replay on start, and cutting of 2h blocks (formats in the `trawl-tsdb` crate).
//! - [`shipper`]: uploads finished blocks to the bucket (`--objstore.config-file`), idempotently.
//! - [`collector`]: the running collector: start, the block-cutting loop, shutdown flush.
//! - [`web`]: `/metrics`, `/-/healthy`, `/-/ready`.
//! - [`external_labels`]: the `--label` flag.
//! - [`tools`]: `trawl-collector tools bucket verify`, the offline bucket checker.

pub mod collector;
pub mod external_labels;
pub mod hashring;
pub mod head;
pub mod receive;
pub mod replicate;
pub mod shipper;
pub mod tenants;
pub mod tools;
pub mod web;
