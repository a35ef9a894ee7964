// Every board profile in boards/ is complete and agrees with the edge.toml its package installs:
// the scripts and CMake read board.toml, the gateway reads edge.toml, and nothing else keeps the
// two in step.

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tern/edge/config.h"
#include "tern/shared/config.h"

namespace tern::edge {
namespace {

namespace fs = std::filesystem;

fs::path boardsDir() { return fs::path(TERN_SOURCE_DIR) / "boards"; }

std::vector<fs::path> boardDirs() {
    std::vector<fs::path> dirs;
    for (const auto& entry : fs::directory_iterator(boardsDir())) {
        if (entry.is_directory()) dirs.push_back(entry.path());
    }
    std::sort(dirs.begin(), dirs.end());
    return dirs;
}

std::string readText(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The scripts read the top-level keys line by line (scripts/lib/board.sh), so each must be a
// one-line string before the first table.
std::string topLevelLine(const std::string& text, const std::string& key) {
    const std::regex line("^" + key + R"( *= *"([^"]*)\"[ \t]*(#.*)?$)");
    std::istringstream in(text);
    for (std::string row; std::getline(in, row);) {
        if (!row.empty() && row[0] == '[') break;
        std::smatch match;
        if (std::regex_match(row, match, line)) return match[1];
    }
    return "<missing>";
}

TEST(BoardsTest, TheIssueBoardsArePresent) {
    std::set<std::string> names;
    for (const auto& dir : boardDirs()) names.insert(dir.filename().string());
    for (const char* board : {"rpi4", "beaglebone-black", "generic-x86_64"}) {
        EXPECT_TRUE(names.count(board)) << board;
    }
}

TEST(BoardsTest, EachProfileIsCompleteAndItsEdgeConfigAgreesWithIt) {
    const std::set<std::string> arches{"arm64", "armhf", "amd64"};
    for (const auto& dir : boardDirs()) {
        SCOPED_TRACE(dir.string());
        const std::string text = readText(dir / "board.toml");
        ASSERT_FALSE(text.empty());
        toml::table board;
        ASSERT_NO_THROW(board = toml::parse(text));

        const std::string arch = topLevelLine(text, "arch");
        const std::string toolchain = topLevelLine(text, "toolchain");
        EXPECT_EQ(topLevelLine(text, "name"), dir.filename().string());
        EXPECT_TRUE(arches.count(arch)) << arch;
        EXPECT_NE(topLevelLine(text, "cpu_flags"), "<missing>");
        if (arch == "amd64") {
            EXPECT_EQ(toolchain, "");
        } else {
            EXPECT_TRUE(
                fs::exists(fs::path(TERN_SOURCE_DIR) / "toolchains" / (toolchain + ".cmake")))
                << toolchain;
        }

        auto loaded = shared::loadConfigFile((dir / "edge.toml").string(), configSchema());
        ASSERT_TRUE(loaded) << shared::formatConfigErrors(loaded.error());
        const EdgeConfig& config = loaded.value();
        const auto errors = validateEdgeConfig(config, (dir / "edge.toml").string());
        EXPECT_TRUE(errors.empty()) << shared::formatConfigErrors(errors);

        const auto bytes = [&](const char* key) {
            auto value = board["store"][key].value<std::string>();
            return value ? shared::parseByteSize(*value) : std::nullopt;
        };
        const auto age = board["store"]["max_age"].value<std::string>();
        EXPECT_EQ(bytes("max_bytes"), config.store.max_bytes);
        EXPECT_EQ(bytes("max_disk_bytes"), config.store.max_disk_bytes);
        ASSERT_TRUE(age.has_value());
        EXPECT_EQ(shared::parseDuration(*age), config.store.max_age);

        const auto* sensors = board["sysfs_sensor"].as_array();
        ASSERT_NE(sensors, nullptr) << "no [[sysfs_sensor]]";
        for (const auto& element : *sensors) {
            const auto& sensor = *element.as_table();
            const auto name = sensor["name"].value_or(std::string{});
            SCOPED_TRACE(name);
            const auto found = std::find_if(config.sensors.begin(), config.sensors.end(),
                                            [&](const SensorConfig& s) { return s.name == name; });
            ASSERT_NE(found, config.sensors.end()) << "edge.toml has no sensor " << name;
            EXPECT_EQ(found->source, "sysfs");
            EXPECT_EQ(found->sysfs.kind, sensor["kind"].value_or(std::string{}));
            EXPECT_EQ(found->sysfs.device, sensor["device"].value_or(std::string{}));
            EXPECT_EQ(found->sysfs.channel, sensor["channel"].value_or(std::string{}));
        }

        // scripts/flash installs the identity under these names and sets the id.
        EXPECT_EQ(config.uplink.gateway_id, "unprovisioned");
        EXPECT_EQ(config.uplink.ca_file, "/etc/tern/ca.pem");
        EXPECT_EQ(config.uplink.cert_file, "/etc/tern/gateway.pem");
        EXPECT_EQ(config.uplink.key_file, "/etc/tern/gateway.key");
        EXPECT_EQ(config.store.path, "/var/lib/tern/edge.db");
    }
}

}  // namespace
}  // namespace tern::edge
