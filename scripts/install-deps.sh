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
echo "install-deps: all packages present"
