#!/usr/bin/env bash
# The web demo in a real browser: headless Debian chromium driven by playwright-core
# (tests/browser). Screenshots: tests/browser/artifacts/. Skipped (exit 0) only when
# node or chromium is not installed (scripts/install-deps.sh installs both).
set -u
BIN=$(realpath "$1")
FIX=$(realpath "$2")
DIR=$(cd "$(dirname "$0")/../browser" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if ! command -v node >/dev/null || [ ! -x "$CHROMIUM" ]; then
  echo "SKIP: the browser test needs node and $CHROMIUM (scripts/install-deps.sh installs them)"
  echo "0 passed, 0 failed"
  exit 0
fi
if [ ! -d "$DIR/node_modules/playwright-core" ]; then
  (cd "$DIR" && npm ci --no-audit --no-fund >/dev/null) || { echo "FAIL: npm ci in $DIR"; echo "0 passed, 1 failed"; exit 1; }
fi
cd "$DIR" && CHROMIUM=$CHROMIUM timeout 300 node browser_test.mjs "$BIN" "$FIX" "$DIR/artifacts"
