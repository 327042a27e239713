#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it. The checks that need no test bed
# come first, so that a formatting slip or a clippy warning fails in a minute, not after the
# test bed's ~8 minute Kubernetes build:
#   1. cargo fmt --check (needs nothing but the toolchain);
#   2. the build prerequisites (integration/setup-build.sh: protoc for etcd-client, a few
#      Debian packages, seconds);
#   3. clippy (-D warnings, with the [lints] of Cargo.toml);
#   4. cargo deny: licenses, bans, sources (deny.toml), offline, with the cargo-deny that
#      integration/install-cargo-deny.sh keeps in a cache outside the checkout;
#   5. the tests that need no test bed: unit tests (library and binaries), doc tests, the
#      examples' build, and the test crates in UNPRIVILEGED_TESTS below;
#   6. the test bed (Debian packages; Kubernetes v1.20.2 built from Debian's source package
#      into a cache outside the checkout, keyed by version) and the local mirror;
#   7. every other test crate: the PKI tests against real etcd and openssl, the packages, and
#      the real-component tests in integration/ (real etcd, kube-apiserver, kubelet, containerd).
# Each test runs once: step 7 runs exactly the test crates that step 5 did not.
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
# Test crates (tests/*.rs) that need neither the test bed's packages nor its Kubernetes build.
# Any other test crate, including a new one until it is listed here, runs after the test bed,
# with KUBESUP_TESTBED_REQUIRED set, so a missing tool fails it instead of skipping it.
# (tests/pki.rs runs real etcd, tests/packaging.rs dpkg-deb, rpm and debootstrap.)
UNPRIVILEGED_TESTS=(cli fake_component fetch install join layering supervise worker_token)
# One test at a time, as before the split: the real-component tests start whole control
# planes, and the supervision tests time real processes; both on 2 cores.
TEST_ARGS=(-- --test-threads=1)

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "build prerequisites"
integration/setup-build.sh

# Only a directory Cargo made (it tags its target dirs), and only its build profiles; before
# the first build of this run, so nothing this run built is removed.
if [ -f "$CARGO_TARGET_DIR/CACHEDIR.TAG" ]; then
  used=$(du -sk "$CARGO_TARGET_DIR" | cut -f1)
  if [ "$used" -gt "$TARGET_CAP_KB" ]; then
    step "build cache $CARGO_TARGET_DIR is $((used / 1024)) MB (cap $((TARGET_CAP_KB / 1024)) MB): starting it over"
    rm -rf "$CARGO_TARGET_DIR/debug" "$CARGO_TARGET_DIR/release"
  fi
fi

step "cargo clippy -D warnings"
cargo clippy --locked --all-targets --all-features -- -D warnings

step "cargo deny check licenses bans sources"
# Advisories are not checked here: that needs the RustSec database from the network (deny.toml).
# cargo deny reads `cargo metadata` for every target platform, which names crates that a Linux
# build never downloads (Windows-only ones): fetch them all from crates.io first (nothing on a
# machine that has them), so that --offline needs nothing more.
cargo fetch --locked --quiet
deny=$(integration/install-cargo-deny.sh | tail -n1)
PATH="$(dirname "$deny"):$PATH" cargo deny --offline --locked check licenses bans sources

step "tests without the test bed (unit, doc, supervision with the fake component, ...)"
unprivileged=()
for t in "${UNPRIVILEGED_TESTS[@]}"; do unprivileged+=(--test "$t"); done
cargo test --locked --lib --bins --examples "${unprivileged[@]}" "${TEST_ARGS[@]}"
cargo test --locked --doc "${TEST_ARGS[@]}"

step "test bed (cached under $KUBESUP_TESTBED_CACHE)"
integration/setup-testbed.sh
step "local release mirror"
integration/build-mirror.sh >/dev/null

free_kb() { df -Pk "$1" | awk 'NR == 2 {print $4}'; }
for dir in "${TMPDIR:-/tmp}" "$CARGO_TARGET_DIR"; do
  if [ "$(free_kb "$dir")" -lt "$NEED_FREE_KB" ]; then
    echo "test-all: only $(($(free_kb "$dir") / 1024)) MB free for $dir; the tests need $((NEED_FREE_KB / 1024)) MB: free some space and run again" >&2
    exit 1
  fi
done

# Every test crate of the package that step 5 did not run, from Cargo's own list of targets.
testbed=()
while read -r t; do
  [[ " ${UNPRIVILEGED_TESTS[*]} " == *" $t "* ]] || testbed+=(--test "$t")
done < <(cargo metadata --locked --offline --no-deps --format-version 1 |
  jq -r '.packages[] | select(.name == "kubesup") | .targets[] | select(.kind == ["test"]) | .name')
[ "${#testbed[@]}" -gt 0 ] || { echo "test-all: found no test crate that needs the test bed" >&2; exit 1; }

step "tests on the test bed (PKI against etcd, packages, real components)"
export KUBESUP_TESTBED_REQUIRED=1
cargo test --locked "${testbed[@]}" "${TEST_ARGS[@]}"
