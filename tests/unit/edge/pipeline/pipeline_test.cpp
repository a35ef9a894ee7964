#include "tern/edge/pipeline/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace tern::edge {
namespace {

struct RecordingBatches final : BatchSink {
    std::vector<shared::TelemetryBatch> batches;
    void onBatch(const shared::TelemetryBatch& batch) override { batches.push_back(batch); }
    std::vector<shared::Reading> readings() const {
        std::vector<shared::Reading> all;
        for (const auto& batch : batches)
            all.insert(all.end(), batch.readings.begin(), batch.readings.end());
        return all;
    }
};

struct RecordingAlerts final : AlertSink {
    std::vector<shared::Alert> alerts;
    void onAlert(const shared::Alert& alert) override { alerts.push_back(alert); }
};

// Stands in for the rule engine (tested on its own): fires once when a sample of `sensor`
// exceeds `above`, resolves once when one falls back.
struct ThresholdStage final : Stage {
    std::uint16_t sensor = 0;
    double above = 100.0;
    bool firing = false;
    int ticks = 0;
    Flow onReading(Sample& sample, StageCallbacks& out) override {
        if (sample.sensor != sensor) return Flow::Continue;
        const bool over = sample.value > above;
        if (over != firing) {
            firing = over;
            shared::Alert alert;
            alert.rule = "over";
            alert.sensor = sample.sensor;
            alert.state = over ? shared::AlertState::Firing : shared::AlertState::Resolved;
            alert.value = sample.value;
            alert.time_ms = sample.time_ms;
            out.raiseAlert(alert);
        }
        return Flow::Continue;
    }
    void onTick(const Tick&, StageCallbacks&) override { ++ticks; }
};

// A downsampler that releases nothing until flushed (as an aggregate releases no raw sample),
// recording what it was told.
struct SwallowingDownsampler final : Downsampler {
    std::vector<Sample> offered, forced;
    int flushes = 0;
    void offer(const Sample& sample, StageCallbacks&) override { offered.push_back(sample); }
    void forceKeep(const Sample& sample, StageCallbacks&) override { forced.push_back(sample); }
    void onTick(const Tick&, StageCallbacks&) override {}
    void flush(StageCallbacks&) override { ++flushes; }
};

// Holds the latest sample and releases the previous one on each offer, as a swinging door
// releases its held point late.
struct HoldingDownsampler final : Downsampler {
    std::optional<Sample> held;
    void offer(const Sample& sample, StageCallbacks& out) override {
        if (held) out.emitSample(*held);
        held = sample;
    }
    void forceKeep(const Sample& sample, StageCallbacks& out) override {
        if (held) out.emitSample(*held);
        held.reset();
        (void)sample;
    }
    void onTick(const Tick&, StageCallbacks&) override {}
    void flush(StageCallbacks& out) override {
        if (held) out.emitSample(*held);
        held.reset();
    }
};

Sample at(std::uint16_t sensor, std::int64_t second, double value) {
    return Sample{sensor, 1'763'600'000'000 + second * 1000, second * 1000, value,
                  shared::Quality::Good};
}

class PipelineTest : public ::testing::Test {
protected:
    void build(std::vector<std::unique_ptr<Downsampler>> downsamplers, BatchLimits limits = {}) {
        pipeline = std::make_unique<Pipeline>(rules, std::move(downsamplers), context, limits,
                                              batches, alerts, metrics);
    }
    std::uint64_t counter(const std::string& name, shared::Labels labels = {}) {
        return metrics.counter(name, help(name), std::move(labels)).value();
    }
    static std::string help(const std::string& name) {
        if (name == "tern_edge_pipeline_dropped_total")
            return "Samples the pipeline dropped, by reason";
        if (name == "tern_edge_pipeline_context_readings_total") {
            return "Raw readings sent as anomaly context around firing rules";
        }
        return "Samples the pipeline received from sources";
    }

    ThresholdStage rules;
    ContextWindow context{std::chrono::seconds(10), std::chrono::seconds(5), 100};
    RecordingBatches batches;
    RecordingAlerts alerts;
    shared::MetricsRegistry metrics;
    std::unique_ptr<Pipeline> pipeline;
};

TEST_F(PipelineTest, RawSensorsGoStraightToTheBatch) {
    std::vector<std::unique_ptr<Downsampler>> downsamplers(2);
    build(std::move(downsamplers));
    for (int s = 0; s < 5; ++s) {
        pipeline->onSample(at(0, s, 20.0 + s));
        pipeline->onSample(at(1, s, 50.0));
    }
    pipeline->flush();
    ASSERT_EQ(batches.batches.size(), 1u);
    EXPECT_EQ(batches.readings().size(), 10u);
    EXPECT_EQ(batches.readings()[2],
              (shared::Reading{0, 1'763'600'001'000, 21.0, shared::Quality::Good}));
}

TEST_F(PipelineTest, UnknownSensorsAndNonFiniteValuesAreDroppedAndCounted) {
    build(std::vector<std::unique_ptr<Downsampler>>(1));
    pipeline->onSample(at(3, 0, 1.0));
    pipeline->onSample(at(0, 0, std::nan("")));
    pipeline->onSample(at(0, 1, INFINITY));
    pipeline->onSample(at(0, 2, 1.0));
    pipeline->flush();
    EXPECT_EQ(batches.readings().size(), 1u);
    EXPECT_EQ(counter("tern_edge_pipeline_received_total"), 4u);
    EXPECT_EQ(counter("tern_edge_pipeline_dropped_total", {{"reason", "unknown_sensor"}}), 1u);
    EXPECT_EQ(counter("tern_edge_pipeline_dropped_total", {{"reason", "non_finite"}}), 2u);
}

TEST_F(PipelineTest, AlertsTakeTheirOwnLaneImmediately) {
    build(std::vector<std::unique_ptr<Downsampler>>(1));
    pipeline->onSample(at(0, 0, 50.0));
    pipeline->onSample(at(0, 1, 150.0));
    ASSERT_EQ(alerts.alerts.size(), 1u);  // before any batch is sealed
    EXPECT_TRUE(batches.batches.empty());
    EXPECT_EQ(alerts.alerts[0].state, shared::AlertState::Firing);
    pipeline->onSample(at(0, 2, 50.0));
    ASSERT_EQ(alerts.alerts.size(), 2u);
    EXPECT_EQ(alerts.alerts[1].state, shared::AlertState::Resolved);
}

TEST_F(PipelineTest, AnomalyContextSendsRawReadingsBeforeAndAfterAFiringRule) {
    std::vector<std::unique_ptr<Downsampler>> downsamplers;
    auto owned = std::make_unique<SwallowingDownsampler>();
    auto* downsampler = owned.get();
    downsamplers.push_back(std::move(owned));
    build(std::move(downsamplers));

    for (int s = 0; s < 30; ++s) pipeline->onSample(at(0, s, 20.0));  // all swallowed
    EXPECT_TRUE(batches.readings().empty());
    pipeline->onSample(at(0, 30, 150.0));  // fires at t=30 s
    for (int s = 31; s < 40; ++s) pipeline->onSample(at(0, s, 20.0));
    pipeline->flush();

    std::vector<std::int64_t> seconds;
    for (const auto& reading : batches.readings())
        seconds.push_back((reading.time_ms - 1'763'600'000'000) / 1000);
    // `before` = 10 s: samples from t=20..29 were held and go out raw; t=30..35 is `after` (5 s).
    std::vector<std::int64_t> expected;
    for (int s = 20; s <= 35; ++s) expected.push_back(s);
    EXPECT_EQ(seconds, expected);
    // Samples sent raw during `after` were shown to the downsampler as kept; the rest offered.
    EXPECT_EQ(downsampler->forced.size(), 6u);
    EXPECT_EQ(downsampler->offered.size(), 30u + 4u);
    EXPECT_EQ(counter("tern_edge_pipeline_context_readings_total"), 16u);
}

TEST_F(PipelineTest, ContextNeverSendsAReadingTwice) {
    std::vector<std::unique_ptr<Downsampler>> downsamplers;
    downsamplers.push_back(std::make_unique<HoldingDownsampler>());
    build(std::move(downsamplers));
    for (int s = 0; s < 5; ++s) pipeline->onSample(at(0, s, 20.0));
    pipeline->onSample(at(0, 5, 150.0));  // fires; the held t=4 sample goes out as context
    for (int s = 6; s < 20; ++s) pipeline->onSample(at(0, s, 20.0));
    pipeline->flush();
    std::vector<std::int64_t> seen;
    for (const auto& reading : batches.readings()) seen.push_back(reading.time_ms);
    std::vector<std::int64_t> unique = seen;
    std::sort(unique.begin(), unique.end());
    unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
    EXPECT_EQ(seen.size(), unique.size()) << "a reading was sent twice";
    EXPECT_EQ(unique.size(), 20u);  // every sample went out exactly once
}

// A sensor read less often than `before`: its held point is outside the context window when the
// rule fires, yet still has to go out once, not be mistaken for a point already sent.
TEST_F(PipelineTest, SlowSensorLosesNoHeldPointToContext) {
    std::vector<std::unique_ptr<Downsampler>> downsamplers;
    downsamplers.push_back(std::make_unique<HoldingDownsampler>());
    build(std::move(downsamplers));
    for (int s = 0; s < 100; s += 20) pipeline->onSample(at(0, s, 20.0));  // 0, 20, .., 80
    pipeline->onSample(at(0, 100, 150.0));                                 // fires; t=80 is held
    pipeline->onSample(at(0, 120, 20.0));
    pipeline->flush();
    std::vector<std::int64_t> seconds;
    for (const auto& reading : batches.readings())
        seconds.push_back((reading.time_ms - 1'763'600'000'000) / 1000);
    EXPECT_EQ(seconds, (std::vector<std::int64_t>{0, 20, 40, 60, 80, 100, 120}));
}

// A window whose statistics overflowed is dropped alone and counted; the batch stays valid.
TEST_F(PipelineTest, NonFiniteAggregateIsDroppedAndCounted) {
    struct OverflowingDownsampler final : Downsampler {
        void offer(const Sample& sample, StageCallbacks& out) override {
            out.emitAggregate(shared::Aggregate{sample.sensor, 0, 60'000, 2, 1e308, 1e308, INFINITY,
                                                1e308, shared::Quality::Good});
            out.emitAggregate(shared::Aggregate{sample.sensor, 60'000, 60'000, 1, 1.0, 1.0, 1.0,
                                                1.0, shared::Quality::Good});
        }
        void forceKeep(const Sample&, StageCallbacks&) override {}
        void onTick(const Tick&, StageCallbacks&) override {}
        void flush(StageCallbacks&) override {}
    };
    std::vector<std::unique_ptr<Downsampler>> downsamplers;
    downsamplers.push_back(std::make_unique<OverflowingDownsampler>());
    build(std::move(downsamplers));
    pipeline->onSample(at(0, 0, 1.0));
    pipeline->flush();
    ASSERT_EQ(batches.batches.size(), 1u);
    EXPECT_EQ(batches.batches[0].aggregates.size(), 1u);
    EXPECT_EQ(counter("tern_edge_pipeline_dropped_total", {{"reason", "non_finite_aggregate"}}),
              1u);
}

TEST_F(PipelineTest, TicksReachRulesAndAgeBatches) {
    build(std::vector<std::unique_ptr<Downsampler>>(1),
          BatchLimits{1000, 64 * 1024, std::chrono::seconds(10)});
    pipeline->onSample(at(0, 0, 1.0));
    pipeline->onTick(Tick{1'763'600'009'000, 9'000});
    EXPECT_TRUE(batches.batches.empty());
    pipeline->onTick(Tick{1'763'600'010'000, 10'000});
    EXPECT_EQ(batches.batches.size(), 1u);
    EXPECT_EQ(rules.ticks, 2);
}

TEST_F(PipelineTest, FlushReleasesDownsamplers) {
    std::vector<std::unique_ptr<Downsampler>> downsamplers;
    auto owned = std::make_unique<SwallowingDownsampler>();
    auto* downsampler = owned.get();
    downsamplers.push_back(std::move(owned));
    build(std::move(downsamplers));
    pipeline->flush();
    EXPECT_EQ(downsampler->flushes, 1);
}

}  // namespace
}  // namespace tern::edge
