#pragma once

// One valid instance of every message, with enough variety to exercise each encoding path.

#include <algorithm>
#include <cmath>

#include "tern/shared/messages.h"

namespace tern::shared::testing {

inline constexpr std::int64_t kT0 = 1'763'600'000'000;  // 2025-11-20, Unix ms

inline TelemetryBatch sampleBatch() {
    TelemetryBatch batch;
    batch.gateway_id = "gw-building-a-01";
    batch.sequence = {3, 41};
    batch.sent_at_ms = kT0 + 10'050;
    batch.clock_synced = true;
    for (int i = 0; i < 10; ++i) {
        const std::int64_t t = kT0 + i * 1000 + (i % 3);  // 1 Hz with a little jitter
        batch.readings.push_back({0, t, 21.37 + 0.01 * (i % 4), Quality::Good});
        batch.readings.push_back({1, t, 45.2 - 0.1 * i, i == 4 ? Quality::Bad : Quality::Good});
        batch.readings.push_back({2, t + 1, 0.003 * i, Quality::Good});
        batch.readings.push_back({7, t, 1200.0 + i, Quality::Good});
    }
    batch.readings.push_back({9, kT0 + 500, M_PI, Quality::TimeUncertain});  // no decimal form
    batch.readings.push_back({9, kT0 + 400, -1e300, Quality::Uncertain});    // time goes back
    batch.aggregates.push_back({5, kT0, 60'000, 60, 19.5, 22.25, 20.8125, 21.0, Quality::Good});
    return batch;
}

inline Alert sampleAlert() {
    return Alert{"gw-building-a-01",
                 {3, 42},
                 7,
                 "temp-high",
                 0,
                 Severity::Critical,
                 AlertState::Firing,
                 81.25,
                 kT0 + 3000,
                 true,
                 "temperature above 80 Cel for 30 s"};
}

inline GatewayStatus sampleStatus() {
    GatewayStatus status;
    status.gateway_id = "gw-building-a-01";
    status.kind = StatusKind::Birth;
    status.session = 12;
    status.epoch = 3;
    status.sent_at_ms = kT0;
    status.clock_synced = true;
    status.firmware_version = "2.1.3";
    status.sensors = {{0, "temperature", "Cel", SensorKind::Temperature},
                      {1, "humidity", "%", SensorKind::Humidity},
                      {2, "vibration", "m/s2", SensorKind::Vibration},
                      {7, "power_consumption", "W", SensorKind::Power}};
    status.backlog_batches = 17;
    status.backlog_bytes = 23'456;
    status.oldest_backlog_ms = kT0 - 3'600'000;
    status.drops = {{"store_full", 2, 200}, {"max_age", 1, 100}};
    return status;
}

inline Receipt sampleReceipt() {
    return Receipt{"gw-building-a-01", 3, 40, {{42, 45}, {50, 50}}, kT0};
}

inline Command sampleCommand() {
    return Command{"gw-building-a-01",
                   99,
                   "resend",
                   kT0,
                   kT0 + 60'000,
                   3,
                   {{10, 20}, {25, 25}},
                   {{"reason", "gap"}, {"priority", "low"}}};
}

inline CommandAck sampleCommandAck() {
    return CommandAck{"gw-building-a-01", 99, CommandResult::Done, "resent 12 batches", kT0 + 100};
}

// What decodeBatch returns for an encoded batch: readings grouped by sensor in ascending index,
// each sensor's readings in their original order.
inline TelemetryBatch groupedBySensor(TelemetryBatch batch) {
    std::stable_sort(batch.readings.begin(), batch.readings.end(),
                     [](const Reading& a, const Reading& b) { return a.sensor < b.sensor; });
    return batch;
}

}  // namespace tern::shared::testing
