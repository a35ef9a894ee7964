#pragma once

// Counters, gauges and histograms for /metrics, in the Prometheus text exposition format 0.0.4.
//
// Threads and ownership:
// - Registration (MetricsRegistry::counter/gauge/histogram) and exposition() take the registry's
//   mutex and may be called from any thread.
// - The registry owns every metric. A returned reference stays valid, at the same address, for the
//   registry's lifetime, so a component registers once at startup, keeps the reference and updates
//   it from its hot path.
// - Updates (inc/set/add/observe) and reads are lock-free relaxed atomics, safe from any thread.
//   A scrape running concurrently with updates may see a histogram's _sum a few observations out of
//   step with its buckets; bucket counts and _count always agree with each other.
//
// Errors: a bad name, a bad label or a family registered twice inconsistently is a programming
// error, found at startup. Registration reports it by throwing std::invalid_argument rather than
// returning a Result, since no caller could do anything but stop; updates never throw.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::shared {

// Label (name, value) pairs. The order given is the order exposed; two lists holding the same pairs
// in different orders name the same series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count, e.g. readings received or dropped{reason}.
class Counter {
public:
    Counter() = default;
    Counter(const Counter&) = delete;
    Counter& operator=(const Counter&) = delete;

    void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down, e.g. queue depth or spool bytes.
class Gauge {
public:
    Gauge() = default;
    Gauge(const Gauge&) = delete;
    Gauge& operator=(const Gauge&) = delete;

    void set(double v) { value_.store(v, std::memory_order_relaxed); }
    void add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
    double value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0.0};
};

// Observations counted into buckets by upper bound (a value equal to a bound falls in that
// bucket), plus their sum and count.
class Histogram {
public:
    struct Snapshot {
        // Cumulative: cumulative_counts[i] counts observations <= upper_bounds[i]; the last entry,
        // one past the bounds, is the +Inf bucket and equals count.
        std::vector<std::uint64_t> cumulative_counts;
        double sum = 0.0;
        std::uint64_t count = 0;
    };

    // Throws std::invalid_argument unless the bounds are finite and strictly increasing. No bounds
    // at all is allowed: the histogram then has only the +Inf bucket.
    explicit Histogram(std::vector<double> upper_bounds);
    Histogram(const Histogram&) = delete;
    Histogram& operator=(const Histogram&) = delete;

    // A NaN observation is counted only in the +Inf bucket (it is not <= any bound) and makes the
    // sum NaN, as the Prometheus client libraries do.
    void observe(double v);

    const std::vector<double>& upperBounds() const { return upper_bounds_; }
    Snapshot snapshot() const;

private:
    std::vector<double> upper_bounds_;
    // Not cumulative: one slot per bound plus the +Inf slot, so observe() touches one bucket, and a
    // snapshot summing them is monotonic across buckets even while observations arrive.
    std::unique_ptr<std::atomic<std::uint64_t>[]> bucket_counts_;
    std::atomic<double> sum_{0.0};
};

// Bounds start, start*factor, ..., count of them. Throws std::invalid_argument unless start > 0,
// factor > 1, count >= 1 and every bound is finite.
std::vector<double> exponentialBuckets(double start, double factor, std::size_t count);

class MetricsRegistry {
public:
    MetricsRegistry();
    ~MetricsRegistry();
    MetricsRegistry(const MetricsRegistry&) = delete;
    MetricsRegistry& operator=(const MetricsRegistry&) = delete;

    // Each returns the series of family `name` with `labels`, creating the family and the series on
    // first use; the same name and label set returns the same object. Throws std::invalid_argument
    // if the name is not [a-zA-Z_:][a-zA-Z0-9_:]*, a label name is not [a-zA-Z_][a-zA-Z0-9_]* or
    // starts with "__", a label name repeats, or `name` is already registered with another type or
    // help text. The `_total` suffix of counters is the caller's to write; it is never added.
    Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
    Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
    // Also throws if a label is named "le", the bounds are invalid (see Histogram) or differ from
    // the family's, or name_bucket / name_sum / name_count clashes with another family's name.
    Histogram& histogram(std::string_view name, std::string_view help,
                         std::vector<double> bucket_upper_bounds, Labels labels = {});

    // The body of a /metrics response (Content-Type: text/plain; version=0.0.4): families sorted by
    // name, each with one # HELP and one # TYPE line, series in registration order.
    std::string exposition() const;

private:
    enum class Kind { Counter, Gauge, Histogram };
    struct Family;

    // Shared by the three registration calls; defined (and only instantiated) in metrics.cpp.
    template <class Metric>
    Metric& series(Kind kind, std::string_view name, std::string_view help,
                   std::vector<double> bucket_upper_bounds, Labels labels);

    mutable std::mutex mutex_;
    // std::map keeps families sorted for exposition and never moves them.
    std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

}  // namespace tern::shared
