//! Series placement, as Thanos Receive's `pkg/receive/hashring.go`: a series' hash is xxhash64
//! of `tenant 0xff (name 0xff value 0xff)*` over its sorted labels; `hashmod` picks endpoint
//! `(hash + n) mod len` of the endpoints sorted by address, `ketama` walks a ring of 1000
//! sections per endpoint whose replica lists are computed once, spread over availability zones.

use std::collections::{BTreeMap, HashMap};

use xxhash_rust::xxh64::Xxh64;

use super::HashringError;
use super::config::{Algorithm, Endpoint, HashringConfig, TenantMatcher, ring_label};
use super::glob::Glob;

/// Sections per endpoint on a ketama ring (Thanos's `SectionsPerNode`).
pub const SECTIONS_PER_ENDPOINT: usize = 1000;

/// Separator byte between the tenant, names and values in the hashed bytes (Thanos's `sep`).
const SEP: u8 = 0xff;

/// The placement hash of a series of `tenant` with `labels` sorted by name, as Thanos's
/// `labelpb.HashWithPrefix(tenant, labels)`.
pub fn series_hash(tenant: &str, labels: &[(&str, &str)]) -> u64 {
    let mut h = Xxh64::new(0);
    h.update(tenant.as_bytes());
    h.update(&[SEP]);
    for (name, value) in labels {
        h.update(name.as_bytes());
        h.update(&[SEP]);
        h.update(value.as_bytes());
        h.update(&[SEP]);
    }
    h.digest()
}

/// One hashring: its endpoints and how a hash picks `n`-th owners among them.
#[derive(Debug, Clone)]
pub struct Ring {
    /// Hashmod: sorted by address; ketama: file order.
    endpoints: Vec<Endpoint>,
    placement: Placement,
}

#[derive(Debug, Clone)]
enum Placement {
    Hashmod,
    Ketama {
        /// Section hashes, ascending.
        hashes: Vec<u64>,
        /// `replicas[i * rf + n]`: index in `endpoints` of the `n`-th owner of section `i`.
        replicas: Vec<u32>,
        rf: usize,
    },
}

// === impl Ring ===

impl Ring {
    /// A ring over `endpoints` placing `replication_factor` owners per series.
    ///
    /// # Errors
    /// The reason, for [`HashringError::Ring`]: fewer endpoints than the replication factor, or
    /// (hashmod) availability zones, which only ketama honours (Thanos's message).
    pub fn new(algorithm: Algorithm, endpoints: Vec<Endpoint>, replication_factor: usize) -> Result<Ring, String> {
        Ring::with_sections(algorithm, endpoints, replication_factor, SECTIONS_PER_ENDPOINT)
    }

    /// [`Ring::new`] with another number of ketama sections per endpoint (Thanos's tests use 10).
    pub(crate) fn with_sections(
        algorithm: Algorithm,
        mut endpoints: Vec<Endpoint>,
        replication_factor: usize,
        sections_per_endpoint: usize,
    ) -> Result<Ring, String> {
        if replication_factor == 0 {
            return Err("replication factor must be at least 1".to_owned());
        }
        if endpoints.len() < replication_factor {
            return Err(format!(
                "{} endpoints cannot hold {replication_factor} replicas (--receive.replication-factor)",
                endpoints.len()
            ));
        }
        let placement = match algorithm {
            Algorithm::Hashmod => {
                if endpoints.iter().any(|e| !e.az.is_empty()) {
                    return Err("Hashmod algorithm does not support AZ aware hashring configuration. \
                                Either use Ketama or remove AZ configuration."
                        .to_owned());
                }
                endpoints.sort_by(|a, b| a.address.cmp(&b.address));
                Placement::Hashmod
            }
            Algorithm::Ketama => ketama(&endpoints, sections_per_endpoint, replication_factor),
        };
        Ok(Ring { endpoints, placement })
    }

    /// The endpoints (hashmod: sorted by address; ketama: in file order).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The `n`-th owner (0-based) of a series with placement hash `hash`, as Thanos's `GetN`;
    /// `None` when `n` is not below the number of endpoints (ketama: the replication factor).
    pub fn get_n(&self, hash: u64, n: usize) -> Option<&Endpoint> {
        self.index_n(hash, n).map(|i| &self.endpoints[i])
    }

    /// Index in [`Ring::endpoints`] of the `n`-th owner.
    pub(crate) fn index_n(&self, hash: u64, n: usize) -> Option<usize> {
        match &self.placement {
            Placement::Hashmod => {
                let len = self.endpoints.len();
                (n < len).then(|| (hash.wrapping_add(n as u64) % len as u64) as usize)
            }
            Placement::Ketama { hashes, replicas, rf } => {
                if n >= *rf {
                    return None;
                }
                let mut i = hashes.partition_point(|&h| h < hash);
                if i == hashes.len() {
                    i = 0;
                }
                Some(replicas[i * rf + n] as usize)
            }
        }
    }
}

/// Builds the ketama sections: endpoint `e` gets sections hashed from `"<address>:<i>"` for `i`
/// in `1..=sections`; each section's owners are the next distinct endpoints clockwise, taking a
/// zone only while it holds no more owners than the emptiest zone (Thanos's
/// `calculateSectionReplicas`). Where Thanos would loop forever (no endpoint left in an allowed
/// zone), the zone rule is dropped after one full turn.
fn ketama(endpoints: &[Endpoint], sections: usize, rf: usize) -> Placement {
    let mut ring: Vec<(u64, u32)> = Vec::with_capacity(endpoints.len() * sections);
    for (index, endpoint) in endpoints.iter().enumerate() {
        for i in 1..=sections {
            let key = format!("{}:{i}", endpoint.address);
            ring.push((xxhash_rust::xxh64::xxh64(key.as_bytes(), 0), index as u32));
        }
    }
    ring.sort_unstable();
    let zones: BTreeMap<&str, ()> = endpoints.iter().map(|e| (e.az.as_str(), ())).collect();
    let zone_of: Vec<usize> = endpoints
        .iter()
        .map(|e| zones.keys().position(|z| *z == e.az).unwrap_or(0))
        .collect();
    let mut replicas = Vec::with_capacity(ring.len() * rf);
    let mut chosen: Vec<u32> = Vec::with_capacity(rf);
    let mut spread = vec![0usize; zones.len()];
    for start in 0..ring.len() {
        chosen.clear();
        spread.iter_mut().for_each(|s| *s = 0);
        let (mut j, mut since_pick) = (start, 0usize);
        while chosen.len() < rf {
            let endpoint = ring[j % ring.len()].1;
            j += 1;
            since_pick += 1;
            if chosen.contains(&endpoint) {
                continue;
            }
            let zone = zone_of[endpoint as usize];
            let least = spread.iter().copied().min().unwrap_or(0);
            let zone_full = spread.len() > 1 && spread[zone] > 0 && spread[zone] > least;
            if zone_full && since_pick <= ring.len() {
                continue;
            }
            chosen.push(endpoint);
            spread[zone] += 1;
            since_pick = 0;
        }
        replicas.extend_from_slice(&chosen);
    }
    Placement::Ketama {
        hashes: ring.iter().map(|&(h, _)| h).collect(),
        replicas,
        rf,
    }
}

/// Every hashring of a file and how tenants pick theirs, as Thanos's `multiHashring`: the first
/// ring, in file order, whose tenants match; a ring without tenants matches every tenant.
#[derive(Debug, Clone)]
pub struct Hashrings {
    rings: Vec<TenantRing>,
    replication_factor: usize,
}

#[derive(Debug, Clone)]
struct TenantRing {
    name: String,
    matcher: Matcher,
    ring: Ring,
}

#[derive(Debug, Clone)]
enum Matcher {
    All,
    Exact(Vec<String>),
    Glob(Vec<Glob>),
}

// === impl Hashrings ===

impl Hashrings {
    /// Builds the rings of `configs`; each uses its own `algorithm` or else `default_algorithm`.
    ///
    /// # Errors
    /// [`HashringError::Ring`] naming the first ring that cannot place `replication_factor`
    /// owners per series (see [`Ring::new`]).
    pub fn new(
        configs: &[HashringConfig],
        default_algorithm: Algorithm,
        replication_factor: usize,
    ) -> Result<Hashrings, HashringError> {
        let rings = configs
            .iter()
            .enumerate()
            .map(|(index, config)| {
                let label = || ring_label(&config.name, index);
                let algorithm = config.algorithm.unwrap_or(default_algorithm);
                let ring = Ring::new(algorithm, config.endpoints.clone(), replication_factor).map_err(|reason| {
                    HashringError::Ring {
                        hashring: label(),
                        reason,
                    }
                })?;
                let matcher = match config.tenant_matcher {
                    _ if config.tenants.is_empty() => Matcher::All,
                    TenantMatcher::Exact => Matcher::Exact(config.tenants.clone()),
                    TenantMatcher::Glob => Matcher::Glob(
                        config
                            .tenants
                            .iter()
                            .map(|t| Glob::new(t))
                            .collect::<Result<_, _>>()
                            .map_err(|reason| HashringError::Ring {
                                hashring: label(),
                                reason: reason.to_owned(),
                            })?,
                    ),
                };
                Ok(TenantRing {
                    name: config.name.clone(),
                    matcher,
                    ring,
                })
            })
            .collect::<Result<_, HashringError>>()?;
        Ok(Hashrings {
            rings,
            replication_factor,
        })
    }

    /// Owners per series.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// The ring serving `tenant`.
    ///
    /// # Errors
    /// [`HashringError::NoRing`] when no ring matches (there is no default ring).
    pub fn ring_for(&self, tenant: &str) -> Result<&Ring, HashringError> {
        self.rings
            .iter()
            .find(|r| match &r.matcher {
                Matcher::All => true,
                Matcher::Exact(tenants) => tenants.iter().any(|t| t == tenant),
                Matcher::Glob(globs) => globs.iter().any(|g| g.matches(tenant)),
            })
            .map(|r| &r.ring)
            .ok_or_else(|| HashringError::NoRing {
                tenant: tenant.to_owned(),
            })
    }

    /// Every distinct endpoint address of every ring, sorted.
    pub fn addresses(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .rings
            .iter()
            .flat_map(|r| r.ring.endpoints.iter().map(|e| e.address.as_str()))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Ring names with their number of endpoints, for the `hashring_nodes` metric.
    pub fn nodes_per_ring(&self) -> HashMap<&str, usize> {
        let mut nodes = HashMap::new();
        for r in &self.rings {
            *nodes.entry(r.name.as_str()).or_default() += r.ring.endpoints.len();
        }
        nodes
    }
}
