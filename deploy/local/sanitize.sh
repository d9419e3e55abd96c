#!/usr/bin/env bash
# The sanitizer and fuzz suites (issue 17), each in a clang build directory of its own
# (CMakePresets.json), built only for the test executables they run (no LibTorch code among them):
#
#   asan  build-asan: the unit and pg suites of the libraries below under AddressSanitizer and
#         UndefinedBehaviorSanitizer (ctest label asan)
#   fuzz  build-asan: every libFuzzer target from its seed corpus for GREENLOOP_FUZZ_SECONDS
#         (default 10) each (label fuzz)
#   tsan  build-tsan: the unit suites of the energy collector (sampling and its writer), the
#         feedback core (queue, lease reaper, dispatcher, throttle), the trainer's data code
#         (verdict streams) and the gRPC helpers under ThreadSanitizer (label tsan), less the
#         tests TSAN_EXCLUDE names: Debian's abseil and gRPC are not built for TSan, so TSan does
#         not see their locks, and tests that contend on an absl::Mutex or run a gRPC server
#         report races inside those libraries (docs/hardening.md)
#
#   deploy/local/sanitize.sh [asan] [fuzz] [tsan]     # default: all three
#
# deploy/local/test.sh runs it after the main suite; GREENLOOP_SANITIZERS=0 there skips it.
# Exits non-zero when a suite fails; a sanitizer report fails its test.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS="${GREENLOOP_JOBS:-2}"
SUITES=("$@")
((${#SUITES[@]} > 0)) || SUITES=(asan fuzz tsan)

ASAN_TESTS=(contracts_test status_test config_test logging_test metrics_test grpc_test
            grpc_whoami_test pg_unit_test pg_test energy_core_test energy_grpc_test energy_pg_test
            feedback_core_test feedback_pg_test feedback_cli_test trainer_data_test cli_test
            cli_pg_test experiment_test crowd_test)
TSAN_TESTS=(energy_core_test feedback_core_test trainer_data_test grpc_test)
TSAN_EXCLUDE='^(AuthorizeTest|ChannelTest|ServerTest|GrpcLoggingTest)\.|^HeadDispatcher\.ConcurrentRaters'

# Reports fail the test at once, with the stack; leaks are reported too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

configure() {  # configure PRESET
  cmake --preset "$1" >/dev/null
}
status=0
for suite in "${SUITES[@]}"; do
  case "$suite" in
    asan)
      echo "== asan: ${#ASAN_TESTS[@]} test executables under ASan + UBSan (build-asan)"
      configure asan
      cmake --build build-asan -j"$JOBS" --target "${ASAN_TESTS[@]}"
      ctest --test-dir build-asan -L asan --output-on-failure -j"$JOBS" --timeout 600 || status=1
      ;;
    fuzz)
      echo "== fuzz: every libFuzzer target, ${GREENLOOP_FUZZ_SECONDS:-10} s each (build-asan)"
      configure asan
      cmake -S . -B build-asan -DGREENLOOP_FUZZ_SECONDS="${GREENLOOP_FUZZ_SECONDS:-10}" >/dev/null
      cmake --build build-asan -j"$JOBS" --target greenloop_fuzz_targets
      ctest --test-dir build-asan -L fuzz --output-on-failure --timeout 900 || status=1
      ;;
    tsan)
      echo "== tsan: ${#TSAN_TESTS[@]} test executables under ThreadSanitizer (build-tsan)"
      configure tsan
      cmake --build build-tsan -j"$JOBS" --target "${TSAN_TESTS[@]}"
      ctest --test-dir build-tsan -L tsan -E "$TSAN_EXCLUDE" --output-on-failure -j"$JOBS" \
        --timeout 600 || status=1
      ;;
    *)
      echo "sanitize.sh: unknown suite '$suite' (asan, fuzz or tsan)" >&2
      exit 2
      ;;
  esac
done
exit "$status"
