#include "tern/edge/sources/line_protocol_source.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "source_test_support.h"
#include "tern/shared/config.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using testing::CollectingSink;
using testing::errorCount;
using testing::TempDir;

constexpr std::int64_t kNowMs = 1'700'000'000'000;

LineSensor series(std::uint16_t index, std::string measurement, std::string field,
                  std::map<std::string, std::string> tags = {}) {
    return LineSensor{index, {std::move(measurement), std::move(field), std::move(tags)}, 1s};
}

class LineProtocolSourceTest : public ::testing::Test {
protected:
    LineProtocolSource make(std::vector<LineSensor> sensors, LineProtocolConfig config = {}) {
        return LineProtocolSource(std::move(config), std::move(sensors), clock, metrics);
    }
    std::uint64_t errors(std::string_view reason) { return errorCount(metrics, "line", reason); }

    shared::ManualClock clock{shared::fromUnixMillis(kNowMs)};
    shared::MetricsRegistry metrics;
};

TEST_F(LineProtocolSourceTest, RoutesFieldsByMeasurementFieldAndTags) {
    auto source =
        make({series(0, "env", "temp", {{"room", "a"}}), series(1, "env", "temp", {{"room", "b"}}),
              series(2, "env", "hum"), series(3, "power", "watts")});
    clock.advance(250ms);
    CollectingSink sink;
    source.handleDatagram(
        "env,room=a,floor=1 temp=21.5,hum=40i\n"
        "env,room=b temp=19,hum=55u\n"
        "env,room=c temp=30\n"
        "power watts=true\n",
        sink);
    ASSERT_EQ(sink.forSensor(0).size(), 1u);
    EXPECT_EQ(sink.forSensor(0)[0].value, 21.5);
    EXPECT_EQ(sink.forSensor(0)[0].time_ms, kNowMs + 250);
    EXPECT_EQ(sink.forSensor(0)[0].mono_ms, 250);
    EXPECT_EQ(sink.forSensor(0)[0].quality, shared::Quality::Good);
    ASSERT_EQ(sink.forSensor(1).size(), 1u);
    EXPECT_EQ(sink.forSensor(1)[0].value, 19.0);
    // hum has no tags to match, so both lines' hum fields are its.
    ASSERT_EQ(sink.forSensor(2).size(), 2u);
    EXPECT_EQ(sink.forSensor(2)[0].value, 40.0);
    EXPECT_EQ(sink.forSensor(2)[1].value, 55.0);
    ASSERT_EQ(sink.forSensor(3).size(), 1u);
    EXPECT_EQ(sink.forSensor(3)[0].value, 1.0);
    // room=c matches no sensor.
    EXPECT_EQ(errors("unknown_series"), 1u);
    EXPECT_EQ(testing::sampleCount(metrics, "line"), 5u);
}

TEST_F(LineProtocolSourceTest, UsesThePlausibleLineTimestamp) {
    auto source = make({series(0, "m", "v")});
    CollectingSink sink;
    source.handleDatagram(
        // 10 s before now, in ns: used, truncated to ms.
        "m v=1 1699999990123456789\n"
        // In seconds instead of ns: 1970, not believed.
        "m v=2 1700000000\n"
        // An hour ahead of this clock: not believed.
        "m v=3 1700003600000000000\n"
        // Four minutes ahead: believed.
        "m v=4 1700000240000000000\n",
        sink);
    ASSERT_EQ(sink.samples.size(), 4u);
    EXPECT_EQ(sink.samples[0].time_ms, 1'699'999'990'123);
    EXPECT_EQ(sink.samples[0].quality, shared::Quality::Good);
    EXPECT_EQ(sink.samples[1].time_ms, kNowMs);
    EXPECT_EQ(sink.samples[1].quality, shared::Quality::TimeUncertain);
    EXPECT_EQ(sink.samples[2].time_ms, kNowMs);
    EXPECT_EQ(sink.samples[2].quality, shared::Quality::TimeUncertain);
    EXPECT_EQ(sink.samples[3].time_ms, 1'700'000'240'000);
    EXPECT_EQ(sink.samples[3].quality, shared::Quality::Good);
    for (const auto& sample : sink.samples) EXPECT_EQ(sample.mono_ms, 0);
}

TEST_F(LineProtocolSourceTest, CountsEveryLostLineAndFieldByReason) {
    auto source = make({series(0, "env", "temp"), series(1, "env", "status")});
    CollectingSink sink;
    source.handleDatagram(
        "env temp=1,status=\"ok\",other=5\n"  // status is a string, other is nobody's
        "env temp=x\n"
        "env\n"
        "env temp=\"open\n"
        "env\\\n"
        "env temp=1 12ab\n"
        "env,a temp=1\n"
        "nobody v=1\n"
        "env temp=2\n",
        sink);
    ASSERT_EQ(sink.samples.size(), 2u);
    EXPECT_EQ(sink.samples[0].value, 1.0);
    EXPECT_EQ(sink.samples[1].value, 2.0);
    EXPECT_EQ(errors("unsupported"), 1u);
    EXPECT_EQ(errors("unknown_series"), 2u);
    EXPECT_EQ(errors("bad_number"), 1u);
    EXPECT_EQ(errors("no_fields"), 1u);
    EXPECT_EQ(errors("unterminated_string"), 1u);
    EXPECT_EQ(errors("bad_escape"), 1u);
    EXPECT_EQ(errors("bad_timestamp"), 1u);
    EXPECT_EQ(errors("bad_syntax"), 1u);
}

TEST_F(LineProtocolSourceTest, DropsAnOversizedDatagramWhole) {
    LineProtocolConfig config;
    config.max_datagram_bytes = 64;
    auto source = make({series(0, "m", "v")}, config);
    CollectingSink sink;
    std::string big;
    while (big.size() <= 64) big += "m v=1\n";
    source.handleDatagram(big, sink);
    EXPECT_TRUE(sink.samples.empty());
    EXPECT_EQ(errors("too_long"), 1u);
    source.handleDatagram(big.substr(0, 60), sink);
    EXPECT_EQ(sink.samples.size(), 10u);
}

TEST_F(LineProtocolSourceTest, ReceivesDatagramsOverUdpOnLoopback) {
    LineProtocolConfig config;
    config.udp_port = LineProtocolSource::kAnyFreeUdpPort;
    config.max_datagram_bytes = 256;
    auto source = make({series(0, "env", "temp"), series(1, "env", "hum")}, config);
    boost::asio::io_context io;
    CollectingSink sink;
    source.start(io, sink);
    const std::uint16_t port = source.boundUdpPort();
    ASSERT_NE(port, 0);

    namespace ip = boost::asio::ip;
    ip::udp::socket sender(io, ip::udp::endpoint(ip::address_v4::loopback(), 0));
    const ip::udp::endpoint to(ip::address_v4::loopback(), port);
    sender.send_to(boost::asio::buffer(std::string("env temp=21.5,hum=40\nenv temp=oops\n")), to);
    sender.send_to(boost::asio::buffer(std::string(300, 'x')), to);  // too long
    sender.send_to(boost::asio::buffer(std::string("env temp=22")), to);
    ASSERT_TRUE(testing::runUntil(io, [&] { return sink.samples.size() >= 3; }))
        << sink.samples.size();
    EXPECT_EQ(sink.forSensor(0).size(), 2u);
    EXPECT_EQ(sink.forSensor(1).size(), 1u);
    EXPECT_EQ(sink.samples.back().value, 22.0);
    EXPECT_EQ(errors("bad_number"), 1u);
    EXPECT_EQ(errors("too_long"), 1u);
    for (const auto& id : sink.threads) EXPECT_EQ(id, std::this_thread::get_id());

    source.stop();
    EXPECT_EQ(source.boundUdpPort(), 0);
    // Nothing is left listening: the loop runs out of work at once.
    io.restart();
    const auto begin = std::chrono::steady_clock::now();
    io.run_for(5s);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 4s);
}

TEST_F(LineProtocolSourceTest, ReceivesOverAUnixSocketReplacingAStaleOne) {
    TempDir dir;
    const std::string path = (dir.path() / "line.sock").string();
    {
        // A socket file left behind by a process that is gone.
        boost::asio::io_context other;
        boost::asio::local::datagram_protocol::socket stale(
            other, boost::asio::local::datagram_protocol::endpoint(path));
    }
    ASSERT_TRUE(std::filesystem::is_socket(path));

    LineProtocolConfig config;
    config.unix_socket = path;
    auto source = make({series(0, "env", "temp")}, config);
    boost::asio::io_context io;
    CollectingSink sink;
    source.start(io, sink);
    EXPECT_EQ(errors("bind_failed"), 0u);
    EXPECT_EQ(source.boundUdpPort(), 0);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);

    boost::asio::local::datagram_protocol::socket sender(io);
    sender.open();
    sender.send_to(boost::asio::buffer(std::string("env temp=5\nenv temp=6")),
                   boost::asio::local::datagram_protocol::endpoint(path));
    ASSERT_TRUE(testing::runUntil(io, [&] { return sink.samples.size() >= 2; }));
    EXPECT_EQ(sink.samples[0].value, 5.0);
    EXPECT_EQ(sink.samples[1].value, 6.0);

    source.stop();
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(LineProtocolSourceTest, NeverRemovesAFileThatIsNotASocketOrASocketInUse) {
    TempDir dir;
    const std::string file = (dir.path() / "not-a-socket").string();
    dir.write("not-a-socket", "keep me");
    const std::string live = (dir.path() / "live.sock").string();
    boost::asio::io_context io;
    boost::asio::local::datagram_protocol::socket owner(
        io, boost::asio::local::datagram_protocol::endpoint(live));

    CollectingSink sink;
    LineProtocolConfig config;
    config.unix_socket = file;
    auto on_file = make({series(0, "m", "v")}, config);
    on_file.start(io, sink);
    config.unix_socket = live;
    auto on_live = make({series(0, "m", "v")}, config);
    on_live.start(io, sink);

    EXPECT_EQ(errors("bind_failed"), 2u);
    std::ifstream in(file);
    std::string content;
    std::getline(in, content);
    EXPECT_EQ(content, "keep me");
    EXPECT_TRUE(std::filesystem::is_socket(live));
    on_file.stop();
    on_live.stop();
    // Not bound, so not removed at stop either.
    EXPECT_TRUE(std::filesystem::exists(file));
    EXPECT_TRUE(std::filesystem::is_socket(live));
}

TEST_F(LineProtocolSourceTest, ValidateWantsAListenerAndNames) {
    LineProtocolConfig config;
    config.udp_port = 8094;
    EXPECT_TRUE(LineProtocolSource::validate(config, {series(0, "m", "v")}));
    EXPECT_TRUE(LineProtocolSource::validate(LineProtocolConfig{}, {}));

    const auto no_listener =
        LineProtocolSource::validate(LineProtocolConfig{}, {series(0, "m", "v")});
    ASSERT_FALSE(no_listener);
    EXPECT_NE(no_listener.error().detail.find("neither udp_port nor unix_socket"),
              std::string::npos);

    config.unix_socket = "/tmp/" + std::string(200, 'x');
    const auto bad = LineProtocolSource::validate(config, {series(3, "", "v")});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().detail.find("unix_socket"), std::string::npos) << bad.error().detail;
    EXPECT_NE(bad.error().detail.find("sensor 3"), std::string::npos) << bad.error().detail;
}

struct TestSensor {
    std::string name;
    LineSensorConfig line;
};
struct TestConfig {
    LineProtocolConfig line_protocol;
    std::vector<TestSensor> sensors;
};
shared::ConfigTable<TestConfig> testSchema() {
    return shared::ConfigTable<TestConfig>("", "")
        .table(&TestConfig::line_protocol, lineProtocolTable())
        .tables(&TestConfig::sensors, shared::ConfigTable<TestSensor>("sensor", "")
                                          .string("name", &TestSensor::name, "", "")
                                          .table(&TestSensor::line, lineSensorTable()));
}

TEST(LineProtocolConfigTest, TablesReadTheDocumentedKeys) {
    auto result = shared::loadConfigString(R"(
[line_protocol]
udp_port = 8094
unix_socket = "/run/tern/line.sock"
[[sensor]]
name = "room_a_temp"
[sensor.line]
measurement = "env"
field = "temp"
tags = { room = "a", floor = "2" }
)",
                                           "edge.toml", testSchema());
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const auto& config = result.value();
    EXPECT_EQ(config.line_protocol.udp_port, 8094);
    EXPECT_EQ(config.line_protocol.unix_socket, "/run/tern/line.sock");
    EXPECT_EQ(config.line_protocol.max_datagram_bytes, 8192);
    ASSERT_EQ(config.sensors.size(), 1u);
    EXPECT_EQ(config.sensors[0].line.measurement, "env");
    EXPECT_EQ(config.sensors[0].line.field, "temp");
    EXPECT_EQ(config.sensors[0].line.tags,
              (std::map<std::string, std::string>{{"floor", "2"}, {"room", "a"}}));

    // A sensor of another source has no [sensor.line]; that must load.
    auto absent = shared::loadConfigString("[[sensor]]\nname = \"x\"\n", "edge.toml", testSchema());
    ASSERT_TRUE(absent) << shared::formatConfigErrors(absent.error());
    LineProtocolConfig listening;
    listening.udp_port = 8094;
    const auto checked =
        LineProtocolSource::validate(listening, {{0, absent.value().sensors[0].line, 1s}});
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error().detail, "sensor 0: measurement and field are required");

    // The "any free port" value is for code, not for operators.
    auto negative =
        shared::loadConfigString("[line_protocol]\nudp_port = -1\n", "edge.toml", testSchema());
    ASSERT_FALSE(negative);
    EXPECT_EQ(negative.error().at(0).key, "line_protocol.udp_port");
}

}  // namespace
}  // namespace tern::edge
