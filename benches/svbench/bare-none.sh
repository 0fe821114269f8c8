#!/usr/bin/env bash
# bare with the services' output on /dev/null (no pipe each), reported as sup=bare_none.
# Same usage as bare.sh.
_self=$(readlink -f "${BASH_SOURCE[0]}")
SVB_BARE_OUTPUT=none exec "$(dirname "$_self")/bare.sh" "$@"
