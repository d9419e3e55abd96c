#!/usr/bin/env bash
# Stops the local stack started by deploy/local/run.sh. Data stays under .local/ unless --purge.
set -euo pipefail
cd "$(dirname "$0")/../.."
LOCAL="$PWD/.local"
for service in trainer feedback energy; do
  if [[ -f "$LOCAL/services/$service.pid" ]]; then
    deploy/local/service.sh stop "$service" --dir "$LOCAL/services"
  fi
done
if [[ -d "$LOCAL/prometheus" ]]; then deploy/local/prometheus.sh stop --dir "$LOCAL/prometheus"; fi
if [[ -d "$LOCAL/pg" ]]; then deploy/local/pg.sh stop --dir "$LOCAL/pg"; fi
if [[ "${1:-}" == "--purge" ]]; then
  [[ -d "$LOCAL/pg" ]] && deploy/local/pg.sh destroy --dir "$LOCAL/pg"
  rm -rf "$LOCAL"
  echo "removed $LOCAL"
fi
