#!/usr/bin/env bash
# vblip chat through a pipe: one answer per line, equal to vblip caption's answer for
# the conversation prompt the demo builds (earlier turns + new message, joined with spaces).
set -u
BIN=$1
FIX=$2
M=$FIX/models/videoblip-opt-tiny
V=$FIX/media/video1_h264_320x240_30fps_12s.mp4
Q1="What is the camera wearer doing?"
Q2="Question: What is the camera wearer doing? Answer:"
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }
cap() { "$BIN" caption --model "$M" --threads 2 --json "$@" "$V" | jq -r .text | tr '\r\n' '  ' | sed 's/ $//'; }

# two turns with the flags' settings; a third after /set, then /reset
out=$(printf '%s\n\n%s\n/set beams 0\n/set max-new-tokens 6\n%s\n/reset\n%s\n' "$Q1" "$Q2" "$Q1" "$Q2" |
  "$BIN" chat --model "$M" --threads 2 --beams 2 --max-new-tokens 8 "$V" 2>/tmp/vblip-chat-err.$$)
rc=$?
check "$rc" 0 "exit status ($(cat /tmp/vblip-chat-err.$$))"
check "$(printf '%s\n' "$out" | wc -l)" 4 "one line per message"
a1=$(printf '%s\n' "$out" | sed -n 1p)
a2=$(printf '%s\n' "$out" | sed -n 2p)
a3=$(printf '%s\n' "$out" | sed -n 3p)
a4=$(printf '%s\n' "$out" | sed -n 4p)
check "$a1" "$(cap --beams 2 --max-new-tokens 8 --prompt "$Q1")" "turn 1"
check "$a2" "$(cap --beams 2 --max-new-tokens 8 --prompt "$Q1 $a1 $Q2")" "turn 2 (with turn 1 as context)"
check "$a3" "$(cap --beams 0 --max-new-tokens 6 --prompt "$Q1 $a1 $Q2 $a2 $Q1")" "turn 3 after /set"
check "$a4" "$(cap --beams 0 --max-new-tokens 6 --prompt "$Q2")" "after /reset"

# bad commands and settings: reported on stderr, exit status 1, stdout untouched
out=$(printf '/set beams lots\n/frobnicate\n' | "$BIN" chat --model "$M" --threads 2 "$V" 2>/tmp/vblip-chat-err.$$)
check "$?" 1 "bad command exit status"
check "$out" "" "nothing on stdout"
grep -q "beams needs" /tmp/vblip-chat-err.$$ && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: /set error message"; }
# unreadable video
"$BIN" chat --model "$M" /nonexistent.mp4 </dev/null >/dev/null 2>&1
check "$?" 1 "missing video"
"$BIN" chat --model "$M" --beams x "$V" </dev/null >/dev/null 2>&1
check "$?" 2 "usage error"
rm -f /tmp/vblip-chat-err.$$
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
