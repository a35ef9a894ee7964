#include "tern/shared/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <type_traits>
#include <variant>

namespace tern::shared {

namespace {

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

void put(fmt::memory_buffer& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

bool isAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool isValidMetricName(std::string_view name) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool ok = isAsciiLetter(c) || c == '_' || c == ':' || (i > 0 && isAsciiDigit(c));
        if (!ok) return false;
    }
    return true;
}

// [a-zA-Z_][a-zA-Z0-9_]*
bool isValidLabelName(std::string_view name) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool ok = isAsciiLetter(c) || c == '_' || (i > 0 && isAsciiDigit(c));
        if (!ok) return false;
    }
    return true;
}

[[noreturn]] void reject(std::string_view name, std::string_view why) {
    throw std::invalid_argument(fmt::format("metric '{}': {}", name, why));
}

void validateLabels(std::string_view metric, const Labels& labels, bool is_histogram) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const std::string& label = labels[i].first;
        if (!isValidLabelName(label)) reject(metric, fmt::format("invalid label name '{}'", label));
        // Prometheus reserves "__"-prefixed label names for its own use (__name__, relabelling).
        if (label.starts_with("__")) reject(metric, fmt::format("label '{}' is reserved", label));
        // "le" is the bucket label the exposition adds; a caller's own would be ambiguous.
        if (is_histogram && label == "le") reject(metric, "histograms cannot have a label 'le'");
        for (std::size_t j = 0; j < i; ++j) {
            if (labels[j].first == label) reject(metric, fmt::format("label '{}' repeats", label));
        }
    }
}

// Why the bounds are unusable, or nullptr if they are fine.
const char* boundsProblem(const std::vector<double>& bounds) {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        // +Inf is always the implicit last bucket, so an explicit one would be a duplicate.
        if (!std::isfinite(bounds[i])) return "bucket bounds must be finite";
        if (i > 0 && !(bounds[i - 1] < bounds[i])) {
            return "bucket bounds must be strictly increasing";
        }
    }
    return nullptr;
}

// Prometheus spells non-finite values the way Go's strconv.ParseFloat reads them.
std::string formatValue(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);  // shortest form that round-trips
}

// Label values escape backslash, double quote and newline; HELP text only backslash and newline.
void appendEscaped(fmt::memory_buffer& out, std::string_view text, bool escape_quotes) {
    for (const char c : text) {
        if (c == '\\') {
            put(out, "\\\\");
        } else if (c == '\n') {
            put(out, "\\n");
        } else if (c == '"' && escape_quotes) {
            put(out, "\\\"");
        } else {
            out.push_back(c);
        }
    }
}

// `name{a="x",b="y"} value`, with `le` (when given) after the series' own labels.
void appendSample(fmt::memory_buffer& out, std::string_view name, const Labels& labels,
                  const std::string* le, std::string_view value) {
    put(out, name);
    if (!labels.empty() || le != nullptr) {
        out.push_back('{');
        bool first = true;
        for (const auto& [label, label_value] : labels) {
            if (!first) out.push_back(',');
            first = false;
            put(out, label);
            put(out, "=\"");
            appendEscaped(out, label_value, /*escape_quotes=*/true);
            out.push_back('"');
        }
        if (le != nullptr) {
            if (!first) out.push_back(',');
            put(out, "le=\"");
            put(out, *le);
            out.push_back('"');
        }
        out.push_back('}');
    }
    out.push_back(' ');
    put(out, value);
    out.push_back('\n');
}

Labels sortedByName(Labels labels) {
    std::sort(labels.begin(), labels.end());
    return labels;
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      bucket_counts_(std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds_.size() + 1)) {
    if (const char* problem = boundsProblem(upper_bounds_)) {
        throw std::invalid_argument(fmt::format("histogram: {}", problem));
    }
}

void Histogram::observe(double v) {
    // First bound >= v; a NaN compares false with everything and lands past the end (+Inf).
    const auto it = std::partition_point(upper_bounds_.begin(), upper_bounds_.end(),
                                         [v](double bound) { return !(v <= bound); });
    const auto bucket = static_cast<std::size_t>(it - upper_bounds_.begin());
    bucket_counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot snap;
    snap.cumulative_counts.reserve(upper_bounds_.size() + 1);
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
        running += bucket_counts_[i].load(std::memory_order_relaxed);
        snap.cumulative_counts.push_back(running);
    }
    // Taken from the buckets rather than a counter of its own, so _count always equals +Inf.
    snap.count = running;
    snap.sum = sum_.load(std::memory_order_relaxed);
    return snap;
}

std::vector<double> exponentialBuckets(double start, double factor, std::size_t count) {
    if (!(start > 0) || !std::isfinite(start)) {
        throw std::invalid_argument("exponentialBuckets: start must be positive and finite");
    }
    if (!(factor > 1) || !std::isfinite(factor)) {
        throw std::invalid_argument("exponentialBuckets: factor must be greater than 1 and finite");
    }
    if (count < 1) throw std::invalid_argument("exponentialBuckets: count must be at least 1");
    std::vector<double> bounds;
    bounds.reserve(count);
    double bound = start;
    for (std::size_t i = 0; i < count; ++i) {
        if (!std::isfinite(bound)) {
            throw std::invalid_argument("exponentialBuckets: bounds overflow to infinity");
        }
        bounds.push_back(bound);
        bound *= factor;
    }
    return bounds;
}

struct MetricsRegistry::Family {
    using Metric =
        std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>>;
    struct Series {
        Labels labels;  // as first registered: the order exposed
        Metric metric;
    };

    Kind kind;
    std::string help;
    std::vector<double> upper_bounds;  // histograms only
    std::vector<Series> series;        // registration order
    // Labels sorted by name -> index into series, so label order does not make a new series.
    std::map<Labels, std::size_t> index;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

template <class Metric>
Metric& MetricsRegistry::series(Kind kind, std::string_view name, std::string_view help,
                                std::vector<double> bucket_upper_bounds, Labels labels) {
    const bool is_histogram = kind == Kind::Histogram;
    if (!isValidMetricName(name)) reject(name, "invalid metric name");
    validateLabels(name, labels, is_histogram);
    if (const char* problem = boundsProblem(bucket_upper_bounds); is_histogram && problem) {
        reject(name, problem);
    }

    std::lock_guard lock(mutex_);
    auto found = families_.find(name);
    if (found == families_.end()) {
        // Histogram series expose name_bucket, name_sum and name_count; another family by one of
        // those names would make the exposition ambiguous.
        for (const std::string_view suffix : kHistogramSuffixes) {
            if (is_histogram && families_.contains(fmt::format("{}{}", name, suffix))) {
                reject(name, fmt::format("clashes with family '{}{}'", name, suffix));
            }
            if (name.ends_with(suffix)) {
                const auto base = families_.find(name.substr(0, name.size() - suffix.size()));
                if (base != families_.end() && base->second->kind == Kind::Histogram) {
                    reject(name, fmt::format("clashes with histogram '{}'", base->first));
                }
            }
        }
        auto family = std::make_unique<Family>();
        family->kind = kind;
        family->help = std::string(help);
        family->upper_bounds = bucket_upper_bounds;
        found = families_.emplace(std::string(name), std::move(family)).first;
    } else {
        const Family& existing = *found->second;
        if (existing.kind != kind) reject(name, "already registered as another type");
        if (existing.help != help) reject(name, "already registered with other help text");
        if (existing.upper_bounds != bucket_upper_bounds) {
            reject(name, "already registered with other bucket bounds");
        }
    }

    Family& family = *found->second;
    Labels key = sortedByName(labels);
    if (const auto it = family.index.find(key); it != family.index.end()) {
        return *std::get<std::unique_ptr<Metric>>(family.series[it->second].metric);
    }
    std::unique_ptr<Metric> metric;
    if constexpr (std::is_same_v<Metric, Histogram>) {
        metric = std::make_unique<Histogram>(std::move(bucket_upper_bounds));
    } else {
        metric = std::make_unique<Metric>();
    }
    Metric& ref = *metric;
    family.series.push_back({std::move(labels), std::move(metric)});
    family.index.emplace(std::move(key), family.series.size() - 1);
    return ref;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, Labels labels) {
    return series<Counter>(Kind::Counter, name, help, {}, std::move(labels));
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, Labels labels) {
    return series<Gauge>(Kind::Gauge, name, help, {}, std::move(labels));
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::vector<double> bucket_upper_bounds, Labels labels) {
    return series<Histogram>(Kind::Histogram, name, help, std::move(bucket_upper_bounds),
                             std::move(labels));
}

std::string MetricsRegistry::exposition() const {
    fmt::memory_buffer out;
    std::lock_guard lock(mutex_);
    // Not a structured binding: clang before 16 cannot capture one in the lambda below.
    for (const auto& entry : families_) {
        const std::string& name = entry.first;
        const Family* family = entry.second.get();
        put(out, "# HELP ");
        put(out, name);
        out.push_back(' ');
        appendEscaped(out, family->help, /*escape_quotes=*/false);
        out.push_back('\n');

        std::string_view type;
        switch (family->kind) {
            case Kind::Counter:
                type = "counter";
                break;
            case Kind::Gauge:
                type = "gauge";
                break;
            case Kind::Histogram:
                type = "histogram";
                break;
        }
        fmt::format_to(std::back_inserter(out), "# TYPE {} {}\n", name, type);

        std::vector<std::string> les;  // the same for every series of a histogram family
        if (family->kind == Kind::Histogram) {
            for (const double bound : family->upper_bounds) les.push_back(formatValue(bound));
            les.emplace_back("+Inf");
        }
        for (const auto& series : family->series) {
            std::visit(
                [&](const auto& metric) {
                    using M = typename std::decay_t<decltype(metric)>::element_type;
                    if constexpr (std::is_same_v<M, Counter>) {
                        appendSample(out, name, series.labels, nullptr,
                                     fmt::format("{}", metric->value()));
                    } else if constexpr (std::is_same_v<M, Gauge>) {
                        appendSample(out, name, series.labels, nullptr,
                                     formatValue(metric->value()));
                    } else {
                        const Histogram::Snapshot snap = metric->snapshot();
                        const std::string bucket_name = name + "_bucket";
                        for (std::size_t i = 0; i < les.size(); ++i) {
                            appendSample(out, bucket_name, series.labels, &les[i],
                                         fmt::format("{}", snap.cumulative_counts[i]));
                        }
                        appendSample(out, name + "_sum", series.labels, nullptr,
                                     formatValue(snap.sum));
                        appendSample(out, name + "_count", series.labels, nullptr,
                                     fmt::format("{}", snap.count));
                    }
                },
                series.metric);
        }
    }
    return fmt::to_string(out);
}

}  // namespace tern::shared
