#!/usr/bin/env bash
# The Green-ML study on the real services (a benchmark, not a test):
#
#   tests/bench/study/run_bench.sh [--build=DIR] [--models=LIST] [--batch_sizes=LIST] [--widths=LIST]
#
# Starts its own stack on free loopback ports (tests/integration/experiment/stack.sh) and runs
# `greenloop study examples/study-zoo.yaml` over the image zoo (default: mlp, cnn, lenet5,
# mobilenet and resnet at batch 32 and 128: 10 points, each a 2-epoch baseline run on 6,000
# images with the inference benchmark at batch 1, 8, 64 and 256), prints what each point did from
# what PostgreSQL stored, and ends with the study's line:
#
#   study: points=N archs=N loo=N.N% loao=N.N% infer_loao=N.N% proj5=N.N% proj25=N.N% pareto=N
#
# loo / loao: mean |relative error| of the training-energy regression (parameters, MACs, samples,
# batch) predicting each point from all the others / from the other model families only;
# infer_loao: the same for inference energy per sample; proj5 / proj25: mean |error| of the
# trainer's projection of a run's total energy from its first 5 % / 25 %; pareto: points on the
# accuracy/energy front. Energy is estimated on a node without a meter. About 20 minutes on 2
# cores.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tests/integration/experiment/stack.sh
BUILD=build
MODELS=mlp,cnn,lenet5,mobilenet,resnet
BATCHES=32,128
WIDTHS=
for arg in "$@"; do
  case "$arg" in
    --build=*) BUILD="${arg#--build=}" ;;
    --models=*) MODELS="${arg#--models=}" ;;
    --batch_sizes=*) BATCHES="${arg#--batch_sizes=}" ;;
    --widths=*) WIDTHS="${arg#--widths=}" ;;
    *) echo "usage: $0 [--build=DIR] [--models=LIST] [--batch_sizes=LIST] [--widths=LIST]" >&2
       exit 2 ;;
  esac
done
WORK="$(cd "$BUILD" && pwd)/bench-study"
for tool in jq psql; do command -v "$tool" >/dev/null || stack_fail "$tool is not installed"; done

echo "== stack (logs under $WORK/stack/services)"
stack_up "$BUILD" "$WORK/stack"
stack_spec examples/study-zoo.yaml "$WORK/study-zoo.yaml"
start=$SECONDS
"$CLI" study "$WORK/study-zoo.yaml" --pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" \
  --auth.admin_token="$ADMIN_TOKEN" --no_progress --yes --study_id=bench-study \
  --models="$MODELS" --batch_sizes="$BATCHES" ${WIDTHS:+--widths="$WIDTHS"} \
  --output_dir="$WORK/reports" 2>&1 | tee "$WORK/study.out"
echo "study: $((SECONDS - start)) s wall"
# What each point did, from what PostgreSQL stored.
psql "$PG_URL" -XqAt -v ON_ERROR_STOP=1 -F ' | ' -c "
  SELECT point_id, label, state, architecture, parameter_count || ' params',
         macs_per_sample || ' MACs', samples_processed || ' samples',
         round(energy_joules::numeric, 1) || ' J ' || energy_source,
         round(accuracy::numeric, 4) || ' test',
         round(duration_seconds::numeric, 1) || ' s',
         (SELECT string_agg('b' || (i->>'batchSize') || ' ' ||
                            round((1000 * (i->>'joulesPerSample')::float)::numeric, 4) || ' mJ',
                            ', ')
            FROM jsonb_array_elements(inference) i)
    FROM study_points WHERE study_id = 'bench-study' ORDER BY point_id"
echo
echo "report: $WORK/reports/bench-study/study.md"
grep '^study:' "$WORK/study.out"
