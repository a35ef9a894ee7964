#pragma once

// A small asynchronous HTTP/1.1 server on Boost.Beast, for the edge agent's /healthz and /metrics
// and the cloud ingest's JSON API. Each request is read whole (within max_body_bytes), handed to
// one handler, and its response is written with Content-Length; connections are kept alive.
//
// Threads and ownership:
// - The caller owns the io_context, runs it on ONE thread and keeps it alive for the server's
//   lifetime. The handler and all I/O run on that thread. start() and stop() (and the destructor,
//   which calls stop()) must run on that thread or while the io_context is not running.
// - The server owns its acceptor and connections. After stop() the handler is never called again,
//   though the server's internal state (holding the handler) may live on until the io_context has
//   run the aborted operations or is destroyed; a handler must not rely on being destroyed at stop.
//
// What the server answers by itself, each counted in tern_http_errors_total{server, reason}:
// - 400 malformed: the request does not parse (connection closed), or its target does not start
//   with '/' or its query has an invalid percent escape (kept alive: the request was read whole).
// - 413 body_too_large: the body is longer than max_body_bytes (connection closed).
// - 431 header_too_large: request line and headers exceed 8 KiB (connection closed).
// - 500 handler_failed: the handler threw, or returned a response the server cannot send (status
//   outside 200..599, a header name that is not a token, CR/LF/NUL in a header value, or a header
//   the server sets itself: Content-Length, Content-Type, Transfer-Encoding, Connection, Server).
//   Kept alive: one bad request must not take the server down.
// - connection_limit: a connection beyond max_connections is closed at once, without a response.
// A closed connection is first drained for up to 2 s, so that a client still sending a refused
// body reads the response instead of a reset.
// A connection that does not deliver a whole request within idle_timeout (an idle keep-alive
// connection, or a slow sender) is closed without a response.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::shared {

namespace detail {
struct HttpServerState;  // shared by the server and its connections; see http_server.cpp
}  // namespace detail

struct HttpRequest {
    // As sent ("GET", "POST", ...), except that a HEAD request arrives as "GET": every GET route
    // answers HEAD, and the server drops the body from the response.
    std::string method;
    // The request target up to '?', not percent-decoded (so "%2F" stays distinct from "/").
    std::string path;
    // The query, split on '&' and at the first '=' of each part, with '+' read as a space and
    // %XX escapes decoded (to any bytes, NUL included). A name given twice keeps its first value.
    std::map<std::string, std::string> query;
    // Every header in the order received; names as sent.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // The value of the first header named `name` (ASCII case-insensitive), or "" if none.
    std::string header(std::string_view name) const;
};

struct HttpResponse {
    unsigned status = 200;
    // Sent as Content-Type unless empty.
    std::string content_type = "text/plain; charset=utf-8";
    // Not sent for a HEAD request (Content-Length still says how long it is), nor with 204 or 304.
    std::string body;
    // Extra headers, sent in this order; see above for the names the server keeps for itself.
    std::vector<std::pair<std::string, std::string>> headers;
};

// Runs on the io_context thread and must return quickly: every connection waits for it. It may
// throw; the client then gets a 500.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
    // Names the server in log lines and in the `server` label of its metrics.
    std::string name = "http";
    // A numeric IPv4 or IPv6 address; no name lookup.
    std::string address = "127.0.0.1";
    // 0 binds an ephemeral port; port() tells which.
    std::uint16_t port = 0;
    // Open connections, including ones being closed; more are closed at once on accept.
    std::size_t max_connections = 64;
    std::size_t max_body_bytes = 64 * 1024;
    // A connection is closed when a whole request has not arrived this long after it connected
    // or after its previous response, or when a response takes this long to send.
    std::chrono::milliseconds idle_timeout{30000};
};

class HttpServer {
public:
    // Binds and listens on options.address:options.port and starts accepting on io (the caller
    // runs io). Fails with Error::stop: "invalid_http_options" for an address that does not parse,
    // max_connections or max_body_bytes of 0, a non-positive idle_timeout or an empty handler;
    // "http_listen_failed" when the address cannot be bound (in use, not local, no permission).
    // Registers its metrics in `metrics`, which must outlive the server's internal state (see
    // the ownership note above; in practice: outlive the io_context).
    static Result<std::unique_ptr<HttpServer>> start(boost::asio::io_context& io,
                                                     HttpServerOptions options, HttpHandler handler,
                                                     MetricsRegistry& metrics);

    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // The bound port; still valid after stop().
    std::uint16_t port() const;

    // Closes the listener and every connection, without waiting for responses in flight. Safe to
    // call more than once, and from inside the handler.
    void stop();

private:
    explicit HttpServer(std::shared_ptr<detail::HttpServerState> state);

    std::shared_ptr<detail::HttpServerState> state_;
};

// "127.0.0.1:9464" -> (address, port); nullopt unless an IPv4 address and a port 0-65535.
std::optional<std::pair<std::string, std::uint16_t>> parseListenAddress(std::string_view text);

}  // namespace tern::shared
