#!/usr/bin/env bash
# Builds kubesup's .deb (cargo-deb) and .rpm (cargo-generate-rpm) from the metadata in
# Cargo.toml. The two tools are installed once into /var/cache/kubesup-build/tools, keyed by
# version (a new pinned version installs beside the old). Prints the two package paths.
#
#   packaging/build.sh [OUT_DIR]    (default $CARGO_TARGET_DIR/packages)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
TOOLS=${KUBESUP_TOOLS:-/var/cache/kubesup-build/tools}
CARGO_DEB_VERSION=3.8.0
CARGO_RPM_VERSION=0.21.1
OUT=${1:-$CARGO_TARGET_DIR/packages}

tool() { # NAME VERSION: path of the installed tool, installing it on first use
  local name=$1 version=$2 root="$TOOLS/$1-$2"
  if [ ! -x "$root/bin/$name" ]; then
    echo "packaging: installing $name $version into $root" >&2
    CARGO_TARGET_DIR="$TOOLS/target" cargo install -q --locked --root "$root" "$name" --version "$version" >&2
  fi
  echo "$root/bin/$name"
}
DEB=$(tool cargo-deb "$CARGO_DEB_VERSION")
RPM=$(tool cargo-generate-rpm "$CARGO_RPM_VERSION")

cargo build --release --bin kubesup -q
mkdir -p "$OUT"
"$DEB" --no-build --no-strip --output "$OUT" -q >&2
"$RPM" --target-dir "$CARGO_TARGET_DIR" --output "$OUT" >&2
ls -1 "$OUT"/kubesup_*.deb "$OUT"/kubesup-*.rpm
