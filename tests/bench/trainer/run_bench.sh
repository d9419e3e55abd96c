#!/usr/bin/env bash
# Trainer throughput, evaluation throughput, estimated energy and memory: greenloop (LibTorch C++,
# the trainer's own loop) next to PyTorch (python3-torch) doing the same work, for each model of
# the zoo; then greenloop with 1 and 2 ranks (Gloo), on loopback and across two network namespaces.
#
#   tests/bench/trainer/run_bench.sh [BUILD_DIR] [--models=cnn,bag_of_words,...] [--reps=3]
#                                    [--threads=2 --batch=64 ...]   # passed to both sides
#
# Same work on both sides: same model (layer for layer), data, batch, threads, Adam and weighted
# loss; `warmup` untimed steps then `steps` timed ones, no evaluation inside either timer (both
# sides print evals_in_timer, and the script checks that steps, timed steps and evaluation passes
# match); evaluation timed on its own over the test split. Both sides run in this shell's
# environment, so they load the same libblas.so.3 and oneDNN (each prints what it mapped).
# Ends with one line per model:
#   trainer: model=cnn greenloop=N pytorch=N ratio=N.NN mem_ratio=N.NN blas=NAME eval_ratio=N.NN
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="$root/build"
if [[ $# -gt 0 && "$1" != --* ]]; then build="$1"; shift; fi
bench="$build/tests/bench/trainer/trainer_bench"
[[ -x "$bench" ]] || { echo "run_bench: build $bench first (cmake --build $build --target trainer_bench)" >&2; exit 1; }
PYTHON="${PYTHON:-/usr/bin/python3}"  # Debian's, where python3-torch installs
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "run_bench: python3-torch is missing (apt-get install python3-torch)" >&2; exit 1; }
models="cnn,bag_of_words,mlp,lenet5,resnet,mobilenet,transformer"
reps=3
common=()
for arg in "$@"; do
  case "$arg" in
    --models=*) models="${arg#--models=}" ;;
    --reps=*) reps="${arg#--reps=}" ;;
    *) common+=("$arg") ;;
  esac
done
cd "$root"
text="$(mktemp /tmp/greenloop-bench-text.XXXXXX)"
trap 'rm -f "$text" /tmp/greenloop-bench-r1.$$' EXIT
value() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# Steps per model: a few minutes in all on 2 cores (the larger models take longer steps).
steps_of() {
  case "$1" in
    resnet|mobilenet) echo "--steps=60 --warmup=10" ;;
    transformer) echo "--steps=20 --warmup=3 --eval_reps=1" ;;
    *) echo "--steps=300 --warmup=30" ;;
  esac
}
# Text models read the SpamAssassin mails; pytorch_bench.py reads greenloop's tokenisation of them.
data_of() {
  case "$1" in
    bag_of_words|transformer) echo "--samples=0" ;;
    *) echo "--samples=10000" ;;
  esac
}
# The reference BLAS and LAPACK (libblas3, liblapack3), both: OpenBLAS' liblapack.so.3 would bring
# its own sgemm_ along.
NETLIB_DIR=/usr/lib/x86_64-linux-gnu/blas:/usr/lib/x86_64-linux-gnu/lapack
for lib in blas/libblas.so.3 lapack/liblapack.so.3; do
  [[ -e "/usr/lib/x86_64-linux-gnu/$lib" ]] || { echo "run_bench: /usr/lib/x86_64-linux-gnu/$lib is missing (apt-get install libblas3 liblapack3)" >&2; exit 1; }
done
blas_name() {  # "blas/libblas.so.3.11.0" → netlib; "openblas-serial/libblas.so.3" → openblas-serial
  local dir="${1%%/*}"
  [[ "$dir" == blas ]] && echo netlib || echo "$dir"
}

best() { awk -v a="$1" -v b="$2" 'BEGIN{print (a+0 > b+0) ? a : b}'; }
same() {  # same KEY LINE_A LINE_B: both sides did the same amount of this work
  local a b; a="$(echo "$2" | value "$1")"; b="$(echo "$3" | value "$1")"
  [[ "$a" == "$b" ]] || { echo "run_bench: $1 differs: greenloop $a, pytorch $b" >&2; exit 1; }
}

summaries=()
for model in ${models//,/ }; do
  echo "# $model: same work on both sides, alternating runs, best samples/s kept"
  # shellcheck disable=SC2207
  args=($(steps_of "$model") $(data_of "$model") --batch=64 --threads=2 --model="$model" "${common[@]}")
  gb=0; pb=0; ge=0; pe=0; gp=0
  model_reps="$reps"
  [[ "$model" == transformer ]] && model_reps=1  # ~1 s a step: one run each keeps the bench in minutes
  for ((i = 1; i <= model_reps; i++)); do
    g="$("$bench" "${args[@]}" --dump_text="$text")"; echo "$g"
    p="$("$PYTHON" "$here/pytorch_bench.py" "${args[@]}" --text="$text")"; echo "$p"
    for key in steps timed_steps evals_in_timer eval_passes parameters; do same "$key" "$g" "$p"; done
    gb="$(best "$(echo "$g" | value samples_per_s)" "$gb")"; pb="$(best "$(echo "$p" | value samples_per_s)" "$pb")"
    ge="$(best "$(echo "$g" | value eval_samples_per_s)" "$ge")"; pe="$(best "$(echo "$p" | value eval_samples_per_s)" "$pe")"
    gp="$(best "$(echo "$g" | value eval_plain_samples_per_s)" "$gp")"
  done
  # The same model on the reference BLAS greenloop ran on before issue 15 (Debian's default), with
  # the evaluation it had then: what the BLAS choice and the new evaluation are each worth.
  n="$(LD_LIBRARY_PATH="$NETLIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bench" "${args[@]}")"; echo "$n"
  awk -v m="$model" -v nb="$(echo "$n" | value samples_per_s)" -v gb="$gb" \
      -v np="$(echo "$n" | value eval_plain_samples_per_s)" -v ne="$(echo "$n" | value eval_samples_per_s)" \
      -v gp="$gp" -v ge="$ge" -v b="$(echo "$g" | value blas)" 'BEGIN{
    printf "# %s: training %.0f samples/s on %s vs %.0f on netlib (%.2fx); evaluation %.0f samples/s vs %.0f with the evaluation of before issue 15 on the same BLAS (%.2fx) and %.0f with both as before (netlib: %.2fx; new evaluation on netlib %.0f)\n",
      m, gb, b, nb, gb/nb, ge, gp, ge/gp, np, ge/np, ne }'
  rg="$(echo "$g" | value peak_rss_mb)"; rp="$(echo "$p" | value peak_rss_mb)"
  eg="$(echo "$g" | value est_mj_per_sample)"; ep="$(echo "$p" | value est_mj_per_sample)"
  macs="$(echo "$g" | value macs_per_sample)"
  blas="$(blas_name "$(echo "$g" | value blas)")"
  echo "# $model: evaluation excluded from both training timers, timed on its own (batches of $(echo "$g" | value eval_batch) on both sides); threads: greenloop $(echo "$g" | value threads), pytorch $(echo "$p" | value threads); libraries: greenloop $(echo "$g" | value blas) $(echo "$g" | value dnnl), pytorch $(echo "$p" | value blas) $(echo "$p" | value dnnl)"
  awk -v m="$model" -v eg="$eg" -v ep="$ep" -v macs="$macs" 'BEGIN{
    printf "# %s: energy per trained sample (last run): estimated greenloop %.3f mJ, pytorch %.3f mJ (CPU seconds x 2.76 W, the collector estimator: active share); modelled %.2f MMACs forward+backward, the same on both sides\n", m, eg, ep, 3 * macs / 1e6 }'
  summaries+=("$(awk -v m="$model" -v g="$gb" -v p="$pb" -v rg="$rg" -v rp="$rp" -v b="$blas" -v ge="$ge" -v pe="$pe" 'BEGIN{
    printf "trainer: model=%s greenloop=%.0f pytorch=%.0f ratio=%.2f mem_ratio=%.2f blas=%s eval_ratio=%.2f", m, g, p, g/p, rg/rp, b, ge/pe }')")
done

if [[ ",$models," == *,cnn,* ]]; then
  "$here/distributed_bench.sh" "$bench" "${common[@]}" || echo "# distributed: skipped (see above)"
fi
printf '%s\n' "${summaries[@]}"
