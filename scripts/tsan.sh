#!/usr/bin/env bash
# ThreadSanitizer run: builds build/tsan and runs the Python suite against that freshetd (each test
# fails on a sanitizer report in the server's stderr). Criterion's runner does not start under
# TSan here, so the C e2e tests are not part of this run. Not part of scripts/test.sh (slow).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-fsanitize=thread -O1" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DFRESHET_TESTS=OFF >/dev/null
cmake --build build/tsan -j"$(nproc)" 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0}
tests/python/run.sh build/tsan
