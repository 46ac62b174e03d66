//! wit-bindgen glue, compiled for `wasm32` only: natively the `host` imports would not link.
//!
//! [`register_plugin!`](crate::register_plugin) expands, in the plugin's crate, to an
//! implementation of the generated `Guest` trait that forwards to a thread-local
//! [`Runtime`](crate::runtime::Runtime), plus the generated `export!` macro that emits the
//! component's exports. The generated export macro is public (`pub_export_macro`) because it
//! runs in the plugin's crate, not here.

use crate::log::{self, Level};
use std::sync::Once;

/// Generated from `wit/plugin.wit`, world `trawl-plugin`.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "trawl-plugin",
        pub_export_macro: true,
        default_bindings_module: "trawl_plugin_sdk::__private::bindings",
    });
}

/// Routes panic messages to the host's log at error level: a guest has no stderr, and the
/// host only sees a bare trap. Installed once, at the first `init`.
pub fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log::write(Level::Error, &format!("plugin panicked: {info}"));
        }));
    });
}
