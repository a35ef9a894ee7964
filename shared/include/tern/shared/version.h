#pragma once

#include <string_view>

namespace tern::shared {

// The release version of the Tern programs (CMake's project version).
std::string_view projectVersion();

// The wire schema version every message carries (shared/schema/README.md says when it grows).
int schemaVersion();

}  // namespace tern::shared
