#!/usr/bin/env bash
# Installs dependencies, builds with ASan+UBSan, and runs every test: Criterion unit tests,
# end-to-end tests against a real freshetd, fuzz-corpus replays and the Python client tests.
# Exits non-zero on any failure. Set FRESHET_E2E_LONG=1 for the long crash/durability loops.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh asan
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
(cd build/asan && ctest --output-on-failure -j2 --timeout 600) 2>&1 | tee "$log" || true
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
ctest_line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1)
c_failed=$(echo "$ctest_line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
c_total=$(echo "$ctest_line" | sed -E 's/.* tests failed out of ([0-9]+).*/\1/')
if [ -z "$ctest_line" ]; then c_failed=1 c_total=1 status=1; fi
py_passed=0 py_failed=0
if [ -x tests/python/run.sh ]; then
  tests/python/run.sh build/asan 2>&1 | tee "$log" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  py_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -n "$py_line" ]; then
    py_passed=${py_line%% passed*}
    py_failed=$(echo "$py_line" | sed -E 's/.*, ([0-9]+) failed/\1/')
  else
    py_failed=1 status=1
  fi
fi
# scale-out: a loopback NATS JetStream cluster and 3 freshetd nodes (scripts/cluster.sh, ~1 min)
cl_passed=0 cl_failed=0
if command -v nats-server >/dev/null 2>&1; then
  FRESHET_BIN="$PWD/build/asan" scripts/cluster.sh test 2>&1 | tee "$log" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  cl_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -n "$cl_line" ]; then
    cl_passed=${cl_line%% passed*}
    cl_failed=$(echo "$cl_line" | sed -E 's/.*, ([0-9]+) failed/\1/')
  else
    cl_failed=1 status=1
  fi
fi
passed=$(( (c_total - c_failed) + py_passed + cl_passed ))
failed=$(( c_failed + py_failed + cl_failed ))
[ $failed -eq 0 ] || status=1
echo
echo "ctest: $((c_total - c_failed)) of $c_total test binaries passed; python: $py_passed passed, $py_failed failed; cluster: $cl_passed passed, $cl_failed failed"
if [ $status -ne 0 ]; then
  echo "test.sh: FAILED" >&2
fi
echo "tests: $passed passed, $failed failed"
exit $status
