#!/usr/bin/env bash
# scripts/flash --image on a whole-disk image, as an operator prepares a card before writing it: a
# partition table with a boot partition and an ext4 root that already has a user database and an
# edge.toml with an operator's edit. The flashed root must hold the package's files byte for byte,
# the identity with the right owner and mode, the edit kept, the service enabled, and the file
# system must stay clean. A wrong id must leave the image untouched.
# Usage: flash_image_test.sh <repository root>
set -uo pipefail
repo=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
check() {  # check <description> <command...>
    if "${@:2}" >/dev/null 2>&1; then echo "ok: $1"; else echo "FAILED: $1"; failures=$((failures + 1)); fi
}

package=$("$repo/scripts/build-board" rpi4 | tail -n 1) || { echo "FAILED: scripts/build-board rpi4"; exit 1; }
"$repo/scripts/pki" init "$dir/pki" >/dev/null
"$repo/scripts/pki" client "$dir/pki" gw-card-7 >/dev/null

# The root file system: a user database without tern, and an edited edge.toml from an earlier flash.
root=$dir/rootfs
mkdir -p "$root/etc/tern" "$root/usr/bin" "$root/var/lib" "$root/lib/systemd/system"
printf 'root:x:0:0:root:/root:/bin/sh\nsystemd-network:x:100:102::/:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nsystemd-journal:x:101:\nsystemd-network:x:102:\n' >"$root/etc/group"
dpkg-deb --fsys-tarfile "$package" | tar -xO ./etc/tern/edge.toml |
    sed 's/^level = "info"/level = "debug"  # the operator wants detail/' >"$root/etc/tern/edge.toml"
mke2fs -q -F -t ext4 -L rootfs -d "$root" "$dir/rootfs.ext4" 64M

# The card: 1 MiB of alignment, a 16 MiB FAT-type boot partition (left empty), then the root.
disk=$dir/card.img
truncate -s 96M "$disk"
printf 'label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n' | sfdisk -q "$disk"
dd if="$dir/rootfs.ext4" of="$disk" bs=512 seek=34816 conv=notrunc status=none
fs="$disk?offset=$((34816 * 512))"
read_file() { debugfs -R "cat $1" "$fs" 2>/dev/null; }
inode_field() { debugfs -R "stat $1" "$fs" 2>/dev/null | sed -n "s/.*$2: *\([0-9]*\).*/\1/p" | head -n 1; }

flash=("$repo/scripts/flash" rpi4 --broker ssl://mqtt.example.net:8883 --pki "$dir/pki" --package "$package" --image "$disk")
cp "$dir/pki/clients/gw-card-7.crt" "$dir/pki/clients/gw-impostor.crt"
cp "$dir/pki/clients/gw-card-7.key" "$dir/pki/clients/gw-impostor.key"
refused() { ! "${flash[@]}" --gateway-id gw-impostor 2>/dev/null; }
contains() { grep -q -- "$2" <<<"$1"; }
lacks() { ! grep -q -- "$2" <<<"$1"; }
mode_of() { debugfs -R "stat $1" "$fs" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p' | head -n 1; }

before=$(sha256sum <"$disk")
check "an id that is not the certificate's CN is refused" refused
check "and the image is untouched" test "$(sha256sum <"$disk")" = "$before"

output=$("${flash[@]}" --gateway-id gw-card-7 2>&1)
check "flash --image succeeds" test $? -eq 0
echo "$output"
check "no private key was printed" lacks "$output" "PRIVATE KEY"
check "the file system is clean" e2fsck -fn "$fs"

mkdir -p "$dir/package"
dpkg-deb -x "$package" "$dir/package"
check "tern-edge is the package's, byte for byte" cmp -s <(read_file /usr/bin/tern-edge) "$dir/package/usr/bin/tern-edge"
check "the unit is the package's" cmp -s <(read_file /lib/systemd/system/tern-edge.service) "$dir/package/lib/systemd/system/tern-edge.service"
check "the key is the gateway's" cmp -s <(read_file /etc/tern/gateway.key) "$dir/pki/clients/gw-card-7.key"
check "the certificate is the gateway's" cmp -s <(read_file /etc/tern/gateway.pem) "$dir/pki/clients/gw-card-7.crt"
check "the CA is the broker's" cmp -s <(read_file /etc/tern/ca.pem) "$dir/pki/ca.crt"

tern_gid=$(read_file /etc/group | awk -F: '$1 == "tern" { print $3 }')
check "the tern group was added to the image's" test -n "$tern_gid"
check "the existing users are kept" contains "$(read_file /etc/passwd)" "^systemd-network:"
check "the key is mode 0640" test "$(mode_of /etc/tern/gateway.key)" = 0640
check "the key is owned by root" test "$(inode_field /etc/tern/gateway.key User)" = 0
check "the key's group is tern" test "$(inode_field /etc/tern/gateway.key Group)" = "$tern_gid"
check "the state directory belongs to tern" test "$(inode_field /var/lib/tern Group)" = "$tern_gid"

config=$(read_file /etc/tern/edge.toml)
check "gateway_id is set" contains "$config" '^gateway_id = "gw-card-7"$'
check "broker is set" contains "$config" '^broker = "ssl://mqtt.example.net:8883"$'
check "the operator's edit is kept" contains "$config" "the operator wants detail"
check "the service is enabled at boot" contains \
    "$(debugfs -R 'stat /etc/systemd/system/multi-user.target.wants/tern-edge.service' "$fs" 2>/dev/null)" \
    'Fast link dest: "/lib/systemd/system/tern-edge.service"'

[[ $failures -eq 0 ]]
