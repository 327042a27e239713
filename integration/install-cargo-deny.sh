#!/usr/bin/env bash
# Installs cargo-deny (the licenses/bans/sources check of deny.toml) from crates.io into a
# cache outside the checkout, keyed by its version, so that only a new machine, or a new
# version here, pays for compiling it (a few minutes on 2 cores).
#
# Idempotent: a second run finds the binary and does nothing.
# Usage: integration/install-cargo-deny.sh        (prints the cargo-deny binary on its last line)
# Needs the build prerequisites (integration/setup-build.sh: a C compiler for its crates).
set -euo pipefail

# 0.20.2 declares rust-version 1.88, below the pinned toolchain (rust-toolchain.toml).
# --locked builds it with the dependency versions its release was tested with.
VERSION=0.20.2
TOOLS=${KUBESUP_TOOLS:-/var/cache/kubesup-build/tools}
ROOT=$TOOLS/cargo-deny-$VERSION
BIN="$ROOT/bin/cargo-deny"

log() { printf 'install-cargo-deny: %s\n' "$*" >&2; }

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; then
  echo "$BIN"
  exit 0
fi

log "compiling cargo-deny $VERSION into $ROOT (only on a new machine: minutes)"
mkdir -p "$ROOT"
# The tools' own build directory, shared with packaging/build.sh's tools and never the
# project's CARGO_TARGET_DIR (test-all.sh exports that, and cargo install would otherwise
# fill the project's build cache with cargo-deny's tree).
start=$SECONDS
env -u CARGO_INCREMENTAL CARGO_TARGET_DIR="$TOOLS/target" \
  cargo install --locked --quiet --version "$VERSION" --root "$ROOT" cargo-deny >&2
log "installed in $((SECONDS - start)) s"
echo "$BIN"
