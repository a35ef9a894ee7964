// Wire benchmark: what a reading costs on the wire and how fast it is decoded, for Tern's
// columnar FlatBuffers batch against the seed's JSON documents, measured in the same run.
//
// Readings are realistic: ten sensors at 1 Hz with a few ms of scheduling jitter, each value at
// its sensor's resolution (0.01 degC, 0.1 %RH, 1 ppm, ...), from sine, noise and random-walk
// models with a fixed seed, so every run sees the same data.

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "tern/shared/codec.h"

namespace {

using tern::shared::Bytes;
using tern::shared::Reading;
using tern::shared::TelemetryBatch;

struct SensorModel {
    const char* name;
    double resolution;
    double base;
    double amplitude;  // of a slow sine
    double noise;      // standard deviation of white noise
    double walk;       // standard deviation of each random-walk step
};

constexpr SensorModel kSensors[] = {
    {"temperature", 0.01, 21.0, 2.0, 0.02, 0.005},
    {"humidity", 0.1, 45.0, 5.0, 0.1, 0.02},
    {"vibration", 0.001, 0.003, 0.0, 0.002, 0.0},
    {"power_consumption", 0.1, 120.0, 15.0, 1.5, 0.2},
    {"pressure", 0.01, 1013.0, 0.5, 0.02, 0.01},
    {"voltage", 0.001, 230.0, 0.0, 0.15, 0.01},
    {"current", 0.001, 0.52, 0.05, 0.004, 0.001},
    {"co2", 1.0, 600.0, 80.0, 3.0, 0.5},
    {"fan_speed", 1.0, 2400.0, 0.0, 12.0, 1.0},
    {"light", 0.1, 350.0, 200.0, 2.0, 0.5},
};
constexpr std::size_t kSensorCount = std::size(kSensors);
constexpr std::int64_t kStartMs = 1'763'600'000'000;
const char* const kGatewayId = "gw-building-a-floor-3-0042";

// A value at the sensor's resolution is the double a sensor driver gets by parsing its decimal
// text (or scaling its integer register): the nearest double to mantissa x resolution.
double atResolution(double value, double resolution) {
    const double steps = 1.0 / resolution;
    return static_cast<double>(std::llround(value * steps)) / steps;
}

// `seconds` samples of every sensor: seconds x 10 readings.
std::vector<Reading> makeReadings(std::size_t seconds) {
    std::mt19937_64 random(42);
    std::normal_distribution<double> gaussian(0.0, 1.0);
    std::vector<double> walk(kSensorCount, 0.0);
    std::vector<Reading> readings;
    for (std::size_t s = 0; s < seconds; ++s) {
        const std::int64_t tick = kStartMs + static_cast<std::int64_t>(s) * 1000 +
                                  static_cast<std::int64_t>(random() % 7);  // jitter 0..6 ms
        for (std::size_t i = 0; i < kSensorCount; ++i) {
            const auto& model = kSensors[i];
            walk[i] += model.walk * gaussian(random);
            const double phase = 2.0 * M_PI * static_cast<double>(s) / 3600.0;
            double value = model.base + model.amplitude * std::sin(phase + static_cast<double>(i)) +
                           walk[i] + model.noise * gaussian(random);
            if (std::string_view(model.name) == "vibration") value = std::fabs(value);
            readings.push_back({static_cast<std::uint16_t>(i), tick,
                                atResolution(value, model.resolution),
                                tern::shared::Quality::Good});
        }
    }
    return readings;
}

TelemetryBatch makeBatch(const std::vector<Reading>& readings) {
    TelemetryBatch batch;
    batch.gateway_id = kGatewayId;
    batch.sequence = {1, 1};
    batch.sent_at_ms = readings.back().time_ms + 20;
    batch.clock_synced = true;
    batch.readings = readings;
    return batch;
}

std::string isoTime(std::int64_t ms) {
    const std::time_t seconds = ms / 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
    return fmt::format("{}.{:03}Z", text, ms % 1000);
}

// The seed's schema: one document per device and timestamp, every metric by name. The batch
// is newline-delimited documents, the form a JSON pipeline batches and compresses.
std::string toJsonDocuments(const std::vector<Reading>& readings) {
    std::string out;
    for (std::size_t i = 0; i < readings.size(); i += kSensorCount) {
        nlohmann::json document;
        document["device_id"] = kGatewayId;
        document["timestamp"] = isoTime(readings[i].time_ms);
        auto& metrics = document["metrics"];
        for (std::size_t k = 0; k < kSensorCount; ++k) {
            metrics[kSensors[readings[i + k].sensor].name] = readings[i + k].value;
        }
        out += document.dump();
        out += '\n';
    }
    return out;
}

std::int64_t parseIsoTime(const std::string& text) {
    std::tm utc{};
    int millis = 0;
    std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &utc.tm_year, &utc.tm_mon, &utc.tm_mday,
                &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &millis);
    utc.tm_year -= 1900;
    utc.tm_mon -= 1;
    return static_cast<std::int64_t>(timegm(&utc)) * 1000 + millis;
}

// Parsing JSON into the same Reading structs the FlatBuffers decoder produces.
std::vector<Reading> fromJsonDocuments(const std::string& text) {
    std::vector<Reading> readings;
    std::size_t begin = 0;
    while (begin < text.size()) {
        const std::size_t end = text.find('\n', begin);
        const auto document = nlohmann::json::parse(text.begin() + static_cast<long>(begin),
                                                    text.begin() + static_cast<long>(end));
        const std::int64_t time = parseIsoTime(document.at("timestamp").get<std::string>());
        for (const auto& [name, value] : document.at("metrics").items()) {
            std::uint16_t index = 0;
            while (index < kSensorCount && name != kSensors[index].name) ++index;
            readings.push_back({index, time, value.get<double>(), tern::shared::Quality::Good});
        }
        begin = end + 1;
    }
    return readings;
}

std::size_t zstdSize(const std::string& text, int level) {
    std::vector<char> out(ZSTD_compressBound(text.size()));
    return ZSTD_compress(out.data(), out.size(), text.data(), text.size(), level);
}

// Readings per second of `work`, best of five runs of ~0.2 s each.
template <class Work>
double readingsPerSecond(std::size_t readings_per_call, Work&& work) {
    using Clock = std::chrono::steady_clock;
    double best = 0.0;
    for (int run = 0; run < 5; ++run) {
        std::size_t calls = 0;
        const auto start = Clock::now();
        auto now = start;
        do {
            for (int i = 0; i < 16; ++i) work();
            calls += 16;
            now = Clock::now();
        } while (now - start < std::chrono::milliseconds(200));
        const double seconds = std::chrono::duration<double>(now - start).count();
        best = std::max(best, static_cast<double>(calls * readings_per_call) / seconds);
    }
    return best;
}

volatile std::size_t g_sink;  // keeps results alive so the optimiser cannot drop the work

}  // namespace

std::vector<Reading> sortedBySensor(std::vector<Reading> readings) {
    std::sort(readings.begin(), readings.end(), [](const Reading& a, const Reading& b) {
        return std::tie(a.sensor, a.time_ms) < std::tie(b.sensor, b.time_ms);
    });
    return readings;
}

struct Throughput {
    double encode;
    double decode;
};

int main() {
    using tern::shared::Compression;
    fmt::print("Tern wire benchmark: {} sensors at 1 Hz, values at sensor resolution\n\n",
               kSensorCount);
    fmt::print("Bytes per reading\n");
    fmt::print(
        "| readings per batch | FlatBuffers | FlatBuffers + zstd-3 | **on the wire** (Auto) | JSON "
        "docs | JSON docs + "
        "zstd-3 | JSON docs + zstd-19 |\n");
    fmt::print("|---:|---:|---:|---:|---:|---:|---:|\n");
    bool size_target_met = true;
    bool speed_target_met = true;
    std::vector<std::pair<std::size_t, std::vector<std::pair<std::string, Throughput>>>> speeds;
    for (const std::size_t seconds : {10, 100}) {
        const auto readings = makeReadings(seconds);
        const auto batch = makeBatch(readings);
        const auto plain = tern::shared::encodeBatch(batch, {Compression::None}).value();
        const auto packed = tern::shared::encodeBatch(batch, {Compression::Zstd}).value();
        const auto wire = tern::shared::encodeBatch(batch).value();
        const auto json = toJsonDocuments(readings);
        if (sortedBySensor(fromJsonDocuments(json)) !=
            sortedBySensor(tern::shared::decodeBatch(wire).value().readings)) {
            fmt::print("JSON and FlatBuffers disagree on the readings\n");
            return 1;
        }
        const double n = static_cast<double>(readings.size());
        const auto perReading = [n](std::size_t bytes) { return static_cast<double>(bytes) / n; };
        const double json_zstd = perReading(zstdSize(json, 3));
        const double json_zstd_max = perReading(zstdSize(json, 19));
        const double on_wire = perReading(wire.size());
        size_target_met = size_target_met && on_wire <= 10.0 && on_wire < json_zstd_max;
        fmt::print("| {} | {:.2f} | {:.2f} | **{:.2f}** | {:.2f} | {:.2f} | {:.2f} |\n",
                   readings.size(), perReading(plain.size()), perReading(packed.size()), on_wire,
                   perReading(json.size()), json_zstd, json_zstd_max);

        const std::size_t count = readings.size();
        const auto measure = [&](const Bytes& payload, Compression compression) {
            return Throughput{
                readingsPerSecond(
                    count,
                    [&] {
                        g_sink = tern::shared::encodeBatch(batch, {compression}).value().size();
                    }),
                readingsPerSecond(count, [&] {
                    g_sink = tern::shared::decodeBatch(payload).value().readings.size();
                })};
        };
        const Throughput json_speed{
            readingsPerSecond(count, [&] { g_sink = toJsonDocuments(readings).size(); }),
            readingsPerSecond(count, [&] { g_sink = fromJsonDocuments(json).size(); })};
        const Throughput wire_speed = measure(wire, Compression::Auto);
        speed_target_met = speed_target_met && wire_speed.decode >= 20.0 * json_speed.decode;
        speeds.push_back({count,
                          {{"FlatBuffers", measure(plain, Compression::None)},
                           {"FlatBuffers + zstd-3", measure(packed, Compression::Zstd)},
                           {"**on the wire** (Auto)", wire_speed},
                           {"JSON docs (nlohmann-json)", json_speed}}});
    }

    fmt::print("\nThroughput on one core, readings/s (x = against JSON in the same run)\n");
    fmt::print(
        "| readings per batch | format | encode | verify + decode |\n|---:|---|---:|---:|\n");
    for (const auto& [count, rows] : speeds) {
        const Throughput& json = rows.back().second;
        for (const auto& [name, speed] : rows) {
            fmt::print("| {} | {} | {:.3g} ({:.1f}x) | {:.3g} ({:.1f}x) |\n", count, name,
                       speed.encode, speed.encode / json.encode, speed.decode,
                       speed.decode / json.decode);
        }
    }
    fmt::print(
        "\nTargets: on-the-wire bytes/reading <= 10 and below JSON+zstd: {}; on-the-wire "
        "verify+decode >= 20x JSON "
        "parse: {}\n",
        size_target_met ? "met" : "NOT met", speed_target_met ? "met" : "NOT met");
    return size_target_met && speed_target_met ? 0 : 1;
}
