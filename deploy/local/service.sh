#!/usr/bin/env bash
# service.sh — runs one greenloop service as a background process for the local stack.
#
#   service.sh start  NAME --dir DIR --health HOST:PORT [--cli PATH] -- COMMAND [ARGS...]
#   service.sh stop   NAME --dir DIR
#   service.sh status NAME --dir DIR
#
# start   runs COMMAND with its output in DIR/NAME.log and its pid in DIR/NAME.pid (its start
#         time in DIR/NAME.start), then waits (up to 30 s) until `greenloop rpc health
#         --target=HOST:PORT` says SERVING. Already running: does nothing; a process that died (a
#         zombie not reaped yet included) or a pid since reused by another process is not
#         running, so a start after a crash starts it. A service that exits or never serves: its
#         log tail, exit 1.
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
PIDFILE="$DIR/$NAME.pid" STARTFILE="$DIR/$NAME.start" LOG="$DIR/$NAME.log"

# The process's start time (field 22 of /proc/PID/stat, after the command in parentheses), or
# nothing when it is gone or a zombie (state Z or X: killed, not reaped yet).
started_at() {
  local stat rest
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  rest="${stat##*) }"  # the command may hold spaces and parentheses: cut after the last ") "
  set -- $rest
  [[ "$1" != Z && "$1" != X ]] || return 1
  echo "${20}"
}
# Running: the pid file names a live process that is not a zombie and started when the one this
# script started did (so a reused pid is not taken for the service).
running() {
  [[ -f "$PIDFILE" ]] || return 1
  local now
  now="$(started_at "$(cat "$PIDFILE")")" || return 1
  [[ ! -f "$STARTFILE" || "$(cat "$STARTFILE")" == "$now" ]]
}

case "$ACTION" in
  start)
    [[ $# -gt 0 ]] || die "start needs -- COMMAND"
    if running; then echo "$NAME already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    nohup "$@" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    started_at $! >"$STARTFILE" || true
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
    if ! running; then rm -f "$PIDFILE" "$STARTFILE"; exit 0; fi
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
      running || { rm -f "$PIDFILE" "$STARTFILE"; echo "$NAME stopped"; exit 0; }
      sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE" "$STARTFILE"
    echo "$NAME killed after 15 s"
    ;;
  status)
    if running; then echo "running pid $(cat "$PIDFILE")"; else echo "stopped"; exit 3; fi
    ;;
  *) die "unknown action $ACTION" ;;
esac
