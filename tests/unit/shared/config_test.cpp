#include "tern/shared/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace tern::shared {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// A schema shaped like the edge agent's, with every kind of key.
struct UplinkConfig {
    std::string broker_url;
    std::int64_t max_inflight = 0;
    milliseconds keepalive{};
    bool tls = false;
    std::vector<std::string> topics;
    std::map<std::string, std::string> paho;
};

struct SpoolConfig {
    std::uint64_t max_bytes = 0;
    double high_watermark = 0;
    std::string compression;
};

struct SensorConfig {
    std::string name;
    milliseconds interval{};
    double scale = 0;
};

struct TestConfig {
    std::string device_id;
    UplinkConfig uplink;
    SpoolConfig spool;
    std::vector<SensorConfig> sensors;
};

std::string mqttUrl(const std::string& url) {
    if (url.rfind("mqtt://", 0) == 0 || url.rfind("mqtts://", 0) == 0) return "";
    return "must start with mqtt:// or mqtts://";
}

ConfigTable<UplinkConfig> uplinkTable() {
    return ConfigTable<UplinkConfig>("uplink", "MQTT uplink to the broker")
        .string("broker_url", &UplinkConfig::broker_url, "mqtts://localhost:8883", "broker address",
                {.check = mqttUrl})
        .integer("max_inflight", &UplinkConfig::max_inflight, 32, {1, 1024}, "messages",
                 "QoS 1 publishes awaiting PUBACK")
        .duration("keepalive", &UplinkConfig::keepalive, 30s, {1s, 3600s}, "MQTT keepalive")
        .boolean("tls", &UplinkConfig::tls, true, "verify the broker's certificate")
        .stringList("topics", &UplinkConfig::topics, {"telemetry"}, "topics to publish on")
        .stringMap("paho", &UplinkConfig::paho, "options passed to Paho as they are",
                   [](const std::string& key, const std::string&) -> std::string {
                       return key == "forbidden" ? "is not a Paho option" : "";
                   });
}

ConfigTable<SpoolConfig> spoolTable() {
    return ConfigTable<SpoolConfig>("spool", "On-disk backlog while the uplink is down")
        .byteSize("max_bytes", &SpoolConfig::max_bytes, 64 * kMiB, {kMiB, kGiB}, "backlog cap")
        .number("high_watermark", &SpoolConfig::high_watermark, 0.8, {0.0, 1.0}, "fraction",
                "fill level that raises an alert")
        .string("compression", &SpoolConfig::compression, "zstd", "block compression",
                {.one_of = {"none", "zstd"}});
}

ConfigTable<SensorConfig> sensorTable() {
    return ConfigTable<SensorConfig>("sensor", "One polled sensor")
        .string("name", &SensorConfig::name, "", "unique sensor name")
        .required()
        .duration("interval", &SensorConfig::interval, 1s, {10ms, 1h}, "poll interval")
        .number("scale", &SensorConfig::scale, 1.0, {-1e6, 1e6}, "", "raw value multiplier");
}

ConfigTable<TestConfig> schema() {
    return ConfigTable<TestConfig>("", "Edge agent")
        .string("device_id", &TestConfig::device_id, "", "this device's id")
        .required()
        .table(&TestConfig::uplink, uplinkTable())
        .table(&TestConfig::spool, spoolTable())
        .tables(&TestConfig::sensors, sensorTable());
}

ConfigErrors loadErrors(const std::string& text) {
    auto result = loadConfigString(text, "edge.toml", schema());
    if (result) return {};
    return result.error();
}

// The single error a text produces; fails the test if there is not exactly one.
ConfigError onlyError(const std::string& text) {
    ConfigErrors errors = loadErrors(text);
    EXPECT_EQ(errors.size(), 1u) << formatConfigErrors(errors);
    return errors.empty() ? ConfigError{} : errors.front();
}

TEST(ConfigTest, DefaultsApplyWhenKeysAreAbsent) {
    auto result = loadConfigString("device_id = \"pump-7\"\n", "edge.toml", schema());
    ASSERT_TRUE(result) << formatConfigErrors(result.error());
    const TestConfig& config = result.value();
    EXPECT_EQ(config.device_id, "pump-7");
    EXPECT_EQ(config.uplink.broker_url, "mqtts://localhost:8883");
    EXPECT_EQ(config.uplink.max_inflight, 32);
    EXPECT_EQ(config.uplink.keepalive, 30s);
    EXPECT_TRUE(config.uplink.tls);
    EXPECT_EQ(config.uplink.topics, std::vector<std::string>{"telemetry"});
    EXPECT_TRUE(config.uplink.paho.empty());
    EXPECT_EQ(config.spool.max_bytes, 64 * kMiB);
    EXPECT_DOUBLE_EQ(config.spool.high_watermark, 0.8);
    EXPECT_EQ(config.spool.compression, "zstd");
    EXPECT_TRUE(config.sensors.empty());
}

TEST(ConfigTest, ReadsEveryKeyKind) {
    auto result = loadConfigString(R"(device_id = "pump-7"
[uplink]
broker_url = "mqtt://broker:1883"
max_inflight = 100
keepalive = "2m"
tls = false
topics = ["a", "b"]
[uplink.paho]
clean_session = true
[spool]
max_bytes = "512MiB"
high_watermark = 1
compression = "none"
)",
                                   "edge.toml", schema());
    ASSERT_TRUE(result) << formatConfigErrors(result.error());
    const TestConfig& config = result.value();
    EXPECT_EQ(config.uplink.broker_url, "mqtt://broker:1883");
    EXPECT_EQ(config.uplink.max_inflight, 100);
    EXPECT_EQ(config.uplink.keepalive, 2min);
    EXPECT_FALSE(config.uplink.tls);
    EXPECT_EQ(config.uplink.topics, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(config.uplink.paho, (std::map<std::string, std::string>{{"clean_session", "true"}}));
    EXPECT_EQ(config.spool.max_bytes, 512 * kMiB);
    EXPECT_DOUBLE_EQ(config.spool.high_watermark, 1.0);  // an integer is accepted as a float
    EXPECT_EQ(config.spool.compression, "none");
}

TEST(ConfigTest, SyntaxErrorHasLineAndColumn) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\n[uplink]\nmax_inflight = \n");
    EXPECT_EQ(error.file, "edge.toml");
    EXPECT_EQ(error.line, 3);
    EXPECT_GT(error.column, 0);
    EXPECT_EQ(error.key, "");
    EXPECT_FALSE(error.message.empty());
}

TEST(ConfigTest, UnknownTableIsAnError) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\n[uplnk]\nmax_inflight = 3\n");
    EXPECT_EQ(error.line, 2);
    EXPECT_EQ(error.key, "uplnk");
    EXPECT_EQ(error.message, "unknown table (did you mean \"uplink\"?)");
}

TEST(ConfigTest, UnknownKeyIsAnErrorAndPointsAtTheKey) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\n[uplink]\n  max_inflite = 3\n");
    EXPECT_EQ(error.format(),
              "edge.toml:3:3: uplink.max_inflite: unknown key (did you mean \"max_inflight\"?)");
}

TEST(ConfigTest, UnknownKeyFarFromAnyKnownHasNoSuggestion) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\ncolour = \"blue\"\n");
    EXPECT_EQ(error.key, "colour");
    EXPECT_EQ(error.message, "unknown key");
}

TEST(ConfigTest, WrongTypeNamesWhatWasExpected) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\n[uplink]\ntls = \"yes\"\n");
    EXPECT_EQ(error.format(), "edge.toml:3:7: uplink.tls: expected a boolean, got a string");
}

TEST(ConfigTest, TableGivenAsScalarIsAnError) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\nuplink = 5\n");
    EXPECT_EQ(error.key, "uplink");
    EXPECT_EQ(error.line, 2);
    EXPECT_EQ(error.message, "expected a table, got an integer");
}

TEST(ConfigTest, OutOfRangeIntegerNamesTheRange) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\n[uplink]\nmax_inflight = 5000\n");
    EXPECT_EQ(error.format(),
              "edge.toml:3:16: uplink.max_inflight: 5000 is out of range [1, 1024]");
}

TEST(ConfigTest, IntegerKeyRejectsAFloat) {
    const ConfigError error = onlyError("device_id = \"pump-7\"\n[uplink]\nmax_inflight = 5.0\n");
    EXPECT_EQ(error.message, "expected an integer, got a float");
}

TEST(ConfigTest, NumberRejectsNanInfinityAndOutOfRange) {
    EXPECT_EQ(onlyError("device_id = \"x\"\n[spool]\nhigh_watermark = nan\n").message,
              "nan is not a finite number");
    EXPECT_EQ(onlyError("device_id = \"x\"\n[spool]\nhigh_watermark = -inf\n").message,
              "-inf is not a finite number");
    EXPECT_EQ(onlyError("device_id = \"x\"\n[spool]\nhigh_watermark = 1.5\n").message,
              "1.5 is out of range [0.0, 1.0]");
}

TEST(ConfigTest, ReportsAllErrorsAtOnceInFileOrder) {
    // Four distinct mistakes; toml++ hands keys back sorted by name, the errors must not be.
    const ConfigErrors errors = loadErrors(R"(device_id = "pump-7"
[uplink]
tls = 1
max_inflight = 0
[spool]
max_bytes = "lots"
[metrics]
port = 9100
)");
    ASSERT_EQ(errors.size(), 4u) << formatConfigErrors(errors);
    EXPECT_EQ(errors[0].key, "uplink.tls");
    EXPECT_EQ(errors[0].line, 3);
    EXPECT_EQ(errors[1].key, "uplink.max_inflight");
    EXPECT_EQ(errors[1].line, 4);
    EXPECT_EQ(errors[2].key, "spool.max_bytes");
    EXPECT_EQ(errors[2].line, 6);
    EXPECT_EQ(errors[3].key, "metrics");
    EXPECT_EQ(errors[3].line, 7);
    EXPECT_EQ(formatConfigErrors(errors),
              "edge.toml:3:7: uplink.tls: expected a boolean, got an integer\n"
              "edge.toml:4:16: uplink.max_inflight: 0 is out of range [1, 1024]\n"
              "edge.toml:6:13: spool.max_bytes: \"lots\" is not a size: write bytes, or a whole "
              "number and a unit (KiB, MiB, GiB, TiB, kB, MB, GB, TB), like \"64MiB\"\n"
              "edge.toml:7:2: metrics: unknown table\n");
}

TEST(ConfigTest, DurationsInAFile) {
    auto load = [](const std::string& value) {
        return loadConfigString("device_id = \"x\"\n[uplink]\nkeepalive = " + value + "\n",
                                "edge.toml", schema());
    };
    auto ok = load("\"1h\"");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok.value().uplink.keepalive, 1h);

    auto unitless = load("30");
    ASSERT_FALSE(unitless);
    EXPECT_EQ(unitless.error().at(0).message,
              "expected a duration string with a unit, like \"250ms\", got an integer");

    auto malformed = load("\"30 s\"");
    ASSERT_FALSE(malformed);
    EXPECT_EQ(malformed.error().at(0).message,
              "\"30 s\" is not a duration: write a whole number and a unit (ms, s, m, h, d), "
              "like \"250ms\"");

    auto too_long = load("\"99999999999999999999d\"");
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error().at(0).message, "\"99999999999999999999d\" is too long a duration");

    auto out_of_range = load("\"2h\"");
    ASSERT_FALSE(out_of_range);
    EXPECT_EQ(out_of_range.error().at(0).format(),
              "edge.toml:3:13: uplink.keepalive: \"2h\" is out of range [1s, 1h]");
}

TEST(ConfigTest, SizesInAFile) {
    auto load = [](const std::string& value) {
        return loadConfigString("device_id = \"x\"\n[spool]\nmax_bytes = " + value + "\n",
                                "edge.toml", schema());
    };
    auto as_integer = load("2097152");
    ASSERT_TRUE(as_integer);
    EXPECT_EQ(as_integer.value().spool.max_bytes, 2 * kMiB);
    auto as_decimal = load("\"1GB\"");
    ASSERT_TRUE(as_decimal);
    EXPECT_EQ(as_decimal.value().spool.max_bytes, 1'000'000'000u);

    EXPECT_EQ(load("-1").error().at(0).message, "-1 is out of range [1MiB, 1GiB]");
    EXPECT_EQ(load("\"2GiB\"").error().at(0).message, "\"2GiB\" is out of range [1MiB, 1GiB]");
    EXPECT_EQ(load("\"99999999999999999999\"").error().at(0).message,
              "\"99999999999999999999\" is too large a size");
    EXPECT_EQ(load("\"20000000TiB\"").error().at(0).message, "\"20000000TiB\" is too large a size");
    EXPECT_EQ(load("1.5").error().at(0).message,
              "expected a size (bytes, or a string like \"64MiB\"), got a float");
}

TEST(ConfigDurationTest, ParsesEachUnit) {
    EXPECT_EQ(parseDuration("250ms"), 250ms);
    EXPECT_EQ(parseDuration("5s"), 5s);
    EXPECT_EQ(parseDuration("2m"), 2min);
    EXPECT_EQ(parseDuration("1h"), 1h);
    EXPECT_EQ(parseDuration("7d"), 7 * 24h);
    EXPECT_EQ(parseDuration("0s"), 0ms);
}

TEST(ConfigDurationTest, RejectsMalformedText) {
    for (const char* text :
         {"", "s", "5", "-5s", "5 s", " 5s", "5s ", "1.5s", "5sec", "1h30m", "5S", "0x10s"}) {
        EXPECT_EQ(parseDuration(text), std::nullopt) << text;
    }
}

TEST(ConfigDurationTest, RejectsOverflow) {
    const auto max_ms = std::numeric_limits<milliseconds::rep>::max();
    EXPECT_EQ(parseDuration(std::to_string(max_ms) + "ms"), milliseconds(max_ms));
    EXPECT_EQ(parseDuration(std::to_string(max_ms) + "s"), std::nullopt);
    EXPECT_EQ(parseDuration("106751991168d"), std::nullopt);  // just past int64 milliseconds
    EXPECT_EQ(parseDuration("106751991167d"), 106751991167 * 24h);
    EXPECT_EQ(parseDuration("99999999999999999999999999ms"), std::nullopt);
}

TEST(ConfigByteSizeTest, ParsesEachUnit) {
    EXPECT_EQ(parseByteSize("4096"), 4096u);
    EXPECT_EQ(parseByteSize("4096B"), 4096u);
    EXPECT_EQ(parseByteSize("512KiB"), 512 * kKiB);
    EXPECT_EQ(parseByteSize("64MiB"), 64 * kMiB);
    EXPECT_EQ(parseByteSize("64 MiB"), 64 * kMiB);
    EXPECT_EQ(parseByteSize("2GiB"), 2 * kGiB);
    EXPECT_EQ(parseByteSize("1TiB"), 1024 * kGiB);
    EXPECT_EQ(parseByteSize("1kB"), 1000u);
    EXPECT_EQ(parseByteSize("1KB"), 1000u);
    EXPECT_EQ(parseByteSize("1MB"), 1'000'000u);
    EXPECT_EQ(parseByteSize("1GB"), 1'000'000'000u);
    EXPECT_EQ(parseByteSize("1TB"), 1'000'000'000'000u);
}

TEST(ConfigByteSizeTest, RejectsMalformedTextAndOverflow) {
    for (const char* text :
         {"", "MiB", "-1", "1.5MiB", "64mib", "64  MiB", "64MiBs", "1 ", "1e6"}) {
        EXPECT_EQ(parseByteSize(text), std::nullopt) << text;
    }
    EXPECT_EQ(parseByteSize("18446744073709551615"), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(parseByteSize("18446744073709551616"), std::nullopt);
    EXPECT_EQ(parseByteSize("16777216TiB"), std::nullopt);  // 2^64 bytes
    EXPECT_EQ(parseByteSize("16777215TiB"), 16777215 * kKiB * kGiB);
}

TEST(ConfigFormatTest, DurationsAndSizesUseTheLargestExactUnit) {
    EXPECT_EQ(formatDuration(30s), "30s");
    EXPECT_EQ(formatDuration(90s), "90s");
    EXPECT_EQ(formatDuration(1h), "1h");
    EXPECT_EQ(formatDuration(1500ms), "1500ms");
    EXPECT_EQ(formatDuration(0ms), "0s");
    EXPECT_EQ(formatByteSize(64 * kMiB), "64MiB");
    EXPECT_EQ(formatByteSize(1'000'000'000), "1GB");
    EXPECT_EQ(formatByteSize(1500), "1500B");
    for (milliseconds value : {250ms, milliseconds(30s), milliseconds(7 * 24h)}) {
        EXPECT_EQ(parseDuration(formatDuration(value)), value);
    }
}

TEST(ConfigTest, StringEnumRejectsOtherValues) {
    const ConfigError error = onlyError("device_id = \"x\"\n[spool]\ncompression = \"lz4\"\n");
    EXPECT_EQ(error.format(),
              "edge.toml:3:15: spool.compression: \"lz4\" is not one of \"none\", \"zstd\"");
}

TEST(ConfigTest, StringValidatorMessageIsReported) {
    const ConfigError error =
        onlyError("device_id = \"x\"\n[uplink]\nbroker_url = \"http://broker\"\n");
    EXPECT_EQ(error.format(),
              "edge.toml:3:14: uplink.broker_url: \"http://broker\": must start with mqtt:// or "
              "mqtts://");
}

TEST(ConfigTest, ArrayOfTablesBindsEachElementWithItsDefaults) {
    auto result = loadConfigString(R"(device_id = "x"
[[sensor]]
name = "boiler"
interval = "250ms"
[[sensor]]
name = "pump"
)",
                                   "edge.toml", schema());
    ASSERT_TRUE(result) << formatConfigErrors(result.error());
    const auto& sensors = result.value().sensors;
    ASSERT_EQ(sensors.size(), 2u);
    EXPECT_EQ(sensors[0].name, "boiler");
    EXPECT_EQ(sensors[0].interval, 250ms);
    EXPECT_EQ(sensors[1].name, "pump");
    EXPECT_EQ(sensors[1].interval, 1s);
    EXPECT_DOUBLE_EQ(sensors[1].scale, 1.0);
}

TEST(ConfigTest, ArrayOfTablesErrorNamesTheElement) {
    // The third block is sensor[2]: indexes count from 0, as in toml++'s paths.
    const ConfigErrors errors = loadErrors(R"(device_id = "x"
[[sensor]]
name = "a"
[[sensor]]
name = "b"
[[sensor]]
name = "c"
interval = "1ms"
[[sensor]]
interval = "1s"
)");
    ASSERT_EQ(errors.size(), 2u) << formatConfigErrors(errors);
    EXPECT_EQ(errors[0].format(),
              "edge.toml:8:12: sensor[2].interval: \"1ms\" is out of range [10ms, 1h]");
    // A required key missing from an element is placed at the element's header.
    EXPECT_EQ(errors[1].format(), "edge.toml:9:1: sensor[3].name: required key is missing");
}

TEST(ConfigTest, ArrayOfTablesWrittenAsATableIsAnError) {
    const ConfigError error = onlyError("device_id = \"x\"\n[sensor]\nname = \"a\"\n");
    EXPECT_EQ(error.key, "sensor");
    EXPECT_EQ(error.message, "expected an array of tables ([[...]]), got a table");
}

TEST(ConfigTest, PassThroughMapConvertsScalarsAndFlattensDottedKeys) {
    auto result = loadConfigString(R"(device_id = "x"
[uplink.paho]
"ssl.ca" = "/etc/ca.pem"
retry.backoff.ms = 250
ratio = 0.5
persist = false
)",
                                   "edge.toml", schema());
    ASSERT_TRUE(result) << formatConfigErrors(result.error());
    EXPECT_EQ(result.value().uplink.paho, (std::map<std::string, std::string>{
                                              {"ssl.ca", "/etc/ca.pem"},
                                              {"retry.backoff.ms", "250"},
                                              {"ratio", "0.5"},
                                              {"persist", "false"},
                                          }));
}

TEST(ConfigTest, PassThroughMapErrorsNameTheKey) {
    const ConfigErrors errors = loadErrors(R"(device_id = "x"
[uplink.paho]
hosts = ["a", "b"]
forbidden = 1
started.at = 2024-01-01
)");
    ASSERT_EQ(errors.size(), 3u) << formatConfigErrors(errors);
    EXPECT_EQ(errors[0].format(),
              "edge.toml:3:9: uplink.paho.hosts: arrays are not passed through; write a "
              "comma-separated string");
    EXPECT_EQ(errors[1].format(), "edge.toml:4:13: uplink.paho.forbidden: is not a Paho option");
    EXPECT_EQ(errors[2].key, "uplink.paho.started.at");
    EXPECT_EQ(errors[2].message, "expected a string, integer, float or boolean, got a date");
}

TEST(ConfigTest, RequiredKeyMissing) {
    // At the top level there is no line to point at; in a table, its header is the place.
    EXPECT_EQ(onlyError("[uplink]\ntls = true\n").format(),
              "edge.toml: device_id: required key is missing");
    EXPECT_EQ(onlyError("device_id = \"x\"\n[[sensor]]\ninterval = \"1s\"\n").format(),
              "edge.toml:2:1: sensor[0].name: required key is missing");
}

TEST(ConfigTest, RequiredKeyInAnAbsentTableIsReported) {
    struct Inner {
        std::string id;
    };
    struct Outer {
        Inner inner;
    };
    const auto outer = ConfigTable<Outer>("", "").table(
        &Outer::inner,
        ConfigTable<Inner>("inner", "").string("id", &Inner::id, "", "an id").required());
    auto result = loadConfigString("", "x.toml", outer);
    ASSERT_FALSE(result);
    ASSERT_EQ(result.error().size(), 1u);
    EXPECT_EQ(result.error()[0].format(), "x.toml: inner.id: required key is missing");
}

TEST(ConfigTest, StringListElementsMustBeStrings) {
    const ConfigError error = onlyError("device_id = \"x\"\n[uplink]\ntopics = [\"a\", 2]\n");
    EXPECT_EQ(error.format(),
              "edge.toml:3:16: uplink.topics[1]: expected a string, got an integer");
}

TEST(ConfigTest, OddKeysAreQuotedInPaths) {
    const ConfigError error = onlyError("device_id = \"x\"\n\"a b\\n\" = 1\n");
    EXPECT_EQ(error.key, "\"a b\\n\"");
}

TEST(ConfigTest, LoadConfigFileReadsFromDisk) {
    const std::filesystem::path path =
        std::filesystem::path(testing::TempDir()) / "tern_config_test.toml";
    {
        std::ofstream out(path);
        out << "device_id = \"pump-7\"\n[uplink]\nmax_inflight = 0\n";
    }
    auto result = loadConfigFile(path.string(), schema());
    ASSERT_FALSE(result);
    ASSERT_EQ(result.error().size(), 1u);
    EXPECT_EQ(result.error()[0].file, path.string());
    EXPECT_EQ(result.error()[0].line, 3);
    std::filesystem::remove(path);
}

TEST(ConfigTest, LoadConfigFileReportsAMissingFile) {
    auto result = loadConfigFile("/nonexistent/tern/edge.toml", schema());
    ASSERT_FALSE(result);
    ASSERT_EQ(result.error().size(), 1u);
    EXPECT_EQ(result.error()[0].format(),
              "/nonexistent/tern/edge.toml: cannot read: No such file or directory");
}

TEST(ConfigTest, ErrorsConvertToAStopError) {
    const Error error = toError(loadErrors("device_id = 1\nx = 2\n"));
    EXPECT_EQ(error.code, "invalid_config");
    EXPECT_EQ(error.action, ErrorAction::Stop);
    EXPECT_EQ(error.detail,
              "edge.toml:1:13: device_id: expected a string, got an integer\n"
              "edge.toml:2:1: x: unknown key");
}

TEST(ConfigDocsTest, RenderMarkdownListsEveryKeyWithDefaultAndRange) {
    const std::string docs = renderMarkdown(schema());
    EXPECT_NE(docs.find("## `[uplink]`\n\nMQTT uplink to the broker\n"), std::string::npos) << docs;
    EXPECT_NE(docs.find("## `[spool]`"), std::string::npos);
    EXPECT_NE(docs.find("## `[[sensor]]`"), std::string::npos);
    EXPECT_NE(docs.find("| Key | Type | Default | Range | Unit | Description |"),
              std::string::npos);
    for (const char* row : {
             "| `device_id` | string | **required** |  |  | this device's id |",
             "| `broker_url` | string | `\"mqtts://localhost:8883\"` |  |  | broker address |",
             "| `max_inflight` | integer | `32` | [1, 1024] | messages | QoS 1 publishes awaiting "
             "PUBACK |",
             "| `keepalive` | duration | `\"30s\"` | [1s, 1h] |  | MQTT keepalive |",
             "| `tls` | boolean | `true` |  |  | verify the broker's certificate |",
             "| `topics` | array of strings | `[\"telemetry\"]` |  |  | topics to publish on |",
             "| `paho` | table of strings | `{}` |  |  | options passed to Paho as they are |",
             "| `max_bytes` | size | `\"64MiB\"` | [1MiB, 1GiB] | bytes | backlog cap |",
             "| `high_watermark` | float | `0.8` | [0.0, 1.0] | fraction | fill level that raises "
             "an alert |",
             "| `compression` | enum | `\"zstd\"` | one of \"none\", \"zstd\" |  | block "
             "compression |",
             "| `name` | string | **required** |  |  | unique sensor name |",
             "| `interval` | duration | `\"1s\"` | [10ms, 1h] |  | poll interval |",
         }) {
        EXPECT_NE(docs.find(row), std::string::npos) << "missing row: " << row << "\n" << docs;
    }
}

}  // namespace
}  // namespace tern::shared
