#!/usr/bin/env bash
# The README's main command. Installs what is missing, builds greenloop, starts the local stack on
# loopback without Docker (PostgreSQL, the energy collector, the feedback queue, a trainer rank,
# Prometheus), then runs an experiment end to end with the simulated crowd and prints its table
# and report paths. The stack stays up afterwards (Prometheus, the rater page);
# `deploy/local/down.sh` stops it all.
#
#   deploy/local/run.sh                  # examples/quick.yaml: 5 modes x 3 seeds, ~5 min on 2 cores
#   deploy/local/run.sh SPEC.yaml        # any spec, e.g. examples/fashion-mnist-noise30.yaml
#   GREENLOOP_NO_EXPERIMENT=1 deploy/local/run.sh   # only bring the stack up
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
LOCAL="$ROOT/.local"
BUILD_DIR="${GREENLOOP_BUILD_DIR:-build}"
SPEC="${1:-examples/quick.yaml}"
CLI="$BUILD_DIR/tools/greenloop/greenloop"
mkdir -p "$LOCAL"

deploy/local/bootstrap.sh
echo "== build"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"${GREENLOOP_JOBS:-2}"

echo "== PostgreSQL"
PG_URL="$(deploy/local/pg.sh start --dir "$LOCAL/pg" --db greenloop)"

# One admin token for the local stack, made once and kept (mode 600) under .local/. The feedback
# service creates it on first start; the trainer and the CLI use it.
if [[ ! -s "$LOCAL/admin-token" ]]; then
  (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' | sed 's/^/glt_local_/' >"$LOCAL/admin-token")
fi
ADMIN_TOKEN="$(cat "$LOCAL/admin-token")"

echo "== energy collector"
GREENLOOP_PG_URL="$PG_URL" deploy/local/service.sh start energy --dir "$LOCAL/services" \
  --cli "$CLI" --health 127.0.0.1:7101 -- \
  "$BUILD_DIR/services/energy/greenloop-energy" --config deploy/local/energy.yaml

echo "== feedback queue"
GREENLOOP_PG_URL="$PG_URL" GREENLOOP_AUTH_BOOTSTRAP_ADMIN_TOKEN="$ADMIN_TOKEN" \
  deploy/local/service.sh start feedback --dir "$LOCAL/services" \
  --cli "$CLI" --health 127.0.0.1:7102 -- \
  "$BUILD_DIR/services/feedback/greenloop-feedback" --config deploy/local/feedback.yaml

echo "== trainer (rank 0)"
GREENLOOP_PG_URL="$PG_URL" GREENLOOP_AUTH_TOKEN="$ADMIN_TOKEN" \
  deploy/local/service.sh start trainer --dir "$LOCAL/services" \
  --cli "$CLI" --health 127.0.0.1:7103 -- \
  "$BUILD_DIR/services/trainer/greenloop-trainer" --config deploy/local/trainer.yaml

echo "== Prometheus"
PROM_URL="$(deploy/local/prometheus.sh start --dir "$LOCAL/prometheus")"

cat <<MSG

greenloop local stack is up (loopback only):
  PostgreSQL   $PG_URL
  Prometheus   $PROM_URL   (targets: $PROM_URL/targets)
  energy       grpc 127.0.0.1:7101, metrics http://127.0.0.1:9101/metrics (source: estimated
               here unless RAPL is readable; see docs/energy.md)
  feedback     grpc 127.0.0.1:7102, rater page http://127.0.0.1:8080/ (admin token in
               .local/admin-token; make a rater token: $CLI token create --role rater --name NAME)
  trainer      grpc 127.0.0.1:7103, metrics http://127.0.0.1:9103/metrics
  logs         $LOCAL/pg/postgres.log, $LOCAL/prometheus/prometheus.log, $LOCAL/services/*.log
Stop everything with: deploy/local/down.sh
MSG

if [[ -n "${GREENLOOP_NO_EXPERIMENT:-}" ]]; then exit 0; fi

echo
echo "== experiment: $SPEC"
"$CLI" experiment run "$SPEC" --pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" \
  --auth.admin_token="$ADMIN_TOKEN" --output_dir="$LOCAL/experiments" \
  --infra.pid_files="feedback=$LOCAL/services/feedback.pid,postgres=$LOCAL/pg/data/postmaster.pid"
