#include "tern/edge/downsample/raw.h"

namespace tern::edge {

void RawDownsampler::offer(const Sample& sample, StageCallbacks& out) {
    ++stats_.received;
    ++stats_.emitted;
    out.emitSample(sample);
}

// The pipeline sends a forced sample itself; emitting it here too would duplicate it.
void RawDownsampler::forceKeep(const Sample& /*sample*/, StageCallbacks& /*out*/) {
    ++stats_.forced;
}

// Nothing is ever held.
void RawDownsampler::onTick(const Tick& /*now*/, StageCallbacks& /*out*/) {}
void RawDownsampler::flush(StageCallbacks& /*out*/) {}

}  // namespace tern::edge
