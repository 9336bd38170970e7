# Cross build for 64-bit ARM Linux with Debian's gcc-aarch64-linux-gnu and an arm64 sysroot
# (scripts/arm64-cross-check.sh makes one and uses this file):
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#     -DVBLIP_ARM64_SYSROOT=/path/to/sysroot
# The sysroot is Debian 12's arm64 packages unpacked (usr/lib/aarch64-linux-gnu, usr/include).
# Tests run under qemu-aarch64 (user-mode emulation) when it is installed.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

# The toolchain file is read again by try_compile projects: keep the sysroot in the
# environment as well so they see it.
if(NOT VBLIP_ARM64_SYSROOT AND DEFINED ENV{VBLIP_ARM64_SYSROOT})
  set(VBLIP_ARM64_SYSROOT "$ENV{VBLIP_ARM64_SYSROOT}")
endif()
if(NOT VBLIP_ARM64_SYSROOT OR NOT EXISTS "${VBLIP_ARM64_SYSROOT}/usr/include")
  message(FATAL_ERROR "aarch64 toolchain: set VBLIP_ARM64_SYSROOT to an arm64 sysroot "
    "(scripts/arm64-cross-check.sh makes one); got '${VBLIP_ARM64_SYSROOT}'")
endif()
set(ENV{VBLIP_ARM64_SYSROOT} "${VBLIP_ARM64_SYSROOT}")

set(CMAKE_SYSROOT "${VBLIP_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${VBLIP_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # build tools (pkg-config, bash) are the host's
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the sysroot's .pc files and prefixes their paths with it.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${VBLIP_ARM64_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
  "${VBLIP_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${VBLIP_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# CTest runs the test programs through the emulator; -L makes it load the sysroot's loader
# and libraries.
find_program(VBLIP_QEMU_AARCH64 qemu-aarch64)
if(VBLIP_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${VBLIP_QEMU_AARCH64};-L;${VBLIP_ARM64_SYSROOT}")
endif()
