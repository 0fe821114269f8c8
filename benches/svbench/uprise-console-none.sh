#!/usr/bin/env bash
# uprise with `console none` in every service (no log pipe per instance), reported as
# sup=uprise_console_none. Same usage as uprise.sh.
_self=$(readlink -f "${BASH_SOURCE[0]}")
SVB_UPRISE_CONSOLE=none exec "$(dirname "$_self")/uprise.sh" "$@"
