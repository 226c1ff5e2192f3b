#!/usr/bin/env bash
# Runs the Python client tests against the freshetd and freshet of BUILD_DIR.
# Usage: tests/python/run.sh BUILD_DIR     (scripts/test.sh calls it with build/asan)
# Each tests/python/test_*.py file runs in its own /usr/bin/python3 process with
# PYTHONPATH=clients/python; every test starts its own freshetd (ephemeral port, temporary data
# directory). Prints `N passed, M failed` last and exits non-zero on any failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: tests/python/run.sh BUILD_DIR}
if [ -d "$build" ]; then build=$(cd "$build" && pwd); else build="$root/$build"; fi
if [ ! -x "$build/freshetd" ] || [ ! -x "$build/freshet" ]; then
  echo "tests/python/run.sh: no freshetd/freshet in $build" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
export FRESHET_BUILD_DIR="$build"
export PYTHONPATH="$root/clients/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
passed=0 failed=0 status=0
for t in "$here"/test_*.py; do
  echo "== $(basename "$t")"
  out=$(mktemp)
  /usr/bin/python3 "$here/runner.py" "$t" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  last=$(tail -n 1 "$out")
  rm -f "$out"
  if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then failed=$((failed + 1)); fi
  else
    echo "$(basename "$t"): runner crashed (exit $rc)"
    failed=$((failed + 1))
  fi
  [ "$rc" -ne 0 ] && status=1
done
[ "$failed" -ne 0 ] && status=1
echo "$passed passed, $failed failed"
exit $status
