#!/usr/bin/env bash
# Feature feedback on a planted shortcut, measured on the real services over paired seeds (a
# benchmark, not a test):
#
#   tests/bench/features/run_bench.sh [--seeds=N] [--spec=FILE]... [--build=DIR]
#
# Default specs: examples/fashion-mnist-decoy.yaml (Decoy Fashion-MNIST: baseline, clean images,
# hitl_features with the RRR penalty on 16 drawn images per batch),
# examples/fashion-mnist-decoy-rrr-full.yaml (the penalty on every image),
# examples/fashion-mnist-decoy-counterexample.yaml (the same with counterexamples),
# examples/spam-assassin-decoy.yaml (Decoy SpamAssassin: baseline, clean mails, hitl_features
# removing the marked words), examples/spam-assassin-decoy-rrr.yaml (the same with the
# contribution penalty), examples/fashion-mnist-decoy-items.yaml and
# examples/spam-assassin-decoy-items.yaml (per-item masks instead of the class rules), and
# examples/fashion-mnist-decoy-noise.yaml (the decoy plus 40 % class-dependent label noise:
# labels, features or both from raters, hitl_combined), 3 seeds, build dir `build`. Starts its own stack on free
# loopback ports (tests/integration/experiment/stack.sh), runs `greenloop experiment run` with
# `seeds:` replaced by --seeds, prints what each run did and ends with a `spec: NAME` line and one
# line per mode for each spec:
#
#   features: DATASET MODE test=0.NNNN decoy_saliency=0.NN energy_to_target=NNN.N J share=0.NN rater_min=N seeds=N
#
# test: the test split's accuracy of the final models (its decoys shaded at random, the same images
# in every mode, clean included); decoy_saliency: the share of their
# input-gradient saliency on the decoy's cell (text: the share of the words' contribution the
# planted word carries); energy_to_target: estimated joules (trainer and
# feedback infrastructure) to the spec's target on the validation split, over the seeds that
# reached it (nan: none did); share: that energy over the same seed's baseline joules per step
# times the steps it took (what a step costs against a baseline step); rater_min: modelled.
# About 25 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tests/integration/experiment/stack.sh
BUILD=build
SEEDS=3
SPECS=()
for arg in "$@"; do
  case "$arg" in
    --seeds=*) SEEDS="${arg#--seeds=}" ;;
    --spec=*) SPECS+=("${arg#--spec=}") ;;
    --build=*) BUILD="${arg#--build=}" ;;
    *) echo "usage: $0 [--seeds=N] [--spec=FILE]... [--build=DIR]" >&2; exit 2 ;;
  esac
done
[[ "$SEEDS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --seeds must be a positive integer" >&2; exit 2; }
((${#SPECS[@]} > 0)) ||
  SPECS=(examples/fashion-mnist-decoy.yaml examples/fashion-mnist-decoy-rrr-full.yaml
         examples/fashion-mnist-decoy-counterexample.yaml
         examples/spam-assassin-decoy.yaml examples/spam-assassin-decoy-rrr.yaml
         examples/fashion-mnist-decoy-items.yaml examples/spam-assassin-decoy-items.yaml
         examples/fashion-mnist-decoy-noise.yaml)
WORK="$(cd "$BUILD" && pwd)/bench-features"
for tool in jq psql; do command -v "$tool" >/dev/null || stack_fail "$tool is not installed"; done

echo "== stack (logs under $WORK/stack/services)"
stack_up "$BUILD" "$WORK/stack"
common=(--pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" --auth.admin_token="$ADMIN_TOKEN"
        --infra.pid_files="$INFRA")

lines=""
for spec in "${SPECS[@]}"; do
  name="$(basename "$spec" .yaml)"
  stack_spec "$spec" "$WORK/$name.yaml"
  stack_seeds "$WORK/$name.yaml" "$SEEDS"
  echo "== greenloop experiment run $spec ($SEEDS seeds)"
  start=$SECONDS
  "$CLI" experiment run "$WORK/$name.yaml" "${common[@]}" --no_progress \
    --experiment_id="bench-$name" --output_dir="$WORK/reports" 2>&1 | tee "$WORK/$name.out"
  echo "$name: $((SECONDS - start)) s wall"
  # What each side did, from what PostgreSQL stored.
  psql "$PG_URL" -XqAt -v ON_ERROR_STOP=1 \
    -c "SELECT result FROM experiments WHERE experiment_id = 'bench-$name'" | jq -r '
    .modes[] | ((.infra // []) | map(.activeEnergyJoules // 0) | add // 0) as $infra |
    "  \(.mode)/s\(.seedIndex // 0): \(.state), \(.steps // 0) steps, \(.samplesProcessed // 0) samples, \(.featureRules // 0) feature rules, \(.crowd.submitted // 0) ratings, test \(.testAccuracy // 0 | . * 10000 | round / 10000), decoy saliency \(.decoySaliency // 0 | . * 1000 | round / 1000), \(.energyToTargetJoules // "—") J to target of \(.energyJoules // 0 | . * 10 | round / 10) J (\(.energySource)), infrastructure \($infra * 10 | round / 10) J, \(.macs // 0) MACs"'
  lines+="spec: $name"$'\n'"$(grep '^features:' "$WORK/$name.out")"$'\n'
done
echo
echo "reports: $WORK/reports/"
printf '%s' "$lines"
