#!/usr/bin/env python3
"""Benchmark: kubesup's supervisor against runit's runsv, same child, same machine, one run.

Prints figures; it is not a pass/fail test. Measures:
  1. restart latency after SIGKILL of a long-running child (time of the kill to the
     replacement's first line of output, written by the child right after exec);
  2. the first restart of a child that crashes 100 ms after it starts;
  3. the supervisor's own RSS and idle CPU with 7 idle children, and how many children are
     left alive 2 s after the supervisor itself is SIGKILLed.
The child is kubesup's test stand-in, fake-component, with --touch-on-start.

Usage: integration/bench-supervise.py [--kills N] [--crash-runs N]
Needs release builds of kubesup and fake-component (it runs `cargo build --release --bins`)
and /usr/bin/runsv (Debian's runit, installed by integration/setup-testbed.sh).
Every process it starts is killed by PID or process group before it exits.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KUBESUP = os.path.join(TARGET, "release", "kubesup")
FAKE = os.path.join(TARGET, "release", "fake-component")
RUNSV = shutil.which("runsv") or "/usr/bin/runsv"
TICK = os.sysconf("SC_CLK_TCK")
IDLE_WINDOW = 60
started = []  # (pid, is_group) of everything to kill at the end


def wait_until(timeout, fn, step=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


def lines(path):
    try:
        with open(path) as f:
            return [int(l) for l in f.read().split()]
    except (OSError, ValueError):
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def spawn(args, **kw):
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, **kw)
    started.append(p.pid)
    return p


def kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


# --- kubesup -------------------------------------------------------------------------------

class Kubesup:
    def __init__(self, tmp, children):
        self.data = os.path.join(tmp, "data")
        spec = os.path.join(tmp, "children.yaml")
        with open(spec, "w") as f:
            f.write("children:\n")
            for name, args, extra in children:
                f.write(f"  - name: {name}\n    command: {json.dumps([FAKE] + args)}\n")
                for k, v in extra.items():
                    f.write(f"    {k}: {v}\n")
        self.proc = spawn([KUBESUP, "supervise", spec, "--data-dir", self.data])

    def child_pid(self, name):
        try:
            with open(os.path.join(self.data, "children.json")) as f:
                return json.load(f)[name]["pid"]
        except (OSError, KeyError, ValueError):
            return None

    def stop(self):
        kill_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)
            self.proc.wait()


# --- runsv ---------------------------------------------------------------------------------

class Runsv:
    def __init__(self, tmp, name, args):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        run = os.path.join(self.dir, "run")
        with open(run, "w") as f:
            f.write("#!/bin/sh\nexec " + " ".join([FAKE] + args) + "\n")
        os.chmod(run, 0o755)
        self.proc = spawn([RUNSV, self.dir])

    def child_pid(self):
        try:
            with open(os.path.join(self.dir, "supervise", "pid")) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def stop(self):
        pid = self.child_pid()
        kill_group(self.proc.pid)
        self.proc.wait()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- measurements ---------------------------------------------------------------------------

def sigkill_latencies(get_pid, touch, n):
    out = []
    wait_until(5, lambda: lines(touch))
    for _ in range(n):
        before = len(lines(touch))
        # A long-running child: past runsv's 1 s rule (it delays restarts of children that
        # lived less) and past kubesup's stable-after (set to 1 s below, the same rule).
        time.sleep(1.05)
        pid = wait_until(5, get_pid)
        if not pid:
            break
        t_kill = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        new = wait_until(5, lambda: len(lines(touch)) > before and lines(touch))
        if not new:
            break
        out.append((new[before] - t_kill) / 1e6)
    return out


def first_crash_restart(make, touch_dir, runs, tag):
    out = []
    for i in range(runs):
        touch = os.path.join(touch_dir, f"{tag}-crash{i}.starts")
        sup = make(touch)
        t = wait_until(5, lambda: len(lines(touch)) >= 2 and lines(touch), step=0.005)
        sup.stop()
        if t:
            out.append((t[1] - t[0]) / 1e6 - 100.0)
    return out


def stats(xs):
    if not xs:
        return "n/a"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return f"median {statistics.median(xs):8.2f} ms   p95 {p95:8.2f} ms   (n={len(xs)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--crash-runs", type=int, default=30)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--bins", "-q"], cwd=ROOT, check=True)
    if not os.path.exists(RUNSV):
        sys.exit("bench-supervise: runsv not found; run integration/setup-testbed.sh")
    tmp = tempfile.mkdtemp(prefix="kubesup-bench-sup-")
    try:
        run(a, tmp)
    finally:
        for pid in started:
            kill_group(pid)
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp):
    print(f"kubesup vs runsv, child: {FAKE}")
    # 1. SIGKILL of a long-running child (each lives 1.05 s between kills).
    t = os.path.join(tmp, "k1.starts")
    d = os.path.join(tmp, "k1")
    os.makedirs(d)
    ks = Kubesup(d, [("c0", ["--touch-on-start", t], {"stable-after": "1s"})])
    k_kill = sigkill_latencies(lambda: ks.child_pid("c0"), t, a.kills)
    ks.stop()
    t = os.path.join(tmp, "r1.starts")
    rs = Runsv(tmp, "r1", ["--touch-on-start", t])
    r_kill = sigkill_latencies(rs.child_pid, t, a.kills)
    rs.stop()

    # 2. First restart of a child that crashes 100 ms after starting.
    def mk_k(touch):
        d = tempfile.mkdtemp(dir=tmp)
        return Kubesup(d, [("c0", ["--crash-after", "100ms", "--touch-on-start", touch], {})])

    def mk_r(touch):
        return Runsv(tempfile.mkdtemp(dir=tmp), "svc", ["--crash-after", "100ms", "--touch-on-start", touch])

    k_crash = first_crash_restart(mk_k, tmp, a.crash_runs, "kubesup")
    r_crash = first_crash_restart(mk_r, tmp, min(a.crash_runs, 10), "runsv")

    # 3. Footprint with 7 idle children, and survivors of a SIGKILL of the supervisor.
    d = os.path.join(tmp, "k7")
    os.makedirs(d)
    ks = Kubesup(d, [(f"c{i}", [], {}) for i in range(7)])
    pids = wait_until(10, lambda: all(ks.child_pid(f"c{i}") for i in range(7))
                      and [ks.child_pid(f"c{i}") for i in range(7)], step=0.05)
    time.sleep(3)
    k_rss = rss_kib(ks.proc.pid)
    c0 = cpu_ticks(ks.proc.pid)
    # One clock tick is 10 ms: a 60 s window resolves 0.017% of a core.
    time.sleep(IDLE_WINDOW)
    k_cpu = (cpu_ticks(ks.proc.pid) - c0) / TICK / IDLE_WINDOW * 100
    os.kill(ks.proc.pid, signal.SIGKILL)
    ks.proc.wait()
    time.sleep(2)
    k_surv = sum(1 for p in pids if alive(p))
    for p in pids:
        if alive(p):
            os.kill(p, signal.SIGKILL)

    svs = [Runsv(tmp, f"r7-{i}", []) for i in range(7)]
    rpids = wait_until(10, lambda: all(s.child_pid() for s in svs) and [s.child_pid() for s in svs], step=0.05)
    time.sleep(3)
    r_rss = sum(rss_kib(s.proc.pid) for s in svs)
    c0 = sum(cpu_ticks(s.proc.pid) for s in svs)
    time.sleep(IDLE_WINDOW)
    r_cpu = (sum(cpu_ticks(s.proc.pid) for s in svs) - c0) / TICK / IDLE_WINDOW * 100
    for s in svs:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
    time.sleep(2)
    r_surv = sum(1 for p in rpids if alive(p))
    for p in rpids:
        if alive(p):
            os.kill(p, signal.SIGKILL)

    print()
    print("restart after SIGKILL of a long-running child (kill -> replacement's exec)")
    print(f"  kubesup  {stats(k_kill)}")
    print(f"  runsv    {stats(r_kill)}")
    if k_kill and r_kill:
        print(f"  ratio kubesup/runsv (medians): {statistics.median(k_kill) / statistics.median(r_kill):.2f}   target <= 1")
    print("first restart of a child that crashes 100 ms after it starts (crash -> exec)")
    print(f"  kubesup  {stats(k_crash)}   target < 5 ms")
    print(f"  runsv    {stats(r_crash)}")
    print("supervising 7 idle children")
    print(f"  kubesup  RSS {k_rss / 1024:.1f} MiB (target <= 8)   idle CPU {k_cpu:.3f}% of a core over {IDLE_WINDOW} s (target < 0.05)")
    print(f"  runsv x7 RSS {r_rss / 1024:.1f} MiB                  idle CPU {r_cpu:.3f}% of a core")
    print("children alive 2 s after the supervisor is SIGKILLed (of 7)")
    print(f"  kubesup  {k_surv}   (target 0)")
    print(f"  runsv    {r_surv}")


if __name__ == "__main__":
    main()
