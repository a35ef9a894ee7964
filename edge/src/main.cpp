#include "tern/edge/main.h"

#include "tern/edge/agent/agent.h"
#include "tern/edge/config.h"
#include "tern/shared/program.h"

namespace tern::edge {

int runMain(int argc, const char* const* argv) {
    const shared::ProgramInfo info{
        "tern-edge",
        "Tern edge agent: reads sensors, runs local rules, stores and forwards telemetry over MQTT",
        "/etc/tern/edge.toml"};
    return shared::runProgram<EdgeConfig>(
        info, argc, argv, configSchema(),
        [](const EdgeConfig& config, const std::string& path) { return runAgent(config, path); },
        validateEdgeConfig);
}

}  // namespace tern::edge
