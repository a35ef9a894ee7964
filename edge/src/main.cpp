#include "tern/edge/main.h"

#include "tern/shared/program.h"

namespace tern::edge {

int runMain(int argc, const char* const* argv) {
    CLI::App app{"tern-edge"};
    shared::CommonOptions options;
    shared::addCommonOptions(app, "tern-edge", options);
    if (auto exit_code = shared::parseCommandLine(app, argc, argv)) return *exit_code;
    return 0;
}

}  // namespace tern::edge
