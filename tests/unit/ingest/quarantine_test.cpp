#include "tern/ingest/quarantine.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tern::ingest {
namespace {

constexpr std::int64_t kStartMs = 1'780'000'000'000;

class QuarantineTest : public ::testing::Test {
protected:
    // The value of one series in the exposition; -1 when it is not there.
    double metric(const std::string& series) const {
        std::istringstream in(metrics_.exposition());
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        }
        return -1;
    }

    // Adds an entry whose payload is `size` bytes saying which add it was.
    static std::uint64_t add(Quarantine& quarantine, const std::string& gateway,
                             const std::string& reason, std::size_t size = 8,
                             const std::string& detail = "detail") {
        std::vector<std::uint8_t> payload(size);
        for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::uint8_t>(i & 0xff);
        return quarantine.add(kStartMs, "tern/v1/gw/" + gateway + "/telemetry", gateway, reason,
                              detail, payload);
    }

    static std::vector<std::uint64_t> ids(const std::vector<QuarantineEntry>& entries) {
        std::vector<std::uint64_t> out;
        for (const auto& entry : entries) out.push_back(entry.id);
        return out;
    }

    static QuarantineQuery query(std::uint64_t before_id = 0, std::size_t limit = 100) {
        QuarantineQuery q;
        q.before_id = before_id;
        q.limit = limit;
        return q;
    }

    shared::MetricsRegistry metrics_;
};

using Ids = std::vector<std::uint64_t>;

TEST_F(QuarantineTest, KeepsEntriesNewestFirstWithIdsFromOne) {
    Quarantine quarantine({}, metrics_);
    const std::vector<std::uint8_t> payload = {1, 2, 3};
    EXPECT_EQ(quarantine.add(kStartMs, "tern/v1/gw/gw-1/telemetry", "gw-1", "truncated",
                             "3 bytes is shorter than a FlatBuffers header", payload),
              1u);
    EXPECT_EQ(add(quarantine, "gw-2", "oversize"), 2u);

    const auto entries = quarantine.list(query());
    ASSERT_EQ(ids(entries), (Ids{2, 1}));
    const QuarantineEntry& first = entries[1];
    EXPECT_EQ(first.received_ms, kStartMs);
    EXPECT_EQ(first.topic, "tern/v1/gw/gw-1/telemetry");
    EXPECT_EQ(first.gateway_id, "gw-1");
    EXPECT_EQ(first.reason, "truncated");
    EXPECT_EQ(first.detail, "3 bytes is shorter than a FlatBuffers header");
    EXPECT_EQ(first.payload_bytes, 3u);
    EXPECT_EQ(first.payload, payload);

    const QuarantineStats stats = quarantine.stats();
    EXPECT_EQ(stats.entries, 2u);
    EXPECT_EQ(stats.added, 2u);
    EXPECT_EQ(stats.evicted, 0u);
    // Payload, topic and detail of each.
    const std::uint64_t bytes = 3 + first.topic.size() + first.detail.size() + 8 +
                                entries[0].topic.size() + entries[0].detail.size();
    EXPECT_EQ(stats.bytes, bytes);
    EXPECT_EQ(metric("tern_ingest_quarantine_entries"), 2);
    EXPECT_EQ(metric("tern_ingest_quarantine_bytes"), static_cast<double>(bytes));
    EXPECT_EQ(metric("tern_ingest_quarantined_total{reason=\"truncated\"}"), 1);
    EXPECT_EQ(metric("tern_ingest_quarantined_total{reason=\"oversize\"}"), 1);
    EXPECT_EQ(metric("tern_ingest_quarantine_evicted_total"), 0);
}

TEST_F(QuarantineTest, EvictsTheOldestBeyondMaxEntries) {
    QuarantineConfig config;
    config.max_entries = 3;
    Quarantine quarantine(config, metrics_);
    for (int i = 0; i < 5; ++i) add(quarantine, "gw-1", i % 2 == 0 ? "truncated" : "oversize");

    EXPECT_EQ(ids(quarantine.list(query())), (Ids{5, 4, 3}));
    const QuarantineStats stats = quarantine.stats();
    EXPECT_EQ(stats.entries, 3u);
    EXPECT_EQ(stats.added, 5u);
    EXPECT_EQ(stats.evicted, 2u);
    EXPECT_EQ(metric("tern_ingest_quarantine_evicted_total"), 2);
    EXPECT_EQ(metric("tern_ingest_quarantine_entries"), 3);
    // The counters keep what the entries no longer show.
    EXPECT_EQ(metric("tern_ingest_quarantined_total{reason=\"truncated\"}"), 3);
    EXPECT_EQ(metric("tern_ingest_quarantined_total{reason=\"oversize\"}"), 2);
    EXPECT_EQ(quarantine.countsByReason(),
              (std::map<std::string, std::uint64_t>{{"oversize", 2}, {"truncated", 3}}));
}

TEST_F(QuarantineTest, EvictsTheOldestBeyondMaxBytes) {
    const std::string topic = "tern/v1/gw/gw-1/telemetry";
    const std::uint64_t each = 100 + topic.size() + std::string("detail").size();
    QuarantineConfig config;
    config.max_bytes = 3 * each + each / 2;  // room for three and a half
    Quarantine quarantine(config, metrics_);
    for (int i = 0; i < 3; ++i) add(quarantine, "gw-1", "verify_failed", 100);
    EXPECT_EQ(quarantine.stats().bytes, 3 * each);
    EXPECT_EQ(quarantine.stats().evicted, 0u);

    add(quarantine, "gw-1", "verify_failed", 100);
    EXPECT_EQ(ids(quarantine.list(query())), (Ids{4, 3, 2}));
    EXPECT_EQ(quarantine.stats().bytes, 3 * each);

    // One large entry pushes out as many old ones as its size needs.
    add(quarantine, "gw-1", "verify_failed", 100 + 2 * each);
    EXPECT_EQ(ids(quarantine.list(query())), (Ids{5}));
    EXPECT_EQ(quarantine.stats().bytes, 3 * each);
    EXPECT_EQ(quarantine.stats().evicted, 4u);
    EXPECT_EQ(metric("tern_ingest_quarantine_evicted_total"), 4);
    EXPECT_EQ(metric("tern_ingest_quarantine_bytes"), static_cast<double>(3 * each));
}

TEST_F(QuarantineTest, AnEntryLargerThanMaxBytesDoesNotStay) {
    QuarantineConfig config;
    config.max_bytes = 64;
    Quarantine quarantine(config, metrics_);
    add(quarantine, "gw-1", "oversize", 8, "short");
    const auto id = add(quarantine, "gw-1", "oversize", 8, std::string(200, 'x'));
    EXPECT_EQ(id, 2u);
    EXPECT_TRUE(quarantine.list(query()).empty());
    EXPECT_EQ(quarantine.stats().bytes, 0u);
    EXPECT_EQ(quarantine.stats().evicted, 2u);
    EXPECT_EQ(quarantine.countsByReason().at("oversize"), 2u);
    // Ids go on from where they were.
    EXPECT_EQ(add(quarantine, "gw-1", "oversize"), 3u);
}

TEST_F(QuarantineTest, KeepsOnlyThePayloadPrefix) {
    QuarantineConfig config;
    config.max_payload_bytes_kept = 16;
    Quarantine quarantine(config, metrics_);
    add(quarantine, "gw-1", "oversize", 1000);
    add(quarantine, "gw-1", "empty", 0);
    const auto entries = quarantine.list(query());
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[1].payload_bytes, 1000u);
    ASSERT_EQ(entries[1].payload.size(), 16u);
    for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(entries[1].payload[i], i);
    EXPECT_EQ(entries[0].payload_bytes, 0u);
    EXPECT_TRUE(entries[0].payload.empty());
    // Bytes count what is kept, not what arrived.
    EXPECT_EQ(quarantine.stats().bytes,
              16 + 2 * (std::string("tern/v1/gw/gw-1/telemetry").size() + 6));

    QuarantineConfig none;
    none.max_payload_bytes_kept = 0;
    Quarantine counted_only(none, metrics_);
    add(counted_only, "gw-1", "oversize", 1000);
    EXPECT_TRUE(counted_only.list(query()).front().payload.empty());
    EXPECT_EQ(counted_only.list(query()).front().payload_bytes, 1000u);
}

TEST_F(QuarantineTest, PagesBackwardsWithBeforeId) {
    Quarantine quarantine({}, metrics_);
    for (int i = 0; i < 10; ++i) add(quarantine, "gw-1", "truncated");
    EXPECT_EQ(ids(quarantine.list(query(0, 3))), (Ids{10, 9, 8}));
    EXPECT_EQ(ids(quarantine.list(query(8, 3))), (Ids{7, 6, 5}));
    EXPECT_EQ(ids(quarantine.list(query(5, 3))), (Ids{4, 3, 2}));
    EXPECT_EQ(ids(quarantine.list(query(2, 3))), (Ids{1}));
    EXPECT_TRUE(quarantine.list(query(1, 3)).empty());
    // An id past the newest pages from the newest.
    EXPECT_EQ(ids(quarantine.list(query(1000, 2))), (Ids{10, 9}));
    EXPECT_TRUE(quarantine.list(query(0, 0)).empty());
}

TEST_F(QuarantineTest, PagingSkipsEvictedIds) {
    QuarantineConfig config;
    config.max_entries = 4;
    Quarantine quarantine(config, metrics_);
    for (int i = 0; i < 10; ++i) add(quarantine, "gw-1", "truncated");
    EXPECT_EQ(ids(quarantine.list(query(9, 10))), (Ids{8, 7}));
    EXPECT_TRUE(quarantine.list(query(7, 10)).empty());
}

TEST_F(QuarantineTest, FiltersByGatewayAndReason) {
    Quarantine quarantine({}, metrics_);
    add(quarantine, "gw-1", "truncated");         // 1
    add(quarantine, "gw-2", "truncated");         // 2
    add(quarantine, "gw-1", "gateway_mismatch");  // 3
    add(quarantine, "gw-2", "oversize");          // 4
    add(quarantine, "gw-1", "truncated");         // 5
    add(quarantine, "gw-1", "truncated");         // 6

    QuarantineQuery by_gateway = query();
    by_gateway.gateway_id = "gw-1";
    EXPECT_EQ(ids(quarantine.list(by_gateway)), (Ids{6, 5, 3, 1}));

    QuarantineQuery by_reason = query();
    by_reason.reason = "truncated";
    EXPECT_EQ(ids(quarantine.list(by_reason)), (Ids{6, 5, 2, 1}));

    QuarantineQuery both = query();
    both.gateway_id = "gw-1";
    both.reason = "truncated";
    EXPECT_EQ(ids(quarantine.list(both)), (Ids{6, 5, 1}));
    // The limit counts matches, not entries looked at; paging continues below the last one.
    both.limit = 2;
    EXPECT_EQ(ids(quarantine.list(both)), (Ids{6, 5}));
    both.before_id = 5;
    EXPECT_EQ(ids(quarantine.list(both)), (Ids{1}));

    QuarantineQuery nobody = query();
    nobody.gateway_id = "gw-3";
    EXPECT_TRUE(quarantine.list(nobody).empty());
    // An entry whose topic did not parse has no gateway.
    quarantine.add(kStartMs, "bogus", "", "unexpected_topic", "", {});
    QuarantineQuery anonymous = query();
    anonymous.gateway_id = "";
    EXPECT_EQ(ids(quarantine.list(anonymous)), (Ids{7}));
}

TEST_F(QuarantineTest, AddsFromSeveralThreads) {
    QuarantineConfig config;
    config.max_entries = 50;
    Quarantine quarantine(config, metrics_);
    constexpr int kThreads = 4;
    constexpr int kPerThread = 100;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                add(quarantine, "gw-" + std::to_string(t), "truncated");
                if (i % 10 == 0) quarantine.list(query(0, 5));
            }
        });
    }
    for (auto& thread : threads) thread.join();
    const auto entries = quarantine.list(query(0, 1000));
    ASSERT_EQ(entries.size(), 50u);
    // Ids are unique and the kept ones are the newest.
    EXPECT_EQ(entries.front().id, 400u);
    EXPECT_EQ(entries.back().id, 351u);
    EXPECT_EQ(quarantine.stats().evicted, 350u);
    EXPECT_EQ(metric("tern_ingest_quarantined_total{reason=\"truncated\"}"), 400);
}

struct Root {
    QuarantineConfig quarantine;
};

TEST(QuarantineTable, LoadsEveryKeyAndRejectsUnknownOnes) {
    const auto schema =
        shared::ConfigTable<Root>("", "test").table(&Root::quarantine, quarantineTable());
    const auto loaded = shared::loadConfigString<Root>(R"(
[quarantine]
max_entries = 500
max_bytes = "8MiB"
max_payload_bytes_kept = "1KiB"
)",
                                                       "ingest.toml", schema);
    ASSERT_TRUE(loaded) << shared::formatConfigErrors(loaded.error());
    EXPECT_EQ(loaded.value().quarantine.max_entries, 500);
    EXPECT_EQ(loaded.value().quarantine.max_bytes, 8 * shared::kMiB);
    EXPECT_EQ(loaded.value().quarantine.max_payload_bytes_kept, shared::kKiB);

    const auto defaults = shared::loadConfigString<Root>("", "ingest.toml", schema);
    ASSERT_TRUE(defaults);
    const QuarantineConfig expected;
    EXPECT_EQ(defaults.value().quarantine.max_entries, expected.max_entries);
    EXPECT_EQ(defaults.value().quarantine.max_bytes, expected.max_bytes);
    EXPECT_EQ(defaults.value().quarantine.max_payload_bytes_kept, expected.max_payload_bytes_kept);

    const auto bad = shared::loadConfigString<Root>(
        "[quarantine]\nmax_entries = 0\nmax_entry = 1\n", "ingest.toml", schema);
    ASSERT_FALSE(bad);
    std::set<std::string> keys;
    for (const auto& error : bad.error()) keys.insert(error.key);
    EXPECT_EQ(keys, (std::set<std::string>{"quarantine.max_entries", "quarantine.max_entry"}));
}

}  // namespace
}  // namespace tern::ingest
