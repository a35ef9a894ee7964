#pragma once

namespace tern::sim {

// The whole tern-sim program; app/main.cpp only calls this, so tests can run it in-process.
int runMain(int argc, const char* const* argv);

}  // namespace tern::sim
