#!/usr/bin/env bash
# Long crash-consistency run: kill -9 freshetd at random moments under writers and readers, KILLS
# times per durability mode (default 60), restart, and check every acknowledged row. The test
# command runs the same test with 6 kills per mode. Usage: tests/crash/run.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/build.sh asan
export FRESHET_CRASH_KILLS=${1:-60}
build/asan/e2e_test_crash --jobs 1 2>&1 | grep -E '^crash:|Synthesis|FAIL|Assert' 
