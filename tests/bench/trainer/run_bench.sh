#!/usr/bin/env bash
# Trainer throughput and memory, greenloop (LibTorch C++) next to PyTorch (python3-torch), same
# model, batch size, thread count and data; then greenloop with 1 and 2 ranks (Gloo on loopback).
#
#   tests/bench/trainer/run_bench.sh [BUILD_DIR] [--samples=10000 --batch=64 --threads=2 ...]
#
# Needs Debian's python3-torch for the PyTorch side (the same 1.13 release as libtorch-dev).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
build="${1:-$root/build}"
shift || true
bench="$build/tests/bench/trainer/trainer_bench"
[[ -x "$bench" ]] || { echo "run_bench: build $bench first (cmake --build $build --target trainer_bench)" >&2; exit 1; }
PYTHON="${PYTHON:-/usr/bin/python3}"  # Debian's, where python3-torch installs
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "run_bench: python3-torch is missing (apt-get install python3-torch)" >&2; exit 1; }
args=(--samples=10000 --batch=64 --threads=2 --steps=300 --warmup=30 "$@")
cd "$root"
value() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "# same model, batch, threads and data; 3 alternating runs each, best samples/s kept"
best_g=0; best_p=0; rss_g=0; rss_p=0
for i in 1 2 3; do
  g="$("$bench" "${args[@]}")"; echo "$g"
  p="$("$PYTHON" "$here/pytorch_bench.py" "${args[@]}")"; echo "$p"
  sg="$(echo "$g" | value samples_per_s)"; sp="$(echo "$p" | value samples_per_s)"
  awk -v a="$sg" -v b="$best_g" 'BEGIN{exit !(a>b)}' && best_g="$sg"
  awk -v a="$sp" -v b="$best_p" 'BEGIN{exit !(a>b)}' && best_p="$sp"
  rss_g="$(echo "$g" | value peak_rss_mb)"; rss_p="$(echo "$p" | value peak_rss_mb)"
done
awk -v g="$best_g" -v p="$best_p" -v rg="$rss_g" -v rp="$rss_p" 'BEGIN{
  printf "greenloop %.0f samples/s, %.0f MB peak RSS | pytorch %.0f samples/s, %.0f MB | ratio %.2fx throughput, %.2fx memory\n", g, rg, p, rp, g/p, rg/rp }'

echo "# greenloop, 1 rank vs 2 ranks (same global batch; threads split between the ranks)"
threads="$(printf '%s\n' "${args[@]}" | sed -n 's/--threads=//p' | tail -1)"
batch="$(printf '%s\n' "${args[@]}" | sed -n 's/--batch=//p' | tail -1)"
half=$(( threads > 1 ? threads / 2 : 1 ))
port=$(( 20000 + RANDOM % 20000 ))
one="$("$bench" "${args[@]}")"
"$bench" "${args[@]}" --world=2 --rank=1 --port="$port" --threads="$half" --batch=$((batch / 2)) >/tmp/greenloop-bench-r1.$$ &
two="$("$bench" "${args[@]}" --world=2 --rank=0 --port="$port" --threads="$half" --batch=$((batch / 2)))"
wait
echo "$one"; echo "$two"; rm -f /tmp/greenloop-bench-r1.$$
