# Shared by static_checks.sh and stack_test.sh (sourced, not run): where things are, and the list
# of every query in the Grafana dashboards and alert rules.

DEPLOY_ROOT="${DEPLOY_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
DASHBOARDS="$DEPLOY_ROOT/deploy/grafana/dashboards"
RULES="$DEPLOY_ROOT/deploy/prometheus/rules"

fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed (run deploy/local/bootstrap.sh)"; }

# dashboard_queries: one JSON object per line for every query of every dashboard panel and template
# variable: {file, panel, ref, kind: "prometheus"|"postgres", expr}. Grafana's variables are
# replaced by what a query over the last minutes would use: $__rate_interval 1m, $__interval 15s,
# $__range 5m, and every template variable (multi-value, All = ".*") by ".*".
dashboard_queries() {
  local f
  for f in "$DASHBOARDS"/*.json; do
    jq -c --arg file "$(basename "$f")" '
      def subst: gsub("\\$__rate_interval"; "1m") | gsub("\\$__interval"; "15s")
                 | gsub("\\$__range"; "5m") | gsub("\\$\\{?[a-z_]+\\}?"; ".*");
      (.panels[] | .title as $t | (.targets // [])[] |
        if .rawSql then {file: $file, panel: $t, ref: .refId, kind: "postgres", expr: (.rawSql | subst)}
        else {file: $file, panel: $t, ref: .refId, kind: "prometheus", expr: (.expr | subst)} end),
      (.templating.list[] | select(.type == "query") |
        {file: $file, panel: ("variable " + .name), ref: "var", kind: "prometheus",
         expr: (.definition | capture("label_values\\((?<m>.*),\\s*[a-z_]+\\)").m)})
    ' "$f"
  done
}

