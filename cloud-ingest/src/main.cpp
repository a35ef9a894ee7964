#include "tern/ingest/main.h"

#include "tern/shared/program.h"

namespace tern::ingest {

int runMain(int argc, const char* const* argv) {
    CLI::App app{"tern-ingest"};
    shared::CommonOptions options;
    shared::addCommonOptions(app, "tern-ingest", options);
    if (auto exit_code = shared::parseCommandLine(app, argc, argv)) return *exit_code;
    return 0;
}

}  // namespace tern::ingest
