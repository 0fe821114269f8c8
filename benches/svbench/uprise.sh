#!/usr/bin/env bash
# uprise: one Rust process (user mode, not PID 1) supervises all jobs; uprisectl talks to it
# over a unix socket. Driver for the shared peer benchmark kit (../shared/bench beside the repo).
# build:   cargo build --release   (done here when the binaries are missing)
# usage:   ./uprise.sh N        measure with N services;   ./uprise.sh respawn
# knobs:   UPRISE_ROOT      the repository (default: two levels above this script's real path)
#          UPRISE_BIN       dir holding uprise and uprisectl (default $UPRISE_ROOT/target/release)
#          SVB_KIT          the shared kit (default $UPRISE_ROOT/../shared/bench)
#          SVB_UPRISE_CONSOLE  console stanza of the services: auto (default, no stanza: what
#                           users get: one log pipe per instance) or none|log|...; any value
#                           but auto is reported as sup=uprise_console_VALUE
_self=$(readlink -f "${BASH_SOURCE[0]}")
UPRISE_ROOT=${UPRISE_ROOT:-$(cd "$(dirname "$_self")/../.." && pwd)}
UPRISE_BIN=${UPRISE_BIN:-$UPRISE_ROOT/target/release}
SVB_KIT=${SVB_KIT:-$(cd "$UPRISE_ROOT/../shared/bench" 2>/dev/null && pwd)}
SVB_UPRISE_CONSOLE=${SVB_UPRISE_CONSOLE:-auto}
if [ -z "$SVB_KIT" ] || [ ! -f "$SVB_KIT/lib.sh" ]; then
    echo "uprise.sh: shared kit not found (expected $UPRISE_ROOT/../shared/bench/lib.sh; set SVB_KIT)" >&2
    exit 2
fi
if [ ! -x "$UPRISE_BIN/uprise" ] || [ ! -x "$UPRISE_BIN/uprisectl" ]; then
    echo "uprise.sh: building release binaries in $UPRISE_ROOT" >&2
    (cd "$UPRISE_ROOT" && cargo build --release --bins >&2) || exit 1
fi

SUP=uprise
[ "$SVB_UPRISE_CONSOLE" != auto ] && SUP=uprise_console_$SVB_UPRISE_CONSOLE
# version plus the commit of the tree (-dirty: src/ differs from it, others edit src/;
# -stale: src/ is newer than the binary)
SUP_VERSION=$("$UPRISE_BIN/uprise" --version 2>/dev/null | sed 's/^uprise //')
if _rev=$(git -C "$UPRISE_ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$UPRISE_ROOT" diff --quiet HEAD -- src Cargo.lock 2>/dev/null || _rev="$_rev-dirty"
    # the binary predates the sources: it was not built from this tree
    [ -n "$(find "$UPRISE_ROOT/src" "$UPRISE_ROOT/Cargo.lock" -newer "$UPRISE_BIN/uprise" 2>/dev/null | head -1)" ] \
        && _rev="$_rev-stale"
    SUP_VERSION="$SUP_VERSION+$_rev"
fi
SUP_CHILD_NAME=
. "$SVB_KIT/lib.sh"

CTL=("$UPRISE_BIN/uprisectl" --socket)
console_line() { [ "$SVB_UPRISE_CONSOLE" != auto ] && printf 'console %s\n' "$SVB_UPRISE_CONSOLE"; return 0; }
sup_setup() {
    local i
    mkdir -p "$W/c" "$W/log"
    for i in $(seq 1 "$1"); do
        { printf 'start on startup\nexec %s 100000\n' "$SVC"; console_line; } > "$W/c/s$i.conf"
    done
    STATUS_ALL=("${CTL[@]}" "$W/sock" list)
    STATUS_ONE=("${CTL[@]}" "$W/sock" status s1)
}
# default: `respawn` alone: the shipped limit, 10 respawns in 5 s, then the job fails and stops
# fast:    `respawn limit unlimited` (no respawn delay by default either)
sup_setup_respawn() {
    mkdir -p "$W/c" "$W/log"
    { printf 'start on startup\nrespawn\nexec %s %s 1\n' "$SVB_BIN/svb_once" "$W/starts"
      [ "$1" = fast ] && printf 'respawn limit unlimited\n'
      console_line; } > "$W/c/r1.conf"
    STATUS_ONE=("${CTL[@]}" "$W/sock" status r1)
}
# the default startup event ("startup") starts every job
sup_start() {
    setsid "$UPRISE_BIN/uprise" --user --confdir "$W/c" --logdir "$W/log" --socket "$W/sock" \
        </dev/null >"$W/uprise.out" 2>&1 &
    SUP_PID=$!
}
sup_pids() { echo "$SUP_PID"; }
# SIGTERM: uprise stops every job (kill timeouts honoured), then exits
sup_stop() { kill -TERM "$SUP_PID"; }

svb_main "$@"
