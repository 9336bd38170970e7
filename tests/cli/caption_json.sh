#!/usr/bin/env bash
# caption's rough edges (issue 15): --json writes an object with "error" for a video that
# failed (the others still answered, exit status 1); with --start the frames' "index" counts
# from the video's first frame (the fast and the full decode agree); --sample with beams
# fails on a small candidate set with a hint that names --beams 1, and --beams 1 samples.
set -u
BIN=$1
FIX=$2
M=$FIX/models/videoblip-opt-tiny
V1=$FIX/media/video1_h264_320x240_30fps_12s.mp4
V2=$FIX/media/video2_vp9_180x320_25fps_6s.webm
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }
A=(-m "$M" --threads 2 --beams 1 -n 3 --quiet)
cap() { "$BIN" caption "${A[@]}" "$@"; }

printf 'not a video' >"$TMP/bad.mp4"
cap --json "$V1" "$TMP/bad.mp4" "$V2" >"$TMP/out.jsonl" 2>"$TMP/err"
check $? 1 "exit status with a failed video"
check "$(wc -l <"$TMP/out.jsonl")" 3 "one line per video"
check "$(jq -c 'has("text")' "$TMP/out.jsonl" | paste -sd,)" "true,false,true" "texts, and none for the failure"
check "$(jq -r 'select(.video == "'"$TMP/bad.mp4"'") | .error' "$TMP/out.jsonl" | grep -c 'bad.mp4: cannot open')" 1 \
  "the failed video's error names it"
check "$(grep -c 'bad.mp4' "$TMP/err")" 1 "the error on stderr too"

# frames of the window [4 s, 8 s) of a 30 fps video: 120 frames come before it
for full in 0 1; do
  got=$(VBLIP_VIDEO_FULL_DECODE=$full cap --json --start 4 --end 8 --frames 4 "$V1" | jq -c '[.frames[] | .index]')
  check "$got" "[120,159,199,239]" "absolute frame indices (full decode $full)"
done
check "$(cap --json --start 4 --end 8 --frames 4 "$V1" | jq -c '.frames[0].time')" "4" "and their times"
check "$(cap --json --frames 2 "$V1" | jq -c '[.frames[] | .index]')" "[0,359]" "no window: the same as before"

# --sample: beam sampling by default; the hint names --beams 1
"$BIN" caption -m "$M" --threads 2 --quiet --sample --top-k 1 -n 3 "$V1" >/dev/null 2>"$TMP/err"
check $? 1 "beam sampling over too few candidates fails"
check "$(grep -c -- '--beams 1' "$TMP/err")" 1 "the hint names --beams 1: $(cat "$TMP/err")"
"$BIN" caption -m "$M" --threads 2 --quiet --sample --top-k 1 --beams 1 -n 3 "$V1" >/dev/null 2>&1
check $? 0 "--sample --beams 1 samples"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
