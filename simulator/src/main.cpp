#include "tern/sim/main.h"

#include "tern/shared/program.h"

namespace tern::sim {

int runMain(int argc, const char* const* argv) {
    CLI::App app{"tern-sim"};
    shared::CommonOptions options;
    shared::addCommonOptions(app, "tern-sim", options);
    if (auto exit_code = shared::parseCommandLine(app, argc, argv)) return *exit_code;
    return 0;
}

}  // namespace tern::sim
