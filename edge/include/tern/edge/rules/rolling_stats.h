#pragma once

// Mean and standard deviation of the last N values, O(1) per value, for the z-score rule.
//
// Numerical stability: a gateway may watch a value around 1e6 that moves by 0.01, where the
// textbook running sums (Σx, Σx²) lose every significant digit of the variance to cancellation.
// So the sums are of deviations from a reference close to the mean, (x − r) and (x − r)², and
// every `capacity` values they are recomputed exactly from the buffer with r moved to the current
// mean. Rounding can therefore build up over at most one window's worth of adds and removes,
// and the recompute costs O(N) once per N values: O(1) amortised, no allocation after
// construction.

#include <cstddef>
#include <vector>

namespace tern::edge {

class RollingStats {
public:
    // capacity >= 1; the buffer is allocated here and never again.
    explicit RollingStats(std::size_t capacity);

    // Adds value, dropping the oldest one once the window is full.
    void push(double value);

    std::size_t capacity() const { return values_.size(); }
    std::size_t count() const { return count_; }
    // 0 when empty.
    double mean() const;
    // Sample variance (divides by count − 1); 0 with fewer than two values, never negative.
    double variance() const;
    double stddev() const;

private:
    void recompute();

    std::vector<double> values_;  // ring buffer; next_ is where the next value goes
    std::size_t next_ = 0;
    std::size_t count_ = 0;
    std::size_t pushes_since_recompute_ = 0;
    double reference_ = 0.0;
    double sum_ = 0.0;          // Σ (x − reference_)
    double sum_squares_ = 0.0;  // Σ (x − reference_)²
};

}  // namespace tern::edge
