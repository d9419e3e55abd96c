# The services an experiment needs, on free loopback ports, for the experiment e2e test and the
# experiment benchmark (sourced, not run): a fresh PostgreSQL, the energy collector, the feedback
# service with authentication on (the raters get tokens of their own), and one trainer rank.
#
#   source tests/integration/experiment/stack.sh
#   stack_up BUILD_DIR WORK_DIR        # sets PG_URL, ADMIN_TOKEN, E_GRPC, F_GRPC, T0_GRPC, RDV, CLI,
#                                      # INFRA (--infra.pid_files: the feedback service, PostgreSQL)
#   stack_spec SPEC OUT                # SPEC with its services: pointed at this stack
#   stack_down                         # also run on EXIT
#
# Run from the repository root. Logs: WORK_DIR/services/*.log, WORK_DIR/pg/server.log.

stack_fail() { echo "FAIL: $*" >&2; exit 1; }

source tests/support/ports.sh

_stack_started=()
_stack_work=""
stack_down() {
  local s
  for s in "${_stack_started[@]}"; do
    deploy/local/service.sh stop "$s" --dir "$_stack_work/services" >/dev/null 2>&1 || true
  done
  _stack_started=()
  [[ -n "$_stack_work" ]] && deploy/local/pg.sh destroy --dir "$_stack_work/pg" >/dev/null 2>&1
  return 0
}

stack_up() {
  local build work node e_met f_met f_http t0_met
  build="$(cd "$1" && pwd)"
  work="$2"
  _stack_work="$work"
  trap stack_down EXIT
  rm -rf "$work"
  mkdir -p "$work/services"
  CLI="$build/tools/greenloop/greenloop"
  node="experiment-e2e"
  ADMIN_TOKEN="experiment-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  pick_ports E_GRPC e_met F_GRPC f_met f_http T0_GRPC t0_met RDV

  PG_URL="$(deploy/local/pg.sh start --fresh --ephemeral --dir "$work/pg")" || stack_fail "PostgreSQL did not start"
  deploy/local/service.sh start energy --dir "$work/services" --cli "$CLI" --health "127.0.0.1:$E_GRPC" -- \
    "$build/services/energy/greenloop-energy" --config deploy/local/energy.yaml --pg.url="$PG_URL" \
    --node="$node" --grpc.address="127.0.0.1:$E_GRPC" --metrics.address="127.0.0.1:$e_met" ||
    stack_fail "the energy collector did not start"
  _stack_started+=(energy)
  deploy/local/service.sh start feedback --dir "$work/services" --cli "$CLI" --health "127.0.0.1:$F_GRPC" -- \
    "$build/services/feedback/greenloop-feedback" --config deploy/local/feedback.yaml --pg.url="$PG_URL" \
    --grpc.address="127.0.0.1:$F_GRPC" --metrics.address="127.0.0.1:$f_met" \
    --http.address="127.0.0.1:$f_http" --auth.disabled=false \
    --auth.bootstrap_admin_token="$ADMIN_TOKEN" ||
    stack_fail "the feedback service did not start"
  _stack_started+=(feedback)
  deploy/local/service.sh start trainer-0 --dir "$work/services" --cli "$CLI" --health "127.0.0.1:$T0_GRPC" -- \
    "$build/services/trainer/greenloop-trainer" --config deploy/local/trainer.yaml \
    --pg.url="$PG_URL" --node.name="$node" --grpc.port="$T0_GRPC" --metrics.port="$t0_met" \
    --auth.mode=feedback --auth.feedback_endpoint="127.0.0.1:$F_GRPC" --auth.token="$ADMIN_TOKEN" \
    --endpoints.allowed="127.0.0.1:$E_GRPC,127.0.0.1:$F_GRPC" ||
    stack_fail "the trainer did not start"
  _stack_started+=(trainer-0)
  INFRA="feedback=$work/services/feedback.pid,postgres=$work/pg/data/postmaster.pid"
}

# stack_spec SPEC OUT: writes SPEC to OUT with every services address replaced by this stack's.
# Sets (or adds) the `seeds:` key of spec FILE to N, in place.
stack_seeds() {
  if grep -q '^seeds:' "$1"; then
    sed -i "s/^seeds:.*/seeds: $2/" "$1"
  else
    echo "seeds: $2" >>"$1"
  fi
}

stack_spec() {
  sed -e "s/127\.0\.0\.1:7101/127.0.0.1:$E_GRPC/g" -e "s/127\.0\.0\.1:7102/127.0.0.1:$F_GRPC/g" \
      -e "s/127\.0\.0\.1:7103/127.0.0.1:$T0_GRPC/g" "$1" >"$2"
  grep -q "127.0.0.1:$T0_GRPC" "$2" || stack_fail "$1 names no trainer at 127.0.0.1:7103 to replace"
}
