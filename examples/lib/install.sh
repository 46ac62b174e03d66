# Shared by the README's commands: install what is missing, skip what is there.
# Needs root (or sudo) for Debian packages.

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# install_debian COMMAND:PACKAGE... — installs PACKAGE when COMMAND is not on PATH.
install_debian() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "${pair%%:*}" >/dev/null 2>&1 \
      || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> apt-get install ${missing[*]}"
  _as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
}

# install_pip MODULE:PACKAGE... — pip-installs PACKAGE when python3 cannot import MODULE.
install_pip() {
  local pair
  for pair in "$@"; do
    python3 -c "import ${pair%%:*}" 2>/dev/null && continue
    echo "==> pip install ${pair#*:}"
    python3 -m pip install -q "${pair#*:}" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "${pair#*:}"
  done
}

# ensure_rust — the pinned toolchain must be there; it cannot be installed from here.
ensure_rust() {
  command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust 1.95 with rustup" >&2; exit 1; }
}

# ensure_wasm_target — the target plugins are built for (`cargo build --target wasm32-wasip2`).
ensure_wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 && return 0
  echo "==> rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
}

# ensure_static_toolchain TARGET... — what `cargo zigbuild` needs for static musl builds: the
# Rust targets, zig (PyPI `ziglang`, which cargo-zigbuild runs as `python3 -m ziglang`) and
# cargo-zigbuild itself (pinned: newer releases may need a newer rustc than ours).
CARGO_ZIGBUILD_VERSION=0.24.1
ensure_static_toolchain() {
  local target
  for target in "$@"; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" && continue
    echo "==> rustup target add $target"
    rustup target add "$target"
  done
  install_pip ziglang:ziglang
  command -v cargo-zigbuild >/dev/null 2>&1 && return 0
  echo "==> cargo install cargo-zigbuild $CARGO_ZIGBUILD_VERSION"
  cargo install cargo-zigbuild --version "$CARGO_ZIGBUILD_VERSION" --locked
}
