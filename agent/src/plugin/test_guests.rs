//! Builds the test guest components of `tests/guests/` for the plugin tests and the plugin
//! benchmark (`agent/benches/plugin.rs` includes this file): once per process, in release, for
//! `wasm32-wasip2`, into `<target dir>/guests` (a target directory of their own, so the nested
//! cargo never waits for the lock of the cargo running the tests).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `.wasm` files of the test guests.
pub struct Guests {
    /// `tests/guests/hostile`: behaviour chosen by its config (see its crate docs).
    pub hostile: PathBuf,
    /// `tests/guests/wasi-fs`: imports `wasi:filesystem`, must be refused at load.
    pub wasi_fs: PathBuf,
    /// `tests/guests/sdk-keep`: keeps everything, written with the SDK (the benchmark's SDK case).
    pub sdk_keep: PathBuf,
}

/// Builds the guests on first use. Panics with cargo's output if the build fails (e.g. the
/// `wasm32-wasip2` target is not installed: `rustup target add wasm32-wasip2`).
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| {
        // Read at run time: a test binary built in another clone must use this clone's guests.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let repo = Path::new(&manifest_dir).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("target"))
            .join("guests");
        for name in ["hostile", "wasi-fs", "sdk-keep"] {
            let manifest = repo.join("tests/guests").join(name).join("Cargo.toml");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let output = Command::new(cargo)
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "--target",
                    "wasm32-wasip2",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target)
                // Flags meant for the host build (e.g. target-cpu) must not reach the wasm one.
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("CARGO_BUILD_RUSTFLAGS")
                .output()
                .expect("run cargo to build the test guests");
            assert!(
                output.status.success(),
                "building {} failed:\n{}",
                manifest.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let out = target.join("wasm32-wasip2/release");
        Guests {
            hostile: out.join("hostile.wasm"),
            wasi_fs: out.join("wasi_fs.wasm"),
            sdk_keep: out.join("sdk_keep.wasm"),
        }
    })
}
