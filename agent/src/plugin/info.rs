//! What a plugin's `init` reports about itself.

use super::bindings::trawl::plugin::types;

/// Optional columns a plugin asked for at `init` (WIT `needs`); columns not asked for are sent
/// empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Sample values (filter stage only).
    pub values: bool,
    /// Sample timestamps (filter stage only).
    pub timestamps: bool,
    /// The target's labels (all stages).
    pub target_labels: bool,
}

/// What `init` returned (WIT `plugin-info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin's own name, e.g. `drop-labels` (not the config name).
    pub name: String,
    /// The plugin's own version, e.g. `0.1.0`.
    pub version: String,
    /// Columns the plugin wants in every batch.
    pub needs: Needs,
}

impl From<types::PluginInfo> for PluginInfo {
    fn from(info: types::PluginInfo) -> PluginInfo {
        PluginInfo {
            name: info.name,
            version: info.version,
            needs: Needs {
                values: info.needs.contains(types::Needs::VALUES),
                timestamps: info.needs.contains(types::Needs::TIMESTAMPS),
                target_labels: info.needs.contains(types::Needs::TARGET_LABELS),
            },
        }
    }
}
