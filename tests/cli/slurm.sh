#!/usr/bin/env bash
# A real scheduler: a single-node Slurm cluster on this machine (munged, slurmctld and slurmd
# on localhost with a generated slurm.conf, as docs/datasets.md describes) runs
# examples/slurm/caption-array.sbatch as a 3-task array over the fixture videos; the merged
# parts must equal a single-process run byte for byte (the same texts, every input once).
# Debian's slurm-wlm and munge come from scripts/install-deps.sh (installed here if missing).
# When the daemons do not start, the test fails and prints their logs.
set -u
BIN=$(realpath "$1")
FIX=$(realpath "$2")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SBATCH_SCRIPT=$ROOT/examples/slurm/caption-array.sbatch
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN JOB_COMPLETION_INDEX
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

fail() {
  echo "FAIL: $*"
  for f in "$T"/munge/log "$T"/slurmctld.log "$T"/slurmd.log "$T"/logs/*; do
    [ -f "$f" ] && { echo "---- $f"; tail -n 40 "$f"; }
  done
  exit 1
}

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge (as scripts/install-deps.sh does)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends slurm-wlm munge ||
    { echo "FAIL: cannot install slurm-wlm and munge"; exit 1; }
fi

T=$(mktemp -d /tmp/vblip-slurm.XXXXXX)
chmod 755 "$T"
stop() {
  for pidfile in "$T/slurmd.pid" "$T/slurmctld.pid" "$T/munge/pid"; do
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  sleep 1
  rm -rf "$T"
}
trap stop EXIT

# munge with its own key, socket and files, so that it touches nothing of the system's
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/logs" "$T/out"
chmod 711 "$T/munge"
head -c 1024 /dev/urandom >"$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged --force --socket="$T/munge/sock" --key-file="$T/munge/munge.key" --log-file="$T/munge/log" \
  --pid-file="$T/munge/pid" --seed-file="$T/munge/seed" || fail "munged did not start"
munge -S "$T/munge/sock" -n | unmunge -S "$T/munge/sock" | grep -q Success || fail "munge does not work"

# two free TCP ports for the daemons (another test cluster may run beside this one)
read -r PORT1 PORT2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
HOST=$(hostname -s)
cat >"$T/slurm.conf" <<CONF
ClusterName=vblip-test
SlurmctldHost=$HOST
SlurmctldPort=$PORT1
SlurmdPort=$PORT2
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SlurmUser=root
SlurmdUser=root
SelectType=select/cons_tres
ReturnToService=2
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
NodeName=$HOST CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
idle=0
for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then idle=1; break; fi
  sleep 0.5
done
[ "$idle" = 1 ] || fail "the node did not become idle: $(sinfo 2>&1)"

# the inputs: every fixture medium, a clip window with an id, one that fails
cat >"$T/list.txt" <<LIST
$FIX/media/video1_h264_320x240_30fps_12s.mp4
$FIX/media/video2_vp9_180x320_25fps_6s.webm
{"video": "$FIX/media/video1_h264_320x240_30fps_12s.mp4", "start": 3, "end": 9, "id": "clip-3-9"}
$FIX/media/video3_mjpeg_97x61_15fps_3s.avi
$FIX/media/image_rgb_203x150.png
{"video": "$T/missing.mp4", "id": "missing"}
{"video": "$FIX/media/video2_vp9_180x320_25fps_6s.webm", "prompt": "Question: What is it? Answer:"}
LIST
MODEL=$FIX/models/videoblip-opt-tiny
ARGS="--dtype f32 --beams 0 -n 6"

# the array, as a user submits it (the script's defaults overridden on the command line)
if ! (cd "$T" && VBLIP=$BIN MODEL=$MODEL LIST=$T/list.txt OUT_DIR=$T/out VBLIP_ARGS=$ARGS \
  timeout 300 sbatch --wait --array=0-2 --cpus-per-task=1 --output="$T/logs/task-%a.log" \
  "$SBATCH_SCRIPT" >"$T/logs/sbatch.out" 2>&1); then
  fail "the array job failed: $(cat "$T/logs/sbatch.out")"
fi
parts=$(ls "$T"/out/part-*.jsonl 2>/dev/null | wc -l)
[ "$parts" = 3 ] || fail "3 part files expected, found $parts"
jq -r '"\(.line)\t\(tojson)"' "$T"/out/part-*.jsonl | sort -n -k1,1 | cut -f2- >"$T/merged.jsonl"

# the single-process run
# shellcheck disable=SC2086
"$BIN" caption --model "$MODEL" --files-from "$T/list.txt" --prompt "" --threads 1 $ARGS \
  >"$T/single.jsonl" 2>/dev/null || fail "the single-process run failed"
[ "$(wc -l <"$T/single.jsonl")" = 7 ] || fail "the single run gave $(wc -l <"$T/single.jsonl") lines, not 7"
[ "$(jq -r 'select(.text) | .line' "$T/single.jsonl" | wc -l)" = 6 ] || fail "6 inputs should have a text"
cmp -s "$T/merged.jsonl" "$T/single.jsonl" || {
  diff "$T/merged.jsonl" "$T/single.jsonl" | head -20
  fail "the merged array output differs from the single-process run"
}
echo "slurm: a 3-task array over $(wc -l <"$T/list.txt") inputs equals the single-process run"
echo "1 passed, 0 failed"
