#!/usr/bin/env bash
# run-all.sh - the shared kit's run-all.sh with uprise added, so that uprise and the peers are
# measured round-robin in ONE call. The kit's run-all.sh runs scripts that sit next to itself,
# so this copies the kit (../shared/bench beside the repo, read-only) to a temp dir, links
# uprise.sh, uprise-console-none.sh, bare.sh and bare-none.sh into the copy, and runs the
# copy's run-all.sh.
# usage: same options as the kit's run-all.sh:
#   ./run-all.sh [-r REPS] [-n "100 1000"] [-s "runit s6 ... uprise"] [-o RESULTS] [-R] [-N]
# Without -s: every peer the kit finds on PATH, then bare and bare-none (the same work done by
# the simplest C program, see bare.c), then uprise and uprise-console-none.
# Env: UPRISE_ROOT, SVB_KIT (see uprise.sh); SVB_UPRISE_SUPS overrides the uprise variants
# added without -s (default "uprise uprise-console-none"), SVB_BARE_SUPS the reference rows
# (default "bare bare-none"; empty for none).
set -u
_self=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$_self")
export UPRISE_ROOT=${UPRISE_ROOT:-$(cd "$HERE/../.." && pwd)}
KIT=${SVB_KIT:-$(cd "$UPRISE_ROOT/../shared/bench" 2>/dev/null && pwd)}
if [ -z "$KIT" ] || [ ! -x "$KIT/run-all.sh" ]; then
    echo "run-all.sh: shared kit not found (expected $UPRISE_ROOT/../shared/bench; set SVB_KIT)" >&2
    exit 2
fi

# build once up front, not inside the first timed run; always, unless UPRISE_BIN names other
# binaries: a no-op when the release build is current, and it puts the release binaries back
# where `cargo bench` left its own (linked with other symbol names, which tools/uprise.order
# matches less well: 0.3 MiB more of the daemon's image resident)
if [ -z "${UPRISE_BIN:-}" ]; then
    (cd "$UPRISE_ROOT" && cargo build --release --bins >&2) || exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/svbench-kit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cp -a "$KIT/." "$TMP/"          # -a keeps the dates: the helpers are not rebuilt needlessly
chmod u+w "$TMP"
ln -s "$HERE/uprise.sh" "$TMP/uprise.sh"
ln -s "$HERE/uprise-console-none.sh" "$TMP/uprise-console-none.sh"
ln -s "$HERE/bare.sh" "$TMP/bare.sh"
ln -s "$HERE/bare-none.sh" "$TMP/bare-none.sh"
export SVB_KIT=$TMP

# without -s, the kit's own detection knows nothing of uprise: detect the peers the same way
# and append the reference rows and the uprise variants
has_s=0
for arg in "$@"; do case $arg in -s|-s*) has_s=1 ;; esac; done
args=("$@")
if [ $has_s = 0 ]; then
    sups=""
    for pair in runit:runsvdir s6:s6-svscan daemontools:svscan supervisord:supervisord \
                dinit:dinit horust:horust circus:circusd pm2:pm2; do
        command -v "${pair#*:}" >/dev/null && sups="$sups ${pair%%:*}"
    done
    sups="$sups ${SVB_BARE_SUPS-bare bare-none} ${SVB_UPRISE_SUPS:-uprise uprise-console-none}"
    args+=(-s "${sups# }")
fi
# not exec: the trap removes the copy afterwards
"$TMP/run-all.sh" "${args[@]}"
