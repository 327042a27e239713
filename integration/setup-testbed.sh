#!/usr/bin/env bash
# Installs everything the real-component test bed needs on a fresh Debian bookworm machine,
# and builds Kubernetes v1.20.2 from Debian's own `kubernetes` source package into a cache
# outside the checkout, keyed by version, so that only a new machine pays the ~8 minute build.
#
# Idempotent: a second run finds the stamp file and the installed packages and does nothing.
# Usage: integration/setup-testbed.sh            (prints the cache directory on its last line)
set -euo pipefail

KUBE_VERSION=v1.20.2
DEB_SRC_VERSION="1.20.5+really1.20.2"
CACHE_ROOT=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
K8S_DIR="$CACHE_ROOT/kubernetes-$KUBE_VERSION"
STAMP="$K8S_DIR/.built"
# The build recipe's revision keys the cache beside the version: a build made by an older
# recipe (its stamp names another revision, or none) is replaced, not reused.
# r2: reflect2 1.0.2 over the vendored 1.0.1 (below).
RECIPE=r2
built() { [ -f "$STAMP" ] && grep -qx "recipe $RECIPE" "$STAMP"; }

log() { printf 'setup-testbed: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { echo "setup-testbed: must run as root (it installs Debian packages)" >&2; exit 1; }

# First what building kubesup needs (protoc and friends), so this script alone still leaves
# a machine that can build and test it (integration/up.sh runs only this).
"$(dirname "$0")/setup-build.sh"

PKGS=(etcd-server etcd-client containerd runc
      containernetworking-plugins iptables conntrack socat iproute2 runit busybox-static
      openssl curl jq rsync dpkg-dev golang-go rpm debootstrap systemd util-linux procps
      python3 gcc libc6-dev golang-github-modern-go-reflect2-dev systemd-container)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# A deb-src entry for the same archive as the binary entry, so `apt-get source` works.
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  src=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
  if [ -n "$src" ]; then
    sed 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/kubesup-deb-src.sources
  else
    grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/kubesup-deb-src.list
  fi
  NEED_UPDATE=1
fi

if [ "${#missing[@]}" -gt 0 ] || [ -n "${NEED_UPDATE:-}" ] || ! built; then
  log "apt-get update"
  apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  # No systemd runs as PID 1 here, so installing etcd-server/containerd starts nothing.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! built; then
  log "building Kubernetes $KUBE_VERSION from Debian's source package (about 8 minutes on 2 cores)"
  mkdir -p "$CACHE_ROOT"
  work="$CACHE_ROOT/src-$KUBE_VERSION"
  rm -rf "$work"; mkdir -p "$work"
  ( cd "$work" && apt-get source --download-only -qq kubernetes >/dev/null )
  tar -C "$work" -xzf "$work/kubernetes_${DEB_SRC_VERSION}.orig.tar.gz"
  tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
  # v1.20.2 vendors modern-go/reflect2 1.0.1, which breaks on Go 1.18 and later: built with
  # Debian's Go 1.19, kube-apiserver dies with SIGSEGV in UnsafeMapType.UnsafeIterate when
  # json-iterator encodes some maps (custom-resource creates). Debian ships the fixed 1.0.2.
  r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -f "$r2/reflect2.go" ] || { echo "setup-testbed: $r2 is missing: install golang-github-modern-go-reflect2-dev" >&2; exit 1; }
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r "$r2" "$tree/vendor/github.com/modern-go/reflect2"
  ( cd "$tree" && KUBE_GIT_VERSION=$KUBE_VERSION KUBE_GIT_TREE_STATE=clean KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl" >&2 )
  rm -rf "$K8S_DIR"; mkdir -p "$K8S_DIR/bin"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    install -m 0755 "$tree/_output/local/bin/linux/amd64/$b" "$K8S_DIR/bin/$b"
  done
  # Keep pause.c for the pod tests; the rest of the tree (several GB with _output) goes.
  install -D -m 0644 "$tree/build/pause/linux/pause.c" "$K8S_DIR/src/pause.c"
  rm -rf "$work"
  printf 'recipe %s\nbuilt %s\n' "$RECIPE" "$(date -u +%FT%TZ)" > "$STAMP"
  log "built into $K8S_DIR"
fi
echo "$K8S_DIR"
