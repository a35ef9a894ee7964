#include "tern/shared/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace tern::shared {
namespace {

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

class LoggingTest : public testing::Test {
protected:
    std::shared_ptr<spdlog::logger> logger(const std::string& level, const std::string& format) {
        auto made = makeLogger(LogConfig{level, format}, "edge-agent",
                               std::make_shared<spdlog::sinks::ostream_sink_st>(out_));
        EXPECT_TRUE(made) << made.error().message();
        return made ? made.value() : nullptr;
    }

    std::ostringstream out_;
};

TEST_F(LoggingTest, TextLineHasTimeLevelProgramAndMessage) {
    logger("info", "text")->info("connected to {}", "broker:8883");
    const std::regex line(
        R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info edge-agent: connected to broker:8883\n)");
    EXPECT_TRUE(std::regex_match(out_.str(), line)) << out_.str();
}

TEST_F(LoggingTest, LevelFiltersLessSevereEvents) {
    auto log = logger("warn", "text");
    log->trace("t");
    log->debug("d");
    log->info("i");
    log->warn("w");
    log->error("e");
    log->critical("c");
    const auto written = lines(out_.str());
    ASSERT_EQ(written.size(), 3u) << out_.str();
    EXPECT_NE(written[0].find(" warn edge-agent: w"), std::string::npos);
    EXPECT_NE(written[1].find(" error edge-agent: e"), std::string::npos);
    EXPECT_NE(written[2].find(" critical edge-agent: c"), std::string::npos);
}

TEST_F(LoggingTest, OffWritesNothing) {
    auto log = logger("off", "json");
    log->critical("c");
    EXPECT_EQ(out_.str(), "");
}

TEST_F(LoggingTest, TextKeepsOneLinePerEvent) {
    logger("info", "text")->info("first\nsecond\r\x01");
    const auto written = lines(out_.str());
    ASSERT_EQ(written.size(), 1u);
    EXPECT_NE(written[0].find("edge-agent: first\\nsecond\\r\\u0001"), std::string::npos)
        << written[0];
}

TEST_F(LoggingTest, JsonLineEscapesTheMessage) {
    auto log = logger("debug", "json");
    log->debug("say \"hi\"\\\n\t\x02 caf\xc3\xa9 \xff");
    log->trace("filtered");
    const auto written = lines(out_.str());
    ASSERT_EQ(written.size(), 1u) << out_.str();
    const std::regex line(R"re(\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"debug",)re"
                          R"re("program":"edge-agent","msg":"(.*)"\})re");
    std::smatch match;
    ASSERT_TRUE(std::regex_match(written[0], match, line)) << written[0];
    // Valid UTF-8 passes through; a stray byte becomes U+FFFD so the line stays valid JSON.
    EXPECT_EQ(match[1].str(), "say \\\"hi\\\"\\\\\\n\\t\\u0002 caf\xc3\xa9 \\ufffd");
}

TEST_F(LoggingTest, RejectsUnknownLevelOrFormat) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out_);
    auto bad_level = makeLogger(LogConfig{"verbose", "text"}, "edge-agent", sink);
    ASSERT_FALSE(bad_level);
    EXPECT_EQ(bad_level.error().code, "invalid_log_config");
    EXPECT_EQ(bad_level.error().action, ErrorAction::Stop);
    EXPECT_FALSE(makeLogger(LogConfig{"info", "xml"}, "edge-agent", sink));
    EXPECT_FALSE(makeLogger(LogConfig{}, "edge-agent", nullptr));
}

TEST_F(LoggingTest, InitLoggingSetsTheDefaultLogger) {
    const auto previous = spdlog::default_logger();
    ASSERT_TRUE(initLogging(LogConfig{"info", "json"}, "ingest",
                            std::make_shared<spdlog::sinks::ostream_sink_st>(out_)));
    spdlog::debug("hidden");
    spdlog::info("shown");
    spdlog::set_default_logger(previous);
    const auto written = lines(out_.str());
    ASSERT_EQ(written.size(), 1u) << out_.str();
    EXPECT_NE(written[0].find(R"("level":"info","program":"ingest","msg":"shown")"),
              std::string::npos)
        << written[0];
}

struct WithLog {
    LogConfig log;
};

TEST(LogTableTest, LoadsTheLogTableAndRejectsUnknownLevels) {
    const auto schema = ConfigTable<WithLog>("", "").table(&WithLog::log, logTable());
    auto defaults = loadConfigString("", "edge.toml", schema);
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults.value().log.level, "info");
    EXPECT_EQ(defaults.value().log.format, "text");

    auto loaded =
        loadConfigString("[log]\nlevel = \"debug\"\nformat = \"json\"\n", "edge.toml", schema);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded.value().log.level, "debug");
    EXPECT_EQ(loaded.value().log.format, "json");

    auto bad = loadConfigString("[log]\nlevel = \"verbose\"\n", "edge.toml", schema);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().at(0).format(),
              "edge.toml:2:9: log.level: \"verbose\" is not one of \"trace\", \"debug\", \"info\", "
              "\"warn\", \"error\", \"critical\", \"off\"");
}

}  // namespace
}  // namespace tern::shared
