// Time-series store benchmark: readings/s written through TimeseriesStore::writeMany (packed raw
// chunks, duplicate detection, 1-minute and 1-hour rollups) against two bare SQLite insert loops,
// in the same run and on the same file system, each with the store's pragmas and transaction
// sizes and nothing else (no gateway interning, no rollups, no retention checks, no metrics):
//   - a row per reading: the store's layout before schema version 2;
//   - the store's own chunk rows, built before the clock starts: the ceiling for this layout.
//
// Three shapes of traffic, all 100-reading batches:
//   A  1000 gateways x 10 sensors at 1 Hz, a batch every 10 s, 100 batches per transaction: 10
//      readings per series per transaction.
//   B  200 gateways x 100 sensors at 1 Hz, a batch every second, 100 batches per transaction: 1
//      reading per series per transaction, the worst case for packing and rollups (every reading
//      is a chunk and opens its own minute and hour row).
//   C  16 gateways x 10 sensors at 10 Hz, a batch a second, 512 batches per transaction: the
//      traffic of ingest_bench in the tsdb sink's transactions, 320 readings per series each.
// Usage: timeseries_bench [rounds] (best of rounds, default 3).

#include <fmt/format.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bare_raw_inserts.h"
#include "tern/ingest/timeseries_store.h"
#include "tern/shared/clock.h"
#include "tern/shared/metrics.h"

namespace {

using namespace tern;
namespace fs = std::filesystem;

constexpr std::int64_t kStartMs = 1'780'272'000'000;  // 2026-06-01T00:00:00Z
constexpr std::uint64_t kCacheBytes = 64 * shared::kMiB;

struct Shape {
    const char* name;
    int gateways;
    int sensors;
    int readings_per_sensor;  // sensors * readings_per_sensor = 100 readings a batch
    std::int64_t step_ms;     // between a sensor's readings
    int rounds;               // batches per gateway
    std::size_t batches_per_transaction;
};

struct Workload {
    std::size_t batches_per_transaction = 0;
    std::vector<std::string> gateway_names;
    std::vector<int> gateway_of;  // per batch
    std::vector<shared::TelemetryBatch> batches;
    std::size_t readings = 0;
};

// Round r: every gateway sends its next batch, gateways in turn, as they would arrive.
Workload makeWorkload(const Shape& shape) {
    Workload w;
    w.batches_per_transaction = shape.batches_per_transaction;
    for (int g = 0; g < shape.gateways; ++g) w.gateway_names.push_back(fmt::format("gw-{:05d}", g));
    for (int r = 0; r < shape.rounds; ++r) {
        for (int g = 0; g < shape.gateways; ++g) {
            shared::TelemetryBatch batch;
            batch.gateway_id = w.gateway_names[static_cast<std::size_t>(g)];
            batch.clock_synced = true;
            // Grouped by sensor, as decoded batches are.
            for (int s = 0; s < shape.sensors; ++s) {
                for (int k = 0; k < shape.readings_per_sensor; ++k) {
                    const std::int64_t step = r * shape.readings_per_sensor + k;
                    const double value =
                        20.0 + s + 2.0 * std::sin(static_cast<double>(step) / 300.0 + g);
                    batch.readings.push_back(shared::Reading{
                        static_cast<std::uint16_t>(s), kStartMs + step * shape.step_ms + g,
                        std::round(value * 100.0) / 100.0, shared::Quality::Good});
                }
            }
            w.readings += batch.readings.size();
            w.gateway_of.push_back(g);
            w.batches.push_back(std::move(batch));
        }
    }
    return w;
}

// Wall time is what the target is about; the thread's CPU time (all SQLite work runs on it) says
// how much of that was this program's work on a machine that may be shared.
struct Timing {
    double wall = 1e9;
    double cpu = 1e9;
};

class Stopwatch {
public:
    Stopwatch() : wall_(std::chrono::steady_clock::now()), cpu_(threadCpu()) {}
    Timing elapsed() const {
        return {std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count(),
                threadCpu() - cpu_};
    }

private:
    static double threadCpu() {
        timespec ts{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    }
    std::chrono::steady_clock::time_point wall_;
    double cpu_;
};

void removeDb(const fs::path& path) {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
}

std::vector<bench::BareBatch> bareBatches(const Workload& w) {
    std::vector<bench::BareBatch> batches;
    batches.reserve(w.batches.size());
    for (std::size_t b = 0; b < w.batches.size(); ++b) {
        batches.push_back({static_cast<std::int64_t>(w.gateway_of[b]) + 1, &w.batches[b]});
    }
    return batches;
}

// One of the bare loops of bare_raw_inserts.h over the workload, timed.
template <class Loop>
Timing bareLoop(Loop loop, const fs::path& path, const Workload& w) {
    Timing elapsed;
    loop(path, bareBatches(w), kStartMs, w.batches_per_transaction, kCacheBytes,
         [&](const auto& inserts) {
             const Stopwatch watch;
             inserts();
             elapsed = watch.elapsed();
         });
    return elapsed;
}

Timing storeLoop(const fs::path& path, const Workload& w) {
    shared::ManualClock clock{shared::fromUnixMillis(kStartMs + 3'600'000)};
    shared::MetricsRegistry metrics;
    ingest::TimeseriesStoreConfig config;
    config.path = path.string();
    config.cache_bytes = kCacheBytes;
    auto store = ingest::TimeseriesStore::open(config, clock, metrics);
    if (!store) {
        fmt::print(stderr, "store: {}\n", store.error().message());
        std::exit(1);
    }
    std::vector<ingest::GatewayBatch> group;
    std::uint64_t written = 0;
    const Stopwatch watch;
    for (std::size_t first = 0; first < w.batches.size(); first += w.batches_per_transaction) {
        group.clear();
        const std::size_t end = std::min(w.batches.size(), first + w.batches_per_transaction);
        for (std::size_t b = first; b < end; ++b) {
            group.push_back(
                {w.gateway_names[static_cast<std::size_t>(w.gateway_of[b])], &w.batches[b]});
        }
        auto result = store.value()->writeMany(group);
        if (!result) {
            fmt::print(stderr, "store: {}\n", result.error().message());
            std::exit(1);
        }
        written += result.value().readings_written;
    }
    const Timing elapsed = watch.elapsed();
    if (written != w.readings) {
        fmt::print(stderr, "store wrote {} of {} readings\n", written, w.readings);
        std::exit(1);
    }
    return elapsed;
}

struct Measured {
    Timing bare;
    Timing chunks;
    Timing store;
};

void keepBest(Timing& best, const Timing& t) {
    best.wall = std::min(best.wall, t.wall);
    best.cpu = std::min(best.cpu, t.cpu);
}

Measured measure(const fs::path& dir, const Workload& w, int rounds) {
    // Alternate the two so that neither gets a warmer disk cache; keep the best of each.
    Measured m;
    for (int round = 0; round < rounds; ++round) {
        removeDb(dir / "bare.db");
        keepBest(m.bare, bareLoop([](auto&&... args) { bench::bareRawInserts(args...); },
                                  dir / "bare.db", w));
        removeDb(dir / "bare.db");
        keepBest(m.chunks, bareLoop([](auto&&... args) { bench::bareChunkInserts(args...); },
                                    dir / "bare.db", w));
        removeDb(dir / "bare.db");
        removeDb(dir / "tsdb.db");
        keepBest(m.store, storeLoop(dir / "tsdb.db", w));
        removeDb(dir / "tsdb.db");
    }
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
    const fs::path dir = fs::temp_directory_path() / fmt::format("tern-tsdb-bench-{}", ::getpid());
    fs::create_directories(dir);
    const Shape shapes[] = {
        {"A: 1000 gw x 10 sensors at 1 Hz, 100/tx", 1000, 10, 10, 1000, 20, 100},
        {"B: 200 gw x 100 sensors at 1 Hz, 100/tx", 200, 100, 1, 1000, 100, 100},
        {"C: 16 gw x 10 sensors at 10 Hz, 512/tx", 16, 10, 10, 100, 1024, 512}};

    fmt::print(
        "Time-series store: 100-reading batches, WAL + synchronous=NORMAL, autocheckpoint 16384 "
        "pages, cache {} MiB, rollups 1 min + 1 h on, best of {}. C is ingest_bench's traffic in "
        "the tsdb sink's transactions (512 batches).\n\n",
        kCacheBytes / shared::kMiB, rounds);
    fmt::print("{:<44} {:<28} {:>11} {:>8} {:>13} {:>8}\n", "traffic", "path", "readings/s",
               "vs bare", "readings/CPU-s", "vs bare");
    for (const Shape& shape : shapes) {
        const Workload w = makeWorkload(shape);
        const Measured m = measure(dir, w, rounds);
        const auto n = static_cast<double>(w.readings);
        fmt::print("{:<44} {:<28} {:>11.0f} {:>8} {:>13.0f} {:>8}\n",
                   fmt::format("{} ({:.1f}M)", shape.name, n / 1e6), "bare loop, row per reading",
                   n / m.bare.wall, "1.00", n / m.bare.cpu, "1.00");
        fmt::print("{:<44} {:<28} {:>11.0f} {:>8.2f} {:>13.0f} {:>8.2f}\n", "",
                   "bare loop, the store's chunks", n / m.chunks.wall, m.bare.wall / m.chunks.wall,
                   n / m.chunks.cpu, m.bare.cpu / m.chunks.cpu);
        fmt::print("{:<44} {:<28} {:>11.0f} {:>8.2f} {:>13.0f} {:>8.2f}\n", "",
                   "TimeseriesStore::writeMany", n / m.store.wall, m.bare.wall / m.store.wall,
                   n / m.store.cpu, m.bare.cpu / m.store.cpu);
        fmt::print("{:<44} {:<28} {:>11} {:>8.2f}\n", "", "  store vs the chunk loop", "",
                   m.chunks.wall / m.store.wall);
    }
    fs::remove_all(dir);

    double load[3] = {0, 0, 0};
    if (::getloadavg(load, 3) < 1) load[0] = -1;
    fmt::print("\n{} CPUs, load average {:.2f} during the run\n", ::sysconf(_SC_NPROCESSORS_ONLN),
               load[0]);
    fmt::print(
        "The issue's targets are judged by ingest_bench, through the daemon; this table says how "
        "the store alone fares with other traffic.\n");
    return 0;
}
