#include "detectors.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>

#include "tern/edge/rules/rolling_stats.h"
#include "tern/shared/config.h"

namespace tern::edge::rules {
namespace {

// A constant window has a standard deviation of 0 and an infinite z-score for any other value.
// Running sums leave a rounding residue of roughly 1e-16 of the magnitude per operation, so a
// value counts as different from a constant window only past this fraction of the mean (and
// at least this much in absolute terms near 0): far above rounding, far below any sensor's
// resolution.
constexpr double kConstantWindowEpsilon = 1e-9;

std::int64_t millisOr(std::chrono::milliseconds value, std::int64_t fallback) {
    return value == kUnsetDuration ? fallback : std::max<std::int64_t>(value.count(), 0);
}

double numberOr(double value, double fallback) { return std::isnan(value) ? fallback : value; }

std::string durationText(std::int64_t ms) {
    return shared::formatDuration(std::chrono::milliseconds{ms});
}

// Builds alert text in a string the caller reuses, so an alert allocates nothing once the
// string has grown to fit.
class Text {
public:
    explicit Text(std::string& out) : out_(out) { out_.clear(); }
    Text& operator<<(std::string_view text) {
        out_.append(text);
        return *this;
    }
    Text& operator<<(double value) { return number(value, 10); }
    Text& number(double value, int digits) {
        std::array<char, 32> buffer{};
        const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value,
                                             std::chars_format::general, digits);
        out_.append(ec == std::errc{} ? std::string_view(buffer.data(), static_cast<std::size_t>(
                                                                            end - buffer.data()))
                                      : std::string_view("?"));
        return *this;
    }
    // " for 30s", or nothing when the condition needs no time to hold.
    Text& forDuration(std::int64_t ms) {
        if (ms > 0) *this << " for " << durationText(ms);
        return *this;
    }

private:
    std::string& out_;
};

class ThresholdDetector final : public Detector {
public:
    explicit ThresholdDetector(const RuleConfig& config)
        : has_above_(!std::isnan(config.above)),
          has_below_(!std::isnan(config.below)),
          above_(config.above),
          below_(config.below),
          hysteresis_(std::max(numberOr(config.hysteresis, kDefaultHysteresis), 0.0)),
          min_duration_ms_(millisOr(config.min_duration, 0)) {}

    Change onSample(const Sample& sample, bool firing) override {
        const double value = sample.value;
        if (firing) {
            // Back inside the band shrunk by the hysteresis on every configured side, so that a
            // value hovering at the threshold does not flap.
            const bool back = (!has_above_ || value <= above_ - hysteresis_) &&
                              (!has_below_ || value >= below_ + hysteresis_);
            return back ? Change::Resolve : Change::None;
        }
        const bool high = has_above_ && value > above_;
        const bool low = has_below_ && value < below_;
        if (!high && !low) {
            pending_ = false;
            return Change::None;
        }
        if (!pending_) {
            pending_ = true;
            since_ms_ = sample.mono_ms;
        }
        if (sample.mono_ms - since_ms_ < min_duration_ms_) return Change::None;
        pending_ = false;
        fired_high_ = high;
        return Change::Fire;
    }

    void describe(Change change, std::string_view sensor, std::string& out) const override {
        Text text(out);
        text << sensor;
        if (change == Change::Fire) {
            text << (fired_high_ ? " above " : " below ") << (fired_high_ ? above_ : below_);
            text.forDuration(min_duration_ms_);
        } else if (has_above_ && has_below_) {
            text << " back within [" << below_ + hysteresis_ << ", " << above_ - hysteresis_ << "]";
        } else if (has_above_) {
            text << " back at or below " << above_ - hysteresis_;
        } else {
            text << " back at or above " << below_ + hysteresis_;
        }
    }

private:
    const bool has_above_;
    const bool has_below_;
    const double above_;
    const double below_;
    const double hysteresis_;
    const std::int64_t min_duration_ms_;
    bool pending_ = false;  // out of bounds since since_ms_, not yet for min_duration
    std::int64_t since_ms_ = 0;
    bool fired_high_ = false;  // which bound the open incident crossed, for the message
};

class RateOfChangeDetector final : public Detector {
public:
    explicit RateOfChangeDetector(const RuleConfig& config)
        : max_rate_(std::max(numberOr(config.max_rate, 0.0), 0.0)),
          min_duration_ms_(millisOr(config.min_duration, 0)) {}

    Change onSample(const Sample& sample, bool firing) override {
        if (!has_previous_) {
            has_previous_ = true;
            previous_value_ = sample.value;
            previous_mono_ms_ = sample.mono_ms;
            return Change::None;
        }
        const std::int64_t elapsed_ms = sample.mono_ms - previous_mono_ms_;
        const double change = sample.value - previous_value_;
        previous_value_ = sample.value;
        previous_mono_ms_ = sample.mono_ms;
        // Two samples in the same millisecond have no rate to speak of; the later one is kept
        // as the reference for the next.
        if (elapsed_ms <= 0) return Change::None;
        rate_ = std::abs(change) * 1000.0 / static_cast<double>(elapsed_ms);
        const bool fast = rate_ > max_rate_;
        if (firing) return fast ? Change::None : Change::Resolve;
        if (!fast) {
            pending_ = false;
            return Change::None;
        }
        if (!pending_) {
            pending_ = true;
            since_ms_ = sample.mono_ms;
        }
        if (sample.mono_ms - since_ms_ < min_duration_ms_) return Change::None;
        pending_ = false;
        return Change::Fire;
    }

    void describe(Change change, std::string_view sensor, std::string& out) const override {
        Text text(out);
        text << sensor;
        if (change == Change::Fire) {
            text << " changing faster than " << max_rate_ << "/s (" << rate_ << "/s)";
            text.forDuration(min_duration_ms_);
        } else {
            text << " rate of change back at or under " << max_rate_ << "/s";
        }
    }

private:
    const double max_rate_;
    const std::int64_t min_duration_ms_;
    bool has_previous_ = false;
    double previous_value_ = 0.0;
    std::int64_t previous_mono_ms_ = 0;
    double rate_ = 0.0;  // of the latest pair of samples
    bool pending_ = false;
    std::int64_t since_ms_ = 0;
};

class ZScoreDetector final : public Detector {
public:
    explicit ZScoreDetector(const RuleConfig& config)
        : stats_(static_cast<std::size_t>(
              std::clamp<std::int64_t>(config.window, 2, kMaxZScoreWindow))),
          k_(std::max(numberOr(config.k, kDefaultZScoreK), 1e-6)),
          min_samples_(static_cast<std::size_t>(std::clamp<std::int64_t>(
              config.min_samples == kUnsetCount ? config.window / 2 : config.min_samples, 2,
              static_cast<std::int64_t>(stats_.capacity())))) {}

    Change onSample(const Sample& sample, bool firing) override {
        Change change = Change::None;
        // The value is judged against the samples before it, then joins them: a lasting step
        // becomes the new normal and the incident resolves once the window has absorbed it.
        if (stats_.count() >= min_samples_) {
            mean_ = stats_.mean();
            stddev_ = stats_.stddev();
            judged_ = stats_.count();
            const double limit =
                std::max(k_ * stddev_, kConstantWindowEpsilon * std::max(std::abs(mean_), 1.0));
            const bool outlier = std::abs(sample.value - mean_) > limit;
            if (outlier != firing) {
                value_ = sample.value;
                change = outlier ? Change::Fire : Change::Resolve;
            }
        }
        stats_.push(sample.value);
        return change;
    }

    void describe(Change change, std::string_view sensor, std::string& out) const override {
        Text text(out);
        text << sensor;
        if (change == Change::Resolve) {
            text << " back within " << k_ << " standard deviations of the mean";
            return;
        }
        if (stddev_ == 0.0) {
            text << " " << value_ << " differs from the constant " << mean_;
        } else {
            text << " " << value_ << " is ";
            text.number(std::abs(value_ - mean_) / stddev_, 3);
            text << " standard deviations from the mean " << mean_;
        }
        text << " of the last " << static_cast<double>(judged_) << " samples";
    }

private:
    RollingStats stats_;
    const double k_;
    const std::size_t min_samples_;
    // The last judgement, for the message.
    double value_ = 0.0;
    double mean_ = 0.0;
    double stddev_ = 0.0;
    std::size_t judged_ = 0;
};

class FlatlineDetector final : public Detector {
public:
    explicit FlatlineDetector(const RuleConfig& config)
        : duration_ms_(millisOr(config.duration, 0)),
          tolerance_(std::max(numberOr(config.tolerance, kDefaultFlatlineTolerance), 0.0)) {}

    Change onSample(const Sample& sample, bool firing) override {
        // Compared with the value the flat stretch started at, not the previous sample, so a
        // slow drift counts as change once it adds up to more than the tolerance.
        if (!has_reference_ || std::abs(sample.value - reference_) > tolerance_) {
            has_reference_ = true;
            reference_ = sample.value;
            since_ms_ = sample.mono_ms;
            return firing ? Change::Resolve : Change::None;
        }
        if (!firing && sample.mono_ms - since_ms_ >= duration_ms_) return Change::Fire;
        return Change::None;
    }

    void describe(Change change, std::string_view sensor, std::string& out) const override {
        Text text(out);
        text << sensor;
        if (change == Change::Resolve) {
            text << " changing again";
            return;
        }
        text << " flat at " << reference_;
        if (tolerance_ > 0) text << " (within " << tolerance_ << ")";
        text << " for " << durationText(duration_ms_);
    }

private:
    const std::int64_t duration_ms_;
    const double tolerance_;
    bool has_reference_ = false;
    double reference_ = 0.0;
    std::int64_t since_ms_ = 0;
};

class MissingDetector final : public Detector {
public:
    explicit MissingDetector(const RuleConfig& config) : timeout_ms_(millisOr(config.timeout, 0)) {}

    Change onSample(const Sample& sample, bool firing) override {
        watching_ = true;
        last_ms_ = sample.mono_ms;
        return firing ? Change::Resolve : Change::None;
    }

    Change onTick(const Tick& now, bool firing) override {
        if (!watching_) {
            // A sensor that never reports must alert too, so the clock starts at the first tick
            // after the rule was installed, if no sample came first.
            watching_ = true;
            last_ms_ = now.mono_ms;
            return Change::None;
        }
        if (!firing && now.mono_ms - last_ms_ >= timeout_ms_) return Change::Fire;
        return Change::None;
    }

    bool needsTicks() const override { return true; }

    void describe(Change change, std::string_view sensor, std::string& out) const override {
        Text text(out);
        if (change == Change::Resolve) {
            text << sensor << " reporting again";
        } else {
            text << "no data from " << sensor << " for " << durationText(timeout_ms_);
        }
    }

private:
    const std::int64_t timeout_ms_;
    bool watching_ = false;
    std::int64_t last_ms_ = 0;  // mono time of the last sample (or of the first tick)
};

}  // namespace

std::unique_ptr<Detector> makeDetector(const RuleConfig& config) {
    const std::optional<RuleType> type = parseRuleType(config.type);
    if (!type) return nullptr;
    switch (*type) {
        case RuleType::Threshold:
            return std::make_unique<ThresholdDetector>(config);
        case RuleType::RateOfChange:
            return std::make_unique<RateOfChangeDetector>(config);
        case RuleType::ZScore:
            return std::make_unique<ZScoreDetector>(config);
        case RuleType::Flatline:
            return std::make_unique<FlatlineDetector>(config);
        case RuleType::Missing:
            return std::make_unique<MissingDetector>(config);
    }
    return nullptr;
}

}  // namespace tern::edge::rules
