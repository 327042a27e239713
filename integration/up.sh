#!/usr/bin/env bash
# Brings up a real Kubernetes control plane on this machine with kubesup, from the test bed's
# real components (etcd 3.4 from Debian, Kubernetes v1.20.2 built from Debian's source
# package), fetched through the same mirror code path as production.
#
#   integration/up.sh          install what is missing, build kubesup, start the cluster
#   integration/up.sh down     stop it (SIGTERM: reverse order) and remove its state
#
# The cluster lives in its own network namespace (`kubesup-demo`), so nothing it runs touches
# this machine's interfaces or iptables; reach it with `ip netns exec kubesup-demo ...`.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=kubesup-demo
STATE=${KUBESUP_DEMO_DIR:-/var/lib/kubesup-demo}
DATA=$STATE/data
export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
KUBECTL=$KUBESUP_TESTBED_CACHE/kubernetes-v1.20.2/bin/kubectl

down() {
  if [ -f "$STATE/kubesup.pid" ]; then
    pid=$(cat "$STATE/kubesup.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  if [ -f "$STATE/mirror.pid" ]; then kill "$(cat "$STATE/mirror.pid")" 2>/dev/null || true; fi
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$STATE"
  echo "kubesup demo cluster stopped and removed"
}

if [ "${1:-}" = "down" ]; then down; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "up.sh: run as root (it installs packages and creates a network namespace)" >&2; exit 1; }
if [ -f "$STATE/kubesup.pid" ] && kill -0 "$(cat "$STATE/kubesup.pid")" 2>/dev/null; then
  echo "up.sh: a demo cluster is already running (pid $(cat "$STATE/kubesup.pid")); stop it with: integration/up.sh down" >&2
  exit 1
fi

integration/setup-testbed.sh >/dev/null
integration/build-mirror.sh >/dev/null
cargo build --release --bin kubesup
BIN=$CARGO_TARGET_DIR/release/kubesup

mkdir -p "$STATE"
ip netns add "$NS" 2>/dev/null || true
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 integration/serve-mirror.py --daemon "$KUBESUP_TESTBED_CACHE/mirror" > "$STATE/mirror.out"
MIRROR=$(grep -o 'url=[^ ]*' "$STATE/mirror.out" | cut -d= -f2)
grep -o 'pid=[0-9]*' "$STATE/mirror.out" | cut -d= -f2 > "$STATE/mirror.pid"

nsenter --net=/run/netns/$NS -- "$BIN" master \
  --data-dir "$DATA" --advertise 127.0.0.1 --node-name demo \
  --kube-version v1.20.2 --etcd-version v3.4.23 --mirror "$MIRROR" \
  > "$STATE/kubesup.log" 2>&1 &
echo $! > "$STATE/kubesup.pid"

for _ in $(seq 1 600); do
  if "$BIN" status --data-dir "$DATA" >/dev/null 2>&1; then break; fi
  kill -0 "$(cat "$STATE/kubesup.pid")" 2>/dev/null || { tail -20 "$STATE/kubesup.log"; exit 1; }
  sleep 0.5
done
"$BIN" status --data-dir "$DATA"
cat <<EOM

The control plane is up (kubesup pid $(cat "$STATE/kubesup.pid"), log $STATE/kubesup.log).
  ip netns exec $NS $KUBECTL --kubeconfig $DATA/kubeconfig/admin.conf get componentstatuses
  $BIN status --data-dir $DATA
Stop and remove it with: integration/up.sh down
EOM
