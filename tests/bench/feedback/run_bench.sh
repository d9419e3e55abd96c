#!/usr/bin/env bash
# The feedback queue at crowd scale, on an ephemeral and on a durable PostgreSQL (a benchmark,
# not a test):
#
#   tests/bench/feedback/run_bench.sh [--build=DIR] [--pg.url=URL] [feedback_bench flags...]
#
# Without --pg.url it starts two throwaway clusters on free loopback ports (deploy/local/pg.sh):
# an ephemeral one (fsync off, as the test suites use) and a durable one (fsync and
# synchronous_commit on, as in production), runs build/tests/bench/feedback/feedback_bench on
# each, and removes both. With --pg.url it runs on that server only. Each run prints its table and
# its `queue:` line; the last line of the output is the ephemeral (or given) server's:
#
#   queue: raters=200 cycles_per_s=N ceiling=N ratio=N.NN lease_p99_ms=N submit_p99_ms=N open_loop_p99_ms=N
#
# About 2 minutes per server with the defaults (10 s per run).
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=build
URL=""
PASS=()
for arg in "$@"; do
  case "$arg" in
    --build=*) BUILD="${arg#--build=}" ;;
    --pg.url=*) URL="${arg#--pg.url=}" ;;
    *) PASS+=("$arg") ;;
  esac
done
BENCH="$BUILD/tests/bench/feedback/feedback_bench"
[[ -x "$BENCH" ]] || { echo "$0: $BENCH not built (cmake --build $BUILD --target feedback_bench)" >&2; exit 2; }
if [[ -n "$URL" ]]; then
  exec "$BENCH" "--pg.url=$URL" "${PASS[@]}"
fi

WORK=$(mktemp -d /tmp/feedback-bench.XXXXXX)
cleanup() {
  for d in ephemeral durable; do
    [[ -d "$WORK/$d" ]] && deploy/local/pg.sh destroy --dir "$WORK/$d" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
durable_url=$(deploy/local/pg.sh start --fresh --dir "$WORK/durable")
ephemeral_url=$(deploy/local/pg.sh start --fresh --ephemeral --dir "$WORK/ephemeral")
settings() {
  psql -Atq "$1" -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings \
    WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
}
echo "== durable PostgreSQL ($(settings "$durable_url"))"
"$BENCH" "--pg.url=$durable_url" --label=durable "${PASS[@]}" | sed 's/^queue:/durable queue:/'
deploy/local/pg.sh stop --dir "$WORK/durable" >/dev/null
echo "== ephemeral PostgreSQL ($(settings "$ephemeral_url"))"
"$BENCH" "--pg.url=$ephemeral_url" --label=ephemeral "${PASS[@]}"
