#!/usr/bin/env bash
# caption --files-from end to end (docs/datasets.md): one result per input in input order
# with ids echoed and failures as "error" lines, the same texts as captioning the videos one
# by one, shards (flag and scheduler variables) whose merge is the single run, resuming after
# a torn line, prefetching that changes nothing, and the usage errors.
set -u
# a test run inside a scheduler's task must not shard its own runs
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN JOB_COMPLETION_INDEX
BIN=$1
FIX=$2
M=$FIX/models/videoblip-opt-tiny
V1=$FIX/media/video1_h264_320x240_30fps_12s.mp4
V2=$FIX/media/video2_vp9_180x320_25fps_6s.webm
V3=$FIX/media/video3_mjpeg_97x61_15fps_3s.avi
IMG=$FIX/media/image_rgb_203x150.png
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }
A=(-m "$M" --dtype f32 --threads 2 --beams 0 -n 4)
cap() { "$BIN" caption "${A[@]}" "$@"; }

cat >"$TMP/list" <<LIST
$V1
{"video": "$V2", "id": "two", "prompt": "Question: What is it? Answer:"}

{"video": "$V1", "start": 2, "end": 5, "id": 3}
$TMP/missing.mp4
{"video": 7}
$V3
{"video": "$IMG", "id": "img"}
LIST
cap --files-from "$TMP/list" >"$TMP/one.jsonl" 2>"$TMP/err"
check $? 0 "exit status with failed inputs"
check "$(wc -l <"$TMP/one.jsonl")" 7 "one line per input (the blank one skipped)"
check "$(jq -c '.line' "$TMP/one.jsonl" | paste -sd,)" "1,2,4,5,6,7,8" "input order"
check "$(jq -c '.id' "$TMP/one.jsonl" | paste -sd,)" 'null,"two",3,null,null,null,"img"' "ids echoed"
check "$(jq -c 'has("text")' "$TMP/one.jsonl" | paste -sd,)" "true,true,true,false,false,true,true" "texts"
check "$(jq -r 'select(.line == 5) | .error' "$TMP/one.jsonl")" "$TMP/missing.mp4: No such file or directory" "a missing video's error"
check "$(jq -r 'select(.line == 6) | .error' "$TMP/one.jsonl")" 'line 6: "video" must be a non-empty string' "a bad line's error"
check "$(jq -c 'select(.line == 4) | [.start, .end]' "$TMP/one.jsonl")" "[2,5]" "the window echoed"
grep -q "2 of 7 inputs failed" "$TMP/err"
check $? 0 "a summary of the failures on stderr"

# the same texts as captioning each video on its own
want=$(cap --json "$V1" | jq -r .text)
check "$(jq -r 'select(.line == 1) | .text' "$TMP/one.jsonl")" "$want" "text of a path line"
want=$(cap --json --prompt "Question: What is it? Answer:" "$V2" | jq -r .text)
check "$(jq -r 'select(.id == "two") | .text' "$TMP/one.jsonl")" "$want" "a line's own prompt"
want=$(cap --json --start 2 --end 5 "$V1" | jq -r .text)
check "$(jq -r 'select(.id == 3) | .text' "$TMP/one.jsonl")" "$want" "a line's own window"

# stdin, and prefetching off or deep: the same bytes
cap --files-from - --prefetch 0 <"$TMP/list" >"$TMP/p0.jsonl" 2>/dev/null
cmp -s "$TMP/p0.jsonl" "$TMP/one.jsonl"
check $? 0 "stdin without prefetch"
cap --files-from "$TMP/list" --prefetch 5 -o "$TMP/p5.jsonl" 2>/dev/null
cmp -s "$TMP/p5.jsonl" "$TMP/one.jsonl"
check $? 0 "--output with prefetch 5"

# shards: disjoint, and merged by line number they are the single run
for k in 0 1 2; do cap --files-from "$TMP/list" --shard $k/3 -o "$TMP/s$k.jsonl" 2>/dev/null; done
check "$(cat "$TMP"/s?.jsonl | jq -c .line | sort -n | paste -sd,)" "1,2,4,5,6,7,8" "shards cover every line once"
check "$(jq -c .line "$TMP/s1.jsonl" | paste -sd,)" "2,5,8" "shard 1/3 by line number"
cat "$TMP"/s?.jsonl | jq -c -s 'sort_by(.line)[]' >"$TMP/merged.jsonl"
cmp -s "$TMP/merged.jsonl" "$TMP/one.jsonl"
check $? 0 "merged shards equal the single run"
got=$(SLURM_ARRAY_TASK_ID=11 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_COUNT=3 cap --files-from "$TMP/list" 2>/dev/null | jq -c .line | paste -sd,)
check "$got" "2,5,8" "a Slurm array task"
got=$(JOB_COMPLETION_INDEX=2 cap --files-from "$TMP/list" --shards 3 2>/dev/null | jq -c .line | paste -sd,)
check "$got" "6" "an Indexed Job's completion index (lines 3 and 9 blank or absent)"
JOB_COMPLETION_INDEX=0 cap --files-from "$TMP/list" >/dev/null 2>&1
check $? 2 "JOB_COMPLETION_INDEX without --shards"

# GNU parallel, as docs/datasets.md gives it: one process per shard, and blocks of stdin
# (where "line" counts within each block, so the inputs carry ids)
if command -v parallel >/dev/null; then
  export BIN M
  seq 0 2 | parallel -j 3 "\"\$BIN\" caption -m \"\$M\" --dtype f32 --threads 1 --beams 0 -n 4 --files-from $TMP/list --shard {}/3 -o $TMP/par{}.jsonl --resume" 2>/dev/null
  check $? 0 "parallel over three shards"
  cat "$TMP"/par?.jsonl | jq -c -s 'sort_by(.line)[]' >"$TMP/pmerged.jsonl"
  cmp -s "$TMP/pmerged.jsonl" "$TMP/one.jsonl"
  check $? 0 "parallel's merged shards equal the single run"
  grep -v '^$' "$TMP/list" | grep '"id"' >"$TMP/ids.jsonl"
  cap --files-from "$TMP/ids.jsonl" 2>/dev/null | jq -c 'del(.line)' >"$TMP/ids-one.jsonl"
  parallel --pipe -N 2 --keep-order "\"\$BIN\" caption -m \"\$M\" --dtype f32 --threads 2 --beams 0 -n 4 --files-from -" \
    <"$TMP/ids.jsonl" 2>/dev/null | jq -c 'del(.line)' >"$TMP/piped.jsonl"
  check "$(wc -l <"$TMP/piped.jsonl")" 3 "parallel --pipe: a result per input"
  cmp -s "$TMP/piped.jsonl" "$TMP/ids-one.jsonl"
  check $? 0 "parallel --pipe gives the single run's results in order"
else
  fail=$((fail + 1))
  echo "FAIL: GNU parallel is not installed (scripts/install-deps.sh installs it)"
fi

# resume: a run cut short (a torn last line) finishes with the same bytes
head -c "$(($(head -3 "$TMP/one.jsonl" | wc -c) + 20))" "$TMP/one.jsonl" >"$TMP/r.jsonl"
cap --files-from "$TMP/list" -o "$TMP/r.jsonl" --resume 2>"$TMP/err"
check $? 0 "resume"
cmp -s "$TMP/r.jsonl" "$TMP/one.jsonl"
check $? 0 "resumed output equals the single run"
grep -q "dropping an unfinished last line" "$TMP/err"
check $? 0 "the torn line is reported"
cap --files-from "$TMP/list" -o "$TMP/r.jsonl" --resume 2>/dev/null
check "$(stat -c %s "$TMP/r.jsonl")" "$(stat -c %s "$TMP/one.jsonl")" "a finished run resumes to nothing new"

# usage errors: exit 2 with one line
for bad in "--files-from $TMP/list $V1" "--files-from $TMP/list --interleaved" "--resume --files-from $TMP/list" \
  "--shard 3/3 --files-from $TMP/list" "--shard 1/2 --shards 2 --files-from $TMP/list" "--output x.jsonl $V1" ""; do
  # shellcheck disable=SC2086
  cap $bad >/dev/null 2>"$TMP/err"
  check "$?/$(wc -l <"$TMP/err")" "2/1" "usage error: caption $bad"
done
cap --files-from "$TMP/nolist" >/dev/null 2>"$TMP/err"
check "$?" 1 "a missing list"
grep -q "nolist" "$TMP/err"
check $? 0 "the missing list is named"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
