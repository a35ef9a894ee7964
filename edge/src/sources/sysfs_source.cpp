#include "tern/edge/sources/sysfs_source.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

#include "interval_timers.h"
#include "tern/edge/sources/source_metrics.h"

namespace tern::edge {
namespace {

constexpr std::string_view kSourceName = "sysfs";

enum class Kind { Hwmon, Iio };

bool isLower(char c) { return c >= 'a' && c <= 'z'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

// The kernel's unit for each hwmon attribute type (Documentation/hwmon/sysfs-interface), as the
// factor that turns it into ours.
std::optional<double> hwmonUnitFactor(std::string_view type) {
    if (type == "temp") return 1e-3;      // millidegree Celsius -> °C
    if (type == "in") return 1e-3;        // millivolt -> V
    if (type == "curr") return 1e-3;      // milliampere -> A
    if (type == "humidity") return 1e-3;  // milli-percent -> %RH
    if (type == "power") return 1e-6;     // microwatt -> W
    if (type == "energy") return 1e-6;    // microjoule -> J
    if (type == "fan") return 1.0;        // RPM
    return std::nullopt;
}

// IIO values, after the kernel's own (raw + offset) * scale, are in the units of
// Documentation/ABI/testing/sysfs-bus-iio; the milli-units become base units, the rest stay.
double iioUnitFactor(std::string_view type) {
    if (type == "temp") return 1e-3;              // milli °C -> °C
    if (type == "humidityrelative") return 1e-3;  // milli percent -> %RH
    if (type == "voltage") return 1e-3;           // mV -> V
    if (type == "current") return 1e-3;           // mA -> A
    if (type == "power") return 1e-3;             // mW -> W
    return 1.0;  // pressure in kPa, illuminance in lux, accel in m/s², ... as the kernel gives
}

// hwmon "temp1" -> {type "temp", attribute "temp1_input"}; "power1_average" -> as is.
struct HwmonChannel {
    std::string type;
    std::string attribute;
};
std::optional<HwmonChannel> parseHwmonChannel(std::string_view channel) {
    std::size_t i = 0;
    while (i < channel.size() && isLower(channel[i])) ++i;
    const std::size_t type_end = i;
    while (i < channel.size() && isDigit(channel[i])) ++i;
    if (type_end == 0 || i == type_end) return std::nullopt;
    if (!hwmonUnitFactor(channel.substr(0, type_end))) return std::nullopt;
    if (i == channel.size()) {
        return HwmonChannel{std::string(channel.substr(0, type_end)),
                            std::string(channel) + "_input"};
    }
    if (channel[i] != '_' || i + 1 == channel.size()) return std::nullopt;
    for (std::size_t j = i + 1; j < channel.size(); ++j) {
        if (!isLower(channel[j]) && channel[j] != '_') return std::nullopt;
    }
    return HwmonChannel{std::string(channel.substr(0, type_end)), std::string(channel)};
}

// IIO "in_voltage0" -> type "voltage"; "in_accel_x" -> "accel".
std::optional<std::string> parseIioChannelType(std::string_view channel) {
    if (channel.substr(0, 3) != "in_") return std::nullopt;
    std::size_t i = 3;
    while (i < channel.size() && isLower(channel[i])) ++i;
    if (i == 3) return std::nullopt;
    for (std::size_t j = i; j < channel.size(); ++j) {
        const char c = channel[j];
        if (!isLower(c) && !isDigit(c) && c != '_') return std::nullopt;
    }
    return std::string(channel.substr(3, i - 3));
}

// "" when the sensor can be read, otherwise why not.
std::string checkSensor(const SysfsSensorConfig& config) {
    if (config.device.empty()) return "device is required";
    if (config.channel.empty()) return "channel is required";
    if (!std::isfinite(config.scale) || !std::isfinite(config.offset)) {
        return "scale and offset must be finite";
    }
    if (config.kind == "hwmon") {
        if (!parseHwmonChannel(config.channel)) {
            return "\"" + config.channel +
                   "\" is not a hwmon channel (temp<N>, in<N>, fan<N>, humidity<N>, curr<N>, "
                   "power<N>, energy<N>, optionally with an _attribute suffix)";
        }
        return "";
    }
    if (config.kind == "iio") {
        if (!parseIioChannelType(config.channel)) {
            return "\"" + config.channel +
                   "\" is not an IIO channel (in_<type>[<index>][_<modifier>], like in_temp or "
                   "in_voltage0)";
        }
        return "";
    }
    return "kind \"" + config.kind + "\" is not \"hwmon\" or \"iio\"";
}

// Files in sysfs are at most a page; values are a few bytes. Reads into buf, returns the text, or
// nullopt with errno set.
std::optional<std::string_view> readSmallFile(const std::string& path, char* buf,
                                              std::size_t size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    ssize_t n;
    do {
        n = ::read(fd, buf, size);
    } while (n < 0 && errno == EINTR);
    const int saved = errno;
    ::close(fd);
    if (n < 0) {
        errno = saved;
        return std::nullopt;
    }
    return std::string_view(buf, static_cast<std::size_t>(n));
}

bool fileExists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string trimmed(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    return std::string(text);
}

// hwmon2 before hwmon10.
std::pair<std::string, long> naturalKey(const std::string& name) {
    std::size_t digits = name.size();
    while (digits > 0 && isDigit(name[digits - 1])) --digits;
    long number = -1;
    std::from_chars(name.data() + digits, name.data() + name.size(), number);
    return {name.substr(0, digits), number};
}

}  // namespace

const char* sysfsErrorName(SysfsError error) {
    switch (error) {
        case SysfsError::DeviceNotFound:
            return "device_not_found";
        case SysfsError::ReadFailed:
            return "read_failed";
        case SysfsError::ParseFailed:
            return "parse_failed";
    }
    return "unknown";
}

std::optional<double> parseSysfsNumber(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    if (text.empty()) return std::nullopt;
    double value = 0.0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

shared::ConfigTable<SysfsConfig> sysfsTable() {
    return shared::ConfigTable<SysfsConfig>("sysfs", "Linux sysfs sensors (hwmon, IIO)")
        .string("root", &SysfsConfig::root, "/sys", "where sysfs is mounted",
                {.check = [](const std::string& value) -> std::string {
                    return value.empty() ? "must not be empty" : "";
                }});
}

shared::ConfigTable<SysfsSensorConfig> sysfsSensorTable() {
    // A sensor table is nested in every [[sensor]], whatever its source, so its keys cannot be
    // .required(): an absent table would report them. validate() insists on them instead.
    return shared::ConfigTable<SysfsSensorConfig>("sysfs", "A hwmon or IIO channel read from sysfs")
        .string("kind", &SysfsSensorConfig::kind, "hwmon", "which sysfs interface",
                {.one_of = {"hwmon", "iio"}})
        .string("device", &SysfsSensorConfig::device, "",
                "device name (content of its `name` file) or directory name (hwmon0, "
                "iio:device0); required")
        .string("channel", &SysfsSensorConfig::channel, "",
                "hwmon: temp1, in0, fan1, humidity1, curr1, power1, energy1 (or a full attribute "
                "such as power1_average); iio: in_temp, in_voltage0, in_pressure, ...; required")
        .number("scale", &SysfsSensorConfig::scale, 1.0, {-1e12, 1e12}, "",
                "multiplies the value after unit conversion")
        .number("offset", &SysfsSensorConfig::offset, 0.0, {-1e12, 1e12}, "", "added after scale");
}

struct SysfsSource::Impl {
    struct Channel {
        SysfsSensor binding;
        Kind kind = Kind::Hwmon;
        std::string problem;     // from checkSensor; such a channel is never read
        std::string attribute;   // hwmon attribute file, or the IIO channel name
        std::string iio_shared;  // IIO: in_<type>, whose _scale/_offset channels share
        double unit_factor = 1.0;

        // Set by resolve().
        bool resolved = false;
        std::string value_path;
        bool raw = false;  // IIO _raw: value = (raw + iio_offset) * iio_scale
        double iio_scale = 1.0;
        double iio_offset = 0.0;

        // The failure being reported, so that a run of them logs once.
        std::optional<SysfsError> failing;
    };

    Impl(SysfsConfig config_in, std::vector<SysfsSensor> sensors, const shared::Clock& clock_in,
         shared::MetricsRegistry& metrics)
        : config(std::move(config_in)),
          clock(clock_in),
          samples(sourceSamplesCounter(metrics, kSourceName)),
          errors{&sourceErrorsCounter(metrics, kSourceName, "device_not_found"),
                 &sourceErrorsCounter(metrics, kSourceName, "read_failed"),
                 &sourceErrorsCounter(metrics, kSourceName, "parse_failed")} {
        std::map<std::chrono::milliseconds, std::vector<std::size_t>> by_interval;
        for (auto& sensor : sensors) {
            Channel channel;
            channel.problem = checkSensor(sensor.config);
            if (channel.problem.empty()) {
                if (sensor.config.kind == "hwmon") {
                    auto parsed = parseHwmonChannel(sensor.config.channel);
                    channel.kind = Kind::Hwmon;
                    channel.attribute = parsed->attribute;
                    channel.unit_factor = *hwmonUnitFactor(parsed->type);
                } else {
                    auto type = parseIioChannelType(sensor.config.channel);
                    channel.kind = Kind::Iio;
                    channel.attribute = sensor.config.channel;
                    channel.iio_shared = "in_" + *type;
                    channel.unit_factor = iioUnitFactor(*type);
                }
            }
            if (sensor.interval.count() <= 0) sensor.interval = std::chrono::seconds(1);
            by_interval[sensor.interval].push_back(channels.size());
            channel.binding = std::move(sensor);
            channels.push_back(std::move(channel));
        }
        for (auto& [interval, members] : by_interval) {
            intervals.push_back(interval);
            groups.push_back(std::move(members));
        }
    }

    std::string describe(const Channel& channel) const {
        return "sysfs sensor " + std::to_string(channel.binding.sensor) + " (" +
               channel.binding.config.kind + " " + channel.binding.config.device + "/" +
               channel.binding.config.channel + ")";
    }

    // Counts the lost reading; logs when the channel starts failing, or fails another way.
    void fail(Channel& channel, SysfsError error, const std::string& detail, bool count = true) {
        if (count) errors[static_cast<std::size_t>(error)]->inc();
        if (channel.failing == error) return;
        channel.failing = error;
        spdlog::warn("{}: {}: {}; no samples until it recovers", describe(channel),
                     sysfsErrorName(error), detail);
    }

    void recovered(Channel& channel) {
        if (!channel.failing) return;
        channel.failing.reset();
        spdlog::info("{}: readings resumed", describe(channel));
    }

    // The device directory whose directory name or `name` file is device, first in natural order.
    std::optional<std::string> findDevice(const Channel& channel) const {
        const std::filesystem::path base =
            std::filesystem::path(config.root) /
            (channel.kind == Kind::Hwmon ? "class/hwmon" : "bus/iio/devices");
        std::error_code ec;
        std::vector<std::string> names;
        for (std::filesystem::directory_iterator it(base, ec), end; !ec && it != end;
             it.increment(ec)) {
            names.push_back(it->path().filename().string());
        }
        std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
            return naturalKey(a) < naturalKey(b);
        });
        const std::string& wanted = channel.binding.config.device;
        for (const auto& name : names) {
            if (name == wanted) return (base / name).string();
        }
        char buf[256];
        for (const auto& name : names) {
            const std::string dir = (base / name).string();
            auto text = readSmallFile(dir + "/name", buf, sizeof buf);
            if (text && trimmed(*text) == wanted) return dir;
        }
        return std::nullopt;
    }

    // Reads an optional IIO attribute (scale or offset): its own, else the one its type shares.
    // nullopt when present but not a number.
    std::optional<double> iioAttribute(const std::string& dir, const Channel& channel,
                                       const char* suffix, double missing) const {
        char buf[128];
        for (const std::string& owner : {channel.attribute, channel.iio_shared}) {
            const std::string path = dir + "/" + owner + suffix;
            if (!fileExists(path)) continue;
            auto text = readSmallFile(path, buf, sizeof buf);
            if (!text) return std::nullopt;
            return parseSysfsNumber(*text);
        }
        return missing;
    }

    // Finds the files to read. Returns the error to report when the sensor cannot be read.
    std::optional<std::pair<SysfsError, std::string>> resolve(Channel& channel) {
        channel.resolved = false;
        auto dir = findDevice(channel);
        if (!dir) {
            return std::pair{SysfsError::DeviceNotFound,
                             "no device named \"" + channel.binding.config.device + "\""};
        }
        if (channel.kind == Kind::Hwmon) {
            // Older drivers keep their attributes in hwmonN/device/.
            for (const char* sub : {"/", "/device/"}) {
                const std::string path = *dir + sub + channel.attribute;
                if (fileExists(path)) {
                    channel.value_path = path;
                    channel.raw = false;
                    channel.resolved = true;
                    return std::nullopt;
                }
            }
            return std::pair{SysfsError::ReadFailed, *dir + " has no " + channel.attribute};
        }
        // IIO: the kernel's processed value when the driver offers one, else raw with scale and
        // offset.
        const std::string input = *dir + "/" + channel.attribute + "_input";
        if (fileExists(input)) {
            channel.value_path = input;
            channel.raw = false;
            channel.resolved = true;
            return std::nullopt;
        }
        const std::string raw = *dir + "/" + channel.attribute + "_raw";
        if (!fileExists(raw)) {
            return std::pair{SysfsError::ReadFailed,
                             *dir + " has neither " + channel.attribute + "_input nor _raw"};
        }
        auto scale = iioAttribute(*dir, channel, "_scale", 1.0);
        auto offset = iioAttribute(*dir, channel, "_offset", 0.0);
        if (!scale || !offset) {
            return std::pair{SysfsError::ParseFailed,
                             "unreadable " + channel.attribute + " _scale or _offset"};
        }
        channel.value_path = raw;
        channel.raw = true;
        channel.iio_scale = *scale;
        channel.iio_offset = *offset;
        channel.resolved = true;
        return std::nullopt;
    }

    void read(Channel& channel, SampleSink& sink) {
        if (!channel.problem.empty()) return;
        if (!channel.resolved) {
            if (auto error = resolve(channel)) {
                fail(channel, error->first, error->second);
                return;
            }
        }
        char buf[128];
        auto text = readSmallFile(channel.value_path, buf, sizeof buf);
        if (!text) {
            // Gone (unplugged) or refusing (a driver's I/O error): look the device up again next
            // time, since it may come back under another number.
            const int saved = errno;
            channel.resolved = false;
            fail(channel, SysfsError::ReadFailed, channel.value_path + ": " + std::strerror(saved));
            return;
        }
        auto number = parseSysfsNumber(*text);
        if (!number) {
            fail(channel, SysfsError::ParseFailed,
                 channel.value_path + " holds \"" + trimmed(*text) + "\"");
            return;
        }
        double value = channel.raw ? (*number + channel.iio_offset) * channel.iio_scale : *number;
        value = value * channel.unit_factor * channel.binding.config.scale +
                channel.binding.config.offset;
        if (!std::isfinite(value)) {
            fail(channel, SysfsError::ParseFailed,
                 channel.value_path + " gives a non-finite value");
            return;
        }
        recovered(channel);
        sink.onSample(stampedSample(clock, channel.binding.sensor, value));
        samples.inc();
    }

    SysfsConfig config;
    const shared::Clock& clock;
    shared::Counter& samples;
    std::array<shared::Counter*, 3> errors;  // by SysfsError
    std::vector<Channel> channels;
    std::vector<std::chrono::milliseconds> intervals;
    std::vector<std::vector<std::size_t>> groups;  // channel indexes, by interval
    detail::IntervalTimers timers;
};

shared::VoidResult SysfsSource::validate(const SysfsConfig& config,
                                         const std::vector<SysfsSensor>& sensors) {
    std::string problems;
    if (config.root.empty()) problems += "sysfs.root: must not be empty\n";
    for (const auto& sensor : sensors) {
        const std::string problem = checkSensor(sensor.config);
        if (!problem.empty()) {
            problems += "sensor " + std::to_string(sensor.sensor) + ": " + problem + "\n";
        }
    }
    if (problems.empty()) return shared::success();
    problems.pop_back();
    return shared::Error::stop("invalid_config", problems);
}

SysfsSource::SysfsSource(SysfsConfig config, std::vector<SysfsSensor> sensors,
                         const shared::Clock& clock, shared::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(sensors), clock, metrics)) {}

SysfsSource::~SysfsSource() { stop(); }

void SysfsSource::start(boost::asio::io_context& io, SampleSink& sink) {
    for (auto& channel : impl_->channels) {
        if (!channel.problem.empty()) {
            spdlog::error("{}: not read: {}", impl_->describe(channel), channel.problem);
            continue;
        }
        // Only logged here; the polls count the readings this costs.
        if (auto error = impl_->resolve(channel)) {
            impl_->fail(channel, error->first, error->second, /*count=*/false);
        }
    }
    impl_->timers.start(io, impl_->intervals, [impl = impl_.get(), &sink](std::size_t group) {
        for (const std::size_t index : impl->groups[group]) impl->read(impl->channels[index], sink);
    });
}

void SysfsSource::stop() { impl_->timers.stop(); }

void SysfsSource::pollOnce(SampleSink& sink) {
    for (auto& channel : impl_->channels) impl_->read(channel, sink);
}

}  // namespace tern::edge
