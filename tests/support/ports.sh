# Free loopback ports for the shell tests and benchmarks (sourced, not run).
#
#   source tests/support/ports.sh
#   pick_ports GRPC_PORT METRICS_PORT     # sets each variable to a distinct port nothing listens on
#
# Runs in the caller's shell (no $(...)), so the ports it hands out are distinct from each other.
# Ports come from below the kernel's ephemeral range (ip_local_port_range), which the outgoing
# connections of tests running alongside draw from: a port picked inside it could be taken by one
# of them between the pick and the service's bind.
pick_ports() {
  local name p taken=" " low=32768 span
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  ((low > 12000)) || low=32768
  span=$((low - 10000))
  for name in "$@"; do
    while :; do
      p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
      [[ "$taken" == *" $p "* ]] && continue
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
      break
    done
    taken+="$p "
    printf -v "$name" '%s' "$p"
  done
}
