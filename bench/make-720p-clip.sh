#!/bin/sh
# A 1280x720 H.264 test clip for `vblip-bench --video` (Debian's ffmpeg, libx264):
#   bench/make-720p-clip.sh OUT.mp4 [SECONDS]    (default 10 seconds, 30 fps, yuv420p)
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 OUT.mp4 [SECONDS]" >&2
  exit 2
fi
out=$1
seconds=${2:-10}
exec ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=$seconds" \
  -c:v libx264 -preset medium -pix_fmt yuv420p "$out"
