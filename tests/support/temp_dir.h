#pragma once

#include <filesystem>
#include <string>

namespace tern::test {

// A private (mode 0700) directory under $TMPDIR (or /tmp), removed with everything in it on
// destruction. Move-only.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "tern-test");
    ~TempDir();
    TempDir(TempDir&& other) noexcept;
    TempDir& operator=(TempDir&& other) noexcept;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace tern::test
