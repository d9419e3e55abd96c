#!/usr/bin/env bash
# The saving against how much label noise costs the baseline: one paired-seed experiment per
# noise rate and kind, so that the headline is a point on a curve, not a chosen case (a benchmark,
# not a test):
#
#   tests/bench/experiment/noise_sweep.sh [--spec=FILE] [--seeds=N] [--rates=R,...]
#                                         [--kinds=K,...] [--build=DIR]
#
# Defaults: examples/quick.yaml, 3 seeds, rates 0.2,0.4, kinds symmetric,class_dependent (4
# experiments, about 10 minutes on 2 cores). Each point is the spec with its `noise:` line replaced
# (the noise seed kept) and its modes forced to baseline, clean, auto, hitl, hybrid, run on one
# stack of its own (tests/integration/experiment/stack.sh). What noise costs the baseline is read
# off the clean reference: its share of the noisy baseline's energy to the same plateau (the lower,
# the more the noise costs). Writes WORK/noise-sweep.md and noise-sweep.svg (gnuplot): each mode's
# share (estimated and modelled) against the clean reference's, and ends with one line per point:
#
#   noise: kind=KIND rate=R clean=0.NN/0.NN auto=0.NN/0.NN hitl=0.NN/0.NN hybrid=0.NN/0.NN
#
# (estimated/modelled means over seeds; the intervals are in the table and in each point's
# headline lines).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source tests/integration/experiment/stack.sh
BUILD=build
SEEDS=3
SPEC=examples/quick.yaml
RATES=0.2,0.4
KINDS=symmetric,class_dependent
for arg in "$@"; do
  case "$arg" in
    --seeds=*) SEEDS="${arg#--seeds=}" ;;
    --spec=*) SPEC="${arg#--spec=}" ;;
    --rates=*) RATES="${arg#--rates=}" ;;
    --kinds=*) KINDS="${arg#--kinds=}" ;;
    --build=*) BUILD="${arg#--build=}" ;;
    *) echo "usage: $0 [--spec=FILE] [--seeds=N] [--rates=R,...] [--kinds=K,...] [--build=DIR]" >&2
       exit 2 ;;
  esac
done
[[ "$SEEDS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --seeds must be a positive integer" >&2; exit 2; }
IFS=, read -ra rates <<<"$RATES"
IFS=, read -ra kinds <<<"$KINDS"
for r in "${rates[@]}"; do
  [[ "$r" =~ ^0?\.[0-9]+$ ]] || { echo "$0: --rates: '$r' is not a rate in (0, 1)" >&2; exit 2; }
done
for k in "${kinds[@]}"; do
  [[ "$k" == symmetric || "$k" == class_dependent ]] ||
    { echo "$0: --kinds: '$k' is not symmetric or class_dependent" >&2; exit 2; }
done
[[ -f "$SPEC" ]] || { echo "$0: --spec: $SPEC does not exist" >&2; exit 2; }
grep -q '^noise:' "$SPEC" || { echo "$0: $SPEC has no one-line 'noise:' key to vary" >&2; exit 2; }
for tool in jq gnuplot; do command -v "$tool" >/dev/null || stack_fail "$tool is not installed"; done
WORK="$(cd "$BUILD" && pwd)/bench-noise-sweep"
noise_seed="$(sed -n 's/^noise:.*seed: *\([0-9]*\).*/\1/p' "$SPEC")"

echo "== stack (logs under $WORK/stack/services)"
stack_up "$BUILD" "$WORK/stack"
common=(--pg.url="$PG_URL" --auth.token="$ADMIN_TOKEN" --auth.admin_token="$ADMIN_TOKEN"
        --infra.pid_files="$INFRA")

# One row per point and mode: kind rate mode share lo hi modelled mlo mhi.
rows="$WORK/noise-sweep.tsv"
: >"$rows"
n=$((${#rates[@]} * ${#kinds[@]}))
i=0
for kind in "${kinds[@]}"; do
  for rate in "${rates[@]}"; do
    i=$((i + 1))
    name="noise-${kind//_/-}-${rate/./p}"
    spec="$WORK/$name.yaml"
    stack_spec "$SPEC" "$spec"
    sed -i -e "s/^noise:.*/noise: {rate: $rate, kind: $kind, seed: ${noise_seed:-7}}/" \
           -e "s/^seeds:.*/seeds: $SEEDS/" -e "s/^name:.*/name: $name/" \
           -e "s/^modes:.*/modes: [baseline, clean, auto, hitl, hybrid]/" "$spec"
    grep -q '^seeds:' "$spec" || echo "seeds: $SEEDS" >>"$spec"
    echo "== point $i of $n: $kind noise at $rate ($SEEDS seeds)"
    start=$SECONDS
    "$CLI" experiment run "$spec" "${common[@]}" --no_progress --experiment_id="sweep-$name" \
      --output_dir="$WORK/reports" >"$WORK/$name.out" 2>&1 ||
      { tail -20 "$WORK/$name.out" >&2; stack_fail "the experiment of point $name failed"; }
    grep '^headline:' "$WORK/$name.out" | sed 's/^/  /'
    echo "  ($((SECONDS - start)) s)"
    grep '^headline:' "$WORK/$name.out" | sed -E \
      's/^headline: ([a-z]+) share=([0-9.]+) \[([0-9.]+)-([0-9.]+)\] modelled=([0-9.]+) \[([0-9.]+)-([0-9.]+)\].*/\1 \2 \3 \4 \5 \6 \7/' |
      while read -r mode rest; do echo "$kind $rate $mode $rest"; done >>"$rows"
  done
done

# share/modelled of MODE at one point.
cell() { awk -v k="$1" -v r="$2" -v m="$3" '$1 == k && $2 == r && $3 == m { print $4 "/" $7 }' "$rows"; }

# The plot: x = the clean reference's share at the point, y = the mode's, both kinds of energy.
for mode in auto hitl hybrid; do
  awk -v m="$mode" '$3 == "clean" { c[$1 " " $2] = $4; cm[$1 " " $2] = $7 }
    $3 == m { print c[$1 " " $2], $4, cm[$1 " " $2], $7, $1 "/" $2 }' "$rows" >"$WORK/$mode.dat"
done
cat >"$WORK/noise-sweep.gp" <<EOF
set terminal svg size 900,420 dynamic background rgb 'white'
set output '$WORK/noise-sweep.svg'
set multiplot layout 1,2 title 'Share of the noisy baseline energy to its plateau, against the clean reference (${SEEDS} seeds)'
set xlabel 'clean reference share (lower: noise costs more)'
set ylabel 'mode share'
set key top left
set xrange [0:1.05]
set yrange [0:*]
set title 'estimated (collector, infrastructure included)'
plot x with lines dt 2 lc 'gray' title 'y = x', \
  '$WORK/auto.dat' using 1:2 with points pt 7 title 'auto', \
  '$WORK/hitl.dat' using 1:2 with points pt 5 title 'hitl', \
  '$WORK/hybrid.dat' using 1:2 with points pt 9 title 'hybrid'
set title 'modelled (counted MACs, trainer only)'
plot x with lines dt 2 lc 'gray' title 'y = x', \
  '$WORK/auto.dat' using 3:4 with points pt 7 title 'auto', \
  '$WORK/hitl.dat' using 3:4 with points pt 5 title 'hitl', \
  '$WORK/hybrid.dat' using 3:4 with points pt 9 title 'hybrid'
unset multiplot
EOF
gnuplot "$WORK/noise-sweep.gp"

{
  echo "# Noise sweep: $SPEC, $SEEDS paired seeds"
  echo
  echo "Each cell: mean share of the seed's noisy baseline energy to its plateau, estimated"
  echo "(collector, infrastructure included) / modelled (counted MACs). The clean reference trains"
  echo "on the clean labels: its share says how much the noise costs the baseline."
  echo
  echo "| noise | clean | auto | hitl | hybrid |"
  echo "|---|---|---|---|---|"
  for kind in "${kinds[@]}"; do
    for rate in "${rates[@]}"; do
      echo "| $kind $rate | $(cell "$kind" "$rate" clean) | $(cell "$kind" "$rate" auto) |" \
           "$(cell "$kind" "$rate" hitl) | $(cell "$kind" "$rate" hybrid) |"
    done
  done
  echo
  echo "![share against the clean reference](noise-sweep.svg)"
} >"$WORK/noise-sweep.md"
echo
echo "report: $WORK/noise-sweep.md"
for kind in "${kinds[@]}"; do
  for rate in "${rates[@]}"; do
    echo "noise: kind=$kind rate=$rate clean=$(cell "$kind" "$rate" clean)" \
         "auto=$(cell "$kind" "$rate" auto) hitl=$(cell "$kind" "$rate" hitl)" \
         "hybrid=$(cell "$kind" "$rate" hybrid)"
  done
done
