# What both ARM toolchain files share: Debian's cross compiler for TERN_TARGET_TRIPLE, a sysroot
# made by scripts/sysroot, and qemu-user to run what was built (ctest runs the unit tests through
# it, and gtest_discover_tests lists them through it).
#
# The sysroot comes from the TERN_SYSROOT cache variable or environment variable.
if(NOT TERN_SYSROOT AND DEFINED ENV{TERN_SYSROOT})
    set(TERN_SYSROOT $ENV{TERN_SYSROOT})
endif()
if(NOT TERN_SYSROOT OR NOT EXISTS "${TERN_SYSROOT}/usr/include")
    message(FATAL_ERROR "TERN_SYSROOT ('${TERN_SYSROOT}') is not a sysroot; make one with scripts/sysroot <board>")
endif()
set(TERN_SYSROOT "${TERN_SYSROOT}" CACHE PATH "Debian sysroot of the target architecture")
# try_compile projects re-read this file; they need the sysroot too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TERN_SYSROOT)

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${TERN_TARGET_PROCESSOR})
set(CMAKE_C_COMPILER ${TERN_TARGET_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${TERN_TARGET_TRIPLE}-g++)
set(CMAKE_SYSROOT "${TERN_SYSROOT}")
set(CMAKE_LIBRARY_ARCHITECTURE ${TERN_TARGET_TRIPLE})

# Libraries, headers and CMake packages come only from the sysroot; programs (flatc) from the host.
set(CMAKE_FIND_ROOT_PATH "${TERN_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${TERN_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${TERN_SYSROOT}/usr/lib/${TERN_TARGET_TRIPLE}/pkgconfig:${TERN_SYSROOT}/usr/share/pkgconfig")

set(CMAKE_CROSSCOMPILING_EMULATOR ${TERN_TARGET_EMULATOR} -L "${TERN_SYSROOT}")
