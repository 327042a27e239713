#!/usr/bin/env bash
# The Debian root that integration/systemd.rs boots with systemd-nspawn, to run the .deb's
# service under a real systemd: bookworm minbase with systemd as init, dbus, and what the .deb
# needs (iptables, conntrack; libc6 and libgcc-s1 come with minbase), and what it recommends for
# a node that runs pods (containerd, runc, the CNI plugins), as apt would install. Deliberately WITHOUT
# ca-certificates: kubesup must run from a local mirror on a root with no trust store (#16).
#
# Made once with debootstrap from Debian's archive and cached as a tarball under
# $KUBESUP_BUILD_CACHE (default /var/cache/kubesup-build), keyed by a hash of the suite, the
# package list and this recipe's revision, so a change to any of them makes a new root beside
# the old one instead of reusing a stale one. Concurrent runs wait for each other (flock).
#
#   integration/systemd-root.sh [SUITE]     (default bookworm)    prints the tarball's path
set -euo pipefail
SUITE=${1:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${KUBESUP_BUILD_CACHE:-/var/cache/kubesup-build}
# r2: containerd.service masked. Bump it when the steps below change what ends up in the root.
RECIPE=r2
PKGS=systemd,systemd-sysv,dbus,iproute2,iptables,conntrack,netbase,procps,libgcc-s1,containerd,runc,containernetworking-plugins
EXCLUDE=ca-certificates

log() { printf 'systemd-root: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }

command -v systemd-nspawn > /dev/null || { log "systemd-nspawn is missing; run integration/setup-testbed.sh"; exit 1; }
command -v debootstrap > /dev/null || { log "debootstrap is missing; run integration/setup-testbed.sh"; exit 1; }

key=$(printf '%s\n' "$RECIPE" "$SUITE" "$PKGS" "exclude=$EXCLUDE" | sha256sum | cut -c1-16)
OUT=$CACHE/systemd-root-$SUITE-$key.tar.gz
mkdir -p "$CACHE"
exec 9> "$CACHE/systemd-root.lock"
flock -w 900 9 || { log "another build holds $CACHE/systemd-root.lock"; exit 1; }

if [ ! -s "$OUT" ]; then
  tmp=$(mktemp -d "$CACHE/systemd-root-build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "debootstrap $SUITE from $MIRROR (once; cached as $OUT)"
  debootstrap --variant=minbase --include="$PKGS" --exclude="$EXCLUDE" "$SUITE" "$tmp/root" "$MIRROR" \
    > "$tmp/log" 2>&1 || { tail -20 "$tmp/log" >&2; exit 1; }
  r=$tmp/root
  if [ -e "$r/usr/share/ca-certificates" ] || [ -e "$r/etc/ssl/certs/ca-certificates.crt" ]; then
    log "ca-certificates got into the root; the test needs a root without it"
    exit 1
  fi
  # A machine ID, so journald keeps a journal and systemctl does not run first-boot setup.
  systemd-machine-id-setup --root="$r" > /dev/null 2>&1 || echo 0123456789abcdef0123456789abcdef > "$r/etc/machine-id"
  # A booted container needs no getty, no network management and no periodic jobs; they only
  # cost start-up time and log noise. Masking keeps `systemctl is-system-running` at `running`.
  # containerd is there for kubesup to run (a schedulable master), not as the distro's service.
  for u in containerd.service console-getty.service getty@.service systemd-networkd.service systemd-resolved.service \
      systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
      e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer; do
    ln -sf /dev/null "$r/etc/systemd/system/$u"
  done
  # Persistent journal in memory only (the root is unpacked fresh for every run).
  mkdir -p "$r/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\n' > "$r/etc/systemd/journald.conf.d/kubesup-test.conf"
  echo kubesup-it > "$r/etc/hostname"
  rm -rf "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"*
  tar -C "$r" --numeric-owner -czf "$OUT.tmp" .
  mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
