#!/usr/bin/env bash
# service.sh — runs one greenloop service as a background process for the local stack.
#
#   service.sh start  NAME --dir DIR --health HOST:PORT [--cli PATH] -- COMMAND [ARGS...]
#   service.sh stop   NAME --dir DIR
#   service.sh status NAME --dir DIR
#
# start   runs COMMAND with its output in DIR/NAME.log and its pid in DIR/NAME.pid, then waits
#         (up to 30 s) until `greenloop rpc health --target=HOST:PORT` says SERVING. Already
#         running: does nothing. A service that exits or never serves: its log tail, exit 1.
# stop    SIGTERM, waits up to 15 s for a clean exit, then SIGKILL.
set -euo pipefail

die() { echo "service.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: service.sh start|stop|status NAME --dir DIR ..."
ACTION="$1" NAME="$2"
shift 2
DIR="" HEALTH="" CLI="${GREENLOOP_CLI:-build/tools/greenloop/greenloop}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --health) HEALTH="$2"; shift 2 ;;
    --cli) CLI="$2"; shift 2 ;;
    --) shift; break ;;
    *) die "unknown argument $1" ;;
  esac
done
[[ -n "$DIR" ]] || die "--dir is required"
mkdir -p "$DIR"
PIDFILE="$DIR/$NAME.pid" LOG="$DIR/$NAME.log"

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "$ACTION" in
  start)
    [[ $# -gt 0 ]] || die "start needs -- COMMAND"
    if running; then echo "$NAME already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    nohup "$@" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
      if ! running; then
        tail -n 20 "$LOG" >&2
        die "$NAME exited at start (log: $LOG)"
      fi
      if [[ -z "$HEALTH" ]] || "$CLI" rpc health --target="$HEALTH" --timeout=500ms >/dev/null 2>&1; then
        echo "$NAME running (pid $(cat "$PIDFILE"), log $LOG)"
        exit 0
      fi
      sleep 0.5
    done
    tail -n 20 "$LOG" >&2
    die "$NAME did not become healthy on $HEALTH within 30 s (log: $LOG)"
    ;;
  stop)
    if ! running; then rm -f "$PIDFILE"; exit 0; fi
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; echo "$NAME stopped"; exit 0; }
      sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "$NAME killed after 15 s"
    ;;
  status)
    if running; then echo "running pid $(cat "$PIDFILE")"; else echo "stopped"; exit 3; fi
    ;;
  *) die "unknown action $ACTION" ;;
esac
