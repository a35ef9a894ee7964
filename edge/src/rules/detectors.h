#pragma once

// The state machine of each rule type, behind RuleEngine. A detector sees the samples of its
// rule's sensor (already filtered: finite values, quality not Bad) and says when an incident
// starts or ends; the engine owns the incident (its id, the alerts, the metrics). Detectors are
// called on the agent's loop thread only, never allocate after construction and never throw.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tern/edge/rules/rule_config.h"
#include "tern/edge/stage.h"

namespace tern::edge::rules {

enum class Change : std::uint8_t { None, Fire, Resolve };

class Detector {
public:
    virtual ~Detector() = default;

    // firing: whether the rule has an open incident. Returns Fire only when !firing and Resolve
    // only when firing, so each incident fires once and resolves once.
    virtual Change onSample(const Sample& sample, bool firing) = 0;

    // Called only for detectors whose needsTicks() is true (the engine keeps a list of them).
    virtual Change onTick(const Tick& /*now*/, bool /*firing*/) { return Change::None; }
    virtual bool needsTicks() const { return false; }

    // Writes the generated alert text for the change onSample or onTick just returned into out,
    // replacing its content; out is reused, so an alert allocates nothing once it has grown.
    virtual void describe(Change change, std::string_view sensor, std::string& out) const = 0;
};

// A detector for config with its defaults applied; null when config.type is not a rule type.
// Values that validateRule would reject are clamped into a safe domain rather than trusted.
std::unique_ptr<Detector> makeDetector(const RuleConfig& config);

}  // namespace tern::edge::rules
