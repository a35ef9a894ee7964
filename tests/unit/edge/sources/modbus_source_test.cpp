#include "tern/edge/sources/modbus_source.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "source_test_support.h"
#include "tern/shared/config.h"

namespace tern::edge {
namespace {

using namespace std::chrono_literals;
using testing::CollectingSink;
using testing::errorCount;

// A Modbus TCP server made with libmodbus itself, on 127.0.0.1, serving 100 holding and 100 input
// registers to any number of clients from one thread.
class ModbusTestServer {
public:
    // port 0: any free port.
    explicit ModbusTestServer(int port = 0) {
        ctx_ = modbus_new_tcp("127.0.0.1", port);
        mapping_ = modbus_mapping_new(0, 0, 100, 100);
        if (ctx_ == nullptr || mapping_ == nullptr) {
            ADD_FAILURE() << "cannot create the server";
            return;
        }
        listen_fd_ = modbus_tcp_listen(ctx_, 8);
        if (listen_fd_ < 0) {
            ADD_FAILURE() << "cannot listen on port " << port << ": " << modbus_strerror(errno);
            return;
        }
        sockaddr_in address{};
        socklen_t length = sizeof address;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        if (::pipe2(wake_, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2";
        thread_ = std::thread([this] { serve(); });
    }
    ~ModbusTestServer() {
        if (thread_.joinable()) {
            const char byte = 0;
            [[maybe_unused]] const auto written = ::write(wake_[1], &byte, 1);
            thread_.join();
        }
        for (const int fd : {wake_[0], wake_[1], listen_fd_}) {
            if (fd >= 0) ::close(fd);
        }
        if (mapping_ != nullptr) modbus_mapping_free(mapping_);
        if (ctx_ != nullptr) modbus_free(ctx_);
    }
    ModbusTestServer(const ModbusTestServer&) = delete;
    ModbusTestServer& operator=(const ModbusTestServer&) = delete;

    int port() const { return port_; }

    void setHolding(int address, std::vector<std::uint16_t> values) {
        std::lock_guard lock(mutex_);
        std::copy(values.begin(), values.end(), mapping_->tab_registers + address);
    }
    void setInput(int address, std::vector<std::uint16_t> values) {
        std::lock_guard lock(mutex_);
        std::copy(values.begin(), values.end(), mapping_->tab_input_registers + address);
    }

private:
    void serve() {
        std::vector<int> clients;
        std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
        while (true) {
            std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
            for (const int fd : clients) fds.push_back({fd, POLLIN, 0});
            if (::poll(fds.data(), fds.size(), -1) < 0) {
                if (errno == EINTR) continue;
                break;
            }
            if (fds[0].revents != 0) break;
            if (fds[1].revents & POLLIN) {
                const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) clients.push_back(fd);
            }
            for (std::size_t i = 2; i < fds.size(); ++i) {
                if (fds[i].revents == 0) continue;
                modbus_set_socket(ctx_, fds[i].fd);
                const int length = modbus_receive(ctx_, query);
                if (length > 0) {
                    std::lock_guard lock(mutex_);
                    modbus_reply(ctx_, query, length, mapping_);
                } else if (length < 0) {
                    ::close(fds[i].fd);
                    clients.erase(std::find(clients.begin(), clients.end(), fds[i].fd));
                }
            }
        }
        for (const int fd : clients) ::close(fd);
    }

    modbus_t* ctx_ = nullptr;
    modbus_mapping_t* mapping_ = nullptr;
    int listen_fd_ = -1;
    int port_ = 0;
    int wake_[2] = {-1, -1};
    std::mutex mutex_;
    std::thread thread_;
};

// A port nothing listens on (for the moment): bound, read and released.
int unusedPort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

std::vector<std::uint16_t> bigEndianWords(std::uint32_t bits) {
    return {static_cast<std::uint16_t>(bits >> 16), static_cast<std::uint16_t>(bits & 0xFFFF)};
}
std::vector<std::uint16_t> littleEndianWords(std::uint32_t bits) {
    return {static_cast<std::uint16_t>(bits & 0xFFFF), static_cast<std::uint16_t>(bits >> 16)};
}

ModbusDeviceConfig device(std::string name, int port) {
    ModbusDeviceConfig config;
    config.name = std::move(name);
    config.host = "127.0.0.1";
    config.port = port;
    config.unit_id = 1;
    config.timeout = 500ms;
    config.reconnect_min = 20ms;
    config.reconnect_max = 50ms;
    return config;
}

ModbusSensor reg(std::uint16_t index, std::string device_name, int address, std::string type,
                 std::string word_order = "big", std::string table = "holding", double scale = 1.0,
                 double offset = 0.0) {
    ModbusSensor sensor;
    sensor.sensor = index;
    sensor.config.device = std::move(device_name);
    sensor.config.address = address;
    sensor.config.table = std::move(table);
    sensor.config.type = std::move(type);
    sensor.config.word_order = std::move(word_order);
    sensor.config.scale = scale;
    sensor.config.offset = offset;
    sensor.interval = 20ms;
    return sensor;
}

class ModbusSourceTest : public ::testing::Test {
protected:
    std::uint64_t errors(std::string_view reason) { return errorCount(metrics, "modbus", reason); }
    double only(const CollectingSink& sink, std::uint16_t sensor) {
        const auto samples = sink.forSensor(sensor);
        EXPECT_EQ(samples.size(), 1u) << "sensor " << sensor;
        return samples.empty() ? -12345.0 : samples.front().value;
    }

    shared::ManualClock clock{shared::fromUnixMillis(1'700'000'000'000)};
    shared::MetricsRegistry metrics;
};

TEST_F(ModbusSourceTest, DecodesEveryTypeFromARealServer) {
    ModbusTestServer server;
    server.setHolding(0, {static_cast<std::uint16_t>(-1234)});
    server.setHolding(1, {65000});
    server.setHolding(2, bigEndianWords(std::bit_cast<std::uint32_t>(std::int32_t{-123456789})));
    server.setHolding(4, littleEndianWords(std::bit_cast<std::uint32_t>(std::int32_t{-123456789})));
    server.setHolding(6, bigEndianWords(4'000'000'000u));
    server.setHolding(8, bigEndianWords(std::bit_cast<std::uint32_t>(21.37f)));
    server.setHolding(10, littleEndianWords(std::bit_cast<std::uint32_t>(-0.5f)));
    server.setHolding(20, {650});
    server.setInput(0, {static_cast<std::uint16_t>(-5)});
    server.setInput(50, littleEndianWords(70'000u));

    std::vector<ModbusSensor> sensors{
        reg(0, "plc", 0, "int16"),
        reg(1, "plc", 1, "uint16"),
        reg(2, "plc", 2, "int32", "big"),
        reg(3, "plc", 4, "int32", "little"),
        reg(4, "plc", 6, "uint32"),
        reg(5, "plc", 8, "float32", "big"),
        reg(6, "plc", 10, "float32", "little"),
        reg(7, "plc", 20, "uint16", "big", "holding", 0.1, -40.0),  // 650 * 0.1 - 40
        reg(8, "plc", 0, "int16", "big", "input"),
        reg(9, "plc", 50, "uint32", "little", "input", 0.001),
    };
    sensors[9].interval = 1s;  // a second group
    ModbusSource source({device("plc", server.port())}, sensors, clock, metrics);
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_EQ(only(sink, 0), -1234.0);
    EXPECT_EQ(only(sink, 1), 65000.0);
    EXPECT_EQ(only(sink, 2), -123456789.0);
    EXPECT_EQ(only(sink, 3), -123456789.0);
    EXPECT_EQ(only(sink, 4), 4e9);
    EXPECT_EQ(only(sink, 5), static_cast<double>(21.37f));
    EXPECT_EQ(only(sink, 6), -0.5);
    EXPECT_DOUBLE_EQ(only(sink, 7), 25.0);
    EXPECT_EQ(only(sink, 8), -5.0);
    EXPECT_DOUBLE_EQ(only(sink, 9), 70.0);
    for (const auto& sample : sink.samples) {
        EXPECT_EQ(sample.time_ms, 1'700'000'000'000);
        EXPECT_EQ(sample.quality, shared::Quality::Good);
    }
    EXPECT_EQ(testing::sampleCount(metrics, "modbus"), 10u);

    // The values are read anew on each poll.
    server.setHolding(1, {7});
    CollectingSink again;
    source.pollOnce(again);
    EXPECT_EQ(only(again, 1), 7.0);
}

TEST_F(ModbusSourceTest, AnExceptionReplyLosesOnlyItsRequest) {
    ModbusTestServer server;
    server.setHolding(0, {11});
    // Register 500 is beyond the server's 100: it answers "illegal data address".
    ModbusSource source({device("plc", server.port())},
                        {reg(0, "plc", 0, "uint16"), reg(1, "plc", 500, "uint16")}, clock, metrics);
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_EQ(only(sink, 0), 11.0);
    EXPECT_TRUE(sink.forSensor(1).empty());
    EXPECT_EQ(errors("read_failed"), 1u);
    // The connection survived: the next poll needs no reconnect.
    source.pollOnce(sink);
    EXPECT_EQ(sink.forSensor(0).size(), 2u);
    EXPECT_EQ(errors("connect_failed"), 0u);
}

TEST_F(ModbusSourceTest, NonFiniteFloatsAreDroppedAndCounted) {
    ModbusTestServer server;
    server.setHolding(0, {0x7FC0, 0x0000});  // NaN
    ModbusSource source({device("plc", server.port())}, {reg(0, "plc", 0, "float32")}, clock,
                        metrics);
    CollectingSink sink;
    source.pollOnce(sink);
    EXPECT_TRUE(sink.samples.empty());
    EXPECT_EQ(errors("non_finite"), 1u);
}

TEST_F(ModbusSourceTest, ServerDownIsCountedUntilItComesUp) {
    const int port = unusedPort();
    ModbusSource source({device("plc", port)}, {reg(0, "plc", 3, "uint16")}, clock, metrics);
    CollectingSink sink;
    source.pollOnce(sink);  // one attempt, refused
    EXPECT_TRUE(sink.samples.empty());
    EXPECT_EQ(errors("connect_failed"), 1u);

    boost::asio::io_context io;
    source.start(io, sink);
    // The worker keeps trying, with backoff.
    ASSERT_TRUE(testing::runUntil(io, [&] { return errors("connect_failed") >= 3; }));
    EXPECT_TRUE(sink.samples.empty());

    ModbusTestServer server(port);
    server.setHolding(3, {42});
    ASSERT_TRUE(testing::runUntil(io, [&] { return sink.samples.size() >= 3; }));
    EXPECT_EQ(sink.samples.back().value, 42.0);
    for (const auto& id : sink.threads) EXPECT_EQ(id, std::this_thread::get_id());
    source.stop();
}

TEST_F(ModbusSourceTest, ReconnectsWhenTheServerGoesAwayAndComesBack) {
    auto server = std::make_unique<ModbusTestServer>();
    const int port = server->port();
    server->setHolding(0, {1});
    ModbusSource source({device("plc", port)}, {reg(0, "plc", 0, "uint16")}, clock, metrics);
    boost::asio::io_context io;
    CollectingSink sink;
    source.start(io, sink);
    ASSERT_TRUE(testing::runUntil(io, [&] { return sink.samples.size() >= 2; }));

    server.reset();  // closes the listener and the connection
    ASSERT_TRUE(testing::runUntil(io, [&] { return errors("connect_failed") >= 2; }));
    EXPECT_GE(errors("read_failed") + errors("timeout"), 1u);
    const auto before = sink.samples.size();

    server = std::make_unique<ModbusTestServer>(port);
    server->setHolding(0, {2});
    ASSERT_TRUE(testing::runUntil(
        io, [&] { return sink.samples.size() > before && sink.samples.back().value == 2.0; }));
    source.stop();

    // Stopped: nothing more arrives, and the loop has nothing left to do.
    const auto delivered = sink.samples.size();
    io.restart();
    io.run_for(5s);
    EXPECT_EQ(sink.samples.size(), delivered);
}

TEST_F(ModbusSourceTest, ValidateChecksDevicesAndRegisters) {
    const auto ok = ModbusSource::validate({device("a", 502)}, {reg(0, "a", 65534, "int32")});
    EXPECT_TRUE(ok);
    auto twice = device("a", 502);
    auto bad_unit = device("b", 502);
    bad_unit.unit_id = 250;
    const auto result = ModbusSource::validate(
        {device("a", 502), twice, bad_unit},
        {reg(0, "nope", 0, "uint16"), reg(1, "a", 65535, "float32"), reg(2, "a", 0, "int64")});
    ASSERT_FALSE(result);
    const std::string& detail = result.error().detail;
    EXPECT_NE(detail.find("\"a\" is used twice"), std::string::npos) << detail;
    EXPECT_NE(detail.find("unit_id: 250"), std::string::npos) << detail;
    EXPECT_NE(detail.find("sensor 0: no [[modbus_device]] is named \"nope\""), std::string::npos)
        << detail;
    EXPECT_NE(detail.find("sensor 1: register 65535"), std::string::npos) << detail;
    EXPECT_NE(detail.find("sensor 2: type"), std::string::npos) << detail;

    // Such sensors are left out; the others are read.
    ModbusTestServer server;
    server.setHolding(0, {9});
    ModbusSource source({device("a", server.port())},
                        {reg(0, "nope", 0, "uint16"), reg(1, "a", 0, "uint16")}, clock, metrics);
    CollectingSink sink;
    source.pollOnce(sink);
    ASSERT_EQ(sink.samples.size(), 1u);
    EXPECT_EQ(sink.samples[0].sensor, 1);
}

struct TestSensor {
    std::string name;
    ModbusSensorConfig modbus;
};
struct TestConfig {
    std::vector<ModbusDeviceConfig> devices;
    std::vector<TestSensor> sensors;
};
shared::ConfigTable<TestConfig> testSchema() {
    return shared::ConfigTable<TestConfig>("", "")
        .tables(&TestConfig::devices, modbusDeviceTable())
        .tables(&TestConfig::sensors, shared::ConfigTable<TestSensor>("sensor", "")
                                          .string("name", &TestSensor::name, "", "")
                                          .table(&TestSensor::modbus, modbusSensorTable()));
}

TEST(ModbusConfigTest, TablesReadTheDocumentedKeys) {
    auto result = shared::loadConfigString(R"(
[[modbus_device]]
name = "meter"
host = "192.168.1.50"
unit_id = 3
timeout = "250ms"
[[sensor]]
name = "power"
[sensor.modbus]
device = "meter"
register = 30
table = "input"
type = "float32"
word_order = "little"
scale = 0.001
offset = 1.5
)",
                                           "edge.toml", testSchema());
    ASSERT_TRUE(result) << shared::formatConfigErrors(result.error());
    const auto& config = result.value();
    ASSERT_EQ(config.devices.size(), 1u);
    EXPECT_EQ(config.devices[0].name, "meter");
    EXPECT_EQ(config.devices[0].host, "192.168.1.50");
    EXPECT_EQ(config.devices[0].port, 502);
    EXPECT_EQ(config.devices[0].unit_id, 3);
    EXPECT_EQ(config.devices[0].timeout, 250ms);
    EXPECT_EQ(config.devices[0].reconnect_min, 500ms);
    EXPECT_EQ(config.devices[0].reconnect_max, 30s);
    ASSERT_EQ(config.sensors.size(), 1u);
    const auto& sensor = config.sensors[0].modbus;
    EXPECT_EQ(sensor.device, "meter");
    EXPECT_EQ(sensor.address, 30);
    EXPECT_EQ(sensor.table, "input");
    EXPECT_EQ(sensor.type, "float32");
    EXPECT_EQ(sensor.word_order, "little");
    EXPECT_DOUBLE_EQ(sensor.scale, 0.001);
    EXPECT_DOUBLE_EQ(sensor.offset, 1.5);

    auto bad = shared::loadConfigString(
        "[[sensor]]\nname = \"x\"\n[sensor.modbus]\ndevice = \"m\"\nregister = 1\ntype = "
        "\"float64\"\n",
        "edge.toml", testSchema());
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().at(0).key, "sensor[0].modbus.type");

    // A sensor of another source has no [sensor.modbus]; that must load. Had it been a Modbus
    // sensor, validate() asks for the device and the register.
    auto absent = shared::loadConfigString("[[sensor]]\nname = \"x\"\n", "edge.toml", testSchema());
    ASSERT_TRUE(absent) << shared::formatConfigErrors(absent.error());
    const auto no_device =
        ModbusSource::validate({device("meter", 502)}, {{0, absent.value().sensors[0].modbus, 1s}});
    ASSERT_FALSE(no_device);
    EXPECT_EQ(no_device.error().detail, "sensor 0: device is required");
    ModbusSensorConfig no_register;
    no_register.device = "meter";
    const auto checked = ModbusSource::validate({device("meter", 502)}, {{1, no_register, 1s}});
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error().detail, "sensor 1: register is required");
}

}  // namespace
}  // namespace tern::edge
