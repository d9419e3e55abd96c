# Free loopback ports for the shell tests and benchmarks (sourced, not run).
#
#   source tests/support/ports.sh
#   pick_ports GRPC_PORT METRICS_PORT     # sets each variable to a distinct port nothing listens on
#
# Runs in the caller's shell (no $(...)), so the ports it hands out are distinct from each other.
pick_ports() {
  local name p taken=" "
  for name in "$@"; do
    while :; do
      p=$((20000 + RANDOM % 30000))
      [[ "$taken" == *" $p "* ]] && continue
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
      break
    done
    taken+="$p "
    printf -v "$name" '%s' "$p"
  done
}
