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
NS=ks-rss-$$
WORK=$(mktemp -d /tmp/kubesup-rss.XXXXXX)
KP= MP=
cleanup() {
  [ -n "$KP" ] && kill -TERM "$KP" 2>/dev/null || true
  for _ in $(seq 1 300); do [ -n "$KP" ] && kill -0 "$KP" 2>/dev/null || break; sleep 0.2; done
  [ -n "$MP" ] && kill "$MP" 2>/dev/null || true
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  sleep 1
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 integration/serve-mirror.py --daemon "$KUBESUP_TESTBED_CACHE/mirror" > "$WORK/mirror.out"
MP=$(grep -o 'pid=[0-9]*' "$WORK/mirror.out" | cut -d= -f2)
MIRROR=$(grep -o 'url=[^ ]*' "$WORK/mirror.out" | cut -d= -f2)
nsenter --net=/run/netns/"$NS" -- "$BIN" master --data-dir "$WORK/data" --advertise 127.0.0.1 \
  --node-name rss --kube-version v1.20.2 --etcd-version v3.4.23 --mirror "$MIRROR" > "$WORK/kubesup.log" 2>&1 &
KP=$!
sleep 45
grep -E '^(Rss|Pss|Pss_Anon|Pss_File|Anonymous):' /proc/"$KP"/smaps_rollup
awk '/^[0-9a-f]+-/ {name = $6 == "" ? "[anon]" : $6} /^Rss:/ {rss[name] += $2}
     END {for (n in rss) if (rss[n] > 100) printf "%8d kB  %s\n", rss[n], n}' /proc/"$KP"/smaps | sort -rn
python3 integration/resident-sections.py "$KP"
