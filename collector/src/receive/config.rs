//! Receive settings: tenant header, size limits and the per-request limits of Thanos Receive's
//! `--receive.limits-config` (`request.size_bytes_limit`, `series_limit`, `samples_limit`,
//! `head_series_limit`), with Thanos's status codes.

use trawl_model::remote::MAX_DECODED_BYTES;

use crate::head::HeadError;
use crate::tenants::validate_tenant;

/// Default `--receive.tenant-header`, as Thanos `tenancy.DefaultTenantHeader`.
pub const DEFAULT_TENANT_HEADER: &str = "THANOS-TENANT";
/// Default `--receive.default-tenant-id`, as Thanos `tenancy.DefaultTenant`.
pub const DEFAULT_TENANT: &str = "default-tenant";
/// Default limit on a request body, compressed: 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// How the receive endpoint reads requests and picks their tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveConfig {
    /// HTTP header naming a request's tenant (`--receive.tenant-header`, default
    /// [`DEFAULT_TENANT_HEADER`]). Header names are case-insensitive.
    pub tenant_header: String,
    /// Tenant of requests without the header or with an empty one
    /// (`--receive.default-tenant-id`, default [`DEFAULT_TENANT`]).
    pub default_tenant: String,
    /// Largest accepted body in bytes, snappy-compressed; larger bodies get 413 without being
    /// read to the end. Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Largest accepted protobuf in bytes after snappy decompression, checked against the snappy
    /// header before anything is allocated (a snappy bomb gets 413). Default
    /// [`MAX_DECODED_BYTES`] (32 MiB): vmagent's blocks are at most 8 MiB decoded, Prometheus's
    /// far less.
    pub max_decoded_bytes: usize,
    /// Per-request and per-tenant limits; none by default.
    pub limits: RequestLimits,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig {
            tenant_header: DEFAULT_TENANT_HEADER.to_owned(),
            default_tenant: DEFAULT_TENANT.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decoded_bytes: MAX_DECODED_BYTES,
            limits: RequestLimits::default(),
        }
    }
}

/// Limits as Thanos Receive's `write.default.request` and `head_series_limit`; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most series in one request; above it the whole request gets 413, as Thanos.
    pub series_limit: usize,
    /// Most samples in one request; above it the whole request gets 413, as Thanos.
    pub samples_limit: usize,
    /// Most series a tenant's head may hold; while at or above it, every request of the tenant
    /// gets 429 (Thanos's `head_series_limit`, checked before the request is written).
    pub head_series_limit: usize,
}

impl RequestLimits {
    /// Whether `series` series or `samples` samples exceed the per-request limits.
    pub fn exceeded(&self, series: usize, samples: usize) -> bool {
        (self.series_limit > 0 && series > self.series_limit)
            || (self.samples_limit > 0 && samples > self.samples_limit)
    }
}

/// A [`ReceiveConfig`] that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The tenant header is not a valid HTTP header name.
    #[error("--receive.tenant-header {0:?} is not a valid HTTP header name")]
    TenantHeader(String),
    /// The default tenant would be refused as a tenant name.
    #[error("--receive.default-tenant-id")]
    DefaultTenant(#[source] HeadError),
    /// A size limit of 0 would refuse every request.
    #[error("{0} must be above 0")]
    ZeroSize(&'static str),
}

impl ReceiveConfig {
    /// Checks the settings once at start-up.
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid header name, an invalid default tenant or a zero size limit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        axum::http::HeaderName::from_bytes(self.tenant_header.as_bytes())
            .map_err(|_| ConfigError::TenantHeader(self.tenant_header.clone()))?;
        validate_tenant(&self.default_tenant).map_err(ConfigError::DefaultTenant)?;
        if self.max_body_bytes == 0 {
            return Err(ConfigError::ZeroSize("max_body_bytes"));
        }
        if self.max_decoded_bytes == 0 {
            return Err(ConfigError::ZeroSize("max_decoded_bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_thanos_and_valid() {
        let config = ReceiveConfig::default();
        assert_eq!(
            (config.tenant_header.as_str(), config.default_tenant.as_str()),
            ("THANOS-TENANT", "default-tenant")
        );
        assert!(config.validate().is_ok());
        assert!(!config.limits.exceeded(usize::MAX, usize::MAX));
    }

    #[test]
    fn unusable_settings_are_refused() {
        let bad = [
            ReceiveConfig {
                tenant_header: "bad header".into(),
                ..ReceiveConfig::default()
            },
            ReceiveConfig {
                default_tenant: "../etc".into(),
                ..ReceiveConfig::default()
            },
            ReceiveConfig {
                max_body_bytes: 0,
                ..ReceiveConfig::default()
            },
            ReceiveConfig {
                max_decoded_bytes: 0,
                ..ReceiveConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let limits = RequestLimits {
            series_limit: 2,
            samples_limit: 5,
            head_series_limit: 0,
        };
        assert!(!limits.exceeded(2, 5));
        assert!(limits.exceeded(3, 5));
        assert!(limits.exceeded(2, 6));
    }
}
