//! Hot reload: watches the directories of the plugins' files and reloads a plugin when its
//! file's content changes. Directories rather than files, so replacing a file by rename (editors,
//! `cp` + `mv`, Kubernetes ConfigMap symlink swaps) is seen too; [`Plugin::reload`] compares
//! SHA-256s, so unrelated events in the directory cost one read of each file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache};
use tracing::warn;

use super::{Plugin, PluginError};

/// Quiet time after the last event before reloading, so a file being written is read whole.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches plugin files until dropped; see [`PluginHost::watch`](super::PluginHost::watch).
pub struct PluginWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginWatcher").finish_non_exhaustive()
    }
}

/// The absolute directory of `path` (the current directory for a bare file name).
fn dir_of(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

pub(super) fn watch(plugins: &[Plugin]) -> Result<PluginWatcher, PluginError> {
    let watched: Vec<(PathBuf, Plugin)> = plugins.iter().map(|p| (dir_of(&p.config().path), p.clone())).collect();
    let handled = watched.clone();
    let handler = move |result: DebounceEventResult| {
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for error in errors {
                    warn!(message = "Plugin watch error.", %error);
                }
                return;
            }
        };
        // Compiling runs here, on the debouncer's thread: off every caller's path.
        for (dir, plugin) in &handled {
            if events.iter().any(|e| e.paths.iter().any(|p| p.starts_with(dir))) {
                // Failures are logged and counted by `reload`; the running instance stays.
                let _ = plugin.reload(false);
            }
        }
    };
    let watch_error = |plugin: &Plugin, path: &Path, source| PluginError::Watch {
        plugin: plugin.name().to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut debouncer = notify_debouncer_full::new_debouncer(DEBOUNCE, None, handler).map_err(PluginError::Watcher)?;
    let mut dirs = BTreeSet::new();
    for (dir, plugin) in &watched {
        if dirs.insert(dir.clone()) {
            debouncer
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| watch_error(plugin, dir, source))?;
        }
    }
    Ok(PluginWatcher { _debouncer: debouncer })
}
