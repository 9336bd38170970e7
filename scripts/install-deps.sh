#!/usr/bin/env bash
# Installs every Debian package vblip needs to build and test. Idempotent.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config git
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev   # video/image decoding
  libdnnl-dev                                                   # oneDNN 2.6: large matmuls
  libcjson-dev                                                  # JSON configs, tokenizer.json, API
  libutf8proc-dev                                               # Unicode classes / normalisation
  libmicrohttpd-dev                                             # HTTP server
  libcurl4-openssl-dev                                          # Hub downloads
  libedit-dev                                                   # line editing in `vblip chat`
  ffmpeg                                                        # test media generation in tests
  clang libclang-rt-14-dev python3                              # libFuzzer smoke runs (fuzz/run.sh)
  chromium nodejs jq                                            # browser test of the web demo, JSON in shell tests
  slurm-wlm munge                                               # the Slurm job-array test (tests/cli/slurm.sh)
)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# npm ships with nodejs from some sources; Debian packages it separately.
if ! command -v npm >/dev/null; then
  $SUDO apt-get install -y -q --no-install-recommends npm
fi
# playwright-core for the browser test (pinned in tests/browser/package-lock.json)
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$here/tests/browser/node_modules/playwright-core" ]; then
  (cd "$here/tests/browser" && npm ci --no-audit --no-fund)
fi
# the official openai client for the test of the OpenAI-compatible endpoint (tests/openai)
if [ ! -d "$here/tests/openai/node_modules/openai" ]; then
  (cd "$here/tests/openai" && npm ci --no-audit --no-fund)
fi
echo "install-deps: all packages present"
