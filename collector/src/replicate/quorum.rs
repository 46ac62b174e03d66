//! The answer to a replicated request from what each owner did, as Thanos Receive's quorum
//! (`pkg/receive/handler.go`): a series is stored once `RF/2 + 1` of its owners stored it; an
//! owner that refused samples for good (409 conflict, 400) also settles the series, since a retry
//! would be refused again.

use axum::http::StatusCode;

use super::plan::Plan;

/// What one owner did with its part of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything stored (exact duplicates included).
    Stored,
    /// Refused for good in part or whole (4xx other than 429); what could be stored was.
    Refused {
        /// The owner's status.
        status: StatusCode,
        /// The owner's one-line reason.
        reason: String,
    },
    /// Not stored: unreachable, 5xx, 429 until the forward deadline, or skipped while the
    /// peer backs off.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The decision over a whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every series reached quorum and nothing was refused: 200.
    Stored,
    /// Every series reached quorum but some owner refused samples: answer `status`.
    Refused {
        /// The first refusing owner's address.
        endpoint: String,
        /// Its status (400 wins over 409).
        status: StatusCode,
        /// Its reason.
        reason: String,
    },
    /// Some series did not reach quorum: 503, the sender retries.
    NoQuorum {
        /// Series short of quorum.
        failed_series: usize,
        /// Series in the request.
        series: usize,
        /// Owners needed per series.
        quorum: usize,
        /// The first failure seen, `address: reason`.
        first_failure: String,
    },
}

/// Owners that must store a series, `RF/2 + 1`.
pub fn quorum(rf: usize) -> usize {
    rf / 2 + 1
}

/// Whether the answer is already 200 whatever the outcomes still missing (`None`) turn out to
/// be: every series is stored by a quorum of its owners and no owner refused anything.
pub fn stored_by_quorum(plan: &Plan, outcomes: &[Option<Outcome>]) -> bool {
    let needed = quorum(plan.replication_factor());
    let refused = outcomes.iter().any(|o| matches!(o, Some(Outcome::Refused { .. })));
    !refused
        && (0..plan.series()).all(|i| {
            let stored = plan
                .owners(i)
                .iter()
                .filter(|&&slot| matches!(outcomes.get(slot as usize), Some(Some(Outcome::Stored))))
                .count();
            stored >= needed
        })
}

/// Decides the request from `outcomes[slot]` (`None`: the slot owns none of the series).
pub fn decide(plan: &Plan, outcomes: &[Option<Outcome>]) -> Verdict {
    let needed = quorum(plan.replication_factor());
    let mut failed_series = 0;
    for i in 0..plan.series() {
        let settled = plan
            .owners(i)
            .iter()
            .filter(|&&slot| {
                matches!(
                    outcomes.get(slot as usize),
                    Some(Some(Outcome::Stored | Outcome::Refused { .. }))
                )
            })
            .count();
        if settled < needed {
            failed_series += 1;
        }
    }
    let slots = || {
        outcomes
            .iter()
            .enumerate()
            .filter_map(|(slot, o)| o.as_ref().map(|o| (slot, o)))
    };
    if failed_series > 0 {
        let first_failure = slots()
            .find_map(|(slot, o)| match o {
                Outcome::Failed { reason } => Some(format!("{}: {reason}", plan.address(slot))),
                _ => None,
            })
            .unwrap_or_default();
        return Verdict::NoQuorum {
            failed_series,
            series: plan.series(),
            quorum: needed,
            first_failure,
        };
    }
    let refused = slots()
        .filter_map(|(slot, o)| match o {
            Outcome::Refused { status, reason } => Some((slot, *status, reason)),
            _ => None,
        })
        .min_by_key(|(_, status, _)| (*status != StatusCode::BAD_REQUEST, status.as_u16()));
    match refused {
        Some((slot, status, reason)) => Verdict::Refused {
            endpoint: plan.address(slot).to_owned(),
            status,
            reason: reason.clone(),
        },
        None => Verdict::Stored,
    }
}
