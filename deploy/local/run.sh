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

echo "== energy collector"
GREENLOOP_PG_URL="$PG_URL" deploy/local/service.sh start energy --dir "$LOCAL/services" \
  --cli "$BUILD_DIR/tools/greenloop/greenloop" --health 127.0.0.1:7101 -- \
  "$BUILD_DIR/services/energy/greenloop-energy" --config deploy/local/energy.yaml

echo "== Prometheus"
PROM_URL="$(deploy/local/prometheus.sh start --dir "$LOCAL/prometheus")"

cat <<MSG

greenloop local stack is up (loopback only):
  PostgreSQL   $PG_URL
  Prometheus   $PROM_URL   (targets: $PROM_URL/targets)
  energy       grpc 127.0.0.1:7101, metrics http://127.0.0.1:9101/metrics (source: estimated
               here unless RAPL is readable; see docs/energy.md)
  logs         $LOCAL/pg/server.log, $LOCAL/prometheus/prometheus.log, $LOCAL/services/*.log
Prometheus scrapes every service port (energy :9101, feedback :9102, trainer :9103) as services
start. Stop everything with: deploy/local/down.sh
MSG
