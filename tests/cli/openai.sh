#!/usr/bin/env bash
# vblip serve's /v1 endpoint driven by the official openai client for Node (tests/openai,
# pinned in its package-lock.json). Skipped (exit 0) only when node is not installed
# (scripts/install-deps.sh installs it and the client).
set -u
BIN=$(realpath "$1")
FIX=$(realpath "$2")
DIR=$(cd "$(dirname "$0")/../openai" && pwd)
if ! command -v node >/dev/null; then
  echo "SKIP: the openai client test needs node (scripts/install-deps.sh installs it)"
  echo "0 passed, 0 failed"
  exit 0
fi
if [ ! -d "$DIR/node_modules/openai" ]; then
  (cd "$DIR" && npm ci --no-audit --no-fund >/dev/null) || { echo "FAIL: npm ci in $DIR"; echo "0 passed, 1 failed"; exit 1; }
fi
cd "$DIR" && timeout 300 node openai_test.mjs "$BIN" "$FIX"
