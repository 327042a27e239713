#!/usr/bin/env bash
# Builds a release mirror in the upstream path layout from the test bed, so that kubesup's
# end-to-end tests fetch through exactly the code path they use against upstream:
#
#   release/v1.20.2/bin/linux/amd64/NAME          the v1.20.2 binaries setup-testbed.sh built
#   release/v1.20.2/bin/linux/amd64/NAME.sha256   just the hex, as dl.k8s.io publishes it
#   etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz
#                                                 Debian's /usr/bin/etcd and etcdctl, in the
#                                                 upstream tarball layout (top dir etcd-v3.4.23-linux-amd64/)
#   etcd-io/etcd/releases/download/v3.4.23/SHA256SUMS   "<hex>  etcd-v3.4.23-linux-amd64.tar.gz"
#   flannel-io/cni-plugin/releases/download/v1.1.2/cni-plugin-flannel-linux-amd64-v1.1.2.tgz
#                                                 a STAND-IN for flannel's CNI plugin (the release
#                                                 kubesup pairs with v1.20), which is in no
#                                                 reachable registry: `flannel-amd64` at the top,
#                                                 as flannel-io/cni-plugin packs it
#   flannel-io/cni-plugin/releases/download/v1.1.2/cni-plugin-flannel-linux-amd64-v1.1.2.tgz.sha256
#                                                 "<hex>  cni-plugin-flannel-linux-amd64-v1.1.2.tgz"
#
# No flanneld: tests that run one publish their own stand-in in a scratch mirror.
#
# Idempotent: files are replaced only when their content changes, and the tarball is built
# reproducibly (sorted names, fixed mtime and owner, gzip -n), so a rerun yields the same hashes.
# A rerun whose inputs (the binaries' path, size, mtime and inode, and this script) and outputs
# (path, size, mtime) are as the last complete run left them does nothing: hashing and comparing
# about 450 MB took 5 to 7 s of every up.sh and test run. The record is $MIRROR/.fingerprint,
# written last, so a run that fails midway leaves none and the next one rebuilds.
# It does not build Kubernetes: it waits (bounded) for setup-testbed.sh's .built stamp.
#
# Usage: integration/build-mirror.sh [MIRROR_DIR]    (default $KUBESUP_TESTBED_CACHE/mirror)
# Env:   KUBESUP_TESTBED_CACHE (default /var/cache/kubesup-testbed)
#        WAIT_FOR_BUILD_SECS   how long to wait for the stamp (default 1800)
# Prints the mirror directory on its last line.
set -euo pipefail

KUBE_VERSION=v1.20.2
ARCH=amd64
CACHE_ROOT=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
MIRROR=${1:-$CACHE_ROOT/mirror}
K8S_DIR="$CACHE_ROOT/kubernetes-$KUBE_VERSION"
STAMP="$K8S_DIR/.built"
WAIT=${WAIT_FOR_BUILD_SECS:-1800}
KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

log() { printf 'build-mirror: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Wait for the Kubernetes build that setup-testbed.sh runs; never start a second one.
waited=0
while [ ! -f "$STAMP" ]; do
  [ "$waited" -ge "$WAIT" ] && die "no $STAMP after ${WAIT}s; run integration/setup-testbed.sh first"
  [ "$waited" -eq 0 ] && log "waiting for the Kubernetes build ($STAMP)"
  sleep 10; waited=$((waited + 10))
done

for b in etcd etcdctl; do
  [ -x "/usr/bin/$b" ] || die "/usr/bin/$b missing; install Debian's etcd-server and etcd-client"
done
ETCD_VERSION=${ETCD_VERSION:-v$(/usr/bin/etcd --version | sed -n 's/^etcd Version: //p')}
[ "$ETCD_VERSION" != "v" ] || die "cannot tell the version of /usr/bin/etcd"

# install_if_changed SRC DST MODE: atomic (temp file + rename), and a no-op when equal.
install_if_changed() {
  local src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then return 0; fi
  mkdir -p "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
  log "updated ${dst#"$MIRROR"/}"
}

FLANNEL_CNI_VERSION=v1.1.2
kdir="$MIRROR/release/$KUBE_VERSION/bin/linux/$ARCH"
edir="$MIRROR/etcd-io/etcd/releases/download/$ETCD_VERSION"
top="etcd-$ETCD_VERSION-linux-$ARCH"
fcdir="$MIRROR/flannel-io/cni-plugin/releases/download/$FLANNEL_CNI_VERSION"
fcfile="cni-plugin-flannel-linux-$ARCH-$FLANNEL_CNI_VERSION.tgz"
contents="Kubernetes $KUBE_VERSION ($ARCH), etcd $ETCD_VERSION, flannel CNI plugin $FLANNEL_CNI_VERSION (stand-in)"
outputs=("$edir/$top.tar.gz" "$edir/SHA256SUMS" "$fcdir/$fcfile" "$fcdir/$fcfile.sha256")
inputs=(/usr/bin/etcd /usr/bin/etcdctl)
for b in "${KUBE_BINS[@]}"; do
  inputs+=("$K8S_DIR/bin/$b")
  outputs+=("$kdir/$b" "$kdir/$b.sha256")
done
# fingerprint: what a rebuild would depend on and what it left, one line per file. A missing
# file prints nothing (and the record no longer matches).
fingerprint() {
  sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
  echo "$MIRROR $ETCD_VERSION"
  stat -c 'in %n %s %Y %i' "${inputs[@]}" 2>/dev/null || true
  stat -c 'out %n %s %Y' "${outputs[@]}" 2>/dev/null || true
}
record="$MIRROR/.fingerprint"
if [ -f "$record" ] && [ "$(fingerprint)" = "$(cat "$record")" ]; then
  log "mirror up to date: $contents"
  echo "$MIRROR"
  exit 0
fi
rm -f "$record"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for b in "${KUBE_BINS[@]}"; do
  src="$K8S_DIR/bin/$b"
  [ -f "$src" ] || die "$src missing; the test bed build is incomplete"
  install_if_changed "$src" "$kdir/$b" 0755
  # Upstream's NAME.sha256 is the bare hex without a newline.
  sha256sum "$src" | cut -d' ' -f1 | tr -d '\n' > "$tmp/$b.sha256"
  install_if_changed "$tmp/$b.sha256" "$kdir/$b.sha256" 0644
done

mkdir -p "$tmp/$top"
install -m 0755 /usr/bin/etcd /usr/bin/etcdctl "$tmp/$top/"
tar -C "$tmp" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -cf "$tmp/$top.tar" "$top"
gzip -n -6 "$tmp/$top.tar"
install_if_changed "$tmp/$top.tar.gz" "$edir/$top.tar.gz" 0644
printf '%s  %s\n' "$(sha256sum "$edir/$top.tar.gz" | cut -d' ' -f1)" "$top.tar.gz" > "$tmp/SHA256SUMS"
install_if_changed "$tmp/SHA256SUMS" "$edir/SHA256SUMS" 0644

# flannel's CNI plugin: every node that runs pods on flannel's network fetches it. The
# stand-in answers CNI's VERSION and DEL, and refuses ADD in CNI's error format, so a pod that
# would need flannel's network fails saying why instead of hanging.
mkdir -p "$tmp/flannel-cni"
cat > "$tmp/flannel-cni/flannel-$ARCH" <<'STANDIN'
#!/bin/sh
# Test-bed stand-in for flannel's CNI plugin (flannel-io/cni-plugin), in no reachable registry.
case "$CNI_COMMAND" in
  VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
  DEL) exit 0 ;;
  *) echo '{"cniVersion":"0.4.0","code":100,"msg":"test-bed stand-in for flannel'"'"'s CNI plugin: no flannel network here"}'
     exit 1 ;;
esac
STANDIN
chmod 0755 "$tmp/flannel-cni/flannel-$ARCH"
tar -C "$tmp/flannel-cni" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -cf "$tmp/$fcfile.tar" "flannel-$ARCH"
gzip -n -6 -c "$tmp/$fcfile.tar" > "$tmp/$fcfile"
install_if_changed "$tmp/$fcfile" "$fcdir/$fcfile" 0644
printf '%s  %s\n' "$(sha256sum "$fcdir/$fcfile" | cut -d' ' -f1)" "$fcfile" > "$tmp/$fcfile.sha256"
install_if_changed "$tmp/$fcfile.sha256" "$fcdir/$fcfile.sha256" 0644

fingerprint > "$tmp/fingerprint"
mv -f "$tmp/fingerprint" "$record"
log "mirror ready: $contents"
echo "$MIRROR"
