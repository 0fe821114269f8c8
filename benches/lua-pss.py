#!/usr/bin/env python3
"""The daemon's PSS with 1,000 jobs each with a Lua hook that has run, against the same
1,000 jobs without the hook. Prints key=value lines.

usage: benches/lua-pss.py [N]   (default N = 1000; the release build, or UPRISE_BIN)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("UPRISE_BIN", os.path.join(ROOT, "target", "release"))


def pss_after_runs(n, hook):
    base = tempfile.mkdtemp(prefix="uprise-lua-")
    init = os.path.join(base, "init")
    os.makedirs(init)
    for i in range(n):
        text = "task\nstart on go\nexec true\n"
        if hook:
            text += "hook started lua runs = (runs or 0) + 1 if runs > 1 then log(job.name) end\n"
        with open(os.path.join(init, f"j{i:04}.conf"), "w") as f:
            f.write(text)
    socket = os.path.join(base, "control")
    proc = subprocess.Popen(
        [os.path.join(BIN, "uprise"), "--user", "--confdir", init, "--logdir", os.path.join(base, "log"),
         "--statedir", os.path.join(base, "state"), "--socket", socket, "--no-startup-event"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctl = [os.path.join(BIN, "uprisectl"), "--socket", socket]
    try:
        while subprocess.run(ctl + ["list"], capture_output=True).returncode != 0:
            time.sleep(0.05)
        subprocess.run(ctl + ["emit", "go"], check=True, capture_output=True)
        time.sleep(1.0)
        with open(f"/proc/{proc.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    without = pss_after_runs(n, False)
    with_hooks = pss_after_runs(n, True)
    print(f"lua_pss_kib_without_hooks={without} with_hooks={with_hooks} added_kib={with_hooks - without}")


if __name__ == "__main__":
    main()
