#!/usr/bin/env python3
"""The timers at scale, on the release daemon and the real clock. Prints key=value lines.

usage: benches/timers.py [memory|idle|lateness|burst|all] [N]   (default: all, N = 10000)

- memory: the daemon's PSS with N jobs each armed with a calendar timer
  (`start on every day at HH:MM:SS UTC`, none due within the run) against the same N jobs
  without a `start on`, and with an event instead (`start on go-K`).
- idle: voluntary and involuntary context switches of the daemon over 60 s with those N
  timers armed and none due: each is a wake-up.
- lateness: N calendar timers armed, 100 of them due over 20 s (5 per second, each starting
  a task): from each due time to the firing's event, as the daemon measures it (its debug
  line `… us after it`), and as a `monitor` client sees the event arrive (an upper bound:
  it adds the socket and the client's wake-up).
- burst: N timers armed, 1,000 of them due in the same second, each starting a task; a
  client asks `status` every 10 ms meanwhile. Counts the firings and the replies' latency.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("UPRISE_BIN", os.path.join(ROOT, "target", "release"))
UPRISE = os.path.join(BIN, "uprise")
CTL = os.path.join(BIN, "uprisectl")


def hms(at):
    return time.strftime("%H:%M:%S", time.gmtime(at))


class Daemon:
    """`uprise --user` on a job dir written by `jobs(dir)`."""

    def __init__(self, jobs):
        self.dir = tempfile.mkdtemp(prefix="uprise-timers-")
        init = os.path.join(self.dir, "init")
        os.makedirs(init)
        for name, text in jobs:
            with open(os.path.join(init, name + ".conf"), "w") as f:
                f.write(text)
        self.socket = os.path.join(self.dir, "control")
        self.err = open(os.path.join(self.dir, "daemon.err"), "w+")
        self.proc = subprocess.Popen(
            [UPRISE, "--user", "--confdir", init, "--logdir", os.path.join(self.dir, "log"),
             "--statedir", os.path.join(self.dir, "state"), "--socket", self.socket,
             "--no-startup-event"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.ctl("version").returncode == 0 and self.ctl("list").returncode == 0:
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

    def switches(self):
        total = 0
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
        return total

    def log(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.dir])


def calendar_jobs(n, far, due=None):
    """N task jobs: those in `due` (name -> time) fire then; the others at `far` + i s."""
    jobs = []
    for i in range(n):
        at = (due or {}).get(i, far + i)
        jobs.append((f"t{i}", f"task\nstart on every day at {hms(at)} UTC\nexec true\n"))
    return jobs


def memory_and_idle(n, idle):
    far = time.time() + 6 * 3600
    plain = Daemon([(f"t{i}", "task\nexec true\n") for i in range(n)])
    time.sleep(2)
    pss_plain = plain.pss_kib()
    plain.stop()
    events = Daemon([(f"t{i}", f"task\nstart on go-{i}\nexec true\n") for i in range(n)])
    time.sleep(2)
    pss_events = events.pss_kib()
    events.stop()
    timers = Daemon(calendar_jobs(n, far))
    time.sleep(2)
    pss_timers = timers.pss_kib()
    armed = len(json.loads(timers.ctl("timers", "--json").stdout))
    print(f"memory n={n} armed={armed} pss_no_start_on_kib={pss_plain} pss_events_kib={pss_events} "
          f"pss_timers_kib={pss_timers} delta_vs_no_start_on_kib={pss_timers - pss_plain} "
          f"delta_vs_events_kib={pss_timers - pss_events}")
    if idle:
        time.sleep(1)
        before = timers.switches()
        time.sleep(60)
        after = timers.switches()
        print(f"idle n={n} armed={armed} due_in_window=0 wakeups_per_minute={after - before}")
    timers.stop()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def lateness(n):
    start = int(time.time()) + 30
    due = {i: start + i // 5 for i in range(100)}
    d = Daemon(calendar_jobs(n, time.time() + 6 * 3600, due))
    d.ctl("log-priority", "debug")
    monitor = subprocess.Popen([CTL, "--socket", d.socket, "monitor"], stdout=subprocess.PIPE, text=True)
    seen = []
    while len(seen) < 100:
        line = monitor.stdout.readline()
        arrived = time.time()
        if not line:
            break
        if line.startswith("event timer "):
            scheduled = line.split("UPRISE_SCHEDULED=")[1].strip()
            at = time.mktime(time.strptime(scheduled[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            seen.append((arrived - at) * 1e6)
    monitor.kill()
    time.sleep(0.5)
    inside = [int(line.rsplit(", ", 1)[1].split(" us")[0])
              for line in d.log().splitlines() if " us after it)" in line]
    d.stop()
    for name, values in (("daemon", inside), ("monitor", seen)):
        if values:
            print(f"lateness n={n} seen_by={name} firings={len(values)} "
                  f"median_us={statistics.median(values):.0f} p99_us={percentile(values, 99):.0f} "
                  f"max_us={max(values):.0f}")


def burst(n):
    at = int(time.time()) + 30
    due = {i: at for i in range(1000)}
    d = Daemon(calendar_jobs(n, time.time() + 6 * 3600, due))
    d.ctl("log-priority", "debug")
    latencies = []
    while time.time() < at + 5:
        if time.time() < at - 1:
            time.sleep(0.05)
            continue
        t0 = time.time()
        ok = d.ctl("status", "t5000" if n > 5000 else "t0").returncode == 0
        latencies.append(((time.time() - t0) * 1000, ok))
        time.sleep(0.01)
    rows = json.loads(d.ctl("timers", "--json").stdout)
    fired = sum(1 for row in rows if row.get("last", "").endswith(hms(at) + "+00:00"))
    late = [int(line.rsplit(", ", 1)[1].split(" us")[0])
            for line in d.log().splitlines() if " us after it)" in line]
    d.stop()
    ms = [value for value, _ in latencies]
    print(f"burst n={n} due_same_second=1000 fired={fired} last_fired_after_ms={max(late) / 1000:.0f} "
          f"status_calls={len(ms)} status_failed={sum(1 for _, ok in latencies if not ok)} "
          f"status_median_ms={statistics.median(ms):.2f} status_max_ms={max(ms):.2f}")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    if not (os.path.exists(UPRISE) and os.path.exists(CTL)):
        subprocess.run(["cargo", "build", "--release", "--bins"], cwd=ROOT, check=True)
    if what in ("memory", "idle", "all"):
        memory_and_idle(n, idle=what in ("idle", "all"))
    if what in ("lateness", "all"):
        lateness(n)
    if what in ("burst", "all"):
        burst(n)


if __name__ == "__main__":
    main()
