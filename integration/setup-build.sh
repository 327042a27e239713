#!/usr/bin/env bash
# Installs what building kubesup needs on a fresh Debian bookworm machine, before any cargo
# build: protoc and the protobuf well-known types (etcd-client compiles etcd's .proto files at
# build time), a C compiler (aws-lc-sys; cargo-deny's crates), and jq (test-all.sh reads
# `cargo metadata` with it). A few packages and seconds: the quick first step of
# integration/test-all.sh. The test bed's packages and its Kubernetes build are
# integration/setup-testbed.sh, which runs this first.
#
# Idempotent: a second run finds the installed packages and does nothing.
set -euo pipefail

PKGS=(protobuf-compiler libprotobuf-dev gcc libc6-dev jq)

log() { printf 'setup-build: %s\n' "$*" >&2; }

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || { echo "setup-build: must run as root to install: ${missing[*]}" >&2; exit 1; }
log "apt-get update"
apt-get update -qq
log "installing: ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
