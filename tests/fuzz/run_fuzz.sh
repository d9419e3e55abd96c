#!/usr/bin/env bash
# Runs one libFuzzer target from its committed seed corpus, keeping what it finds in a work
# corpus of its own (the first directory libFuzzer writes to), and fails on any crash, leak,
# sanitizer report or timeout (libFuzzer exits non-zero and leaves the input as crash-*/leak-*).
#
#   run_fuzz.sh TARGET SEED_DIR WORK_DIR [libFuzzer flags, e.g. -max_total_time=10 or -runs=1000000]
set -euo pipefail
(($# >= 3)) || { sed -n '2,6p' "$0" >&2; exit 2; }
mkdir -p "$3"
target="$(realpath "$1")" seeds="$(realpath "$2")" work="$(realpath "$3")"
shift 3
cd "$work"
exec "$target" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 "$@" "$work" "$seeds"
