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
(cd build/asan && ctest --output-on-failure -j2 --timeout 600) || status=1
if [ -x tests/python/run.sh ]; then
  tests/python/run.sh build/asan || status=1
fi
if [ $status -ne 0 ]; then
  echo "test.sh: FAILED" >&2
else
  echo "test.sh: all tests passed"
fi
exit $status
