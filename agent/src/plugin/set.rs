//! The plugins of one agent config, by name: loaded at start, reused across reloads when their
//! `plugins:` entry is unchanged, and handed out per stage to jobs and endpoints.

use std::collections::HashMap;

use super::{Plugin, PluginError, PluginHost, Stage, StagePlugins};
use crate::config::PluginConfig;

/// Every `plugins:` entry of the running config, loaded. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PluginSet {
    host: Option<PluginHost>,
    loaded: HashMap<String, (PluginConfig, Plugin)>,
}

impl PluginSet {
    /// Loads every entry of `configs` with `host` (blocking: compiles), reusing the plugins of
    /// `previous` whose entry is unchanged so their instances and symbol tables survive a
    /// reload.
    ///
    /// # Errors
    /// The first entry that fails to load ([`PluginHost::load`]); nothing is replaced then.
    pub fn load(host: &PluginHost, configs: &[PluginConfig], previous: &PluginSet) -> Result<PluginSet, PluginError> {
        let mut loaded = HashMap::with_capacity(configs.len());
        for cfg in configs {
            let plugin = match previous.loaded.get(&cfg.name) {
                Some((old, plugin)) if old == cfg => plugin.clone(),
                _ => host.load(cfg)?,
            };
            loaded.insert(cfg.name.clone(), (cfg.clone(), plugin));
        }
        Ok(PluginSet {
            host: Some(host.clone()),
            loaded,
        })
    }

    /// Every loaded plugin, for hot-reload watching.
    pub fn plugins(&self) -> Vec<Plugin> {
        self.loaded.values().map(|(_, p)| p.clone()).collect()
    }

    /// The plugins `names` (in that order) at `stage`. Names are validated by the config, so an
    /// unknown one can only come from a caller bug; it is skipped.
    pub fn stage<'a>(&self, stage: Stage, names: impl IntoIterator<Item = &'a str>) -> StagePlugins {
        let plugins: Vec<Plugin> = names
            .into_iter()
            .filter_map(|name| self.loaded.get(name).map(|(_, p)| p.clone()))
            .collect();
        match &self.host {
            Some(host) if !plugins.is_empty() => StagePlugins::new(stage, plugins, host),
            _ => StagePlugins::none(stage),
        }
    }
}
