# Cross-compiles for 32-bit ARM with hardware floating point (BeagleBone Black, 32-bit Raspberry
# Pi OS) with Debian's g++-arm-linux-gnueabihf against a Debian armhf sysroot from scripts/sysroot.
set(TERN_TARGET_TRIPLE arm-linux-gnueabihf)
set(TERN_TARGET_PROCESSOR arm)
set(TERN_TARGET_EMULATOR qemu-arm-static)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
