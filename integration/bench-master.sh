#!/usr/bin/env bash
# Benchmark: time from `kubesup master` start (cached binaries; PKI and config included) to the
# API server's /readyz, against the same etcd and kube-apiserver started by hand with a
# pre-made PKI and the very command lines kubesup used. Also kubesup's own RSS and CPU while
# the control plane idles. Prints figures; not a pass/fail test.
#
#   integration/bench-master.sh [RUNS]          (default 5; run as root after test-all.sh)
#
# Then the same with `--schedulable`: time from `kubesup master` start to node Ready, against
# all seven components (etcd, apiserver, controller-manager, scheduler, containerd, kubelet,
# kube-proxy) started by hand with the same command lines and files.
#
# Everything runs in a network namespace this script creates, on 127.0.0.1 (and, for the
# schedulable node, 10.77.0.2 on a bridge) inside it; the schedulable node also gets its own
# mount namespace (/var/log, /run/netns, /var/lib/cni bound to the scratch dir) and kubelet
# cgroup root. Every process it starts is stopped by PID on exit, and the namespace, cgroups
# and files are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
cargo build --release --bin kubesup -q
BIN=$CARGO_TARGET_DIR/release/kubesup
NS=ks-bench-$$
WORK=$(mktemp -d /tmp/kubesup-bench-master.XXXXXX)
DATA=$WORK/data
PIDS=()

CGROOT=/kubesup-bench-master-$$
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for d in /sys/fs/cgroup/*/"${CGROOT#/}"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
readyz() {
  ip netns exec "$NS" curl -sk --max-time 1 --cacert "$1/pki/ca.crt" --cert "$1/pki/admin.crt" \
    --key "$1/pki/admin.key" "https://127.0.0.1:6443/readyz" 2>/dev/null | grep -qx ok
}
etcd_health() {
  ip netns exec "$NS" curl -sk --max-time 1 --cacert "$1/pki/etcd/ca.crt" \
    --cert "$1/pki/etcd/healthcheck-client.crt" --key "$1/pki/etcd/healthcheck-client.key" \
    "https://127.0.0.1:2379/health" 2>/dev/null | grep -q '"health":"true"'
}
wait_ready() { # DIR: poll /readyz every 50 ms, at most 3 minutes
  for _ in $(seq 1 3600); do readyz "$1" && return 0; sleep 0.05; done
  echo "bench-master: /readyz never answered" >&2; return 1
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }

ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" python3 integration/serve-mirror.py --daemon "$KUBESUP_TESTBED_CACHE/mirror" > "$WORK/mirror.out"
MIRROR=$(grep -o 'url=[^ ]*' "$WORK/mirror.out" | cut -d= -f2)
PIDS+=("$(grep -o 'pid=[0-9]*' "$WORK/mirror.out" | cut -d= -f2)")
ARGS=(--data-dir "$DATA" --advertise 127.0.0.1 --node-name bench --kube-version v1.20.2
      --etcd-version v3.4.23 --mirror "$MIRROR" --network flannel)
# Binaries cached once, outside the timings.
nsenter --net=/run/netns/$NS -- "$BIN" fetch "${ARGS[@]}" > /dev/null 2>&1

declare -a K H
for run in $(seq 1 "$RUNS"); do
  # kubesup: a data dir with cached binaries only (no PKI, no config, no etcd data).
  rm -rf "$DATA"/{pki,kubeconfig,components,etcd,logs,state,children.json,addons}
  t0=$(now_ms)
  nsenter --net=/run/netns/$NS -- "$BIN" master "${ARGS[@]}" > "$WORK/kubesup.log" 2>&1 &
  KP=$!; PIDS+=("$KP")
  wait_ready "$DATA"
  K+=($(( $(now_ms) - t0 )))
  # Keep the exact command lines and the PKI for the hand-started baseline.
  ETCD_PID=$(python3 -c "import json;print(json.load(open('$DATA/children.json'))['etcd']['pid'])")
  API_PID=$(python3 -c "import json;print(json.load(open('$DATA/children.json'))['kube-apiserver']['pid'])")
  tr '\0' '\n' < /proc/$ETCD_PID/cmdline > "$WORK/etcd.args"
  tr '\0' '\n' < /proc/$API_PID/cmdline > "$WORK/apiserver.args"
  if [ "$run" -eq "$RUNS" ]; then
    sleep 5
    RSS=$(awk '/VmRSS/ {print $2}' /proc/$KP/status)
    C0=$(awk '{print $14+$15}' /proc/$KP/stat); sleep 20; C1=$(awk '{print $14+$15}' /proc/$KP/stat)
    CPU=$(awk -v d=$((C1 - C0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", d / hz / 20 * 100}')
  fi
  stop_pid "$KP"

  # By hand: the same binaries and flags, a pre-made PKI, a fresh etcd data dir.
  rm -rf "$DATA/etcd"
  t0=$(now_ms)
  mapfile -t EA < "$WORK/etcd.args"
  nsenter --net=/run/netns/$NS -- "${EA[@]}" > "$WORK/etcd.log" 2>&1 &
  EP=$!; PIDS+=("$EP")
  for _ in $(seq 1 1200); do etcd_health "$DATA" && break; sleep 0.05; done
  mapfile -t AA < "$WORK/apiserver.args"
  nsenter --net=/run/netns/$NS -- "${AA[@]}" > "$WORK/apiserver.log" 2>&1 &
  AP=$!; PIDS+=("$AP")
  wait_ready "$DATA"
  H+=($(( $(now_ms) - t0 )))
  stop_pid "$AP"; stop_pid "$EP"
  echo "run $run: kubesup ${K[-1]} ms, by hand ${H[-1]} ms"
done

KM=$(printf '%s\n' "${K[@]}" | median)
HM=$(printf '%s\n' "${H[@]}" | median)
echo
echo "time to /readyz, median of $RUNS (cached binaries; kubesup includes PKI and config)"
echo "  kubesup master        ${KM} ms"
echo "  hand-started script   ${HM} ms"
awk -v k="$KM" -v h="$HM" 'BEGIN {printf "  ratio kubesup/hand    %.2f   (target <= 1.15)\n", k / h}'
awk -v r="$RSS" -v c="$CPU" 'BEGIN {printf "kubesup while the control plane idles: RSS %.1f MiB (target <= 10), CPU %s%% of a core\n", r / 1024, c}'

# ---- schedulable master: time to node Ready ----
ip -n "$NS" link add ksbr0 type bridge
ip -n "$NS" addr add 10.77.0.2/24 dev ksbr0
ip -n "$NS" link set ksbr0 up
ip netns exec "$NS" sysctl -q -w net.ipv4.ip_forward=1
SDATA=$WORK/sched ROOT=$WORK/root
mkdir -p "$ROOT"/{var-log,netns,cni} /var/lib/cni /run/netns
cat > "$WORK/sched.yaml" <<EOF
data-dir: $SDATA
advertise: 10.77.0.2
node-name: bench-sched
kube-version: v1.20.2
mirror: $MIRROR
fetch: {etcd-version: v3.4.23}
network: none
schedulable: true
kubelet: {cgroup-root: $CGROOT}
EOF
in_ns() { # CMD...: in the namespace, and in a fresh private mount namespace
  exec nsenter --net=/run/netns/"$NS" -- unshare --mount --propagation private -- sh -c '
    set -e; r=$1; shift
    mount --bind "$r/var-log" /var/log
    mount --bind "$r/netns" /run/netns
    mount --bind "$r/cni" /var/lib/cni
    exec "$@"' sh "$ROOT" "$@"
}
kc() {
  ip netns exec "$NS" "$KUBESUP_TESTBED_CACHE/kubernetes-v1.20.2/bin/kubectl" \
    --kubeconfig "$SDATA/kubeconfig/admin.conf" --request-timeout=2s "$@"
}
node_ready() { # poll every 100 ms, at most 4 minutes
  for _ in $(seq 1 2400); do
    [ "$(kc get node bench-sched -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && return 0
    sleep 0.1
  done
  echo "bench-master: node never went Ready" >&2; return 1
}
nsenter --net=/run/netns/"$NS" -- "$BIN" fetch --config "$WORK/sched.yaml" > /dev/null 2>&1
COMPS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)
declare -a SK SH
for run in $(seq 1 "$RUNS"); do
  find "$SDATA" -mindepth 1 -maxdepth 1 ! -name cache ! -name bin -exec rm -rf {} +
  t0=$(now_ms)
  in_ns "$BIN" master --config "$WORK/sched.yaml" > "$WORK/sched.log" 2>&1 &
  KP=$!; PIDS+=("$KP")
  node_ready
  SK+=($(( $(now_ms) - t0 )))
  for c in "${COMPS[@]}"; do
    pid=$(python3 -c "import json;print(json.load(open('$SDATA/children.json'))['$c']['pid'])")
    tr '\0' '\n' < /proc/"$pid"/cmdline > "$WORK/$c.args"
  done
  if [ "$run" -eq "$RUNS" ]; then
    sleep 5
    SRSS=$(awk '/VmRSS/ {print $2}' /proc/$KP/status)
  fi
  stop_pid "$KP"

  # By hand: a pre-made PKI, configs and CNI config; a fresh etcd.
  rm -rf "$SDATA/etcd"
  HP=()
  start() {
    mapfile -t A < "$WORK/$1.args"
    in_ns "${A[@]}" > "$WORK/hand-$1.log" 2>&1 &
    HP+=("$!"); PIDS+=("$!")
  }
  t0=$(now_ms)
  start etcd
  for _ in $(seq 1 1200); do etcd_health "$SDATA" && break; sleep 0.05; done
  start kube-apiserver
  wait_ready "$SDATA"
  for c in kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do start "$c"; done
  node_ready
  SH+=($(( $(now_ms) - t0 )))
  for ((i = ${#HP[@]} - 1; i >= 0; i--)); do stop_pid "${HP[$i]}"; done
  echo "schedulable run $run: kubesup ${SK[-1]} ms, by hand ${SH[-1]} ms"
done
SKM=$(printf '%s\n' "${SK[@]}" | median)
SHM=$(printf '%s\n' "${SH[@]}" | median)
echo
echo "schedulable master, time to node Ready, median of $RUNS (kubesup includes PKI and config)"
echo "  kubesup master --schedulable   ${SKM} ms"
echo "  hand-started script            ${SHM} ms"
awk -v k="$SKM" -v h="$SHM" 'BEGIN {printf "  ratio kubesup/hand             %.2f   (target <= 1.15)\n", k / h}'
awk -v r="$SRSS" 'BEGIN {printf "kubesup RSS with the node Ready: %.1f MiB\n", r / 1024}'
