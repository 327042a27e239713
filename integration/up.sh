#!/usr/bin/env bash
# Brings up a real two-node Kubernetes cluster on this machine with kubesup, from the test bed's
# real components (etcd 3.4 from Debian, Kubernetes v1.20.2 built from Debian's source package,
# containerd and runc from Debian), fetched through the same mirror code path as production:
# a master (schedulable, so it is a node too) and a worker that joins it with a token, each in
# its own network namespace on a bridge, and a small workload running on both.
#
#   integration/up.sh          install what is missing, build kubesup, start the cluster
#   integration/up.sh down     stop it and remove everything it made (safe to run twice)
#
# Nothing it runs touches this machine's interfaces, routes or iptables: the nodes live in
# network namespaces with no default route (10.79.0.1 and 10.79.0.2 on a bridge in a third
# namespace), and each kubesup also runs in a mount namespace of its own, where /var/log,
# /run/netns and /var/lib/cni are the node's own directories (two kubelets on one machine would
# otherwise share them), with its own kubelet cgroup root.
#
# The cluster runs kubesup's defaults where the test bed allows: `network: flannel` (with the
# host-gw backend, as a bridge between two namespaces wants), and the worker fetches every
# binary from its master (it has no mirror, and no route but to the master).
#
# Test-bed stand-ins, said in the output too: flanneld and flannel's CNI plugin are in no
# reachable registry, so the master's mirror publishes stand-ins for them
# (integration/stand-in/: they lease subnets in etcd, write flanneld's subnet file, route
# between the nodes as host-gw does, and delegate to the bridge plugin), verified like the real
# ones (flanneld by the digest in a release answer, the plugin by its checksum file); the
# service CIDR gets a route, which a real node's default route covers; no CoreDNS image can be
# had, so the DNS add-on is left out (`dns.enabled: false`) instead of sitting Pending; the
# pause and busybox images are built locally (integration/build-images.py) and imported into
# each containerd.
#
# Environment (all optional):
#   KUBESUP_DEMO_DIR    state dir (default /var/lib/kubesup-demo): data dirs, logs, pid files
#   KUBESUP_DEMO_NAME   prefix of the namespaces and cgroup roots (default kubesup-demo), so a
#                       test can run its own cluster beside a user's
#   KUBESUP_DEMO_BIN    a kubesup binary to run instead of building one (cargo build --release)
#   KUBESUP_DEMO_KEEP   if set, a failed `up` leaves everything for inspection (then run `down`)
set -euo pipefail
# Resolved before the cd below, so that a relative path means what the caller meant.
DEMO_BIN=${KUBESUP_DEMO_BIN:+$(realpath -m -- "$KUBESUP_DEMO_BIN")}
cd "$(dirname "$0")/.."

NAME=${KUBESUP_DEMO_NAME:-kubesup-demo}
STATE=${KUBESUP_DEMO_DIR:-/var/lib/kubesup-demo}
export KUBESUP_TESTBED_CACHE=${KUBESUP_TESTBED_CACHE:-/var/cache/kubesup-testbed}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kubesup-build/target}
KUBE_VERSION=v1.20.2
ETCD_VERSION=v3.4.23
KUBECTL=$KUBESUP_TESTBED_CACHE/kubernetes-$KUBE_VERSION/bin/kubectl
IMAGES=$KUBESUP_TESTBED_CACHE/images
PAUSE_IMAGE=kubesup.local/pause:3.2
BUSYBOX_IMAGE=kubesup.local/busybox:1.35
SERVICE_CIDR=10.3.0.0/24
ROLES=(master worker)
declare -A IP=([master]=10.79.0.1 [worker]=10.79.0.2)
# Written first into the state dir: `down` deletes only a directory that holds it.
MARKER=.kubesup-demo

# Every KUBESUP_* variable is also a kubesup flag: only what this script writes may configure
# the nodes.
while read -r v; do
  case $v in KUBESUP_DEMO_* | KUBESUP_TESTBED_*) ;; KUBESUP_*) unset "$v" ;; esac
done < <(compgen -e)

say() { printf 'up.sh: %s\n' "$*"; }
die() { printf 'up.sh: %s\n' "$*" >&2; exit 1; }

[[ $NAME =~ ^[a-z][a-z0-9-]{0,23}$ ]] ||
  die "KUBESUP_DEMO_NAME=$NAME: use 1-24 lowercase letters, digits and '-', starting with a letter"
[[ $STATE == /?* && $STATE != *..* && $(realpath -m "$STATE") != / ]] ||
  die "KUBESUP_DEMO_DIR=$STATE: give an absolute path below / (it is deleted by 'down')"
STATE=$(realpath -m "$STATE")

ns_of() { echo "$NAME-$1"; }        # master, worker, lan
cgroot_of() { echo "/$NAME-$1"; }   # the kubelet cgroup root of a node
data_of() { echo "$STATE/$1"; }     # a node's data dir

# Whether PID is alive (a zombie is not) and its command line contains WORD.
ours() {
  local pid=$1 word=$2 st
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$word"
}
kubesup_pid() { # ROLE: the PID of the node's kubesup, if it still runs
  local pid
  pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
  ours "$pid" "$STATE/$1.yaml" && echo "$pid"
}
stop_pid() { # PID WORD SECONDS: SIGTERM, wait (bounded), then SIGKILL
  local pid=$1 word=$2 i
  ours "$pid" "$word" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < $3 * 10; i++)); do ours "$pid" "$word" || return 0; sleep 0.1; done
  say "pid $pid did not stop within $3 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  local role ns pid found='' d
  [ -e "$STATE" ] && found=1
  for role in "${ROLES[@]}" lan; do [ -e "/run/netns/$(ns_of "$role")" ] && found=1; done
  if [ -z "$found" ]; then
    say "no demo cluster here ($STATE, namespaces $NAME-*): nothing to remove"
    return 0
  fi
  if [ -e "$STATE" ] && [ ! -e "$STATE/$MARKER" ]; then
    die "$STATE exists but was not made by up.sh (no $MARKER in it); refusing to delete it"
  fi
  # 1. Each kubesup stops its components in reverse order (the worker first: it is the
  #    master's client). Pods outlive kubesup by design; step 2 takes them.
  for role in worker master; do
    if pid=$(kubesup_pid "$role"); then
      stop_pid "$pid" "$STATE/$role.yaml" 120
      say "stopped the $role's kubesup (pid $pid)"
    fi
  done
  # 2. `kubesup reset` in each node's namespace: leftover components, the pods and their shims,
  #    the kubelet cgroup root, kubelet's mounts, kube-proxy's chains, the data dir. Only inside
  #    the namespace: kube-proxy --cleanup would otherwise clean this machine's iptables.
  local bin
  bin=$(cat "$STATE/kubesup.bin" 2>/dev/null || true)
  for role in worker master; do
    ns=$(ns_of "$role")
    if [ -x "$bin" ] && [ -d "$(data_of "$role")" ] && [ -e "/run/netns/$ns" ]; then
      if ! out=$(timeout 300 nsenter --net="/run/netns/$ns" -- \
        "$bin" reset --yes --data-dir "$(data_of "$role")" 2>&1); then
        printf '%s\n' "$out" | tail -n 5 >&2
        say "kubesup reset of the $role failed (above); removing what is left by hand"
      fi
    fi
  done
  # 3. What reset could not reach (a failed start, a missing binary): anything left in the
  #    nodes' cgroup roots (their pods) and namespaces was started by this script.
  for role in "${ROLES[@]}"; do
    for d in /sys/fs/cgroup/*/"${NAME}-$role"; do
      if [ ! -d "$d" ] || [ -L "${d%/*}" ]; then continue; fi
      for _ in $(seq 1 50); do
        # shellcheck disable=SC2038  # the output is PIDs, not file names
        find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$d" ] || break
        sleep 0.1
      done
      if [ -d "$d" ]; then say "cannot remove cgroup $d"; fi
    done
  done
  for f in "$STATE"/mirror-*.pid; do
    if [ -f "$f" ]; then stop_pid "$(cat "$f")" serve-mirror.py 10; fi
  done
  for role in "${ROLES[@]}" lan; do
    ns=$(ns_of "$role")
    [ -e "/run/netns/$ns" ] || continue
    for _ in $(seq 1 50); do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086  # one PID per word
      kill -KILL $pids 2>/dev/null || true
      sleep 0.1
    done
    ip netns del "$ns" 2>/dev/null || say "cannot delete network namespace $ns"
  done
  # 4. Mounts below the state dir (kubelet's, in this mount namespace), deepest first.
  if [ -e "$STATE" ]; then
    awk -v dir="$STATE" '$5 == dir || index($5, dir "/") == 1 {print $5}' /proc/self/mountinfo |
      awk '{print gsub("/", "/"), $0}' | sort -rn | cut -d' ' -f2- |
      while read -r m; do umount -l "$m" 2>/dev/null || say "cannot unmount $m"; done
    rm -rf "$STATE"
  fi
  say "demo cluster stopped and removed (kubesup processes, pods, cgroups, namespaces, $STATE)"
}

if [ "${1:-}" = down ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (it removes network namespaces and cgroups)"
  down
  exit 0
fi
[ $# -eq 0 ] || die "unknown argument '$1'; usage: integration/up.sh [down]"
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and creates network namespaces)"
if [ -n "$DEMO_BIN" ] && { [ ! -f "$DEMO_BIN" ] || [ ! -x "$DEMO_BIN" ]; }; then
  die "KUBESUP_DEMO_BIN=$KUBESUP_DEMO_BIN is not an executable file"
fi

# ---- refuse to run twice ----
running=()
for role in "${ROLES[@]}"; do
  if pid=$(kubesup_pid "$role"); then running+=("$role pid $pid"); fi
done
if [ "${#running[@]}" -gt 0 ]; then
  die "a demo cluster is already running (${running[*]}); use it, or stop it with: integration/up.sh down"
fi
for role in "${ROLES[@]}" lan; do
  [ -e "/run/netns/$(ns_of "$role")" ] &&
    die "network namespace $(ns_of "$role") exists (an earlier run?); remove it with: integration/up.sh down"
done
[ -e "$STATE" ] && die "$STATE exists (an earlier run?); remove it with: integration/up.sh down"
mkdir -p "$(dirname "$STATE")"
mkdir "$STATE" 2>/dev/null || die "another up.sh is starting in $STATE"
touch "$STATE/$MARKER"
T0=$SECONDS

UP_DONE=
on_exit() {
  local rc=$?
  if [ -n "$UP_DONE" ]; then return; fi
  trap - EXIT INT TERM
  for role in "${ROLES[@]}"; do
    [ -s "$STATE/$role.log" ] || continue
    echo "---- last lines of $STATE/$role.log" >&2
    tail -n 25 "$STATE/$role.log" >&2
  done
  if [ -n "${KUBESUP_DEMO_KEEP:-}" ]; then
    say "failed (exit $rc); everything is kept for inspection; remove it with: integration/up.sh down" >&2
  else
    say "failed (exit $rc); removing what it started" >&2
    down >&2 || say "cleanup failed; run: integration/up.sh down" >&2
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- the test bed, the images, kubesup ----
integration/setup-testbed.sh >/dev/null
integration/build-mirror.sh >/dev/null
python3 integration/build-images.py "$IMAGES" >/dev/null
if [ -n "$DEMO_BIN" ]; then
  BIN=$DEMO_BIN
else
  cargo build --release --locked --bin kubesup
  BIN=$CARGO_TARGET_DIR/release/kubesup
fi
echo "$BIN" > "$STATE/kubesup.bin"
say "test bed ready: Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, images $PAUSE_IMAGE and $BUSYBOX_IMAGE ($((SECONDS - T0)) s)"
say "network: flannel (host-gw), with stand-ins for flanneld and flannel's CNI plugin (in no reachable registry): integration/stand-in/, published in the master's mirror; and a route to the service CIDR $SERVICE_CIDR"
say "DNS: left out (dns.enabled: false): no CoreDNS image can be had here (no reachable registry), and a DNS add-on without one would sit Pending"

# ---- the master's mirror: the test bed's releases, plus the flannel stand-ins ----
# Published where upstream puts the real ones, for the flannel releases kubesup pairs with
# $KUBE_VERSION, with what verifies them: flanneld by the SHA-256 digest GitHub's release
# answer shows for it (flannel publishes no checksum file), the CNI plugin by its checksum file.
MIRROR_DIR=$STATE/mirror
ARCH=$(dpkg --print-architecture)
FLANNEL_VERSION=v0.13.0
FLANNEL_CNI_VERSION=v1.1.2
mkdir -p "$MIRROR_DIR"
for top in release etcd-io; do ln -sfn "$KUBESUP_TESTBED_CACHE/mirror/$top" "$MIRROR_DIR/$top"; done
fdir=$MIRROR_DIR/flannel-io/flannel/releases/download/$FLANNEL_VERSION
mkdir -p "$fdir" "$MIRROR_DIR/repos/flannel-io/flannel/releases/tags"
install -m 0755 integration/stand-in/flanneld "$fdir/flanneld-$ARCH"
printf '{"tag_name": "%s", "assets": [{"name": "flanneld-%s", "digest": "sha256:%s"}]}\n' \
  "$FLANNEL_VERSION" "$ARCH" "$(sha256sum "$fdir/flanneld-$ARCH" | cut -d' ' -f1)" \
  > "$MIRROR_DIR/repos/flannel-io/flannel/releases/tags/$FLANNEL_VERSION"
cdir=$MIRROR_DIR/flannel-io/cni-plugin/releases/download/$FLANNEL_CNI_VERSION
cfile=cni-plugin-flannel-linux-$ARCH-$FLANNEL_CNI_VERSION.tgz
mkdir -p "$cdir" "$STATE/flannel-cni"
install -m 0755 integration/stand-in/flannel-cni "$STATE/flannel-cni/flannel-$ARCH"
tar -C "$STATE/flannel-cni" --owner=0 --group=0 --numeric-owner -czf "$cdir/$cfile" "flannel-$ARCH"
(cd "$cdir" && sha256sum "$cfile" > "$cfile.sha256")

# ---- the LAN: a bridge in a namespace of its own, one veth per node, no default route ----
LAN=$(ns_of lan)
declare -A MIRROR
ip netns add "$LAN"
ip -n "$LAN" link add br0 type bridge
ip -n "$LAN" link set br0 up
for role in "${ROLES[@]}"; do
  ns=$(ns_of "$role")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1
  ip -n "$LAN" link add "p-$role" type veth peer name eth0 netns "$ns"
  ip -n "$LAN" link set "p-$role" master br0
  ip -n "$LAN" link set "p-$role" up
  ip -n "$ns" addr add "${IP[$role]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  mkdir -p "$STATE/$role-root"/{var-log,netns,cni}
done
# The mirror listens on the master's 127.0.0.1 only: the worker has none, and fetches from its
# master.
out=$(ip netns exec "$(ns_of master)" python3 integration/serve-mirror.py --daemon "$MIRROR_DIR")
echo "$out" | grep -o 'pid=[0-9]*' | cut -d= -f2 > "$STATE/mirror-master.pid"
MIRROR[master]=$(echo "$out" | grep -o 'url=[^ ]*' | cut -d= -f2)
mkdir -p /var/lib/cni /run/netns

cat > "$STATE/master.yaml" <<EOF
data-dir: $(data_of master)
advertise: ${IP[master]}
node-name: demo-master
kube-version: $KUBE_VERSION
mirror: ${MIRROR[master]}
fetch: {etcd-version: $ETCD_VERSION}
flannel: {backend: host-gw}
schedulable: true
service-cidr: $SERVICE_CIDR
containerd: {sandbox-image: $PAUSE_IMAGE}
kubelet: {cgroup-root: $(cgroot_of master)}
dns: {enabled: false}
EOF
# The worker takes the cluster's settings from the master at join, and its binaries from the
# master too: it sets no mirror.
cat > "$STATE/worker.yaml" <<EOF
data-dir: $(data_of worker)
node-name: demo-worker
containerd: {sandbox-image: $PAUSE_IMAGE}
kubelet: {cgroup-root: $(cgroot_of worker)}
EOF

# kubesup ROLE ARGS...: in the node's network namespace and a private mount namespace where
# the node's own directories are bound over /var/log, /run/netns and /var/lib/cni; in a
# session of its own, so it outlives this script and the terminal.
start_node() {
  local role=$1; shift
  # shellcheck disable=SC2016  # expanded by the inner sh
  setsid nsenter --net="/run/netns/$(ns_of "$role")" -- \
    unshare --mount --propagation private -- sh -c '
      set -e; r=$1; shift
      mount --bind "$r/var-log" /var/log
      mount --bind "$r/netns" /run/netns
      mount --bind "$r/cni" /var/lib/cni
      exec "$@"' sh "$STATE/$role-root" "$BIN" "$@" \
    < /dev/null > "$STATE/$role.log" 2>&1 &
  echo $! > "$STATE/$role.pid"
}
# wait_until SECONDS WHAT CMD...: polls CMD every half second; fails naming WHAT, or at once
# if a started kubesup has exited.
wait_until() {
  local limit=$1 what=$2 role; shift 2
  local end=$((SECONDS + limit))
  until "$@" > /dev/null 2>&1; do
    for role in "${ROLES[@]}"; do
      [ -f "$STATE/$role.pid" ] && ! kubesup_pid "$role" > /dev/null &&
        die "the $role's kubesup exited while waiting for: $what (the last lines of its log follow)"
    done
    [ "$SECONDS" -lt "$end" ] || die "timed out after $limit s waiting for: $what"
    sleep 0.5
  done
}
kc() { ip netns exec "$(ns_of master)" "$KUBECTL" --kubeconfig "$(data_of master)/kubeconfig/admin.conf" --request-timeout=10s "$@"; }
node_ready() {
  [ "$(kc get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
import_images() { # ROLE
  local img
  for img in pause busybox; do
    ctr -a "$(data_of "$1")/containerd/containerd.sock" -n k8s.io images import "$IMAGES/$img.tar" > /dev/null
  done
}

# ---- the master, then the worker joining it with a token ----
# The worker starts as soon as the master's join API answers, so that its fetch and join
# overlap the start of the master's own kubelet.
start_node master master --config "$STATE/master.yaml"
in_master() { nsenter --net="/run/netns/$(ns_of master)" -- "$BIN" "$@" --data-dir "$(data_of master)"; }
join_api() { ip netns exec "$(ns_of worker)" curl -sfk --max-time 2 "https://${IP[master]}:9443/v1/ca"; }
new_token() {
  (umask 077 && in_master token create --ttl 1h --description up.sh > "$STATE/token.new") &&
    mv "$STATE/token.new" "$STATE/token"
}
wait_until 300 "the master's join API (https://${IP[master]}:9443, from the worker's namespace)" join_api
wait_until 60 "a join token (kubesup token create)" new_token
start_node worker worker --config "$STATE/worker.yaml" \
  --join "https://${IP[master]}:9443" --token-file "$STATE/token"

wait_until 300 "the master's components ready (kubesup status)" "$BIN" status --data-dir "$(data_of master)"
import_images master
say "master demo-master ready: ${IP[master]} in namespace $(ns_of master) ($((SECONDS - T0)) s)"
wait_until 300 "the worker's components ready (kubesup status)" "$BIN" status --data-dir "$(data_of worker)"
# Used once: revoke it (its ID is the part before the dot, after the CA pin).
token_id=$(sed 's/^.*:://; s/\..*$//' "$STATE/token")
in_master token delete "$token_id" > /dev/null
rm -f "$STATE/token"
import_images worker
say "worker demo-worker joined and ready: ${IP[worker]} in namespace $(ns_of worker) ($((SECONDS - T0)) s)"

# ---- the workload (busybox's httpd, one pod on each node), and the routes pods need ----
cat > "$STATE/hello.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: hello}
            topologyKey: kubernetes.io/hostname
      terminationGracePeriodSeconds: 1
      enableServiceLinks: false
      containers:
      - name: hello
        image: $BUSYBOX_IMAGE
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports:
        - containerPort: 8080
EOF
# The default ServiceAccount, which every pod needs, comes from the controller-manager shortly
# after it starts.
wait_until 60 "the default ServiceAccount" kc get serviceaccount default
# Applied before the nodes are Ready: the scheduler places each pod as soon as its node is.
kc apply -f "$STATE/hello.yaml" > /dev/null

# ---- the service CIDR's route (a real node's default route covers it) ----
for role in "${ROLES[@]}"; do ip -n "$(ns_of "$role")" route add "$SERVICE_CIDR" dev eth0; done

wait_until 180 "node demo-master Ready" node_ready demo-master
wait_until 180 "node demo-worker Ready" node_ready demo-worker
say "nodes demo-master and demo-worker Ready ($((SECONDS - T0)) s)"
wait_until 180 "Deployment hello available (both pods Running)" \
  kc rollout status deployment/hello --timeout=5s

KC="$STATE/kubectl"
cat > "$KC" <<EOF
#!/bin/sh
# kubectl $KUBE_VERSION (the test bed's) in the demo master's network namespace, as the
# cluster's admin. Made by integration/up.sh; removed by 'integration/up.sh down'.
exec ip netns exec $(ns_of master) $KUBECTL --kubeconfig $(data_of master)/kubeconfig/admin.conf "\$@"
EOF
chmod 0755 "$KC"
UP_DONE=1

echo
"$KC" get nodes -o wide || true
echo
"$KC" get pods -o wide || true
cat <<EOM

The cluster is up in $((SECONDS - T0)) s: a master and a worker (kubesup pids $(cat "$STATE/master.pid") and $(cat "$STATE/worker.pid"), logs in $STATE).
  $KC get pods -o wide
  $KC run hi --image=$BUSYBOX_IMAGE --image-pull-policy=Never -- sleep 3600
  integration/up.sh down
($KC runs the test bed's kubectl $KUBE_VERSION in namespace $(ns_of master) as the cluster's admin.)
EOM
