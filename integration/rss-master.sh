#!/usr/bin/env bash
# Where a running master's resident memory goes: runs `kubesup master` (cached binaries, the
# test bed's mirror) in a network namespace of its own for 45 s, then prints smaps_rollup and
# the resident size of each mapping over 100 kB, and which sections of kubesup's executable are
# resident (integration/resident-sections.py). Not a pass/fail test.
#
#   integration/rss-master.sh [BIN]     (default: the release build, built if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
BIN=${1:-}
if [ -z "$BIN" ]; then
  cargo build --release --bin kubesup -q
  BIN=$CARGO_TARGET_DIR/release/kubesup
fi
. integration/netns-master.sh
netns_master rss "$BIN"
sleep 45
grep -E '^(Rss|Pss|Pss_Anon|Pss_File|Anonymous):' /proc/"$KP"/smaps_rollup
awk '/^[0-9a-f]+-/ {name = $6 == "" ? "[anon]" : $6} /^Rss:/ {rss[name] += $2}
     END {for (n in rss) if (rss[n] > 100) printf "%8d kB  %s\n", rss[n], n}' /proc/"$KP"/smaps | sort -rn
python3 integration/resident-sections.py "$KP"
