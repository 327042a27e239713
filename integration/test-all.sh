#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it:
#   1. installs the test bed (Debian packages; Kubernetes v1.20.2 built from Debian's source
#      package into a cache outside the checkout, keyed by version) and builds the local mirror;
#   2. checks formatting and clippy (-D warnings);
#   3. runs every test: unit tests, the supervision tests with the fake component, and the
#      real-component tests in integration/ (real etcd, kube-apiserver, kubelet, containerd).
# Must run as root (it installs packages, and the real-component tests create network
# namespaces). Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."

export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
# Cargo's build cache lives outside the checkout too, so a fresh clone does not rebuild the
# dependency tree (aws-lc, tonic) from scratch.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
# A whole-suite run gains nothing from incremental state (gigabytes, kept per session).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Cargo never removes what older builds left: every change of features or profile leaves a
# new set of test executables beside the old ones. Start the cache over past a bound.
TARGET_CAP_KB=$((8 * 1024 * 1024))
# The real-component tests copy the fetched binaries (~450 MB) into each node's data dir and
# run etcd and containerd on disk.
NEED_FREE_KB=$((4 * 1024 * 1024))

step() { printf '\n==> %s\n' "$*"; }

step "test bed (cached under $KUBESUP_TESTBED_CACHE)"
integration/setup-testbed.sh
step "local release mirror"
integration/build-mirror.sh >/dev/null

# Only a directory Cargo made (it tags its target dirs), and only its build profiles.
if [ -f "$CARGO_TARGET_DIR/CACHEDIR.TAG" ]; then
  used=$(du -sk "$CARGO_TARGET_DIR" | cut -f1)
  if [ "$used" -gt "$TARGET_CAP_KB" ]; then
    step "build cache $CARGO_TARGET_DIR is $((used / 1024)) MB (cap $((TARGET_CAP_KB / 1024)) MB): starting it over"
    rm -rf "$CARGO_TARGET_DIR/debug" "$CARGO_TARGET_DIR/release"
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

free_kb() { df -Pk "$1" | awk 'NR == 2 {print $4}'; }
for dir in "${TMPDIR:-/tmp}" "$CARGO_TARGET_DIR"; do
  if [ "$(free_kb "$dir")" -lt "$NEED_FREE_KB" ]; then
    echo "test-all: only $(($(free_kb "$dir") / 1024)) MB free for $dir; the tests need $((NEED_FREE_KB / 1024)) MB: free some space and run again" >&2
    exit 1
  fi
done

step "tests (unit, supervision, real components)"
# The real-component tests start whole control planes: one at a time on 2 cores.
export KUBESUP_TESTBED_REQUIRED=1
cargo test -- --test-threads=1
