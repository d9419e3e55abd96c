#!/usr/bin/env bash
# Bad input to a real greenloop binary: each case must end, within a bounded time, with a
# non-zero exit and exactly one line on stderr that names the problem; never a stack of
# exceptions, a core dump or a hang.
#
#   bad_input_test.sh PATH/TO/greenloop
set -uo pipefail
BIN="$1"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0

# expect NAME WANT_EXIT PATTERN -- ARGS...
expect() {
  local name="$1" want_exit="$2" pattern="$3"
  shift 4
  local code=0
  timeout 30 "$BIN" "$@" >"$TMP/out" 2>"$TMP/err" || code=$?
  local lines
  lines="$(wc -l <"$TMP/err")"
  if [[ "$code" != "$want_exit" ]]; then
    echo "FAIL $name: exit $code, want $want_exit; stderr: $(cat "$TMP/err")"
    failures=$((failures + 1))
  elif [[ "$lines" != 1 ]]; then
    echo "FAIL $name: $lines lines on stderr, want 1:"; cat "$TMP/err"
    failures=$((failures + 1))
  elif ! grep -qE -- "$pattern" "$TMP/err"; then
    echo "FAIL $name: stderr does not match /$pattern/: $(cat "$TMP/err")"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(cat "$TMP/err")"
  fi
}

printf 'pg:\n  urll: postgresql://127.0.0.1/x\n' >"$TMP/typo.yaml"
printf 'target: 127.0.0.1:7101\ntimeout: soon\n' >"$TMP/badvalue.yaml"
printf 'pg: [unclosed\n' >"$TMP/malformed.yaml"

expect missing_config_file 2 "config file '/nonexistent/greenloop.yaml' does not exist" -- \
  db status --config /nonexistent/greenloop.yaml
expect typoed_key 2 "typo.yaml:2: unknown key 'pg.urll' \(did you mean 'pg.url'\?\)" -- \
  db status --config "$TMP/typo.yaml"
expect malformed_value_in_file 2 "badvalue.yaml:2: timeout: 'soon' is not a duration" -- \
  rpc list --config "$TMP/badvalue.yaml"
expect malformed_yaml 2 "malformed.yaml:.*not valid YAML" -- \
  db status --config "$TMP/malformed.yaml"
GREENLOOP_TIMEOUT="3 parsecs" \
  expect malformed_env 2 "environment GREENLOOP_TIMEOUT: timeout: '3 parsecs' is not a duration" -- \
  rpc list --target=127.0.0.1:1
expect postgres_down 3 "cannot connect to PostgreSQL at 127.0.0.1:1/greenloop" -- \
  db status --pg.url=postgresql://greenloop:hunter2@127.0.0.1:1/greenloop
if grep -q hunter2 "$TMP/err"; then echo "FAIL postgres_down: password printed"; failures=$((failures + 1)); fi
expect service_down 3 "cannot reach 127.0.0.1:1" -- rpc health --target=127.0.0.1:1 --timeout=2s
expect unknown_command 2 "unknown command 'frob nicate'" -- frob nicate

echo "$((8 - failures)) passed, $failures failed"
((failures == 0))
