#!/usr/bin/env bash
# Runs Debian's prometheus on loopback for the local stack, without Docker.
#
#   prometheus.sh start --dir DIR [--port N]   start (or report the running one); prints its URL
#   prometheus.sh stop  --dir DIR              stop it
#   prometheus.sh url   --dir DIR              print its URL
#
# The scrape config is generated into DIR/prometheus.yml from deploy/prometheus/prometheus.yml
# with every target rewritten to 127.0.0.1 (the same jobs, the same ports).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

die() { echo "prometheus.sh: $*" >&2; exit 1; }

cmd="${1:-}"; shift || true
dir=""; port="${GREENLOOP_PROMETHEUS_PORT:-9090}"
while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[[ -n "$dir" ]] || die "--dir is required"
command -v prometheus >/dev/null || die "prometheus not installed (run deploy/local/bootstrap.sh)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

case "$cmd" in
  start)
    mkdir -p "$dir/data"
    if running; then cat "$dir/url"; exit 0; fi
    while port_busy "$port"; do port=$((port + 1)); done
    sed -E 's/"[a-z0-9-]+:([0-9]+)"/"127.0.0.1:\1"/g' \
      "$ROOT/deploy/prometheus/prometheus.yml" | sed "s/127.0.0.1:9090/127.0.0.1:$port/" \
      >"$dir/prometheus.yml"
    rm -rf "$dir/rules" && cp -r "$ROOT/deploy/prometheus/rules" "$dir/rules"  # alert rules
    promtool check config "$dir/prometheus.yml" >/dev/null || die "generated config is invalid"
    nohup prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
      --web.listen-address="127.0.0.1:$port" --web.enable-lifecycle \
      >"$dir/prometheus.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
      if curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
        echo "http://127.0.0.1:$port" | tee "$dir/url"
        exit 0
      fi
      running || break
      sleep 0.2
    done
    tail -5 "$dir/prometheus.log" >&2 || true
    die "prometheus did not become ready on 127.0.0.1:$port (log: $dir/prometheus.log)"
    ;;
  stop)
    if running; then
      kill "$(cat "$dir/pid")"
      for _ in $(seq 1 50); do running || break; sleep 0.1; done
      echo "prometheus stopped"
    fi
    rm -f "$dir/pid"
    ;;
  url) if [[ -f "$dir/url" ]]; then cat "$dir/url"; else die "not started in $dir"; fi ;;
  *) die "usage: prometheus.sh start|stop|url --dir DIR [--port N]" ;;
esac
