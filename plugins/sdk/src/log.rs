//! Logging from a plugin: lines go to the agent's log through the host's `log` import,
//! attributed to the plugin and rate-limited by the host (about 10 lines/s), so logging once per
//! batch is fine and logging once per series is not.
//!
//! A guest has no stderr (no WASI capability is granted), so `eprintln!` output is lost; use
//! these functions. In native builds the lines are captured per thread and the
//! `testing` harness hands them back.

/// Severity of a log line, as the WIT `host.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Verbose detail, hidden unless the agent logs at debug.
    Debug,
    /// Normal operation.
    Info,
    /// Something the user should look at.
    Warn,
    /// A failure.
    Error,
}

/// Writes `message` at `level` to the agent's log.
pub fn write(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::guest::bindings::trawl::plugin::host;
        let level = match level {
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    capture::push(level, message);
}

/// Writes `message` at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Writes `message` at info level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Writes `message` at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Writes `message` at error level.
pub fn error(message: &str) {
    write(Level::Error, message);
}

/// Native capture buffer: one per thread, so parallel `#[test]`s do not see each other's lines.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod capture {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    /// Appends one line to this thread's buffer.
    pub(crate) fn push(level: Level, message: &str) {
        LINES.with_borrow_mut(|lines| lines.push((level, message.to_owned())));
    }

    /// Takes every line captured on this thread so far.
    pub(crate) fn take() -> Vec<(Level, String)> {
        LINES.with_borrow_mut(std::mem::take)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn lines_are_captured_in_order_with_their_level() {
        debug("d");
        info("i");
        warn("w");
        error("e");
        assert_eq!(
            capture::take(),
            vec![
                (Level::Debug, "d".to_owned()),
                (Level::Info, "i".to_owned()),
                (Level::Warn, "w".to_owned()),
                (Level::Error, "e".to_owned()),
            ]
        );
        assert!(capture::take().is_empty(), "take empties the buffer");
    }
}
