#!/usr/bin/env bash
# Builds vblip twice (optimised, and with AddressSanitizer + UBSan) and runs the
# whole CTest suite on both. Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVBLIP_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests (release build)"
ctest --test-dir build --output-on-failure -j"$jobs" "$@"
echo "== tests (ASan/UBSan build)"
# oneDNN's JIT and OpenMP's thread pool keep allocations for the process lifetime.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" "$@"
echo "== fuzz smoke run (libFuzzer, 10 s per target)"
fuzz/run.sh 10
