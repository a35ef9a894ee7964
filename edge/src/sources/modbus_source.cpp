#include "tern/edge/sources/modbus_source.h"

#include <modbus/modbus.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "tern/edge/sources/source_metrics.h"

namespace tern::edge {
namespace {

constexpr std::string_view kSourceName = "modbus";
// The most registers one read request may ask for (Modbus application protocol, 6.3).
constexpr std::size_t kMaxRegistersPerRead = 125;

enum class Table { Holding, Input };

enum class Reason : std::size_t { ConnectFailed, ReadFailed, Timeout, NonFinite, QueueFull };
constexpr std::size_t kReasonCount = 5;
const char* reasonName(Reason reason) {
    switch (reason) {
        case Reason::ConnectFailed:
            return "connect_failed";
        case Reason::ReadFailed:
            return "read_failed";
        case Reason::Timeout:
            return "timeout";
        case Reason::NonFinite:
            return "non_finite";
        case Reason::QueueFull:
            return "queue_full";
    }
    return "unknown";
}

bool validUnitId(std::int64_t id) { return (id >= 0 && id <= 247) || id == 255; }

// "" when the sensor can be read from devices, otherwise why not.
std::string checkSensor(const ModbusSensorConfig& sensor,
                        const std::vector<ModbusDeviceConfig>& devices) {
    if (sensor.device.empty()) return "device is required";
    if (sensor.address < 0) return "register is required";
    const auto type = parseModbusType(sensor.type);
    if (!type)
        return "type \"" + sensor.type + "\" is not one of int16, uint16, int32, uint32, float32";
    if (!parseModbusWordOrder(sensor.word_order)) {
        return "word_order \"" + sensor.word_order + "\" is not big or little";
    }
    if (sensor.table != "holding" && sensor.table != "input") {
        return "table \"" + sensor.table + "\" is not holding or input";
    }
    if (sensor.address < 0 ||
        sensor.address + static_cast<std::int64_t>(modbusRegisterCount(*type)) > 65536) {
        return "register " + std::to_string(sensor.address) + " holding a " + sensor.type +
               " runs past 65535";
    }
    if (!std::isfinite(sensor.scale) || !std::isfinite(sensor.offset)) {
        return "scale and offset must be finite";
    }
    const bool known = std::any_of(devices.begin(), devices.end(), [&](const auto& device) {
        return device.name == sensor.device;
    });
    if (!known) return "no [[modbus_device]] is named \"" + sensor.device + "\"";
    return "";
}

struct Item {
    std::uint16_t sensor = 0;
    std::size_t offset = 0;  // into its read's registers
    ModbusType type = ModbusType::Uint16;
    ModbusWordOrder order = ModbusWordOrder::Big;
    double scale = 1.0;
    double offset_value = 0.0;
};

// One request: consecutive registers of one table, and the sensors they hold.
struct Read {
    Table table = Table::Holding;
    int address = 0;
    int count = 0;
    std::vector<Item> items;
    // The failure being reported for this request, so that a register the device refuses on
    // every poll logs once, not once a poll.
    std::optional<Reason> failing;
};

// The sensors of one device that share an interval.
struct Group {
    std::chrono::milliseconds interval{};
    std::vector<Read> reads;
    std::chrono::steady_clock::time_point next_due{};
};

// Coalesces sensors whose registers touch or overlap into one request, up to the protocol's
// limit. Sensors with gaps between them are not merged: the gap may hold addresses the device
// does not map, and one illegal address fails the whole request.
std::vector<Read> planReads(std::vector<std::pair<ModbusSensor, ModbusType>> sensors) {
    std::sort(sensors.begin(), sensors.end(), [](const auto& a, const auto& b) {
        return std::pair(a.first.config.table, a.first.config.address) <
               std::pair(b.first.config.table, b.first.config.address);
    });
    std::vector<Read> reads;
    for (const auto& [sensor, type] : sensors) {
        const Table table = sensor.config.table == "input" ? Table::Input : Table::Holding;
        const int address = static_cast<int>(sensor.config.address);
        const int count = static_cast<int>(modbusRegisterCount(type));
        Read* read = reads.empty() ? nullptr : &reads.back();
        if (read == nullptr || read->table != table || address > read->address + read->count ||
            static_cast<std::size_t>(std::max(read->address + read->count, address + count) -
                                     read->address) > kMaxRegistersPerRead) {
            read = &reads.emplace_back();
            read->table = table;
            read->address = address;
            read->count = 0;
        }
        read->count = std::max(read->count, address + count - read->address);
        read->items.push_back(Item{sensor.sensor, static_cast<std::size_t>(address - read->address),
                                   type, *parseModbusWordOrder(sensor.config.word_order),
                                   sensor.config.scale, sensor.config.offset});
    }
    return reads;
}

}  // namespace

shared::ConfigTable<ModbusDeviceConfig> modbusDeviceTable() {
    using std::chrono::milliseconds;
    return shared::ConfigTable<ModbusDeviceConfig>("modbus_device", "A Modbus TCP device to poll")
        .string("name", &ModbusDeviceConfig::name, "", "what [sensor.modbus] device refers to")
        .required()
        .string("host", &ModbusDeviceConfig::host, "", "IP address or host name")
        .required()
        .integer("port", &ModbusDeviceConfig::port, 502, {1, 65535}, "", "TCP port")
        .integer("unit_id", &ModbusDeviceConfig::unit_id, 1, {0, 255}, "",
                 "Modbus unit (slave) id: 0..247, or 255")
        .duration("timeout", &ModbusDeviceConfig::timeout, milliseconds(1000),
                  {milliseconds(10), milliseconds(60000)}, "connect and response timeout")
        .duration("reconnect_min", &ModbusDeviceConfig::reconnect_min, milliseconds(500),
                  {milliseconds(10), milliseconds(3600000)},
                  "first wait before reconnecting; doubles on each failure")
        .duration("reconnect_max", &ModbusDeviceConfig::reconnect_max, milliseconds(30000),
                  {milliseconds(10), milliseconds(3600000)}, "longest wait before reconnecting");
}

shared::ConfigTable<ModbusSensorConfig> modbusSensorTable() {
    // A sensor table is nested in every [[sensor]], whatever its source, so its keys cannot be
    // .required(): an absent table would report them. validate() insists on them instead.
    // The register's default, -1, is out of range on purpose: it says "not given".
    return shared::ConfigTable<ModbusSensorConfig>("modbus", "A register of a Modbus TCP device")
        .string("device", &ModbusSensorConfig::device, "", "name of a [[modbus_device]]; required")
        .integer("register", &ModbusSensorConfig::address, -1, {0, 65535}, "",
                 "register address, counted from 0 as on the wire; required")
        .string("table", &ModbusSensorConfig::table, "holding", "register table",
                {.one_of = {"holding", "input"}})
        .string("type", &ModbusSensorConfig::type, "uint16",
                "how the register(s) are read; 32-bit types take two",
                {.one_of = {"int16", "uint16", "int32", "uint32", "float32"}})
        .string("word_order", &ModbusSensorConfig::word_order, "big",
                "32-bit types: big = the first register holds the high word",
                {.one_of = {"big", "little"}})
        .number("scale", &ModbusSensorConfig::scale, 1.0, {-1e12, 1e12}, "",
                "value = raw * scale + offset")
        .number("offset", &ModbusSensorConfig::offset, 0.0, {-1e12, 1e12}, "", "added after scale");
}

struct ModbusSource::Impl {
    // Shared with the closures posted to the loop, which may run after stop() or after the Impl
    // is gone.
    struct Delivery {
        std::atomic<bool> stopped{false};
        std::atomic<std::size_t> pending{0};
        SampleSink* sink = nullptr;
        shared::Counter* samples = nullptr;
    };

    struct Device {
        ModbusDeviceConfig config;
        std::thread worker;

        // Guards everything below; held for a whole connect or poll, so pollOnce() and the
        // worker never share the libmodbus context at once.
        std::mutex mutex;
        modbus_t* ctx = nullptr;
        bool connected = false;
        std::chrono::milliseconds backoff{};
        std::chrono::steady_clock::time_point next_connect{};
        std::minstd_rand jitter;
        bool unreachable = false;   // connecting fails; for logging the transitions only
        std::vector<Group> groups;  // each request keeps its failure state

        ~Device() {
            if (ctx != nullptr) {
                modbus_close(ctx);
                modbus_free(ctx);
            }
        }
    };

    Impl(std::vector<ModbusDeviceConfig> device_configs, std::vector<ModbusSensor> sensors,
         const shared::Clock& clock_in, shared::MetricsRegistry& metrics)
        : clock(clock_in), samples(sourceSamplesCounter(metrics, kSourceName)) {
        for (std::size_t i = 0; i < kReasonCount; ++i) {
            errors[i] =
                &sourceErrorsCounter(metrics, kSourceName, reasonName(static_cast<Reason>(i)));
        }
        std::map<std::string, std::map<std::chrono::milliseconds,
                                       std::vector<std::pair<ModbusSensor, ModbusType>>>>
            by_device;
        for (auto& sensor : sensors) {
            const std::string problem = checkSensor(sensor.config, device_configs);
            if (!problem.empty()) {
                rejected.push_back("modbus sensor " + std::to_string(sensor.sensor) + ": " +
                                   problem);
                continue;
            }
            if (sensor.interval.count() <= 0) sensor.interval = std::chrono::seconds(1);
            const ModbusType type = *parseModbusType(sensor.config.type);
            const auto interval = sensor.interval;
            by_device[sensor.config.device][interval].emplace_back(std::move(sensor), type);
        }
        std::set<std::string> seen;
        for (auto& config : device_configs) {
            // A duplicate name (validate() reports it) would be polled twice.
            if (!seen.insert(config.name).second) continue;
            auto found = by_device.find(config.name);
            if (found == by_device.end()) continue;  // no sensors: never connect
            auto device = std::make_unique<Device>();
            for (auto& [interval, members] : found->second) {
                device->groups.push_back(Group{interval, planReads(std::move(members)), {}});
            }
            // validate() rejects these; a source built without it must still not spin.
            config.timeout = std::max(config.timeout, std::chrono::milliseconds(1));
            config.reconnect_min = std::max(config.reconnect_min, std::chrono::milliseconds(1));
            config.reconnect_max = std::max(config.reconnect_max, config.reconnect_min);
            device->backoff = config.reconnect_min;
            device->jitter.seed(static_cast<std::uint32_t>(devices.size() + 1));
            device->config = std::move(config);
            devices.push_back(std::move(device));
        }
    }

    shared::Counter& error(Reason reason) { return *errors[static_cast<std::size_t>(reason)]; }

    static void logFailure(const Device& device, Reason reason, const std::string& detail) {
        spdlog::warn("modbus device {} ({}:{}): {}: {}; no samples until it recovers",
                     device.config.name, device.config.host, device.config.port, reasonName(reason),
                     detail);
    }

    // Counted on every attempt, logged when the device becomes unreachable.
    void connectFailed(Device& device, const std::string& detail) {
        error(Reason::ConnectFailed).inc();
        if (device.unreachable) return;
        device.unreachable = true;
        logFailure(device, Reason::ConnectFailed, detail);
    }

    void disconnect(Device& device) {
        if (device.ctx != nullptr && device.connected) modbus_close(device.ctx);
        device.connected = false;
    }

    // With device.mutex held. Counts and logs a failure.
    bool connect(Device& device) {
        const auto& config = device.config;
        if (device.ctx == nullptr) {
            const std::string port = std::to_string(config.port);
            device.ctx = modbus_new_tcp_pi(config.host.c_str(), port.c_str());
            if (device.ctx == nullptr) {
                connectFailed(device,
                              std::string("cannot create a context: ") + modbus_strerror(errno));
                return false;
            }
            const auto timeout =
                std::chrono::duration_cast<std::chrono::microseconds>(config.timeout);
            const auto seconds = static_cast<std::uint32_t>(timeout.count() / 1'000'000);
            const auto micros = static_cast<std::uint32_t>(timeout.count() % 1'000'000);
            modbus_set_response_timeout(device.ctx, seconds, micros);
            modbus_set_byte_timeout(device.ctx, seconds, micros);
            modbus_set_slave(device.ctx, static_cast<int>(config.unit_id));
        }
        if (modbus_connect(device.ctx) != 0) {
            const int saved = errno;
            // libmodbus leaves the socket open on some failures.
            modbus_close(device.ctx);
            connectFailed(device, modbus_strerror(saved));
            return false;
        }
        device.connected = true;
        device.backoff = config.reconnect_min;
        if (device.unreachable) {
            device.unreachable = false;
            spdlog::info("modbus device {} ({}:{}): connected", config.name, config.host,
                         config.port);
        }
        return true;
    }

    // With device.mutex held, after a failed connect: when to try next.
    void scheduleReconnect(Device& device, std::chrono::steady_clock::time_point now) {
        // ±20% jitter, so that devices behind one gateway that failed together do not retry in
        // lockstep.
        std::uniform_real_distribution<double> spread(0.8, 1.2);
        const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(
            static_cast<double>(device.backoff.count()) * spread(device.jitter)));
        device.next_connect = now + wait;
        device.backoff = std::min(device.backoff * 2, device.config.reconnect_max);
    }

    // With device.mutex held and connected: one request, its samples appended to out. Returns
    // false when the connection is no longer usable.
    bool poll(Device& device, Read& read, std::vector<Sample>& out) {
        std::uint16_t registers[kMaxRegistersPerRead];
        const int got =
            read.table == Table::Holding
                ? modbus_read_registers(device.ctx, read.address, read.count, registers)
                : modbus_read_input_registers(device.ctx, read.address, read.count, registers);
        if (got != read.count) {
            const int saved = got < 0 ? errno : EIO;
            const bool exception_reply = saved > MODBUS_ENOBASE && saved <= EMBXGTAR;
            const Reason reason = saved == ETIMEDOUT ? Reason::Timeout : Reason::ReadFailed;
            error(reason).inc(read.items.size());
            if (read.failing != reason) {
                read.failing = reason;
                logFailure(device, reason,
                           "reading " + std::to_string(read.count) + " " +
                               (read.table == Table::Holding ? "holding" : "input") +
                               " registers at " + std::to_string(read.address) + ": " +
                               modbus_strerror(saved));
            }
            // The device answered with an exception: the connection is fine, the request was
            // not. Anything else (timeout, reset) leaves the stream in an unknown state.
            if (exception_reply) return true;
            disconnect(device);
            // Not at once: a device that accepts connections and then resets them would
            // otherwise be hammered.
            scheduleReconnect(device, std::chrono::steady_clock::now());
            return false;
        }
        for (const Item& item : read.items) {
            const double raw =
                decodeModbusValue(item.type, item.order,
                                  std::span<const std::uint16_t>(registers + item.offset,
                                                                 modbusRegisterCount(item.type)));
            const double value = raw * item.scale + item.offset_value;
            if (!std::isfinite(value)) {
                error(Reason::NonFinite).inc();
                continue;
            }
            out.push_back(stampedSample(clock, item.sensor, value));
        }
        if (read.failing) {
            read.failing.reset();
            spdlog::info("modbus device {}: {} registers at {}: readings resumed",
                         device.config.name, read.table == Table::Holding ? "holding" : "input",
                         read.address);
        }
        return true;
    }

    // With device.mutex held: polls the group's requests in turn. After one that breaks the
    // connection the rest are not attempted; reconnecting (and its connect_failed count) comes
    // first.
    void pollGroup(Device& device, Group& group, std::vector<Sample>& out) {
        for (Read& read : group.reads) {
            if (!device.connected) return;
            if (!poll(device, read, out)) return;
        }
    }

    void deliver(std::vector<Sample> batch) {
        if (batch.empty()) return;
        const std::size_t n = batch.size();
        if (delivery->pending.fetch_add(n) + n > kMaxPendingSamples) {
            delivery->pending.fetch_sub(n);
            error(Reason::QueueFull).inc(n);
            return;
        }
        boost::asio::post(*io, [delivery = delivery, batch = std::move(batch)] {
            delivery->pending.fetch_sub(batch.size());
            if (delivery->stopped) return;
            for (const Sample& sample : batch) {
                delivery->sink->onSample(sample);
                delivery->samples->inc();
            }
        });
    }

    void run(Device& device) {
        using Clock = std::chrono::steady_clock;
        {
            const auto now = Clock::now();
            for (auto& group : device.groups) group.next_due = now;
            std::lock_guard lock(device.mutex);
            device.next_connect = now;
        }
        while (true) {
            std::vector<Sample> batch;
            Clock::time_point wake;
            {
                std::lock_guard lock(device.mutex);
                auto now = Clock::now();
                if (!device.connected && now >= device.next_connect) {
                    if (!connect(device)) scheduleReconnect(device, Clock::now());
                    now = Clock::now();
                }
                if (device.connected) {
                    for (auto& group : device.groups) {
                        if (group.next_due > now) continue;
                        pollGroup(device, group, batch);
                        // Keep the grid; skip the points a slow device made us miss.
                        group.next_due += group.interval;
                        if (group.next_due <= now) {
                            group.next_due +=
                                ((now - group.next_due) / group.interval + 1) * group.interval;
                        }
                    }
                }
                if (device.connected) {
                    wake = Clock::time_point::max();
                    for (const auto& group : device.groups) wake = std::min(wake, group.next_due);
                } else {
                    wake = device.next_connect;
                }
            }
            deliver(std::move(batch));
            std::unique_lock lock(stop_mutex);
            if (stop_cv.wait_until(lock, wake, [this] { return stopping; })) return;
        }
    }

    const shared::Clock& clock;
    shared::Counter& samples;
    std::array<shared::Counter*, kReasonCount> errors{};
    std::vector<std::unique_ptr<Device>> devices;
    std::vector<std::string> rejected;  // sensors that fail checkSensor, logged at start

    boost::asio::io_context* io = nullptr;
    std::shared_ptr<Delivery> delivery;
    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stopping = false;
};

shared::VoidResult ModbusSource::validate(const std::vector<ModbusDeviceConfig>& devices,
                                          const std::vector<ModbusSensor>& sensors) {
    std::string problems;
    std::set<std::string> names;
    for (std::size_t i = 0; i < devices.size(); ++i) {
        const auto& device = devices[i];
        const std::string where = "modbus_device[" + std::to_string(i) + "]";
        if (device.name.empty()) problems += where + ".name: must not be empty\n";
        if (!names.insert(device.name).second) {
            problems += where + ".name: \"" + device.name + "\" is used twice\n";
        }
        if (device.host.empty()) problems += where + ".host: must not be empty\n";
        if (!validUnitId(device.unit_id)) {
            problems +=
                where + ".unit_id: " + std::to_string(device.unit_id) + " is not 0..247 or 255\n";
        }
        if (device.port < 1 || device.port > 65535) problems += where + ".port: not a port\n";
        if (device.timeout.count() <= 0 || device.reconnect_min.count() <= 0 ||
            device.reconnect_max < device.reconnect_min) {
            problems += where +
                        ": timeout and reconnect_min must be positive, reconnect_max at "
                        "least reconnect_min\n";
        }
    }
    for (const auto& sensor : sensors) {
        const std::string problem = checkSensor(sensor.config, devices);
        if (!problem.empty()) {
            problems += "sensor " + std::to_string(sensor.sensor) + ": " + problem + "\n";
        }
    }
    if (problems.empty()) return shared::success();
    problems.pop_back();
    return shared::Error::stop("invalid_config", problems);
}

ModbusSource::ModbusSource(std::vector<ModbusDeviceConfig> devices,
                           std::vector<ModbusSensor> sensors, const shared::Clock& clock,
                           shared::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(devices), std::move(sensors), clock, metrics)) {}

ModbusSource::~ModbusSource() { stop(); }

void ModbusSource::start(boost::asio::io_context& io, SampleSink& sink) {
    stop();
    for (const auto& problem : impl_->rejected) spdlog::error("{}; not read", problem);
    impl_->io = &io;
    impl_->delivery = std::make_shared<Impl::Delivery>();
    impl_->delivery->sink = &sink;
    impl_->delivery->samples = &impl_->samples;
    {
        std::lock_guard lock(impl_->stop_mutex);
        impl_->stopping = false;
    }
    for (auto& device : impl_->devices) {
        device->worker =
            std::thread([impl = impl_.get(), &device = *device] { impl->run(device); });
    }
}

void ModbusSource::stop() {
    {
        std::lock_guard lock(impl_->stop_mutex);
        impl_->stopping = true;
    }
    impl_->stop_cv.notify_all();
    for (auto& device : impl_->devices) {
        if (device->worker.joinable()) device->worker.join();
    }
    // Closures already posted find this and deliver nothing.
    if (impl_->delivery) impl_->delivery->stopped = true;
    impl_->delivery.reset();
}

void ModbusSource::pollOnce(SampleSink& sink) {
    for (auto& device : impl_->devices) {
        std::vector<Sample> batch;
        {
            std::lock_guard lock(device->mutex);
            if (!device->connected && !impl_->connect(*device)) continue;
            for (auto& group : device->groups) impl_->pollGroup(*device, group, batch);
        }
        for (const Sample& sample : batch) {
            sink.onSample(sample);
            impl_->samples.inc();
        }
    }
}

}  // namespace tern::edge
