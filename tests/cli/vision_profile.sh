#!/usr/bin/env bash
# VBLIP_PROFILE=1 (issue 22): the vision encoder prints its per-op time breakdown on stderr,
# one block per call with every class, the classes summing to the total; the numbers it
# computes are the same with and without the switch, for bf16, int8 and with AMX off.
set -u
BIN=$1
FIX=$2
M=$FIX/models/videoblip-opt-tiny
V=$FIX/media/video1_h264_320x240_30fps_12s.mp4
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }
CLASSES="patch embedding|layernorm|qkv product|proj product|fc1 product|fc2 product|activation prep|output stage|gelu|thread idle|attention pack|attention products|attention softmax|attention \(other\)|other"

for conf in "bf16" "int8" "int8 noamx" "f32"; do
  set -- $conf
  dt=$1
  env=()
  [ "${2:-}" = noamx ] && env=(VBLIP_NO_AMX=1)
  opts=(--frames 3 --threads 2)
  if [ "$dt" = int8 ]; then opts+=(--dtype bf16 --vision-dtype int8); else opts+=(--dtype "$dt"); fi
  env "${env[@]}" "$BIN" embed -m "$M" -o "$TMP/plain.st" "${opts[@]}" "$V" 2>"$TMP/plain.err"
  check $? 0 "$conf: embed without the profile"
  check "$(grep -c '^profile:' "$TMP/plain.err")" 0 "$conf: no profile unless asked"
  env "${env[@]}" VBLIP_PROFILE=1 "$BIN" embed -m "$M" -o "$TMP/prof.st" "${opts[@]}" "$V" 2>"$TMP/prof.err"
  check $? 0 "$conf: embed with the profile"
  check "$(grep -c '^profile: vision encoder, 3 frames' "$TMP/prof.err")" 1 "$conf: one block for the call"
  check "$(grep -cE "^profile:   ($CLASSES) +[0-9.]+ ms +[0-9.]+%$" "$TMP/prof.err")" 15 "$conf: every class"
  # the classes sum to the total (within the printed rounding)
  check "$(awk '/^profile: vision encoder/ { t = $(NF - 5); s = $NF; sub(/\)/, "", s) }
               END { d = t - s; if (d < 0) d = -d; print (t > 0 && d <= 0.2 + 1e-3 * t) ? "ok" : t " vs " s }' \
    "$TMP/prof.err")" ok "$conf: classes sum to the total"
  # the products' classes are charged (tiny, but never exactly zero)
  check "$(awk '/^profile:   (qkv|fc1) product/ { if ($(NF - 2) + 0 > 0) n++ } END { print n + 0 }' "$TMP/prof.err")" 2 \
    "$conf: product time charged"
  check "$(cmp -s "$TMP/plain.st" "$TMP/prof.st" && echo same)" same "$conf: same tensors with the profile"
done

echo "vision_profile: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
