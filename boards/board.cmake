# Reads boards/${TERN_BOARD}/board.toml for a board build: its CPU flags go to every target, and
# its toolchain must be the one this build uses (the board presets pair them). TERN_BOARD_ARCH
# (the Debian architecture) names the package's architecture.
set(TERN_BOARD_TOML ${CMAKE_SOURCE_DIR}/boards/${TERN_BOARD}/board.toml)
if(NOT EXISTS ${TERN_BOARD_TOML})
    message(FATAL_ERROR "TERN_BOARD=${TERN_BOARD}: there is no ${TERN_BOARD_TOML}")
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${TERN_BOARD_TOML})

# The top-level keys are one-line strings (see the file's header).
function(tern_board_value key out)
    file(STRINGS ${TERN_BOARD_TOML} line REGEX "^${key} *= *\"[^\"]*\"")
    if(NOT line)
        message(FATAL_ERROR "${TERN_BOARD_TOML}: no '${key} = \"...\"' line")
    endif()
    list(GET line 0 line)
    string(REGEX REPLACE "^${key} *= *\"([^\"]*)\".*" "\\1" value "${line}")
    set(${out} "${value}" PARENT_SCOPE)
endfunction()

tern_board_value(arch TERN_BOARD_ARCH)
tern_board_value(toolchain board_toolchain)
tern_board_value(cpu_flags board_cpu_flags)
if(NOT "${board_toolchain}" STREQUAL "${TERN_TARGET_TRIPLE}")
    message(FATAL_ERROR "board ${TERN_BOARD} builds with toolchain '${board_toolchain}', this build "
                        "with '${TERN_TARGET_TRIPLE}': use the board's preset (cmake --preset ${TERN_BOARD})")
endif()
separate_arguments(board_cpu_flags UNIX_COMMAND "${board_cpu_flags}")
add_compile_options(${board_cpu_flags})
message(STATUS "Board ${TERN_BOARD}: ${TERN_BOARD_ARCH}, ${board_cpu_flags}")

# scripts/build-board builds tern-edge alone and packages it; installing must not build the
# unit tests first.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
