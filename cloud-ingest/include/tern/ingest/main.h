#pragma once

namespace tern::ingest {

// The whole tern-ingest program; app/main.cpp only calls this, so tests can run it in-process.
int runMain(int argc, const char* const* argv);

}  // namespace tern::ingest
