#include "tern/sim/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tern::sim {

using namespace std::chrono_literals;

namespace {

std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A uniform value in [-1, 1] from a hash.
double signedUnit(std::uint64_t bits) {
    return static_cast<double>(bits >> 11) / static_cast<double>(1ULL << 53) * 2.0 - 1.0;
}

// Which gateways a fault hits: `n` of `total`, by a Fisher-Yates shuffle seeded per fault.
std::vector<std::size_t> pick(std::size_t total, const FaultConfig& fault, std::uint64_t seed,
                              std::size_t fault_index) {
    const std::size_t n =
        fault.count > 0
            ? std::min<std::size_t>(static_cast<std::size_t>(fault.count), total)
            : static_cast<std::size_t>(std::llround(fault.fraction * static_cast<double>(total)));
    std::vector<std::size_t> order(total);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::uint64_t state = mixSeed(seed, 0xfa017, fault_index);
    for (std::size_t i = 0; i < n; ++i) {
        state = splitmix(state);
        const std::size_t j = i + static_cast<std::size_t>(state % (total - i));
        std::swap(order[i], order[j]);
    }
    order.resize(n);
    std::sort(order.begin(), order.end());
    return order;
}

bool runningAt(const GatewayPlan& plan, std::chrono::milliseconds at) {
    if (at < plan.power_on) return false;
    return std::none_of(plan.reboots.begin(), plan.reboots.end(),
                        [&](const Interval& r) { return at >= r.at && at < r.end(); });
}

}  // namespace

std::uint64_t mixSeed(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
    return splitmix(splitmix(splitmix(a) ^ b) ^ c);
}

std::string gatewayId(const FleetConfig& fleet, std::size_t index) {
    return fmt::format("{}{:05}", fleet.id_prefix, index + 1);
}

FleetPlan planFleet(const SimConfig& config, std::size_t first, std::size_t count) {
    FleetPlan plan;
    const auto n = static_cast<std::size_t>(config.fleet.gateways);
    const auto seed = static_cast<std::uint64_t>(config.fleet.seed);
    first = std::min(first, n);
    count = std::min(count, n - first);
    plan.first = first;
    plan.gateways.resize(count);
    for (std::size_t g = first; g < first + count; ++g) {
        auto& gw = plan.gateways[g - first];
        gw.index = g;
        gw.id = gatewayId(config.fleet, g);
        gw.power_on = n <= 1 ? 0ms
                             : config.fleet.start_spread * static_cast<std::int64_t>(g) /
                                   static_cast<std::int64_t>(n);
        gw.config = config.gateway;
        gw.config.uplink.gateway_id = gw.id;
        for (std::size_t s = 0; s < gw.config.sensors.size(); ++s) {
            auto& sim = gw.config.sensors[s].simulated;
            const auto bits = mixSeed(seed, g, s);
            sim.seed = static_cast<std::int64_t>(bits >> 1);
            sim.base *= 1.0 + config.fleet.vary * signedUnit(splitmix(bits ^ 0xba5e));
            sim.amplitude *= 1.0 + config.fleet.vary * signedUnit(splitmix(bits ^ 0xa3b1));
            // Faults come only from the timeline, so every injected anomaly is in the plan.
            sim.faults.clear();
        }
    }
    for (std::size_t f = 0; f < config.faults.size(); ++f) {
        const auto& fault = config.faults[f];
        const Interval span{fault.at, fault.duration};
        if (fault.kind == "broker_outage") {
            plan.broker_outages.push_back(span);
            continue;
        }
        for (const auto g : pick(n, fault, seed, f)) {
            if (g < first || g >= first + count) continue;
            auto& gw = plan.gateways[g - first];
            if (fault.kind == "network_outage") {
                gw.network_outages.push_back(span);
            } else if (fault.kind == "reboot") {
                gw.reboots.push_back(span);
            } else if (fault.kind == "clock_skew") {
                gw.clock_steps.push_back({fault.at, fault.behind ? -fault.skew : fault.skew});
            } else if (fault.kind == "boot_1970") {
                gw.clock_sync_at = gw.power_on + fault.duration;
            } else if (isSensorFault(fault.kind)) {
                const auto& sensors = gw.config.sensors;
                const auto found = std::find_if(sensors.begin(), sensors.end(), [&](const auto& s) {
                    return s.name == fault.sensor;
                });
                if (found == sensors.end()) continue;  // validateSimConfig refuses this
                const auto index = static_cast<std::uint16_t>(found - sensors.begin());
                gw.config.sensors[index].simulated.faults.push_back(edge::SimulatedFaultConfig{
                    fault.kind, fault.at, fault.duration, fault.magnitude});
                gw.anomalies.push_back({fault.sensor, index, fault.kind, fault.at, false});
            }
        }
    }
    for (auto& gw : plan.gateways) {
        std::sort(gw.reboots.begin(), gw.reboots.end(),
                  [](const Interval& a, const Interval& b) { return a.at < b.at; });
        std::sort(gw.clock_steps.begin(), gw.clock_steps.end(),
                  [](const ClockStep& a, const ClockStep& b) { return a.at < b.at; });
        for (auto& anomaly : gw.anomalies) {
            const bool ruled =
                std::any_of(gw.config.rules.begin(), gw.config.rules.end(),
                            [&](const auto& r) { return r.sensor == anomaly.sensor; });
            // A spike is what the edge rules exist to catch; drift, stuck and dropout shape the
            // data and may or may not cross a rule, so only spikes are owed an alert.
            anomaly.expect_alert = anomaly.kind == "spike" && ruled && runningAt(gw, anomaly.at);
        }
    }
    return plan;
}

edge::EdgeConfig bootConfig(const GatewayPlan& plan, std::chrono::milliseconds since_start,
                            unsigned boot) {
    edge::EdgeConfig config = plan.config;
    for (std::size_t s = 0; s < config.sensors.size(); ++s) {
        auto& sim = config.sensors[s].simulated;
        if (boot > 0) {
            sim.seed = static_cast<std::int64_t>(
                mixSeed(static_cast<std::uint64_t>(sim.seed), boot, s) >> 1);
        }
        std::vector<edge::SimulatedFaultConfig> kept;
        for (auto fault : sim.faults) {
            const bool open_ended = fault.duration == 0ms && fault.kind != "spike";
            const auto end = fault.start + fault.duration;
            if (fault.start >= since_start) {
                fault.start -= since_start;
            } else if (open_ended || end > since_start) {
                if (!open_ended) fault.duration = end - since_start;
                fault.start = 0ms;
            } else {
                continue;  // over before this boot
            }
            kept.push_back(fault);
        }
        sim.faults = std::move(kept);
    }
    return config;
}

}  // namespace tern::sim
