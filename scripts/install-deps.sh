#!/usr/bin/env bash
# Installs the Debian packages vblip needs. Idempotent.
#   scripts/install-deps.sh --runtime   what building and running vblip needs (captioning,
#                                        the server, pulls), nothing else
#   scripts/install-deps.sh             that and what the tests need (scripts/test.sh runs it):
#                                        test media, fuzzing, the browser and openai client tests
set -euo pipefail
runtime_only=0
case "${1:-}" in
  --runtime) runtime_only=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "install-deps: unknown option '$1' (--runtime, or nothing for everything)" >&2
    exit 2
    ;;
esac
pkgs=(
  build-essential cmake pkg-config
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev   # video/image decoding
  libavdevice-dev                                               # capture devices (/dev/video*) for narrate
  libdnnl-dev                                                   # oneDNN 2.6: large matmuls
  libcjson-dev                                                  # JSON configs, tokenizer.json, API
  libutf8proc-dev                                               # Unicode classes / normalisation
  libmicrohttpd-dev                                             # HTTP server
  libcurl4-openssl-dev                                          # Hub downloads
  libedit-dev                                                   # line editing in `vblip chat`
)
test_pkgs=(
  git
  ffmpeg                                                        # test media generation in tests
  clang libclang-rt-14-dev python3                              # libFuzzer smoke runs (fuzz/run.sh)
  chromium nodejs jq                                            # browser test of the web demo, JSON in shell tests
  slurm-wlm munge                                               # the Slurm job-array test (tests/cli/slurm.sh)
  parallel                                                      # the GNU parallel commands of docs/datasets.md (tests/cli/dataset.sh)
)
if [ "$runtime_only" = 0 ]; then pkgs+=("${test_pkgs[@]}"); fi
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
if [ "$runtime_only" = 1 ]; then
  echo "install-deps: the packages to build and run vblip are present (scripts/test.sh installs the test tools)"
  exit 0
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
