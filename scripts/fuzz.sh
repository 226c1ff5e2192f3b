#!/usr/bin/env bash
# Runs every libFuzzer target in tests/fuzz for SECONDS each (default 60) with ASan+UBSan, starting
# from the checked-in corpus. New inputs go to build/fuzz/corpus/<name> (not the repository);
# crashes are written to build/fuzz/findings/<name>/ and make the script exit non-zero — add the
# input to tests/fuzz/corpus/<name>/ with the fix, so the plain replay in the test suite keeps it.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
./scripts/deps.sh
CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRESHET_LIBFUZZER=ON \
  -DFRESHET_TESTS=OFF >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
fi
cmake --build build/fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
printf '%-12s %12s %8s %s\n' target execs corpus result
for t in "${targets[@]}"; do
  work=build/fuzz/corpus/$t findings=build/fuzz/findings/$t
  mkdir -p "$work" "$findings"
  cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  log=build/fuzz/$t.log
  if build/fuzz/fuzz_"$t" -max_total_time="$secs" -artifact_prefix="$findings/" -print_final_stats=1 \
       "$work" >"$log" 2>&1; then result=ok; else result="FINDING (see $findings, $log)"; status=1; fi
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  printf '%-12s %12s %8s %s\n' "$t" "${execs:-?}" "$(ls "$work" | wc -l)" "$result"
done
exit $status
