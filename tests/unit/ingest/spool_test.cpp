#include "tern/ingest/spool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tern/shared/codec.h"

namespace tern::ingest {
namespace {

namespace fs = std::filesystem;
using shared::SeqRange;

constexpr std::int64_t kStartMs = 1'780'000'000'000;  // 2026

class SpoolTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/tern-spool-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        path_ = (dir_ / "spool.db").string();
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::unique_ptr<Spool> open(SpoolOptions o = {}) {
        auto spool = Spool::open(path_, o, clock_, metrics_);
        EXPECT_TRUE(spool) << (spool ? "" : spool.error().message());
        return spool ? std::move(spool.value()) : nullptr;
    }

    // A payload of `size` bytes that says which message it belongs to.
    static Incoming message(const std::string& gateway, std::uint64_t epoch, std::uint64_t seq,
                            std::size_t size = 16, Kind kind = Kind::Telemetry) {
        Incoming m;
        m.gateway_id = gateway;
        m.sequence = {epoch, seq};
        m.kind = kind;
        m.readings = static_cast<std::uint32_t>(seq % 100);
        m.received_ms = kStartMs + static_cast<std::int64_t>(seq);
        m.payload.resize(size);
        for (std::size_t i = 0; i < size; ++i) {
            m.payload[i] = static_cast<std::uint8_t>((seq * 31 + epoch * 7 + i) & 0xff);
        }
        return m;
    }

    // Messages of one gateway and epoch with these seqs.
    static std::vector<Incoming> group(const std::string& gateway, std::uint64_t epoch,
                                       const std::vector<std::uint64_t>& seqs,
                                       std::size_t size = 16) {
        std::vector<Incoming> out;
        for (std::uint64_t seq : seqs) out.push_back(message(gateway, epoch, seq, size));
        return out;
    }

    static std::vector<Admission> admit(Spool& spool, const std::vector<Incoming>& messages) {
        auto result = spool.append(messages);
        EXPECT_TRUE(result) << (result ? "" : result.error().message());
        return result ? result.value() : std::vector<Admission>{};
    }

    // The value of one series in the exposition; -1 when it is not there.
    double metric(const std::string& series) const {
        std::istringstream in(metrics_.exposition());
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
        }
        return -1;
    }

    static std::vector<std::uint64_t> offsets(const std::vector<SpoolRecord>& records) {
        std::vector<std::uint64_t> out;
        for (const auto& r : records) out.push_back(r.offset);
        return out;
    }
    static std::vector<std::uint64_t> seqs(const std::vector<SpoolRecord>& records) {
        std::vector<std::uint64_t> out;
        for (const auto& r : records) out.push_back(r.sequence.seq);
        return out;
    }

    static std::string integrityCheck(const std::string& path) {
        sqlite3* db = nullptr;
        std::string result = "cannot open";
        if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
            sqlite3_stmt* stmt = nullptr;
            if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK &&
                sqlite3_step(stmt) == SQLITE_ROW) {
                result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
            }
            sqlite3_finalize(stmt);
        }
        sqlite3_close(db);
        return result;
    }

    fs::path dir_;
    std::string path_;
    shared::ManualClock clock_{shared::fromUnixMillis(kStartMs)};
    shared::MetricsRegistry metrics_;
};

using A = Admission;

TEST_F(SpoolTest, StoresNewMessagesAndAnswersDuplicatesAcrossGroups) {
    auto spool = open();
    ASSERT_TRUE(spool);
    ASSERT_TRUE(spool->addCursor("kafka"));
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {1, 2, 3})),
              (std::vector<A>{A::Stored, A::Stored, A::Stored}));
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {2, 3, 4})),
              (std::vector<A>{A::Duplicate, A::Duplicate, A::Stored}));

    const auto records = spool->read("kafka", 10);
    EXPECT_EQ(offsets(records), (std::vector<std::uint64_t>{1, 2, 3, 4}));
    EXPECT_EQ(seqs(records), (std::vector<std::uint64_t>{1, 2, 3, 4}));
    const Incoming expected = message("gw-1", 1, 4);
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(records[3].gateway_id, "gw-1");
    EXPECT_EQ(records[3].sequence, (shared::Sequence{1, 4}));
    EXPECT_EQ(records[3].kind, Kind::Telemetry);
    EXPECT_EQ(records[3].readings, expected.readings);
    EXPECT_EQ(records[3].received_ms, expected.received_ms);
    EXPECT_EQ(records[3].payload, expected.payload);
    EXPECT_EQ(spool->stats().records, 4u);
    EXPECT_EQ(spool->stats().bytes, 64u);
    EXPECT_EQ(metric("tern_ingest_spool_appended_total{kind=\"telemetry\"}"), 4);
    EXPECT_EQ(metric("tern_ingest_spool_duplicates_total"), 2);
    EXPECT_EQ(metric("tern_ingest_spool_records"), 4);
    EXPECT_EQ(metric("tern_ingest_spool_bytes"), 64);
}

TEST_F(SpoolTest, DuplicatesWithinOneGroupAreStoredOnce) {
    auto spool = open();
    ASSERT_TRUE(spool);
    ASSERT_TRUE(spool->addCursor("s"));
    std::vector<Incoming> messages = group("gw-1", 1, {5, 5, 1, 5, 1});
    // Same seq, other epoch or other gateway: not a duplicate.
    messages.push_back(message("gw-1", 2, 5));
    messages.push_back(message("gw-2", 1, 5, 16, Kind::Alert));
    EXPECT_EQ(admit(*spool, messages),
              (std::vector<A>{A::Stored, A::Duplicate, A::Stored, A::Duplicate, A::Duplicate,
                              A::Stored, A::Stored}));
    const auto records = spool->read("s", 10);
    EXPECT_EQ(seqs(records), (std::vector<std::uint64_t>{5, 1, 5, 5}));
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(records[3].kind, Kind::Alert);
    EXPECT_EQ(metric("tern_ingest_spool_appended_total{kind=\"alert\"}"), 1);
    EXPECT_EQ(metric("tern_ingest_spool_duplicates_total"), 3);
}

TEST_F(SpoolTest, FloorAdvancesAndRangesMerge) {
    auto spool = open();
    ASSERT_TRUE(spool);
    admit(*spool, group("gw-1", 1, {1, 2, 4}));
    auto receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 2u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{4, 4}}));

    admit(*spool, group("gw-1", 1, {3}));
    receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 4u);
    EXPECT_TRUE(receipt.ranges.empty());

    // Ranges above the floor grow at either end and merge when the gap between them closes.
    admit(*spool, group("gw-1", 1, {10, 12, 7, 20, 11, 8}));
    receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 4u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{7, 8}, {10, 12}, {20, 20}}));
    admit(*spool, group("gw-1", 1, {9, 6}));
    EXPECT_EQ(spool->receiptFor("gw-1", 1).ranges, (std::vector<SeqRange>{{6, 12}, {20, 20}}));
    admit(*spool, group("gw-1", 1, {5}));
    receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 12u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{20, 20}}));
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {12, 20, 1, 13})),
              (std::vector<A>{A::Duplicate, A::Duplicate, A::Duplicate, A::Stored}));
}

TEST_F(SpoolTest, ReceiptsEncodeAndGapsListWhatToAskFor) {
    auto spool = open();
    ASSERT_TRUE(spool);
    clock_.advance(std::chrono::seconds(5));
    admit(*spool, group("gw-1", 7, {1, 2, 5, 6, 9, 15}));

    const shared::Receipt receipt = spool->receiptFor("gw-1", 7);
    EXPECT_EQ(receipt.gateway_id, "gw-1");
    EXPECT_EQ(receipt.epoch, 7u);
    EXPECT_EQ(receipt.cumulative_seq, 2u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{5, 6}, {9, 9}, {15, 15}}));
    EXPECT_EQ(receipt.issued_at_ms, kStartMs + 5000);
    auto encoded = shared::encodeReceipt(receipt);
    ASSERT_TRUE(encoded) << encoded.error().message();
    auto decoded = shared::decodeReceipt(encoded.value());
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(decoded.value(), receipt);

    EXPECT_EQ(spool->gaps("gw-1", 7, 10), (std::vector<SeqRange>{{3, 4}, {7, 8}, {10, 14}}));
    EXPECT_EQ(spool->gaps("gw-1", 7, 2), (std::vector<SeqRange>{{3, 4}, {7, 8}}));
    EXPECT_TRUE(spool->gaps("gw-1", 7, 0).empty());

    // Nothing known: nothing acknowledged, nothing to ask for.
    const shared::Receipt unknown = spool->receiptFor("gw-9", 7);
    EXPECT_EQ(unknown.gateway_id, "gw-9");
    EXPECT_EQ(unknown.cumulative_seq, 0u);
    EXPECT_TRUE(unknown.ranges.empty());
    EXPECT_EQ(spool->receiptFor("gw-1", 6).cumulative_seq, 0u);
    EXPECT_TRUE(spool->gaps("gw-9", 7, 10).empty());
}

TEST_F(SpoolTest, StateSurvivesReopen) {
    {
        auto spool = open();
        ASSERT_TRUE(spool);
        ASSERT_TRUE(spool->addCursor("kafka"));
        ASSERT_TRUE(spool->addCursor("tsdb"));
        admit(*spool, group("gw-1", 1, {1, 2, 4}));
        admit(*spool, group("gw-2", 3, {1}));
        ASSERT_TRUE(spool->advance("kafka", 3));
        ASSERT_TRUE(spool->advance("tsdb", 2));
        ASSERT_EQ(spool->truncate().value(), 2u);
    }
    auto spool = open();
    ASSERT_TRUE(spool);
    const auto stats = spool->stats();
    EXPECT_EQ(stats.records, 2u);
    EXPECT_EQ(stats.bytes, 32u);
    EXPECT_EQ(stats.last_offset, 4u);
    ASSERT_EQ(stats.cursors.size(), 2u);
    EXPECT_EQ(stats.cursors[0].sink, "kafka");
    EXPECT_EQ(stats.cursors[0].offset, 3u);
    EXPECT_EQ(stats.cursors[0].lag, 1u);
    EXPECT_EQ(stats.cursors[1].sink, "tsdb");
    EXPECT_EQ(stats.cursors[1].offset, 2u);
    EXPECT_EQ(stats.cursors[1].lag, 2u);
    EXPECT_EQ(offsets(spool->read("tsdb", 10)), (std::vector<std::uint64_t>{3, 4}));
    EXPECT_EQ(offsets(spool->read("kafka", 10)), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(metric("tern_ingest_spool_cursor_lag_records{sink=\"tsdb\"}"), 2);

    auto receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 2u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{4, 4}}));
    EXPECT_EQ(spool->receiptFor("gw-2", 3).cumulative_seq, 1u);
    // Seq 1 and 2 were truncated, and are still known to be duplicates.
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {1, 2, 4, 3})),
              (std::vector<A>{A::Duplicate, A::Duplicate, A::Duplicate, A::Stored}));
    EXPECT_EQ(offsets(spool->read("kafka", 10)), (std::vector<std::uint64_t>{4, 5}));
}

TEST_F(SpoolTest, OffsetsAreNeverReusedEvenAfterEverythingIsTruncated) {
    {
        auto spool = open();
        ASSERT_TRUE(spool);
        ASSERT_TRUE(spool->addCursor("s"));
        admit(*spool, group("gw-1", 1, {1, 2, 3}));
        ASSERT_TRUE(spool->advance("s", 3));
        ASSERT_EQ(spool->truncate().value(), 3u);
        EXPECT_EQ(spool->stats().records, 0u);
    }
    auto spool = open();
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->stats().last_offset, 3u);
    admit(*spool, group("gw-1", 1, {4}));
    const auto records = spool->read("s", 10);
    EXPECT_EQ(offsets(records), (std::vector<std::uint64_t>{4}));
    // A cursor added now starts before the oldest record held, with an exact lag.
    ASSERT_TRUE(spool->addCursor("late"));
    EXPECT_EQ(offsets(spool->read("late", 10)), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(spool->stats().cursors[0].sink, "late");
    EXPECT_EQ(spool->stats().cursors[0].lag, 1u);
}

TEST_F(SpoolTest, OlderEpochsAreKeptAndTheOldestIsDroppedBeyondTheBound) {
    {
        auto spool = open();
        ASSERT_TRUE(spool);
        for (std::uint64_t epoch = 1; epoch <= 4; ++epoch) {
            admit(*spool, group("gw-1", epoch, {1, 2}));
        }
        // Four epochs kept: a late retransmission of epoch 1 is still recognised.
        EXPECT_EQ(admit(*spool, group("gw-1", 1, {2, 3})),
                  (std::vector<A>{A::Duplicate, A::Stored}));
        // A fifth epoch retires the oldest (1); another gateway is unaffected.
        EXPECT_EQ(admit(*spool, group("gw-1", 5, {1})), (std::vector<A>{A::Stored}));
        EXPECT_EQ(spool->receiptFor("gw-1", 1).cumulative_seq, 0u);
        EXPECT_EQ(admit(*spool, group("gw-1", 1, {2, 4})), (std::vector<A>{A::Stale, A::Stale}));
        EXPECT_EQ(admit(*spool, group("gw-1", 2, {2})), (std::vector<A>{A::Duplicate}));
        EXPECT_EQ(metric("tern_ingest_spool_refused_total{reason=\"stale_epoch\"}"), 2);
        // Epochs are bounded per gateway: another gateway's old epoch is its own business.
        EXPECT_EQ(admit(*spool, group("gw-2", 1, {1})), (std::vector<A>{A::Stored}));
    }
    auto spool = open();
    ASSERT_TRUE(spool);
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {2})), (std::vector<A>{A::Stale}));
    for (std::uint64_t epoch = 2; epoch <= 4; ++epoch) {
        EXPECT_EQ(spool->receiptFor("gw-1", epoch).cumulative_seq, 2u) << "epoch " << epoch;
        EXPECT_EQ(admit(*spool, group("gw-1", epoch, {1})), (std::vector<A>{A::Duplicate}));
    }
    EXPECT_EQ(spool->receiptFor("gw-1", 5).cumulative_seq, 1u);
    EXPECT_EQ(spool->receiptFor("gw-2", 1).cumulative_seq, 1u);
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
        sqlite3_stmt* stmt = nullptr;
        ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM dedupe WHERE gateway = 'gw-1'", -1,
                                     &stmt, nullptr),
                  SQLITE_OK);
        ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
        EXPECT_EQ(sqlite3_column_int(stmt, 0), 4);
        sqlite3_finalize(stmt);
        sqlite3_close(db);
    }
    EXPECT_EQ(admit(*spool, group("gw-1", 3, {3})), (std::vector<A>{A::Stored}));
    EXPECT_EQ(admit(*spool, group("gw-1", 6, {1})), (std::vector<A>{A::Stored}));
    EXPECT_EQ(admit(*spool, group("gw-1", 2, {1})), (std::vector<A>{A::Stale}));
}

TEST_F(SpoolTest, TooManyGapsRefusesNewRangesButStillFillsAndExtends) {
    SpoolOptions o;
    o.max_ranges = 3;
    auto spool = open(o);
    ASSERT_TRUE(spool);
    EXPECT_EQ(
        admit(*spool, group("gw-1", 1, {3, 5, 7, 9, 8, 1})),
        (std::vector<A>{A::Stored, A::Stored, A::Stored, A::TooManyGaps, A::Stored, A::Stored}));
    auto receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 1u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{3, 3}, {5, 5}, {7, 8}}));
    // Refused means not admitted: the retransmission is not a duplicate, and it may get in once
    // filling a gap has freed a range.
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {11})), (std::vector<A>{A::TooManyGaps}));
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {2, 11, 9})),
              (std::vector<A>{A::Stored, A::Stored, A::Stored}));
    receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 3u);
    EXPECT_EQ(receipt.ranges, (std::vector<SeqRange>{{5, 5}, {7, 9}, {11, 11}}));
    EXPECT_EQ(metric("tern_ingest_spool_refused_total{reason=\"too_many_gaps\"}"), 2);
    EXPECT_EQ(spool->stats().records, 8u);
}

TEST_F(SpoolTest, TheDefaultRangeBoundMatchesWhatAReceiptCanCarry) {
    auto spool = open();
    ASSERT_TRUE(spool);
    std::vector<std::uint64_t> odd;
    for (std::uint64_t seq = 3; odd.size() < kMaxReceiptRanges + 1; seq += 2) odd.push_back(seq);
    const auto admissions = admit(*spool, group("gw-1", 1, odd, 1));
    ASSERT_EQ(admissions.size(), kMaxReceiptRanges + 1);
    EXPECT_EQ(admissions[kMaxReceiptRanges - 1], A::Stored);
    EXPECT_EQ(admissions[kMaxReceiptRanges], A::TooManyGaps);
    const auto receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.ranges.size(), kMaxReceiptRanges);
    EXPECT_TRUE(shared::encodeReceipt(receipt));
    EXPECT_EQ(spool->gaps("gw-1", 1, 5000).size(), kMaxReceiptRanges);
}

TEST_F(SpoolTest, FullAdmitsNothingDeletesNothingAndRecoversAfterTruncation) {
    SpoolOptions o;
    o.max_bytes = 1000;
    o.high_water = 0.5;
    auto spool = open(o);
    ASSERT_TRUE(spool);
    ASSERT_TRUE(spool->addCursor("s"));
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {1}, 400)), (std::vector<A>{A::Stored}));
    EXPECT_FALSE(spool->stats().above_high_water);
    EXPECT_EQ(metric("tern_ingest_spool_above_high_water"), 0);
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {2}, 400)), (std::vector<A>{A::Stored}));
    EXPECT_TRUE(spool->stats().above_high_water);
    EXPECT_EQ(metric("tern_ingest_spool_above_high_water"), 1);

    std::vector<Incoming> messages = group("gw-1", 1, {3}, 400);
    messages.push_back(message("gw-2", 1, 1, 100));  // would fit, but comes after a refusal
    messages.push_back(message("gw-1", 1, 1, 400));  // a duplicate is still a duplicate
    EXPECT_EQ(admit(*spool, messages), (std::vector<A>{A::Full, A::Full, A::Duplicate}));
    EXPECT_EQ(spool->stats().records, 2u);
    EXPECT_EQ(spool->stats().bytes, 800u);
    EXPECT_EQ(offsets(spool->read("s", 10)), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(spool->receiptFor("gw-1", 1).cumulative_seq, 2u);
    EXPECT_EQ(spool->receiptFor("gw-2", 1).cumulative_seq, 0u);
    EXPECT_EQ(metric("tern_ingest_spool_full_rejections_total"), 2);
    EXPECT_EQ(metric("tern_ingest_spool_group_commits_total"), 2);

    // Exactly max_bytes fits.
    EXPECT_EQ(admit(*spool, group("gw-2", 1, {1}, 200)), (std::vector<A>{A::Stored}));
    EXPECT_EQ(admit(*spool, group("gw-2", 1, {2}, 1)), (std::vector<A>{A::Full}));
    ASSERT_TRUE(spool->advance("s", 1));
    ASSERT_EQ(spool->truncate().value(), 1u);
    EXPECT_EQ(admit(*spool, messages), (std::vector<A>{A::Stored, A::Duplicate, A::Duplicate}));
    EXPECT_EQ(spool->receiptFor("gw-1", 1).cumulative_seq, 3u);
}

TEST_F(SpoolTest, TruncateDeletesOnlyBelowTheSlowestCursor) {
    auto spool = open();
    ASSERT_TRUE(spool);
    admit(*spool, group("gw-1", 1, {1, 2, 3, 4, 5, 6, 7, 8}));
    // No cursor at all: nothing has been delivered, nothing goes.
    EXPECT_EQ(spool->truncate().value(), 0u);
    EXPECT_EQ(spool->stats().records, 8u);

    ASSERT_TRUE(spool->addCursor("a"));
    ASSERT_TRUE(spool->addCursor("b"));
    EXPECT_EQ(offsets(spool->read("b", 3)), (std::vector<std::uint64_t>{1, 2, 3}));
    ASSERT_TRUE(spool->advance("a", 5));
    ASSERT_TRUE(spool->advance("b", 2));
    ASSERT_TRUE(spool->advance("a", 4));  // out of order completion: no step back
    ASSERT_TRUE(spool->addCursor("a"));   // already there: keeps its place
    EXPECT_EQ(spool->truncate().value(), 2u);
    EXPECT_EQ(spool->stats().records, 6u);
    EXPECT_EQ(offsets(spool->read("a", 10)), (std::vector<std::uint64_t>{6, 7, 8}));
    EXPECT_EQ(offsets(spool->read("b", 2)), (std::vector<std::uint64_t>{3, 4}));
    auto stats = spool->stats();
    ASSERT_EQ(stats.cursors.size(), 2u);
    EXPECT_EQ(stats.cursors[0].lag, 3u);
    EXPECT_EQ(stats.cursors[1].lag, 6u);
    EXPECT_EQ(metric("tern_ingest_spool_cursor_lag_records{sink=\"a\"}"), 3);
    EXPECT_EQ(metric("tern_ingest_spool_cursor_lag_records{sink=\"b\"}"), 6);

    auto past = spool->advance("a", 9);
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().code, "offset_out_of_range");
    auto unknown = spool->advance("c", 1);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, "unknown_cursor");
    EXPECT_TRUE(spool->read("c", 10).empty());

    ASSERT_TRUE(spool->removeCursor("b"));
    EXPECT_EQ(metric("tern_ingest_spool_cursor_lag_records{sink=\"b\"}"), 0);
    EXPECT_EQ(spool->truncate().value(), 3u);
    EXPECT_EQ(spool->truncate().value(), 0u);
    EXPECT_EQ(spool->stats().records, 3u);
    EXPECT_EQ(spool->stats().bytes, 48u);
    EXPECT_EQ(metric("tern_ingest_spool_truncated_total"), 5);
    EXPECT_EQ(metric("tern_ingest_spool_records"), 3);
}

TEST_F(SpoolTest, AGroupOfAThousandCommitsInOneTransaction) {
    auto spool = open();
    ASSERT_TRUE(spool);
    std::vector<Incoming> messages;
    for (std::uint64_t i = 0; i < 1000; ++i) {
        messages.push_back(message("gw-" + std::to_string(i % 10), 1, i / 10 + 1, 64));
    }
    const auto admissions = admit(*spool, messages);
    EXPECT_EQ(std::count(admissions.begin(), admissions.end(), A::Stored), 1000);
    EXPECT_EQ(metric("tern_ingest_spool_group_commits_total"), 1);
    EXPECT_EQ(metric("tern_ingest_spool_commit_seconds_count"), 1);
    EXPECT_EQ(metric("tern_ingest_spool_appended_total{kind=\"telemetry\"}"), 1000);
    EXPECT_EQ(spool->stats().records, 1000u);
    EXPECT_EQ(spool->receiptFor("gw-3", 1).cumulative_seq, 100u);

    // A group with nothing new costs no transaction at all.
    const auto again = admit(*spool, messages);
    EXPECT_EQ(std::count(again.begin(), again.end(), A::Duplicate), 1000);
    EXPECT_EQ(metric("tern_ingest_spool_group_commits_total"), 1);
    EXPECT_EQ(metric("tern_ingest_spool_duplicates_total"), 1000);
}

TEST_F(SpoolTest, AFailedTransactionAdmitsNothing) {
    SpoolOptions o;
    o.max_disk_bytes = 64 * 1024;
    auto spool = open(o);
    ASSERT_TRUE(spool);
    ASSERT_TRUE(spool->addCursor("s"));
    admit(*spool, group("gw-1", 1, {1}));

    // Fails half way through its inserts: the file may not grow past max_disk_bytes.
    const auto big = group("gw-1", 1, {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 6000);
    auto failed = spool->append(big);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, "disk_full");
    EXPECT_EQ(failed.error().action, shared::ErrorAction::Retry);
    EXPECT_EQ(spool->receiptFor("gw-1", 1).cumulative_seq, 1u);
    EXPECT_EQ(spool->stats().records, 1u);
    EXPECT_EQ(spool->stats().bytes, 16u);
    EXPECT_EQ(metric("tern_ingest_spool_commit_failures_total"), 1);
    EXPECT_EQ(metric("tern_ingest_spool_duplicates_total"), 0);

    // Another writer holds the lock: the group fails before it starts.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto busy = spool->append(group("gw-1", 1, {2, 3}));
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, "sqlite_error");
    EXPECT_EQ(busy.error().action, shared::ErrorAction::Retry);
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);

    // Nothing of either failure was admitted, and offsets carry on without a hole.
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {2, 3})), (std::vector<A>{A::Stored, A::Stored}));
    EXPECT_EQ(offsets(spool->read("s", 10)), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(spool->receiptFor("gw-1", 1).cumulative_seq, 3u);
    EXPECT_EQ(integrityCheck(path_), "ok");
}

TEST_F(SpoolTest, InvalidMessagesAndOptionsAreRefused) {
    SpoolOptions o;
    o.max_bytes = 100;
    auto spool = open(o);
    ASSERT_TRUE(spool);
    ASSERT_TRUE(spool->addCursor("s"));
    std::vector<Incoming> messages = {message("", 1, 1), message("gw-1", 1, 0),
                                      message("gw-1", 1, 1, 101), message("gw-1", 1, 1, 0)};
    messages.push_back(message("gw-1", 1, 2));
    messages.back().kind = static_cast<Kind>(9);
    EXPECT_EQ(admit(*spool, messages),
              (std::vector<A>{A::Invalid, A::Invalid, A::Invalid, A::Stored, A::Invalid}));
    const auto records = spool->read("s", 10);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_TRUE(records[0].payload.empty());
    EXPECT_EQ(metric("tern_ingest_spool_refused_total{reason=\"invalid\"}"), 4);

    for (auto bad :
         {SpoolOptions{.max_bytes = 0}, SpoolOptions{.high_water = 0.0},
          SpoolOptions{.high_water = 1.5}, SpoolOptions{.max_ranges = 0},
          SpoolOptions{.max_ranges = kMaxReceiptRanges + 1}, SpoolOptions{.max_epochs = 0}}) {
        shared::MetricsRegistry metrics;
        auto refused = Spool::open((dir_ / "other.db").string(), bad, clock_, metrics);
        ASSERT_FALSE(refused);
        EXPECT_EQ(refused.error().code, "invalid_spool_options");
        EXPECT_EQ(refused.error().action, shared::ErrorAction::Stop);
    }
}

TEST_F(SpoolTest, ACorruptFileIsLeftAloneAndStops) {
    {
        std::FILE* f = std::fopen(path_.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        const std::string garbage(8192, 'x');
        std::fwrite(garbage.data(), 1, garbage.size(), f);
        std::fclose(f);
    }
    auto spool = Spool::open(path_, {}, clock_, metrics_);
    ASSERT_FALSE(spool);
    EXPECT_EQ(spool.error().code, "spool_corrupt");
    EXPECT_EQ(spool.error().action, shared::ErrorAction::Stop);
    EXPECT_EQ(fs::file_size(path_), 8192u);
}

TEST_F(SpoolTest, ConfigTableHasDefaultsAndRejectsUnknownKeys) {
    struct Root {
        SpoolConfig spool;
    };
    const auto root = shared::ConfigTable<Root>("", "root").table(&Root::spool, spoolTable());
    auto defaults = shared::loadConfigString("", "t.toml", root);
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults.value().spool.path, "/var/lib/tern/spool.db");
    EXPECT_EQ(defaults.value().spool.max_bytes, 4 * shared::kGiB);
    EXPECT_EQ(defaults.value().spool.high_water, 0.8);
    auto set = shared::loadConfigString(
        "[spool]\nmax_bytes = \"64MiB\"\nhigh_water = 0.5\nmax_disk_bytes = \"1GiB\"\n", "t.toml",
        root);
    ASSERT_TRUE(set);
    EXPECT_EQ(set.value().spool.max_bytes, 64 * shared::kMiB);
    EXPECT_EQ(set.value().spool.high_water, 0.5);
    EXPECT_EQ(set.value().spool.max_disk_bytes, shared::kGiB);
    EXPECT_FALSE(shared::loadConfigString("[spool]\nhigh_water = 1.5\n", "t.toml", root));
    EXPECT_FALSE(shared::loadConfigString("[spool]\nmax_byte = 5\n", "t.toml", root));
}

// A child appends groups (two gateways, plus a retransmission of the previous group) and reports
// each group whose append returned; it is killed at a random moment. Every reported group must be
// in the reopened spool exactly once, the group in flight all or nothing, the dedupe state must
// agree with the records, and the file must pass integrity_check.
TEST_F(SpoolTest, CommittedGroupsSurviveSigkill) {
    constexpr std::uint64_t kPerGateway = 4;
    auto groupFor = [](std::uint64_t g) {
        std::vector<Incoming> messages;
        for (std::uint64_t k = 1; k <= kPerGateway; ++k) {
            messages.push_back(message("gw-a", 1, g * kPerGateway + k, 200));
            messages.push_back(message("gw-b", 2, g * kPerGateway + k, 300));
        }
        if (g > 0) messages.push_back(message("gw-a", 1, g * kPerGateway, 200));
        return messages;
    };
    std::mt19937 rng(7);
    for (int round = 0; round < 20; ++round) {
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix, ec);
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::close(fds[0]);
            shared::MetricsRegistry metrics;
            auto spool = Spool::open(path_, {}, clock_, metrics);
            if (!spool) ::_exit(3);
            for (std::uint64_t g = 0;; ++g) {
                auto admitted = spool.value()->append(groupFor(g));
                if (!admitted) ::_exit(4);
                if (::write(fds[1], &g, sizeof g) != sizeof g) ::_exit(5);
            }
        }
        ::close(fds[1]);
        const int kill_after = std::uniform_int_distribution<int>(1, 40)(rng);
        std::vector<std::uint64_t> committed;
        std::uint64_t value = 0;
        while (static_cast<int>(committed.size()) < kill_after &&
               ::read(fds[0], &value, sizeof value) == sizeof value) {
            committed.push_back(value);
        }
        ::kill(child, SIGKILL);
        while (::read(fds[0], &value, sizeof value) == sizeof value) committed.push_back(value);
        ::close(fds[0]);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
        ASSERT_GE(committed.size(), static_cast<std::size_t>(kill_after));

        ASSERT_EQ(integrityCheck(path_), "ok");
        auto spool = open();
        ASSERT_TRUE(spool);
        ASSERT_TRUE(spool->addCursor("check"));
        const auto records = spool->read("check", 1'000'000);
        // Group g holds offsets g*8+1 .. g*8+8; the group in flight may or may not have made it.
        const std::uint64_t reported = committed.size();
        ASSERT_TRUE(records.size() == reported * 2 * kPerGateway ||
                    records.size() == (reported + 1) * 2 * kPerGateway)
            << records.size() << " records after " << reported << " reported groups";
        const std::uint64_t groups = records.size() / (2 * kPerGateway);
        std::vector<std::uint64_t> expected_offsets(records.size());
        std::iota(expected_offsets.begin(), expected_offsets.end(), 1);
        EXPECT_EQ(offsets(records), expected_offsets);
        std::set<std::tuple<std::string, std::uint64_t, std::uint64_t>> unique;
        for (const auto& r : records) {
            unique.emplace(r.gateway_id, r.sequence.epoch, r.sequence.seq);
            EXPECT_EQ(r.payload, message(r.gateway_id, r.sequence.epoch, r.sequence.seq,
                                         r.gateway_id == "gw-a" ? 200 : 300)
                                     .payload);
        }
        EXPECT_EQ(unique.size(), records.size()) << "a message is stored twice";
        EXPECT_EQ(spool->receiptFor("gw-a", 1).cumulative_seq, groups * kPerGateway);
        EXPECT_EQ(spool->receiptFor("gw-b", 2).cumulative_seq, groups * kPerGateway);
        EXPECT_TRUE(spool->receiptFor("gw-a", 1).ranges.empty());
        // Every committed group, sent again, is a duplicate; the next one is new.
        for (std::uint64_t g = 0; g < groups; ++g) {
            for (A a : admit(*spool, groupFor(g))) ASSERT_EQ(a, A::Duplicate) << "group " << g;
        }
        const auto next = admit(*spool, groupFor(groups));
        EXPECT_EQ(std::count(next.begin(), next.end(), A::Stored), 2 * kPerGateway);
        EXPECT_EQ(spool->stats().last_offset, (groups + 1) * 2 * kPerGateway);
    }
}

// Two ingest processes on one shared subscription: the broker deals a gateway's seqs out
// round-robin. Each learns from the other's receipts, so its floor keeps up and a
// retransmission of what the other stored is a duplicate here.
TEST_F(SpoolTest, ReceiptsOfAnotherIngestCountAsAdmitted) {
    auto spool = open();
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {1, 3, 5})),
              std::vector<Admission>(3, Admission::Stored));
    EXPECT_EQ(spool->receiptFor("gw-1", 1).ranges.size(), 2u);

    const shared::Receipt other{"gw-1", 1, 0, {{2, 2}, {4, 4}, {6, 7}}, kStartMs};
    auto learned = spool->admitElsewhere(std::vector{other});
    ASSERT_TRUE(learned) << learned.error().message();
    EXPECT_EQ(learned.value(), 1u);
    auto receipt = spool->receiptFor("gw-1", 1);
    EXPECT_EQ(receipt.cumulative_seq, 7u);
    EXPECT_TRUE(receipt.ranges.empty());
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {4, 8})),
              (std::vector<Admission>{Admission::Duplicate, Admission::Stored}));
    EXPECT_EQ(spool->stats().records, 4u);  // 1, 3, 5, 8: nothing of the other's is stored here

    // Our own receipt coming back adds nothing and costs no transaction.
    EXPECT_EQ(spool->admitElsewhere(std::vector{spool->receiptFor("gw-1", 1)}).value(), 0u);

    // It is durable: a restart remembers it.
    spool.reset();
    spool = open();
    EXPECT_EQ(spool->receiptFor("gw-1", 1).cumulative_seq, 8u);
    EXPECT_EQ(admit(*spool, group("gw-1", 1, {6})), std::vector{Admission::Duplicate});
}

TEST_F(SpoolTest, ReceiptsOfAnotherIngestFollowTheEpochAndRangeBounds) {
    SpoolOptions options;
    options.max_ranges = 2;
    options.max_epochs = 2;
    auto spool = open(options);
    admit(*spool, group("gw-1", 5, {1}));
    admit(*spool, group("gw-1", 6, {1}));
    // An epoch older than both kept ones is ignored, as append() refuses it.
    ASSERT_TRUE(spool->admitElsewhere(std::vector{shared::Receipt{"gw-1", 4, 9, {}, kStartMs}}));
    EXPECT_EQ(spool->receiptFor("gw-1", 4).cumulative_seq, 0u);
    // More ranges than max_ranges: the highest are forgotten (never lost: the gateway keeps
    // seq 7 until a receipt covers it; here it is refused, not taken for a duplicate).
    const shared::Receipt many{"gw-1", 6, 0, {{3, 3}, {5, 5}, {7, 7}}, kStartMs};
    ASSERT_TRUE(spool->admitElsewhere(std::vector{many}));
    EXPECT_EQ(spool->receiptFor("gw-1", 6).ranges, (std::vector<SeqRange>{{3, 3}, {5, 5}}));
    EXPECT_EQ(admit(*spool, group("gw-1", 6, {7})), std::vector{Admission::TooManyGaps});
    // A newer epoch is taken up, retiring the oldest, as a new epoch in append() does.
    ASSERT_TRUE(spool->admitElsewhere(std::vector{shared::Receipt{"gw-1", 7, 3, {}, kStartMs}}));
    EXPECT_EQ(spool->receiptFor("gw-1", 7).cumulative_seq, 3u);
    EXPECT_EQ(spool->receiptFor("gw-1", 5).cumulative_seq, 0u);
}

}  // namespace
}  // namespace tern::ingest
