// Ingest benchmark: the real tern-ingest daemon against a real mosquitto (TLS, the deploy ACL and
// limits), fed by 16 gateway identities publishing 100-reading TelemetryBatches over QoS 1, all in
// one run on this machine:
//   1. the ceiling, twice: the same payloads from the same publishers to a bare Paho subscriber
//      (the ACL's ingest identity, a plain subscription to tern/v1/gw/+/telemetry) that only counts
//      them, (a) open loop, publishers held back only by PUBACKs, and (b) closed loop, the
//      subscriber answering with receipts as the ingest does, publishers keeping at most kWindow
//      unreceipted batches as gateways do;
//   2. tern-ingest with [sinks] tsdb = false, closed loop as in 1b: its sustained rate through
//      verify + dedupe + spool (group commit, synchronous=FULL) + receipt;
//   3. the embedded store as the sink: the spool that run 2 left (no sink, so nothing truncated)
//      drained into the store after a SIGHUP turns the tsdb sink on, with nothing else running,
//      beside a bare SQLite insert loop of the same rows and TimeseriesStore::writeMany on them in
//      this process;
//   4. latency at a steady 100,000 readings/s with tsdb on: publish -> receipt at the gateway
//      (exact, per batch), publish -> spooled (tern_ingest_sent_to_spool_seconds: the publishers
//      stamp sent_at at publish time), received -> stored (tern_ingest_sink_latency_seconds), and
//      publish -> stored (each gateway's newest batch, polled in the store's file);
// and tern-ingest's RSS and the CPU of every process involved (and of everything else on the
// machine, which the benchmark may share).
//
// Publishers run in child processes (this binary with --publisher <spec>): Paho C serves all the
// clients of a process from one send and one receive thread, which the ceiling's subscriber must
// not share. Payloads are encoded once before anything is measured (sent_at is patched in at
// publish time), so the publishers' CPU goes to MQTT, not to the codec.
//
// Usage: ingest_bench [publisher processes, default 2] [--ceilings-only]
//                     [--broker-max-inflight N]  what-if: max_inflight_messages N for the broker
//                     [--paho-default-trace]     the benchmark's own Paho clients keep Paho C's
//                                                default trace level, as tern-ingest does
//                     [--window N]               what-if: N unreceipted batches per gateway
//                     [--ingest-toml TOML]       what-if: appended to tern-ingest's config

#include <fmt/format.h>
#include <mqtt/async_client.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bare_raw_inserts.h"
#include "ingest_process.h"
#include "mosquitto_fixture.h"
#include "proc_stats.h"
#include "process.h"
#include "temp_dir.h"
#include "tern/ingest/timeseries_store.h"
#include "tern/shared/clock.h"
#include "tern/shared/codec.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"

namespace {

using namespace tern;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// --- the workload --------------------------------------------------------------------------------

constexpr int kGateways = 16;
constexpr int kSensors = 10;
constexpr int kReadingsPerSensor = 10;  // 10 x 10 = 100 readings a batch
constexpr int kReadingsPerBatch = kSensors * kReadingsPerSensor;
constexpr std::int64_t kSampleStepMs = 100;  // 10 Hz sensors: a batch covers one second
constexpr std::uint32_t kBatchesPerGateway = 16'384;
constexpr std::uint64_t kEpoch = 1;
// Encoded as sent_at_ms and replaced at publish time; a valid time, so the encoder accepts it.
constexpr std::int64_t kSentAtSentinel = 1'111'111'111'111;
constexpr const char* kIngestIdentity = "tern-ingest";

// --- the runs ------------------------------------------------------------------------------------

constexpr auto kCeilingPublish = 5s;
constexpr auto kSpoolPublish = 9s;
// The spool rate is taken over [first spooled + warm-up, + window], inside the publishing.
constexpr auto kSpoolWarmUp = 1s;
constexpr auto kSpoolWindow = 6s;
constexpr auto kDrainWindow = 10s;
constexpr auto kPacedPublish = 6s;
// The steady run's load: 100,000 readings/s (a thousand gateways at 100 readings/s), well
// inside what both the spool and the sink sustain here, so latency is not queueing.
constexpr double kSteadyRate = 1000;
constexpr auto kPollInterval = 5ms;
constexpr auto kSampleInterval = 200ms;
// Unreceipted batches a publisher keeps per gateway. The broker queues at most
// max_queued_messages (1000) + max_inflight_messages (20) messages for one subscriber and drops
// the rest silently, so all gateways together must stay below that or the subscriber loses
// messages whenever it falls behind (the gateways then wait for receipts that never come and
// retransmit): 16 x 60 = 960.
constexpr std::uint64_t kWindow = 60;
// [mqtt] receipt_batches for the ingest and the receipting subscriber: several receipts per
// window, so a gateway is never left waiting for receipt_interval (the daemon's default, 64, is
// above the window; its doc says to keep it at or below the gateways' window).
constexpr int kReceiptBatches = 16;
constexpr auto kReceiptInterval = 200ms;  // the daemon's default
// Un-PUBACKed publishes per connection in the ceiling run (Paho queues what the broker's receive
// maximum does not yet allow).
constexpr std::uint64_t kOpenOutstanding = 200;
constexpr auto kPublisherDrain = 15s;
// The store comparison: the first batches of the drain, in the order they were published
// (gateways in turn), one transaction per [sinks] batch_records (512) batches, as the sink does.
constexpr std::size_t kStoreBatches = 16'384;
constexpr std::size_t kBatchesPerTransaction = 512;

constexpr double kCeilingShareTarget = 0.8;
// Cores used by processes outside the benchmark during a window above which the report warns.
constexpr double kOthersWarning = 0.2;
constexpr double kStoreTarget = 1'000'000;
constexpr double kStoreVsBareTarget = 0.5;

[[noreturn]] void fail(const std::string& what, const std::string& log = {}) {
    fmt::print(stderr, "ingest_bench: {}\n", what);
    if (!log.empty()) {
        const auto tail = log.size() > 4000 ? log.substr(log.size() - 4000) : log;
        fmt::print(stderr, "--- log (tail)\n{}\n", tail);
    }
    std::exit(1);
}

std::int64_t wallMicros() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

double seconds(std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

using test::readFile;

std::string gatewayName(int g) { return fmt::format("gw-{:02d}", g); }

std::string telemetryTopic(const std::string& gateway) {
    return "tern/v1/gw/" + gateway + "/telemetry";
}

// Yesterday 01:00 UTC: every reading of the run falls into one raw day table of the store (the
// span is kBatchesPerGateway seconds, under five hours), well inside the verifier's max_past and
// the store's raw_retention; sent_at, stamped at publish time, is what latency is measured from.
std::int64_t readingsBaseMs() {
    constexpr std::int64_t kDayMs = 86'400'000;
    const std::int64_t now = shared::toUnixMillis(std::chrono::system_clock::now());
    return (now / kDayMs - 1) * kDayMs + 3'600'000;
}

std::int64_t readingTime(std::int64_t base_ms, std::uint64_t seq, int k) {
    return base_ms + (static_cast<std::int64_t>(seq - 1) * kReadingsPerSensor + k) * kSampleStepMs;
}

// Ten sensors at their resolutions (temperature 0.01 C, humidity 0.1 %, vibration 0.001 g, power
// 0.1 W, pressure 0.01 hPa, voltage 0.1 V, current 0.001 A, CO2 1 ppm, fan 1 rpm, light 1 lux),
// from sines, noise and random walks; sensors share their timestamps, as a gateway sampling them
// together sends them.
class SensorModel {
public:
    explicit SensorModel(int gateway) : rng_(0x7e2a + static_cast<std::uint64_t>(gateway)) {
        phase_ = gateway * 0.7;
    }

    shared::TelemetryBatch batch(const std::string& gateway, std::uint64_t seq,
                                 std::int64_t base_ms) {
        shared::TelemetryBatch b;
        b.gateway_id = gateway;
        b.sequence = {kEpoch, seq};
        b.sent_at_ms = kSentAtSentinel;
        b.clock_synced = true;
        b.readings.reserve(kReadingsPerBatch);
        for (int k = 0; k < kReadingsPerSensor; ++k) {
            const std::int64_t t = readingTime(base_ms, seq, k);
            const double s = static_cast<double>(t) / 1000.0;
            const double wave = std::sin(2.0 * std::numbers::pi * s / 600.0 + phase_);
            pressure_ += noise_(rng_) * 0.02;
            const double values[kSensors] = {
                round(21.0 + 3.0 * wave + 0.05 * noise_(rng_), 100),
                round(45.0 - 5.0 * wave + 0.3 * noise_(rng_), 10),
                round(0.1 + std::abs(0.02 * noise_(rng_)), 1000),
                round(230.0 + 20.0 * wave + 2.0 * noise_(rng_), 10),
                round(pressure_, 100),
                round(230.0 + 0.5 * noise_(rng_), 10),
                round(1.0 + 0.2 * wave + 0.01 * noise_(rng_), 1000),
                round(600.0 + 100.0 * wave + 5.0 * noise_(rng_), 1),
                round(1200.0 + 10.0 * noise_(rng_), 1),
                round(300.0 + 200.0 * wave, 1),
            };
            for (int i = 0; i < kSensors; ++i) {
                b.readings.push_back(shared::Reading{
                    .sensor = static_cast<std::uint16_t>(i), .time_ms = t, .value = values[i]});
            }
        }
        return b;
    }

private:
    static double round(double v, double scale) { return std::round(v * scale) / scale; }

    std::mt19937_64 rng_;
    std::normal_distribution<double> noise_{0.0, 1.0};
    double phase_ = 0.0;
    double pressure_ = 1013.25;
};

// One encoded batch and where its sent_at_ms sits (8 bytes, little-endian).
struct Payload {
    std::vector<std::uint8_t> bytes;
    std::uint32_t sent_at_offset = 0;
};

std::uint32_t findSentAt(const std::vector<std::uint8_t>& bytes) {
    std::uint8_t pattern[8];
    std::memcpy(pattern, &kSentAtSentinel, sizeof pattern);  // little-endian, as FlatBuffers
    std::optional<std::uint32_t> found;
    for (std::size_t i = 0; i + sizeof pattern <= bytes.size(); ++i) {
        if (std::memcmp(bytes.data() + i, pattern, sizeof pattern) == 0) {
            if (found) fail("sent_at sentinel found twice in a payload");
            found = static_cast<std::uint32_t>(i);
        }
    }
    if (!found) fail("sent_at sentinel not found (payload compressed?)");
    return *found;
}

void patchSentAt(std::uint8_t* bytes, std::uint32_t offset, std::int64_t sent_at_ms) {
    std::memcpy(bytes + offset, &sent_at_ms, sizeof sent_at_ms);
}

struct Workload {
    std::int64_t base_ms = 0;
    std::vector<std::vector<Payload>> payloads;  // [gateway][seq - 1]
    std::size_t bytes = 0;
    double encode_seconds = 0;
};

Workload encodeWorkload() {
    const auto began = std::chrono::steady_clock::now();
    Workload w;
    w.base_ms = readingsBaseMs();
    w.payloads.resize(kGateways);
    for (int g = 0; g < kGateways; ++g) {
        SensorModel model(g);
        const std::string name = gatewayName(g);
        auto& out = w.payloads[static_cast<std::size_t>(g)];
        out.reserve(kBatchesPerGateway);
        for (std::uint64_t seq = 1; seq <= kBatchesPerGateway; ++seq) {
            auto encoded = shared::encodeBatch(model.batch(name, seq, w.base_ms));
            if (!encoded) fail("encode: " + encoded.error().message());
            Payload p{std::move(encoded.value()), 0};
            p.sent_at_offset = findSentAt(p.bytes);
            w.bytes += p.bytes.size();
            out.push_back(std::move(p));
        }
    }
    // A patched payload must decode to the batch it was encoded from, with the new sent_at.
    for (int g = 0; g < kGateways; ++g) {
        Payload p = w.payloads[static_cast<std::size_t>(g)].back();
        auto original = shared::decodeBatch(p.bytes);
        patchSentAt(p.bytes.data(), p.sent_at_offset, 1'700'000'000'123);
        auto patched = shared::decodeBatch(p.bytes);
        if (!original || !patched) fail("a patched payload does not decode");
        original.value().sent_at_ms = 1'700'000'000'123;
        if (!(original.value() == patched.value())) fail("patching sent_at changed the batch");
    }
    w.encode_seconds = seconds(std::chrono::steady_clock::now() - began);
    return w;
}

// The payload file a publisher process reads: u32 gateways, u32 per gateway, then per gateway
// and seq: u32 size, u32 sent_at offset, the bytes.
void writePayloadFile(const fs::path& path, const Workload& w) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    const auto put32 = [&](std::uint32_t v) {
        out.write(reinterpret_cast<const char*>(&v), sizeof v);
    };
    put32(kGateways);
    put32(kBatchesPerGateway);
    for (const auto& gateway : w.payloads) {
        for (const auto& p : gateway) {
            put32(static_cast<std::uint32_t>(p.bytes.size()));
            put32(p.sent_at_offset);
            out.write(reinterpret_cast<const char*>(p.bytes.data()),
                      static_cast<std::streamsize>(p.bytes.size()));
        }
    }
    if (!out.flush()) fail("cannot write " + path.string());
}

// --- the publisher process -----------------------------------------------------------------------

enum class PublishMode {
    Open,     // as fast as PUBACKs allow (kOpenOutstanding per connection); the ceiling
    Receipts  // at most kWindow batches without a receipt per gateway, as gateways do
};

struct PublisherSpec {
    std::string uri;
    std::string ca;
    PublishMode mode = PublishMode::Open;
    double rate = 0;  // messages/s over all gateways of this process; 0: as fast as allowed
    double publish_seconds = 0;
    bool paho_trace = false;  // leave Paho at its default trace level
    std::uint64_t window = kWindow;
    fs::path payloads;
    fs::path results;
    struct Gateway {
        int index = 0;
        std::string cert;
        std::string key;
    };
    std::vector<Gateway> gateways;
};

void writeSpec(const fs::path& path, const PublisherSpec& spec) {
    std::ofstream out(path, std::ios::trunc);
    out << "uri " << spec.uri << "\nca " << spec.ca << "\nmode "
        << (spec.mode == PublishMode::Open ? "open" : "receipts") << "\nrate " << spec.rate
        << "\nseconds " << spec.publish_seconds << "\npaho_trace " << (spec.paho_trace ? 1 : 0)
        << "\nwindow " << spec.window << "\npayloads " << spec.payloads.string() << "\nresults "
        << spec.results.string() << "\n";
    for (const auto& g : spec.gateways) {
        out << "gateway " << g.index << " " << g.cert << " " << g.key << "\n";
    }
    if (!out.flush()) fail("cannot write " + path.string());
}

PublisherSpec readSpec(const fs::path& path) {
    std::ifstream in(path);
    PublisherSpec spec;
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::string key;
        fields >> key;
        if (key == "uri") fields >> spec.uri;
        if (key == "ca") fields >> spec.ca;
        if (key == "rate") fields >> spec.rate;
        if (key == "seconds") fields >> spec.publish_seconds;
        if (key == "paho_trace") fields >> spec.paho_trace;
        if (key == "window") fields >> spec.window;
        if (key == "mode") {
            std::string mode;
            fields >> mode;
            spec.mode = mode == "open" ? PublishMode::Open : PublishMode::Receipts;
        }
        if (key == "payloads") {
            std::string p;
            fields >> p;
            spec.payloads = p;
        }
        if (key == "results") {
            std::string p;
            fields >> p;
            spec.results = p;
        }
        if (key == "gateway") {
            PublisherSpec::Gateway g;
            fields >> g.index >> g.cert >> g.key;
            spec.gateways.push_back(g);
        }
    }
    if (spec.uri.empty() || spec.gateways.empty()) fail("bad publisher spec " + path.string());
    return spec;
}

// Wakes the publishing thread when a PUBACK or a receipt makes room; it also wakes itself every
// millisecond, so a wake-up lost between its check and its wait costs at most that.
class Wakeup {
public:
    void poke() {
        if (!waiting_.load(std::memory_order_acquire)) return;
        { std::lock_guard lock(mutex_); }
        cv_.notify_one();
    }
    void wait(std::chrono::microseconds at_most) {
        std::unique_lock lock(mutex_);
        waiting_.store(true, std::memory_order_release);
        cv_.wait_for(lock, at_most);
        waiting_.store(false, std::memory_order_release);
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<bool> waiting_{false};
};

struct PublishingGateway {
    int index = 0;
    std::string id;
    std::string topic;
    std::vector<Payload> payloads;
    std::unique_ptr<mqtt::async_client> client;

    // Publishing thread.
    std::uint64_t published = 0;  // publishes made (in Receipts mode: the highest seq published)
    std::uint64_t retransmits = 0;
    std::vector<std::int64_t> published_us;  // [seq - 1], Receipts mode

    // Paho's callback thread.
    std::atomic<std::uint64_t> acked{0};
    std::atomic<std::uint64_t> covered{0};  // the receipts' cumulative_seq
    std::atomic<std::int64_t> last_receipt_progress_us{0};
    std::vector<std::int64_t> receipt_us;  // [seq - 1]: when a receipt first covered it
    std::uint64_t receipt_mark = 0;
    std::atomic<std::uint64_t> connection_losses{0};
    std::atomic<std::uint64_t> publish_failures{0};
};

class AckListener final : public mqtt::iaction_listener {
public:
    AckListener(PublishingGateway& gateway, Wakeup& wakeup) : gateway_(gateway), wakeup_(wakeup) {}
    void on_success(const mqtt::token&) override {
        gateway_.acked.fetch_add(1, std::memory_order_relaxed);
        wakeup_.poke();
    }
    void on_failure(const mqtt::token&) override {
        gateway_.publish_failures.fetch_add(1, std::memory_order_relaxed);
        gateway_.acked.fetch_add(1, std::memory_order_relaxed);
        wakeup_.poke();
    }

private:
    PublishingGateway& gateway_;
    Wakeup& wakeup_;
};

double processCpuSeconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
    };
    return s(usage.ru_utime) + s(usage.ru_stime);
}

// The benchmark's own MQTT clients (publishers, ceiling subscribers) switch off Paho C's internal
// trace: at its default level it formats every packet into an in-memory ring under a global
// mutex, which would make the load generator and the ceiling pay for something they need not.
// tern-ingest runs Paho at its default level (see the report).
void quietPaho() { MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR); }

// Set once by main(), before any publisher starts: --paho-default-trace, --window, --ingest-toml.
bool g_paho_trace = false;
std::string g_ingest_toml;
std::uint64_t g_window = kWindow;

int runPublisher(const fs::path& spec_path) {
    const PublisherSpec spec = readSpec(spec_path);
    if (!spec.paho_trace) quietPaho();
    std::vector<std::unique_ptr<PublishingGateway>> gateways;
    {
        std::ifstream in(spec.payloads, std::ios::binary);
        const auto get32 = [&] {
            std::uint32_t v = 0;
            in.read(reinterpret_cast<char*>(&v), sizeof v);
            return v;
        };
        const std::uint32_t n_gateways = get32();
        const std::uint32_t per_gateway = get32();
        std::map<int, const PublisherSpec::Gateway*> wanted;
        for (const auto& g : spec.gateways) wanted[g.index] = &g;
        for (std::uint32_t g = 0; g < n_gateways; ++g) {
            std::unique_ptr<PublishingGateway> gw;
            if (wanted.contains(static_cast<int>(g))) {
                gw = std::make_unique<PublishingGateway>();
                gw->index = static_cast<int>(g);
                gw->id = gatewayName(static_cast<int>(g));
                gw->topic = telemetryTopic(gw->id);
                gw->payloads.reserve(per_gateway);
            }
            for (std::uint32_t s = 0; s < per_gateway; ++s) {
                Payload p;
                const std::uint32_t size = get32();
                p.sent_at_offset = get32();
                p.bytes.resize(size);
                in.read(reinterpret_cast<char*>(p.bytes.data()), size);
                if (gw) gw->payloads.push_back(std::move(p));
            }
            if (!in) fail("truncated payload file");
            if (gw) gateways.push_back(std::move(gw));
        }
    }

    Wakeup wakeup;
    std::vector<std::unique_ptr<AckListener>> listeners;
    const std::string receipts_suffix = "/receipt";
    for (auto& gw_ptr : gateways) {
        auto& gw = *gw_ptr;
        const auto& identity = *std::find_if(spec.gateways.begin(), spec.gateways.end(),
                                             [&](const auto& g) { return g.index == gw.index; });
        gw.published_us.assign(gw.payloads.size(), 0);
        gw.receipt_us.assign(gw.payloads.size(), 0);
        gw.client = std::make_unique<mqtt::async_client>(spec.uri, "bench-" + gw.id,
                                                         mqtt::create_options(MQTTVERSION_5));
        listeners.push_back(std::make_unique<AckListener>(gw, wakeup));
        PublishingGateway* raw = &gw;
        gw.client->set_connection_lost_handler([raw, &wakeup](const std::string&) {
            raw->connection_losses.fetch_add(1);
            wakeup.poke();
        });
        gw.client->set_message_callback([raw, &wakeup](mqtt::const_message_ptr message) {
            const auto& bytes = message->get_payload_ref();
            auto receipt = shared::decodeReceipt(
                std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
            if (!receipt || receipt.value().epoch != kEpoch) return;
            const std::uint64_t cumulative =
                std::min<std::uint64_t>(receipt.value().cumulative_seq, raw->receipt_us.size());
            if (cumulative <= raw->receipt_mark) return;
            const std::int64_t now = wallMicros();
            for (std::uint64_t seq = raw->receipt_mark + 1; seq <= cumulative; ++seq) {
                raw->receipt_us[seq - 1] = now;
            }
            raw->receipt_mark = cumulative;
            raw->covered.store(cumulative, std::memory_order_release);
            raw->last_receipt_progress_us.store(now, std::memory_order_relaxed);
            wakeup.poke();
        });
        auto ssl = mqtt::ssl_options_builder()
                       .trust_store(spec.ca)
                       .key_store(identity.cert)
                       .private_key(identity.key)
                       .enable_server_cert_auth(true)
                       .verify(true)
                       .finalize();
        auto options = mqtt::connect_options_builder()
                           .mqtt_version(MQTTVERSION_5)
                           .clean_start(true)
                           .keep_alive_interval(30s)
                           .connect_timeout(10s)
                           .max_inflight(1000)
                           .ssl(std::move(ssl))
                           .finalize();
        try {
            if (!gw.client->connect(options)->wait_for(15s)) fail("connect timed out: " + gw.id);
            if (spec.mode == PublishMode::Receipts) {
                const auto receipt_topic = "tern/v1/gw/" + gw.id + receipts_suffix;
                if (!gw.client->subscribe(receipt_topic, 1)->wait_for(10s)) {
                    fail("subscribe timed out: " + receipt_topic);
                }
            }
        } catch (const mqtt::exception& e) {
            fail(gw.id + ": " + e.what());
        }
    }

    const double cpu_before = processCpuSeconds();
    const std::int64_t start_us = wallMicros();
    const auto start = std::chrono::steady_clock::now();
    const auto publish_end =
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(spec.publish_seconds));
    std::uint64_t total = 0;
    double blocked_seconds = 0;
    std::vector<std::uint8_t> buffer;

    const auto publish = [&](std::size_t i, std::uint64_t seq, bool first_time) {
        PublishingGateway& gw = *gateways[i];
        const Payload& p = gw.payloads[(seq - 1) % gw.payloads.size()];
        buffer.assign(p.bytes.begin(), p.bytes.end());
        const std::int64_t now_us = wallMicros();
        patchSentAt(buffer.data(), p.sent_at_offset, now_us / 1000);
        if (first_time && spec.mode == PublishMode::Receipts) gw.published_us[seq - 1] = now_us;
        try {
            gw.client->publish(gw.topic, buffer.data(), buffer.size(), 1, false, nullptr,
                               *listeners[i]);
        } catch (const mqtt::exception&) {
            gw.publish_failures.fetch_add(1);
            gw.acked.fetch_add(1);
        }
    };

    const auto room = [&](const PublishingGateway& gw) {
        if (spec.mode == PublishMode::Open) {
            return gw.published - gw.acked.load(std::memory_order_relaxed) < kOpenOutstanding;
        }
        return gw.published < gw.payloads.size() &&
               gw.published - gw.covered.load(std::memory_order_acquire) < spec.window;
    };

    std::size_t next_gateway = 0;
    while (std::chrono::steady_clock::now() < publish_end) {
        bool progressed = false;
        const double allowed =
            spec.rate > 0 ? spec.rate * seconds(std::chrono::steady_clock::now() - start) : 0;
        for (std::size_t n = 0; n < gateways.size(); ++n) {
            if (spec.rate > 0 && static_cast<double>(total) >= allowed) break;
            const std::size_t i = (next_gateway + n) % gateways.size();
            PublishingGateway& gw = *gateways[i];
            if (!room(gw)) continue;
            gw.published += 1;
            total += 1;
            publish(i, gw.published, true);
            progressed = true;
        }
        next_gateway = (next_gateway + 1) % gateways.size();
        if (!progressed) {
            const auto before = std::chrono::steady_clock::now();
            wakeup.wait(spec.rate > 0 ? 500us : 1000us);
            if (spec.rate == 0)
                blocked_seconds += seconds(std::chrono::steady_clock::now() - before);
        }
    }
    const std::int64_t end_us = wallMicros();
    const double cpu_publishing = processCpuSeconds() - cpu_before;

    // Drain: every publish acknowledged (Open) or receipted (Receipts). A gateway whose receipts
    // stop moving for two seconds sends what is not covered again, as a gateway would.
    const auto drain_deadline = std::chrono::steady_clock::now() + kPublisherDrain;
    while (std::chrono::steady_clock::now() < drain_deadline) {
        bool done = true;
        for (std::size_t i = 0; i < gateways.size(); ++i) {
            PublishingGateway& gw = *gateways[i];
            if (spec.mode == PublishMode::Open) {
                if (gw.acked.load() < gw.published) done = false;
                continue;
            }
            const std::uint64_t covered = gw.covered.load();
            if (covered >= gw.published) continue;
            done = false;
            const std::int64_t last = std::max(gw.last_receipt_progress_us.load(), end_us);
            if (wallMicros() - last > 2'000'000) {
                for (std::uint64_t seq = covered + 1; seq <= gw.published; ++seq) {
                    publish(i, seq, false);
                    gw.retransmits += 1;
                }
                gw.last_receipt_progress_us.store(wallMicros());
            }
        }
        if (done) break;
        wakeup.wait(5000us);
    }

    std::ofstream out(spec.results, std::ios::binary | std::ios::trunc);
    const auto put = [&](auto v) { out.write(reinterpret_cast<const char*>(&v), sizeof v); };
    put(static_cast<std::uint32_t>(gateways.size()));
    put(static_cast<std::uint32_t>(kBatchesPerGateway));
    put(start_us);
    put(end_us);
    put(cpu_publishing);
    put(blocked_seconds);
    for (const auto& gw : gateways) {
        put(static_cast<std::uint32_t>(gw->index));
        put(gw->published);
        put(gw->acked.load());
        put(gw->covered.load());
        put(gw->retransmits);
        put(gw->connection_losses.load());
        put(gw->publish_failures.load());
        out.write(reinterpret_cast<const char*>(gw->published_us.data()),
                  static_cast<std::streamsize>(gw->published_us.size() * sizeof(std::int64_t)));
        out.write(reinterpret_cast<const char*>(gw->receipt_us.data()),
                  static_cast<std::streamsize>(gw->receipt_us.size() * sizeof(std::int64_t)));
    }
    if (!out.flush()) fail("cannot write " + spec.results.string());
    out.close();

    for (auto& gw : gateways) {
        try {
            if (gw->client->is_connected()) gw->client->disconnect()->wait_for(5s);
        } catch (const mqtt::exception&) {
        }
    }
    return 0;
}

// --- the publisher processes, from the benchmark's side -----------------------------------------

struct GatewayResult {
    int index = 0;
    std::uint64_t published = 0;
    std::uint64_t acked = 0;
    std::uint64_t covered = 0;
    std::uint64_t retransmits = 0;
    std::uint64_t connection_losses = 0;
    std::uint64_t publish_failures = 0;
    std::vector<std::int64_t> published_us;
    std::vector<std::int64_t> receipt_us;
};

struct PublishResult {
    std::int64_t start_us = 0;  // the earliest process's
    std::int64_t end_us = 0;    // the latest process's
    double cpu_seconds = 0;     // summed over processes, while publishing
    double blocked_seconds = 0;
    std::vector<GatewayResult> gateways;  // by index

    std::uint64_t published() const {
        std::uint64_t n = 0;
        for (const auto& g : gateways) n += g.published;
        return n;
    }
    std::uint64_t covered() const {
        std::uint64_t n = 0;
        for (const auto& g : gateways) n += std::min(g.covered, g.published);
        return n;
    }
    std::uint64_t sum(std::uint64_t GatewayResult::*field) const {
        std::uint64_t n = 0;
        for (const auto& g : gateways) n += g.*field;
        return n;
    }
    double publishSeconds() const { return static_cast<double>(end_us - start_us) / 1e6; }
    // A gateway published its last prepared batch (then it idled): a rate may be understated.
    bool ranOut() const {
        return std::any_of(gateways.begin(), gateways.end(),
                           [](const auto& g) { return g.published >= kBatchesPerGateway; });
    }
};

void readResults(const fs::path& path, PublishResult& into) {
    std::ifstream in(path, std::ios::binary);
    const auto get = [&](auto& v) { in.read(reinterpret_cast<char*>(&v), sizeof v); };
    std::uint32_t n = 0;
    std::uint32_t per_gateway = 0;
    std::int64_t start_us = 0;
    std::int64_t end_us = 0;
    double cpu = 0;
    double blocked = 0;
    get(n);
    get(per_gateway);
    get(start_us);
    get(end_us);
    get(cpu);
    get(blocked);
    if (!in) fail("cannot read publisher results " + path.string());
    into.start_us = into.start_us == 0 ? start_us : std::min(into.start_us, start_us);
    into.end_us = std::max(into.end_us, end_us);
    into.cpu_seconds += cpu;
    into.blocked_seconds += blocked;
    for (std::uint32_t i = 0; i < n; ++i) {
        GatewayResult g;
        std::uint32_t index = 0;
        get(index);
        g.index = static_cast<int>(index);
        get(g.published);
        get(g.acked);
        get(g.covered);
        get(g.retransmits);
        get(g.connection_losses);
        get(g.publish_failures);
        g.published_us.resize(per_gateway);
        g.receipt_us.resize(per_gateway);
        in.read(reinterpret_cast<char*>(g.published_us.data()),
                static_cast<std::streamsize>(per_gateway * sizeof(std::int64_t)));
        in.read(reinterpret_cast<char*>(g.receipt_us.data()),
                static_cast<std::streamsize>(per_gateway * sizeof(std::int64_t)));
        if (!in) fail("truncated publisher results " + path.string());
        into.gateways.push_back(std::move(g));
    }
    std::sort(into.gateways.begin(), into.gateways.end(),
              [](const auto& a, const auto& b) { return a.index < b.index; });
}

// Publisher processes for every gateway, gateways dealt to processes in turn.
class Publishers {
public:
    Publishers(test::MosquittoFixture& broker, const fs::path& dir, const fs::path& payloads,
               int processes, PublishMode mode, double rate, std::chrono::duration<double> length)
        : dir_(dir) {
        for (int p = 0; p < processes; ++p) {
            PublisherSpec spec;
            spec.uri = broker.uri();
            spec.ca = broker.caFile().string();
            spec.mode = mode;
            spec.rate = rate / processes;
            spec.publish_seconds = length.count();
            spec.paho_trace = g_paho_trace;
            spec.window = g_window;
            spec.payloads = payloads;
            spec.results = dir / fmt::format("results-{}.bin", p);
            for (int g = p; g < kGateways; g += processes) {
                spec.gateways.push_back({g, broker.clientCert(gatewayName(g)).string(),
                                         broker.clientKey(gatewayName(g)).string()});
            }
            const auto spec_path = dir / fmt::format("publisher-{}.spec", p);
            writeSpec(spec_path, spec);
            fs::remove(spec.results);
            results_.push_back(spec.results);
            logs_.push_back(dir / fmt::format("publisher-{}.log", p));
            pids_.push_back(test::spawnProcess(
                {fs::read_symlink("/proc/self/exe").string(), "--publisher", spec_path.string()},
                logs_.back()));
        }
    }
    ~Publishers() {
        for (pid_t pid : pids_) {
            if (pid > 0) {
                ::kill(pid, SIGKILL);
                test::waitForExit(pid, 5s);
            }
        }
    }
    Publishers(const Publishers&) = delete;
    Publishers& operator=(const Publishers&) = delete;

    const std::vector<pid_t>& pids() const { return pids_; }

    bool running() {
        bool any = false;
        for (pid_t& pid : pids_) {
            if (pid <= 0) continue;
            if (auto status = test::waitForExit(pid, 0ms)) {
                if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
                    fail(fmt::format("publisher exited with status {}", *status),
                         readFile(logs_[static_cast<std::size_t>(&pid - pids_.data())]));
                }
                pid = -1;
            } else {
                any = true;
            }
        }
        return any;
    }

    PublishResult wait(std::chrono::seconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (running()) {
            if (std::chrono::steady_clock::now() > deadline) fail("publishers did not finish");
            std::this_thread::sleep_for(20ms);
        }
        PublishResult result;
        for (const auto& path : results_) readResults(path, result);
        return result;
    }

private:
    fs::path dir_;
    std::vector<fs::path> results_;
    std::vector<fs::path> logs_;
    std::vector<pid_t> pids_;
};

// --- measuring from outside ----------------------------------------------------------------------

// CPU time of a process (all threads) and of each of its threads, from /proc (clock ticks).
struct CpuSample {
    std::chrono::steady_clock::time_point at;
    double process = 0;
    std::map<int, double> threads;     // tid -> seconds
    std::map<int, std::string> names;  // tid -> comm (Paho names its threads; ours are unnamed)
};

using tern::bench::statCpuSeconds;

CpuSample sampleCpu(pid_t pid, bool threads) {
    CpuSample s;
    s.at = std::chrono::steady_clock::now();
    const fs::path proc = fs::path("/proc") / std::to_string(pid);
    s.process = statCpuSeconds(readFile(proc / "stat"));
    if (threads) {
        std::error_code ec;
        for (const auto& task : fs::directory_iterator(proc / "task", ec)) {
            const int tid = std::stoi(task.path().filename().string());
            s.threads[tid] = statCpuSeconds(readFile(task.path() / "stat"));
            std::string comm = readFile(task.path() / "comm");
            while (!comm.empty() && comm.back() == '\n') comm.pop_back();
            s.names[tid] = comm;
        }
    }
    return s;
}

double cpuShare(const CpuSample& a, const CpuSample& b) {
    return (b.process - a.process) / seconds(b.at - a.at);
}

// Busy and total CPU time of the whole machine (/proc/stat), in clock ticks over all CPUs.
struct MachineSample {
    double busy = 0;
    double total = 0;
};

MachineSample sampleMachine() {
    std::istringstream stat(readFile("/proc/stat"));
    std::string cpu;
    stat >> cpu;  // "cpu": the sum over CPUs
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    stat >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    MachineSample m;
    m.busy = user + nice + system + irq + softirq + steal;
    m.total = m.busy + idle + iowait;
    return m;
}

// (thread, share of one core) over a window; a thread is named by its position among the
// process's threads in tid order (creation order) and its comm.
using ThreadShares = std::vector<std::pair<std::string, double>>;

// CPU used during a window by the processes of a run, by the threads of one of them, and by
// everything else on the machine (which this benchmark shares with whoever else runs there).
class CpuWindow {
public:
    void start(std::vector<std::pair<std::string, pid_t>> processes, pid_t threads_of = -1) {
        processes_ = std::move(processes);
        threads_of_ = threads_of;
        before_.clear();
        for (const auto& [label, pid] : processes_) {
            before_.push_back(sampleCpu(pid, pid == threads_of_));
        }
        machine_before_ = sampleMachine();
        started_ = true;
    }

    void stop() {
        if (!started_ || stopped_) return;
        stopped_ = true;
        const MachineSample machine = sampleMachine();
        double ours = 0;
        for (std::size_t i = 0; i < processes_.size(); ++i) {
            const CpuSample after =
                sampleCpu(processes_[i].second, processes_[i].second == threads_of_);
            const double share = cpuShare(before_[i], after);
            shares_[processes_[i].first] += share;
            ours += share;
            if (processes_[i].second == threads_of_) {
                int position = 0;
                for (const auto& [tid, cpu] : after.threads) {
                    const auto b = before_[i].threads.find(tid);
                    const double used = cpu - (b == before_[i].threads.end() ? 0 : b->second);
                    threads_.emplace_back(fmt::format("#{} {}", position++, after.names.at(tid)),
                                          used / seconds(after.at - before_[i].at));
                }
            }
        }
        const double cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
        machine_ = machine.total > machine_before_.total
                       ? cpus * (machine.busy - machine_before_.busy) /
                             (machine.total - machine_before_.total)
                       : 0;
        others_ = std::max(0.0, machine_ - ours);
    }

    bool started() const { return started_; }
    bool measured() const { return stopped_; }
    double share(const std::string& label) const {
        const auto it = shares_.find(label);
        return it == shares_.end() ? 0 : it->second;
    }
    double machine() const { return machine_; }  // in cores
    double others() const { return others_; }    // in cores
    const ThreadShares& threads() const { return threads_; }

    // "mosquitto 45 %, tern-ingest 80 % (...), other processes 12 %", in % of one core.
    std::string describe() const {
        std::string out;
        std::vector<std::string> order;
        for (const auto& [label, pid] : processes_) {
            if (std::find(order.begin(), order.end(), label) == order.end()) order.push_back(label);
        }
        for (const auto& label : order) {
            if (!out.empty()) out += ", ";
            out += fmt::format("{} {:.0f} %", label, 100 * share(label));
            if (label == threads_label_ && !threads_.empty()) {
                out += " (threads: " + threadList() + ")";
            }
        }
        out += fmt::format("; the machine {:.0f} % of {} CPUs, of which other processes {:.0f} %",
                           100 * machine_, ::sysconf(_SC_NPROCESSORS_ONLN), 100 * others_);
        return out;
    }
    void labelThreads(std::string label) { threads_label_ = std::move(label); }

private:
    std::string threadList() const {
        ThreadShares sorted = threads_;
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const auto& a, const auto& b) { return a.second > b.second; });
        std::string out;
        for (const auto& [name, share] : sorted) {
            if (share < 0.01) break;
            if (!out.empty()) out += ", ";
            out += fmt::format("{} {:.0f} %", name, 100 * share);
        }
        return out;
    }

    std::vector<std::pair<std::string, pid_t>> processes_;
    pid_t threads_of_ = -1;
    std::string threads_label_;
    std::vector<CpuSample> before_;
    MachineSample machine_before_;
    std::map<std::string, double> shares_;
    ThreadShares threads_;
    double machine_ = 0;
    double others_ = 0;
    bool started_ = false;
    bool stopped_ = false;
};

struct Memory {
    double rss_mb = 0;
    double hwm_mb = 0;
};

Memory memoryOf(pid_t pid) {
    Memory m;
    std::istringstream status(readFile(fs::path("/proc") / std::to_string(pid) / "status"));
    for (std::string line; std::getline(status, line);) {
        std::istringstream fields(line);
        std::string key;
        double kib = 0;
        fields >> key >> kib;
        if (key == "VmRSS:") m.rss_mb = kib / 1024.0;
        if (key == "VmHWM:") m.hwm_mb = kib / 1024.0;
    }
    return m;
}

// The broker's pid: the fixture keeps it to itself, so look for its config file on a command line.
pid_t findBroker(const test::MosquittoFixture& broker) {
    const std::string config = broker.configFile().string();
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        std::string cmdline = readFile(entry.path() / "cmdline");
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline.find("mosquitto") != std::string::npos &&
            cmdline.find(config) != std::string::npos) {
            return std::stoi(name);
        }
    }
    return -1;
}

// One /metrics scrape, parsed: name -> series (labels, value).
class Metrics {
public:
    struct Series {
        std::map<std::string, std::string> labels;
        double value = 0;
    };

    static Metrics scrape(const test::IngestProcess& ingest) {
        auto response = ingest.get("/metrics");
        if (!response || response->first != 200) fail("/metrics did not answer", ingest.log());
        Metrics m;
        std::istringstream text(response->second);
        for (std::string line; std::getline(text, line);) {
            if (line.empty() || line[0] == '#') continue;
            const auto space = line.rfind(' ');
            if (space == std::string::npos) continue;
            const auto brace = line.find('{');
            Series s;
            std::string name = line.substr(0, std::min(brace, space));
            if (brace != std::string::npos && brace < space) {
                const auto end = line.rfind('}', space);
                std::string labels = line.substr(brace + 1, end - brace - 1);
                // k="v",k="v" (the values here never contain quotes or commas)
                std::size_t pos = 0;
                while (pos < labels.size()) {
                    const auto eq = labels.find('=', pos);
                    const auto q2 = labels.find('"', eq + 2);
                    s.labels[labels.substr(pos, eq - pos)] = labels.substr(eq + 2, q2 - eq - 2);
                    pos = q2 + 2;
                }
            }
            s.value = std::strtod(line.c_str() + space + 1, nullptr);
            m.series_[name].push_back(std::move(s));
        }
        m.at = std::chrono::steady_clock::now();
        return m;
    }

    // The sum over the series of `name` that carry every label in `labels`.
    double value(const std::string& name,
                 const std::map<std::string, std::string>& labels = {}) const {
        double sum = 0;
        const auto it = series_.find(name);
        if (it == series_.end()) return 0;
        for (const auto& s : it->second) {
            if (matches(s, labels)) sum += s.value;
        }
        return sum;
    }

    // (upper bound, cumulative count) of a histogram, +Inf last.
    std::vector<std::pair<double, double>> buckets(
        const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
        std::vector<std::pair<double, double>> out;
        const auto it = series_.find(name + "_bucket");
        if (it == series_.end()) return out;
        for (const auto& s : it->second) {
            if (!matches(s, labels)) continue;
            const std::string& le = s.labels.at("le");
            out.emplace_back(le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr), s.value);
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    std::chrono::steady_clock::time_point at;

private:
    static bool matches(const Series& s, const std::map<std::string, std::string>& labels) {
        for (const auto& [k, v] : labels) {
            const auto found = s.labels.find(k);
            if (found == s.labels.end() || found->second != v) return false;
        }
        return true;
    }
    std::map<std::string, std::vector<Series>> series_;
};

// A quantile of a Prometheus histogram, interpolated linearly inside its bucket (the buckets here
// double from one bound to the next, so this is an estimate within a factor of two). nullopt
// when the histogram is empty; +infinity when the quantile lies in the +Inf bucket.
std::optional<double> histogramQuantile(const std::vector<std::pair<double, double>>& buckets,
                                        double q) {
    if (buckets.empty() || buckets.back().second <= 0) return std::nullopt;
    const double rank = q * buckets.back().second;
    double lower = 0;
    double below = 0;
    for (const auto& [bound, cumulative] : buckets) {
        if (cumulative >= rank) {
            if (std::isinf(bound)) return INFINITY;
            const double in_bucket = cumulative - below;
            return in_bucket <= 0 ? bound : lower + (bound - lower) * (rank - below) / in_bucket;
        }
        lower = bound;
        below = cumulative;
    }
    return INFINITY;
}

std::optional<double> exactQuantile(std::vector<double> values, double q) {
    if (values.empty()) return std::nullopt;
    const auto k = static_cast<std::size_t>(
        std::min<double>(static_cast<double>(values.size()) - 1,
                         std::ceil(q * static_cast<double>(values.size())) - 1));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return values[k];
}

struct Percentiles {
    std::optional<double> p50;  // milliseconds
    std::optional<double> p99;
    std::size_t samples = 0;
};

Percentiles fromHistogram(const Metrics& m, const std::string& name,
                          const std::map<std::string, std::string>& labels = {}) {
    const auto b = m.buckets(name, labels);
    Percentiles p;
    p.samples = b.empty() ? 0 : static_cast<std::size_t>(b.back().second);
    if (auto v = histogramQuantile(b, 0.5)) p.p50 = *v * 1000;
    if (auto v = histogramQuantile(b, 0.99)) p.p99 = *v * 1000;
    return p;
}

Percentiles fromSamples(const std::vector<double>& ms) {
    return {exactQuantile(ms, 0.5), exactQuantile(ms, 0.99), ms.size()};
}

std::string formatMs(const std::optional<double>& v) {
    if (!v) return "—";
    if (std::isinf(*v)) return "> max bucket";
    return *v < 10 ? fmt::format("{:.2f}", *v) : fmt::format("{:.0f}", *v);
}

std::string formatPercentiles(const Percentiles& p) {
    return fmt::format("{} / {}", formatMs(p.p50), formatMs(p.p99));
}

std::string withCommas(double v) {
    std::string digits = fmt::format("{:.0f}", v);
    std::string out;
    const std::size_t lead = digits.size() % 3 == 0 ? 3 : digits.size() % 3;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (i - lead) % 3 == 0 && i >= lead) out += ',';
        out += digits[i];
    }
    return out;
}

// Linear interpolation of a counter between scrapes, at time t.
double counterAt(const std::vector<std::pair<std::chrono::steady_clock::time_point, double>>& s,
                 std::chrono::steady_clock::time_point t) {
    if (s.empty()) return 0;
    if (t <= s.front().first) return s.front().second;
    for (std::size_t i = 1; i < s.size(); ++i) {
        if (s[i].first >= t) {
            const double f = seconds(t - s[i - 1].first) / seconds(s[i].first - s[i - 1].first);
            return s[i - 1].second + f * (s[i].second - s[i - 1].second);
        }
    }
    return s.back().second;
}

// --- the steady window of a run ------------------------------------------------------------------

using Samples = std::vector<std::pair<std::chrono::steady_clock::time_point, double>>;

// Samples `counter` while the publishers run; the rate is taken over [first count + warm-up,
// + window], and the CPU of `processes` (and the publishers) over the same window.
struct Window {
    double rate = 0;  // per second
    double seconds = 0;
    CpuWindow cpu;
};

Window measureWindow(Publishers& publishers, const std::function<double()>& counter,
                     std::vector<std::pair<std::string, pid_t>> processes, pid_t threads_of,
                     const std::string& threads_label) {
    Window w;
    w.cpu.labelThreads(threads_label);
    for (pid_t pid : publishers.pids()) processes.emplace_back("publishers", pid);
    processes.emplace_back("this benchmark", ::getpid());
    Samples samples;
    std::optional<std::chrono::steady_clock::time_point> first;
    bool started = false;
    while (publishers.running()) {
        const double n = counter();
        const auto now = std::chrono::steady_clock::now();
        samples.emplace_back(now, n);
        if (!first && n > 0) first = now;
        if (first && !started && now >= *first + kSpoolWarmUp) {
            w.cpu.start(processes, threads_of);
            started = true;
        }
        if (started && now >= *first + kSpoolWarmUp + kSpoolWindow) w.cpu.stop();
        std::this_thread::sleep_for(kSampleInterval);
    }
    if (!first) fail("nothing arrived");
    const auto from = *first + kSpoolWarmUp;
    const auto to = from + kSpoolWindow;
    if (samples.back().first < to || !w.cpu.measured()) {
        fail("the publishers stopped before the measuring window closed");
    }
    w.seconds = seconds(to - from);
    w.rate = (counterAt(samples, to) - counterAt(samples, from)) / w.seconds;
    return w;
}

// --- 1. the ceiling ------------------------------------------------------------------------------

// The ACL's ingest identity with a plain subscription to every gateway's telemetry. It counts
// messages and does nothing else with them; with `receipts`, a thread of its own also answers
// each gateway the way the ingest does (a cumulative Receipt when receipt_batches messages wait
// for one, or receipt_interval after the first), counting a gateway's messages as its seqs (they
// arrive in order and, with the publishers' window, none is dropped).
class CountingSubscriber {
public:
    CountingSubscriber(test::MosquittoFixture& broker, bool receipts)
        : client_(broker.uri(), receipts ? "bench-ceiling-receipts" : "bench-ceiling",
                  mqtt::create_options(MQTTVERSION_5)) {
        client_.set_message_callback([this](mqtt::const_message_ptr message) {
            const std::int64_t now = wallMicros();
            if (count_.fetch_add(1, std::memory_order_relaxed) == 0) first_us_.store(now);
            last_us_.store(now, std::memory_order_relaxed);
            // "tern/v1/gw/gw-NN/telemetry"
            const std::string& topic = message->get_topic();
            constexpr std::size_t kDigits = std::string_view("tern/v1/gw/gw-").size();
            if (topic.size() > kDigits + 2) {
                const int g = (topic[kDigits] - '0') * 10 + (topic[kDigits + 1] - '0');
                if (g >= 0 && g < kGateways) per_gateway_[static_cast<std::size_t>(g)].fetch_add(1);
            }
        });
        auto ssl = mqtt::ssl_options_builder()
                       .trust_store(broker.caFile().string())
                       .key_store(broker.clientCert(kIngestIdentity).string())
                       .private_key(broker.clientKey(kIngestIdentity).string())
                       .enable_server_cert_auth(true)
                       .verify(true)
                       .finalize();
        auto options = mqtt::connect_options_builder()
                           .mqtt_version(MQTTVERSION_5)
                           .clean_start(true)
                           .connect_timeout(10s)
                           .max_inflight(1000)
                           .ssl(std::move(ssl))
                           .finalize();
        if (!client_.connect(options)->wait_for(15s)) fail("ceiling subscriber: connect timed out");
        if (!client_.subscribe("tern/v1/gw/+/telemetry", 1)->wait_for(10s)) {
            fail("ceiling subscriber: subscribe timed out");
        }
        if (receipts) sender_ = std::thread([this] { sendReceipts(); });
    }
    ~CountingSubscriber() {
        stopping_ = true;
        if (sender_.joinable()) sender_.join();
        try {
            if (client_.is_connected()) client_.disconnect()->wait_for(5s);
        } catch (const mqtt::exception&) {
        }
    }
    CountingSubscriber(const CountingSubscriber&) = delete;
    CountingSubscriber& operator=(const CountingSubscriber&) = delete;

    std::uint64_t count() const { return count_.load(); }
    // Deliveries over (last - first arrival).
    double rate() const {
        const double span = static_cast<double>(last_us_.load() - first_us_.load()) / 1e6;
        return span > 0 ? static_cast<double>(count_.load() - 1) / span : 0;
    }
    std::uint64_t receipts() const { return receipts_.load(); }

private:
    void sendReceipts() {
        std::vector<std::uint64_t> sent(kGateways, 0);
        std::vector<std::optional<std::chrono::steady_clock::time_point>> waiting_since(kGateways);
        while (!stopping_) {
            const auto now = std::chrono::steady_clock::now();
            for (int g = 0; g < kGateways; ++g) {
                const auto i = static_cast<std::size_t>(g);
                const std::uint64_t seen = per_gateway_[i].load();
                if (seen == sent[i]) continue;
                if (!waiting_since[i]) waiting_since[i] = now;
                if (seen - sent[i] < kReceiptBatches &&
                    now - *waiting_since[i] < kReceiptInterval) {
                    continue;
                }
                shared::Receipt receipt;
                receipt.gateway_id = gatewayName(g);
                receipt.epoch = kEpoch;
                receipt.cumulative_seq = seen;
                receipt.issued_at_ms = wallMicros() / 1000;
                auto payload = shared::encodeReceipt(receipt);
                if (!payload) fail("encode receipt: " + payload.error().message());
                try {
                    client_.publish("tern/v1/gw/" + receipt.gateway_id + "/receipt",
                                    payload.value().data(), payload.value().size(), 1, false);
                } catch (const mqtt::exception& e) {
                    fail(std::string("ceiling subscriber: publishing a receipt: ") + e.what());
                }
                receipts_.fetch_add(1);
                sent[i] = seen;
                waiting_since[i].reset();
            }
            std::this_thread::sleep_for(1ms);
        }
    }

    mqtt::async_client client_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::int64_t> first_us_{0};
    std::atomic<std::int64_t> last_us_{0};
    std::array<std::atomic<std::uint64_t>, kGateways> per_gateway_{};
    std::atomic<std::uint64_t> receipts_{0};
    std::atomic<bool> stopping_{false};
    std::thread sender_;
};

struct CeilingRun {
    double rate = 0;  // messages/s delivered to the subscriber
    std::uint64_t published = 0;
    std::uint64_t received = 0;
    double publish_rate = 0;  // messages/s PUBACKed to the publishers
    std::uint64_t losses = 0;
    std::uint64_t receipts = 0;
    std::uint64_t retransmits = 0;
    std::optional<Percentiles> publish_to_receipt;
    std::string cpu;
    double others = 0;  // cores used by other processes on the machine during the window
    bool ran_out = false;
};

std::vector<double> receiptLatencies(const PublishResult& r);

// Open loop: the publishers are held back only by PUBACKs; whatever the subscriber's queue
// (max_queued_messages) cannot take, the broker drops. The rate is deliveries over (last - first
// arrival).
CeilingRun runOpenCeiling(test::MosquittoFixture& broker, pid_t broker_pid, const fs::path& dir,
                          const fs::path& payloads, int processes) {
    CeilingRun run;
    CountingSubscriber subscriber(broker, false);
    Publishers publishers(broker, dir, payloads, processes, PublishMode::Open, 0, kCeilingPublish);
    while (subscriber.count() == 0 && publishers.running()) std::this_thread::sleep_for(1ms);
    CpuWindow cpu;
    std::vector<std::pair<std::string, pid_t>> processes_list{{"mosquitto", broker_pid}};
    for (pid_t pid : publishers.pids()) processes_list.emplace_back("publishers", pid);
    processes_list.emplace_back("subscriber (this benchmark)", ::getpid());
    cpu.start(processes_list);
    std::this_thread::sleep_for(kCeilingPublish - 1s);
    cpu.stop();
    run.cpu = cpu.describe();
    run.others = cpu.others();
    const PublishResult result = publishers.wait(60s);
    // Deliveries still under way once the publishers have their PUBACKs.
    std::uint64_t last = subscriber.count();
    for (;;) {
        std::this_thread::sleep_for(300ms);
        if (subscriber.count() == last) break;
        last = subscriber.count();
    }
    run.rate = subscriber.rate();
    run.received = subscriber.count();
    run.published = result.published();
    run.publish_rate = static_cast<double>(run.published) / result.publishSeconds();
    run.losses = result.sum(&GatewayResult::connection_losses);
    return run;
}

// Closed loop, as the ingest run: the same publishers with the same window, answered with
// receipts by a subscriber that does nothing else. The rate is taken as in the ingest run.
CeilingRun runReceiptCeiling(test::MosquittoFixture& broker, pid_t broker_pid, const fs::path& dir,
                             const fs::path& payloads, int processes) {
    CeilingRun run;
    CountingSubscriber subscriber(broker, true);
    Publishers publishers(broker, dir, payloads, processes, PublishMode::Receipts, 0,
                          kSpoolPublish);
    Window w = measureWindow(
        publishers, [&] { return static_cast<double>(subscriber.count()); },
        {{"mosquitto", broker_pid}}, -1, "");
    run.rate = w.rate;
    run.cpu = w.cpu.describe();
    run.others = w.cpu.others();
    const PublishResult result = publishers.wait(60s);
    run.received = subscriber.count();
    run.published = result.published();
    run.publish_rate = static_cast<double>(run.published) / result.publishSeconds();
    run.losses = result.sum(&GatewayResult::connection_losses);
    run.receipts = subscriber.receipts();
    run.retransmits = result.sum(&GatewayResult::retransmits);
    run.publish_to_receipt = fromSamples(receiptLatencies(result));
    run.ran_out = result.ranOut();
    return run;
}

// --- 2. the spool, and 3. the store as the sink --------------------------------------------------

struct SpoolRun {
    double messages_per_s = 0;
    double readings_per_s = 0;
    double window_s = 0;
    std::uint64_t published = 0;
    std::uint64_t receipted = 0;
    std::uint64_t spooled = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t retransmits = 0;
    std::uint64_t losses = 0;
    double blocked_share = 0;  // of the publishing time the publishers waited for receipts
    bool ran_out = false;      // a gateway published its last prepared batch
    Percentiles publish_to_receipt;
    Percentiles publish_to_spooled;
    Percentiles received_to_spooled;
    double mean_group = 0;
    double mean_commit_ms = 0;
    double receipts = 0;
    Memory memory;
    std::string cpu;
    double others = 0;  // cores used by other processes on the machine during the window
};

struct DrainRun {
    bool ran = false;
    double readings_per_s = 0;
    double window_s = 0;
    std::uint64_t readings = 0;
    bool drained = false;
    double backlog_records = 0;
    double slices = 0;
    double slice_ms = 0;       // wall time per 512-record slice
    double deliver_ms = 0;     // of which deliver(): decode + writeMany + sync
    double tsdb_write_ms = 0;  // of which the store's transactions
    Memory memory;
    std::string cpu;
    double others = 0;  // cores used by other processes on the machine during the window
};

std::vector<double> receiptLatencies(const PublishResult& r) {
    std::vector<double> ms;
    for (const auto& g : r.gateways) {
        for (std::size_t i = 0; i < g.published_us.size(); ++i) {
            if (g.published_us[i] != 0 && g.receipt_us[i] != 0) {
                ms.push_back(static_cast<double>(g.receipt_us[i] - g.published_us[i]) / 1000.0);
            }
        }
    }
    return ms;
}

std::pair<SpoolRun, DrainRun> runSpoolAndDrain(test::MosquittoFixture& broker, pid_t broker_pid,
                                               const fs::path& dir, const fs::path& payloads,
                                               int processes) {
    SpoolRun run;
    DrainRun drain;
    test::IngestProcess ingest(
        broker, test::IngestOptions{.receiptInterval = "200ms",
                                    .receiptBatches = kReceiptBatches,
                                    .extraToml = "[sinks]\ntsdb = false\n" + g_ingest_toml});
    if (!ingest.start()) fail("tern-ingest did not start", ingest.log());

    {
        Publishers publishers(broker, dir, payloads, processes, PublishMode::Receipts, 0,
                              kSpoolPublish);
        Window w = measureWindow(
            publishers,
            [&] {
                return Metrics::scrape(ingest).value("tern_ingest_spool_appended_total",
                                                     {{"kind", "telemetry"}});
            },
            {{"mosquitto", broker_pid}, {"tern-ingest", ingest.pid()}}, ingest.pid(),
            "tern-ingest");
        run.window_s = w.seconds;
        run.messages_per_s = w.rate;
        run.readings_per_s = run.messages_per_s * kReadingsPerBatch;
        run.cpu = w.cpu.describe();
        run.others = w.cpu.others();
        run.others = w.cpu.others();

        const PublishResult result = publishers.wait(60s);
        run.published = result.published();
        run.receipted = result.covered();
        run.retransmits = result.sum(&GatewayResult::retransmits);
        run.losses = result.sum(&GatewayResult::connection_losses);
        run.blocked_share = result.blocked_seconds / processes / result.publishSeconds();
        run.publish_to_receipt = fromSamples(receiptLatencies(result));
        run.ran_out = result.ranOut();
    }
    const Metrics after = Metrics::scrape(ingest);
    run.spooled = static_cast<std::uint64_t>(
        after.value("tern_ingest_spool_appended_total", {{"kind", "telemetry"}}));
    run.duplicates = static_cast<std::uint64_t>(after.value("tern_ingest_spool_duplicates_total"));
    run.publish_to_spooled = fromHistogram(after, "tern_ingest_sent_to_spool_seconds");
    run.received_to_spooled = fromHistogram(after, "tern_ingest_spool_latency_seconds");
    const double groups = after.value("tern_ingest_spool_group_messages_count");
    run.mean_group = groups > 0 ? after.value("tern_ingest_spool_group_messages_sum") / groups : 0;
    const double commits = after.value("tern_ingest_spool_commit_seconds_count");
    run.mean_commit_ms =
        commits > 0 ? 1000 * after.value("tern_ingest_spool_commit_seconds_sum") / commits : 0;
    run.receipts = after.value("tern_ingest_receipts_total");
    run.memory = memoryOf(ingest.pid());

    // 3. The spool kept everything (no sink, no cursor, nothing truncated). Turn the store on:
    // its new cursor starts before the oldest record, and it drains with nothing else running.
    drain.ran = true;
    drain.backlog_records = static_cast<double>(run.spooled);
    ingest.rewriteConfig("[sinks]\ntsdb = true\n" + g_ingest_toml);
    ingest.signal(SIGHUP);
    Samples written;
    std::optional<std::chrono::steady_clock::time_point> started;
    CpuWindow cpu;
    cpu.labelThreads("tern-ingest");
    std::optional<Metrics> at_start;
    const auto give_up = std::chrono::steady_clock::now() + kDrainWindow + 20s;
    for (;;) {
        const Metrics m = Metrics::scrape(ingest);
        const double w = m.value("tern_ingest_tsdb_readings_written_total");
        if (!started && w > 0) {
            started = m.at;
            cpu.start({{"tern-ingest", ingest.pid()}, {"this benchmark", ::getpid()}},
                      ingest.pid());
            at_start = m;
        }
        if (started) written.emplace_back(m.at, w);
        const bool caught_up = started &&
                               m.value("tern_ingest_sink_lag_records", {{"sink", "tsdb"}}) == 0 &&
                               m.value("tern_ingest_sink_delivered_total", {{"sink", "tsdb"}}) >=
                                   drain.backlog_records;
        if (caught_up || (started && m.at >= *started + kDrainWindow)) {
            drain.drained = caught_up;
            cpu.stop();
            drain.cpu = cpu.describe();
            drain.others = cpu.others();
            drain.window_s = seconds(m.at - *started);
            drain.readings = static_cast<std::uint64_t>(w - written.front().second);
            drain.readings_per_s = static_cast<double>(drain.readings) / drain.window_s;
            const auto delta = [&](const std::string& name) {
                return m.value(name, {{"sink", "tsdb"}}) -
                       at_start->value(name, {{"sink", "tsdb"}});
            };
            drain.slices = delta("tern_ingest_sink_delivery_seconds_count");
            if (drain.slices > 0) {
                drain.slice_ms = 1000 * drain.window_s / drain.slices;
                drain.deliver_ms =
                    1000 * delta("tern_ingest_sink_delivery_seconds_sum") / drain.slices;
                drain.tsdb_write_ms = 1000 *
                                      (m.value("tern_ingest_tsdb_write_seconds_sum") -
                                       at_start->value("tern_ingest_tsdb_write_seconds_sum")) /
                                      drain.slices;
            }
            drain.memory = memoryOf(ingest.pid());
            break;
        }
        if (std::chrono::steady_clock::now() > give_up)
            fail("the tsdb sink did not start", ingest.log());
        std::this_thread::sleep_for(kSampleInterval);
    }
    ingest.kill();  // the rest of the backlog is of no interest
    return {run, drain};
}

// --- the store without the daemon ----------------------------------------------------------------

// The drain's first batches, in publishing order (gateways in turn), decoded.
std::vector<std::pair<int, shared::TelemetryBatch>> storeRows(const Workload& w) {
    std::vector<std::pair<int, shared::TelemetryBatch>> out;
    out.reserve(kStoreBatches);
    for (std::size_t i = 0; i < kStoreBatches; ++i) {
        const int g = static_cast<int>(i % kGateways);
        const auto& p = w.payloads[static_cast<std::size_t>(g)][i / kGateways];
        std::vector<std::uint8_t> bytes = p.bytes;
        patchSentAt(bytes.data(), p.sent_at_offset,
                    shared::toUnixMillis(std::chrono::system_clock::now()));
        auto decoded = shared::decodeBatch(bytes);
        if (!decoded) fail("decode: " + decoded.error().message());
        out.emplace_back(g, std::move(decoded.value()));
    }
    return out;
}

void removeDb(const fs::path& path) {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
}

// The two bare loops of bare_raw_inserts.h (a row per reading; the store's own chunk rows), as
// timeseries_bench runs them: returns the seconds the inserts took.
template <class Loop>
double timeBareLoop(Loop loop, const fs::path& path,
                    const std::vector<std::pair<int, shared::TelemetryBatch>>& rows,
                    std::int64_t base_ms) {
    std::vector<bench::BareBatch> batches;
    batches.reserve(rows.size());
    for (const auto& [gateway, batch] : rows) batches.push_back({gateway + 1, &batch});
    double elapsed = 0;
    loop(path, batches, base_ms, kBatchesPerTransaction,
         ingest::TimeseriesStoreConfig{}.cache_bytes, [&](const auto& inserts) {
             const auto began = std::chrono::steady_clock::now();
             inserts();
             elapsed = seconds(std::chrono::steady_clock::now() - began);
         });
    return elapsed;
}

// TimeseriesStore::writeMany and sync() per slice, as the tsdb sink calls them, without the spool.
double storeLoop(const fs::path& path,
                 const std::vector<std::pair<int, shared::TelemetryBatch>>& rows) {
    removeDb(path);
    shared::SystemClock clock;
    shared::MetricsRegistry metrics;
    ingest::TimeseriesStoreConfig config;
    config.path = path.string();
    auto store = ingest::TimeseriesStore::open(config, clock, metrics);
    if (!store) fail("store: " + store.error().message());
    std::vector<std::string> names;
    for (int g = 0; g < kGateways; ++g) names.push_back(gatewayName(g));
    std::vector<ingest::GatewayBatch> group;
    std::uint64_t written = 0;
    const auto began = std::chrono::steady_clock::now();
    for (std::size_t first = 0; first < rows.size(); first += kBatchesPerTransaction) {
        group.clear();
        const std::size_t end = std::min(rows.size(), first + kBatchesPerTransaction);
        for (std::size_t b = first; b < end; ++b) {
            group.push_back({names[static_cast<std::size_t>(rows[b].first)], &rows[b].second});
        }
        auto result = store.value()->writeMany(group);
        if (!result) fail("store: " + result.error().message());
        written += result.value().readings_written;
        if (auto synced = store.value()->sync(); !synced) fail("sync: " + synced.error().message());
    }
    const double elapsed = seconds(std::chrono::steady_clock::now() - began);
    if (written != rows.size() * kReadingsPerBatch) {
        fail(
            fmt::format("store wrote {} of {} readings", written, rows.size() * kReadingsPerBatch));
    }
    store.value().reset();
    removeDb(path);
    return elapsed;
}

// --- 4. latency at a steady load -----------------------------------------------------------------

// Each gateway's newest batch in the store, read through a read-only connection of its own (WAL:
// it never blocks the sink): the newest time of sensor 0 names the batch, and a gateway's batches
// reach the store in order (one publisher per gateway, one subscriber, the spool's offset order).
class StoreProbe {
public:
    StoreProbe(fs::path path, std::int64_t base_ms) : path_(std::move(path)), base_ms_(base_ms) {
        ids_.assign(kGateways, 0);
    }
    ~StoreProbe() {
        sqlite3_finalize(max_time_);
        sqlite3_finalize(gateway_id_);
        sqlite3_close(db_);
    }
    StoreProbe(const StoreProbe&) = delete;
    StoreProbe& operator=(const StoreProbe&) = delete;

    // The newest seq stored for each gateway (0 for none yet).
    std::vector<std::uint64_t> newest() {
        std::vector<std::uint64_t> out(kGateways, 0);
        if (!open()) return out;
        for (int g = 0; g < kGateways; ++g) {
            auto& id = ids_[static_cast<std::size_t>(g)];
            if (id == 0) {
                const std::string name = gatewayName(g);
                sqlite3_reset(gateway_id_);
                sqlite3_bind_text(gateway_id_, 1, name.c_str(), -1, SQLITE_TRANSIENT);
                if (sqlite3_step(gateway_id_) == SQLITE_ROW)
                    id = sqlite3_column_int64(gateway_id_, 0);
                sqlite3_reset(gateway_id_);
                if (id == 0) continue;
            }
            if (max_time_ == nullptr) {
                const std::string sql = "SELECT max(end_ms) FROM " +
                                        ingest::rawTableName(base_ms_) +
                                        " WHERE gateway = ?1 AND sensor = 0";
                if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &max_time_, nullptr) != SQLITE_OK) {
                    sqlite3_finalize(max_time_);
                    max_time_ = nullptr;  // no day table yet
                    return out;
                }
            }
            sqlite3_reset(max_time_);
            sqlite3_bind_int64(max_time_, 1, id);
            if (sqlite3_step(max_time_) == SQLITE_ROW &&
                sqlite3_column_type(max_time_, 0) != SQLITE_NULL) {
                const std::int64_t t = sqlite3_column_int64(max_time_, 0);
                out[static_cast<std::size_t>(g)] =
                    static_cast<std::uint64_t>((t - base_ms_) /
                                               (kReadingsPerSensor * kSampleStepMs)) +
                    1;
            }
            sqlite3_reset(max_time_);
        }
        return out;
    }

private:
    bool open() {
        if (db_ != nullptr) return true;
        if (!fs::exists(path_)) return false;
        if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK ||
            sqlite3_prepare_v2(db_, "SELECT id FROM gateways WHERE name = ?1", -1, &gateway_id_,
                               nullptr) != SQLITE_OK) {
            sqlite3_finalize(gateway_id_);
            gateway_id_ = nullptr;
            sqlite3_close(db_);
            db_ = nullptr;
            return false;
        }
        sqlite3_busy_timeout(db_, 100);
        return true;
    }

    fs::path path_;
    std::int64_t base_ms_;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* gateway_id_ = nullptr;
    sqlite3_stmt* max_time_ = nullptr;
    std::vector<std::int64_t> ids_;
};

struct PacedRun {
    double rate = 0;  // messages/s offered
    double achieved = 0;
    std::uint64_t published = 0;
    std::uint64_t stored = 0;
    Percentiles publish_to_receipt;
    Percentiles publish_to_spooled;
    Percentiles received_to_stored;
    Percentiles publish_to_stored;
    Memory memory;
    std::string cpu;
    double others = 0;  // cores used by other processes on the machine during the window
};

PacedRun runPaced(test::MosquittoFixture& broker, pid_t broker_pid, const fs::path& dir,
                  const fs::path& payloads, int processes, double rate, std::int64_t base_ms) {
    PacedRun run;
    run.rate = rate;
    test::IngestProcess ingest(broker, test::IngestOptions{.receiptInterval = "200ms",
                                                           .receiptBatches = kReceiptBatches,
                                                           .extraToml = g_ingest_toml});
    if (!ingest.start()) fail("tern-ingest did not start", ingest.log());
    StoreProbe probe(ingest.tsdbPath(), base_ms);
    // stored_us[g][seq - 1]: when the probe first saw the batch in the store.
    std::vector<std::vector<std::int64_t>> stored_us(
        kGateways, std::vector<std::int64_t>(kBatchesPerGateway, 0));
    std::vector<std::uint64_t> seen(kGateways, 0);
    const auto poll = [&] {
        const auto newest = probe.newest();
        const std::int64_t now = wallMicros();
        for (std::size_t g = 0; g < newest.size(); ++g) {
            const std::uint64_t upto = std::min<std::uint64_t>(newest[g], kBatchesPerGateway);
            for (std::uint64_t seq = seen[g] + 1; seq <= upto; ++seq) stored_us[g][seq - 1] = now;
            seen[g] = std::max(seen[g], upto);
        }
    };
    PublishResult result;
    {
        Publishers publishers(broker, dir, payloads, processes, PublishMode::Receipts, rate,
                              kPacedPublish);
        CpuWindow cpu;
        cpu.labelThreads("tern-ingest");
        std::vector<std::pair<std::string, pid_t>> list{{"mosquitto", broker_pid},
                                                        {"tern-ingest", ingest.pid()}};
        for (pid_t pid : publishers.pids()) list.emplace_back("publishers", pid);
        list.emplace_back("this benchmark", ::getpid());
        // The CPU window: from a second after the first batch is stored, for three seconds.
        std::optional<std::chrono::steady_clock::time_point> first_stored;
        while (publishers.running()) {
            poll();
            const auto now = std::chrono::steady_clock::now();
            if (!first_stored &&
                std::any_of(seen.begin(), seen.end(), [](auto n) { return n > 0; })) {
                first_stored = now;
            }
            if (first_stored && !cpu.started() && now >= *first_stored + 1s) {
                cpu.start(list, ingest.pid());
            }
            if (first_stored && now >= *first_stored + 4s) cpu.stop();
            std::this_thread::sleep_for(kPollInterval);
        }
        cpu.stop();
        run.cpu = cpu.describe();
        run.others = cpu.others();
        run.others = cpu.others();
        result = publishers.wait(60s);
    }
    run.published = result.published();
    run.achieved = static_cast<double>(run.published) / result.publishSeconds();
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        poll();
        std::uint64_t stored = 0;
        for (std::size_t g = 0; g < seen.size(); ++g) {
            stored += std::min(seen[g], result.gateways[g].published);
        }
        run.stored = stored;
        if (stored >= run.published || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(kPollInterval);
    }
    const Metrics m = Metrics::scrape(ingest);
    run.publish_to_receipt = fromSamples(receiptLatencies(result));
    run.publish_to_spooled = fromHistogram(m, "tern_ingest_sent_to_spool_seconds");
    run.received_to_stored =
        fromHistogram(m, "tern_ingest_sink_latency_seconds", {{"sink", "tsdb"}});
    std::vector<double> e2e;
    for (const auto& g : result.gateways) {
        for (std::uint64_t i = 0; i < g.published; ++i) {
            const std::int64_t stored = stored_us[static_cast<std::size_t>(g.index)][i];
            if (stored != 0 && g.published_us[i] != 0) {
                e2e.push_back(static_cast<double>(stored - g.published_us[i]) / 1000.0);
            }
        }
    }
    run.publish_to_stored = fromSamples(e2e);
    run.memory = memoryOf(ingest.pid());
    if (const int status = ingest.stop(); status != 0) {
        fail(fmt::format("tern-ingest exited with status {}", status), ingest.log());
    }
    return run;
}

std::string verdict(bool met) { return met ? "met" : "**NOT met**"; }

// "2.0.11", from the first line of `mosquitto -h`.
std::string brokerVersion() {
    std::string text;
    if (FILE* pipe = ::popen("/usr/sbin/mosquitto -h 2>&1", "r")) {
        char buffer[256];
        while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) text += buffer;
        ::pclose(pipe);
    }
    std::istringstream words(text);
    std::string word;
    while (words >> word) {
        if (word == "version" && words >> word) return word;
    }
    return "(version unknown)";
}

std::string count(std::uint64_t n) { return withCommas(static_cast<double>(n)); }

struct Options {
    int processes = 2;
    bool ceilings_only = false;
    int broker_max_inflight = -1;  // what-if: overrides the deploy config's max_inflight_messages
    bool paho_trace = false;       // leave the benchmark's Paho clients at the default trace level
};

int runBench(const Options& options) {
    const auto began = std::chrono::steady_clock::now();
    g_paho_trace = options.paho_trace;
    if (!options.paho_trace) quietPaho();
    const int processes = options.processes;
    double load_before[3] = {0, 0, 0};
    if (::getloadavg(load_before, 3) < 1) load_before[0] = -1;
    std::vector<std::string> cns{kIngestIdentity};
    for (int g = 0; g < kGateways; ++g) cns.push_back(gatewayName(g));
    test::MosquittoFixture broker{test::MosquittoOptions{.clientCns = cns}};
    std::string broker_limits = "max_inflight_messages 20, max_queued_messages 1000";
    if (options.broker_max_inflight >= 0) {
        // A later setting overrides an earlier one in mosquitto's config.
        std::ofstream(broker.configFile(), std::ios::app)
            << "max_inflight_messages " << options.broker_max_inflight << "\n";
        broker.restart();
        broker_limits = fmt::format(
            "WHAT-IF: max_inflight_messages {} instead of the deploy config's 20, "
            "max_queued_messages 1000",
            options.broker_max_inflight);
    }
    const pid_t broker_pid = findBroker(broker);
    if (broker_pid <= 0) fail("cannot find the broker's pid");
    test::TempDir dir("tern-ingest-bench");

    const Workload workload = encodeWorkload();
    const fs::path payloads = dir.path() / "payloads.bin";
    writePayloadFile(payloads, workload);
    const double mean_bytes =
        static_cast<double>(workload.bytes) / (kGateways * static_cast<double>(kBatchesPerGateway));

    fmt::print(
        "Tern ingest benchmark: {} gateways, one MQTT 5 + TLS connection each, from {} publisher "
        "processes; 100-reading TelemetryBatches ({} sensors x {} readings at 10 Hz, {:.0f} bytes "
        "on the wire on average, encoded before the runs, sent_at stamped at publish time) over "
        "QoS 1; mosquitto {} with the deploy config ({}). {} CPUs, load average {:.2f} at the "
        "start.\n\n",
        kGateways, processes, kSensors, kReadingsPerSensor, mean_bytes, brokerVersion(),
        broker_limits, ::sysconf(_SC_NPROCESSORS_ONLN), load_before[0]);
    std::fflush(stdout);

    const CeilingRun open = runOpenCeiling(broker, broker_pid, dir.path(), payloads, processes);
    const CeilingRun closed =
        runReceiptCeiling(broker, broker_pid, dir.path(), payloads, processes);
    const double ceiling = std::max(open.rate, closed.rate);

    std::optional<SpoolRun> spool;
    std::optional<DrainRun> drain;
    std::optional<PacedRun> paced;
    double bare_rate = 0;
    double chunk_rate = 0;
    double store_rate = 0;
    double store_readings = 0;
    if (!options.ceilings_only) {
        auto [s, d] = runSpoolAndDrain(broker, broker_pid, dir.path(), payloads, processes);
        spool = s;
        drain = d;
        const auto rows = storeRows(workload);
        store_readings = static_cast<double>(rows.size()) * kReadingsPerBatch;
        const auto raw_loop = [](auto&&... args) { bench::bareRawInserts(args...); };
        const auto chunk_loop = [](auto&&... args) { bench::bareChunkInserts(args...); };
        bare_rate =
            store_readings / timeBareLoop(raw_loop, dir.path() / "bare.db", rows, workload.base_ms);
        chunk_rate = store_readings /
                     timeBareLoop(chunk_loop, dir.path() / "chunks.db", rows, workload.base_ms);
        store_rate = store_readings / storeLoop(dir.path() / "store.db", rows);
        paced = runPaced(broker, broker_pid, dir.path(), payloads, processes, kSteadyRate,
                         workload.base_ms);
    }

    // --- the report ---
    fmt::print("Throughput, messages of 100 readings (steady part of each run)\n\n");
    fmt::print("| path | messages/s | readings/s | vs ceiling | target |\n");
    fmt::print("|---|---:|---:|---:|---|\n");
    fmt::print(
        "| mosquitto -> bare Paho subscriber, open loop (publishers held back only by PUBACKs) "
        "| {} | {} | {:.2f} | |\n",
        withCommas(open.rate), withCommas(open.rate * kReadingsPerBatch), open.rate / ceiling);
    fmt::print(
        "| mosquitto -> bare Paho subscriber that sends receipts, closed loop (<= {} unreceipted "
        "per gateway) | {} | {} | {:.2f} | |\n",
        g_window, withCommas(closed.rate), withCommas(closed.rate * kReadingsPerBatch),
        closed.rate / ceiling);
    if (spool) {
        const double share = spool->messages_per_s / ceiling;
        fmt::print(
            "| **tern-ingest**, tsdb off: verify + dedupe + spool (FULL) + receipt, closed loop "
            "(<= {} unreceipted per gateway) | {} | {} | {:.2f} | >= {:.2f} of the higher "
            "ceiling: {} |\n",
            g_window, withCommas(spool->messages_per_s), withCommas(spool->readings_per_s), share,
            kCeilingShareTarget, verdict(share >= kCeilingShareTarget));
    }

    if (spool) {
        const double sink_vs_bare = drain->readings_per_s / bare_rate;
        fmt::print(
            "\nThe embedded store as the sink, readings/s (the same batches, 512 per "
            "transaction)\n\n");
        fmt::print("| path | readings | readings/s | vs bare | target |\n");
        fmt::print("|---|---:|---:|---:|---|\n");
        fmt::print(
            "| bare SQLite insert loop, a row per reading (the store's pragmas, WAL, "
            "synchronous=NORMAL; the layout before schema 2) | {} | {} | 1.00 | |\n",
            withCommas(store_readings), withCommas(bare_rate));
        fmt::print(
            "| bare SQLite insert loop of the store's own chunk rows (built before the clock "
            "starts; no rollups) | {} | {} | {:.2f} | |\n",
            withCommas(store_readings), withCommas(chunk_rate), chunk_rate / bare_rate);
        fmt::print(
            "| TimeseriesStore::writeMany + sync() per 512 batches, in this process | {} | {} | "
            "{:.2f} | |\n",
            withCommas(store_readings), withCommas(store_rate), store_rate / bare_rate);
        fmt::print(
            "| **tern-ingest** tsdb sink draining the spool (read, decode, writeMany, sync, "
            "cursor, "
            "truncate) | {} | {} | {:.2f} | >= {} and >= {:.2f} of bare: {} |\n",
            count(drain->readings), withCommas(drain->readings_per_s), sink_vs_bare,
            withCommas(kStoreTarget), kStoreVsBareTarget,
            verdict(drain->readings_per_s >= kStoreTarget && sink_vs_bare >= kStoreVsBareTarget));
        fmt::print(
            "\nAgainst the bare loop of its own chunk rows, the store in this process does {:.2f} "
            "and the sink {:.2f}. The bare loop's chunks were grouped, cut and encoded before its "
            "clock started; the store does that inside its time, looks up gateways, checks for "
            "duplicates, upserts a 1-minute and a 1-hour rollup row per series and syncs per "
            "512 batches.\n",
            store_rate / chunk_rate, drain->readings_per_s / chunk_rate);

        fmt::print("\nLatency, p50 / p99 in ms\n\n");
        fmt::print(
            "| load | publish -> receipt at the gateway | publish -> spooled | received -> "
            "stored | publish -> stored |\n");
        fmt::print("|---|---:|---:|---:|---:|\n");
        fmt::print("| full load, tsdb off ({} msgs/s) | {} | {} | — | — |\n",
                   withCommas(spool->messages_per_s), formatPercentiles(spool->publish_to_receipt),
                   formatPercentiles(spool->publish_to_spooled));
        fmt::print("| steady {} msgs/s ({} readings/s), tsdb on | {} | {} | {} | {} |\n",
                   withCommas(paced->achieved), withCommas(paced->achieved * kReadingsPerBatch),
                   formatPercentiles(paced->publish_to_receipt),
                   formatPercentiles(paced->publish_to_spooled),
                   formatPercentiles(paced->received_to_stored),
                   formatPercentiles(paced->publish_to_stored));

        fmt::print("\nMemory of tern-ingest (/proc/<pid>/status)\n\n");
        fmt::print("| moment | VmRSS MB | VmHWM MB |\n|---|---:|---:|\n");
        fmt::print("| after the full-load spool run (tsdb off) | {:.1f} | {:.1f} |\n",
                   spool->memory.rss_mb, spool->memory.hwm_mb);
        fmt::print("| after {:.0f} s of draining the spool into the store | {:.1f} | {:.1f} |\n",
                   drain->window_s, drain->memory.rss_mb, drain->memory.hwm_mb);
        fmt::print("| after the steady run with tsdb on (a new process) | {:.1f} | {:.1f} |\n",
                   paced->memory.rss_mb, paced->memory.hwm_mb);
    }

    // The machine may be shared: say where someone else's work overlapped a measuring window.
    std::vector<std::pair<std::string, double>> overlaps{{"open-loop ceiling", open.others},
                                                         {"closed-loop ceiling", closed.others}};
    if (spool) {
        overlaps.emplace_back("tern-ingest spool run", spool->others);
        overlaps.emplace_back("drain", drain->others);
        overlaps.emplace_back("steady run", paced->others);
    }
    for (const auto& [run, others] : overlaps) {
        if (others > kOthersWarning) {
            fmt::print(
                "\nWARNING: other processes on this machine used {:.0f} % of a core during the {} "
                "window; its figures are understated.\n",
                100 * others, run);
        }
    }
    fmt::print(
        "\nHow the numbers were taken (CPU in % of one core over each run's window; tern-ingest's "
        "threads by creation order: #0 main and API, then the sink worker when tsdb is on, the "
        "intake, the MQTT connector, Paho's send and receive threads; after the SIGHUP the new "
        "sink worker comes last)\n\n");
    fmt::print(
        "- Open-loop ceiling: {} published in {:.0f} s ({} msgs/s PUBACKed), {} delivered to the "
        "subscriber, the rest dropped by the broker (max_queued_messages); rate = deliveries / "
        "(last - first arrival); {} connections lost. CPU: {}.\n",
        count(open.published), std::chrono::duration<double>(kCeilingPublish).count(),
        withCommas(open.publish_rate), count(open.received), count(open.losses), open.cpu);
    fmt::print(
        "- Closed-loop ceiling: the subscriber's count over {:.0f} s after a {:.0f} s warm-up; {} "
        "published, {} delivered, {} receipts (every {} messages of a gateway or {} ms), {} "
        "retransmitted, {} connections lost; publish -> receipt {}. CPU: {}.\n",
        std::chrono::duration<double>(kSpoolWindow).count(),
        std::chrono::duration<double>(kSpoolWarmUp).count(), count(closed.published),
        count(closed.received), count(closed.receipts), kReceiptBatches, kReceiptInterval.count(),
        count(closed.retransmits), count(closed.losses),
        formatPercentiles(*closed.publish_to_receipt), closed.cpu);
    if (spool) {
        fmt::print(
            "- tern-ingest spool run: tern_ingest_spool_appended_total{{kind=\"telemetry\"}} over "
            "{:.0f} s after a {:.0f} s warm-up; {} published, {} receipted, {} spooled, {} "
            "duplicates, {} retransmitted, {} connections lost; the publishers waited for "
            "receipts {:.0f} % of the time. Received -> spooled {} ms "
            "(tern_ingest_spool_latency_seconds). Mean spool group {:.0f} messages, mean commit "
            "{:.1f} ms, {} receipts (receipt_interval {} ms, receipt_batches {}). CPU: {}.\n",
            spool->window_s, std::chrono::duration<double>(kSpoolWarmUp).count(),
            count(spool->published), count(spool->receipted), count(spool->spooled),
            count(spool->duplicates), count(spool->retransmits), count(spool->losses),
            100 * spool->blocked_share, formatPercentiles(spool->received_to_spooled),
            spool->mean_group, spool->mean_commit_ms, withCommas(spool->receipts),
            kReceiptInterval.count(), kReceiptBatches, spool->cpu);
        if (spool->ran_out || closed.ran_out) {
            fmt::print(
                "- WARNING: a publisher used up its {} prepared batches in the {} run; "
                "that rate may be understated.\n",
                kBatchesPerGateway, spool->ran_out ? "spool" : "closed-loop ceiling");
        }
        fmt::print(
            "- Drain: a SIGHUP turns [sinks] tsdb on over the {} records the spool run left; "
            "tern_ingest_tsdb_readings_written_total over {:.1f} s{}. Per 512-record slice {:.0f} "
            "ms, of which deliver() {:.0f} ms (the store's transactions {:.0f} ms; the rest of "
            "deliver() is decoding and sync()); the rest of the slice is the spool read, the "
            "cursor and the truncate. CPU: {}.\n",
            withCommas(drain->backlog_records), drain->window_s,
            drain->drained ? " (all drained)" : "", drain->slice_ms, drain->deliver_ms,
            drain->tsdb_write_ms, drain->cpu);
        fmt::print(
            "- Store rows: the first {} batches in publishing order (gateways in turn), decoded; "
            "the bare loop and writeMany ran one after the other in this process with nothing "
            "else running.\n",
            count(kStoreBatches));
        fmt::print(
            "- Steady run: {} msgs/s offered for {:.0f} s, {} "
            "published, {} seen in the store. publish -> receipt: exact per batch, receipts "
            "coalesced (receipt_interval 200 ms, receipt_batches 16). publish -> spooled: "
            "tern_ingest_sent_to_spool_seconds (sent_at = publish time). received -> stored: "
            "tern_ingest_sink_latency_seconds{{sink=\"tsdb\"}} (after the sink's sync). Histogram "
            "quantiles are interpolated inside power-of-two buckets, from ms timestamps. publish "
            "-> stored: each gateway's newest batch in tsdb.db, polled every {} ms through a "
            "read-only connection (committed, before the sync). CPU: {}.\n",
            withCommas(paced->rate), std::chrono::duration<double>(kPacedPublish).count(),
            count(paced->published), count(paced->stored), kPollInterval.count(), paced->cpu);
    }
    double load[3] = {0, 0, 0};
    if (::getloadavg(load, 3) < 1) load[0] = -1;
    fmt::print("\nLoad average {:.2f} at the end. Bench wall time: {:.1f} s\n", load[0],
               seconds(std::chrono::steady_clock::now() - began));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 3 && std::string(argv[1]) == "--publisher") return runPublisher(argv[2]);
        Options options;
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--ceilings-only") {
                options.ceilings_only = true;
            } else if (arg == "--window" && i + 1 < argc) {
                g_window = static_cast<std::uint64_t>(std::max(1, std::atoi(argv[++i])));
            } else if (arg == "--ingest-toml" && i + 1 < argc) {
                g_ingest_toml = std::string(argv[++i]) + "\n";
            } else if (arg == "--paho-default-trace") {
                options.paho_trace = true;
            } else if (arg == "--broker-max-inflight" && i + 1 < argc) {
                options.broker_max_inflight = std::atoi(argv[++i]);
            } else {
                options.processes = std::clamp(std::atoi(argv[i]), 1, kGateways);
            }
        }
        return runBench(options);
    } catch (const std::exception& e) {
        fail(e.what());
    }
}
