// A fixed amount of the edge agent's work, for counting instructions per reading on each
// architecture (tests/bench/board_bench): 100 simulated sensors through rules, downsampling and
// batching into the real SQLite store (synchronous=FULL), on a manual clock, so that a run is the
// same instructions every time. board_bench runs it twice, with and without the measured seconds,
// and divides the difference by the readings in them: start-up and warm-up cancel out.
//
// Usage: reading_workload <store directory> <warm-up seconds> <measured seconds>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "pipeline_config.h"
#include "tern/edge/assembly.h"
#include "tern/edge/config.h"
#include "tern/edge/sources/simulated_source.h"
#include "tern/edge/store/store.h"

namespace {

using namespace tern;

int fail(const std::string& why) {
    fmt::print(stderr, "reading_workload: {}\n", why);
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4)
        return fail("usage: reading_workload <store directory> <warm-up s> <measured s>");
    const std::filesystem::path dir = argv[1];
    const int warmup = std::atoi(argv[2]);
    const int measured = std::atoi(argv[3]);
    if (warmup < 0 || measured < 0) return fail("seconds must be >= 0");

    auto config = shared::loadConfigString(bench::pipelineConfig(true, true), "workload.toml",
                                           edge::configSchema());
    if (!config) return fail(shared::formatConfigErrors(config.error()));
    shared::ManualClock clock(shared::fromUnixMillis(1'763'600'000'000));
    shared::MetricsRegistry metrics;
    std::filesystem::create_directories(dir);
    const auto path = (dir / "workload.db").string();
    std::filesystem::remove(path);
    edge::StoreOptions options;
    options.gateway_id = "gw-workload";
    auto store = edge::Store::open(path, options, clock, metrics);
    if (!store) return fail("cannot open the store: " + store.error().message());
    auto assembly =
        edge::EdgeAssembly::build(config.value(), clock, metrics, *store.value(), *store.value());
    if (!assembly) return fail("cannot build the pipeline: " + assembly.error().message());
    auto* source = dynamic_cast<edge::SimulatedSource*>(assembly.value()->sources().front().get());
    if (source == nullptr) return fail("the first source is not the simulated one");

    for (int s = 0; s < warmup + measured; ++s) {
        clock.advance(std::chrono::seconds(1));
        source->pollOnce(assembly.value()->pipeline());
        assembly.value()->pipeline().onTick(
            edge::Tick{shared::toUnixMillis(clock.wallNow()), edge::monoMillis(clock.monoNow())});
    }
    // Everything sealed must be in the store, or the count measured something else.
    const auto backlog = store.value()->backlog();
    if (backlog.messages == 0) return fail("nothing reached the store");
    fmt::print("readings {} stored messages {}\n", (warmup + measured) * bench::kSensors,
               backlog.messages);
    return 0;
}
