#pragma once

// The edge pipeline's benchmark configuration, shared by edge_pipeline_bench (speed on this
// machine) and reading_workload (instructions per reading on each architecture): the config a
// fleet operator would write for 100 sensors, the seed's four kinds in turn, five rules on each,
// a quarter of the sensors per downsampling mode.

#include <fmt/format.h>

#include <string>

namespace tern::bench {

inline constexpr int kSensors = 100;
inline constexpr const char* kModes[] = {"raw", "aggregate", "deadband", "swinging-door"};

inline std::string pipelineConfig(bool with_rules, bool with_downsampling) {
    std::string toml =
        "[uplink]\ngateway_id = \"gw-1\"\n[batch]\nmax_readings = 1000\nmax_age = \"10s\"\n";
    const char* kinds[] = {"temperature", "humidity", "vibration", "power"};
    for (int i = 0; i < kSensors; ++i) {
        toml += fmt::format(
            "[[sensor]]\nname = \"s{0}\"\nkind = \"{1}\"\nsource = \"simulated\"\ninterval = "
            "\"1s\"\n"
            "[sensor.simulated]\nmodel = \"sine\"\nbase = {2}\namplitude = 2.0\nperiod = "
            "\"1h\"\nnoise = 0.05\n"
            "resolution = 0.01\nseed = {0}\n",
            i, kinds[i % 4], 20 + i);
        const std::string mode = with_downsampling ? kModes[i % 4] : "raw";
        toml += fmt::format("[sensor.downsample]\nmode = \"{}\"\n", mode);
        if (mode == "aggregate") toml += "window = \"1m\"\n";
        if (mode == "deadband") toml += "deadband = 0.1\n";
        if (mode == "swinging-door") toml += "error = 0.05\n";
        if (!with_rules) continue;
        toml += fmt::format(
            "[[rule]]\nid = \"s{0}-high\"\nsensor = \"s{0}\"\ntype = \"threshold\"\nabove = "
            "{1}\nhysteresis = 0.5\n"
            "min_duration = \"5s\"\n"
            "[[rule]]\nid = \"s{0}-rate\"\nsensor = \"s{0}\"\ntype = \"rate_of_change\"\nmax_rate "
            "= 5.0\n"
            "[[rule]]\nid = \"s{0}-sigma\"\nsensor = \"s{0}\"\ntype = \"zscore\"\nwindow = 60\nk = "
            "3.0\n"
            "[[rule]]\nid = \"s{0}-stuck\"\nsensor = \"s{0}\"\ntype = \"flatline\"\nduration = "
            "\"5m\"\n"
            "[[rule]]\nid = \"s{0}-missing\"\nsensor = \"s{0}\"\ntype = \"missing\"\ntimeout = "
            "\"30s\"\n",
            i, 20 + i + 1.9);
    }
    return toml;
}

}  // namespace tern::bench
