//! Receive: the remote write 1.0 endpoint of a collector, `POST /api/v1/receive` and
//! `/api/v1/write`, with Thanos Receive's tenants, limits and status codes.
//!
//! A request flows through small stages, each in its own file:
//! - [`handler`]: readiness, tenant header, body under a limit, then (on a blocking thread)
//!   everything below and the append to the tenant's head; maps the outcome to a status.
//! - `decode`: snappy under a decoded-size limit and one pass of the zero-copy
//!   [`WriteRequestView`](trawl_model::remote::WriteRequestView) into reused buffers.
//! - [`validate`]: label sets (sorted, unique, `__name__`, valid names) and tenant names.
//! - [`error`]: [`ReceiveError`] and its status code.
//! - [`metrics`]: `trawl_collector_received_*`, `trawl_collector_rejected_samples_total`.
//! - [`config`]: [`ReceiveConfig`] and its defaults.
//!
//! Wiring: `Receiver::new(tenants, config, &mut registry)` once, `router(Arc::new(receiver))`
//! merged into the collector's router, `set_ready(false)` before the shutdown flush.

pub mod config;
mod decode;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod validate;

#[cfg(test)]
mod tests;

pub use config::{ReceiveConfig, RequestLimits};
pub use error::ReceiveError;
pub use handler::{Receiver, router};
