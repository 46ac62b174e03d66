//! Routing one request: each series' owners on the tenant's ring, which of them is this
//! collector, and the request body each peer gets (its series re-encoded as a `WriteRequest`,
//! snappy-compressed, in request order so per-series order is kept).

use bytes::Bytes;
use trawl_model::labels::Labels;
use trawl_model::remote::{Sample, SeriesBuffer, encode_labels};

use super::ReplicateError;
use crate::hashring::{Ring, series_hash};
use crate::head::SeriesInput;

/// The owners of every series of one request. Owners are indices into the ring's endpoints
/// ("slots"); the series are numbered in request order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Address of each slot.
    nodes: Vec<String>,
    /// This collector's slot, when it is in the ring.
    local: Option<usize>,
    /// Owners per series.
    rf: usize,
    /// `owners[i * rf .. (i + 1) * rf]`: slots of series `i`.
    owners: Vec<u32>,
}

// === impl Plan ===

impl Plan {
    /// The owners on `ring` of each series of `tenant` (labels sorted by name, as validated),
    /// `rf` per series; `local_endpoint` is this collector's address.
    ///
    /// # Errors
    /// [`ReplicateError::Placement`] when the ring cannot place `rf` owners (a ring is checked
    /// against the replication factor when loaded, so this is a bug guard, not an expected path).
    pub fn new<'a>(
        ring: &Ring,
        rf: usize,
        local_endpoint: &str,
        tenant: &str,
        series: impl Iterator<Item = &'a [(&'a str, &'a str)]>,
    ) -> Result<Plan, ReplicateError> {
        let nodes: Vec<String> = ring.endpoints().iter().map(|e| e.address.clone()).collect();
        let local = nodes.iter().position(|a| a == local_endpoint);
        let mut owners = Vec::with_capacity(series.size_hint().0 * rf);
        for labels in series {
            let hash = series_hash(tenant, labels);
            for n in 0..rf {
                let slot = ring.index_n(hash, n).ok_or(ReplicateError::Placement { rf })?;
                owners.push(slot as u32);
            }
        }
        Ok(Plan {
            nodes,
            local,
            rf,
            owners,
        })
    }

    /// Owners per series.
    pub fn replication_factor(&self) -> usize {
        self.rf
    }

    /// Series in the request.
    pub fn series(&self) -> usize {
        self.owners.len() / self.rf.max(1)
    }

    /// Number of slots (endpoints of the ring).
    pub fn slots(&self) -> usize {
        self.nodes.len()
    }

    /// Address of `slot`.
    pub fn address(&self, slot: usize) -> &str {
        &self.nodes[slot]
    }

    /// This collector's slot, if it is in the ring.
    pub fn local_slot(&self) -> Option<usize> {
        self.local
    }

    /// The slots owning series `i`.
    pub fn owners(&self, i: usize) -> &[u32] {
        &self.owners[i * self.rf..(i + 1) * self.rf]
    }

    /// Whether this collector owns series `i`.
    pub fn is_local(&self, i: usize) -> bool {
        self.local.is_some_and(|local| self.owners(i).contains(&(local as u32)))
    }

    /// Whether this collector owns any series.
    pub fn has_local(&self) -> bool {
        (0..self.series()).any(|i| self.is_local(i))
    }

    /// The snappy-compressed `WriteRequest` for each peer slot owning series, built from
    /// `series` (the same series, in the same order, as given to [`Plan::new`]).
    ///
    /// # Errors
    /// [`ReplicateError::Encode`] if snappy refuses a body (above ~4 GiB; requests are far
    /// smaller after the receive limits).
    pub fn bodies<'a>(
        &self,
        series: impl Iterator<Item = SeriesInput<'a>>,
    ) -> Result<Vec<(usize, Bytes)>, ReplicateError> {
        let mut buffers: Vec<Option<SeriesBuffer>> = vec![None; self.nodes.len()];
        let mut samples: Vec<Sample> = Vec::new();
        for (i, s) in series.enumerate() {
            let remote: Vec<usize> = self
                .owners(i)
                .iter()
                .map(|&slot| slot as usize)
                .filter(|&slot| Some(slot) != self.local)
                .collect();
            if remote.is_empty() {
                continue;
            }
            let labels = encode_labels(&Labels::from_pairs(s.labels.iter().copied()));
            samples.clear();
            samples.extend(s.samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }));
            for slot in remote {
                buffers[slot].get_or_insert_default().push_series(&labels, &samples);
            }
        }
        let mut encoder = snap::raw::Encoder::new();
        buffers
            .into_iter()
            .enumerate()
            .filter_map(|(slot, buffer)| buffer.map(|b| (slot, b)))
            .map(|(slot, buffer)| {
                let body = encoder.compress_vec(buffer.proto()).map_err(ReplicateError::Encode)?;
                Ok((slot, Bytes::from(body)))
            })
            .collect()
    }
}
