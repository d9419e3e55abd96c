#!/usr/bin/env bash
# Quick static deployment checks (CTest label `deploy`), each with the real tool:
#
#   static_checks.sh promtool_check_config   prometheus.yml (compose/local) and prometheus-k8s.yml
#   static_checks.sh promtool_check_rules    alert rules
#   static_checks.sh promtool_test_rules     alert unit tests (deploy/prometheus/tests)
#   static_checks.sh grafana_dashboards      dashboards parse, unique uids, datasources provisioned,
#                                            every PromQL expression parses (promtool)
#   static_checks.sh grafana_sql             every SQL panel query runs on the real schema (pg fixture)
#   static_checks.sh docker_compose_config   docker-compose.yml (Debian's docker-compose; no engine),
#                                            the Dockerfile stages it builds, GREENLOOP_* variables
#
#   static_checks.sh CHECK [BUILD_DIR]     (BUILD_DIR: default build; for the --help of the binaries)
#
# Run from the repository root. Exit 0 on success; the failing check says what is wrong.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BUILD="$(cd "${2:-$DEPLOY_ROOT/build}" 2>/dev/null && pwd || echo "${2:-build}")"
cd "$DEPLOY_ROOT"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

case "${1:-}" in
  promtool_check_config)
    need promtool
    promtool check config deploy/prometheus/prometheus.yml
    promtool check config deploy/prometheus/prometheus-k8s.yml
    # Every service of the architecture has a scrape job in both.
    for job in greenloop-energy greenloop-feedback greenloop-trainer; do
      for f in deploy/prometheus/prometheus.yml deploy/prometheus/prometheus-k8s.yml; do
        grep -q "job_name: $job\$" "$f" || fail "$f has no scrape job $job"
      done
    done
    ;;
  promtool_check_rules)
    need promtool
    promtool check rules deploy/prometheus/rules/*.yml
    ;;
  promtool_test_rules)
    need promtool
    promtool test rules deploy/prometheus/tests/*.test.yml
    # Every alert has at least one unit test.
    for alert in $(grep -ho 'alert: [A-Za-z]*' deploy/prometheus/rules/*.yml | cut -d' ' -f2); do
      grep -q "alertname: $alert\$" deploy/prometheus/tests/*.test.yml || fail "alert $alert has no promtool unit test"
    done
    ;;
  grafana_dashboards)
    need jq
    need promtool
    datasources="$(grep -ho 'uid: [a-z-]*' deploy/grafana/provisioning/datasources/*.yml | cut -d' ' -f2 | sort -u)"
    for f in "$DASHBOARDS"/*.json; do
      jq -e '.uid and .title and (.panels | length > 0)' "$f" >/dev/null || fail "$f: not a dashboard (uid, title, panels)"
      for uid in $(jq -r '[.. | objects | select(has("datasource")) | .datasource | objects | .uid] | unique[]' "$f"); do
        grep -qx "$uid" <<<"$datasources" || fail "$f: datasource uid '$uid' is not provisioned in deploy/grafana/provisioning/datasources"
      done
      jq -e '[.panels[] | select(.type != "text") | (.targets // []) | length > 0] | all' "$f" >/dev/null ||
        fail "$f: a panel has no query"
    done
    dups="$(jq -r .uid "$DASHBOARDS"/*.json | sort | uniq -d)"
    [[ -z "$dups" ]] || fail "duplicate dashboard uid: $dups"
    for title in Energy Training Raters "HITL savings"; do
      jq -r .title "$DASHBOARDS"/*.json | grep -q "/ $title\$" || fail "no dashboard titled 'greenloop / $title'"
    done
    # Every PromQL expression parses: promtool checks them as recording rules (JSON is YAML).
    dashboard_queries | jq -s '{groups: [{name: "dashboards", rules: [
        [.[] | select(.kind == "prometheus")] | to_entries[] | {record: "dashboard:query_\(.key)", expr: .value.expr}]}]}' \
      >"$tmp/dashboards.rules.json"
    promtool check rules --lint-fatal "$tmp/dashboards.rules.json"
    echo "$(dashboard_queries | wc -l) dashboard queries in $(ls "$DASHBOARDS"/*.json | wc -l) dashboards"
    ;;
  docker_compose_config)
    need docker-compose
    docker-compose -f docker-compose.yml config -q
    resolved="$(docker-compose -f docker-compose.yml config)"
    # Every GREENLOOP_* variable set for a service is a real config key of its binary (--help lists
    # each key with its variable); a service whose binary is not built yet is reported as pending.
    for svc in energy trainer-0 feedback; do
      bin="$BUILD/services/${svc%-0}/greenloop-${svc%-0}"
      if [[ ! -x "$bin" ]]; then echo "PENDING: $bin not built; its variables are not checked"; continue; fi
      help="$("$bin" --help 2>&1 || true)"
      for var in $(awk -v s="  $svc:" '$0 == s { on = 1; next } on && /^  [a-z]/ { on = 0 } on' <<<"$resolved" | grep -o 'GREENLOOP_[A-Z_]*' | sort -u); do
        grep -q "\[env $var\]" <<<"$help" || fail "docker-compose.yml sets $var for $svc, which $(basename "$bin") does not know"
      done
    done
    # Each image: its Dockerfile exists, its target is a stage there, and that stage runs as a
    # non-root user of its own (greenloop-<target>) with a HEALTHCHECK; every file the Dockerfile copies from the context exists.
    for df in $(grep -o 'dockerfile: [^ ]*' <<<"$resolved" | cut -d' ' -f2 | sort -u); do
      [[ -f "$df" ]] || fail "docker-compose.yml names $df, which does not exist"
      grep -q '^FROM debian:bookworm\|^ARG DEBIAN=debian:bookworm' "$df" || fail "$df is not based on Debian bookworm"
      for src in $(awk '/^COPY / && !/--from/ { for (i = 2; i < NF; i++) print $i }' "$df"); do
        [[ -e "$src" ]] || fail "$df copies $src, which does not exist"
      done
    done
    for target in $(grep -o 'target: [a-z-]*' <<<"$resolved" | cut -d' ' -f2 | sort -u); do
      stage="$(awk -v t="$target" '/^FROM / { on = ($NF == t) } on' deploy/docker/Dockerfile)"
      [[ -n "$stage" ]] || fail "no stage $target in deploy/docker/Dockerfile"
      grep -q "^USER greenloop-$target\$" <<<"$stage" || fail "stage $target does not run as its own non-root user greenloop-$target"
      grep -q '^HEALTHCHECK' <<<"$stage" || fail "stage $target has no HEALTHCHECK"
    done
    echo "docker-compose.yml is valid ($(docker-compose -f docker-compose.yml config --services | tr '\n' ' '))"
    ;;
  grafana_sql)
    # Every SQL query of the PostgreSQL panels runs against the real schema: a scratch database on
    # the pg fixture's server gets every migration under deploy/db/ (each service's, in order),
    # then each query runs (empty tables: this checks tables, columns and syntax; deploy.e2e
    # checks that they return rows).
    need psql
    url="${GREENLOOP_TEST_PG_URL:-$(cat "${GREENLOOP_TEST_PG_URL_FILE:-/nonexistent}" 2>/dev/null || true)}"
    [[ -n "$url" ]] || fail "no PostgreSQL: run under ctest (fixture pg) or set GREENLOOP_TEST_PG_URL"
    db="deploy_sql_$$"
    psql "$url" -XqAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
    trap 'psql "$url" -XqAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
    scratch="${url%/*}/$db"
    for m in deploy/db/*/[0-9]*.sql; do
      psql "$scratch" -XqAt -v ON_ERROR_STOP=1 -f "$m" >/dev/null || fail "migration $m does not apply"
    done
    n=0
    while IFS= read -r q; do
      sql="$(jq -r .expr <<<"$q")"
      out="$(psql "$scratch" -XqAt -v ON_ERROR_STOP=1 -c "$sql" 2>&1)" ||
        fail "$(jq -r '"\(.file) / \(.panel) / \(.ref)"' <<<"$q"): $out"
      n=$((n + 1))
    done < <(dashboard_queries | jq -c 'select(.kind == "postgres")')
    echo "$n SQL queries run against the schema of $(ls deploy/db/*/[0-9]*.sql | wc -l) migrations"
    ;;
  *) fail "usage: static_checks.sh promtool_check_config|promtool_check_rules|promtool_test_rules|grafana_dashboards|grafana_sql|docker_compose_config" ;;
esac
