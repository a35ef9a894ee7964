#include "tern/edge/rules/rolling_stats.h"

#include <algorithm>
#include <cmath>

namespace tern::edge {

RollingStats::RollingStats(std::size_t capacity) : values_(std::max<std::size_t>(capacity, 1)) {}

void RollingStats::push(double value) {
    if (count_ == 0) {
        // The first value is as good a reference as any until the first recompute.
        reference_ = value;
        sum_ = 0.0;
        sum_squares_ = 0.0;
    }
    if (count_ == values_.size()) {
        const double old = values_[next_] - reference_;
        sum_ -= old;
        sum_squares_ -= old * old;
    } else {
        ++count_;
    }
    values_[next_] = value;
    next_ = next_ + 1 == values_.size() ? 0 : next_ + 1;
    const double d = value - reference_;
    sum_ += d;
    sum_squares_ += d * d;
    if (++pushes_since_recompute_ >= values_.size()) recompute();
}

double RollingStats::mean() const {
    if (count_ == 0) return 0.0;
    return reference_ + sum_ / static_cast<double>(count_);
}

double RollingStats::variance() const {
    if (count_ < 2) return 0.0;
    const double n = static_cast<double>(count_);
    const double centred = sum_squares_ - sum_ * sum_ / n;
    // Rounding can leave a constant window a hair below zero.
    return std::max(centred, 0.0) / (n - 1.0);
}

double RollingStats::stddev() const { return std::sqrt(variance()); }

void RollingStats::recompute() {
    pushes_since_recompute_ = 0;
    // Until the buffer is full the values fill slots [0, count_); after, every slot. Order does
    // not matter for sums.
    double total = 0.0;
    for (std::size_t i = 0; i < count_; ++i) total += values_[i];
    reference_ = total / static_cast<double>(count_);
    // Two-pass: deviations from the exact mean, so sum_ is ~0 and sum_squares_ exact to rounding.
    sum_ = 0.0;
    sum_squares_ = 0.0;
    for (std::size_t i = 0; i < count_; ++i) {
        const double d = values_[i] - reference_;
        sum_ += d;
        sum_squares_ += d * d;
    }
}

}  // namespace tern::edge
