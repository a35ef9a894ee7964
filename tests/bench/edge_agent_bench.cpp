// Edge agent benchmark: the real tern-edge daemon against a real mosquitto (TLS, the deploy ACL)
// with a receipt-sending subscriber standing in for the ingest, in one run:
//   1. how fast a backlog left by a 10-minute outage at 1,000 readings/s drains once the broker is
//      reachable again, with the default in-flight window beside a window of four messages;
//   2. what the agent costs in memory and CPU at 1,000 readings/s beside one sensor at 1 Hz and
//      beside the floor (paho_tls_floor: a bare Paho MQTT C++ client over TLS, which any agent on
//      this stack pays for), and which mappings (binary, shared libraries, heap, thread stacks)
//      its resident memory is.
// Every figure is measured in this run: drains by polling the agent's SQLite file, memory and CPU
// from /proc/<pid>.

#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "edge_agent_process.h"
#include "mosquitto_fixture.h"
#include "process.h"
#include "receipt_subscriber.h"
#include "temp_dir.h"
#include "tern/edge/store/store.h"
#include "tern/shared/clock.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"

namespace {

using namespace tern;
using namespace std::chrono_literals;

constexpr const char* kGateway = "gw-1";
constexpr const char* kFloorGateway = "gw-floor";
constexpr int kSensors = 100;
constexpr auto kSampleInterval = 100ms;  // 10 Hz per sensor: 1,000 readings/s in all
constexpr int kOutageSeconds = 600;      // one batch per second of outage
constexpr int kReadingsPerSensorPerBatch = 10;
constexpr auto kDrainTarget = 60s;
constexpr auto kDrainDeadline = 120s;
constexpr auto kWarmUp = 3s;
constexpr auto kWindow = 10s;
constexpr double kRssTargetMb = 12.0;
constexpr double kRssGoalMb = 5.0;
constexpr std::size_t kTopMappings = 30;  // all of them, in practice

double seconds(std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

double megabytes(std::uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

[[noreturn]] void fail(const std::string& what, const std::string& log = {}) {
    fmt::print(stderr, "edge_agent_bench: {}\n", what);
    if (!log.empty()) {
        const auto tail = log.size() > 4000 ? log.substr(log.size() - 4000) : log;
        fmt::print(stderr, "--- agent log (tail)\n{}\n", tail);
    }
    std::exit(1);
}

// --- 1. backlog drain ----------------------------------------------------------------------------

struct Prefilled {
    edge::Backlog backlog;
    std::uint64_t readings = 0;
    std::uint64_t last_seq = 0;
    double fill_seconds = 0.0;
};

// What the agent would have stored during the outage: one sealed batch per second, each with ten
// readings of every sensor 100 ms apart, the newest taken now (so max_age evicts none). Values are
// a sine per sensor plus noise at the simulated sources' 0.01 resolution, so the codec compresses
// them as it would real data.
Prefilled prefillStore(const std::filesystem::path& path) {
    const auto began = std::chrono::steady_clock::now();
    shared::SystemClock clock;
    shared::MetricsRegistry metrics;
    edge::StoreOptions options;
    options.gateway_id = kGateway;
    auto opened = edge::Store::open(path.string(), options, clock, metrics);
    if (!opened) fail("cannot create the store: " + opened.error().message());
    auto& store = *opened.value();

    std::mt19937_64 rng(42);
    std::normal_distribution<double> noise(0.0, 0.1);
    const std::int64_t now_ms = shared::toUnixMillis(clock.wallNow());
    const std::int64_t step_ms = kSampleInterval.count();
    Prefilled out;
    for (int b = 0; b < kOutageSeconds; ++b) {
        shared::TelemetryBatch batch;
        batch.clock_synced = true;
        batch.readings.reserve(static_cast<std::size_t>(kSensors * kReadingsPerSensorPerBatch));
        for (int k = 0; k < kReadingsPerSensorPerBatch; ++k) {
            const std::int64_t steps_before_now =
                static_cast<std::int64_t>(kOutageSeconds - 1 - b) * kReadingsPerSensorPerBatch +
                (kReadingsPerSensorPerBatch - 1 - k);
            const std::int64_t t = now_ms - steps_before_now * step_ms;
            for (int s = 0; s < kSensors; ++s) {
                const double phase = 2.0 * std::numbers::pi * static_cast<double>(t) / 60'000.0;
                const double value = 20.0 + 5.0 * std::sin(phase + s) + noise(rng);
                batch.readings.push_back(shared::Reading{.sensor = static_cast<std::uint16_t>(s),
                                                         .time_ms = t,
                                                         .value = std::round(value * 100) / 100});
            }
        }
        batch.sent_at_ms = batch.readings.back().time_ms;
        auto stored = store.storeBatch(batch);
        if (!stored) fail("cannot pre-fill the store: " + stored.error().message());
        out.readings += batch.readings.size();
    }
    out.backlog = store.backlog();
    out.last_seq = store.lastSeq();
    out.fill_seconds = seconds(std::chrono::steady_clock::now() - began);
    return out;
}

// Counts the pre-filled messages still in the agent's store, through a read-only connection of
// its own; the agent commits at the same time, hence the busy timeout.
class BacklogProbe {
public:
    BacklogProbe(const std::filesystem::path& path, std::uint64_t through_seq) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
            const std::string error = sqlite3_errmsg(db_);
            sqlite3_close(db_);
            throw std::runtime_error("cannot open the store read-only: " + error);
        }
        sqlite3_busy_timeout(db_, 5000);
        if (sqlite3_prepare_v2(db_, "SELECT count(*) FROM messages WHERE seq <= ?1", -1, &count_,
                               nullptr) != SQLITE_OK) {
            const std::string error = sqlite3_errmsg(db_);
            sqlite3_close(db_);
            throw std::runtime_error("cannot prepare the backlog count: " + error);
        }
        sqlite3_bind_int64(count_, 1, static_cast<sqlite3_int64>(through_seq));
    }
    ~BacklogProbe() {
        sqlite3_finalize(count_);
        sqlite3_close(db_);
    }
    BacklogProbe(const BacklogProbe&) = delete;
    BacklogProbe& operator=(const BacklogProbe&) = delete;

    // nullopt if the database stayed busy past the timeout: ask again.
    std::optional<std::int64_t> remaining() {
        sqlite3_reset(count_);
        if (sqlite3_step(count_) != SQLITE_ROW) return std::nullopt;
        return sqlite3_column_int64(count_, 0);
    }

private:
    sqlite3* db_ = nullptr;
    sqlite3_stmt* count_ = nullptr;
};

struct DrainRow {
    const char* name;
    int inflight_window;
    Prefilled prefilled;
    double startup_seconds = 0.0;  // spawn until the agent logs that it is running
    double drain_seconds = 0.0;    // spawn until no pre-filled seq is left in the store
    bool drained = false;
    std::size_t received = 0;        // distinct pre-filled seqs the subscriber got
    std::size_t duplicates = 0;      // seqs the subscriber got more than once
    std::uint64_t peak_rss_kib = 0;  // VmHWM just before the agent is stopped
};

std::uint64_t peakRssKib(pid_t pid);

DrainRow runDrain(test::MosquittoFixture& broker, const char* name, int inflight_window) {
    DrainRow row{name, inflight_window, {}};
    test::EdgeAgentProcess agent(broker, test::EdgeAgentOptions{.gatewayId = kGateway,
                                                                .sensors = kSensors,
                                                                .sampleInterval = kSampleInterval,
                                                                .batchMaxAge = 1s,
                                                                .backlogRate = "0",
                                                                .inflightWindow = inflight_window});
    row.prefilled = prefillStore(agent.storePath());
    // A subscriber of its own per run: it remembers every seq it has seen, and each run's store
    // starts again at epoch 1, seq 1.
    test::ReceiptSubscriber ingest(broker);

    const auto began = std::chrono::steady_clock::now();
    if (!agent.start()) fail("tern-edge did not start", agent.log());
    row.startup_seconds = seconds(std::chrono::steady_clock::now() - began);
    BacklogProbe probe(agent.storePath(), row.prefilled.last_seq);
    while (std::chrono::steady_clock::now() - began < kDrainDeadline) {
        if (probe.remaining() == 0) {
            row.drain_seconds = seconds(std::chrono::steady_clock::now() - began);
            row.drained = true;
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    if (!row.drained) row.drain_seconds = seconds(std::chrono::steady_clock::now() - began);
    row.peak_rss_kib = peakRssKib(agent.pid());
    if (const int status = agent.stop(); status != 0) {
        fail(fmt::format("tern-edge exited with status {}", status), agent.log());
    }

    std::set<std::uint64_t> received;
    for (const auto& message : ingest.messages(kGateway)) {
        if (message.batch() != nullptr && message.sequence.seq <= row.prefilled.last_seq) {
            received.insert(message.sequence.seq);
        }
    }
    row.received = received.size();
    row.duplicates = ingest.duplicates(kGateway).size();
    return row;
}

// --- 2. memory and CPU ---------------------------------------------------------------------------

struct ProcSample {
    std::chrono::steady_clock::time_point at;
    std::uint64_t rss_kib = 0;  // VmRSS
    std::uint64_t hwm_kib = 0;  // VmHWM: peak RSS since start
    double cpu_seconds = 0.0;   // utime + stime, counted in clock ticks (10 ms)
    double run_seconds = 0.0;   // time on a CPU summed over its threads (schedstat, in ns)
    std::map<std::uint64_t, std::uint32_t> stored;  // seq -> readings, from the agent's log
};

using test::readFile;

ProcSample sampleProcess(pid_t pid) {
    ProcSample out;
    out.at = std::chrono::steady_clock::now();
    const auto proc = std::filesystem::path("/proc") / std::to_string(pid);
    std::istringstream status(readFile(proc / "status"));
    for (std::string line; std::getline(status, line);) {
        std::istringstream fields(line);
        std::string key;
        std::uint64_t kib = 0;
        fields >> key >> kib;
        if (key == "VmRSS:") out.rss_kib = kib;
        if (key == "VmHWM:") out.hwm_kib = kib;
    }
    // Fields after the command name, which is in parentheses and may contain spaces: state is
    // field 3 of proc(5), utime 14 and stime 15.
    const auto stat = readFile(proc / "stat");
    const auto close = stat.rfind(')');
    if (out.rss_kib == 0 || close == std::string::npos) {
        fail(fmt::format("cannot read /proc/{}", pid));
    }
    std::istringstream fields(stat.substr(close + 1));
    std::vector<std::string> after;
    for (std::string field; fields >> field;) after.push_back(field);
    if (after.size() < 13) fail("unexpected /proc/<pid>/stat: " + stat);
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    out.cpu_seconds = static_cast<double>(std::stoull(after[11]) + std::stoull(after[12])) / ticks;
    // A cross-check at nanosecond resolution: the agent's threads live as long as it does, so the
    // sum over the threads present at both ends covers the window.
    for (const auto& task : std::filesystem::directory_iterator(proc / "task")) {
        std::istringstream schedstat(readFile(task.path() / "schedstat"));
        std::uint64_t ns = 0;
        if (schedstat >> ns) out.run_seconds += static_cast<double>(ns) / 1e9;
    }
    return out;
}

std::uint64_t peakRssKib(pid_t pid) { return sampleProcess(pid).hwm_kib; }

// Resident memory of the mappings that share a name: the binary, one shared library, [heap],
// [stack], or "[anonymous]" (thread stacks and malloc arenas among them).
struct MappingUsage {
    std::uint64_t rss_kib = 0;
    std::uint64_t private_kib = 0;
    std::uint64_t shared_kib = 0;
    std::size_t mappings = 0;
};

std::map<std::string, MappingUsage> residentByMapping(pid_t pid) {
    std::map<std::string, MappingUsage> out;
    std::istringstream smaps(
        readFile(std::filesystem::path("/proc") / std::to_string(pid) / "smaps"));
    MappingUsage* current = nullptr;
    for (std::string line; std::getline(smaps, line);) {
        std::istringstream fields(line);
        std::string first;
        fields >> first;
        if (first.empty()) continue;
        if (first.back() == ':') {  // "Rss:   123 kB"; VmFlags has no number and is skipped
            std::uint64_t kib = 0;
            if (current == nullptr || !(fields >> kib)) continue;
            if (first == "Rss:") current->rss_kib += kib;
            if (first == "Private_Clean:" || first == "Private_Dirty:") current->private_kib += kib;
            if (first == "Shared_Clean:" || first == "Shared_Dirty:") current->shared_kib += kib;
            continue;
        }
        // "start-end perms offset dev inode [path]"
        std::string perms, offset, device, inode, path;
        fields >> perms >> offset >> device >> inode;
        std::getline(fields, path);
        path.erase(0, path.find_first_not_of(' '));
        std::string name;
        if (path.empty()) {
            name = "[anonymous]";
        } else if (path.front() == '[') {
            name = path;
        } else {
            name = std::filesystem::path(path).filename().string();
        }
        current = &out[name];
        current->mappings += 1;
    }
    return out;
}

struct UsageRow {
    const char* name;
    double readings_per_second = 0.0;  // produced in the window, from the "stored telemetry" log
    std::uint64_t readings = 0;
    double window_seconds = 0.0;
    std::uint64_t rss_kib = 0;
    std::uint64_t hwm_kib = 0;
    double cpu_seconds = 0.0;
    double run_seconds = 0.0;
    double cpu_percent = 0.0;
    double cpu_ms_per_1k = 0.0;
    std::map<std::string, MappingUsage> mappings{};
};

// A process's memory at the end of the window and its CPU over it.
UsageRow usageOver(const char* name, const ProcSample& before, const ProcSample& after) {
    UsageRow row{name};
    row.window_seconds = seconds(after.at - before.at);
    row.rss_kib = after.rss_kib;
    row.hwm_kib = after.hwm_kib;
    row.cpu_seconds = after.cpu_seconds - before.cpu_seconds;
    row.run_seconds = after.run_seconds - before.run_seconds;
    row.cpu_percent = 100.0 * row.cpu_seconds / row.window_seconds;
    return row;
}

UsageRow runUsage(test::MosquittoFixture& broker, const char* name, int sensors,
                  std::chrono::milliseconds interval) {
    test::ReceiptSubscriber ingest(broker);
    test::EdgeAgentProcess agent(broker, test::EdgeAgentOptions{.gatewayId = kGateway,
                                                                .sensors = sensors,
                                                                .sampleInterval = interval,
                                                                .batchMaxAge = 1s});
    if (!agent.start()) fail("tern-edge did not start", agent.log());
    const auto started = std::chrono::steady_clock::now();
    // Warm-up: connected, publishing, and its first receipt applied.
    if (!ingest.waitFor([&] { return !ingest.receiptsSent(kGateway).empty(); }, 20s)) {
        fail("no receipt reached tern-edge", agent.log());
    }
    std::this_thread::sleep_until(started + kWarmUp);

    const pid_t pid = agent.pid();
    auto before = sampleProcess(pid);
    before.stored = agent.storedTelemetry();
    std::this_thread::sleep_for(kWindow);
    auto after = sampleProcess(pid);
    after.stored = agent.storedTelemetry();
    UsageRow row = usageOver(name, before, after);
    row.mappings = residentByMapping(pid);
    if (const int status = agent.stop(); status != 0) {
        fail(fmt::format("tern-edge exited with status {}", status), agent.log());
    }

    for (const auto& [seq, readings] : after.stored) {
        if (!before.stored.contains(seq)) row.readings += readings;
    }
    row.readings_per_second = static_cast<double>(row.readings) / row.window_seconds;
    row.cpu_ms_per_1k =
        row.readings == 0 ? 0.0 : row.cpu_seconds * 1e6 / static_cast<double>(row.readings);
    return row;
}

// The floor: paho_tls_floor connected to the same broker with a gateway identity of its own,
// sampled over the same warm-up and window as the agent.
UsageRow runFloor(test::MosquittoFixture& broker) {
    test::TempDir dir("tern-paho-floor");
    const auto output = dir.path() / "output.log";
    pid_t pid = test::spawnProcess({PAHO_TLS_FLOOR_BINARY, broker.uri(), broker.caFile().string(),
                                    broker.clientCert(kFloorGateway).string(),
                                    broker.clientKey(kFloorGateway).string(), kFloorGateway},
                                   output);
    const auto started = std::chrono::steady_clock::now();
    if (!test::waitForFileText(output, "connected", 20s)) {
        test::killProcess(pid);
        fail("paho_tls_floor did not connect", test::readFile(output));
    }
    std::this_thread::sleep_until(started + kWarmUp);
    const auto before = sampleProcess(pid);
    std::this_thread::sleep_for(kWindow);
    const auto after = sampleProcess(pid);
    UsageRow row =
        usageOver("floor: paho_tls_floor (Paho C++ over TLS, 1 message/s)", before, after);
    row.mappings = residentByMapping(pid);
    if (const int status = test::terminateProcess(pid, 10s); status != 0) {
        fail(fmt::format("paho_tls_floor exited with status {}", status), test::readFile(output));
    }
    return row;
}

void printBreakdown(const UsageRow& floor, const UsageRow& baseline, const UsageRow& loaded) {
    std::vector<std::pair<std::string, MappingUsage>> sorted(loaded.mappings.begin(),
                                                             loaded.mappings.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.second.rss_kib > b.second.rss_kib; });
    const auto rss = [](const std::map<std::string, MappingUsage>& all, const std::string& name) {
        const auto found = all.find(name);
        return found == all.end() ? std::uint64_t{0} : found->second.rss_kib;
    };
    const auto cells = [](const MappingUsage& u) {
        return fmt::format("{} | {} | {} | {}", u.rss_kib, u.private_kib, u.shared_kib, u.mappings);
    };
    const auto total = [](const std::map<std::string, MappingUsage>& all,
                          const std::set<std::string>& except) {
        MappingUsage sum;
        for (const auto& [name, u] : all) {
            if (except.contains(name)) continue;
            sum.rss_kib += u.rss_kib;
            sum.private_kib += u.private_kib;
            sum.shared_kib += u.shared_kib;
            sum.mappings += u.mappings;
        }
        return sum;
    };
    fmt::print(
        "\nResident memory by mapping at the end of the window (/proc/<pid>/smaps, KiB; top {} "
        "of the 1,000 readings/s agent)\n\n",
        kTopMappings);
    fmt::print(
        "| mapping | floor: RSS | 1 sensor at 1 Hz: RSS | {}: RSS | private | shared | "
        "mappings |\n",
        loaded.name);
    fmt::print("|---|---:|---:|---:|---:|---:|---:|\n");
    std::set<std::string> shown;
    for (std::size_t i = 0; i < std::min(kTopMappings, sorted.size()); ++i) {
        const auto& [name, usage] = sorted[i];
        fmt::print("| {} | {} | {} | {} |\n", name, rss(floor.mappings, name),
                   rss(baseline.mappings, name), cells(usage));
        shown.insert(name);
    }
    fmt::print("| everything else | {} | {} | {} |\n", total(floor.mappings, shown).rss_kib,
               total(baseline.mappings, shown).rss_kib, cells(total(loaded.mappings, shown)));
    fmt::print("| total | {} | {} | {} |\n", total(floor.mappings, {}).rss_kib,
               total(baseline.mappings, {}).rss_kib, cells(total(loaded.mappings, {})));
}

}  // namespace

int main() {
    const auto began = std::chrono::steady_clock::now();
    try {
        test::MosquittoFixture broker{
            test::MosquittoOptions{{kGateway, kFloorGateway, "tern-ingest"}}};
        fmt::print(
            "Tern edge agent benchmark: the tern-edge daemon against mosquitto (TLS) with a "
            "receipt-sending subscriber (one receipt round per {} ms at most); MB = 2^20 "
            "bytes\n\n",
            test::ReceiptSubscriberOptions{}.receiptInterval.count());

        fmt::print(
            "Backlog drain after a {}-minute outage at {} readings/s ({} sensors at {} Hz stay "
            "live while it drains, backlog_rate uncapped); times from spawning the agent\n\n",
            kOutageSeconds / 60, kSensors * 1000 / kSampleInterval.count(), kSensors,
            1000 / kSampleInterval.count());
        const DrainRow drains[] = {
            runDrain(broker, "inflight_window 4 (baseline)", 4),
            runDrain(broker, "inflight_window 16 (default)", 16),
        };
        fmt::print(
            "| uplink | backlog messages | backlog readings | backlog MB (payload) | "
            "startup s | drain s | messages/s | readings/s | MB/s | received | duplicates | "
            "peak RSS MB |\n");
        fmt::print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (const auto& row : drains) {
            const auto& p = row.prefilled;
            fmt::print(
                "| {} | {} | {} | {:.2f} | {:.2f} | {}{:.2f} | {:.0f} | {:.0f} | {:.2f} | "
                "{} | {} | {:.2f} |\n",
                row.name, p.backlog.messages, p.readings,
                static_cast<double>(p.backlog.bytes) / (1024.0 * 1024.0), row.startup_seconds,
                row.drained ? "" : "> ", row.drain_seconds,
                static_cast<double>(p.backlog.messages) / row.drain_seconds,
                static_cast<double>(p.readings) / row.drain_seconds,
                static_cast<double>(p.backlog.bytes) / (1024.0 * 1024.0) / row.drain_seconds,
                row.received, row.duplicates, megabytes(row.peak_rss_kib));
        }
        fmt::print(
            "\nEach backlog was committed through the Store API, one batch per transaction, before "
            "its agent started: {:.1f} s and {:.1f} s.\n",
            drains[0].prefilled.fill_seconds, drains[1].prefilled.fill_seconds);

        fmt::print(
            "\nMemory and CPU: connected, receipts on, batch max_age 1 s; {} s warm-up, then a "
            "{} s window (/proc/<pid>/status and /stat at both ends)\n\n",
            std::chrono::duration_cast<std::chrono::seconds>(kWarmUp).count(),
            std::chrono::duration_cast<std::chrono::seconds>(kWindow).count());
        const UsageRow floor = runFloor(broker);
        const UsageRow baseline = runUsage(broker, "1 sensor at 1 Hz (baseline)", 1, 1000ms);
        const UsageRow loaded = runUsage(broker, "100 sensors at 10 Hz", kSensors, kSampleInterval);
        fmt::print(
            "| agent | readings in window | readings/s | RSS MB | peak RSS MB | "
            "CPU s (stat / schedstat) | CPU % of one core | CPU ms / 1,000 readings |\n");
        fmt::print("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        fmt::print("| {} | — | — | {:.2f} | {:.2f} | {:.2f} / {:.3f} | {:.2f} | — |\n", floor.name,
                   megabytes(floor.rss_kib), megabytes(floor.hwm_kib), floor.cpu_seconds,
                   floor.run_seconds, floor.cpu_percent);
        for (const auto* row : {&baseline, &loaded}) {
            fmt::print(
                "| {} | {} | {:.1f} | {:.2f} | {:.2f} | {:.2f} / {:.3f} | {:.2f} | {:.2f} |\n",
                row->name, row->readings, row->readings_per_second, megabytes(row->rss_kib),
                megabytes(row->hwm_kib), row->cpu_seconds, row->run_seconds, row->cpu_percent,
                row->cpu_ms_per_1k);
        }
        printBreakdown(floor, baseline, loaded);

        const DrainRow& drain = drains[1];
        const bool fast = drain.drained &&
                          drain.drain_seconds < std::chrono::duration<double>(kDrainTarget).count();
        const double peak = megabytes(loaded.hwm_kib);
        const bool small = peak <= kRssTargetMb;
        fmt::print(
            "\nTargets (default uplink, {} readings/s): {}-minute backlog drained in < {} s: {} "
            "({:.2f} s); RSS at 100 sensors x 10 Hz (the run's peak) <= {:.0f} MB: {} ({:.2f} MB; "
            "goal {:.0f} MB: {}); peak while draining a backlog: {:.2f} MB\n",
            kSensors * 1000 / kSampleInterval.count(), kOutageSeconds / 60,
            std::chrono::duration_cast<std::chrono::seconds>(kDrainTarget).count(),
            fast ? "met" : "NOT met", drain.drain_seconds, kRssTargetMb, small ? "met" : "NOT met",
            peak, kRssGoalMb, peak <= kRssGoalMb ? "met" : "not yet",
            megabytes(std::max(drains[0].peak_rss_kib, drains[1].peak_rss_kib)));
        fmt::print("Bench wall time: {:.1f} s\n",
                   seconds(std::chrono::steady_clock::now() - began));
        // The exit status says whether everything could be measured; whether the targets are met
        // is the table's last line (the RSS target is not met yet: see the README).
        return 0;
    } catch (const std::exception& e) {
        fail(e.what());
    }
}
