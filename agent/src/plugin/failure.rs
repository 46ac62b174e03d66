//! Why one call failed; each kind is a `reason` of `trawl_agent_plugin_errors_total`.

use super::StaleSymbols;

/// A failed call (or init). The policy then decides the batch; see [`Failure::reason`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Failure {
    /// The epoch deadline passed (`timeout`).
    Timeout,
    /// The instance hit its memory (or table) limit (`memory`).
    Memory(String),
    /// Any other trap, including a panic in the guest (`trap`).
    Trap(String),
    /// The outcome broke the contract (`invalid_output`).
    InvalidOutput(String),
    /// The plugin returned `plugin-error` (`plugin_error`).
    PluginError(String),
    /// The circuit breaker is open; the plugin was not called (`breaker_open`).
    BreakerOpen,
    /// Not a failure: the batch must be rebuilt.
    Stale(StaleSymbols),
}

impl Failure {
    /// Every reason, for pre-initialising metric series.
    pub(super) const REASONS: [&'static str; 6] = [
        "timeout",
        "memory",
        "trap",
        "invalid_output",
        "plugin_error",
        "breaker_open",
    ];

    /// The `reason` label value.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Memory(_) => "memory",
            Failure::Trap(_) => "trap",
            Failure::InvalidOutput(_) => "invalid_output",
            Failure::PluginError(_) | Failure::Stale(_) => "plugin_error",
            Failure::BreakerOpen => "breaker_open",
        }
    }

    /// Whether the instance is unusable afterwards (a trap leaves it poisoned), so the next call
    /// needs a fresh one.
    pub(super) fn poisons_instance(&self) -> bool {
        matches!(self, Failure::Timeout | Failure::Memory(_) | Failure::Trap(_))
    }

    /// What happened, for the log.
    pub(super) fn message(&self) -> String {
        match self {
            Failure::Timeout => "the call exceeded its timeout".into(),
            Failure::Memory(m) | Failure::Trap(m) | Failure::InvalidOutput(m) | Failure::PluginError(m) => m.clone(),
            Failure::BreakerOpen => "the circuit breaker is open".into(),
            Failure::Stale(stale) => stale.to_string(),
        }
    }

    /// Classifies an error of a guest call; `limit_hit` says whether the store's limiter refused a
    /// growth during it. The message is the root cause (e.g. ``wasm `unreachable` instruction
    /// executed``), without the wasm backtrace, which names only function indices.
    pub(super) fn from_call(error: &wasmtime::Error, limit_hit: bool) -> Failure {
        let message = || error.root_cause().to_string();
        if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            Failure::Timeout
        } else if limit_hit {
            Failure::Memory(message())
        } else {
            Failure::Trap(message())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_are_classified() {
        let interrupt = wasmtime::Error::new(wasmtime::Trap::Interrupt);
        assert_eq!(
            Failure::from_call(&interrupt, true),
            Failure::Timeout,
            "a deadline wins"
        );
        let unreachable = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached).context("at wasm backtrace");
        let trap = Failure::from_call(&unreachable, false);
        assert_eq!(trap.reason(), "trap");
        assert_eq!(
            trap.message(),
            wasmtime::Trap::UnreachableCodeReached.to_string(),
            "root cause only"
        );
        assert_eq!(Failure::from_call(&unreachable, true).reason(), "memory");
        assert!(trap.poisons_instance() && Failure::Timeout.poisons_instance());
        assert!(!Failure::InvalidOutput(String::new()).poisons_instance());
        assert!(!Failure::PluginError(String::new()).poisons_instance());
        assert!(Failure::REASONS.contains(&Failure::BreakerOpen.reason()));
    }
}
