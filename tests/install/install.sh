#!/usr/bin/env bash
# cmake --install into a temporary prefix, then a small program built against the
# installed pkg-config file (shared and static libvblip) captions a fixture video as
# `vblip caption` does; the core links neither libcurl nor libmicrohttpd.
# usage: install.sh BUILD_DIR SOURCE_DIR C_COMPILER "EXTRA_CFLAGS" FIXTURES
# A cross build (tests/CMakeLists.txt) sets VBLIP_TEST_EMULATOR (what runs the programs,
# e.g. qemu-aarch64 -L SYSROOT), VBLIP_TEST_SYSROOT and VBLIP_TEST_PKG_CONFIG_LIBDIR (its
# .pc files): the prefix then lies inside the sysroot, as an install on the target
# would, and the programs build against it.
set -u
BUILD=$1 SRC=$2 CC=$3 EXTRA=$4 FIX=$5
M=$FIX/models/videoblip-opt-tiny
V=$FIX/media/video1_h264_320x240_30fps_12s.mp4
RUN=${VBLIP_TEST_EMULATOR:-}
tmpbase=${TMPDIR:-/tmp}
if [ -n "${VBLIP_TEST_SYSROOT:-}" ]; then
  export PKG_CONFIG_SYSROOT_DIR=$VBLIP_TEST_SYSROOT
  export PKG_CONFIG_LIBDIR=${VBLIP_TEST_PKG_CONFIG_LIBDIR:-}
  EXTRA="$EXTRA --sysroot=$VBLIP_TEST_SYSROOT"
  tmpbase=$VBLIP_TEST_SYSROOT/tmp # pkg-config leaves paths there as they are
  mkdir -p "$tmpbase"
fi
tmp=$(mktemp -d "$tmpbase/vblip-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if [ "$1" = "$2" ]; then ok; else bad "$3: got '$1', want '$2'"; fi; }

P=$tmp/prefix
cmake --install "$BUILD" --prefix "$P" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; bad "cmake --install"; }
libdir=$(dirname "$(find "$P" -name vblip.pc | head -1)")/..
for f in include/vblip.h include/vblip_hub.h include/vblip_server.h include/vblip_train.h bin/vblip; do
  [ -e "$P/$f" ] && ok || bad "$f not installed"
done
for f in libvblip.a libvblip.so libvblip_hub.a libvblip_server.a libvblip_train.a pkgconfig/vblip.pc \
  pkgconfig/vblip-static.pc pkgconfig/vblip-hub.pc pkgconfig/vblip-server.pc pkgconfig/vblip-train.pc; do
  [ -e "$libdir/$f" ] && ok || bad "lib/$f not installed"
done

export PKG_CONFIG_PATH=$libdir/pkgconfig
version=$(sed -n 's/^#define VBLIP_VERSION "\(.*\)"/\1/p' "$SRC/include/vblip.h")
check "$(pkg-config --modversion vblip)" "$version" "pkg-config version"
check "$($RUN "$P/bin/vblip" --version | sed -n 1p)" "vblip $version" "installed vblip --version (its first line; the second is the cpu line)"
case " $(pkg-config --static --libs vblip) $(pkg-config --libs vblip-static) " in
*curl* | *microhttpd*) bad "the core's link flags name libcurl or libmicrohttpd" ;;
*) ok ;;
esac

want=$($RUN "$P/bin/vblip" caption --dtype f32 --beams 1 -n 8 -t 2 -m "$M" "$V" 2>/dev/null)
[ -n "$want" ] && ok || bad "installed vblip caption printed nothing"

# shared: -lvblip from pkg-config; the program finds libvblip.so through its rpath
# shellcheck disable=SC2046,SC2086
if $CC $EXTRA -o "$tmp/caption_shared" "$SRC/tests/install/caption_example.c" \
  $(pkg-config --cflags --libs vblip) -Wl,-rpath,"$libdir" 2>"$tmp/cc.log"; then
  ok
  needed=$(readelf -d "$tmp/caption_shared" | grep NEEDED)
  case "$needed" in *libvblip.so*) ok ;; *) bad "caption_shared does not use libvblip.so: $needed" ;; esac
  needed=$(readelf -d "$libdir/libvblip.so" | grep NEEDED)
  case "$needed" in *curl* | *microhttpd*) bad "libvblip.so needs $needed" ;; *) ok ;; esac
  check "$(OMP_NUM_THREADS=2 $RUN "$tmp/caption_shared" "$M" "$V" 2>&1)" "$want" "caption (shared libvblip)"
else
  cat "$tmp/cc.log"
  bad "building against the shared library"
fi

# static: libvblip.a, its dependencies as the system has them (vblip-static.pc)
# shellcheck disable=SC2046,SC2086
if $CC $EXTRA -o "$tmp/caption_static" "$SRC/tests/install/caption_example.c" \
  $(pkg-config --cflags --libs vblip-static) 2>"$tmp/cc.log"; then
  ok
  case "$(readelf -d "$tmp/caption_static" | grep NEEDED)" in *libvblip*) bad "caption_static needs libvblip.so" ;; *) ok ;; esac
  check "$(OMP_NUM_THREADS=2 $RUN "$tmp/caption_static" "$M" "$V" 2>&1)" "$want" "caption (static libvblip)"
else
  cat "$tmp/cc.log"
  bad "building against the static library"
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
