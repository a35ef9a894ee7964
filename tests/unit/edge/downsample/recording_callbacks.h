#pragma once

// A StageCallbacks that remembers everything a downsampler sends, for the downsample tests.

#include <cstdint>
#include <vector>

#include "tern/edge/sample.h"
#include "tern/edge/stage.h"
#include "tern/shared/messages.h"

namespace tern::edge::downsample_testing {

class RecordingCallbacks final : public StageCallbacks {
public:
    void emitSample(const Sample& sample) override { samples.push_back(sample); }
    void emitAggregate(const shared::Aggregate& aggregate) override {
        aggregates.push_back(aggregate);
    }
    void raiseAlert(const shared::Alert& /*alert*/) override { ++alerts; }

    void clear() {
        samples.clear();
        aggregates.clear();
        alerts = 0;
    }

    std::vector<Sample> samples;
    std::vector<shared::Aggregate> aggregates;
    int alerts = 0;
};

// A Good sample of sensor 1 at wall time time_ms; the monotonic clock runs alongside it unless
// told otherwise.
inline Sample sampleAt(std::int64_t time_ms, double value,
                       shared::Quality quality = shared::Quality::Good) {
    return Sample{1, time_ms, time_ms, value, quality};
}

inline Sample sampleAtMono(std::int64_t time_ms, std::int64_t mono_ms, double value,
                           shared::Quality quality = shared::Quality::Good) {
    return Sample{1, time_ms, mono_ms, value, quality};
}

}  // namespace tern::edge::downsample_testing
