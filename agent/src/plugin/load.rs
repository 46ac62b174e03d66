//! Turning a `.wasm` file into code ready to instantiate: read, check the SHA-256, compile (or
//! load the compiled code from the cache), check the imports against the sandbox, link, and
//! pre-instantiate.

use std::fs;
use std::path::Path;

use ring::digest;
use tracing::debug;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;
use super::bindings::TrawlPluginPre;
use super::engine::{self, CodeCache};
use super::sandbox::{self, HostState, LinkError};

/// A compiled, linked plugin: instances are created from it cheaply (at load, after a trap).
pub(super) struct Code {
    /// The pre-instantiated component with its export indices resolved.
    pub(super) pre: TrawlPluginPre<HostState>,
    /// SHA-256 of the file it was compiled from (lowercase hex): hot reload compares it.
    pub(super) sha256: String,
}

/// SHA-256 of `bytes` as lowercase hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles plugin `plugin` from `path`; `expected` is the configured digest, if any.
pub(super) fn compile(
    engine: &Engine,
    cache: Option<&CodeCache>,
    plugin: &str,
    path: &Path,
    expected: Option<&str>,
) -> Result<Code, PluginError> {
    let bytes = fs::read(path).map_err(|source| PluginError::Read {
        plugin: plugin.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let sha256 = sha256_hex(&bytes);
    if let Some(expected) = expected
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(PluginError::Checksum {
            plugin: plugin.to_owned(),
            path: path.to_owned(),
            expected: expected.to_owned(),
            actual: sha256,
        });
    }
    let component = match cache.and_then(|c| c.load(engine, &sha256)) {
        Some(component) => {
            debug!(message = "Loaded compiled plugin from the cache.", plugin, path = %path.display());
            component
        }
        None => {
            let component = Component::new(engine, &bytes).map_err(|e| PluginError::Compile {
                plugin: plugin.to_owned(),
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
            if let Some(cache) = cache {
                cache.store(&sha256, &component);
            }
            engine::release_freed_memory();
            component
        }
    };
    let instantiate = |reason: String| PluginError::Instantiate {
        plugin: plugin.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let linker = sandbox::linker(engine, &component).map_err(|e| match e {
        LinkError::Forbidden(imports) => PluginError::ForbiddenImport {
            plugin: plugin.to_owned(),
            path: path.to_owned(),
            imports,
        },
        LinkError::Link(reason) => instantiate(reason),
    })?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| instantiate(format!("{e:#}")))?;
    let pre = TrawlPluginPre::new(pre).map_err(|e| instantiate(format!("{e:#}")))?;
    Ok(Code { pre, sha256 })
}
