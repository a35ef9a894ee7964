#pragma once

// Helpers shared by the source tests: a sink that keeps what it gets, a temporary directory, and
// running an io_context until something has happened, with a deadline instead of a sleep.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tern/edge/source.h"
#include "tern/edge/sources/source_metrics.h"
#include "tern/shared/metrics.h"

namespace tern::edge::testing {

class CollectingSink final : public SampleSink {
public:
    void onSample(const Sample& sample) override {
        samples.push_back(sample);
        threads.push_back(std::this_thread::get_id());
    }
    std::vector<Sample> forSensor(std::uint16_t sensor) const {
        std::vector<Sample> out;
        for (const auto& s : samples) {
            if (s.sensor == sensor) out.push_back(s);
        }
        return out;
    }
    std::vector<Sample> samples;
    std::vector<std::thread::id> threads;
};

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern =
            (std::filesystem::path(::testing::TempDir()) / "tern-src-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes text to path()/relative, creating the directories on the way.
    void write(const std::string& relative, std::string_view text) const {
        const auto file = path_ / relative;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream out(file, std::ios::trunc);
        out << text;
    }

private:
    std::filesystem::path path_;
};

// Runs io in short slices until done() or the deadline; returns done().
template <class Done>
bool runUntil(boost::asio::io_context& io, Done done,
              std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        io.restart();
        io.run_for(std::chrono::milliseconds(5));
    }
    return true;
}

// Waits, without an io_context, until done() or the deadline; for state other threads change.
template <class Done>
bool waitUntil(Done done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a poll step, not a wait
    }
    return true;
}

inline std::uint64_t errorCount(shared::MetricsRegistry& metrics, std::string_view source,
                                std::string_view reason) {
    return sourceErrorsCounter(metrics, source, reason).value();
}
inline std::uint64_t sampleCount(shared::MetricsRegistry& metrics, std::string_view source) {
    return sourceSamplesCounter(metrics, source).value();
}

}  // namespace tern::edge::testing
