#include "tern/ingest/main.h"

#include <spdlog/spdlog.h>

#include "tern/ingest/config.h"
#include "tern/shared/program.h"

namespace tern::ingest {

shared::ConfigTable<IngestConfig> configSchema() {
    return shared::ConfigTable<IngestConfig>("", "tern-ingest configuration")
        .table(&IngestConfig::log, shared::logTable());
}

int runMain(int argc, const char* const* argv) {
    const shared::ProgramInfo info{"tern-ingest",
                                   "Tern ingest: verifies, deduplicates and spools gateway "
                                   "telemetry, and fans it out to sinks",
                                   "/etc/tern/ingest.toml"};
    return shared::runProgram<IngestConfig>(
        info, argc, argv, configSchema(), [](const IngestConfig&, const std::string&) {
            // Only configuration checking exists so far; say so rather than pretend to run.
            spdlog::error(
                "this build has no ingest pipeline yet (it lands with issue 5); only "
                "--check-config, --print-config-reference and --version work");
            return 1;
        });
}

}  // namespace tern::ingest
