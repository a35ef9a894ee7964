#include "tern/edge/sources/sysfs_source.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "source_test_support.h"
#include "tern/shared/config.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using testing::CollectingSink;
using testing::errorCount;
using testing::TempDir;

SysfsSensor hwmon(std::uint16_t index, std::string device, std::string channel, double scale = 1.0,
                  double offset = 0.0) {
    return SysfsSensor{index, {"hwmon", std::move(device), std::move(channel), scale, offset}, 1s};
}

SysfsSensor iio(std::uint16_t index, std::string device, std::string channel) {
    return SysfsSensor{index, {"iio", std::move(device), std::move(channel), 1.0, 0.0}, 1s};
}

class SysfsSourceTest : public ::testing::Test {
protected:
    SysfsSource make(std::vector<SysfsSensor> sensors) {
        return SysfsSource(SysfsConfig{dir.path().string()}, std::move(sensors), clock, metrics);
    }
    // The value of the one sample of sensor in sink, failing the test if there is not exactly one.
    static double only(const CollectingSink& sink, std::uint16_t sensor) {
        const auto samples = sink.forSensor(sensor);
        EXPECT_EQ(samples.size(), 1u) << "sensor " << sensor;
        return samples.empty() ? -12345.0 : samples.front().value;
    }

    TempDir dir;
    shared::ManualClock clock{shared::fromUnixMillis(1'700'000'000'000)};
    shared::MetricsRegistry metrics;
};

TEST(SysfsNumberTest, ParsesWhatTheKernelWrites) {
    EXPECT_EQ(parseSysfsNumber("45000\n"), 45000.0);
    EXPECT_EQ(parseSysfsNumber("-12\n"), -12.0);
    EXPECT_EQ(parseSysfsNumber("0.000610351\n"), 0.000610351);
    EXPECT_EQ(parseSysfsNumber("  3 \n"), 3.0);
    for (const char* bad : {"", "\n", "abc", "12abc", "1 2", "nan", "inf", "1e400", "0x10"}) {
        EXPECT_EQ(parseSysfsNumber(bad), std::nullopt) << bad;
    }
}

TEST_F(SysfsSourceTest, ReadsHwmonChannelsInBaseUnits) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    dir.write("class/hwmon/hwmon1/name", "ina219\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "45678\n");
    dir.write("class/hwmon/hwmon1/in0_input", "3300\n");
    dir.write("class/hwmon/hwmon1/fan1_input", "1200\n");
    dir.write("class/hwmon/hwmon1/humidity1_input", "45500\n");
    dir.write("class/hwmon/hwmon1/curr1_input", "1500\n");
    dir.write("class/hwmon/hwmon1/power1_input", "2500000\n");
    dir.write("class/hwmon/hwmon1/power1_average", "1250000\n");
    dir.write("class/hwmon/hwmon1/energy1_input", "7000000\n");
    auto source = make({hwmon(0, "cpu_thermal", "temp1"), hwmon(1, "ina219", "in0"),
                        hwmon(2, "ina219", "fan1"), hwmon(3, "ina219", "humidity1"),
                        hwmon(4, "ina219", "curr1"), hwmon(5, "ina219", "power1"),
                        hwmon(6, "ina219", "power1_average"), hwmon(7, "ina219", "energy1")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_DOUBLE_EQ(only(sink, 0), 45.678);  // m°C
    EXPECT_DOUBLE_EQ(only(sink, 1), 3.3);     // mV
    EXPECT_DOUBLE_EQ(only(sink, 2), 1200.0);  // RPM
    EXPECT_DOUBLE_EQ(only(sink, 3), 45.5);    // m%RH
    EXPECT_DOUBLE_EQ(only(sink, 4), 1.5);     // mA
    EXPECT_DOUBLE_EQ(only(sink, 5), 2.5);     // µW
    EXPECT_DOUBLE_EQ(only(sink, 6), 1.25);
    EXPECT_DOUBLE_EQ(only(sink, 7), 7.0);  // µJ
    EXPECT_EQ(testing::sampleCount(metrics, "sysfs"), 8u);
}

TEST_F(SysfsSourceTest, StampsBothClocksFromTheInjectedClock) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "40000\n");
    auto source = make({hwmon(9, "cpu_thermal", "temp1")});
    clock.advance(1500ms);
    CollectingSink sink;
    source.pollOnce(sink);
    ASSERT_EQ(sink.samples.size(), 1u);
    EXPECT_EQ(sink.samples[0].sensor, 9);
    EXPECT_EQ(sink.samples[0].time_ms, 1'700'000'001'500);
    EXPECT_EQ(sink.samples[0].mono_ms, 1500);
    EXPECT_EQ(sink.samples[0].quality, shared::Quality::Good);
}

TEST_F(SysfsSourceTest, FindsHwmonByDirectoryNameAndInTheDeviceSubdirectory) {
    // Older drivers keep their attributes under hwmonN/device/ and may have no name file.
    dir.write("class/hwmon/hwmon3/device/temp2_input", "-5000\n");
    auto source = make({hwmon(0, "hwmon3", "temp2")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_DOUBLE_EQ(only(sink, 0), -5.0);
}

TEST_F(SysfsSourceTest, PicksTheFirstDeviceOfANameInNaturalOrder) {
    dir.write("class/hwmon/hwmon10/name", "nvme\n");
    dir.write("class/hwmon/hwmon10/temp1_input", "10000\n");
    dir.write("class/hwmon/hwmon2/name", "nvme\n");
    dir.write("class/hwmon/hwmon2/temp1_input", "2000\n");
    auto source = make({hwmon(0, "nvme", "temp1")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_DOUBLE_EQ(only(sink, 0), 2.0);
}

TEST_F(SysfsSourceTest, AppliesScaleThenOffsetAfterUnits) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "100000\n");
    auto source = make({hwmon(0, "cpu_thermal", "temp1", 1.8, 32.0)});  // °F
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_DOUBLE_EQ(only(sink, 0), 212.0);
}

TEST_F(SysfsSourceTest, ReadsIioRawWithScaleAndOffset) {
    const std::string dev = "bus/iio/devices/iio:device0/";
    dir.write(dev + "name", "bme280\n");
    // (raw + offset) * scale = (2500 - 500) * 10 = 20000 m°C
    dir.write(dev + "in_temp_raw", "2500\n");
    dir.write(dev + "in_temp_offset", "-500\n");
    dir.write(dev + "in_temp_scale", "10.000000\n");
    // No scale or offset: 1 and 0. 45000 m%RH.
    dir.write(dev + "in_humidityrelative_raw", "45000\n");
    // Scale shared by the voltage channels: 1000 * 0.5 = 500 mV.
    dir.write(dev + "in_voltage0_raw", "1000\n");
    dir.write(dev + "in_voltage_scale", "0.5\n");
    // Pressure is in kPa and stays so.
    dir.write(dev + "in_pressure_input", "101.325\n");
    auto source = make({iio(0, "bme280", "in_temp"), iio(1, "bme280", "in_humidityrelative"),
                        iio(2, "bme280", "in_voltage0"), iio(3, "iio:device0", "in_pressure")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_DOUBLE_EQ(only(sink, 0), 20.0);
    EXPECT_DOUBLE_EQ(only(sink, 1), 45.0);
    EXPECT_DOUBLE_EQ(only(sink, 2), 0.5);
    EXPECT_DOUBLE_EQ(only(sink, 3), 101.325);
}

TEST_F(SysfsSourceTest, PrefersTheIioProcessedInputOverRaw) {
    const std::string dev = "bus/iio/devices/iio:device1/";
    dir.write(dev + "name", "sht4x\n");
    dir.write(dev + "in_temp_input", "21370\n");
    dir.write(dev + "in_temp_raw", "999\n");
    dir.write(dev + "in_temp_scale", "7\n");
    auto source = make({iio(0, "sht4x", "in_temp")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_DOUBLE_EQ(only(sink, 0), 21.37);
}

TEST_F(SysfsSourceTest, VanishedDeviceYieldsNothingThenResumesUnderANewNumber) {
    dir.write("class/hwmon/hwmon0/name", "sensor_hub\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "30000\n");
    auto source = make({hwmon(0, "sensor_hub", "temp1")});
    CollectingSink sink;
    source.pollOnce(sink);
    ASSERT_EQ(sink.samples.size(), 1u);

    // Unplugged: the open file vanishes (read_failed), then the lookup finds nothing.
    std::filesystem::remove_all(dir.path() / "class/hwmon/hwmon0");
    source.pollOnce(sink);
    source.pollOnce(sink);
    EXPECT_EQ(sink.samples.size(), 1u);
    EXPECT_EQ(errorCount(metrics, "sysfs", "read_failed"), 1u);
    EXPECT_EQ(errorCount(metrics, "sysfs", "device_not_found"), 1u);

    // Plugged back in, as another hwmonN.
    dir.write("class/hwmon/hwmon4/name", "sensor_hub\n");
    dir.write("class/hwmon/hwmon4/temp1_input", "31000\n");
    source.pollOnce(sink);
    ASSERT_EQ(sink.samples.size(), 2u);
    EXPECT_DOUBLE_EQ(sink.samples[1].value, 31.0);
}

TEST_F(SysfsSourceTest, UnparsableContentIsCountedAndReadingsResumeWhenFixed) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "garbage\n");
    auto source = make({hwmon(0, "cpu_thermal", "temp1")});
    CollectingSink sink;
    source.pollOnce(sink);
    source.pollOnce(sink);
    EXPECT_TRUE(sink.samples.empty());
    EXPECT_EQ(errorCount(metrics, "sysfs", "parse_failed"), 2u);
    dir.write("class/hwmon/hwmon0/temp1_input", "42000\n");
    source.pollOnce(sink);
    ASSERT_EQ(sink.samples.size(), 1u);
    EXPECT_DOUBLE_EQ(sink.samples[0].value, 42.0);
}

TEST_F(SysfsSourceTest, UnreadableFileIsCountedAsReadFailed) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "42000\n");
    auto source = make({hwmon(0, "cpu_thermal", "temp1")});
    CollectingSink sink;
    source.pollOnce(sink);
    ASSERT_EQ(sink.samples.size(), 1u);
    // A path that opens but cannot be read (EISDIR), as a driver's EIO would; chmod would not do,
    // since tests may run as root.
    const auto path = dir.path() / "class/hwmon/hwmon0/temp1_input";
    std::filesystem::remove(path);
    std::filesystem::create_directory(path);
    source.pollOnce(sink);
    EXPECT_EQ(sink.samples.size(), 1u);
    EXPECT_EQ(errorCount(metrics, "sysfs", "read_failed"), 1u);
}

TEST_F(SysfsSourceTest, MissingDeviceOrChannelNeverCrashes) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    auto source = make({hwmon(0, "no_such_device", "temp1"), hwmon(1, "cpu_thermal", "temp7"),
                        iio(2, "bme280", "in_temp")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_TRUE(sink.samples.empty());
    EXPECT_EQ(errorCount(metrics, "sysfs", "device_not_found"), 2u);  // hwmon and the iio tree
    EXPECT_EQ(errorCount(metrics, "sysfs", "read_failed"), 1u);       // temp7 is not there
}

TEST_F(SysfsSourceTest, ValidateRejectsChannelsThatDoNotFitTheirKind) {
    EXPECT_TRUE(SysfsSource::validate({}, {hwmon(0, "a", "temp1"), iio(1, "b", "in_voltage0")}));
    const auto result = SysfsSource::validate(
        {}, {hwmon(0, "a", "in_temp"), iio(1, "b", "temp1"), hwmon(2, "a", "temp"),
             hwmon(3, "", "temp1"), hwmon(4, "a", "pwm1")});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, "invalid_config");
    for (const char* sensor : {"sensor 0", "sensor 1", "sensor 2", "sensor 3", "sensor 4"}) {
        EXPECT_NE(result.error().detail.find(sensor), std::string::npos) << result.error().detail;
    }
    // Such a sensor is never read, even if a file of that name exists.
    dir.write("class/hwmon/hwmon0/name", "a\n");
    dir.write("class/hwmon/hwmon0/temp_input", "1000\n");
    auto source = make({hwmon(0, "a", "temp")});
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_TRUE(sink.samples.empty());
}

TEST_F(SysfsSourceTest, TimersReadOnTheLoopThreadUntilStopped) {
    dir.write("class/hwmon/hwmon0/name", "cpu_thermal\n");
    dir.write("class/hwmon/hwmon0/temp1_input", "40000\n");
    std::vector<SysfsSensor> sensors{hwmon(0, "cpu_thermal", "temp1"),
                                     hwmon(1, "cpu_thermal", "temp1")};
    sensors[0].interval = 10ms;
    sensors[1].interval = 15ms;
    auto source = make(sensors);
    boost::asio::io_context io;
    CollectingSink sink;
    source.start(io, sink);
    ASSERT_TRUE(testing::runUntil(
        io, [&] { return sink.forSensor(0).size() >= 3 && sink.forSensor(1).size() >= 3; }));
    for (const auto& id : sink.threads) EXPECT_EQ(id, std::this_thread::get_id());
    source.stop();
    const auto delivered = sink.samples.size();
    // With its timers cancelled the loop runs out of work at once.
    io.restart();
    const auto begin = std::chrono::steady_clock::now();
    io.run_for(5s);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 4s);
    EXPECT_EQ(sink.samples.size(), delivered);
}

// The tables as the agent nests them: [sysfs] at the top, [sensor.sysfs] in each [[sensor]].
struct TestSensor {
    std::string name;
    SysfsSensorConfig sysfs;
};
struct TestConfig {
    SysfsConfig sysfs;
    std::vector<TestSensor> sensors;
};
shared::ConfigTable<TestConfig> testSchema() {
    return shared::ConfigTable<TestConfig>("", "")
        .table(&TestConfig::sysfs, sysfsTable())
        .tables(&TestConfig::sensors, shared::ConfigTable<TestSensor>("sensor", "")
                                          .string("name", &TestSensor::name, "", "")
                                          .table(&TestSensor::sysfs, sysfsSensorTable()));
}

TEST(SysfsConfigTest, TablesReadTheDocumentedKeys) {
    auto result = shared::loadConfigString(R"(
[sysfs]
root = "/host/sys"
[[sensor]]
name = "cpu"
[sensor.sysfs]
kind = "hwmon"
device = "cpu_thermal"
channel = "temp1"
[[sensor]]
name = "pressure"
[sensor.sysfs]
kind = "iio"
device = "bme280"
channel = "in_pressure"
scale = 10.0
offset = -0.5
)",
                                           "edge.toml", testSchema());
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const auto& config = result.value();
    EXPECT_EQ(config.sysfs.root, "/host/sys");
    ASSERT_EQ(config.sensors.size(), 2u);
    EXPECT_EQ(config.sensors[0].sysfs.kind, "hwmon");
    EXPECT_EQ(config.sensors[0].sysfs.device, "cpu_thermal");
    EXPECT_EQ(config.sensors[0].sysfs.channel, "temp1");
    EXPECT_DOUBLE_EQ(config.sensors[0].sysfs.scale, 1.0);
    EXPECT_EQ(config.sensors[1].sysfs.kind, "iio");
    EXPECT_DOUBLE_EQ(config.sensors[1].sysfs.scale, 10.0);
    EXPECT_DOUBLE_EQ(config.sensors[1].sysfs.offset, -0.5);

    auto bad = shared::loadConfigString(
        "[[sensor]]\nname = \"x\"\n[sensor.sysfs]\nkind = \"i2c\"\ndevice = \"a\"\n", "edge.toml",
        testSchema());
    ASSERT_FALSE(bad);
    ASSERT_EQ(bad.error().size(), 1u) << shared::formatConfigErrors(bad.error());
    EXPECT_EQ(bad.error()[0].key, "sensor[0].sysfs.kind");
}

TEST(SysfsConfigTest, AnAbsentSensorTableLoadsAndValidateAsksForItsKeys) {
    // The agent nests [sensor.sysfs] in every [[sensor]], whatever its source: a sensor of another
    // source must load without one.
    auto result = shared::loadConfigString("[[sensor]]\nname = \"x\"\n", "edge.toml", testSchema());
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    // Had it been a sysfs sensor, validate() reports what is missing.
    const auto checked =
        SysfsSource::validate(result.value().sysfs, {{0, result.value().sensors[0].sysfs, 1s}});
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error().detail, "sensor 0: device is required");
    const auto no_channel = SysfsSource::validate({}, {hwmon(1, "cpu_thermal", "")});
    ASSERT_FALSE(no_channel);
    EXPECT_EQ(no_channel.error().detail, "sensor 1: channel is required");
}

}  // namespace
}  // namespace tern::edge
