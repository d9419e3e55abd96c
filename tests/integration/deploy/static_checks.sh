#!/usr/bin/env bash
# Quick static deployment checks (CTest label `deploy`), each with the real tool:
#
#   static_checks.sh promtool_check_config   prometheus.yml (compose/local) and prometheus-k8s.yml
#   static_checks.sh promtool_check_rules    alert rules
#   static_checks.sh promtool_test_rules     alert unit tests (deploy/prometheus/tests)
#   static_checks.sh grafana_dashboards      dashboards parse, unique uids, datasources provisioned,
#                                            every PromQL expression parses (promtool)
#   static_checks.sh docker_compose_config   docker-compose.yml (Debian's docker-compose; no engine)
#
# Run from the repository root. Exit 0 on success; the failing check says what is wrong.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
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
    # The images build from files that exist.
    for df in $(grep -ho 'dockerfile: [^ ]*' docker-compose.yml | cut -d' ' -f2 | sort -u); do
      [[ -f "$df" ]] || fail "docker-compose.yml names $df, which does not exist"
    done
    echo "docker-compose.yml is valid ($(docker-compose -f docker-compose.yml config --services | tr '\n' ' '))"
    ;;
  *) fail "usage: static_checks.sh promtool_check_config|promtool_check_rules|promtool_test_rules|grafana_dashboards|docker_compose_config" ;;
esac
