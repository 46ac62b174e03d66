//! Wasm plugins for the scenarios, built for `wasm32-wasip2` on first use: the example plugins
//! under `plugins/` (workspace packages) and the test-only guests under `tests/guests/`
//! (standalone crates). They build into their own target directory beside the test's, so the
//! build does not wait for the lock of the `cargo test` that runs us.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

/// Serialises builds: cargo would serialise them anyway, with noisier output.
static BUILD: Mutex<()> = Mutex::new(());

/// The workspace root, read at run time (a binary built in another clone must not use that
/// clone's sources).
fn workspace_root() -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    Path::new(&manifest).parent().expect("tests/ has a parent").to_owned()
}

/// `<target>/wasm-plugins`, beside the directory holding the test executable's `deps/`.
fn wasm_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    profile_dir.parent().expect("target dir").join("wasm-plugins")
}

/// The `.wasm` of example plugin `plugins/<name>` (e.g. `redact`), built in release.
///
/// # Errors
/// When the build fails (its output is in the error) or produces no file.
pub fn example_plugin(name: &str) -> Result<PathBuf> {
    build(&["-p", &format!("trawl-plugin-{name}")], &name.replace('-', "_"))
}

/// The `.wasm` of test guest `tests/guests/<name>` (`hostile`, `wasi-fs`), built in release.
///
/// # Errors
/// As [`example_plugin`].
pub fn test_guest(name: &str) -> Result<PathBuf> {
    let manifest = workspace_root().join("tests/guests").join(name).join("Cargo.toml");
    let manifest = manifest.to_str().context("non-UTF-8 path")?.to_owned();
    build(&["--manifest-path", &manifest], &name.replace('-', "_"))
}

fn build(selection: &[&str], lib: &str) -> Result<PathBuf> {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let target_dir = wasm_target_dir();
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        .args(selection)
        .output()
        .context("run cargo build for wasm32-wasip2")?;
    if !output.status.success() {
        bail!(
            "building {lib}.wasm failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let wasm = target_dir.join("wasm32-wasip2/release").join(format!("{lib}.wasm"));
    if !wasm.is_file() {
        bail!("{} missing after the build", wasm.display());
    }
    Ok(wasm)
}
