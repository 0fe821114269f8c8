#!/usr/bin/env python3
"""The daemon's PSS with 1,000 jobs each with a Lua hook that has run, against the same
1,000 jobs without the hook (`hooks`); or with 1,000 `script lua` services sleeping in the
daemon, against the same 1,000 services as real processes (`processes`: the daemon's own
cost of each, the processes' memory not counted). Prints key=value lines.

usage: benches/lua-pss.py [hooks|processes] [N]   (default hooks 1000; the release build, or UPRISE_BIN)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("UPRISE_BIN", os.path.join(ROOT, "target", "release"))


JOBS = {
    ("hooks", False): "task\nstart on go\nexec true\n",
    ("hooks", True): "task\nstart on go\nexec true\n"
    "hook started lua runs = (runs or 0) + 1 if runs > 1 then log(job.name) end\n",
    ("processes", False): "start on go\nexec sleep 3600\n",
    ("processes", True): "start on go\nscript lua\n  local beats = 0\n"
    "  while true do beats = beats + 1 sleep(3600) end\nend script\n",
}


def pss_after_runs(n, mode, lua):
    base = tempfile.mkdtemp(prefix="uprise-lua-")
    init = os.path.join(base, "init")
    os.makedirs(init)
    for i in range(n):
        text = JOBS[(mode, lua)]
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
        began = time.monotonic()
        subprocess.run(ctl + ["emit", "go"], check=True, capture_output=True)
        took = time.monotonic() - began
        time.sleep(1.0)
        with open(f"/proc/{proc.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]), took
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)
    return 0, 0.0


def main():
    args = sys.argv[1:]
    mode = args.pop(0) if args and args[0] in ("hooks", "processes") else "hooks"
    n = int(args[0]) if args else 1000
    without, _ = pss_after_runs(n, mode, False)
    with_lua, took = pss_after_runs(n, mode, True)
    if mode == "hooks":
        print(f"lua_pss_kib_without_hooks={without} with_hooks={with_lua} added_kib={with_lua - without}")
    else:
        print(f"lua_processes={n} daemon_pss_kib_real_processes={without} lua_processes={with_lua} "
              f"difference_kib={with_lua - without} emit_to_all_running_s={took:.3f}")


if __name__ == "__main__":
    main()
