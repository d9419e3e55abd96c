#!/usr/bin/env bash
# The README's main command. Installs what is missing, builds greenloop, and starts the local
# stack on loopback, without Docker: PostgreSQL (data under .local/pg) and Prometheus (data under
# .local/prometheus). Prints what runs where. `deploy/local/down.sh` stops it all.
#
# The experiment job (`greenloop experiment run`) joins this script when it lands; until then
# this brings the stack up and leaves it running for the services as they arrive.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
LOCAL="$ROOT/.local"
BUILD_DIR="${GREENLOOP_BUILD_DIR:-build}"
mkdir -p "$LOCAL"

deploy/local/bootstrap.sh
echo "== build"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"${GREENLOOP_JOBS:-2}"

echo "== PostgreSQL"
PG_URL="$(deploy/local/pg.sh start --dir "$LOCAL/pg" --db greenloop)"

echo "== Prometheus"
PROM_URL="$(deploy/local/prometheus.sh start --dir "$LOCAL/prometheus")"

cat <<MSG

greenloop local stack is up (loopback only):
  PostgreSQL   $PG_URL
  Prometheus   $PROM_URL   (targets: $PROM_URL/targets)
  logs         $LOCAL/pg/server.log, $LOCAL/prometheus/prometheus.log
Services (energy :7101/:9101, feedback :7102/:9102/:8080, trainer :7103/:9103) are scraped
as they start. Stop everything with: deploy/local/down.sh
MSG
