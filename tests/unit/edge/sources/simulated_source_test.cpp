#include "tern/edge/sources/simulated_source.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "source_test_support.h"
#include "tern/shared/config.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using testing::CollectingSink;

SimulatedSensorConfig noisySine(std::int64_t seed) {
    SimulatedSensorConfig config;
    config.model = "sine";
    config.base = 21.0;
    config.amplitude = 2.0;
    config.period = 10min;
    config.noise = 0.3;
    config.resolution = 0.01;
    config.seed = seed;
    return config;
}

// `count` readings of one series, one every `every`.
std::vector<std::optional<double>> run(const SimulatedSensorConfig& config, int count,
                                       milliseconds every = 1s, std::uint16_t sensor = 0) {
    SimulatedSeries series(config, sensor);
    std::vector<std::optional<double>> out;
    for (int i = 0; i < count; ++i) out.push_back(series.next(every * i));
    return out;
}

std::vector<double> values(const std::vector<std::optional<double>>& readings) {
    std::vector<double> out;
    for (const auto& r : readings) {
        if (r) out.push_back(*r);
    }
    return out;
}

double mean(const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

class SimulatedSourceTest : public ::testing::Test {
protected:
    // Polls source `count` times, one `every` apart on the manual clock.
    void drive(SimulatedSource& source, CollectingSink& sink, int count, milliseconds every) {
        for (int i = 0; i < count; ++i) {
            source.pollOnce(sink);
            clock.advance(every);
        }
    }

    shared::ManualClock clock{shared::fromUnixMillis(1'700'000'000'000)};
    shared::MetricsRegistry metrics;
};

TEST_F(SimulatedSourceTest, SameSeedGivesTheSameSeriesAndOtherSeedsOthers) {
    auto make = [&](std::int64_t seed) {
        return SimulatedSource({{0, noisySine(seed), 1s}}, clock, metrics);
    };
    auto first = make(42);
    auto second = make(42);
    auto other = make(43);
    CollectingSink a, b, c;
    for (int i = 0; i < 200; ++i) {
        first.pollOnce(a);
        second.pollOnce(b);
        other.pollOnce(c);
        clock.advance(1s);
    }
    ASSERT_EQ(a.samples.size(), 200u);
    EXPECT_EQ(a.samples, b.samples);
    int differing = 0;
    for (std::size_t i = 0; i < a.samples.size(); ++i) {
        if (a.samples[i].value != c.samples[i].value) ++differing;
    }
    EXPECT_GT(differing, 150);
}

TEST_F(SimulatedSourceTest, ASeriesIsIndependentOfTheOtherSensors) {
    SimulatedSensorConfig walk;
    walk.model = "random_walk";
    walk.step = 1.0;
    walk.seed = 7;
    SimulatedSource alone({{5, noisySine(7), 1s}}, clock, metrics);
    SimulatedSource crowded({{1, walk, 1s}, {5, noisySine(7), 1s}, {2, noisySine(-1), 1s}}, clock,
                            metrics);
    CollectingSink a, b;
    for (int i = 0; i < 50; ++i) {
        alone.pollOnce(a);
        crowded.pollOnce(b);
        clock.advance(1s);
    }
    ASSERT_EQ(a.forSensor(5).size(), 50u);
    EXPECT_EQ(a.forSensor(5), b.forSensor(5));
}

TEST(SimulatedSeriesTest, WithoutASeedSensorsDifferButRepeat) {
    SimulatedSensorConfig config = noisySine(-1);
    EXPECT_EQ(run(config, 50, 1s, 3), run(config, 50, 1s, 3));
    EXPECT_NE(run(config, 50, 1s, 3), run(config, 50, 1s, 4));
}

TEST(SimulatedSeriesTest, ConstantAndSineFollowTheirShape) {
    SimulatedSensorConfig constant;
    constant.model = "constant";
    constant.base = 230.0;
    for (const auto& v : run(constant, 20)) EXPECT_EQ(v, 230.0);

    SimulatedSensorConfig sine;
    sine.model = "sine";
    sine.base = 10.0;
    sine.amplitude = 5.0;
    sine.period = 4s;
    SimulatedSeries series(sine, 0);
    EXPECT_NEAR(*series.next(0s), 10.0, 1e-12);
    EXPECT_NEAR(*series.next(1s), 15.0, 1e-12);
    EXPECT_NEAR(*series.next(2s), 10.0, 1e-12);
    EXPECT_NEAR(*series.next(3s), 5.0, 1e-12);
    EXPECT_NEAR(*series.next(4s + 1s), 15.0, 1e-12);  // periodic
}

TEST(SimulatedSeriesTest, NoiseHasTheConfiguredSpread) {
    SimulatedSensorConfig config;
    config.model = "constant";
    config.base = 100.0;
    config.noise = 2.0;
    config.seed = 1;
    const auto v = values(run(config, 20000));
    const double m = mean(v);
    double var = 0;
    for (const double x : v) var += (x - m) * (x - m);
    const double stddev = std::sqrt(var / static_cast<double>(v.size()));
    EXPECT_NEAR(m, 100.0, 0.1);
    EXPECT_NEAR(stddev, 2.0, 0.1);
}

TEST(SimulatedSeriesTest, RandomWalkMovesAndStaysWithinItsBound) {
    SimulatedSensorConfig config;
    config.model = "random_walk";
    config.base = 50.0;
    config.amplitude = 5.0;
    config.step = 1.0;
    config.seed = 9;
    const auto v = values(run(config, 5000));
    double low = v[0], high = v[0];
    for (const double x : v) {
        low = std::min(low, x);
        high = std::max(high, x);
    }
    EXPECT_GE(low, 45.0);
    EXPECT_LE(high, 55.0);
    EXPECT_GT(high - low, 8.0);  // it does wander across the band
    // Unbounded, the same steps wander further.
    config.amplitude = 0;
    const auto free = values(run(config, 5000));
    const auto [mn, mx] = std::minmax_element(free.begin(), free.end());
    EXPECT_GT(*mx - *mn, 20.0);
}

TEST(SimulatedSeriesTest, ResolutionGivesTheNearestDoubleToTheDecimal) {
    const auto v = values(run(noisySine(3), 500));
    for (const double x : v) {
        // Exactly what parsing the two-decimal text gives: 21.37, not 21.370000000000001.
        char text[32];
        std::snprintf(text, sizeof text, "%.2f", x);
        EXPECT_EQ(x, std::strtod(text, nullptr)) << text;
    }
    SimulatedSensorConfig half;
    half.model = "constant";
    half.base = 3.3;
    half.resolution = 0.5;
    EXPECT_EQ(run(half, 1)[0], 3.5);
    half.base = -3.2;
    EXPECT_EQ(run(half, 1)[0], -3.0);
}

SimulatedSensorConfig flat() {
    SimulatedSensorConfig config;
    config.model = "constant";
    config.base = 20.0;
    config.noise = 0.1;
    config.resolution = 0.01;
    config.seed = 11;
    return config;
}

TEST(SimulatedSeriesTest, SpikeIsOneValueFarOff) {
    SimulatedSensorConfig config = flat();
    config.faults.push_back({"spike", 30s, 0s, 50.0});
    const auto v = values(run(config, 60));
    ASSERT_EQ(v.size(), 60u);
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i == 30) {
            EXPECT_GT(v[i], 60.0);
        } else {
            EXPECT_LT(std::abs(v[i] - 20.0), 1.0) << i;
        }
    }
    // With a duration, every reading in the window.
    config.faults[0].duration = 5s;
    const auto w = values(run(config, 60));
    int high = 0;
    for (const double x : w) high += x > 60.0 ? 1 : 0;
    EXPECT_EQ(high, 5);
}

TEST(SimulatedSeriesTest, DriftShiftsTheMeanByMagnitudePerHour) {
    SimulatedSensorConfig config = flat();
    config.faults.push_back({"drift", 1h, 2h, 3.0});
    const auto v = run(config, 4 * 60, 1min);  // four hours, a reading a minute
    auto meanOf = [&](int from, int to) {
        std::vector<double> part;
        for (int i = from; i < to; ++i) part.push_back(*v[i]);
        return mean(part);
    };
    EXPECT_NEAR(meanOf(0, 60), 20.0, 0.05);          // before
    EXPECT_NEAR(meanOf(60, 120), 20.0 + 1.5, 0.1);   // first hour: ramps 0 -> 3
    EXPECT_NEAR(meanOf(120, 180), 20.0 + 4.5, 0.1);  // second hour: 3 -> 6
    EXPECT_NEAR(meanOf(180, 240), 20.0, 0.05);       // over
}

TEST(SimulatedSeriesTest, StuckHoldsTheLastValue) {
    SimulatedSensorConfig config = flat();
    config.faults.push_back({"stuck", 10s, 20s, 0.0});
    const auto v = values(run(config, 40));
    for (int i = 10; i < 30; ++i) EXPECT_EQ(v[i], v[9]) << i;
    // Before and after, the noise moves it.
    EXPECT_NE(v[30], v[9]);
    int changes = 0;
    for (int i = 31; i < 40; ++i) changes += v[i] != v[i - 1] ? 1 : 0;
    EXPECT_GT(changes, 5);
}

TEST(SimulatedSeriesTest, DropoutGivesNothingAndLeavesTheRestAsItWas) {
    SimulatedSensorConfig config = flat();
    const auto clean = run(config, 60);
    config.faults.push_back({"dropout", 20s, 10s, 0.0});
    const auto dropped = run(config, 60);
    for (int i = 0; i < 60; ++i) {
        if (i >= 20 && i < 30) {
            EXPECT_EQ(dropped[i], std::nullopt) << i;
        } else {
            EXPECT_EQ(dropped[i], clean[i]) << i;
        }
    }
}

TEST_F(SimulatedSourceTest, FaultTimesCountOnTheInjectedClockAndDropoutsAreCounted) {
    SimulatedSensorConfig config = flat();
    config.faults.push_back({"dropout", 5s, 0s, 0.0});  // until the end
    SimulatedSource source({{0, config, 1s}}, clock, metrics);
    CollectingSink sink;
    drive(source, sink, 10, 1s);
    EXPECT_EQ(sink.samples.size(), 5u);
    EXPECT_EQ(testing::errorCount(metrics, "simulated", "simulated_dropout"), 5u);
    EXPECT_EQ(testing::sampleCount(metrics, "simulated"), 5u);
    EXPECT_EQ(sink.samples[4].time_ms, 1'700'000'004'000);
    EXPECT_EQ(sink.samples[4].mono_ms, 4000);
}

TEST_F(SimulatedSourceTest, TimersDeliverEachIntervalOnTheLoop) {
    shared::SystemClock system;
    SimulatedSensorConfig config = flat();
    SimulatedSource source({{0, config, 5ms}, {1, config, 7ms}, {2, config, 5ms}}, system, metrics);
    boost::asio::io_context io;
    CollectingSink sink;
    source.start(io, sink);
    ASSERT_TRUE(testing::runUntil(io, [&] {
        return sink.forSensor(0).size() >= 5 && sink.forSensor(1).size() >= 5 &&
               sink.forSensor(2).size() >= 5;
    }));
    for (const auto& id : sink.threads) EXPECT_EQ(id, std::this_thread::get_id());
    source.stop();
    const auto delivered = sink.samples.size();
    io.restart();
    const auto begin = std::chrono::steady_clock::now();
    io.run_for(5s);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 4s);
    EXPECT_EQ(sink.samples.size(), delivered);
}

TEST(SimulatedSourceValidateTest, RejectsWhatTheTablesCannot) {
    SimulatedSensorConfig bad = flat();
    bad.model = "square";
    SimulatedSensorConfig bad_fault = flat();
    bad_fault.faults.push_back({"explode", 0s, 0s, 0.0});
    EXPECT_TRUE(SimulatedSource::validate({{0, flat(), 1s}}));
    const auto result = SimulatedSource::validate({{1, bad, 1s}, {2, bad_fault, 1s}});
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().detail.find("sensor 1: model \"square\""), std::string::npos);
    EXPECT_NE(result.error().detail.find("sensor 2: fault kind \"explode\""), std::string::npos);
}

// The seed's sensor set, as docs/edge-sources.md shows it.
constexpr const char* kSeedSensors = R"(
[[sensor]]
name = "temperature"
interval = "10s"
[sensor.simulated]
model = "sine"
base = 21.0
amplitude = 3.0
period = "24h"
noise = 0.05
resolution = 0.01
seed = 1

[[sensor]]
name = "humidity"
interval = "10s"
[sensor.simulated]
model = "random_walk"
base = 45.0
amplitude = 15.0
step = 0.2
noise = 0.1
resolution = 0.1
seed = 2

[[sensor]]
name = "vibration"
interval = "1s"
[sensor.simulated]
model = "constant"
base = 0.8
noise = 0.15
resolution = 0.001
seed = 3
[[sensor.simulated.fault]]
kind = "spike"
start = "30m"
magnitude = 12.0
[[sensor.simulated.fault]]
kind = "drift"
start = "2h"
duration = "6h"
magnitude = 0.5

[[sensor]]
name = "power_consumption"
interval = "5s"
[sensor.simulated]
model = "random_walk"
base = 1200.0
amplitude = 400.0
step = 25.0
noise = 5.0
resolution = 1.0
seed = 4
[[sensor.simulated.fault]]
kind = "stuck"
start = "1h"
duration = "10m"
[[sensor.simulated.fault]]
kind = "dropout"
start = "3h"
duration = "5m"
)";

struct TestSensor {
    std::string name;
    milliseconds interval{};
    SimulatedSensorConfig simulated;
};
struct TestConfig {
    std::vector<TestSensor> sensors;
};
shared::ConfigTable<TestConfig> testSchema() {
    return shared::ConfigTable<TestConfig>("", "").tables(
        &TestConfig::sensors, shared::ConfigTable<TestSensor>("sensor", "")
                                  .string("name", &TestSensor::name, "", "")
                                  .duration("interval", &TestSensor::interval, 1s, {1ms, 1h}, "")
                                  .table(&TestSensor::simulated, simulatedSensorTable()));
}

TEST(SimulatedConfigTest, TheDocumentedSeedSensorsLoadAndRun) {
    auto result = shared::loadConfigString(kSeedSensors, "edge.toml", testSchema());
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const auto& sensors = result.value().sensors;
    ASSERT_EQ(sensors.size(), 4u);
    EXPECT_EQ(sensors[0].simulated.model, "sine");
    EXPECT_EQ(sensors[0].simulated.period, 24h);
    EXPECT_EQ(sensors[0].simulated.seed, 1);
    EXPECT_EQ(sensors[1].simulated.model, "random_walk");
    EXPECT_DOUBLE_EQ(sensors[1].simulated.step, 0.2);
    ASSERT_EQ(sensors[2].simulated.faults.size(), 2u);
    EXPECT_EQ(sensors[2].simulated.faults[0].kind, "spike");
    EXPECT_EQ(sensors[2].simulated.faults[0].start, 30min);
    EXPECT_EQ(sensors[2].simulated.faults[0].duration, 0ms);
    EXPECT_DOUBLE_EQ(sensors[2].simulated.faults[0].magnitude, 12.0);
    EXPECT_EQ(sensors[2].simulated.faults[1].duration, 6h);
    ASSERT_EQ(sensors[3].simulated.faults.size(), 2u);
    EXPECT_EQ(sensors[3].simulated.faults[1].kind, "dropout");

    std::vector<SimulatedSensor> bindings;
    for (std::size_t i = 0; i < sensors.size(); ++i) {
        bindings.push_back(
            {static_cast<std::uint16_t>(i), sensors[i].simulated, sensors[i].interval});
    }
    EXPECT_TRUE(SimulatedSource::validate(bindings));
    // A quick look at the humidity: within its band, on its 0.1 grid.
    for (const auto& v : values(run(sensors[1].simulated, 1000, 10s))) {
        EXPECT_GE(v, 30.0 - 0.5);
        EXPECT_LE(v, 60.0 + 0.5);
        EXPECT_NEAR(v * 10, std::round(v * 10), 1e-9);
    }

    auto bad = shared::loadConfigString(
        "[[sensor]]\nname = \"x\"\n[sensor.simulated]\nmodel = \"sine\"\n[[sensor.simulated."
        "fault]]\nkind = \"melt\"\n",
        "edge.toml", testSchema());
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().at(0).key, "sensor[0].simulated.fault[0].kind");
}

}  // namespace
}  // namespace tern::edge
