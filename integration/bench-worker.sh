#!/usr/bin/env bash
# Benchmark: time from `kubesup worker` start to node Ready, against the same containerd,
# kubelet and kube-proxy started by hand with pre-made certificates, configs and CNI config
# (the very files and command lines kubesup used), in the same run. Cached binaries in both.
# Prints figures; not a pass/fail test.
#
#   integration/bench-worker.sh [RUNS]          (default 5; run as root after test-all.sh)
#
# Layout: a master and a worker, each in its own network namespace on a bridge in a third,
# none with a default route. The worker runs in a mount namespace of its own with /var/log,
# /run/netns and /var/lib/cni bound to its scratch dir. Every process is stopped by PID on
# exit; namespaces and files are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
cargo build --release --bin kubesup -q
BIN=$CARGO_TARGET_DIR/release/kubesup
KUBECTL=$KUBESUP_TESTBED_CACHE/kubernetes-v1.20.2/bin/kubectl
TAG=$$
SW=ksb-sw-$TAG MNS=ksb-m-$TAG WNS=ksb-w-$TAG
MIP=10.79.0.1 WIP=10.79.0.2
WORK=$(mktemp -d /tmp/kubesup-bench-worker.XXXXXX)
MDATA=$WORK/master WDATA=$WORK/worker ROOT=$WORK/root CGROOT=/kubesup-bench-$TAG
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in "$WNS" "$MNS" "$SW"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  done
  # Pods (none are expected: no images) would live in the worker's cgroup root.
  for d in /sys/fs/cgroup/*/"${CGROOT#/}"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  sleep 1
  for ns in "$WNS" "$MNS" "$SW"; do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "${BENCH_KEEP_LOGS:-}" ] && cp "$WORK"/*.log "$BENCH_KEEP_LOGS"/ 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
kc() { ip netns exec "$MNS" "$KUBECTL" --kubeconfig "$MDATA/kubeconfig/admin.conf" --request-timeout=5s "$@"; }
ready() {
  [ "$(kc get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
wait_node_ready() { # NAME: poll every 100 ms, at most 3 minutes
  for _ in $(seq 1 1800); do ready "$1" && return 0; sleep 0.1; done
  echo "bench-worker: node $1 never went Ready" >&2; return 1
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
# in_worker CMD...: in the worker's network and (fresh, private) mount namespace.
in_worker() {
  exec nsenter --net=/run/netns/"$WNS" -- unshare --mount --propagation private -- sh -c '
    set -e; r=$1; shift
    mount --bind "$r/var-log" /var/log
    mount --bind "$r/netns" /run/netns
    mount --bind "$r/cni" /var/lib/cni
    exec "$@"' sh "$ROOT" "$@"
}

ip netns add "$SW"; ip -n "$SW" link set lo up
ip -n "$SW" link add br0 type bridge; ip -n "$SW" link set br0 up
i=0
for pair in "$MNS:$MIP" "$WNS:$WIP"; do
  ns=${pair%%:*} ip=${pair##*:}
  ip netns add "$ns"; ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1
  ip -n "$SW" link add "p$i" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "p$i" master br0; ip -n "$SW" link set "p$i" up
  ip -n "$ns" addr add "$ip/24" dev eth0; ip -n "$ns" link set eth0 up
  i=$((i + 1))
done
mkdir -p "$ROOT"/{var-log,netns,cni} /var/lib/cni /run/netns
for ns in "$MNS" "$WNS"; do
  ip netns exec "$ns" python3 integration/serve-mirror.py --daemon "$KUBESUP_TESTBED_CACHE/mirror" > "$WORK/mirror-$ns.out"
  PIDS+=("$(grep -o 'pid=[0-9]*' "$WORK/mirror-$ns.out" | cut -d= -f2)")
done
murl() { grep -o 'url=[^ ]*' "$WORK/mirror-$1.out" | cut -d= -f2; }

nsenter --net=/run/netns/"$MNS" -- "$BIN" master --data-dir "$MDATA" --advertise "$MIP" \
  --node-name bench-master --kube-version v1.20.2 --etcd-version v3.4.23 --mirror "$(murl "$MNS")" \
  --network none > "$WORK/master.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 1800); do
  [ -S "$MDATA/kubesup.sock" ] && "$BIN" status --data-dir "$MDATA" --json 2>/dev/null \
    | python3 -c 'import json,sys; c=json.load(sys.stdin)["components"]; sys.exit(0 if c and all(x["ready"] for x in c) else 1)' \
    && break
  sleep 0.1
done
TOKEN=$(nsenter --net=/run/netns/"$MNS" -- "$BIN" token create --data-dir "$MDATA" --ttl 1h)
cat > "$WORK/worker.yaml" <<EOF
data-dir: $WDATA
mirror: $(murl "$WNS")
fetch: {etcd-version: v3.4.23}
network: none
kubelet: {cgroup-root: $CGROOT}
EOF
# Binaries cached once, outside the timings.
nsenter --net=/run/netns/"$WNS" -- "$BIN" fetch --config "$WORK/worker.yaml" --role worker \
  --kube-version v1.20.2 > "$WORK/fetch.log" 2>&1 || { cat "$WORK/fetch.log"; exit 1; }

declare -a K H
for run in $(seq 1 "$RUNS"); do
  NODE=bench-w$run
  # kubesup: a data dir with cached binaries only; joins with the token, writes everything.
  find "$WDATA" -mindepth 1 -maxdepth 1 ! -name cache ! -name bin -exec rm -rf {} +
  t0=$(now_ms)
  in_worker "$BIN" worker --config "$WORK/worker.yaml" --node-name "$NODE" \
    --join "https://$MIP:9443" --token "$TOKEN" > "$WORK/worker-$run.log" 2>&1 &
  KP=$!; PIDS+=("$KP")
  wait_node_ready "$NODE"
  K+=($(( $(now_ms) - t0 )))
  for c in containerd kubelet kube-proxy; do
    pid=$(python3 -c "import json;print(json.load(open('$WDATA/children.json'))['$c']['pid'])")
    tr '\0' '\n' < /proc/"$pid"/cmdline > "$WORK/$c.args"
  done
  if [ "$run" -eq "$RUNS" ]; then
    sleep 5
    RSS=$(awk '/VmRSS/ {print $2}' /proc/$KP/status)
  fi
  stop_pid "$KP"
  kc delete node "$NODE" --wait=true > /dev/null

  # By hand: the same three binaries and flags, every file already in place.
  t0=$(now_ms)
  HP=()
  for c in containerd kubelet kube-proxy; do
    mapfile -t A < "$WORK/$c.args"
    in_worker "${A[@]}" > "$WORK/hand-$c.log" 2>&1 &
    HP+=("$!"); PIDS+=("$!")
  done
  wait_node_ready "$NODE"
  H+=($(( $(now_ms) - t0 )))
  for p in "${HP[@]}"; do stop_pid "$p"; done
  kc delete node "$NODE" --wait=true > /dev/null
  echo "run $run: kubesup ${K[-1]} ms, by hand ${H[-1]} ms"
done

KM=$(printf '%s\n' "${K[@]}" | median)
HM=$(printf '%s\n' "${H[@]}" | median)
echo
echo "time to node Ready, median of $RUNS (cached binaries; kubesup includes the join)"
echo "  kubesup worker        ${KM} ms"
echo "  hand-started script   ${HM} ms"
awk -v k="$KM" -v h="$HM" 'BEGIN {printf "  ratio kubesup/hand    %.2f   (target <= 1.15)\n", k / h}'
awk -v r="$RSS" 'BEGIN {printf "kubesup worker RSS with its node Ready: %.1f MiB\n", r / 1024}'
