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

step() { printf '\n==> %s\n' "$*"; }

step "test bed (cached under $KUBESUP_TESTBED_CACHE)"
integration/setup-testbed.sh
step "local release mirror"
integration/build-mirror.sh >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --all-targets --all-features -- -D warnings

step "tests (unit, supervision, real components)"
# The real-component tests start whole control planes: one at a time on 2 cores.
export KUBESUP_TESTBED_REQUIRED=1
cargo test -- --test-threads=1
