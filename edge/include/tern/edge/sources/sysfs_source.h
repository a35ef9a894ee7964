#pragma once

// Readings from the Linux sysfs sensor interfaces: hwmon (/sys/class/hwmon/hwmonN) and IIO
// (/sys/bus/iio/devices/iio:deviceN). Polled on the loop thread: each read is an open/read/close of
// a file of a few bytes, which the kernel answers from the driver. Values are converted to the
// units in docs/edge-sources.md (°C, V, A, W, %RH, ...), then multiplied by the sensor's scale and
// shifted by its offset.
//
// Hot-unplug: a device is looked up by name when the source starts and again whenever one of its
// files cannot be read, so a sensor that vanishes yields no samples (each missed reading counted
// with a reason, one log line per ok -> failing transition) and resumes once the device is back,
// even under another hwmonN / iio:deviceN number.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/edge/source.h"
#include "tern/edge/sources/sensor_binding.h"
#include "tern/shared/clock.h"
#include "tern/shared/config.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// The top-level [sysfs] table.
struct SysfsConfig {
    // Where sysfs is mounted; tests point it at a fake tree.
    std::string root = "/sys";
};

// [sensor.sysfs]
struct SysfsSensorConfig {
    std::string kind = "hwmon";  // "hwmon" | "iio"
    // hwmon: the content of hwmonN/name ("cpu_thermal") or the directory name ("hwmon0");
    // iio: the content of iio:deviceN/name ("bme280") or the directory name ("iio:device0").
    std::string device;
    // hwmon: "temp1" reads temp1_input; a full attribute name ("power1_average") is read as is.
    // iio: "in_temp", "in_humidityrelative", "in_pressure", "in_voltage0", ...
    std::string channel;
    double scale = 1.0;   // applied after the unit conversion
    double offset = 0.0;  // added after scale
};

shared::ConfigTable<SysfsConfig> sysfsTable();
shared::ConfigTable<SysfsSensorConfig> sysfsSensorTable();

using SysfsSensor = SensorBinding<SysfsSensorConfig>;

// Why a sysfs reading was lost; the snake_case names are the `reason` label values.
enum class SysfsError { DeviceNotFound, ReadFailed, ParseFailed };
const char* sysfsErrorName(SysfsError error);

// A value as the kernel wrote it: decimal text, possibly signed or fractional, and a newline.
// nullopt when it is not a finite number.
std::optional<double> parseSysfsNumber(std::string_view text);

class SysfsSource final : public Source {
public:
    // Checks what the config tables cannot: that each channel name fits its kind. Every problem
    // is reported at once, as an Error::stop("invalid_config").
    static shared::VoidResult validate(const SysfsConfig& config,
                                       const std::vector<SysfsSensor>& sensors);

    // A sensor that does not pass validate() is logged at start and never read.
    SysfsSource(SysfsConfig config, std::vector<SysfsSensor> sensors, const shared::Clock& clock,
                shared::MetricsRegistry& metrics);
    ~SysfsSource() override;
    SysfsSource(const SysfsSource&) = delete;
    SysfsSource& operator=(const SysfsSource&) = delete;

    // Resolves every device, then reads each sensor at its interval (the first read at once).
    void start(boost::asio::io_context& io, SampleSink& sink) override;
    void stop() override;

    // Reads every sensor now, on the caller's thread, and hands the samples to sink. For tests and
    // benchmarks; do not call it while the source is started on a loop running on another thread.
    void pollOnce(SampleSink& sink);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::edge
