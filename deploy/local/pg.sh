#!/usr/bin/env bash
# pg.sh — a throwaway local PostgreSQL for development and tests, without Docker.
#
#   pg.sh start   --dir DIR [--db NAME] [--port N] [--fresh] [--ephemeral]
#   pg.sh stop    --dir DIR
#   pg.sh destroy --dir DIR
#   pg.sh url     --dir DIR
#   pg.sh status  --dir DIR
#
# start      creates a cluster in DIR/data (initdb, trust auth, superuser `greenloop`, UTF8) unless
#            one is there, starts it on 127.0.0.1 only (TCP, no Unix socket) on PORT or a free
#            port, waits until it accepts connections, creates database NAME (default greenloop),
#            writes postgresql://greenloop@127.0.0.1:PORT/NAME to DIR/url and prints it.
#            Already running: prints the url. --fresh destroys DIR first. --ephemeral turns off
#            fsync (test clusters: fast, and lost on a crash).
# stop       fast shutdown; nothing to do if it is not running.
# destroy    stop, then remove DIR (only a DIR this script made).
# url        prints DIR/url.
# status     prints "running URL" (exit 0) or "stopped" (exit 3).
#
# Run as root, the server runs as the `postgres` system user (PostgreSQL refuses to run as root):
# DIR/data is owned by it and DIR's parents get the search (x) bit for others if they lack it.
# PG_BINDIR overrides where initdb, pg_ctl and psql are looked up.
set -euo pipefail

readonly PROG="pg.sh"
readonly SUPERUSER="greenloop"
readonly MARKER=".greenloop-pg"
readonly START_WAIT_S=30
readonly STOP_WAIT_S=60

die() {
  echo "${PROG}: error: $*" >&2
  exit 1
}

note() {
  echo "${PROG}: $*" >&2
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Finds the PostgreSQL server binaries: $PG_BINDIR, then the newest /usr/lib/postgresql/*/bin
# (Debian), then PATH.
find_bindir() {
  if [[ -n "${PG_BINDIR:-}" ]]; then
    [[ -x "${PG_BINDIR}/initdb" ]] || die "PG_BINDIR=${PG_BINDIR} has no initdb"
    echo "${PG_BINDIR}"
    return
  fi
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)"
  if [[ -n "${dir}" && -x "${dir}/initdb" ]]; then
    echo "${dir}"
    return
  fi
  local initdb
  initdb="$(command -v initdb || true)"
  [[ -n "${initdb}" ]] || die "PostgreSQL server binaries not found (install postgresql, or set PG_BINDIR)"
  dirname "$(readlink -f "${initdb}")"
}

# Runs a command as the server's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [[ "${EUID}" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Lets the postgres user reach DIR: every parent directory needs the search bit for it.
make_traversable() {
  local path="$1"
  while [[ "${path}" != "/" ]]; do
    path="$(dirname "${path}")"
    if ! runuser -u postgres -- test -x "${path}"; then
      chmod o+x "${path}" || die "cannot make ${path} traversable for the postgres user"
      note "gave others the search bit on ${path} so the postgres user can reach the data directory"
    fi
  done
}

port_in_use() {
  ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# Below the kernel's ephemeral range, which outgoing connections draw from (a port picked inside
# it can be taken by one between the pick and the server's bind).
pick_free_port() {
  local port attempt low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((low > 12000)) || low=32768
  for attempt in $(seq 1 50); do
    port=$((10000 + (RANDOM * 32768 + RANDOM + attempt) % (low - 10000)))
    if ! port_in_use "${port}"; then
      echo "${port}"
      return
    fi
  done
  die "no free loopback port found after 50 tries"
}

is_running() {
  [[ -f "${DATA}/PG_VERSION" ]] && as_owner "${BINDIR}/pg_ctl" -D "${DATA}" status >/dev/null 2>&1
}

configured_port() {
  sed -n "s/^port = \([0-9]*\).*/\1/p" "${DATA}/postgresql.conf" | tail -n 1
}

log_tail() {
  if [[ -f "${LOG}" ]]; then
    echo "--- last lines of ${LOG} ---" >&2
    tail -n 20 "${LOG}" >&2
  fi
}

psql_admin() {
  "${BINDIR}/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U "${SUPERUSER}" -d postgres "${@:2}"
}

write_url() {
  local url="postgresql://${SUPERUSER}@127.0.0.1:$1/$2"
  printf '%s\n' "${url}" >"${DIR}/url.tmp"
  mv -f "${DIR}/url.tmp" "${DIR}/url"
  echo "${url}"
}

init_cluster() {
  local ephemeral="$1"
  mkdir -p "${DATA}"
  chmod 700 "${DATA}"
  touch "${LOG}"
  if [[ "${EUID}" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres system user (Debian package postgresql)"
    make_traversable "${DATA}"
    chown postgres: "${DATA}" "${LOG}"
  fi
  local out
  if ! out="$(as_owner "${BINDIR}/initdb" -D "${DATA}" -U "${SUPERUSER}" -A trust -E UTF8 \
    --locale=C --no-sync 2>&1)"; then
    echo "${out}" | tail -n 20 >&2
    die "initdb failed in ${DATA}"
  fi
  {
    echo ""
    echo "# Written by deploy/local/pg.sh"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = ''"
    echo "max_connections = 200"
    echo "logging_collector = off"
    if [[ "${ephemeral}" == "1" ]]; then
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } >>"${DATA}/postgresql.conf"
}

set_port() {
  sed -i '/^port = /d' "${DATA}/postgresql.conf"
  echo "port = $1" >>"${DATA}/postgresql.conf"
}

# Starts the server; returns 1 (after printing nothing) when the port was taken, dies otherwise.
start_server() {
  local port="$1"
  : >"${LOG}"
  if as_owner "${BINDIR}/pg_ctl" -D "${DATA}" -l "${LOG}" -w -t "${START_WAIT_S}" start >/dev/null 2>&1; then
    return 0
  fi
  if grep -q "could not bind\|Address already in use" "${LOG}" 2>/dev/null; then
    return 1
  fi
  log_tail
  die "PostgreSQL in ${DATA} failed to start on 127.0.0.1:${port} (waited up to ${START_WAIT_S}s; log: ${LOG})"
}

wait_ready() {
  local port="$1" i
  for ((i = 0; i < START_WAIT_S * 10; i++)); do
    if "${BINDIR}/pg_isready" -q -h 127.0.0.1 -p "${port}" -d postgres -U "${SUPERUSER}"; then
      return 0
    fi
    sleep 0.1
  done
  log_tail
  die "PostgreSQL on 127.0.0.1:${port} does not accept connections after ${START_WAIT_S}s (log: ${LOG})"
}

create_database() {
  local port="$1" db="$2" exists
  exists="$(psql_admin "${port}" -tA -c "SELECT 1 FROM pg_database WHERE datname = '${db}'")" ||
    die "cannot query 127.0.0.1:${port} for database ${db}"
  if [[ "${exists}" != "1" ]]; then
    psql_admin "${port}" -c "CREATE DATABASE \"${db}\"" >/dev/null ||
      die "cannot create database ${db} on 127.0.0.1:${port}"
  fi
}

cmd_start() {
  local db="$1" port="$2" fresh="$3" ephemeral="$4"
  [[ "${db}" =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] || die "--db ${db}: use letters, digits and _"
  if [[ -n "${port}" ]]; then
    if ! [[ "${port}" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
      die "--port ${port}: not a port number"
    fi
  fi
  if [[ "${fresh}" == "1" ]]; then
    cmd_destroy
  fi

  if is_running; then
    local running_port
    running_port="$(configured_port)"
    if [[ -n "${port}" && "${port}" != "${running_port}" ]]; then
      die "${DIR} is already running on port ${running_port}, not ${port}; stop it first"
    fi
    create_database "${running_port}" "${db}"
    write_url "${running_port}" "${db}"
    return
  fi

  if [[ -e "${DIR}" && ! -f "${DIR}/${MARKER}" ]] && [[ -n "$(ls -A "${DIR}")" ]]; then
    die "${DIR} exists, is not empty and was not made by ${PROG}; pick another --dir"
  fi
  mkdir -p "${DIR}"
  touch "${DIR}/${MARKER}"

  local chosen="${port}"
  if [[ ! -f "${DATA}/PG_VERSION" ]]; then
    init_cluster "${ephemeral}"
  elif [[ -n "${port}" && "$(configured_port)" != "${port}" ]]; then
    note "restarting ${DIR} on port ${port} (was $(configured_port))"
  elif [[ -z "${port}" ]]; then
    chosen="$(configured_port)"
  fi

  local attempt
  for attempt in 1 2 3 4 5; do
    if [[ -z "${chosen}" ]] || { [[ -z "${port}" ]] && port_in_use "${chosen}"; }; then
      chosen="$(pick_free_port)"
    fi
    set_port "${chosen}"
    if start_server "${chosen}"; then
      break
    fi
    if [[ -n "${port}" ]]; then
      log_tail
      die "port ${port} on 127.0.0.1 is already in use"
    fi
    note "port ${chosen} was taken, trying another (attempt ${attempt})"
    chosen=""
  done
  is_running || die "could not find a free port for PostgreSQL after 5 attempts"
  wait_ready "${chosen}"
  create_database "${chosen}" "${db}"
  write_url "${chosen}" "${db}"
}

cmd_stop() {
  [[ -f "${DATA}/PG_VERSION" ]] || return 0
  if is_running; then
    as_owner "${BINDIR}/pg_ctl" -D "${DATA}" -m fast -w -t "${STOP_WAIT_S}" stop >/dev/null 2>&1 || {
      log_tail
      die "PostgreSQL in ${DATA} did not stop within ${STOP_WAIT_S}s"
    }
  fi
}

cmd_destroy() {
  [[ -e "${DIR}" ]] || return 0
  [[ -d "${DIR}" ]] || die "${DIR} is not a directory"
  if [[ ! -f "${DIR}/${MARKER}" && -n "$(ls -A "${DIR}")" ]]; then
    die "${DIR} was not made by ${PROG} (no ${MARKER}); refusing to remove it"
  fi
  cmd_stop
  rm -rf -- "${DIR}"
}

cmd_url() {
  [[ -f "${DIR}/url" ]] || die "no url in ${DIR}; run: ${PROG} start --dir ${DIR}"
  cat "${DIR}/url"
}

cmd_status() {
  if is_running; then
    echo "running $(cat "${DIR}/url" 2>/dev/null || echo "port $(configured_port)")"
  else
    echo "stopped"
    exit 3
  fi
}

main() {
  [[ $# -ge 1 ]] || usage
  local command="$1"
  shift
  local dir="" db="greenloop" port="" fresh=0 ephemeral=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; dir="$2"; shift 2 ;;
      --db) [[ $# -ge 2 ]] || die "--db needs a value"; db="$2"; shift 2 ;;
      --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
      --fresh) fresh=1; shift ;;
      --ephemeral) ephemeral=1; shift ;;
      -h | --help) usage ;;
      *) die "unknown argument: $1 (see ${PROG} --help)" ;;
    esac
  done
  [[ -n "${dir}" ]] || die "--dir DIR is required"
  [[ "${command}" == "start" || (-z "${port}" && "${fresh}" == 0 && "${ephemeral}" == 0) ]] ||
    die "--port, --fresh and --ephemeral only apply to start"

  # Absolute, without requiring DIR to exist yet.
  DIR="$(realpath -m -- "${dir}")"
  [[ "${DIR}" != "/" ]] || die "--dir / is not allowed"
  DATA="${DIR}/data"
  LOG="${DIR}/postgres.log"
  BINDIR="$(find_bindir)"
  readonly DIR DATA LOG BINDIR

  case "${command}" in
    start) cmd_start "${db}" "${port}" "${fresh}" "${ephemeral}" ;;
    stop) cmd_stop ;;
    destroy) cmd_destroy ;;
    url) cmd_url ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) die "unknown command: ${command} (start, stop, destroy, url, status)" ;;
  esac
}

main "$@"
