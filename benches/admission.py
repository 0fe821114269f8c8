#!/usr/bin/env python3
"""Admission at scale, on the release daemon. Prints key=value lines.

usage: benches/admission.py [drain|gates|all] [N]   (default: all, N = 10000)

- drain: N tasks (`start on go`, `uses cpu 1`, `exec /bin/true`) against `resource cpu 4`,
  queued behind a holder of all four; the holder stops and the queue drains. The daemon's
  debug line `admitted X us after a release, Q still queued` gives the time from each
  release to the next admission: its median over the first 200 admissions (Q near N) is
  compared with a run of 10 tasks. Also the drain's length, and the daemon's PSS before and
  after the N starts were queued.
- gates: 1,000 tasks queued on `gate load1 < 1` with `--procfs` a dir whose loadavg says 5;
  `strace` counts the daemon's opens of that loadavg over 10 s (one a tick is the aim), and
  again over 10 s with the same jobs loaded and nothing queued (none is the aim).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("UPRISE_BIN", os.path.join(ROOT, "target", "release"))
UPRISE = os.path.join(BIN, "uprise")
CTL = os.path.join(BIN, "uprisectl")


class Daemon:
    """`uprise --user --debug` on a job dir, with a daemon file and a procfs dir."""

    def __init__(self, jobs, daemon_file="", load="0.00"):
        self.dir = tempfile.mkdtemp(prefix="uprise-admission-")
        init = os.path.join(self.dir, "init")
        os.makedirs(init)
        for name, text in jobs:
            with open(os.path.join(init, name + ".conf"), "w") as f:
                f.write(text)
        with open(os.path.join(self.dir, "init.conf"), "w") as f:
            f.write(daemon_file)
        self.proc_dir = os.path.join(self.dir, "proc")
        os.makedirs(self.proc_dir)
        with open(os.path.join(self.proc_dir, "loadavg"), "w") as f:
            f.write(f"{load} 1.00 1.00 1/100 4242\n")
        self.socket = os.path.join(self.dir, "control")
        self.err_path = os.path.join(self.dir, "daemon.err")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [UPRISE, "--user", "--debug", "--confdir", init, "--logdir", os.path.join(self.dir, "log"),
             "--statedir", os.path.join(self.dir, "state"), "--socket", self.socket,
             "--procfs", self.proc_dir, "--no-startup-event"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.ctl("list").returncode == 0:
                break
            time.sleep(0.05)
        self.pid = self.proc.pid

    def ctl(self, *args):
        return subprocess.run([CTL, "--socket", self.socket, *args], capture_output=True, text=True)

    def pss_kib(self):
        with open(f"/proc/{self.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        return 0

    def log(self):
        self.err.flush()
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def drain_run(n):
    jobs = [("holder", "uses cpu 4\nexec sleep 100000\n")]
    jobs += [(f"t{i:05}", "task\nstart on go\nuses cpu 1\nexec /bin/true\n") for i in range(n)]
    d = Daemon(jobs, daemon_file="resource cpu 4\n")
    try:
        assert d.ctl("start", "holder").returncode == 0
        time.sleep(0.5)
        before = d.pss_kib()
        assert d.ctl("emit", "-n", "go").returncode == 0
        deadline = time.time() + 600
        while time.time() < deadline:
            listed = d.ctl("list").stdout
            if listed.count("start/queued") >= n:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        queued_pss = d.pss_kib()
        started = time.time()
        assert d.ctl("stop", "holder").returncode == 0
        drained = None
        while time.time() < started + 600:
            if d.ctl("list").stdout.count("stop/waiting") == n + 1:
                drained = time.time() - started
                break
            time.sleep(0.1)
        # Admissions in the same turn as another after one release share its line.
        ok = drained is not None
        lines = re.findall(r"admitted (\d+) us after a release, (\d+) still queued", d.log())
        return ok, before, queued_pss, drained, [(int(us), int(q)) for us, q in lines]
    finally:
        d.stop()


def drain(n):
    # Ten queued give a handful of samples a run: twenty runs of them.
    short = [drain_run(10) for _ in range(20)]
    samples = [us for _, _, _, _, lines in short for us, _ in lines]
    print(f"drain_10_runs=20 all_admitted={all(ok for ok, *_ in short)} samples={len(samples)}")
    print(f"drain_10_release_to_admission_us_median={statistics.median(samples)}")
    print(f"drain_10_release_to_admission_us_p90={sorted(samples)[int(len(samples) * 0.9)]}")
    for size in (n,):
        ok, before, queued, drained, lines = drain_run(size)
        first = [us for us, _ in lines[:200]]
        tail = [us for us, q in lines if q <= 100]
        print(f"drain_{size}_release_to_admission_us_median_last_with_100_or_fewer_queued={statistics.median(tail) if tail else None}")
        print(f"drain_{size}_all_admitted={ok and drained is not None}")
        print(f"drain_{size}_release_to_admission_us_median_first200={statistics.median(first) if first else None}")
        print(f"drain_{size}_release_to_admission_us_p90_first200={sorted(first)[int(len(first) * 0.9)] if first else None}")
        if lines:
            print(f"drain_{size}_queued_at_first_admission={lines[0][1]}")
        print(f"drain_{size}_seconds={drained and round(drained, 2)}")
        print(f"drain_{size}_pss_kib_before={before} queued={queued} per_start_bytes={round((queued - before) * 1024 / size)}")


def count_opens(pid, seconds, path):
    out = subprocess.run(
        ["timeout", str(seconds), "strace", "-f", "-e", "trace=openat", "-p", str(pid)],
        capture_output=True, text=True)
    return sum(1 for line in out.stderr.splitlines() if path in line)


def gates(n=1000):
    if not shutil.which("strace"):
        print("gates_skipped=no strace")
        return
    jobs = [(f"g{i:04}", "task\nstart on go\ngate load1 < 1\nexec /bin/true\n") for i in range(n)]
    d = Daemon(jobs, load="5.00")
    try:
        idle = count_opens(d.pid, 10, "loadavg")
        assert d.ctl("emit", "-n", "go").returncode == 0
        while d.ctl("list").stdout.count("start/queued") < n:
            time.sleep(0.2)
        queued = count_opens(d.pid, 10, "loadavg")
        print(f"gates_{n}_queued_loadavg_opens_in_10s={queued}")
        print(f"gates_{n}_idle_loadavg_opens_in_10s={idle}")
    finally:
        d.stop()


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    if what in ("drain", "all"):
        drain(n)
    if what in ("gates", "all"):
        gates()


if __name__ == "__main__":
    main()
