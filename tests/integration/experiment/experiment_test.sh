#!/usr/bin/env bash
# A tiny experiment end to end against the real services (CTest experiment.e2e, label e2e):
# PostgreSQL, the energy collector, the feedback service with authentication on and a trainer rank
# on free loopback ports; `greenloop experiment run` with a simulated crowd rating through the real
# rater API with tokens of its own. Checks the table, the report files, what is stored in
# PostgreSQL (experiments, experiment_runs, the crowd's ratings in the feedback tables),
# `greenloop report`, and the faults of issue 6: a bad spec starts nothing, a service down is
# named, Ctrl-C marks the current run interrupted and keeps the finished ones.
#
#   experiment_test.sh BUILD_DIR WORK_DIR
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tests/integration/experiment/stack.sh
BUILD="$(cd "$1" && pwd)"
WORK="$(mkdir -p "$2" && cd "$2" && pwd)"
for tool in jq psql gnuplot; do
  command -v "$tool" >/dev/null || stack_fail "$tool is not installed (run deploy/local/bootstrap.sh)"
done
failures=0
bad() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
sql() { psql "$PG_URL" -XqAt -v ON_ERROR_STOP=1 -c "$1"; }
# expect_exit CODE OUT WHAT COMMAND...: runs COMMAND with its output in OUT; bad unless it exits CODE.
expect_exit() {
  local want="$1" out="$2" what="$3" code=0
  shift 3
  "$@" >"$out" 2>&1 || code=$?
  [[ $code == "$want" ]] || bad "$what exits $code, not $want: $(cat "$out")"
}

echo "== stack"
stack_up "$BUILD" "$WORK/stack"
cat >"$WORK/micro.yaml" <<SPEC
name: micro
description: experiment.e2e — 1 200 noisy Fashion-MNIST images, one epoch per mode.
dataset: fashion_mnist
max_train_samples: 1200
noise: {rate: 0.30, kind: symmetric, seed: 7}
seed: 1
batch_size: 32
eval_every_steps: 8
budget: {max_epochs: 1}
target_accuracy: baseline_best
stop_at_target: false
modes: [baseline, hitl, hybrid]
selection: {every_steps: 4, candidates: 16}
crowd:
  raters: 4
  ratings_per_item: 3
  time_compression: 1000
services:
  trainers: [127.0.0.1:$T0_GRPC]
  energy: 127.0.0.1:$E_GRPC
  feedback: 127.0.0.1:$F_GRPC
output_dir: $WORK/reports
SPEC
common=(--pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" --auth.admin_token="$ADMIN_TOKEN" --no_progress
        --infra.pid_files="$INFRA")

echo "== bad input starts nothing"
sed 's/^seed: 1$/sed: 1/' "$WORK/micro.yaml" >"$WORK/typo.yaml"
expect_exit 2 "$WORK/typo.out" "an unknown spec key" "$CLI" experiment run "$WORK/typo.yaml" "${common[@]}"
grep -q "sed" "$WORK/typo.out" && grep -q "did you mean" "$WORK/typo.out" ||
  bad "the unknown key is not named with a suggestion: $(cat "$WORK/typo.out")"
[[ $(wc -l <"$WORK/typo.out") == 1 ]] || bad "a bad spec prints more than one line: $(cat "$WORK/typo.out")"

expect_exit 2 "$WORK/infra.out" "a bad --infra.pid_files" \
  "$CLI" experiment run "$WORK/micro.yaml" "${common[@]}" --infra.pid_files=feedback
grep -q "infra.pid_files" "$WORK/infra.out" ||
  bad "a bad --infra.pid_files is not refused naming the key: $(cat "$WORK/infra.out")"

echo "== a service down is named"
pick_ports down_port
sed "s/energy: 127.0.0.1:$E_GRPC/energy: 127.0.0.1:$down_port/" "$WORK/micro.yaml" >"$WORK/down.yaml"
expect_exit 3 "$WORK/down.out" "a collector that is down" "$CLI" experiment run "$WORK/down.yaml" "${common[@]}"
grep -q "energy collector at 127.0.0.1:$down_port is down" "$WORK/down.out" ||
  bad "the service that is down is not named: $(cat "$WORK/down.out")"
# Nothing was stored: the CLI's tables do not even exist yet (or are empty).
[[ -z "$(sql "SELECT to_regclass('experiments')")" || "$(sql "SELECT count(*) FROM experiments")" == 0 ]] ||
  bad "a failed start stored an experiment"

echo "== experiment run"
if ! "$CLI" experiment run "$WORK/micro.yaml" "${common[@]}" --experiment_id=micro-e2e \
    >"$WORK/run.out" 2>"$WORK/run.err"; then
  cat "$WORK/run.err" "$WORK/run.out"
  stack_fail "greenloop experiment run failed"
fi
cat "$WORK/run.out"
for mode in baseline hitl hybrid; do
  grep -qE "^$mode +succeeded" "$WORK/run.out" || bad "no succeeded $mode row in the table"
done
grep -q "(the baseline's best)" "$WORK/run.out" || bad "the table does not say the target is the baseline's best"
md="$WORK/reports/micro-e2e/report.md" html="$WORK/reports/micro-e2e/report.html"
[[ -s "$md" && -s "$html" ]] || bad "report files missing under $WORK/reports/micro-e2e"
grep -q "<svg" "$html" || bad "the HTML report holds no inline SVG plot"
grep -q "verdict precision" "$md" || bad "the report shows no verdict precision"
grep -q "estimated\|measured" "$md" && grep -q "modelled" "$md" ||
  bad "the report does not say where its figures come from"

echo "== stored"
[[ "$(sql "SELECT state FROM experiments WHERE experiment_id = 'micro-e2e'")" == completed ]] ||
  bad "experiment micro-e2e is not stored as completed"
[[ "$(sql "SELECT count(*) FROM experiment_runs WHERE experiment_id = 'micro-e2e' AND state = 'succeeded'")" == 3 ]] ||
  bad "experiment_runs does not hold 3 succeeded runs"
result="$(sql "SELECT result FROM experiments WHERE experiment_id = 'micro-e2e'")"
hitl="$(jq -c '.modes[] | select(.mode == "hitl")' <<<"$result")"
echo "hitl: $(jq -c '{submitted: .crowd.submitted, applied: .verdictsApplied, correct: .verdictsCorrect, modelled: .crowd.modelledSeconds, joules: .energyJoules, source: .energySource}' <<<"$hitl")"
jq -e '(.crowd.submitted | tonumber) > 0' <<<"$hitl" >/dev/null || bad "the crowd submitted no ratings in hitl"
jq -e '(.verdictsApplied | tonumber) > 0' <<<"$hitl" >/dev/null || bad "no verdict was applied in hitl"
jq -e '(.verdictsCorrect // "0" | tonumber) <= (.verdictsApplied | tonumber) and (.verdictsCorrect // "0" | tonumber) > 0' \
  <<<"$hitl" >/dev/null || bad "verdicts_correct is not in (0, applied]"
jq -e '.crowd.modelledSeconds > .crowd.wallSeconds' <<<"$hitl" >/dev/null ||
  bad "the modelled rater time is not above the wall time (time compression)"
jq -e '.energyJoules > 0 and (.energySource == "estimated" or .energySource == "measured")' <<<"$hitl" \
  >/dev/null || bad "the hitl run has no energy with its source"
# The humans' infrastructure was registered and counted in every mode, apart from the trainer.
echo "infra: $(jq -c '[.modes[] | {mode, infra: [.infra[] | {name, j: .activeEnergyJoules, error}]}]' <<<"$result")"
jq -e '[.modes[] | .infra | length == 2 and all(.[]; (.error // "") == "" and .pid > 0)] | all' \
  <<<"$result" >/dev/null || bad "the feedback service and PostgreSQL were not counted in every mode"
jq -e '[.infra[] | .activeEnergyJoules // 0] | add > 0' <<<"$hitl" >/dev/null ||
  bad "the infrastructure spent no energy during hitl"
grep -q "infrastructure" "$md" || bad "the report does not show the infrastructure's energy"
# The crowd used the real rater API: its ratings are in the feedback service's tables, from
# distinct raters, each with a token of its own.
raters="$(sql "SELECT count(DISTINCT rater_id) FROM feedback_ratings")"
ratings="$(sql "SELECT count(*) FROM feedback_ratings")"
echo "feedback_ratings: $ratings ratings from $raters raters"
((raters >= 3)) || bad "ratings came from $raters raters, not at least 3"
[[ "$ratings" -ge "$(jq -r '.crowd.submitted' <<<"$hitl")" ]] || bad "fewer ratings stored than the crowd submitted"
((  $(sql "SELECT count(*) FROM auth_tokens WHERE role = 1") >= 4 )) || bad "no rater tokens were made"

echo "== paired seeds, a clean validation split, the noise review and the clean reference"
sed -e 's/^name: .*/name: seeds/' -e 's/^modes: .*/modes: [baseline, clean, auto, hitl]/' \
    -e 's/^max_train_samples: .*/max_train_samples: 800/' "$WORK/micro.yaml" >"$WORK/seeds.yaml"
cat >>"$WORK/seeds.yaml" <<'EXTRA'
seeds: 2
validation_samples: 300
eval_smoothing: 2
noise_review: {enabled: true, every_steps: 8}
pruning: {ratio: 0.3}
EXTRA
if ! "$CLI" experiment run "$WORK/seeds.yaml" "${common[@]}" --experiment_id=seeds-e2e \
    >"$WORK/seeds.out" 2>"$WORK/seeds.err"; then
  cat "$WORK/seeds.err" "$WORK/seeds.out"
  stack_fail "greenloop experiment run (2 seeds) failed"
fi
grep -E '^(headline|over)' "$WORK/seeds.out"
for mode in baseline clean auto hitl; do
  grep -qE "^$mode/s1 +succeeded" "$WORK/seeds.out" || bad "no succeeded $mode/s1 row in the table"
  grep -qE "^headline: $mode share=[0-9]\.[0-9]{2} \[[0-9]\.[0-9]{2}-[0-9]+\.[0-9]{2}\] modelled=[0-9]\.[0-9]{2} \[[0-9]\.[0-9]{2}-[0-9]+\.[0-9]{2}\] seeds=2 val=0\.[0-9]{4} test=0\.[0-9]{4} rater_min=[0-9]+$" \
    "$WORK/seeds.out" || bad "no headline line for $mode"
done
# (Runs this short can end before the collector's first sample; the modelled share never does.)
grep -qE "^headline: baseline share=[01].00 \[[01].00-[01].00\] modelled=1.00 \[1.00-1.00\]" \
  "$WORK/seeds.out" || bad "the baseline's modelled share of itself is not 1"
grep -q "## Over 2 paired seeds" "$WORK/reports/seeds-e2e/report.md" || bad "the report has no seeds section"
grep -q "test accuracy (reported, never used to stop)" "$WORK/reports/seeds-e2e/report.md" ||
  bad "the report shows no test accuracy"
result="$(sql "SELECT result FROM experiments WHERE experiment_id = 'seeds-e2e'")"
# Paired seeds differ (another noise draw), the review covered most of the training set (records
# of the first every_steps steps wait for a later look), and the test
# split was evaluated at the end of every run.
jq -e '[.modes[] | select(.mode == "baseline") | .energyToTargetJoules] | length == 2' <<<"$result" \
  >/dev/null || bad "not two baselines with an energy to target"
jq -e '[.modes[] | select(.mode == "auto") | (.samplesReviewed // "0" | tonumber)] | min >= 400' \
  <<<"$result" >/dev/null || bad "the noise review did not cover the training set"
jq -e '[.modes[] | .testAccuracy] | all(. != null and . > 0.3)' <<<"$result" >/dev/null ||
  bad "a run has no test accuracy"
jq -e '[.modes[] | select(.mode == "clean") | (.verdictsApplied // "0" | tonumber)] | max == 0' \
  <<<"$result" >/dev/null || bad "the clean reference applied verdicts"
sed 's/^seeds: 2/seeds: 0/' "$WORK/seeds.yaml" >"$WORK/seeds0.yaml"
expect_exit 2 "$WORK/seeds0.out" "zero seeds" "$CLI" experiment run "$WORK/seeds0.yaml" "${common[@]}"
grep -q "seeds" "$WORK/seeds0.out" || bad "zero seeds is not named: $(cat "$WORK/seeds0.out")"

echo "== label and feature feedback in one run (hitl_combined), each kind in a campaign of its own"
sed -e 's/^name: .*/name: combined/' -e 's/^modes: .*/modes: [baseline, hitl_combined]/' \
    -e 's/^max_train_samples: .*/max_train_samples: 1000/' -e 's/^budget: .*/budget: {max_epochs: 6}/' \
    "$WORK/micro.yaml" >"$WORK/combined.yaml"
cat >>"$WORK/combined.yaml" <<'EXTRA'
validation_samples: 300
decoy: {enabled: true}
features: {ask_after_steps: 5}
EXTRA
if ! "$CLI" experiment run "$WORK/combined.yaml" "${common[@]}" --experiment_id=combined-e2e \
    >"$WORK/combined.out" 2>"$WORK/combined.err"; then
  cat "$WORK/combined.err" "$WORK/combined.out"
  stack_fail "greenloop experiment run (hitl_combined) failed"
fi
grep -E '^features:' "$WORK/combined.out" || bad "no features: lines for the decoyed experiment"
grep -qE '^features: fashion_mnist hitl_combined test=0\.[0-9]{4} ' "$WORK/combined.out" ||
  bad "no features: line for hitl_combined"
# The label questions' campaign holds the samples asked about, the rule campaign one item per class.
[[ "$(sql "SELECT string_agg(campaign_id, ',' ORDER BY campaign_id) FROM feedback_campaigns WHERE campaign_id LIKE 'combined-e2e-%'")" == \
   combined-e2e-hitl-combined,combined-e2e-hitl-combined-f ]] || bad "not two campaigns for hitl_combined"
[[ "$(sql "SELECT count(*) FROM feedback_items WHERE campaign_id = 'combined-e2e-hitl-combined-f'")" == 10 ]] ||
  bad "the rule campaign does not hold one question per class"
for c in combined-e2e-hitl-combined combined-e2e-hitl-combined-f; do
  n="$(sql "SELECT count(*) FROM feedback_ratings r JOIN feedback_items i USING (item_id) WHERE i.campaign_id = '$c'")"
  echo "$c: $n ratings"
  ((n > 0)) || bad "the crowd did not rate campaign $c"
done
result="$(sql "SELECT result FROM experiments WHERE experiment_id = 'combined-e2e'")"
both="$(jq -c '.modes[] | select(.mode == "hitl_combined")' <<<"$result")"
echo "hitl_combined: $(jq -c '{state, rules: .featureRules, applied: .verdictsApplied, correct: .verdictsCorrect}' <<<"$both")"
jq -e '.state == "succeeded" and .featureRules > 0 and (.verdictsCorrect // "0" | tonumber) > 0' \
  <<<"$both" >/dev/null || bad "hitl_combined did not apply both rules and label verdicts"
expect_exit 2 "$WORK/longid.out" "an experiment id that makes run ids too long" \
  "$CLI" experiment run "$WORK/combined.yaml" "${common[@]}" \
  --experiment_id=an-experiment-id-long-enough-to-overflow-the-run-ids
grep -q "at most 63 characters" "$WORK/longid.out" ||
  bad "a run id over 63 characters is not refused before the start: $(cat "$WORK/longid.out")"

echo "== greenloop report"
"$CLI" report micro-e2e --pg.url="$PG_URL" --output_dir="$WORK/again" >"$WORK/report.out" 2>&1 ||
  bad "greenloop report failed: $(cat "$WORK/report.out")"
grep -qE "^hitl +succeeded" "$WORK/report.out" || bad "greenloop report does not print the table"
[[ -s "$WORK/again/micro-e2e/report.html" ]] || bad "greenloop report wrote no HTML"

echo "== greenloop experiment sweep (crowd size 3 against the spec's 4)"
if "$CLI" experiment sweep "$WORK/micro.yaml" "${common[@]}" --raters=3 --accuracy= --spammer_share= \
    --sweep_id=micro-sweep --output_dir="$WORK/sweeps" >"$WORK/sweep.out" 2>"$WORK/sweep.err"; then
  grep -qE "^raters = 3 +3 " "$WORK/sweep.out" || bad "the sweep table has no 'raters = 3' row: $(cat "$WORK/sweep.out")"
  grep -qE "^centre +4 " "$WORK/sweep.out" || bad "the sweep table has no centre row"
  grep -q "adding raters" "$WORK/sweep.out" || bad "the sweep says nothing about adding raters"
  grep -q "<svg" "$WORK/sweeps/micro-sweep/sweep.html" || bad "sweep.html holds no inline SVG chart"
  [[ "$(sql "SELECT string_agg(experiment_id, ',' ORDER BY experiment_id) FROM experiments WHERE experiment_id LIKE 'micro-sweep-%'")" == \
     micro-sweep-baseline,micro-sweep-centre,micro-sweep-raters-3 ]] || bad "the sweep's experiments are not stored"
else
  cat "$WORK/sweep.err" "$WORK/sweep.out"
  bad "greenloop experiment sweep failed"
fi

echo "== Ctrl-C stops the current run, keeps the finished one"
sed -e 's/max_train_samples: 1200/max_train_samples: 6000/' \
    -e 's/modes: \[baseline, hitl, hybrid\]/modes: [baseline, hitl]/' -e 's/target_accuracy: baseline_best/target_accuracy: 0.99/' \
    "$WORK/micro.yaml" >"$WORK/long.yaml"
"$CLI" experiment run "$WORK/long.yaml" "${common[@]}" --experiment_id=long-e2e \
  >"$WORK/long.out" 2>"$WORK/long.err" &
pid=$!
# Wait for the hitl run (after the baseline finished) to show an evaluation.
for _ in $(seq 1 600); do
  grep -q '^\[hitl *\] epoch' "$WORK/long.err" && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.2
done
grep -q '^\[hitl *\] epoch' "$WORK/long.err" || { cat "$WORK/long.err"; stack_fail "the hitl run never showed progress"; }
kill -INT $pid
start=$SECONDS
set +e
wait $pid
code=$?
set -e
echo "exit $code $((SECONDS - start)) s after SIGINT"
((SECONDS - start <= 30)) || bad "Ctrl-C took $((SECONDS - start)) s"
[[ $code == 1 ]] || bad "an interrupted experiment exits $code, not 1"
[[ "$(sql "SELECT state FROM experiments WHERE experiment_id = 'long-e2e'")" == interrupted ]] ||
  bad "the experiment is not stored as interrupted"
[[ "$(sql "SELECT mode || ':' || state FROM experiment_runs WHERE experiment_id = 'long-e2e' ORDER BY mode")" == \
   $'baseline:succeeded\nhitl:interrupted' ]] ||
  bad "runs are not baseline succeeded + hitl interrupted: $(sql "SELECT mode, state FROM experiment_runs WHERE experiment_id = 'long-e2e'")"
[[ -s "$WORK/reports/long-e2e/report.md" ]] || bad "no report for the interrupted experiment"

if ((failures > 0)); then
  echo "experiment.e2e: $failures failure(s); logs under $WORK/stack/services" >&2
  exit 1
fi
echo "experiment.e2e: ok"
