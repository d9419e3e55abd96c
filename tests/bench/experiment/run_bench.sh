#!/usr/bin/env bash
# The figure greenloop exists for, measured on the real services over paired seeds (a benchmark,
# not a test):
#
#   tests/bench/experiment/run_bench.sh [--seeds=N] [--spec=FILE]... [--build=DIR] [--calibrate]
#
# Defaults: 5 seeds, the headline spec examples/fashion-mnist-cd40.yaml (40 % class-dependent
# noise) then examples/fashion-mnist-noise30.yaml (30 % symmetric), build dir `build`. Starts its
# own stack on free loopback ports (PostgreSQL, collector, feedback with auth, one trainer rank;
# tests/integration/experiment/stack.sh) and runs `greenloop experiment run` on each spec with its
# `seeds:` replaced by --seeds. Each seed runs every mode with the same initialisation, data order,
# noise draw and crowd; each mode's energy to its seed's baseline plateau (clean validation split)
# is a share of that baseline's, in two kinds: the collector's (`estimated` on a node without a
# meter, `measured` with one) and `modelled` (counted MACs × the baseline's J/MAC). It ends with
# one line per spec and mode:
#
#   headline: MODE share=0.NN [0.LO-0.HI] modelled=0.NN [0.LO-0.HI] seeds=N val=0.NNNN test=0.NNNN rater_min=N
#
# preceded by `spec: NAME` lines. Mean and 95 % percentile-bootstrap interval over seeds; val and
# test at stop (the baseline's test at its plateau); rater minutes modelled (simulated crowd,
# time-compressed). --calibrate also runs `greenloop predict --calibrate` first and the pre-run
# regression after. About 40 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tests/integration/experiment/stack.sh
BUILD=build
SEEDS=5
SPECS=()
CALIBRATE=""
for arg in "$@"; do
  case "$arg" in
    --seeds=*) SEEDS="${arg#--seeds=}" ;;
    --spec=*) SPECS+=("${arg#--spec=}") ;;
    --build=*) BUILD="${arg#--build=}" ;;
    --calibrate) CALIBRATE=1 ;;
    *) echo "usage: $0 [--seeds=N] [--spec=FILE]... [--build=DIR] [--calibrate]" >&2; exit 2 ;;
  esac
done
[[ "$SEEDS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --seeds must be a positive integer" >&2; exit 2; }
((${#SPECS[@]} > 0)) || SPECS=(examples/fashion-mnist-cd40.yaml examples/fashion-mnist-noise30.yaml)
WORK="$(cd "$BUILD" && pwd)/bench-experiment"
for tool in jq psql; do command -v "$tool" >/dev/null || stack_fail "$tool is not installed"; done

echo "== stack (logs under $WORK/stack/services)"
stack_up "$BUILD" "$WORK/stack"
common=(--pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" --auth.admin_token="$ADMIN_TOKEN"
        --infra.pid_files="$INFRA")

headlines=""
for spec in "${SPECS[@]}"; do
  name="$(basename "$spec" .yaml)"
  stack_spec "$spec" "$WORK/$name.yaml"
  stack_seeds "$WORK/$name.yaml" "$SEEDS"
  if [[ -n "$CALIBRATE" ]]; then
    echo "== greenloop predict --calibrate ($name)"
    "$CLI" predict --spec "$WORK/$name.yaml" --calibrate "${common[@]}" 2>"$WORK/calibrate.err" |
      tee "$WORK/calibrate-$name.out"
  fi
  echo "== greenloop experiment run $spec ($SEEDS seeds)"
  start=$SECONDS
  "$CLI" experiment run "$WORK/$name.yaml" "${common[@]}" --no_progress \
    --experiment_id="bench-$name" --output_dir="$WORK/reports" 2>&1 | tee "$WORK/$name.out"
  echo "$name: $((SECONDS - start)) s wall"
  if [[ -n "$CALIBRATE" ]]; then
    "$CLI" predict --spec "$WORK/$name.yaml" "${common[@]}" | tee "$WORK/predict-$name.out"
  fi
  # What each side did, from what PostgreSQL stored.
  psql "$PG_URL" -XqAt -v ON_ERROR_STOP=1 \
    -c "SELECT result FROM experiments WHERE experiment_id = 'bench-$name'" | jq -r '
    .modes[] | ((.infra // []) | map(.activeEnergyJoules // 0) | add // 0) as $infra |
    (.crowd.submitted // 0 | tonumber) as $rated |
    "  \(.mode)/s\(.seedIndex // 0): \(.state), \(.steps // 0) steps, \(.samplesProcessed // 0) samples, \(.samplesPruned // 0) pruned, \(.verdictsApplied // 0) verdicts (\(.verdictsCorrect // 0) right), \(.energyToTargetJoules // "—") J to target of \(.energyJoules // 0 | . * 10 | round / 10) J, \(.energySource); infrastructure \($infra * 10 | round / 10) J over the run for \($rated) ratings\(if $rated > 0 then " (\($infra * 1000 / $rated * 10 | round / 10) mJ each)" else "" end)"'
  headlines+="spec: $name"$'\n'"$(grep '^headline:' "$WORK/$name.out")"$'\n'
done
echo
echo "reports: $WORK/reports/"
printf '%s' "$headlines"
