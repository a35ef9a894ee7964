#include "tern/edge/sources/line_protocol_source.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/system/error_code.hpp>
#include <cerrno>
#include <cstring>
#include <utility>

#include "tern/edge/sources/line_protocol.h"
#include "tern/edge/sources/source_metrics.h"

namespace tern::edge {
namespace {

constexpr std::string_view kSourceName = "line";
constexpr std::int64_t kEarliestPlausibleMs = 946'684'800'000;  // 2000-01-01T00:00:00Z
// A timestamp before 2000 is a unit mistake (seconds, ms or µs written where ns were meant all land
// in 1970); one well ahead of this machine's clock, which the local senders share, is garbage.
constexpr std::int64_t kMaxAheadMs = 5 * 60 * 1000;
// A socket that fails this many receives in a row is given up on rather than spun on.
constexpr int kMaxConsecutiveReceiveErrors = 100;
constexpr std::size_t kMaxLoggedLine = 200;

constexpr std::size_t kUnixPathMax = sizeof(sockaddr_un{}.sun_path);

std::string unixSocketProblem(const std::string& path) {
    if (path.size() >= kUnixPathMax) {
        return "is longer than the " + std::to_string(kUnixPathMax - 1) +
               " bytes a Unix socket path may have";
    }
    return "";
}

// Whether the Unix datagram socket at path may belong to a live process. Only a refused connect
// proves it stale: EACCES may be another user's live socket, which is never removed.
bool unixSocketInUse(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    const bool in_use =
        ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ||
        errno != ECONNREFUSED;
    ::close(fd);
    return in_use;
}

}  // namespace

shared::ConfigTable<LineProtocolConfig> lineProtocolTable() {
    return shared::ConfigTable<LineProtocolConfig>(
               "line_protocol",
               "Local InfluxDB line-protocol listener (UDP on 127.0.0.1, Unix "
               "datagram socket)")
        .integer("udp_port", &LineProtocolConfig::udp_port, 0, {0, 65535}, "",
                 "UDP port on 127.0.0.1; 0 = no UDP listener")
        .string("unix_socket", &LineProtocolConfig::unix_socket, "",
                "Unix datagram socket path, created with mode 0660; \"\" = none",
                {.check = unixSocketProblem})
        .integer("max_datagram_bytes", &LineProtocolConfig::max_datagram_bytes, 8192, {64, 65507},
                 "bytes", "longest datagram accepted; longer ones are dropped whole");
}

shared::ConfigTable<LineSensorConfig> lineSensorTable() {
    // A sensor table is nested in every [[sensor]], whatever its source, so its keys cannot be
    // .required(): an absent table would report them. validate() insists on them instead.
    return shared::ConfigTable<LineSensorConfig>("line", "A series of the line-protocol listener")
        .string("measurement", &LineSensorConfig::measurement, "",
                "measurement name, unescaped; required")
        .string("field", &LineSensorConfig::field, "",
                "numeric field whose values are read; required")
        .stringMap("tags", &LineSensorConfig::tags,
                   "tags a line must carry, with these values; others may be present");
}

struct LineProtocolSource::Impl final : LineProtocolHandler {
    template <class Socket>
    struct Listener {
        explicit Listener(boost::asio::io_context& io) : socket(io) {}
        Socket socket;
        std::vector<char> buffer;
        bool stopped = false;
        int consecutive_errors = 0;
        Impl* impl = nullptr;
        SampleSink* sink = nullptr;
    };
    using UdpListener = Listener<boost::asio::ip::udp::socket>;
    using UnixListener = Listener<boost::asio::local::datagram_protocol::socket>;

    struct Route {
        std::uint16_t sensor = 0;
        std::vector<std::pair<std::string, std::string>> tags;
    };
    using FieldRoutes = std::map<std::string, std::vector<Route>, std::less<>>;

    Impl(LineProtocolConfig config_in, std::vector<LineSensor> sensors,
         const shared::Clock& clock_in, shared::MetricsRegistry& metrics)
        : config(std::move(config_in)),
          clock(clock_in),
          samples(sourceSamplesCounter(metrics, kSourceName)),
          too_long(sourceErrorsCounter(metrics, kSourceName, "too_long")),
          unknown_series(sourceErrorsCounter(metrics, kSourceName, "unknown_series")),
          unsupported(sourceErrorsCounter(metrics, kSourceName, "unsupported")),
          receive_failed(sourceErrorsCounter(metrics, kSourceName, "receive_failed")),
          bind_failed(sourceErrorsCounter(metrics, kSourceName, "bind_failed")) {
        for (std::size_t i = 0; i < kLineErrorCount; ++i) {
            line_errors[i] = &sourceErrorsCounter(metrics, kSourceName,
                                                  lineErrorName(static_cast<LineError>(i)));
        }
        for (auto& sensor : sensors) {
            Route route{sensor.sensor, {sensor.config.tags.begin(), sensor.config.tags.end()}};
            routes[sensor.config.measurement][sensor.config.field].push_back(std::move(route));
        }
    }

    // --- LineProtocolHandler, during handle() ---

    void onLine(const ParsedLine& line) override {
        std::int64_t time_ms = receive_wall_ms;
        shared::Quality quality = shared::Quality::Good;
        if (line.timestamp_ns) {
            const std::int64_t line_ms = *line.timestamp_ns / 1'000'000;
            if (line_ms >= kEarliestPlausibleMs && line_ms <= receive_wall_ms + kMaxAheadMs) {
                time_ms = line_ms;
            } else {
                quality = shared::Quality::TimeUncertain;
            }
        }
        const auto measurement = routes.find(line.measurement);
        for (const LineField& field : line.fields) {
            // Every field that does not become a sample is counted once, with why.
            if (field.type == LineFieldType::String) {
                unsupported.inc();
                continue;
            }
            bool matched = false;
            if (measurement != routes.end()) {
                const auto routed = measurement->second.find(field.key);
                if (routed != measurement->second.end()) {
                    for (const Route& route : routed->second) {
                        if (!tagsMatch(route, line)) continue;
                        matched = true;
                        current_sink->onSample(
                            Sample{route.sensor, time_ms, receive_mono_ms, field.value, quality});
                        samples.inc();
                    }
                }
            }
            if (!matched) unknown_series.inc();
        }
    }

    void onError(LineError error, std::size_t line_number, std::string_view text) override {
        line_errors[static_cast<std::size_t>(error)]->inc();
        // Per line, so only at debug level: a misbehaving sender would flood the log otherwise;
        // the counters say that it happens.
        spdlog::debug("line protocol: line {} rejected ({}): {}", line_number, lineErrorName(error),
                      text.substr(0, kMaxLoggedLine));
    }

    static bool tagsMatch(const Route& route, const ParsedLine& line) {
        for (const auto& [key, value] : route.tags) {
            bool found = false;
            for (const LineTag& tag : line.tags) {
                if (tag.key == key) {
                    found = tag.value == value;
                    break;
                }
            }
            if (!found) return false;
        }
        return true;
    }

    void handle(std::string_view datagram, SampleSink& sink) {
        if (datagram.size() > static_cast<std::size_t>(config.max_datagram_bytes)) {
            too_long.inc();
            return;
        }
        current_sink = &sink;
        receive_wall_ms = shared::toUnixMillis(clock.wallNow());
        receive_mono_ms = monoMillis(clock.monoNow());
        parser.parse(datagram, *this);
        current_sink = nullptr;
    }

    // --- sockets ---

    template <class L>
    static void receive(const std::shared_ptr<L>& listener) {
        auto& socket = listener->socket;
        socket.async_receive(
            boost::asio::buffer(listener->buffer),
            [listener](const boost::system::error_code& ec, std::size_t size) {
                // stopped: stop() ran after this completion was queued; the Impl may be gone.
                if (listener->stopped || ec == boost::asio::error::operation_aborted) return;
                Impl& impl = *listener->impl;
                if (ec) {
                    impl.receive_failed.inc();
                    if (++listener->consecutive_errors >= kMaxConsecutiveReceiveErrors) {
                        spdlog::error(
                            "line protocol: giving up on a socket after {} receive "
                            "errors: {}",
                            listener->consecutive_errors, ec.message());
                        return;
                    }
                } else {
                    listener->consecutive_errors = 0;
                    // The buffer is one byte longer than the limit, so a longer datagram shows.
                    impl.handle(std::string_view(listener->buffer.data(), size), *listener->sink);
                }
                if (!listener->stopped) receive(listener);
            });
    }

    template <class L>
    std::shared_ptr<L> makeListener(boost::asio::io_context& io, SampleSink& sink) {
        auto listener = std::make_shared<L>(io);
        listener->buffer.resize(static_cast<std::size_t>(config.max_datagram_bytes) + 1);
        listener->impl = this;
        listener->sink = &sink;
        return listener;
    }

    void startUdp(boost::asio::io_context& io, SampleSink& sink) {
        namespace ip = boost::asio::ip;
        auto listener = makeListener<UdpListener>(io, sink);
        const auto port =
            static_cast<std::uint16_t>(config.udp_port == kAnyFreeUdpPort ? 0 : config.udp_port);
        boost::system::error_code ec;
        listener->socket.open(ip::udp::v4(), ec);
        if (!ec) listener->socket.bind(ip::udp::endpoint(ip::address_v4::loopback(), port), ec);
        if (!ec) bound_port = listener->socket.local_endpoint(ec).port();
        if (ec) {
            bind_failed.inc();
            bound_port = 0;
            spdlog::error("line protocol: cannot listen on UDP 127.0.0.1:{}: {}", port,
                          ec.message());
            return;
        }
        udp = listener;
        receive(udp);
        spdlog::info("line protocol: listening on UDP 127.0.0.1:{}", bound_port);
    }

    void startUnix(boost::asio::io_context& io, SampleSink& sink) {
        const std::string& path = config.unix_socket;
        auto failed = [&](const std::string& why) {
            bind_failed.inc();
            spdlog::error("line protocol: cannot listen on {}: {}", path, why);
        };
        if (auto problem = unixSocketProblem(path); !problem.empty()) return failed(problem);
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0) {
            // Only a socket left behind by a previous run is removed, never a file someone put
            // there, nor the socket of an agent still running.
            if (!S_ISSOCK(st.st_mode)) return failed("the path exists and is not a socket");
            if (unixSocketInUse(path)) return failed("another process is listening on it");
            if (::unlink(path.c_str()) != 0) {
                return failed(std::string("cannot remove the stale socket: ") +
                              std::strerror(errno));
            }
        }
        auto listener = makeListener<UnixListener>(io, sink);
        boost::system::error_code ec;
        listener->socket.open(boost::asio::local::datagram_protocol(), ec);
        if (!ec) {
            listener->socket.bind(boost::asio::local::datagram_protocol::endpoint(path), ec);
        }
        if (ec) return failed(ec.message());
        unix_bound = true;
        // The mode is set on what was just bound, never through a symlink swapped in since.
        struct stat bound {};
        if (::lstat(path.c_str(), &bound) == 0 && S_ISSOCK(bound.st_mode)) {
            bound_device = bound.st_dev;
            bound_inode = bound.st_ino;
            if (::fchmodat(AT_FDCWD, path.c_str(), 0660, AT_SYMLINK_NOFOLLOW) != 0) {
                spdlog::warn("line protocol: cannot set mode 0660 on {}: {}", path,
                             std::strerror(errno));
            }
        }
        unix_listener = listener;
        receive(unix_listener);
        spdlog::info("line protocol: listening on {}", path);
    }

    void stopAll() {
        boost::system::error_code ec;
        if (udp) {
            udp->stopped = true;
            udp->socket.close(ec);
            udp.reset();
        }
        if (unix_listener) {
            unix_listener->stopped = true;
            unix_listener->socket.close(ec);
            unix_listener.reset();
        }
        if (unix_bound) {
            // Only the socket this source bound is removed, not whatever took its path since.
            struct stat now {};
            if (::lstat(config.unix_socket.c_str(), &now) == 0 && S_ISSOCK(now.st_mode) &&
                now.st_dev == bound_device && now.st_ino == bound_inode) {
                ::unlink(config.unix_socket.c_str());
            }
            unix_bound = false;
        }
        bound_port = 0;
    }

    LineProtocolConfig config;
    dev_t bound_device = 0;
    ino_t bound_inode = 0;
    const shared::Clock& clock;
    shared::Counter& samples;
    shared::Counter& too_long;
    shared::Counter& unknown_series;
    shared::Counter& unsupported;
    shared::Counter& receive_failed;
    shared::Counter& bind_failed;
    std::array<shared::Counter*, kLineErrorCount> line_errors{};
    std::map<std::string, FieldRoutes, std::less<>> routes;
    LineProtocolParser parser;

    // The datagram being handled.
    SampleSink* current_sink = nullptr;
    std::int64_t receive_wall_ms = 0;
    std::int64_t receive_mono_ms = 0;

    std::shared_ptr<UdpListener> udp;
    std::shared_ptr<UnixListener> unix_listener;
    std::uint16_t bound_port = 0;
    bool unix_bound = false;
};

shared::VoidResult LineProtocolSource::validate(const LineProtocolConfig& config,
                                                const std::vector<LineSensor>& sensors) {
    std::string problems;
    if (config.udp_port != kAnyFreeUdpPort && (config.udp_port < 0 || config.udp_port > 65535)) {
        problems +=
            "line_protocol.udp_port: " + std::to_string(config.udp_port) + " is not a port\n";
    }
    if (auto problem = unixSocketProblem(config.unix_socket); !problem.empty()) {
        problems += "line_protocol.unix_socket: " + problem + "\n";
    }
    if (config.max_datagram_bytes < 1) {
        problems += "line_protocol.max_datagram_bytes: must be positive\n";
    }
    if (!sensors.empty() && config.udp_port == 0 && config.unix_socket.empty()) {
        problems +=
            "line_protocol: sensors read from it, but neither udp_port nor unix_socket "
            "is set\n";
    }
    for (const auto& sensor : sensors) {
        if (sensor.config.measurement.empty() || sensor.config.field.empty()) {
            problems += "sensor " + std::to_string(sensor.sensor) +
                        ": measurement and field are required\n";
        }
    }
    if (problems.empty()) return shared::success();
    problems.pop_back();
    return shared::Error::stop("invalid_config", problems);
}

LineProtocolSource::LineProtocolSource(LineProtocolConfig config, std::vector<LineSensor> sensors,
                                       const shared::Clock& clock, shared::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(sensors), clock, metrics)) {}

LineProtocolSource::~LineProtocolSource() { stop(); }

void LineProtocolSource::start(boost::asio::io_context& io, SampleSink& sink) {
    impl_->stopAll();
    if (impl_->config.udp_port != 0) impl_->startUdp(io, sink);
    if (!impl_->config.unix_socket.empty()) impl_->startUnix(io, sink);
}

void LineProtocolSource::stop() { impl_->stopAll(); }

std::uint16_t LineProtocolSource::boundUdpPort() const { return impl_->bound_port; }

void LineProtocolSource::handleDatagram(std::string_view datagram, SampleSink& sink) {
    impl_->handle(datagram, sink);
}

}  // namespace tern::edge
