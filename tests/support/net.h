#pragma once

// Loopback networking helpers for fixtures and tests.

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tern::test {

sockaddr_in loopbackAddress(std::uint16_t port);

// A free TCP port on 127.0.0.1, asked of the kernel. Another process may take it before the
// caller binds it; callers that can, retry with a new port.
std::uint16_t freeTcpPort();

// True if something accepts TCP connections on 127.0.0.1:port.
bool acceptsTcp(std::uint16_t port);

// GET http://127.0.0.1:port<path> (HTTP/1.1, Connection: close): the status code and body, or
// nullopt if it cannot connect or the answer is not HTTP. Waits at most 5 s for the answer.
std::optional<std::pair<int, std::string>> httpGet(std::uint16_t port, const std::string& path);

// Any method, with a body (Content-Length is added) and extra headers; otherwise as httpGet.
std::optional<std::pair<int, std::string>> httpRequest(
    std::uint16_t port, const std::string& method, const std::string& path,
    const std::string& body = {},
    const std::vector<std::pair<std::string, std::string>>& headers = {});

}  // namespace tern::test
