#!/usr/bin/env bash
# Installs every Debian package greenloop's build, tests and local demo need, on a fresh Debian
# bookworm machine. Idempotent: packages already installed are skipped, and when nothing is
# missing it touches neither apt nor the network.
#
#   deploy/local/bootstrap.sh          # install what is missing
#   deploy/local/bootstrap.sh --list   # print the package list and exit
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config git ca-certificates curl iproute2
  # gRPC and Protocol Buffers (grpc-proto: health + reflection protos for tests and probes)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto libabsl-dev
  # storage, metrics, logging, config, HTTP
  libpqxx-dev libpq-dev prometheus-cpp-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libcpp-httplib-dev
  # tests
  libgtest-dev libgmock-dev
  # servers the tests and the demo start on loopback
  postgresql prometheus
)

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "bootstrap: all ${#PACKAGES[@]} Debian packages already installed"
  exit 0
fi

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || {
    echo "bootstrap: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  }
  SUDO=(sudo)
fi

echo "bootstrap: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# Debian's postgresql and prometheus packages start system-wide services where an init system
# runs; greenloop starts its own instances on free loopback ports and never needs those.
echo "bootstrap: done"
