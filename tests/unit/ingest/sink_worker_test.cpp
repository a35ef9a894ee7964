#include "tern/ingest/sink_worker.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tern::ingest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using O = RecordOutcome;
using Offsets = std::vector<std::uint64_t>;

constexpr std::int64_t kStartMs = 1'780'000'000'000;  // 2026

// What a FakeSink does with one deliver(): outcomes to answer with at once, or nullopt to hold
// the completion until the test releases it (or never).
using Answer =
    std::function<std::optional<std::vector<O>>(std::size_t call, const std::vector<SpoolRecord>&)>;

// Shared between a FakeSink, which its worker owns, and the test, which outlives both.
struct FakeState {
    std::mutex mutex;
    Answer answer;
    std::vector<Offsets> calls;
    std::vector<SinkCompletion> held;
    std::atomic<int> ticks{0};

    std::vector<Offsets> callsSoFar() {
        std::lock_guard lock(mutex);
        return calls;
    }
    std::size_t callCount() {
        std::lock_guard lock(mutex);
        return calls.size();
    }
    void setAnswer(Answer a) {
        std::lock_guard lock(mutex);
        answer = std::move(a);
    }
    // Completes the held delivery `index` with `outcome` for each of its records, from the
    // calling thread.
    void release(std::size_t index, O outcome) {
        SinkCompletion done;
        std::size_t count = 0;
        {
            std::lock_guard lock(mutex);
            done = held.at(index);
            count = calls.at(index).size();
        }
        done(SinkResult::all(count, outcome));
    }
};

class FakeSink final : public Sink {
public:
    FakeSink(std::string name, std::shared_ptr<FakeState> state)
        : name_(std::move(name)), state_(std::move(state)) {}

    const std::string& name() const override { return name_; }

    void deliver(std::vector<SpoolRecord> records, SinkCompletion done) override {
        std::optional<std::vector<O>> outcomes;
        {
            std::lock_guard lock(state_->mutex);
            Offsets offsets;
            for (const auto& r : records) offsets.push_back(r.offset);
            const std::size_t call = state_->calls.size();
            state_->calls.push_back(offsets);
            outcomes = state_->answer ? state_->answer(call, records)
                                      : std::vector<O>(records.size(), O::Delivered);
            // Held deliveries are indexed like calls; an answered one holds an empty slot.
            state_->held.push_back(outcomes ? SinkCompletion{} : done);
        }
        if (!outcomes) return;
        const bool all_delivered =
            std::all_of(outcomes->begin(), outcomes->end(), [](O o) { return o == O::Delivered; });
        done(SinkResult{std::move(*outcomes), all_delivered ? "" : "fake: not delivered"});
    }

    void tick() override { state_->ticks.fetch_add(1); }

private:
    std::string name_;
    std::shared_ptr<FakeState> state_;
};

Answer answerAll(O outcome) {
    return [outcome](std::size_t, const std::vector<SpoolRecord>& records) {
        return std::optional<std::vector<O>>(std::vector<O>(records.size(), outcome));
    };
}

// Polls until pred holds or the (generous) deadline passes; never a timing assertion.
bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

Offsets range(std::uint64_t first, std::uint64_t last) {
    Offsets out;
    for (std::uint64_t o = first; o <= last; ++o) out.push_back(o);
    return out;
}

class SinkWorkerTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/tern-sink-worker-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        openSpool();
        ASSERT_TRUE(spool_);
    }
    void TearDown() override {
        spool_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    void openSpool() {
        auto spool = Spool::open((dir_ / "spool.db").string(), {}, clock_, metrics_);
        ASSERT_TRUE(spool) << spool.error().message();
        spool_ = std::move(spool.value());
    }

    // Appends n telemetry records of gw-1, epoch 1, with the next seqs; they all arrived at
    // kStartMs. Returns their offsets.
    void append(std::size_t n) {
        std::vector<Incoming> group;
        for (std::size_t i = 0; i < n; ++i) {
            Incoming m;
            m.gateway_id = "gw-1";
            m.sequence = {1, ++seq_};
            m.received_ms = kStartMs;
            m.readings = 1;
            m.payload = {1, 2, 3, static_cast<std::uint8_t>(seq_ & 0xff)};
            group.push_back(std::move(m));
        }
        auto admitted = spool_->append(group);
        ASSERT_TRUE(admitted) << admitted.error().message();
    }

    static SinkWorkerOptions fastOptions() {
        SinkWorkerOptions o;
        o.batch_records = 4;
        o.backoff_min = 0ms;
        o.backoff_max = 0ms;
        o.breaker_failures = 3;
        o.breaker_cooldown = 10s;  // on the manual clock
        o.poll_interval = 10ms;    // real time: how often the worker looks at the manual clock
        o.delivery_timeout = 5s;   // on the manual clock
        return o;
    }

    std::unique_ptr<SinkWorker> worker(const std::string& name, std::shared_ptr<FakeState> state,
                                       SinkWorkerOptions options = fastOptions()) {
        auto created = SinkWorker::create(
            *spool_, std::make_unique<FakeSink>(name, std::move(state)), options, clock_, metrics_);
        EXPECT_TRUE(created) << (created ? "" : created.error().message());
        return created ? std::move(created.value()) : nullptr;
    }

    std::uint64_t cursor(const std::string& sink) const {
        for (const auto& c : spool_->stats().cursors) {
            if (c.sink == sink) return c.offset;
        }
        return ~std::uint64_t{0};
    }

    // The value of one series in the exposition; -1 when it is not there.
    double metric(const std::string& series) const {
        std::istringstream in(metrics_.exposition());
        for (std::string line; std::getline(in, line);) {
            if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
        }
        return -1;
    }

    // Waits until the worker has gone through its loop a few more times (it ticks the sink once
    // per pass), so that whatever it was going to do after the last wake-up it has done.
    static void letItLoop(SinkWorker& w, FakeState& state) {
        const int seen = state.ticks.load();
        w.notify();
        ASSERT_TRUE(eventually([&] { return state.ticks.load() >= seen + 3; }));
    }

    fs::path dir_;
    shared::ManualClock clock_{shared::fromUnixMillis(kStartMs)};
    shared::MetricsRegistry metrics_;
    std::unique_ptr<Spool> spool_;
    std::uint64_t seq_ = 0;
};

TEST_F(SinkWorkerTest, DeliversEverythingInOrderAdvancesTheCursorAndTruncates) {
    append(10);
    clock_.advance(2s);  // every record is two seconds old when delivered
    auto state = std::make_shared<FakeState>();
    auto w = worker("fake", state);
    ASSERT_TRUE(w);
    EXPECT_EQ(metric("tern_ingest_sink_lag_records{sink=\"fake\"}"), 10);
    w->start();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 10; }));

    EXPECT_EQ(state->callsSoFar(), (std::vector<Offsets>{range(1, 4), range(5, 8), range(9, 10)}));
    // The only cursor passed them all: truncated (just after the cursor moved).
    EXPECT_TRUE(eventually([&] { return spool_->stats().records == 0; }));
    EXPECT_TRUE(
        eventually([&] { return metric("tern_ingest_sink_lag_records{sink=\"fake\"}") == 0; }));
    const auto stats = w->stats();
    EXPECT_EQ(stats.delivered, 10u);
    EXPECT_EQ(stats.retried, 0u);
    EXPECT_EQ(stats.failed, 0u);
    EXPECT_FALSE(stats.breaker_open);
    EXPECT_EQ(metric("tern_ingest_sink_delivered_total{sink=\"fake\"}"), 10);
    EXPECT_EQ(metric("tern_ingest_sink_delivery_seconds_count{sink=\"fake\"}"), 3);
    EXPECT_EQ(metric("tern_ingest_sink_latency_seconds_count{sink=\"fake\"}"), 10);
    EXPECT_DOUBLE_EQ(metric("tern_ingest_sink_latency_seconds_sum{sink=\"fake\"}"), 20.0);

    // New records after a notify() go out too, from where the cursor is.
    append(3);
    w->notify();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 13; }));
    EXPECT_EQ(state->callsSoFar().back(), range(11, 13));
    EXPECT_GT(state->ticks.load(), 0);
}

TEST_F(SinkWorkerTest, ResendsOnlyTheRetryRecordsAndTheCursorWaitsForThem) {
    append(5);
    auto state = std::make_shared<FakeState>();
    state->setAnswer([](std::size_t call,
                        const std::vector<SpoolRecord>& records) -> std::optional<std::vector<O>> {
        std::vector<O> out;
        for (const auto& r : records) {
            if (call == 0) out.push_back(r.offset == 2 || r.offset == 4 ? O::Retry : O::Delivered);
            if (call == 1) out.push_back(r.offset == 2 ? O::Retry : O::Delivered);
        }
        if (call >= 2) return std::nullopt;  // held until the test says so
        return out;
    });
    auto options = fastOptions();
    options.batch_records = 5;
    auto w = worker("fake", state, options);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return state->callCount() == 3; }));
    EXPECT_EQ(state->callsSoFar(), (std::vector<Offsets>{range(1, 5), {2, 4}, {2}}));
    // Offset 2 is still Retry: the cursor has not passed it, nothing was truncated, and nothing
    // newer has been read.
    EXPECT_LT(cursor("fake"), 2u);
    EXPECT_EQ(spool_->stats().records, 5u);
    EXPECT_EQ(w->stats().retried, 3u);
    EXPECT_EQ(w->stats().delivered, 4u);

    state->release(2, O::Delivered);
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 5; }));
    EXPECT_EQ(w->stats().delivered, 5u);
    EXPECT_EQ(metric("tern_ingest_sink_retried_total{sink=\"fake\"}"), 3);
    EXPECT_EQ(metric("tern_ingest_sink_delivered_total{sink=\"fake\"}"), 5);
    EXPECT_TRUE(eventually([&] { return spool_->stats().records == 0; }));
    letItLoop(*w, *state);
    EXPECT_EQ(state->callCount(), 3u);  // nothing delivered twice
}

TEST_F(SinkWorkerTest, RejectedRecordsCountAsFailedAndTheCursorMovesOn) {
    append(5);
    auto state = std::make_shared<FakeState>();
    state->setAnswer([](std::size_t, const std::vector<SpoolRecord>& records) {
        std::vector<O> out;
        out.reserve(records.size());
        for (const auto& r : records) {
            out.push_back(r.offset == 2 || r.offset == 3 ? O::Rejected : O::Delivered);
        }
        return std::optional<std::vector<O>>(out);
    });
    auto options = fastOptions();
    options.batch_records = 10;
    auto w = worker("fake", state, options);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 5; }));
    EXPECT_EQ(state->callsSoFar(), std::vector<Offsets>{range(1, 5)});
    const auto stats = w->stats();
    EXPECT_EQ(stats.failed, 2u);
    EXPECT_EQ(stats.delivered, 3u);
    EXPECT_EQ(stats.retried, 0u);
    EXPECT_EQ(stats.last_error, "fake: not delivered");
    EXPECT_EQ(metric("tern_ingest_sink_failed_total{sink=\"fake\"}"), 2);
    EXPECT_EQ(metric("tern_ingest_sink_latency_seconds_count{sink=\"fake\"}"), 3);
}

TEST_F(SinkWorkerTest, BreakerOpensAfterConsecutiveFailuresAndClosesAfterASuccess) {
    append(2);
    auto state = std::make_shared<FakeState>();
    state->setAnswer(answerAll(O::Retry));
    auto w = worker("fake", state);
    ASSERT_TRUE(w);
    w->start();
    // breaker_failures = 3 attempts that delivered nothing (backoff is 0 here).
    ASSERT_TRUE(eventually([&] { return state->callCount() == 3; }));
    ASSERT_TRUE(eventually([&] { return w->stats().breaker_open; }));
    EXPECT_EQ(metric("tern_ingest_sink_breaker_open{sink=\"fake\"}"), 1);
    EXPECT_EQ(w->stats().retried, 6u);

    // Open: no calls until the cooldown has passed on the clock, however often it is woken.
    clock_.advance(9'999ms);
    letItLoop(*w, *state);
    EXPECT_EQ(state->callCount(), 3u);

    // Half-open: one attempt; it fails, so the breaker opens again for another cooldown.
    clock_.advance(1ms);
    w->notify();
    ASSERT_TRUE(eventually([&] { return state->callCount() == 4; }));
    letItLoop(*w, *state);
    EXPECT_EQ(state->callCount(), 4u);
    EXPECT_TRUE(w->stats().breaker_open);
    EXPECT_EQ(metric("tern_ingest_sink_breaker_open{sink=\"fake\"}"), 1);

    // The next half-open attempt delivers: the breaker closes and the cursor moves.
    state->setAnswer(answerAll(O::Delivered));
    clock_.advance(10s);
    w->notify();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 2; }));
    EXPECT_EQ(state->callCount(), 5u);
    EXPECT_FALSE(w->stats().breaker_open);
    EXPECT_EQ(metric("tern_ingest_sink_breaker_open{sink=\"fake\"}"), 0);

    // Closed again: new records go out at once, without a cooldown.
    append(1);
    w->notify();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 3; }));
}

TEST_F(SinkWorkerTest, ASinkThatNeverCompletesTimesOutAndItsLateDoneIsIgnored) {
    append(3);
    auto state = std::make_shared<FakeState>();
    state->setAnswer([](std::size_t call, const std::vector<SpoolRecord>& records) {
        return call == 0
                   ? std::nullopt
                   : std::optional<std::vector<O>>(std::vector<O>(records.size(), O::Delivered));
    });
    auto w = worker("fake", state);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return state->callCount() == 1; }));
    clock_.advance(5s);
    w->notify();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 3; }));
    EXPECT_EQ(state->callsSoFar(), (std::vector<Offsets>{range(1, 3), range(1, 3)}));
    EXPECT_EQ(w->stats().retried, 3u);
    EXPECT_EQ(w->stats().delivered, 3u);
    EXPECT_EQ(w->stats().last_error, "delivery_timeout");

    // The first delivery completes late, with the worker running and then with it gone.
    state->release(0, O::Delivered);
    letItLoop(*w, *state);
    EXPECT_EQ(w->stats().delivered, 3u);
    EXPECT_EQ(metric("tern_ingest_sink_delivered_total{sink=\"fake\"}"), 3);
    w.reset();
    state->release(0, O::Retry);
    EXPECT_EQ(metric("tern_ingest_sink_delivered_total{sink=\"fake\"}"), 3);
}

TEST_F(SinkWorkerTest, AFailingSinkHoldsBackOnlyItsOwnCursor) {
    append(6);
    auto good_state = std::make_shared<FakeState>();
    auto bad_state = std::make_shared<FakeState>();
    bad_state->setAnswer(answerAll(O::Retry));
    auto good = worker("good", good_state);
    auto bad = worker("bad", bad_state);
    ASSERT_TRUE(good && bad);
    bad->start();
    good->start();
    ASSERT_TRUE(eventually([&] { return cursor("good") == 6; }));
    ASSERT_TRUE(eventually([&] { return bad->stats().breaker_open; }));
    EXPECT_EQ(cursor("bad"), 0u);
    // The spool keeps everything above the slowest cursor.
    EXPECT_EQ(spool_->stats().records, 6u);
    EXPECT_EQ(metric("tern_ingest_sink_lag_records{sink=\"bad\"}"), 6);
    EXPECT_TRUE(
        eventually([&] { return metric("tern_ingest_sink_lag_records{sink=\"good\"}") == 0; }));

    bad_state->setAnswer(answerAll(O::Delivered));
    clock_.advance(10s);
    bad->notify();
    ASSERT_TRUE(eventually([&] { return cursor("bad") == 6; }));
    ASSERT_TRUE(eventually([&] { return spool_->stats().records == 0; }));
    EXPECT_EQ(good_state->callCount(), 2u);
}

TEST_F(SinkWorkerTest, StopDrainsTheDeliveryInFlightAndWhatIsSpooled) {
    append(9);
    auto state = std::make_shared<FakeState>();
    // The first delivery is completed from another thread while stop() is waiting.
    state->setAnswer([](std::size_t call, const std::vector<SpoolRecord>& records) {
        return call == 0
                   ? std::nullopt
                   : std::optional<std::vector<O>>(std::vector<O>(records.size(), O::Delivered));
    });
    auto w = worker("fake", state);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return state->callCount() == 1; }));
    std::thread completer([&] { state->release(0, O::Delivered); });
    w->stop(60s);
    completer.join();
    EXPECT_EQ(cursor("fake"), 9u);
    EXPECT_EQ(w->stats().delivered, 9u);
    EXPECT_EQ(spool_->stats().records, 0u);
    w->stop(60s);  // idempotent
    w->notify();   // harmless after stop
}

TEST_F(SinkWorkerTest, StopGivesUpAtTheDrainTimeoutAndKeepsTheRecords) {
    append(3);
    auto state = std::make_shared<FakeState>();
    state->setAnswer([](std::size_t, const std::vector<SpoolRecord>&) {
        return std::optional<std::vector<O>>();
    });
    auto w = worker("fake", state);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return state->callCount() == 1; }));
    w->stop(0ms);
    EXPECT_EQ(cursor("fake"), 0u);
    EXPECT_EQ(spool_->stats().records, 3u);
    state->release(0, O::Delivered);  // too late: ignored
    EXPECT_EQ(w->stats().delivered, 0u);
    EXPECT_EQ(cursor("fake"), 0u);
}

TEST_F(SinkWorkerTest, ARestartResumesFromThePersistedCursor) {
    append(8);
    auto first = std::make_shared<FakeState>();
    // Delivers the first slice, then hangs on the second.
    first->setAnswer([](std::size_t call, const std::vector<SpoolRecord>& records) {
        return call == 0
                   ? std::optional<std::vector<O>>(std::vector<O>(records.size(), O::Delivered))
                   : std::nullopt;
    });
    auto options = fastOptions();
    options.batch_records = 5;
    auto w = worker("fake", first, options);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return first->callCount() == 2; }));
    EXPECT_EQ(first->callsSoFar(), (std::vector<Offsets>{range(1, 5), range(6, 8)}));
    w.reset();  // the destructor stops without draining
    spool_.reset();

    openSpool();
    ASSERT_TRUE(spool_);
    EXPECT_EQ(cursor("fake"), 5u);
    auto second = std::make_shared<FakeState>();
    w = worker("fake", second, options);
    ASSERT_TRUE(w);
    w->start();
    ASSERT_TRUE(eventually([&] { return cursor("fake") == 8; }));
    EXPECT_EQ(second->callsSoFar(), std::vector<Offsets>{range(6, 8)});
    w.reset();
}

TEST_F(SinkWorkerTest, DestroyingAWorkerThatNeverStartedIsFine) {
    auto state = std::make_shared<FakeState>();
    auto w = worker("fake", state);
    ASSERT_TRUE(w);
    EXPECT_EQ(w->name(), "fake");
    EXPECT_EQ(w->sink().name(), "fake");
    EXPECT_EQ(cursor("fake"), 0u);  // create() added the cursor
    w.reset();
    EXPECT_EQ(state->callCount(), 0u);
}

TEST_F(SinkWorkerTest, CreateRefusesBadOptions) {
    auto options = fastOptions();
    options.batch_records = 0;
    auto created = SinkWorker::create(
        *spool_, std::make_unique<FakeSink>("fake", std::make_shared<FakeState>()), options, clock_,
        metrics_);
    ASSERT_FALSE(created);
    EXPECT_EQ(created.error().action, shared::ErrorAction::Stop);
    EXPECT_EQ(created.error().code, "invalid_sink_worker_options");

    options = fastOptions();
    options.backoff_min = 2s;
    options.backoff_max = 1s;
    EXPECT_FALSE(SinkWorker::create(
        *spool_, std::make_unique<FakeSink>("fake", std::make_shared<FakeState>()), options, clock_,
        metrics_));
}

}  // namespace
}  // namespace tern::ingest
