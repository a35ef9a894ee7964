#include "tern/sim/main.h"

#include <spdlog/spdlog.h>

#include "tern/shared/program.h"
#include "tern/sim/config.h"

namespace tern::sim {

shared::ConfigTable<SimConfig> configSchema() {
    return shared::ConfigTable<SimConfig>("", "tern-sim configuration")
        .table(&SimConfig::log, shared::logTable());
}

int runMain(int argc, const char* const* argv) {
    const shared::ProgramInfo info{
        "tern-sim", "Tern fleet simulator: runs many virtual gateways with the real edge pipeline",
        "/etc/tern/sim.toml"};
    return shared::runProgram<SimConfig>(
        info, argc, argv, configSchema(), [](const SimConfig&, const std::string&) {
            // Only configuration checking exists so far; say so rather than pretend to run.
            spdlog::error(
                "this build has no simulator yet (it lands with issue 6); only --check-config, "
                "--print-config-reference and --version work");
            return 1;
        });
}

}  // namespace tern::sim
