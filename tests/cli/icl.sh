#!/usr/bin/env bash
# In-context learning from the command line: caption --interleaved and score against the
# transformers reference (tests/fixtures/icl), chat with several videos against caption,
# EILEV's defaults for an EILEV checkpoint, and the usage errors.
set -u
BIN=$1
FIX=$2
OPT=$FIX/models/videoblip-opt-tiny
T5=$FIX/models/videoblip-flant5-tiny
V=$FIX/media/video1_h264_320x240_30fps_12s.mp4
IMG=$FIX/media/image_rgb_203x150.png
REF=$FIX/icl/expected.json
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }
# the reference frames: uniform over the whole video (interleaved models default to 8 s)
EXACT=(--dtype f32 --threads 2 --end 1000)

# caption --interleaved: the reference's tokens (test_icl checks every case through the library)
for run in "opt two_videos greedy_12" "opt video_image_video eilev_beam5_12" "t5 video_image_video eilev_beam5_12"; do
  read -r kind c g <<<"$run"
  model=$OPT
  [ "$kind" = t5 ] && model=$T5
  prompt=$(jq -r ".models.$kind.cases.$c.prompt_with_placeholders" "$REF")
  mapfile -t vids < <(jq -r ".models.$kind.cases.$c.videos[]" "$REF" | sed "s|^video1\$|$V|; s|^image\$|$IMG|")
  flags=(--beams 0)
  [ "$g" = eilev_beam5_12 ] && flags=(--beams 5 --length-penalty -1)
  got=$("$BIN" caption -m "$model" "${EXACT[@]}" --interleaved --prompt "$prompt" "${flags[@]}" -n 12 --json \
    "${vids[@]}" | jq -c .token_ids)
  check "$got" "$(jq -c ".models.$kind.cases.$c.generation.$g.token_ids" "$REF")" "$kind $c $g"
done
# --json lists each video's frames
json=$("$BIN" caption -m "$OPT" "${EXACT[@]}" --interleaved --prompt "<video> A. <video> B?" --beams 0 -n 2 --json "$V" "$IMG")
check "$(jq -c '[.videos[] | .frames | length]' <<<"$json")" "[8,1]" "frames per video"
check "$(jq -r '.videos[1].video' <<<"$json")" "$IMG" "video names"

# score: the reference's mean log-likelihoods, best first
for c in video_image_video; do
  prompt=$(jq -r ".models.opt.cases.$c.prompt_with_placeholders" "$REF")
  mapfile -t vids < <(jq -r ".models.opt.cases.$c.videos[]" "$REF" | sed "s|^video1\$|$V|; s|^image\$|$IMG|")
  mapfile -t cands < <(jq -r '.candidates[]' "$REF")
  args=()
  for x in "${cands[@]}"; do args+=(--candidate "$x"); done
  out=$("$BIN" score -m "$OPT" "${EXACT[@]}" --interleaved --prompt "$prompt" "${args[@]}" --json "${vids[@]}")
  want=$(jq -c "[.models.opt.cases.$c.scores | sort_by(-.mean_log_likelihood)[] | .candidate]" "$REF")
  check "$(jq -c '[.scores[].candidate]' <<<"$out")" "$want" "score order $c"
  close=$(jq -n --argjson got "$out" --slurpfile ref "$REF" --arg c "$c" '
    [$ref[0].models.opt.cases[$c].scores[] as $r | $got.scores[] | select(.candidate == $r.candidate)
     | ((.mean_log_likelihood - $r.mean_log_likelihood) | fabs) <= 1e-5 * ($r.mean_log_likelihood | fabs)
       and .token_ids == $r.token_ids] | all')
  check "$close" true "score values and tokens $c"
done
# text output (score<TAB>candidate, best first) and one video at a time without --interleaved, T5
out=$("$BIN" score -m "$T5" "${EXACT[@]}" --prompt "What is it?" -c "a dog" -c "kitchen" --frames 2 "$V" "$IMG")
check "$(wc -l <<<"$out")" 4 "two videos, two candidates each"
check "$(cut -f1 <<<"$out" | sort -u | wc -l)" 2 "lines labelled by video"
check "$(head -2 <<<"$out" | cut -f2 | sort -gr | head -1)" "$(head -1 <<<"$out" | cut -f2)" "best first"

# chat with several videos: each answer is caption --interleaved's for the conversation so far
a=$(printf '/add He is cooking.\n/video %s\n%s\n%s\n' "$IMG" "What is it?" "Why?" |
  "$BIN" chat -m "$OPT" --layout interleaved --threads 2 --beams 0 -n 8 "$V" "$V" 2>"$TMP/err")
check "$?" 0 "chat exit status ($(cat "$TMP/err"))"
a1=$(sed -n 1p <<<"$a")
a2=$(sed -n 2p <<<"$a")
cap() { "$BIN" caption -m "$OPT" --layout interleaved --threads 2 --beams 0 -n 8 --interleaved --json "$@" | jq -r .text; }
check "$a1" "$(cap --prompt "<video><video> He is cooking. <video> What is it?" "$V" "$V" "$IMG")" "chat turn 1"
check "$a2" "$(cap --prompt "<video><video> He is cooking. <video> What is it? $a1 Why?" "$V" "$V" "$IMG")" "chat turn 2"

# an EILEV checkpoint (its config names it) picks the interleaved layout and EILEV's defaults
mkdir "$TMP/eilev"
for f in "$OPT"/*; do [ "$(basename "$f")" = config.json ] || ln -s "$(realpath "$f")" "$TMP/eilev/"; done
jq '._name_or_path = "kpyu/eilev-blip2-opt-2.7b"' "$OPT/config.json" >"$TMP/eilev/config.json"
d=$("$BIN" caption -m "$TMP/eilev" --threads 2 --interleaved --prompt "<video> What?" --json "$V")
e=$("$BIN" caption -m "$TMP/eilev" --threads 2 --interleaved --prompt "<video> What?" --json \
  --beams 5 --max-new-tokens 32 --length-penalty -1 --end 8 "$V")
check "$(jq -c .token_ids <<<"$d")" "$(jq -c .token_ids <<<"$e")" "EILEV defaults = 5 beams, 32 tokens, -1, 8 s"
check "$(jq '[.frames[].time] | max < 8' <<<"$d")" true "frames from the first 8 s"
b=$("$BIN" caption -m "$TMP/eilev" --threads 2 --layout blip2 --beams 0 -n 4 --json "$V" | jq -c .token_ids)
c=$("$BIN" caption -m "$OPT" --threads 2 --beams 0 -n 4 --json "$V" | jq -c .token_ids)
check "$b" "$c" "--layout blip2 overrides the checkpoint"

# usage errors (exit 2) and a bad candidate
"$BIN" caption -m "$OPT" --interleaved --prompt "<video> x" "$V" "$V" >/dev/null 2>&1
check "$?" 2 "placeholders and VIDEOs differ"
"$BIN" caption -m "$OPT" --interleaved --layout blip2 --prompt "<video> x" "$V" >/dev/null 2>&1
check "$?" 2 "--interleaved with --layout blip2"
"$BIN" score -m "$OPT" --prompt x "$V" >/dev/null 2>&1
check "$?" 2 "score without candidates"
"$BIN" score -m "$OPT" --prompt x -c "  " "$V" >/dev/null 2>&1
check "$?" 2 "blank candidate"
"$BIN" chat -m "$OPT" "$V" "$V" </dev/null >/dev/null 2>&1
check "$?" 2 "several videos with a BLIP-2 model"
"$BIN" caption -m "$OPT" --layout sideways "$V" >/dev/null 2>&1
check "$?" 2 "unknown layout"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
