//! A series prepared once (on a scrape-cache miss) for every remote_write endpoint, laid out in
//! one allocation so queueing a sample touches a single heap object: for each endpoint in config
//! order, a little-endian `u32` length and that many bytes of encoded labels, or `u32::MAX` when
//! the endpoint's write relabeling drops the series.

/// Marks an endpoint that does not send this series.
const DROPPED: u32 = u32::MAX;

/// Per-series data for every endpoint: the shard-picking hash and the encoded labels.
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedSeries {
    hash: u64,
    encoded: Box<[u8]>,
}

impl PreparedSeries {
    /// `hash` picks the shard (so all samples of a series keep their order); `endpoints` gives,
    /// in config order, the protobuf `labels` field bytes each endpoint sends (see
    /// [`trawl_model::remote::encode_labels`]) or `None` when it drops the series.
    ///
    /// # Panics
    /// If one endpoint's labels exceed 4 GiB, which a `Labels` cannot produce in practice.
    pub fn new<'a>(hash: u64, endpoints: impl IntoIterator<Item = Option<&'a [u8]>> + Clone) -> Self {
        // Sized exactly, so the long-lived allocation is made once and never moved.
        let bytes = endpoints
            .clone()
            .into_iter()
            .map(|l| 4 + l.map_or(0, <[u8]>::len))
            .sum();
        let mut encoded = Vec::with_capacity(bytes);
        for labels in endpoints {
            match labels {
                Some(labels) => {
                    let len = u32::try_from(labels.len())
                        .ok()
                        .filter(|&l| l != DROPPED)
                        .expect("labels under 4 GiB");
                    encoded.extend_from_slice(&len.to_le_bytes());
                    encoded.extend_from_slice(labels);
                }
                None => encoded.extend_from_slice(&DROPPED.to_le_bytes()),
            }
        }
        PreparedSeries {
            hash,
            encoded: encoded.into_boxed_slice(),
        }
    }

    /// xxh3 hash of the series' labels with external labels merged.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Each endpoint's encoded labels, in config order; `None` where it drops the series.
    pub fn endpoints(&self) -> Endpoints<'_> {
        Endpoints { rest: &self.encoded }
    }

    /// The encoded labels endpoint `index` sends, or `None` (dropped, or no such endpoint).
    pub fn endpoint(&self, index: usize) -> Option<&[u8]> {
        self.endpoints().nth(index).flatten()
    }
}

impl std::fmt::Debug for PreparedSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lens: Vec<Option<usize>> = self.endpoints().map(|e| e.map(<[u8]>::len)).collect();
        f.debug_struct("PreparedSeries")
            .field("hash", &self.hash)
            .field("label_bytes", &lens)
            .finish()
    }
}

/// Iterator over a [`PreparedSeries`]' endpoints.
pub struct Endpoints<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Endpoints<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len);
        if len == DROPPED {
            self.rest = rest;
            return Some(None);
        }
        let (labels, rest) = rest.split_at_checked(len as usize)?;
        self.rest = rest;
        Some(Some(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_in_order() {
        let s = PreparedSeries::new(7, [Some(&b"abc"[..]), None, Some(b""), Some(b"z")]);
        assert_eq!(
            s.endpoints().collect::<Vec<_>>(),
            [Some(&b"abc"[..]), None, Some(b""), Some(b"z")]
        );
        assert_eq!(
            (s.hash(), s.endpoint(3), s.endpoint(1), s.endpoint(9)),
            (7, Some(&b"z"[..]), None, None)
        );
        assert_eq!(PreparedSeries::new(1, []).endpoints().count(), 0);
    }
}
