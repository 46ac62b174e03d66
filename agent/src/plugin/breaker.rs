//! Circuit breaker per plugin: after [`FAILURES_TO_OPEN`] consecutive failed calls the plugin is
//! skipped for [`OPEN_FOR`] (its policy applies), then one trial call decides: success closes the
//! breaker, failure opens it again.

use std::time::{Duration, Instant};

/// Consecutive failed calls that open the breaker.
pub(super) const FAILURES_TO_OPEN: u32 = 5;
/// How long an open breaker skips calls before a trial call.
pub(super) const OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; counts consecutive failures.
    Closed { failures: u32 },
    /// Calls are skipped until the instant.
    Open { until: Instant },
    /// The next call is a trial.
    HalfOpen,
}

/// One plugin's breaker. Calls are serialised by the plugin's lock, so a half-open breaker lets
/// exactly one trial call through before it is decided.
#[derive(Debug, Clone)]
pub(super) struct Breaker {
    state: State,
    open_for: Duration,
}

impl Breaker {
    pub(super) fn new(open_for: Duration) -> Breaker {
        Breaker {
            state: State::Closed { failures: 0 },
            open_for,
        }
    }

    /// Whether a call may go through at `now`; an open breaker whose time is up turns half-open.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Open { until } if now < until => false,
            State::Open { .. } => {
                self.state = State::HalfOpen;
                true
            }
            State::Closed { .. } | State::HalfOpen => true,
        }
    }

    /// Records a successful call; returns whether the breaker was open or half-open and closed.
    pub(super) fn success(&mut self) -> bool {
        let was_open = !matches!(self.state, State::Closed { .. });
        self.state = State::Closed { failures: 0 };
        was_open
    }

    /// Records a failed call at `now`; returns whether the breaker opened.
    pub(super) fn failure(&mut self, now: Instant) -> bool {
        let failures = match self.state {
            State::Closed { failures } => failures + 1,
            State::HalfOpen | State::Open { .. } => FAILURES_TO_OPEN,
        };
        if failures >= FAILURES_TO_OPEN {
            self.state = State::Open {
                until: now + self.open_for,
            };
            true
        } else {
            self.state = State::Closed { failures };
            false
        }
    }

    /// Closes the breaker (after a reload: the new code gets a fresh start).
    pub(super) fn reset(&mut self) {
        self.state = State::Closed { failures: 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_five_consecutive_failures() {
        let now = Instant::now();
        let mut b = Breaker::new(OPEN_FOR);
        for _ in 0..4 {
            assert!(b.allow(now));
            assert!(!b.failure(now));
        }
        assert!(b.failure(now), "the fifth failure opens");
        assert!(!b.allow(now));
        assert!(!b.allow(now + OPEN_FOR - Duration::from_millis(1)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let now = Instant::now();
        let mut b = Breaker::new(OPEN_FOR);
        for _ in 0..4 {
            b.failure(now);
        }
        assert!(!b.success(), "closed stays closed");
        for _ in 0..4 {
            assert!(!b.failure(now));
        }
        assert!(b.allow(now));
    }

    #[test]
    fn half_open_trial_decides() {
        let now = Instant::now();
        let mut b = Breaker::new(OPEN_FOR);
        for _ in 0..5 {
            b.failure(now);
        }
        let later = now + OPEN_FOR;
        assert!(b.allow(later), "trial call");
        assert!(b.failure(later), "a failed trial opens again at once");
        assert!(!b.allow(later + Duration::from_secs(1)));
        let much_later = later + OPEN_FOR;
        assert!(b.allow(much_later));
        assert!(b.success(), "a good trial closes");
        assert!(b.allow(much_later));
        assert!(!b.failure(much_later), "count starts again from zero");
    }
}
