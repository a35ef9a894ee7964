#pragma once

namespace tern::edge {

// The whole tern-edge program; app/main.cpp only calls this, so tests can run it in-process.
int runMain(int argc, const char* const* argv);

}  // namespace tern::edge
