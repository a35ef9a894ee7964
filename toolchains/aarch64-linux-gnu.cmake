# Cross-compiles for 64-bit ARM (Raspberry Pi 4 and other Cortex-A boards) with Debian's
# g++-aarch64-linux-gnu against a Debian arm64 sysroot that scripts/sysroot makes.
set(TERN_TARGET_TRIPLE aarch64-linux-gnu)
set(TERN_TARGET_PROCESSOR aarch64)
set(TERN_TARGET_EMULATOR qemu-aarch64-static)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
