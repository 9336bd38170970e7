#!/usr/bin/env bash
# Builds vblip twice (optimised, and with AddressSanitizer + UBSan), runs the whole
# CTest suite on both and a short libFuzzer run of every parser, then prints one
# summary line of all of it. Exit status 0 only if everything built and passed.
# Usage: scripts/test.sh [extra ctest args, e.g. -L fast]
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
start=$SECONDS
logs=$(mktemp -d "${TMPDIR:-/tmp}/vblip-test-sh-XXXXXX")
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0

# ctest's "N% tests passed, F tests failed out of T" as "P/T passed" (+ ", F failed")
ctest_counts() {
  local line total fails
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$1" | tail -1)
  if [ -z "$line" ]; then
    echo "no result"
    return
  fi
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  fails=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  if [ "$fails" = 0 ]; then echo "$total/$total passed"; else echo "$((total - fails))/$total passed, $fails FAILED"; fi
}

# phase NAME BUILD_DIR CMAKE_ARGS... : configure, build, ctest (with ENV_FOR_CTEST)
phase() {
  local name=$1 dir=$2 t0=$SECONDS
  shift 2
  echo "== $name: build ($dir)"
  if ! { cmake -S . -B "$dir" "$@" >/dev/null && cmake --build "$dir" -j"$jobs"; }; then
    summary+=("$name: BUILD FAILED")
    failed=1
    return
  fi
  echo "== $name: tests"
  # shellcheck disable=SC2086
  env $ENV_FOR_CTEST ctest --test-dir "$dir" --output-on-failure -j"$jobs" "${CTEST_ARGS[@]}" 2>&1 |
    tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || failed=1
  summary+=("$name $(ctest_counts "$logs/$name.log") ($((SECONDS - t0))s)")
}

# the test tools (test media, fuzzing, the browser and openai client tests): the README's
# first command installs only what building and captioning need
if [ "${VBLIP_SKIP_INSTALL:-0}" != 1 ]; then
  echo "== install the test dependencies (scripts/install-deps.sh; VBLIP_SKIP_INSTALL=1 skips)"
  if ! scripts/install-deps.sh; then
    summary+=("install-deps FAILED")
    failed=1
  fi
fi

CTEST_ARGS=("$@")
ENV_FOR_CTEST=""
phase release build -DCMAKE_BUILD_TYPE=Release
# LeakSanitizer on: a test (or a vblip it runs, e.g. serve) that loses memory fails. What
# oneDNN and OpenMP keep for the process lifetime stays reachable and is not reported.
ENV_FOR_CTEST="ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"
phase asan build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVBLIP_SANITIZE=ON

echo "== fuzz smoke run (libFuzzer, 10 s per target)"
t0=$SECONDS
fuzz/run.sh 10 2>&1 | tee "$logs/fuzz.log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || failed=1
fuzz=$(grep -E "^fuzz: " "$logs/fuzz.log" | tail -1 | sed 's/^fuzz: //')
summary+=("fuzz ${fuzz:-did not run (exit $rc)} ($((SECONDS - t0))s)")

total=$((SECONDS - start))
line=$(printf '%s; ' "${summary[@]}")
printf '== test.sh: %s: %s%dm%02ds\n' "$([ "$failed" = 0 ] && echo OK || echo FAILED)" "$line" \
  $((total / 60)) $((total % 60))
exit "$failed"
