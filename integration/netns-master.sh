# Sourced by the benchmark scripts that measure one master (rss-master.sh, bench-hung.sh):
# `netns_master NAME BIN` starts the test bed's mirror and `kubesup master` (the test bed's
# binaries) in a network namespace of its own, loopback only, and sets KP (kubesup's PID),
# WORK (its temporary dir; data dir WORK/data, log WORK/kubesup.log) and NS. The EXIT trap it
# installs stops kubesup (SIGTERM, bounded wait), the mirror, whatever else runs in that
# namespace, and removes the namespace and WORK, even when the caller fails.
KP= MP= NS= WORK=
netns_master_cleanup() {
  [ -n "$KP" ] && kill -TERM "$KP" 2>/dev/null || true
  for _ in $(seq 1 300); do [ -n "$KP" ] && kill -0 "$KP" 2>/dev/null || break; sleep 0.2; done
  [ -n "$MP" ] && kill "$MP" 2>/dev/null || true
  # Only what runs in the script's own namespace.
  [ -n "$NS" ] && { ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; }
  sleep 1
  [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null || true
  [ -n "$WORK" ] && rm -rf "$WORK"
}
netns_master() {
  local name=$1 bin=$2
  NS=ks-$name-$$
  WORK=$(mktemp -d "/tmp/kubesup-$name.XXXXXX")
  trap netns_master_cleanup EXIT
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip netns exec "$NS" python3 integration/serve-mirror.py --daemon "$KUBESUP_TESTBED_CACHE/mirror" > "$WORK/mirror.out"
  MP=$(grep -o 'pid=[0-9]*' "$WORK/mirror.out" | cut -d= -f2)
  local mirror
  mirror=$(grep -o 'url=[^ ]*' "$WORK/mirror.out" | cut -d= -f2)
  nsenter --net=/run/netns/"$NS" -- "$bin" master --data-dir "$WORK/data" --advertise 127.0.0.1 \
    --node-name "$name" --kube-version v1.20.2 --etcd-version v3.4.23 --mirror "$mirror" > "$WORK/kubesup.log" 2>&1 &
  KP=$!
}
