#include "tern/shared/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <latch>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tern::shared {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// --- Exposition --------------------------------------------------------------------------------

TEST(MetricsExposition, ExactTextForSmallRegistry) {
    MetricsRegistry registry;
    registry.counter("tern_readings_received_total", "Readings received.").inc(3);
    registry
        .counter("tern_readings_dropped_total", "Readings dropped, by reason.",
                 {{"reason", "malformed"}})
        .inc(2);
    registry
        .counter("tern_readings_dropped_total", "Readings dropped, by reason.",
                 {{"reason", "duplicate"}})
        .inc();
    Gauge& depth = registry.gauge("tern_queue_depth", "Readings waiting in the queue.");
    depth.set(7.5);
    depth.add(-2);
    Histogram& latency = registry.histogram("tern_batch_seconds", "Time to send one batch.",
                                            {0.25, 0.5, 1}, {{"sink", "kafka"}});
    for (const double v : {0.125, 0.25, 0.375, 2.5}) latency.observe(v);

    EXPECT_EQ(registry.exposition(),
              "# HELP tern_batch_seconds Time to send one batch.\n"
              "# TYPE tern_batch_seconds histogram\n"
              "tern_batch_seconds_bucket{sink=\"kafka\",le=\"0.25\"} 2\n"
              "tern_batch_seconds_bucket{sink=\"kafka\",le=\"0.5\"} 3\n"
              "tern_batch_seconds_bucket{sink=\"kafka\",le=\"1\"} 3\n"
              "tern_batch_seconds_bucket{sink=\"kafka\",le=\"+Inf\"} 4\n"
              "tern_batch_seconds_sum{sink=\"kafka\"} 3.25\n"
              "tern_batch_seconds_count{sink=\"kafka\"} 4\n"
              "# HELP tern_queue_depth Readings waiting in the queue.\n"
              "# TYPE tern_queue_depth gauge\n"
              "tern_queue_depth 5.5\n"
              "# HELP tern_readings_dropped_total Readings dropped, by reason.\n"
              "# TYPE tern_readings_dropped_total counter\n"
              "tern_readings_dropped_total{reason=\"malformed\"} 2\n"
              "tern_readings_dropped_total{reason=\"duplicate\"} 1\n"
              "# HELP tern_readings_received_total Readings received.\n"
              "# TYPE tern_readings_received_total counter\n"
              "tern_readings_received_total 3\n");
}

TEST(MetricsExposition, EmptyRegistryExposesNothing) {
    MetricsRegistry registry;
    EXPECT_EQ(registry.exposition(), "");
}

TEST(MetricsExposition, HistogramWithoutLabelsHasOnlyLe) {
    MetricsRegistry registry;
    registry.histogram("h", "H.", {1}).observe(1);
    EXPECT_EQ(registry.exposition(),
              "# HELP h H.\n"
              "# TYPE h histogram\n"
              "h_bucket{le=\"1\"} 1\n"
              "h_bucket{le=\"+Inf\"} 1\n"
              "h_sum 1\n"
              "h_count 1\n");
}

TEST(MetricsExposition, EscapesLabelValuesAndHelp) {
    MetricsRegistry registry;
    registry.counter("c", "back\\slash \"quoted\"\nsecond line", {{"path", "C:\\tmp\n\"x\""}})
        .inc();
    // Help keeps its double quotes: only label values escape them.
    EXPECT_EQ(registry.exposition(),
              "# HELP c back\\\\slash \"quoted\"\\nsecond line\n"
              "# TYPE c counter\n"
              "c{path=\"C:\\\\tmp\\n\\\"x\\\"\"} 1\n");
}

TEST(MetricsExposition, FamiliesSortedByNameSeriesInRegistrationOrder) {
    MetricsRegistry registry;
    registry.gauge("zeta", "Z.", {{"k", "2"}});
    registry.gauge("alpha", "A.");
    registry.gauge("zeta", "Z.", {{"k", "1"}});
    registry.gauge("Beta", "B.");  // uppercase sorts before lowercase, as bytes do
    registry.gauge("zeta", "Z.", {{"k", "3"}});

    std::vector<std::string> samples;
    for (const std::string& line : lines(registry.exposition())) {
        if (!line.starts_with("#")) samples.push_back(line);
    }
    EXPECT_EQ(samples, (std::vector<std::string>{"Beta 0", "alpha 0", "zeta{k=\"2\"} 0",
                                                 "zeta{k=\"1\"} 0", "zeta{k=\"3\"} 0"}));
}

TEST(MetricsExposition, LabelsKeepTheirRegisteredOrder) {
    MetricsRegistry registry;
    registry.counter("c", "C.", {{"zone", "a"}, {"app", "b"}});
    EXPECT_NE(registry.exposition().find("c{zone=\"a\",app=\"b\"} 0\n"), std::string::npos);
}

TEST(MetricsExposition, GaugeSpellsNanAndInfinitiesAsPrometheusDoes) {
    MetricsRegistry registry;
    registry.gauge("g", "G.", {{"v", "nan"}}).set(kNaN);
    registry.gauge("g", "G.", {{"v", "pinf"}}).set(kInf);
    registry.gauge("g", "G.", {{"v", "ninf"}}).set(-kInf);
    Histogram& h = registry.histogram("h", "H.", {});
    h.observe(kInf);

    const std::string text = registry.exposition();
    EXPECT_NE(text.find("g{v=\"nan\"} NaN\n"), std::string::npos) << text;
    EXPECT_NE(text.find("g{v=\"pinf\"} +Inf\n"), std::string::npos) << text;
    EXPECT_NE(text.find("g{v=\"ninf\"} -Inf\n"), std::string::npos) << text;
    EXPECT_NE(text.find("h_sum +Inf\n"), std::string::npos) << text;
}

TEST(MetricsExposition, DoublesUseShortestRoundTripForm) {
    MetricsRegistry registry;
    registry.gauge("g", "G.", {{"i", "1"}}).set(0.1);
    registry.gauge("g", "G.", {{"i", "2"}}).set(0.1 + 0.2);
    registry.gauge("g", "G.", {{"i", "3"}}).set(1e21);
    registry.gauge("g", "G.", {{"i", "4"}}).set(-3);
    registry.gauge("g", "G.", {{"i", "5"}}).set(1.5e-7);

    std::vector<std::string> values;
    for (const std::string& line : lines(registry.exposition())) {
        if (!line.starts_with("#")) values.push_back(line.substr(line.rfind(' ') + 1));
    }
    ASSERT_EQ(values.size(), 5U);
    EXPECT_EQ(values[0], "0.1");
    EXPECT_EQ(values[1], "0.30000000000000004");
    EXPECT_EQ(values[3], "-3");
    // Exponent forms are the formatter's choice; what matters is that they read back exactly.
    EXPECT_EQ(std::stod(values[2]), 1e21);
    EXPECT_EQ(std::stod(values[4]), 1.5e-7);
}

TEST(MetricsExposition, CountersPrintAsIntegersEvenWhenHuge) {
    MetricsRegistry registry;
    registry.counter("c", "C.").inc(std::numeric_limits<std::uint64_t>::max());
    EXPECT_NE(registry.exposition().find("c 18446744073709551615\n"), std::string::npos);
}

TEST(MetricsExposition, EveryLineMatchesPrometheusGrammar) {
    MetricsRegistry registry;
    registry.counter("tern:ingest_received_total", "Received\nover MQTT \\ HTTP").inc(12);
    registry.counter("dropped_total", "Dropped.", {{"reason", "bad \"json\"\n"}, {"stage", "x"}})
        .inc();
    registry.counter("dropped_total", "Dropped.", {{"reason", "C:\\"}, {"stage", "y"}});
    registry.gauge("_depth", "", {{"q", ""}}).set(kNaN);
    registry.gauge("temp", "T.").set(-1.5e-300);
    registry.gauge("inf", "I.").set(-kInf);
    Histogram& h = registry.histogram("lat", "L.", exponentialBuckets(1e-3, 10, 4), {{"a", "1"}});
    h.observe(5e-4);
    h.observe(42);
    registry.histogram("lat", "L.", exponentialBuckets(1e-3, 10, 4), {{"a", "2"}}).observe(kNaN);

    const std::string name = R"([a-zA-Z_:][a-zA-Z0-9_:]*)";
    const std::string label = R"([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")";
    const std::string value = R"((?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN))";
    const std::regex help_line("# HELP (" + name + R"() (?:[^\\\n]|\\[\\n])*)");
    const std::regex type_line("# TYPE (" + name + ") (counter|gauge|histogram)");
    const std::regex sample_line("(" + name + ")(?:\\{" + label + "(?:," + label + ")*\\})? " +
                                 value);

    const std::string text = registry.exposition();
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.back(), '\n');

    std::set<std::string> helped;
    std::set<std::string> typed;
    std::string family;
    std::string type;
    int samples = 0;
    for (const std::string& line : lines(text)) {
        std::smatch m;
        if (std::regex_match(line, m, help_line)) {
            EXPECT_TRUE(helped.insert(m[1]).second) << "second HELP: " << line;
            family = m[1];
            type.clear();
        } else if (std::regex_match(line, m, type_line)) {
            EXPECT_EQ(m[1], family) << "TYPE without its HELP: " << line;
            EXPECT_TRUE(typed.insert(m[1]).second) << "second TYPE: " << line;
            type = m[2];
        } else if (std::regex_match(line, m, sample_line)) {
            ++samples;
            ASSERT_FALSE(type.empty()) << "sample before TYPE: " << line;
            const std::string sample_name = m[1];
            if (type == "histogram") {
                EXPECT_TRUE(sample_name == family + "_bucket" || sample_name == family + "_sum" ||
                            sample_name == family + "_count")
                    << line;
            } else {
                EXPECT_EQ(sample_name, family) << line;
            }
        } else {
            ADD_FAILURE() << "line does not match the exposition grammar: " << line;
        }
    }
    EXPECT_EQ(helped.size(), 6U);
    EXPECT_EQ(typed, helped);
    // 2 dropped + 1 each for _depth, temp, inf, received + 2 histogram series of 5 buckets + 2.
    EXPECT_EQ(samples, 2 + 4 + 2 * (5 + 2));
}

// --- Registration ------------------------------------------------------------------------------

TEST(MetricsRegistry, SameNameAndLabelsReturnsSameObject) {
    MetricsRegistry registry;
    Counter& a = registry.counter("c", "C.", {{"x", "1"}, {"y", "2"}});
    EXPECT_EQ(&registry.counter("c", "C.", {{"x", "1"}, {"y", "2"}}), &a);
    // A label set is a set: order does not make a new series.
    EXPECT_EQ(&registry.counter("c", "C.", {{"y", "2"}, {"x", "1"}}), &a);
    EXPECT_NE(&registry.counter("c", "C.", {{"x", "1"}, {"y", "3"}}), &a);
    EXPECT_NE(&registry.counter("c", "C."), &a);

    Gauge& g = registry.gauge("g", "G.");
    EXPECT_EQ(&registry.gauge("g", "G."), &g);
    Histogram& h = registry.histogram("h", "H.", {1, 2});
    EXPECT_EQ(&registry.histogram("h", "H.", {1, 2}), &h);

    a.inc();
    EXPECT_EQ(registry.counter("c", "C.", {{"y", "2"}, {"x", "1"}}).value(), 1U);
    EXPECT_EQ(lines(registry.exposition()).size(), (2U + 3U) + (2U + 1U) + (2U + 3U + 2U));
}

TEST(MetricsRegistry, ReferencesStayValidAsRegistryGrows) {
    MetricsRegistry registry;
    Counter& first = registry.counter("c", "C.", {{"i", "first"}});
    Histogram& hist = registry.histogram("h", "H.", {1}, {{"i", "first"}});
    for (int i = 0; i < 1000; ++i) {
        registry.counter("c", "C.", {{"i", std::to_string(i)}});
        registry.histogram("h", "H.", {1}, {{"i", std::to_string(i)}});
        registry.gauge("g" + std::to_string(i), "G.");
    }
    first.inc(5);
    hist.observe(0.5);
    EXPECT_EQ(registry.counter("c", "C.", {{"i", "first"}}).value(), 5U);
    EXPECT_EQ(registry.histogram("h", "H.", {1}, {{"i", "first"}}).snapshot().count, 1U);
}

TEST(MetricsRegistry, RejectsInvalidMetricNames) {
    MetricsRegistry registry;
    for (const char* bad : {"", "1abc", "has-dash", "has space", "dot.ted", "ünïcode"}) {
        EXPECT_THROW(registry.counter(bad, "x"), std::invalid_argument) << bad;
        EXPECT_THROW(registry.gauge(bad, "x"), std::invalid_argument) << bad;
        EXPECT_THROW(registry.histogram(bad, "x", {1}), std::invalid_argument) << bad;
    }
    for (const char* good : {"a", "_a", ":a", "a:b_c9", "A1", "__x"}) {
        EXPECT_NO_THROW(registry.counter(good, "x")) << good;
    }
}

TEST(MetricsRegistry, RejectsInvalidLabelNames) {
    MetricsRegistry registry;
    for (const char* bad : {"", "1a", "a:b", "a-b", "a b"}) {
        EXPECT_THROW(registry.counter("c", "x", {{bad, "v"}}), std::invalid_argument) << bad;
        EXPECT_THROW(registry.gauge("g", "x", {{bad, "v"}}), std::invalid_argument) << bad;
        EXPECT_THROW(registry.histogram("h", "x", {1}, {{bad, "v"}}), std::invalid_argument) << bad;
    }
    EXPECT_NO_THROW(registry.counter("c", "x", {{"_a", "v"}, {"B9", ""}}));
}

TEST(MetricsRegistry, RejectsReservedLabelNames) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.counter("c", "x", {{"__name__", "v"}}), std::invalid_argument);
    EXPECT_THROW(registry.gauge("g", "x", {{"ok", "v"}, {"__x", "v"}}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsRepeatedLabelName) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.counter("c", "x", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsLeLabelOnHistogramsOnly) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.histogram("h", "x", {1}, {{"le", "1"}}), std::invalid_argument);
    EXPECT_NO_THROW(registry.counter("c", "x", {{"le", "1"}}));
}

TEST(MetricsRegistry, RejectsBucketsNotStrictlyIncreasing) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.histogram("h", "x", {1, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {2, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {1, 3, 2}), std::invalid_argument);
    EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsNonFiniteBuckets) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.histogram("h", "x", {1, kInf}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {-kInf, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {kNaN}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {1, kNaN, 2}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsSameNameWithAnotherType) {
    MetricsRegistry registry;
    registry.counter("m", "x");
    EXPECT_THROW(registry.gauge("m", "x"), std::invalid_argument);
    EXPECT_THROW(registry.histogram("m", "x", {1}), std::invalid_argument);
    registry.gauge("g", "x");
    EXPECT_THROW(registry.counter("g", "x", {{"other", "labels"}}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsSameNameWithOtherHelp) {
    MetricsRegistry registry;
    registry.counter("c", "Help.");
    EXPECT_THROW(registry.counter("c", "Other help."), std::invalid_argument);
    EXPECT_THROW(registry.counter("c", "Other help.", {{"a", "b"}}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsHistogramWithOtherBuckets) {
    MetricsRegistry registry;
    registry.histogram("h", "x", {1, 2});
    EXPECT_THROW(registry.histogram("h", "x", {1, 3}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {1, 2, 3}, {{"a", "b"}}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {}), std::invalid_argument);
}

TEST(MetricsRegistry, RejectsNamesClashingWithHistogramSeries) {
    MetricsRegistry registry;
    registry.histogram("h", "x", {1});
    EXPECT_THROW(registry.counter("h_count", "x"), std::invalid_argument);
    EXPECT_THROW(registry.gauge("h_sum", "x"), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h_bucket", "x", {1}), std::invalid_argument);
    registry.gauge("g_count", "x");
    EXPECT_THROW(registry.histogram("g", "x", {1}), std::invalid_argument);
    EXPECT_NO_THROW(registry.counter("g", "x"));  // only histograms expose suffixed series
}

TEST(MetricsRegistry, FailedRegistrationLeavesNoTrace) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.counter("c", "x", {{"__bad", "v"}}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("h", "x", {2, 1}), std::invalid_argument);
    EXPECT_EQ(registry.exposition(), "");
    EXPECT_NO_THROW(registry.gauge("c", "y"));
    EXPECT_NO_THROW(registry.counter("h", "y"));
}

// --- Metric types ------------------------------------------------------------------------------

TEST(Counter, IncrementsByOneOrByN) {
    Counter c;
    EXPECT_EQ(c.value(), 0U);
    c.inc();
    c.inc(41);
    EXPECT_EQ(c.value(), 42U);
}

TEST(Gauge, SetReplacesAndAddAccumulates) {
    Gauge g;
    EXPECT_EQ(g.value(), 0.0);
    g.add(2.5);
    g.add(-1);
    EXPECT_EQ(g.value(), 1.5);
    g.set(-4);
    EXPECT_EQ(g.value(), -4.0);
    g.add(0.5);
    EXPECT_EQ(g.value(), -3.5);
}

TEST(Histogram, BucketsAreCumulativeAndBoundsInclusive) {
    Histogram h({1, 2, 4});
    for (const double v : {-10.0, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 100.0}) h.observe(v);
    const Histogram::Snapshot snap = h.snapshot();
    EXPECT_EQ(snap.cumulative_counts, (std::vector<std::uint64_t>{2, 4, 6, 8}));
    EXPECT_EQ(snap.count, 8U);
    EXPECT_EQ(snap.sum, 106.0);
}

TEST(Histogram, NanCountsOnlyInInfBucketAndPoisonsSum) {
    Histogram h({1});
    h.observe(0.5);
    h.observe(kNaN);
    const Histogram::Snapshot snap = h.snapshot();
    EXPECT_EQ(snap.cumulative_counts, (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(snap.count, 2U);
    EXPECT_TRUE(std::isnan(snap.sum));
}

TEST(Histogram, WithoutBoundsHasOnlyTheInfBucket) {
    Histogram h({});
    h.observe(-1);
    h.observe(1e300);
    EXPECT_EQ(h.snapshot().cumulative_counts, (std::vector<std::uint64_t>{2}));
}

TEST(ExponentialBuckets, MultipliesByFactor) {
    EXPECT_EQ(exponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
    EXPECT_EQ(exponentialBuckets(0.5, 10, 1), (std::vector<double>{0.5}));
    EXPECT_NO_THROW(Histogram(exponentialBuckets(1e-6, 1.5, 60)));
}

TEST(ExponentialBuckets, RejectsBadArguments) {
    EXPECT_THROW(exponentialBuckets(0, 2, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(-1, 2, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(kNaN, 2, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(kInf, 2, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(1, 1, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(1, 0.5, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(1, kNaN, 3), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(1, 2, 0), std::invalid_argument);
    EXPECT_THROW(exponentialBuckets(1e300, 10, 10), std::invalid_argument);  // overflows to +Inf
}

// --- Concurrency -------------------------------------------------------------------------------

constexpr int kThreads = 8;
constexpr int kPerThread = 20000;

TEST(MetricsConcurrency, UpdatesFromSeveralThreadsSumExactly) {
    MetricsRegistry registry;
    Counter& counter = registry.counter("c_total", "C.");
    Gauge& gauge = registry.gauge("g", "G.");
    Histogram& hist = registry.histogram("h", "H.", {0.5});

    std::latch start(kThreads);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            start.arrive_and_wait();  // all threads race from the same moment
            for (int i = 0; i < kPerThread; ++i) {
                counter.inc();
                gauge.add(1);  // whole numbers stay exact in a double far beyond this total
                hist.observe(t % 2 == 0 ? 0.25 : 1.0);
            }
        });
    }
    for (std::thread& th : threads) th.join();

    constexpr std::uint64_t kTotal = std::uint64_t{kThreads} * kPerThread;
    EXPECT_EQ(counter.value(), kTotal);
    EXPECT_EQ(gauge.value(), static_cast<double>(kTotal));
    const Histogram::Snapshot snap = hist.snapshot();
    EXPECT_EQ(snap.count, kTotal);
    EXPECT_EQ(snap.cumulative_counts, (std::vector<std::uint64_t>{kTotal / 2, kTotal}));
    EXPECT_EQ(snap.sum, (0.25 + 1.0) * static_cast<double>(kTotal) / 2);
}

TEST(MetricsConcurrency, ConcurrentRegistrationYieldsOneSeries) {
    MetricsRegistry registry;
    std::latch start(kThreads);
    std::vector<Counter*> seen(kThreads);
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            start.arrive_and_wait();
            for (int i = 0; i < 1000; ++i) {
                Counter& c = registry.counter("dropped_total", "D.", {{"reason", "full"}});
                c.inc();
                seen[t] = &c;
            }
        });
    }
    // Scrape while registration and updates are under way; each scrape must stay well-formed.
    for (int i = 0; i < 50; ++i) {
        const std::string text = registry.exposition();
        EXPECT_TRUE(text.empty() || text.starts_with("# HELP dropped_total D.\n")) << text;
    }
    for (std::thread& th : threads) th.join();

    for (Counter* c : seen) EXPECT_EQ(c, seen[0]);
    EXPECT_EQ(seen[0]->value(), std::uint64_t{kThreads} * 1000);
    EXPECT_EQ(lines(registry.exposition()).size(), 3U);
}

}  // namespace
}  // namespace tern::shared
