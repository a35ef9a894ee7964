# The board package (scripts/build-board <board> runs cpack): tern-edge, its systemd unit, the
# board's default configuration as a conffile, the system user, and the setup the postinst and
# scripts/flash share. With SOURCE_DATE_EPOCH set (build-board sets it to the commit's time) two
# builds of one commit give the same files.
set(package_dir ${CMAKE_CURRENT_LIST_DIR})

install(FILES ${CMAKE_SOURCE_DIR}/edge/systemd/tern-edge.service DESTINATION /lib/systemd/system
        COMPONENT tern-edge)
install(FILES ${CMAKE_SOURCE_DIR}/boards/${TERN_BOARD}/edge.toml DESTINATION /etc/tern
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT tern-edge)
install(FILES ${package_dir}/tern-edge.sysusers DESTINATION lib/sysusers.d RENAME tern-edge.conf
        COMPONENT tern-edge)
install(PROGRAMS ${package_dir}/setup-system DESTINATION lib/tern-edge COMPONENT tern-edge)
install(FILES ${TERN_BOARD_TOML} DESTINATION share/tern-edge COMPONENT tern-edge)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tern-edge)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR Tern)
set(CPACK_PACKAGE_CONTACT "Tern maintainers <maintainers@tern.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Tern edge agent: sensors, local rules, store-and-forward over TLS MQTT")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
    "tern-edge reads a gateway's sensors, runs local anomaly rules and downsampling, keeps every "
    "reading in an SQLite store until the cloud has receipted it, and publishes over MQTT 5 with "
    "TLS client certificates. Built for the ${TERN_BOARD} board.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL tern-edge)
set(CPACK_DEB_COMPONENT_INSTALL OFF)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${TERN_BOARD_ARCH})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The Debian bookworm packages of the libraries tern-edge links (readelf -d: NEEDED); the sysroot
# has no dpkg database for dpkg-shlibdeps to work them out from.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.36), libstdc++6 (>= 12), libgcc-s1, libpaho-mqttpp3-1 (>= 1.2.0), libpaho-mqtt1.3 (>= 1.3.11), libssl3 (>= 3.0.0), libsqlite3-0 (>= 3.40.0), libmodbus5 (>= 3.1.6), libzstd1 (>= 1.5.0), libfmt9, libspdlog1.10, libtomlplusplus3, systemd")
# The configuration is the operator's once installed: an upgrade asks before replacing edits.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/conffiles "/etc/tern/edge.toml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${package_dir}/postinst ${package_dir}/prerm ${package_dir}/postrm
                                       ${CMAKE_CURRENT_BINARY_DIR}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
