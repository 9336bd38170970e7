#!/usr/bin/env bash
# Builds each libFuzzer target (clang, ASan + UBSan) with the library sources it
# needs and runs it for SECONDS (default 20) on a seed corpus made from the test
# fixtures. Exits non-zero if any target crashes or fails to build.
# Usage: fuzz/run.sh [seconds [target...]]   (default: every target; outputs under
# $FUZZ_OUT, default build-fuzz/), e.g. fuzz/run.sh 600 video tokenize
set -euo pipefail
secs=${1:-20}
shift $(($# > 0 ? 1 : 0))
root=$(cd "$(dirname "$0")/.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
cc=${CC:-clang}
mkdir -p "$out"

cflags=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -I"$root/src" -I"$root/tools" -I"$root/include")
read -r -a cjson <<<"$(pkg-config --cflags --libs libcjson)"
read -r -a utf8proc <<<"$(pkg-config --cflags --libs libutf8proc)"
runtime=("$root/src/runtime/common.c" "$root/src/runtime/vfs.c" "$root/src/runtime/dtype.c"
         "$root/src/runtime/escape.c" "$root/src/runtime/json.c" "$root/src/runtime/outfile.c")

# libFuzzer's runtime ships separately from clang on Debian (libclang-rt-<ver>-dev).
if ! command -v "$cc" >/dev/null ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' |
     "$cc" -x c -fsanitize=fuzzer - -o "$out/.probe" 2>/dev/null; then
  echo "fuzz/run.sh: $cc cannot build libFuzzer targets; install clang and libclang-rt-14-dev" >&2
  exit 2
fi
rm -f "$out/.probe"

python3 "$root/fuzz/make_seeds.py" "$out/seeds"

status=0
passed=0
all=(safetensors torch_bin pickle gguf http model_files narrate_args chat_request video tokenize)
targets=("${@:-${all[@]}}")
for t in "${targets[@]}"; do
  if [[ " ${all[*]} " != *" $t "* ]]; then
    echo "fuzz/run.sh: no target '$t' (targets: ${all[*]})" >&2
    exit 2
  fi
done
for t in "${targets[@]}"; do
  bin="$out/fuzz_$t"
  case $t in # the library sources each target needs
    http) srcs=("${runtime[@]}" "$root/tools/server/http_head.c" "$root/tools/server/http_error.c") ;;
    narrate_args) srcs=("${runtime[@]}" "$root/tools/server/narrate_args.c"
                        "$root/tools/server/gen_settings.c") ;;
    chat_request) srcs=("${runtime[@]}" "$root"/tools/server/{chat_request,openai_request,gen_settings,stop_seq,server_util}.c) ;;
    video) srcs=("${runtime[@]}" "$root/src/video/video.c") ;;
    tokenize) srcs=("${runtime[@]}" "$root"/src/text/*.c) ;;
    model_files) srcs=("${runtime[@]}" "$root"/src/text/*.c "$root/src/checkpoint/config.c") ;;
    *) srcs=("${runtime[@]}" "$root"/src/formats/*.c) ;;
  esac
  echo "== building fuzz_$t"
  libs=()
  [ "$t" = video ] && read -r -a libs <<<"$(pkg-config --cflags --libs libavformat libavcodec libswscale libavutil)"
  [ "$t" = tokenize ] && libs=("-DVBLIP_FIXTURE_MODELS=\"$root/tests/fixtures/models\"")
  if ! "$cc" "${cflags[@]}" "$root/fuzz/fuzz_$t.c" "${srcs[@]}" "${cjson[@]}" "${utf8proc[@]}" \
      "${libs[@]}" -lm -lpthread -o "$bin"; then
    echo "fuzz_$t: build FAILED"
    status=1
    continue
  fi
  mkdir -p "$out/corpus_$t" "$out/crashes_$t"
  echo "== running fuzz_$t for ${secs}s"
  # New inputs go to corpus_$t (kept between runs); seeds are read-only inputs.
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$out/crashes_$t/" \
      "$out/corpus_$t" "$out/seeds/$t" 2>"$out/fuzz_$t.log"; then
    echo "fuzz_$t FAILED (see $out/fuzz_$t.log and $out/crashes_$t/)"
    tail -40 "$out/fuzz_$t.log"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$out/fuzz_$t.log" || true
    passed=$((passed + 1))
  fi
done
# the last line is what scripts/test.sh reports
if [ "$passed" = "${#targets[@]}" ]; then
  echo "fuzz: ${passed}/${#targets[@]} targets passed, ${secs} s each"
else
  echo "fuzz: ${passed}/${#targets[@]} targets passed, $((${#targets[@]} - passed)) FAILED, ${secs} s each"
fi
exit $status
