#!/usr/bin/env bash
# Configures and builds one flavour of Freshet. Usage: scripts/build.sh release|asan [extra cmake args]
#   release → build/release (optimised, what the demo and benchmarks run)
#   asan    → build/asan    (Debug + AddressSanitizer + UndefinedBehaviorSanitizer, what tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
shift || true
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DFRESHET_SANITIZE=ON -DFRESHET_WERROR=ON) ;;
  *) echo "usage: $0 release|asan" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" "${args[@]}" "$@" >/dev/null
cmake --build "build/$flavour" -j"$(nproc)" 2>&1 | grep -vE '^\[ *[0-9]+%\]|^-- ' || true
test "${PIPESTATUS[0]}" -eq 0
