#!/usr/bin/env bash
# Cross-builds vblip for 64-bit ARM (aarch64) and runs its fast tests under qemu-aarch64.
#
#   scripts/arm64-cross-check.sh [--sysroot DIR] [--build DIR] [--no-test] [CTEST ARGS...]
#
# --sysroot DIR  where the arm64 sysroot is made and kept (default $VBLIP_ARM64_SYSROOT, else
#                ~/.cache/vblip/arm64-sysroot): Debian 12's arm64 packages of the libraries in
#                scripts/install-deps.sh and their runtime closure, downloaded with a private apt
#                configuration and unpacked with dpkg-deb. The system's dpkg state is never
#                touched (no `dpkg --add-architecture`, no :arm64 packages installed). Made once;
#                made again only when the package list below changes.
# --build DIR    the build tree (default build-arm64)
# --no-test      configure and build only
# CTEST ARGS     replace the default `-L fast` (e.g. `-R test_bpe`)
#
# Needs (amd64 packages): gcc-aarch64-linux-gnu qemu-user (apt-get install -y ...), and
# network access to deb.debian.org the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sysroot_dir=${VBLIP_ARM64_SYSROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/vblip/arm64-sysroot}
build=build-arm64
run_tests=1
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sysroot) sysroot_dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-test) run_tests=0; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done
[ ${#ctest_args[@]} -gt 0 ] || ctest_args=(-L fast)
for tool in aarch64-linux-gnu-gcc qemu-aarch64 dpkg-deb apt-get; do
  if ! command -v "$tool" > /dev/null; then
    echo "arm64-cross-check: '$tool' is missing (apt-get install -y gcc-aarch64-linux-gnu qemu-user)" >&2
    exit 1
  fi
done
mkdir -p "$sysroot_dir"
sysroot_dir=$(cd "$sysroot_dir" && pwd)
root=$sysroot_dir/root

# The libraries of scripts/install-deps.sh --runtime (arm64 packages), the C library and the
# compiler's runtime libraries; apt adds what they depend on.
pkgs=(libc6-dev libgcc-s1 libgomp1 libstdc++6
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libavdevice-dev
  libdnnl-dev libcjson-dev libutf8proc-dev libmicrohttpd-dev libcurl4-openssl-dev libedit-dev)
suites="bookworm bookworm-updates"
stamp="layout 1; suites: $suites bookworm-security; packages: ${pkgs[*]}"

make_sysroot() {
  local apt_dir=$sysroot_dir/apt
  echo "== arm64-cross-check: making the arm64 sysroot in $root"
  rm -rf "$apt_dir" "$root"
  mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts" \
    "$apt_dir/sources.list.d" "$root"
  mkdir -p "$root/usr/lib" "$root/usr/bin" "$root/usr/sbin"
  ln -s usr/lib "$root/lib" && ln -s usr/bin "$root/bin" && ln -s usr/sbin "$root/sbin"
  : > "$apt_dir/state/status" # nothing is installed in the sysroot as far as apt knows
  {
    for s in $suites; do
      echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main"
    done
    echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main"
  } > "$apt_dir/sources.list"
  # Everything private: state, cache, sources; the host's apt.conf.d (hooks) is not read.
  local apt_opts=(-o "Dir::State=$apt_dir/state" -o "Dir::State::status=$apt_dir/state/status"
    -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d" -o "Dir::Etc::Parts=$apt_dir/parts"
    -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$apt_dir/parts"
    -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Debug::NoLocking=1
    -o APT::Install-Recommends=false -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" -q update
  apt-get "${apt_opts[@]}" -q -y --download-only install "${pkgs[@]}"
  local n=0 deb
  for deb in "$apt_dir"/cache/archives/*.deb; do
    # merged /usr, as on an installed Debian 12: /lib and /bin are links into /usr
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root" --keep-directory-symlink
    n=$((n + 1))
  done
  # Absolute links (libfoo.so -> /lib/aarch64-linux-gnu/libfoo.so.1, the loader) would point
  # into the host: make them relative to the sysroot.
  local link target
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    case "$target" in
      /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$root$target")" "$link" ;;
    esac
  done < <(find "$root" -type l -print0)
  # What maintainer scripts would have done that the link needs: the BLAS / LAPACK
  # alternatives (libavfilter -> pocketsphinx -> libblas.so.3, liblapack.so.3).
  local lib
  for lib in "$root"/usr/lib/aarch64-linux-gnu/{blas,lapack}/lib*.so.*; do
    [ -e "$lib" ] || continue
    [ -e "$root/usr/lib/aarch64-linux-gnu/$(basename "$lib")" ] ||
      ln -s "$(basename "$(dirname "$lib")")/$(basename "$lib")" "$root/usr/lib/aarch64-linux-gnu/"
  done
  echo "$stamp" > "$root/.vblip-sysroot"
  echo "== arm64-cross-check: $n packages unpacked into $root"
}

if [ ! -f "$root/.vblip-sysroot" ] || [ "$(cat "$root/.vblip-sysroot")" != "$stamp" ]; then
  make_sysroot
fi

cd "$here"
echo "== arm64-cross-check: configuring $build"
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE="$here/cmake/aarch64-linux-gnu.cmake" \
  -DVBLIP_ARM64_SYSROOT="$root" -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
echo "== arm64-cross-check: building (aarch64-linux-gnu-gcc, -Wall -Wextra -Werror)"
t0=$(date +%s)
cmake --build "$build" -j"$(nproc)"
echo "== arm64-cross-check: built in $(($(date +%s) - t0)) s"
[ "$run_tests" = 1 ] || exit 0
echo "== arm64-cross-check: ctest ${ctest_args[*]} under qemu-aarch64"
t0=$(date +%s)
rc=0
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "${ctest_args[@]}" || rc=$?
echo "== arm64-cross-check: tests ran in $(($(date +%s) - t0)) s (exit $rc)"
exit $rc
