#!/usr/bin/env bash
# Static release builds of trawl-agent and trawl-collector for Linux musl targets, cross-compiled
# with cargo-zigbuild: zig is the C compiler and linker that wasmtime's C helper and ring need.
#
#   examples/lib/static-build.sh [TARGET...]   (default: x86_64- and aarch64-unknown-linux-musl)
#
# Output, stripped: $TRAWL_STATIC_TARGET_DIR/static/<target>/{trawl-agent,trawl-collector}, and
# static/ca-certificates.crt (this host's CA bundle) for the scratch images; static/ is the
# Docker build context of agent/Dockerfile and collector/Dockerfile.
# TRAWL_STATIC_TARGET_DIR (default ~/.cache/trawl-static-target) is a target dir of its own, so
# these builds neither wait on the workspace's builds nor invalidate them.
set -euo pipefail
cd "$(dirname "$0")/../.."
. examples/lib/install.sh

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
ensure_rust
ensure_static_toolchain "${targets[@]}"
install_debian file:file update-ca-certificates:ca-certificates

export CARGO_TARGET_DIR=${TRAWL_STATIC_TARGET_DIR:-$HOME/.cache/trawl-static-target}
# The release profile, minus line tables, with symbols stripped by the linker.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
out=$CARGO_TARGET_DIR/static
mkdir -p "$out"
cp /etc/ssl/certs/ca-certificates.crt "$out/ca-certificates.crt"

fail() { echo "static-build: $*" >&2; exit 1; }

for target in "${targets[@]}"; do
  case $target in
    x86_64-*) machine=x86-64 ;;
    aarch64-*) machine=aarch64 ;;
    *) fail "unsupported target $target" ;;
  esac
  echo "==> cargo zigbuild --release --target $target (target dir $CARGO_TARGET_DIR)"
  cargo zigbuild --release --locked --target "$target" -p trawl-agent -p trawl-collector
  # TLS is rustls with ring: neither OpenSSL nor aws-lc may creep in through a default feature.
  if cargo tree --locked --target "$target" -p trawl-agent -p trawl-collector -e normal,build \
    --prefix none | grep -E '^(aws-lc|openssl-sys|native-tls)'; then
    fail "$target links OpenSSL or aws-lc"
  fi
  mkdir -p "$out/$target"
  for bin in trawl-agent trawl-collector; do
    dest=$out/$target/$bin
    cp "$CARGO_TARGET_DIR/$target/release/$bin" "$dest.tmp"
    mv "$dest.tmp" "$dest"
    desc=$(file -b "$dest")
    case $desc in *"statically linked"* | *"static-pie linked"*) ;; *) fail "$dest is not static: $desc" ;; esac
    case $desc in *"$machine"*", stripped"*) ;; *) fail "$dest is not a stripped $machine binary: $desc" ;; esac
    echo "    $dest ($(stat -c %s "$dest") bytes)"
  done
done
