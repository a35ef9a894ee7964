#include "temp_dir.h"

#include <cerrno>
#include <cstdlib>
#include <system_error>
#include <utility>
#include <vector>

namespace tern::test {

TempDir::TempDir(const std::string& prefix) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = (std::filesystem::path(base != nullptr && *base != '\0' ? base : "/tmp") /
                           (prefix + "-XXXXXX"))
                              .string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
        throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    }
    path_ = buf.data();
}

TempDir::~TempDir() {
    if (!path_.empty()) {
        std::error_code ec;  // best effort: a destructor must not throw
        std::filesystem::remove_all(path_, ec);
    }
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
    if (this != &other) {
        TempDir old(std::move(*this));
        path_ = std::exchange(other.path_, {});
    }
    return *this;
}

}  // namespace tern::test
