//! The hashrings file in Thanos Receive's shape (`pkg/receive/config.go` `HashringConfig`):
//!
//! ```json
//! [{"hashring": "default", "tenants": [], "algorithm": "ketama",
//!   "endpoints": ["collector-0:19291", {"address": "collector-1:19291", "az": "a"}]}]
//! ```
//!
//! Parsing checks everything that would make a ring unusable, so a bad file is refused as a whole
//! (at start, or on reload while the old rings stay in force).

use serde::Deserialize;

use super::HashringError;
use super::glob::Glob;

/// Largest hashrings file read, in bytes: a ring of a thousand endpoints is far below it.
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// Most endpoints over all hashrings: each ketama endpoint costs 1000 sections of memory.
pub const MAX_ENDPOINTS: usize = 1000;

/// How a hashring places series, as Thanos's `--receive.hashrings-algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Algorithm {
    /// `hash(tenant, labels) + n` modulo the number of endpoints sorted by address (Thanos's
    /// default).
    #[default]
    Hashmod,
    /// Consistent hashing, 1000 sections per endpoint, availability-zone aware replicas.
    Ketama,
}

impl Algorithm {
    /// The name used in flags and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hashmod => "hashmod",
            Algorithm::Ketama => "ketama",
        }
    }
}

/// How a hashring's `tenants` are matched, Thanos's `tenant_matcher_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantMatcher {
    /// Tenant names compared as they are (Thanos's default, also written `""`).
    #[default]
    #[serde(alias = "")]
    Exact,
    /// Shell patterns as Go's `filepath.Match`: `*`, `?`, `[a-z]`, `[^a]`, `\` escapes.
    Glob,
}

/// One collector in a hashring: its HTTP `host:port` (a peer's `--web.listen-address`) and its
/// availability zone (empty when not set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// `host:port`; writes are forwarded to `http://<address>/api/v1/receive`.
    pub address: String,
    /// Availability zone; ketama spreads a series' replicas over zones first.
    pub az: String,
}

/// An endpoint as written in the file: a bare address or an object.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawEndpoint {
    Address(String),
    Object(EndpointObject),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointObject {
    address: String,
    #[serde(default)]
    az: String,
    /// Thanos's Cap'n Proto port; Trawl forwards over HTTP only, so it is accepted and unused.
    #[serde(default, rename = "capnproto_address")]
    _capnproto_address: Option<String>,
}

/// One entry of the hashrings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashringConfig {
    /// The `hashring` name (may be empty); labels metrics.
    pub name: String,
    /// Tenants routed to this ring; empty makes it a default ring matching every tenant.
    pub tenants: Vec<String>,
    /// How `tenants` are matched.
    pub tenant_matcher: TenantMatcher,
    /// The ring's collectors, in file order (ketama's section order depends on it).
    pub endpoints: Vec<Endpoint>,
    /// The ring's own algorithm, which wins over `--receive.hashrings-algorithm`.
    pub algorithm: Option<Algorithm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHashring {
    #[serde(default)]
    hashring: String,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    tenant_matcher_type: TenantMatcher,
    endpoints: Vec<RawEndpoint>,
    #[serde(default)]
    algorithm: Option<String>,
}

/// Parses and checks a hashrings file.
///
/// # Errors
/// [`HashringError`] when the file is larger than [`MAX_FILE_BYTES`], is not JSON of the right
/// shape (unknown keys included), is empty (`[]`), names an unknown algorithm or matcher, has a
/// ring without endpoints, an endpoint whose address is not `host[:port]`, the same address
/// twice in one ring, an invalid glob, or more than [`MAX_ENDPOINTS`] endpoints in all.
pub fn parse(content: &[u8]) -> Result<Vec<HashringConfig>, HashringError> {
    if content.len() > MAX_FILE_BYTES {
        return Err(HashringError::TooLarge {
            len: content.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let raw: Vec<RawHashring> = serde_json::from_slice(content).map_err(HashringError::Json)?;
    if raw.is_empty() {
        return Err(HashringError::Empty);
    }
    let total: usize = raw.iter().map(|r| r.endpoints.len()).sum();
    if total > MAX_ENDPOINTS {
        return Err(HashringError::TooManyEndpoints {
            count: total,
            limit: MAX_ENDPOINTS,
        });
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| HashringConfig::from_raw(raw, index))
        .collect()
}

/// How errors name the ring at `index` (0-based) called `name`: `"name"`, or `#2` when unnamed.
pub(crate) fn ring_label(name: &str, index: usize) -> String {
    if name.is_empty() {
        format!("#{}", index + 1)
    } else {
        format!("{name:?}")
    }
}

impl HashringConfig {
    fn from_raw(raw: RawHashring, index: usize) -> Result<HashringConfig, HashringError> {
        let name = raw.hashring;
        let ring_error = |reason: String| HashringError::Ring {
            hashring: ring_label(&name, index),
            reason,
        };
        let algorithm = match raw.algorithm.as_deref() {
            None | Some("") => None,
            Some("hashmod") => Some(Algorithm::Hashmod),
            Some("ketama") => Some(Algorithm::Ketama),
            Some(other) => {
                return Err(ring_error(format!(
                    "unknown algorithm {other:?} (expected \"hashmod\" or \"ketama\")"
                )));
            }
        };
        if raw.endpoints.is_empty() {
            return Err(ring_error("no endpoints".to_owned()));
        }
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(raw.endpoints.len());
        for endpoint in raw.endpoints {
            let endpoint = match endpoint {
                RawEndpoint::Address(address) => Endpoint {
                    address,
                    az: String::new(),
                },
                RawEndpoint::Object(o) => Endpoint {
                    address: o.address,
                    az: o.az,
                },
            };
            check_address(&endpoint.address).map_err(|reason| ring_error(reason.to_owned()))?;
            if endpoints.iter().any(|e| e.address == endpoint.address) {
                return Err(ring_error(format!("endpoint {:?} listed twice", endpoint.address)));
            }
            endpoints.push(endpoint);
        }
        if raw.tenant_matcher_type == TenantMatcher::Glob {
            for pattern in &raw.tenants {
                Glob::new(pattern).map_err(|reason| ring_error(format!("tenant pattern {pattern:?}: {reason}")))?;
            }
        }
        Ok(HashringConfig {
            name,
            tenants: raw.tenants,
            tenant_matcher: raw.tenant_matcher_type,
            endpoints,
            algorithm,
        })
    }
}

/// Checks that `address` is a bare `host[:port]`, so `http://<address>/api/v1/receive` names the
/// peer and nothing else.
fn check_address(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("endpoint address must be set");
    }
    if address.len() > 255 {
        return Err("endpoint address is longer than 255 bytes");
    }
    if address
        .bytes()
        .any(|b| !b.is_ascii_graphic() || matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\'))
    {
        return Err("endpoint address must be host:port, without scheme, path, user or spaces");
    }
    let url = reqwest::Url::parse(&format!("http://{address}/")).map_err(|_| "endpoint address is not host:port")?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("endpoint address has no host");
    }
    Ok(())
}
