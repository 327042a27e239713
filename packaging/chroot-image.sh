#!/usr/bin/env bash
# A minimal Debian bookworm root (debootstrap --variant=minbase, plus the .deb's dependencies)
# for the package install test, made once from Debian's archive and cached as a tarball,
# keyed by suite. Prints the tarball's path.
#
#   packaging/chroot-image.sh [SUITE]     (default bookworm)
set -euo pipefail
SUITE=${1:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${KUBESUP_BUILD_CACHE:-/var/cache/kubesup-build}
OUT=$CACHE/chroot-$SUITE-minbase.tar.gz
if [ ! -s "$OUT" ]; then
  command -v debootstrap > /dev/null || { echo "chroot-image: debootstrap is missing; run integration/setup-testbed.sh" >&2; exit 1; }
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/chroot-build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "chroot-image: debootstrap $SUITE from $MIRROR (once; cached as $OUT)" >&2
  debootstrap --variant=minbase --include=iptables,conntrack "$SUITE" "$tmp/root" "$MIRROR" > "$tmp/log" 2>&1 \
    || { tail -20 "$tmp/log" >&2; exit 1; }
  tar -C "$tmp/root" -czf "$OUT.tmp" .
  mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
