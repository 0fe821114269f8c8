#!/usr/bin/env bash
# Times a stateful re-exec with N running jobs (default 1000): from the `uprisectl reexec`
# request to its answer, which the new image sends once it serves. Checks that the daemon's
# pid and every job's pid are unchanged. Prints one key=value line.
# usage: benches/reexec.sh [N] [RUNS]
# REEXEC_UPGRADE=1: every handover goes to another file (two copies of the binary, taken in
# turn), as a package upgrade does, so the new binary is probed first; by default the daemon
# re-executes its own file, which needs no probe.
set -euo pipefail
N=${1:-1000}
RUNS=${2:-7}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UPRISE=$ROOT/target/release/uprise
CTL=$ROOT/target/release/uprisectl
[ -x "$UPRISE" ] && [ -x "$CTL" ] || (cd "$ROOT" && cargo build --release --quiet)
DIR=$(mktemp -d)
trap 'kill -TERM "$DAEMON" 2>/dev/null; sleep 1; kill -KILL "$DAEMON" 2>/dev/null; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/init"
for i in $(seq 1 "$N"); do printf 'start on startup\nexec sleep 100000\n' > "$DIR/init/s$i.conf"; done
"$UPRISE" --user ${UPRISE_BENCH_FLAGS:-} --confdir "$DIR/init" --logdir "$DIR/log" --socket "$DIR/control" 2>"$DIR/daemon.err" &
DAEMON=$!
for _ in $(seq 1 600); do
    up=$("$CTL" --socket "$DIR/control" list 2>/dev/null | grep -c 'start/running, process' || true)
    [ "$up" -ge "$N" ] && break
    sleep 0.1
done
before=$("$CTL" --socket "$DIR/control" list)
times=()
for _ in $(seq 1 "$RUNS"); do
    start=$(date +%s%N)
    if [ "${REEXEC_UPGRADE:-0}" = 1 ]; then
        next="$DIR/uprise-copy-$(( ${#times[@]} % 2 ))"
        [ -e "$next" ] || cp "$UPRISE" "$next"
        "$CTL" --socket "$DIR/control" reexec --binary "$next"
    else
        "$CTL" --socket "$DIR/control" reexec
    fi
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
done
after=$("$CTL" --socket "$DIR/control" list)
same_jobs=$([ "$before" = "$after" ] && echo yes || echo no)
same_pid=$(kill -0 "$DAEMON" 2>/dev/null && grep -q -- --restore-fd "/proc/$DAEMON/cmdline" && echo yes || echo no)
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
min=$(echo "$sorted" | head -1)
max=$(echo "$sorted" | tail -1)
state=$(grep -o 're-executing .*(\([0-9]*\) bytes' "$DIR/daemon.err" | tail -1 | grep -o '[0-9]* bytes' || echo '? bytes')
echo "reexec jobs=$N runs=$RUNS upgrade=${REEXEC_UPGRADE:-0} median_ms=$(awk "BEGIN{printf \"%.1f\", $median/1000}") min_ms=$(awk "BEGIN{printf \"%.1f\", $min/1000}") max_ms=$(awk "BEGIN{printf \"%.1f\", $max/1000}") state=\"$state\" same_pid=$same_pid same_jobs=$same_jobs"
