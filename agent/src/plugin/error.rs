//! Errors of loading and watching plugins. Calls never fail (a failed call applies the plugin's
//! `on_error` policy), except for [`StaleSymbols`].

use std::path::PathBuf;

/// Why a plugin could not be loaded, reloaded or watched. Every variant names the plugin (its
/// config name) and the file, so `check-plugin` and the agent's log can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The wasmtime engine could not be configured (a build or platform problem).
    #[error("cannot create the plugin engine: {0}")]
    Engine(String),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the plugin epoch ticker")]
    Ticker(#[source] std::io::Error),
    /// The `.wasm` file could not be read.
    #[error("plugin {plugin}: cannot read {path}")]
    Read {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file's SHA-256 differs from the configured `sha256`.
    #[error("plugin {plugin}: {path} has sha256 {actual}, the config expects {expected}")]
    Checksum {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The configured digest (lowercase hex).
        expected: String,
        /// The file's digest (lowercase hex).
        actual: String,
    },
    /// The file is not a valid component, or not one wasmtime can compile.
    #[error("plugin {plugin}: cannot compile {path}: {reason}")]
    Compile {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        reason: String,
    },
    /// The component imports interfaces Trawl does not grant (files, sockets, clocks, …).
    #[error(
        "plugin {plugin}: {path} imports {}, not granted to plugins (allowed: trawl:plugin/host and \
         the wasi:cli, wasi:io and wasi:random interfaces Rust's std links)",
        imports.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    )]
    ForbiddenImport {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// Every import not granted, by full name, e.g. `wasi:filesystem/types@0.2.6`.
        imports: Vec<String>,
    },
    /// The component does not implement the `trawl:plugin` world, or cannot be instantiated.
    #[error("plugin {plugin}: {path} cannot be instantiated as a trawl:plugin@0.1.0 component: {reason}")]
    Instantiate {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        reason: String,
    },
    /// `init` rejected the plugin's `config:`.
    #[error("plugin {plugin}: {path} rejected its config: {reason}")]
    InvalidConfig {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The plugin's message.
        reason: String,
    },
    /// `init` trapped, timed out, ran out of memory or failed.
    #[error("plugin {plugin}: {path} failed in init ({reason}): {message}")]
    Init {
        /// Config name of the plugin.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The failure kind, as the `reason` label of `trawl_agent_plugin_errors_total`.
        reason: &'static str,
        /// What happened.
        message: String,
    },
    /// The file watcher for hot reload could not start.
    #[error("cannot start the plugin file watcher")]
    Watcher(#[source] notify::Error),
    /// A plugin's directory could not be watched for hot reload.
    #[error("plugin {plugin}: cannot watch {path} for changes")]
    Watch {
        /// Config name of the plugin.
        plugin: String,
        /// The watched directory.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
}

/// [`Plugin::process`](super::Plugin::process) was given a batch built under an older symbol
/// generation: rebuild the batch under a fresh [`Symbols::lock`](super::Symbols::lock) and call
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch built under symbol generation {batch}, the table is at generation {current}")]
pub struct StaleSymbols {
    /// The batch's generation.
    pub batch: u32,
    /// The table's current generation.
    pub current: u32,
}
