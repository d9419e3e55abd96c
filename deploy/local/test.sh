#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything, runs every test.
#
#   deploy/local/test.sh            # all tests (unit, pg, e2e), then the asan, fuzz and tsan suites
#   deploy/local/test.sh -L unit    # extra arguments go to ctest; the sanitizer suites are skipped
#
# The sanitizer and fuzz suites (deploy/local/sanitize.sh, docs/hardening.md) build in build-asan
# and build-tsan with clang; GREENLOOP_SANITIZERS=0 skips them.
#
# Tests labelled `pg` start their own PostgreSQL (a fresh cluster under build/test-pg on a free
# loopback port) through a CTest fixture and remove it afterwards. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR="${GREENLOOP_BUILD_DIR:-build}"
JOBS="${GREENLOOP_JOBS:-2}"

deploy/local/bootstrap.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" -j"$JOBS"
status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 300 -j"$JOBS" "$@" || status=$?
if (($# == 0)) && [[ "${GREENLOOP_SANITIZERS:-1}" != 0 ]]; then
  deploy/local/sanitize.sh || status=1
fi
exit "$status"
