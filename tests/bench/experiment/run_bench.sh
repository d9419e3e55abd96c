#!/usr/bin/env bash
# The figure issue 6 exists for, measured on the real services (a benchmark, not a test):
#
#   tests/bench/experiment/run_bench.sh [BUILD_DIR] [SPEC]     # default: build, the Fashion-MNIST
#                                                             # 30 %-noise spec, default crowd
#
# Starts its own stack on free loopback ports (PostgreSQL, collector, feedback with auth, one
# trainer rank; tests/integration/experiment/stack.sh), then
#   1. `greenloop predict --calibrate`: 12 one-epoch baseline runs of different sizes, stored;
#   2. `greenloop experiment run SPEC`: every mode of the spec, one after another;
#   3. `greenloop predict --spec SPEC` again, now over the calibration runs and the experiment's;
# and prints, from what PostgreSQL stored: each mode's energy to reach the baseline's best accuracy
# as a share of the baseline's (target ≤ 50 % for hitl and hybrid), final and best accuracy,
# modelled human minutes, verdict precision; the early-projection error at 10 % and 25 % of every
# run (target ≤ 5 %); and the leave-one-out error of the pre-run regression (target ≤ 15 %).
#
# Energy here is `estimated` unless the node has a meter (docs/energy.md); human time is
# `modelled` (simulated crowd, time-compressed). Takes 15–25 minutes on 2 cores. Set
# GREENLOOP_BENCH_SKIP_CALIBRATE=1 to skip step 1.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tests/integration/experiment/stack.sh
BUILD="${1:-build}"
SPEC="${2:-examples/fashion-mnist-noise30.yaml}"
WORK="$(cd "$BUILD" && pwd)/bench-experiment"
for tool in jq psql; do command -v "$tool" >/dev/null || stack_fail "$tool is not installed"; done

echo "== stack (logs under $WORK/stack/services)"
stack_up "$BUILD" "$WORK/stack"
stack_spec "$SPEC" "$WORK/spec.yaml"
sql() { psql "$PG_URL" -XqAt -v ON_ERROR_STOP=1 -c "$1"; }
common=(--pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" --auth.admin_token="$ADMIN_TOKEN")

if [[ -z "${GREENLOOP_BENCH_SKIP_CALIBRATE:-}" ]]; then
  echo "== 1. greenloop predict --calibrate (12 one-epoch baseline runs)"
  start=$SECONDS
  "$CLI" predict --spec "$WORK/spec.yaml" --calibrate "${common[@]}" 2>"$WORK/calibrate.err" |
    tee "$WORK/calibrate.out"
  echo "calibration took $((SECONDS - start)) s"
fi

echo "== 2. greenloop experiment run $SPEC"
start=$SECONDS
"$CLI" experiment run "$WORK/spec.yaml" "${common[@]}" --no_progress --experiment_id=bench \
  --output_dir="$WORK/reports" 2>&1 | tee "$WORK/experiment.out"
experiment_seconds=$((SECONDS - start))

echo "== 3. greenloop predict --spec $SPEC"
"$CLI" predict --spec "$WORK/spec.yaml" "${common[@]}" | tee "$WORK/predict.out"

result="$(sql "SELECT result FROM experiments WHERE experiment_id = 'bench'")"
echo
echo "== results ($SPEC, experiment 'bench', $experiment_seconds s wall)"
jq -r '
  def num: if . == null then 0 else tonumber end;
  def pct: if . == null then "     —" else (. * 1000 | round / 10 | tostring) + " %" end;
  (.modes[] | select(.mode == "baseline") | .energyToTargetJoules) as $base |
  "target accuracy (the baseline'"'"'s best): \(.targetAccuracy)",
  "mode      state       J→target  share of baseline  final    best     steps  rater-min(modelled)  verdicts(applied/right)  energy",
  (.modes[] |
    "\(.mode | .[0:9] | . + " " * (9 - length)) \(.state | . + " " * (11 - length)) " +
    "\(if .energyToTargetJoules then (.energyToTargetJoules * 10 | round / 10 | tostring) else "not reached" end | " " * (9 - length) + .)" +
    "  \(if .energyToTargetJoules and $base then (.energyToTargetJoules / $base | pct) else "—" end | " " * (17 - length) + .)" +
    "  \(.finalAccuracy)  \(.bestAccuracy)  \(.steps | num)" +
    "  \((.crowd.modelledSeconds // 0) / 60 * 10 | round / 10)" +
    "  \(.verdictsApplied | num)/\(.verdictsCorrect | num)  \(.energySource)")
' <<<"$result"
echo
echo "early projection of each run's total energy (error = |projected − actual| / actual):"
jq -r '
  def pct: if . == null then "—" else (. * 1000 | round / 10 | tostring) + " %" end;
  .modes[] | "  \(.mode): at 10 % \(.projectionError10 | pct), at 25 % \(.projectionError25 | pct), trainer final \(.trainerProjectionError | pct), finish: \(.finishReason)"
' <<<"$result"
sql "SELECT '  calibration: ' || count(*) || ' runs, median |error at 25 %| ' ||
            round((100 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(projection_error_25)))::numeric, 1) || ' %'
     FROM experiment_runs WHERE experiment_id LIKE 'calibrate-%' AND projection_error_25 IS NOT NULL"
echo
echo "pre-run regression: $(grep 'leave-one-out' "$WORK/predict.out" | sed 's/^ *//')"
echo "stored runs: $(sql "SELECT count(*) FROM experiment_runs WHERE state = 'succeeded'") succeeded"
echo "report: $WORK/reports/bench/report.md"
