// The uplink's pure parts: backoff with full jitter, the backlog rate limiter, its config checks
// and reading a certificate's CN. The MQTT behaviour is tested against a real broker in
// tests/integration/mqtt/edge_agent_test.cpp.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "tern/edge/config.h"
#include "tern/edge/uplink/uplink.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;

TEST(BackoffTest, StaysWithinTheDoublingCeilingAndSpreadsOverIt) {
    std::mt19937_64 rng(42);
    for (unsigned attempt = 0; attempt < 12; ++attempt) {
        const auto ceiling = std::min<std::int64_t>(60'000, 500 * (std::int64_t{1} << attempt));
        std::int64_t lowest = ceiling;
        std::int64_t highest = 0;
        for (int i = 0; i < 2000; ++i) {
            const auto delay = backoffDelay(attempt, 500ms, 60s, rng).count();
            ASSERT_GE(delay, 0);
            ASSERT_LE(delay, ceiling) << "attempt " << attempt;
            lowest = std::min(lowest, delay);
            highest = std::max(highest, delay);
        }
        // Full jitter: the whole range is used, not just its top.
        EXPECT_LT(lowest, ceiling / 10 + 1) << "attempt " << attempt;
        EXPECT_GT(highest, ceiling * 9 / 10) << "attempt " << attempt;
    }
    // Huge attempt counts neither overflow nor exceed the cap.
    EXPECT_LE(backoffDelay(1000, 1s, 2min, rng), 2min);
}

TEST(RateLimiterTest, HoldsTheRateAfterAOneSecondBurst) {
    RateLimiter limiter(1000);  // bytes per second
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    EXPECT_EQ(limiter.tryTake(600, t0), 0ms);
    EXPECT_EQ(limiter.tryTake(400, t0), 0ms);
    // The burst is spent: 500 bytes need half a second.
    const auto wait = limiter.tryTake(500, t0);
    EXPECT_GE(wait, 499ms);
    EXPECT_LE(wait, 502ms);
    EXPECT_EQ(limiter.tryTake(500, t0 + 500ms), 0ms);
    // Over 10 s, about 10 kB pass, whatever the message size.
    std::uint64_t passed = 0;
    for (auto t = t0 + 500ms; t < t0 + 10500ms; t += 10ms) {
        if (limiter.tryTake(300, t) == 0ms) passed += 300;
    }
    EXPECT_GE(passed, 9'400u);
    EXPECT_LE(passed, 10'600u);
}

TEST(RateLimiterTest, AMessageLargerThanTheBurstGoesWhenTheBucketIsFullAndLeavesDebt) {
    RateLimiter limiter(1000);
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    EXPECT_EQ(limiter.tryTake(5000, t0), 0ms);
    // 4 s of debt plus a full second for the next big one.
    const auto wait = limiter.tryTake(5000, t0 + 1ms);
    EXPECT_GE(wait, 4900ms);
    EXPECT_EQ(limiter.tryTake(5000, t0 + 5001ms), 0ms);
}

TEST(RateLimiterTest, ZeroMeansUnlimited) {
    RateLimiter limiter(0);
    EXPECT_TRUE(limiter.unlimited());
    for (int i = 0; i < 100; ++i) EXPECT_EQ(limiter.tryTake(1 << 20, {}), 0ms);
}

TEST(UplinkConfigTest, RejectsUnsafeIdsPlainMqttAndBadPrefixes) {
    UplinkConfig config;
    config.gateway_id = "gw/1";
    config.broker = "tcp://broker:1883";
    config.topic_prefix = "tern/+";
    config.reconnect_min = 10s;
    config.reconnect_max = 1s;
    const auto errors = validateUplinkConfig(config, "edge.toml");
    std::set<std::string> keys;
    for (const auto& e : errors) keys.insert(e.key);
    EXPECT_EQ(keys, (std::set<std::string>{"uplink.gateway_id", "uplink.broker",
                                           "uplink.topic_prefix", "uplink.reconnect_max"}));
    config.gateway_id = "gw-1";
    config.broker = "ssl://broker:8883";
    config.topic_prefix = "tern/v1";
    config.reconnect_max = 1min;
    EXPECT_TRUE(validateUplinkConfig(config, "edge.toml").empty());
}

TEST(UplinkConfigTest, GatewayIdIsRequired) {
    auto loaded = shared::loadConfigString("[uplink]\nbroker = \"ssl://b:8883\"\n", "edge.toml",
                                           configSchema());
    ASSERT_FALSE(loaded);
    EXPECT_NE(shared::formatConfigErrors(loaded.error()).find("uplink.gateway_id"),
              std::string::npos);
}

TEST(ListenAddressTest, ParsesIpv4AndPortOnly) {
    EXPECT_EQ(parseListenAddress("127.0.0.1:9464"),
              (std::pair<std::string, std::uint16_t>{"127.0.0.1", 9464}));
    EXPECT_EQ(parseListenAddress("0.0.0.0:0"),
              (std::pair<std::string, std::uint16_t>{"0.0.0.0", 0}));
    EXPECT_FALSE(parseListenAddress("localhost:9464"));
    EXPECT_FALSE(parseListenAddress("127.0.0.1"));
    EXPECT_FALSE(parseListenAddress("127.0.0.1:65536"));
    EXPECT_FALSE(parseListenAddress("127.0.0.1:-1"));
    EXPECT_FALSE(parseListenAddress(":9464"));
}

TEST(CertificateTest, ReadsTheCommonNameAndExplainsFailures) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("tern-cert-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto key = dir / "gw.key";
    const auto cert = dir / "gw.pem";
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes -days 1 -subj /O=Tern/CN=gw-0042 -keyout " +
        key.string() + " -out " + cert.string() + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0);
    auto cn = certificateCommonName(cert.string());
    ASSERT_TRUE(cn) << cn.error().message();
    EXPECT_EQ(cn.value(), "gw-0042");
    EXPECT_EQ(certificateCommonName(key.string()).error().code, "certificate_invalid");
    EXPECT_EQ(certificateCommonName((dir / "none.pem").string()).error().code,
              "certificate_unreadable");
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tern::edge
