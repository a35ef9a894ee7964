# Reads a board's profile (boards/<name>/board.toml) for the scripts: sourced, not run.
# board_load NAME sets BOARD_DIR, BOARD_NAME, BOARD_ARCH (Debian architecture) and BOARD_TOOLCHAIN
# (the cross triple, empty for the host compiler) from the top-level keys, which board.toml keeps
# as one-line strings for this reason. CMake reads cpu_flags itself (boards/board.cmake); the
# emulator goes with the toolchain file.

board_value() {  # board_value FILE KEY: the KEY = "value" line before the first [table]
    awk -v key="$2" '
        /^\[/ { exit }
        $0 ~ "^" key "[ \t]*=" { sub(/^[^=]*=[ \t]*"/, ""); sub(/"[ \t]*(#.*)?$/, ""); print; exit }
    ' "$1"
}

board_load() {
    local name=$1 root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    BOARD_DIR=$root/boards/$name
    if [[ ! $name =~ ^[a-z0-9][a-z0-9_-]*$ || ! -f $BOARD_DIR/board.toml ]]; then
        echo "unknown board '$name'; the boards are: $(cd "$root/boards" && ls -d */ | tr -d / | tr '\n' ' ')" >&2
        exit 2
    fi
    BOARD_NAME=$(board_value "$BOARD_DIR/board.toml" name)
    BOARD_ARCH=$(board_value "$BOARD_DIR/board.toml" arch)
    BOARD_TOOLCHAIN=$(board_value "$BOARD_DIR/board.toml" toolchain)
    [[ $BOARD_NAME == "$name" && -n $BOARD_ARCH ]] ||
        { echo "$BOARD_DIR/board.toml: name must be \"$name\" and arch must be set" >&2; exit 2; }
}
