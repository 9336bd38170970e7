#!/usr/bin/env bash
# Alternates oneDNN's matmul (the linked 2.x, and a 3.x build when
# build/bench/onednn-matmul-alt exists) with vblip's tile products at the vision
# encoder's shapes, ROUNDS times, printing `uptime` before each run: on a shared
# machine only runs next to each other compare. Usage:
#   bench/compare-matmul.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
alt=$build/bench/onednn-matmul-alt
for r in $(seq "$rounds"); do
  echo "== round $r"
  uptime
  "$build/bench/onednn-matmul"
  if [ -x "$alt" ]; then uptime; LD_LIBRARY_PATH=${VBLIP_ONEDNN_ALT_LIB:-} "$alt"; fi
  uptime
  "$build/bench/tile-matmul"
done
