#!/usr/bin/env bash
# The README's training path on the fixture videos, as a new user runs it:
# ego4d-split (fho_main.json) -> extract-frames -> train tiny OPT and tiny T5 (a few steps,
# eval and save every 2, keep 2) -> caption --model <checkpoint>. Relative paths
# throughout, from a scratch directory.
set -u
BIN=$1
FIX=$2
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
mkdir -p ego4d/v1/full_scale ego4d/v1/annotations
# four "videos" on disk (the fixture files under Ego4D's uid names), a fifth listed but absent
cp "$FIX/media/video1_h264_320x240_30fps_12s.mp4" ego4d/v1/full_scale/uid-a.mp4
cp "$FIX/media/video2_vp9_180x320_25fps_6s.webm" ego4d/v1/full_scale/uid-b.mp4
cp "$FIX/media/video3_mjpeg_97x61_15fps_3s.avi" ego4d/v1/full_scale/uid-c.mp4
cp "$FIX/media/video1_h264_320x240_30fps_12s.mp4" ego4d/v1/full_scale/uid-d.mp4
act() { printf '{"narration_text": "%s", "narration_timestamp_sec": %s, "is_rejected": false, "is_valid_action": true}' "$1" "$2"; }
vid() { printf '{"video_uid": "%s", "video_metadata": {"duration_sec": %s}, "annotated_intervals": [{"narrated_actions": [%s]}]}' "$1" "$2" "$3"; }
{
  printf '{"videos": ['
  vid uid-a 12 "$(act '#C C picks up a knife' 3), $(act '#C C cuts an onion' 9)"
  printf ', '
  vid uid-b 6 "$(act '#C C opens the door' 2), $(act '#O man X walks' 4)"
  printf ', '
  vid uid-c 3 "$(act '#c c sits down' 1.5)"
  printf ', '
  vid uid-d 12 "$(act '#C C washes a cup' 6), $(act '#C C dries the cup' 11)"
  printf ', '
  vid uid-e 12 "$(act '#C C is not on disk' 6)"
  printf ']}\n'
} >ego4d/v1/annotations/fho_main.json

out=$("$BIN" ego4d-split --fho-main ego4d/v1/annotations/fho_main.json --video-dir ego4d/v1/full_scale \
  --out-dir data 2>&1)
check "$?" 0 "ego4d-split: $out"
check "$(cat data/train.jsonl data/val.jsonl | wc -l | tr -d ' ')" 6 "six kept actions in the two lists"
check "$(grep -c uid-e data/*.jsonl | awk -F: '{s+=$2} END {print s}')" 0 "the missing video is dropped"
check "$(grep -c 'The camera wearer' data/train.jsonl)" "$(wc -l <data/train.jsonl | tr -d ' ')" "cleaned text"

for split in train val; do
  out=$("$BIN" extract-frames --model "$FIX/models/videoblip-opt-tiny" --data data/$split.jsonl \
    --out frames/$split --frames 2 --workers 2 --quiet 2>&1)
  check "$?" 0 "extract-frames $split: $out"
done
check "$(ls frames/train/clips | wc -l | tr -d ' ')" "$(wc -l <data/train.jsonl | tr -d ' ')" "one clip file per clip"
out=$("$BIN" extract-frames --model "$FIX/models/videoblip-opt-tiny" --data data/train.jsonl \
  --out frames/train --frames 2 --quiet 2>&1)
check "$(printf '%s' "$out" | grep -c ': 0 extracted')" 1 "a second run skips finished clips: $out"

for m in opt:videoblip-opt-tiny t5:videoblip-flant5-tiny; do
  name=${m%%:*}
  model=$FIX/models/${m#*:}
  out=$("$BIN" train --model "$model" --data frames/train/frames.jsonl --val frames/val/frames.jsonl \
    --out my-videoblip-$name --batch 2 --grad-accum 1 --max-steps 6 --warmup-steps 1 --lr 1e-3 \
    --logging-steps 1 --eval-steps 2 --save-steps 2 --save-total-limit 2 --threads 2 --quiet 2>&1)
  check "$?" 0 "train $name: $out"
  check "$(printf '%s\n' "$out" | grep -c '"eval_loss"')" 3 "$name: evaluated at steps 2, 4, 6"
  # the two newest are kept, unless the best (strictly lowest eval_loss, the older on a tie)
  # is checkpoint-2: then it and the newest (the Trainer's rotation). With dropout on (the
  # default) the validation loss need not fall at every evaluation.
  best=$(printf '%s\n' "$out" | awk -F'[:,}]' '/"eval_loss"/ { if (!n++ || $6 + 0 < min) { min = $6 + 0; step = $2 + 0 } } END { print step }')
  want="my-videoblip-$name/checkpoint-4 my-videoblip-$name/checkpoint-6 "
  [ "$best" = 2 ] && want="my-videoblip-$name/checkpoint-2 my-videoblip-$name/checkpoint-6 "
  check "$(ls -d my-videoblip-$name/checkpoint-* | tr '\n' ' ')" "$want" \
    "$name: the newest checkpoints kept, the best (checkpoint-$best) among them"
  cap=$("$BIN" caption --model my-videoblip-$name/checkpoint-6 --frames 2 --beams 1 --max-new-tokens 4 \
    --threads 2 ego4d/v1/full_scale/uid-a.mp4 2>&1)
  check "$?" 0 "caption --model my-videoblip-$name/checkpoint-6: $cap"
done

# --model takes a .gguf (vblip convert) like every command; --out's parents are made
out=$("$BIN" convert --model "$FIX/models/videoblip-opt-tiny" --out tiny.gguf 2>&1)
check "$?" 0 "convert: $out"
out=$("$BIN" train --model tiny.gguf --data frames/train/frames.jsonl --out runs/gguf/out --batch 2 \
  --max-steps 2 --warmup-steps 0 --save-steps 2 --threads 2 --quiet 2>&1)
check "$?" 0 "train --model tiny.gguf: $out"
check "$(ls runs/gguf/out/checkpoint-2/model.safetensors 2>/dev/null | wc -l | tr -d ' ')" 1 "checkpoint from a .gguf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
