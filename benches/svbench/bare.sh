#!/usr/bin/env bash
# bare: the kit driver for bare.c, the same work as a supervisor in the N-services measurement
# done by the simplest C program (N services, each in its own session with an output pipe;
# stop: SIGTERM to every group, reap, exit), to read uprise's and the peers' figures against
# in the same run-all.sh call. Same usage as uprise.sh, N only (bare restarts nothing: no
# respawn test). SVB_BARE_OUTPUT=none puts the services' output on /dev/null instead of a pipe
# each (reported as sup=bare_none, to read `console none` against).
# "status one" runs `bare -q`, which exits at once: a small program starting and ending,
# linked statically where the machine can (as uprisectl is). bare has no "status all".
_self=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$_self")
UPRISE_ROOT=${UPRISE_ROOT:-$(cd "$HERE/../.." && pwd)}
SVB_KIT=${SVB_KIT:-$(cd "$UPRISE_ROOT/../shared/bench" 2>/dev/null && pwd)}
if [ -z "$SVB_KIT" ] || [ ! -f "$SVB_KIT/lib.sh" ]; then
    echo "bare.sh: shared kit not found (expected $UPRISE_ROOT/../shared/bench/lib.sh; set SVB_KIT)" >&2
    exit 2
fi
SUP=bare
BARE_FLAGS=()
if [ "${SVB_BARE_OUTPUT:-pipe}" = none ]; then SUP=bare_none; BARE_FLAGS=(-n); fi
SUP_VERSION=$(git -C "$UPRISE_ROOT" log -1 --format=%h -- benches/svbench/bare.c 2>/dev/null)
SUP_VERSION=${SUP_VERSION:-unknown}
SUP_CHILD_NAME=
. "$SVB_KIT/lib.sh"

BARE=$SVB_BIN/svb_bare
sup_setup() {
    if [ ! -x "$BARE" ] || [ "$HERE/bare.c" -nt "$BARE" ]; then
        mkdir -p "$SVB_BIN" || exit 1
        cc -O2 -static -o "$BARE" "$HERE/bare.c" 2>/dev/null || cc -O2 -o "$BARE" "$HERE/bare.c" || exit 1
    fi
    BARE_N=$1
    STATUS_ALL=()
    STATUS_ONE=("$BARE" -q)
}
sup_setup_respawn() { echo "bare.sh: bare restarts nothing; no respawn test" >&2; exit 0; }
sup_start() {
    setsid "$BARE" "${BARE_FLAGS[@]}" "$BARE_N" "$SVC" 100000 </dev/null >"$W/bare.out" 2>&1 &
    SUP_PID=$!
}
sup_pids() { echo "$SUP_PID"; }
sup_stop() { kill -TERM "$SUP_PID"; }

svb_main "$@"
