//! Guest SDK for Trawl Wasm plugins.
//!
//! A plugin is a type implementing [`Plugin`], registered with [`register_plugin!`] and built
//! with `cargo build --release --target wasm32-wasip2`. The SDK hides wit-bindgen and the
//! symbol protocol of `wit/plugin.wit`: a plugin reads [`Batch`]es through views with plain
//! `&str` access and records edits, which the SDK turns into the WIT `outcome`.
//!
//! ```
//! use trawl_plugin_sdk::{Batch, Error, Plugin, register_plugin, serde_json};
//!
//! struct DropDebug;
//!
//! impl Plugin for DropDebug {
//!     const NAME: &'static str = "drop-debug";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     fn new(_config: serde_json::Value) -> Result<Self, Error> {
//!         Ok(DropDebug)
//!     }
//!     fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
//!         for series in batch.series() {
//!             if series.metric_name().starts_with("debug_") {
//!                 batch.drop(series.index())?;
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! register_plugin!(DropDebug);
//! ```
//!
//! Layout:
//! - `plugin` — the [`Plugin`] trait, [`Needs`], [`Stage`], [`Error`], label-name rules.
//! - `batch` / `view` — [`Batch`] (edits → outcome) and its views [`Series`], [`Labels`].
//! - `symbols` — the guest's symbol table and its lazy reverse map; `memo` — [`SymbolMemo`],
//!   per-string caches keyed by symbol id.
//! - `runtime` — `init` / `process` / `reset-symbols` over the WIT types, shared by the Wasm
//!   glue and the native harness.
//! - `wire` — the WIT types: wit-bindgen's in Wasm, stand-ins natively.
//! - `guest` — wit-bindgen glue and the panic hook (Wasm only).
//! - [`log`] — logging through the host; `testing` — the native harness (native only);
//!   `regex` — Prometheus-style anchored regexes for configs (feature `regex`).
//!
//! Reading allocates nothing per series: views index the flat lists the host sent, and each
//! string is stored once in the symbol table. A batch left alone yields a verdict list of zeros
//! and no edits.

mod batch;
#[cfg(target_arch = "wasm32")]
mod guest;
pub mod log;
mod memo;
mod plugin;
#[cfg(feature = "regex")]
pub mod regex;
mod runtime;
mod symbols;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod view;
mod wire;

pub use batch::Batch;
pub use memo::{Symbol, SymbolMemo};
pub use plugin::{Error, Needs, Plugin, STALE_NAN_BITS, Stage, is_stale_marker, is_valid_label_name, parse_config};
pub use serde_json;
pub use view::{Labels, LabelsIter, Series, SeriesIter};

/// Used by [`register_plugin!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::guest::{bindings, install_panic_hook};
    pub use crate::runtime::Runtime;
}

/// Exports a [`Plugin`] type as the component's `trawl:plugin/plugin` implementation.
///
/// Call it once, at the root of the plugin's crate. In a `wasm32` build it generates the
/// component exports; natively it only checks that the type implements [`Plugin`], so the
/// crate's unit tests build and link without Wasm.
// rustfmt re-indents the nested `export!` call on every run; the layout here is by hand.
#[rustfmt::skip]
#[macro_export]
macro_rules! register_plugin {
    ($plugin:ty) => {
        const _: fn() = || {
            fn is_plugin<P: $crate::Plugin>() {}
            is_plugin::<$plugin>();
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::bindings::exports::trawl::plugin::plugin as exports;
            use $crate::__private::bindings::trawl::plugin::types as wit;

            ::std::thread_local! {
                static RUNTIME: ::core::cell::RefCell<$crate::__private::Runtime<$plugin>> =
                    ::core::cell::RefCell::new($crate::__private::Runtime::new());
            }

            struct Export;

            impl exports::Guest for Export {
                fn init(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<wit::PluginInfo, wit::PluginError> {
                    $crate::__private::install_panic_hook();
                    RUNTIME.with_borrow_mut(|runtime| runtime.init(&config_json))
                }

                fn process(batch: wit::Batch) -> ::core::result::Result<wit::Outcome, wit::PluginError> {
                    RUNTIME.with_borrow_mut(|runtime| runtime.process(batch))
                }

                fn reset_symbols() {
                    RUNTIME.with_borrow_mut(|runtime| runtime.reset_symbols())
                }
            }

            $crate::__private::bindings::export!(Export with_types_in $crate::__private::bindings);
        };
    };
}
