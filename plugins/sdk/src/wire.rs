//! The WIT types of `wit/plugin.wit` as the SDK's runtime sees them.
//!
//! In a Wasm build these are wit-bindgen's generated types, so a batch reaches the plugin without
//! a copy. In a native build (tests, the `testing` harness) they are plain
//! structs with the same names and fields, the way redpanda's transform SDK pairs `abi` with
//! `stub_abi`. Both builds compile the same runtime against them, so a field added to the WIT
//! breaks the native build too until the stub follows.

#[cfg(target_arch = "wasm32")]
pub use crate::guest::bindings::trawl::plugin::types::{
    Batch, Needs, Outcome, PluginError, PluginInfo, RemoveLabel, SetLabel, SetValue, Stage, Text,
};

#[cfg(not(target_arch = "wasm32"))]
pub use stub::*;

/// Native stand-ins for the generated types; field names and shapes follow `wit/plugin.wit`.
#[cfg(not(target_arch = "wasm32"))]
mod stub {
    /// `types.stage`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Stage {
        /// `relabel`.
        Relabel,
        /// `filter`.
        Filter,
        /// `write`.
        Write,
    }

    wit_bindgen::rt::bitflags::bitflags! {
        /// `types.needs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct Needs: u8 {
            /// `values`.
            const VALUES = 1 << 0;
            /// `timestamps`.
            const TIMESTAMPS = 1 << 1;
            /// `target-labels`.
            const TARGET_LABELS = 1 << 2;
        }
    }

    /// `types.plugin-info`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct PluginInfo {
        /// `name`.
        pub name: String,
        /// `version`.
        pub version: String,
        /// `needs`.
        pub needs: Needs,
    }

    /// `types.plugin-error`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum PluginError {
        /// `invalid-config(string)`.
        InvalidConfig(String),
        /// `symbol-gap(u32)`.
        SymbolGap(u32),
        /// `failed(string)`.
        Failed(String),
    }

    /// `types.batch`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Batch {
        /// `stage`.
        pub stage: Stage,
        /// `symbol-base`.
        pub symbol_base: u32,
        /// `new-symbols`.
        pub new_symbols: Vec<String>,
        /// `labels`.
        pub labels: Vec<u32>,
        /// `offsets`.
        pub offsets: Vec<u32>,
        /// `values`.
        pub values: Vec<f64>,
        /// `timestamps-ms`.
        pub timestamps_ms: Vec<i64>,
        /// `target-labels`.
        pub target_labels: Vec<u32>,
    }

    /// `types.text`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Text {
        /// `symbol(u32)`.
        Symbol(u32),
        /// `new(string)`.
        New(String),
    }

    /// `types.set-label`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SetLabel {
        /// `series`.
        pub series: u32,
        /// `name`.
        pub name: Text,
        /// `value`.
        pub value: Text,
    }

    /// `types.remove-label`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RemoveLabel {
        /// `series`.
        pub series: u32,
        /// `name`.
        pub name: u32,
    }

    /// `types.set-value`.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct SetValue {
        /// `series`.
        pub series: u32,
        /// `value`.
        pub value: f64,
    }

    /// `types.outcome`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Outcome {
        /// `verdicts`.
        pub verdicts: Vec<u8>,
        /// `set-labels`.
        pub set_labels: Vec<SetLabel>,
        /// `remove-labels`.
        pub remove_labels: Vec<RemoveLabel>,
        /// `set-values`.
        pub set_values: Vec<SetValue>,
    }
}
