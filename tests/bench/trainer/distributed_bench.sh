#!/usr/bin/env bash
# greenloop's CNN with 1 rank × T threads against 2 ranks × T/2 threads (same global batch, Gloo):
# on loopback, and, where this shell may make network namespaces (root), with the ranks in two
# namespaces joined by a veth pair, so that the gradients cross a real (virtual) link. Prints each
# rank's line (allreduce_ms_per_step: the all-reduce time per step, summed over the run).
#
#   tests/bench/trainer/distributed_bench.sh TRAINER_BENCH [--threads=2 --batch=64 ...]
#
# Run by run_bench.sh. The namespaces (greenloop-bench-a/-b) are removed on exit.
set -euo pipefail
bench="$1"; shift
args=(--model=cnn --samples=10000 --steps=300 --warmup=30 --threads=2 --batch=64 "$@")
last() { printf '%s\n' "${args[@]}" | sed -n "s/--$1=//p" | tail -1; }
threads="$(last threads)"; batch="$(last batch)"
half=$(( threads > 1 ? threads / 2 : 1 ))
two=(--world=2 --threads="$half" --batch=$((batch / 2)) --eval_reps=0)
out="$(mktemp /tmp/greenloop-bench-rank1.XXXXXX)"
ns_a=greenloop-bench-a ns_b=greenloop-bench-b
cleanup() {
  rm -f "$out"
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
}
trap cleanup EXIT

value() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
# pair NAME RANK0_LINE RANK1_LINE: the pair's global samples/s and rank 0's all-reduce time.
pair() {
  echo "$2"; echo "$3"
  awk -v n="$1" -v a="$(echo "$2" | value samples_per_s)" -v b="$(echo "$3" | value samples_per_s)" \
      -v ar="$(echo "$2" | value allreduce_ms_per_step)" -v one="$single" 'BEGIN{
    printf "# distributed: %s: 2 ranks %.0f samples/s (%.2fx 1 rank), all-reduce %.2f ms per step\n", n, a + b, (a + b) / one, ar }'
}

echo "# greenloop cnn, 1 rank x $threads threads vs 2 ranks x $half thread(s) (global batch $batch)"
line="$("$bench" "${args[@]}" --eval_reps=0)"; echo "$line"
single="$(echo "$line" | value samples_per_s)"

port=$(( 20000 + RANDOM % 20000 ))
echo "# 2 ranks on loopback"
"$bench" "${args[@]}" "${two[@]}" --rank=1 --port="$port" >"$out" &
line="$("$bench" "${args[@]}" "${two[@]}" --rank=0 --port="$port")"
wait; pair loopback "$line" "$(cat "$out")"

if [[ "$(id -u)" != 0 ]] || ! ip netns add "$ns_a" 2>/dev/null; then
  echo "# 2 ranks across network namespaces: skipped (needs root to make namespaces)"
  exit 0
fi
ip netns add "$ns_b"
ip link add gl-bench-a type veth peer name gl-bench-b
ip link set gl-bench-a netns "$ns_a"
ip link set gl-bench-b netns "$ns_b"
ip -n "$ns_a" addr add 10.231.0.1/24 dev gl-bench-a
ip -n "$ns_b" addr add 10.231.0.2/24 dev gl-bench-b
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set gl-bench-a up
ip -n "$ns_b" link set gl-bench-b up
echo "# 2 ranks in two network namespaces joined by a veth pair (10.231.0.1 <-> 10.231.0.2)"
ip netns exec "$ns_b" "$bench" "${args[@]}" "${two[@]}" --rank=1 --host=10.231.0.1 --port="$port" \
  --interface=gl-bench-b >"$out" &
line="$(ip netns exec "$ns_a" "$bench" "${args[@]}" "${two[@]}" --rank=0 --host=10.231.0.1 \
  --port="$port" --interface=gl-bench-a)"
wait; pair "veth between two network namespaces" "$line" "$(cat "$out")"
