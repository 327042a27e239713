#!/usr/bin/env bash
# How fast a hung component is replaced: runs `kubesup master` (the test bed's mirror and
# binaries) in a network namespace of its own, then, ROUNDS times each, SIGSTOPs etcd and
# kube-apiserver and measures from the SIGSTOP until `kubesup status` shows a new PID for it,
# ready. Prints each figure and the median per component. Not a pass/fail test.
#
# With the default probe settings, what bounds it: the liveness probes (a check every 5 s with
# a 2 s timeout; once one fails, rechecked after 1 s, or at once with a 1 s timeout when it got
# no answer, until 3 in a row have failed), then
# SIGTERM + SIGCONT and at most the 1 s unhealthy grace, then the component's own start-up.
#
#   integration/bench-hung.sh [ROUNDS] [BIN]     (default 3 rounds; the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
ROUNDS=${1:-3}
BIN=${2:-}
if [ -z "$BIN" ]; then
  cargo build --bin kubesup -q
  BIN=$CARGO_TARGET_DIR/debug/kubesup
fi
. integration/netns-master.sh
netns_master hung "$BIN"

status() { "$BIN" status --data-dir "$WORK/data" --json 2>/dev/null || true; }
# pid_ready NAME: "PID READY" of a component, from kubesup's own status.
pid_ready() { status | jq -r --arg n "$1" '.components[] | select(.name == $n) | "\(.pid) \(.ready)"'; }
now_ms() { date +%s%3N; }

# Bounded: the control plane comes up in well under 4 minutes here.
for _ in $(seq 1 1200); do
  [ "$(status | jq -r '[.components[].ready] | all' 2>/dev/null)" = true ] && break
  kill -0 "$KP" 2>/dev/null || { tail -20 "$WORK/kubesup.log"; exit 1; }
  sleep 0.2
done
echo "control plane ready"

for c in etcd kube-apiserver; do
  figures=()
  for r in $(seq 1 "$ROUNDS"); do
    read -r old ready < <(pid_ready "$c")
    [ "$ready" = true ] || { echo "$c not ready before round $r" >&2; exit 1; }
    t0=$(now_ms)
    kill -STOP "$old"
    got=
    # Bounded at 120 s per round: more than any setting this measures.
    for _ in $(seq 1 2400); do
      read -r pid ready < <(pid_ready "$c")
      if [ "$pid" != "$old" ] && [ "$pid" != null ] && [ "$ready" = true ]; then got=$(( $(now_ms) - t0 )); break; fi
      sleep 0.05
    done
    [ -n "$got" ] || { echo "$c: no ready replacement within 120 s" >&2; exit 1; }
    figures+=("$got")
    printf '%s round %d: SIGSTOP to a ready replacement in %d ms\n' "$c" "$r" "$got"
    # Let every component settle (and the restart count go stable) before the next round.
    for _ in $(seq 1 600); do
      [ "$(status | jq -r '[.components[].ready] | all' 2>/dev/null)" = true ] && break
      sleep 0.2
    done
    sleep 12
  done
  median=$(printf '%s\n' "${figures[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%s: median %d ms over %d rounds (%s)\n' "$c" "$median" "$ROUNDS" "${figures[*]}"
done
