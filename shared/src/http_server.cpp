#include "tern/shared/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <exception>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

namespace tern::shared {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// Request line plus headers (Beast's default for requests, stated here because the header
// promises it).
constexpr std::uint32_t kMaxHeaderBytes = 8 * 1024;
// The read buffer must hold a whole header; the body only passes through it. The slack leaves
// room for a pipelined request arriving behind a full-size one.
constexpr std::size_t kReadBufferBytes = 2 * kMaxHeaderBytes;
// Closing a socket that still has unread input makes the kernel send RST: a client still sending
// the body we refused gets its write failed and never reads our 413. So a connection is closed
// the way Apache and nginx do it ("lingering close"): shut down our side, then read and discard
// until the client closes, for at most this long. Time alone bounds it; discarding costs nothing.
constexpr std::chrono::seconds kLingerTime{2};
// A failing accept() (EMFILE, ENOBUFS) usually fails again at once: wait instead of spinning.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kServerHeader = "tern";

// Why the server answered or closed a connection by itself; the metrics label of each.
enum class Refusal {
    Malformed,
    BodyTooLarge,
    HeaderTooLarge,
    HandlerFailed,
    ConnectionLimit,
    AcceptFailed,
};
constexpr std::array<std::string_view, 6> kRefusalNames = {
    "malformed",      "body_too_large",   "header_too_large",
    "handler_failed", "connection_limit", "accept_failed",
};

// Beast 1.74 speaks boost::string_view; these keep the conversions in one place.
beast::string_view toBeast(std::string_view s) { return {s.data(), s.size()}; }
std::string toString(beast::string_view s) { return {s.data(), s.size()}; }

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
    }
    return true;
}

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// One query name or value, as an HTML form encodes it. False on a '%' not followed by two hex
// digits: guessing what the client meant would make two servers read one URL differently.
bool decodeQueryComponent(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '+') {
            out += ' ';
        } else if (c != '%') {
            out += c;
        } else {
            if (i + 2 >= in.size()) return false;
            const int high = hexDigit(in[i + 1]);
            const int low = hexDigit(in[i + 2]);
            if (high < 0 || low < 0) return false;
            out += static_cast<char>(high * 16 + low);
            i += 2;
        }
    }
    return true;
}

// Fills request.path and request.query from an origin-form target ("/path?query"). Returns why
// the target is unacceptable, or "" if it is fine.
std::string parseTarget(std::string_view target, HttpRequest& request) {
    if (target.empty() || target.front() != '/') return "request target does not start with '/'";
    const auto question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question == std::string_view::npos) return "";
    std::string_view rest = target.substr(question + 1);
    std::string name;
    std::string value;
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (part.empty()) continue;
        const auto equals = part.find('=');
        value.clear();
        if (!decodeQueryComponent(part.substr(0, equals), name) ||
            (equals != std::string_view::npos &&
             !decodeQueryComponent(part.substr(equals + 1), value))) {
            return "invalid percent escape in the query";
        }
        request.query.emplace(name, value);  // emplace keeps the first value of a repeated name
    }
    return "";
}

bool isTokenChar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// CR or LF would let a value start a header (or a body) of its own.
bool isSafeHeaderValue(std::string_view value) {
    return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Headers the server writes itself; a second copy from the handler would contradict them.
constexpr std::array<std::string_view, 5> kServerOwnedHeaders = {
    "content-length", "content-type", "transfer-encoding", "connection", "server"};

// Why a handler's response cannot be sent, or "" if it can.
std::string responseProblem(const HttpResponse& response) {
    if (response.status < 200 || response.status > 599) {
        return fmt::format("status {} is outside 200..599", response.status);
    }
    if (!isSafeHeaderValue(response.content_type)) return "content type contains CR, LF or NUL";
    for (const auto& [name, value] : response.headers) {
        if (name.empty() || !std::all_of(name.begin(), name.end(), isTokenChar)) {
            return fmt::format("header name \"{}\" is not a token", name);
        }
        for (const std::string_view owned : kServerOwnedHeaders) {
            if (equalsIgnoreCase(name, owned)) {
                return fmt::format("header {} is set by the server", name);
            }
        }
        if (!isSafeHeaderValue(value)) {
            return fmt::format("value of header {} contains CR, LF or NUL", name);
        }
    }
    return "";
}

std::string endpointText(const tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    return address.is_v6() ? fmt::format("[{}]:{}", address.to_string(), endpoint.port())
                           : fmt::format("{}:{}", address.to_string(), endpoint.port());
}

const boost::system::error_category& httpErrorCategory() {
    return http::make_error_code(http::error::bad_method).category();
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (equalsIgnoreCase(key, name)) return value;
    }
    return "";
}

namespace detail {

class HttpSession;

// Owned jointly by the HttpServer and every connection (and pending accept), so that completions
// still queued after the server is destroyed find it alive; `stopped` tells them to do nothing.
struct HttpServerState : std::enable_shared_from_this<HttpServerState> {
    HttpServerState(net::io_context& io, HttpServerOptions options_in, HttpHandler handler_in,
                    MetricsRegistry& metrics)
        : options(std::move(options_in)),
          handler(std::move(handler_in)),
          acceptor(io),
          accept_retry(io),
          connections(metrics.counter("tern_http_connections_total", "HTTP connections accepted",
                                      {{"server", options.name}})),
          requests(metrics.counter("tern_http_requests_total",
                                   "HTTP requests passed to the handler",
                                   {{"server", options.name}})),
          open_connections(metrics.gauge("tern_http_open_connections", "HTTP connections open",
                                         {{"server", options.name}})) {
        for (std::size_t i = 0; i < kRefusalNames.size(); ++i) {
            refusals[i] = &metrics.counter(
                "tern_http_errors_total",
                "HTTP requests answered, or connections closed, by the server itself, by reason",
                {{"server", options.name}, {"reason", std::string(kRefusalNames[i])}});
        }
    }

    void count(Refusal refusal) { refusals[static_cast<std::size_t>(refusal)]->inc(); }

    void accept();
    void onAccept(const boost::system::error_code& ec, tcp::socket socket);
    void stop();

    const HttpServerOptions options;
    const HttpHandler handler;
    tcp::acceptor acceptor;
    net::steady_timer accept_retry;
    std::uint16_t port = 0;
    bool stopped = false;
    // Registered by each session's constructor and removed by its destructor, so stop() can
    // close them and accept() can count them.
    std::unordered_set<HttpSession*> sessions;

    Counter& connections;
    Counter& requests;
    Gauge& open_connections;
    std::array<Counter*, kRefusalNames.size()> refusals{};
};

// One connection: read a request, answer it, repeat while both sides keep the connection alive.
// At most one operation is outstanding at a time, so the completion handlers never overlap.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(std::shared_ptr<HttpServerState> server, tcp::socket socket)
        : server_(std::move(server)), stream_(std::move(socket)), buffer_(kReadBufferBytes) {
        server_->sessions.insert(this);
        server_->open_connections.set(static_cast<double>(server_->sessions.size()));
    }

    ~HttpSession() {
        server_->sessions.erase(this);
        server_->open_connections.set(static_cast<double>(server_->sessions.size()));
    }

    HttpSession(const HttpSession&) = delete;
    HttpSession& operator=(const HttpSession&) = delete;

    void start() { readHeader(); }

    // From stop(): pending operations complete with operation_aborted and release the session.
    void abort() { stream_.close(); }

private:
    void readHeader() {
        // A fresh parser per request: Beast's parsers cannot be reused.
        parser_.emplace();
        parser_->header_limit(kMaxHeaderBytes);
        parser_->body_limit(server_->options.max_body_bytes);
        // One deadline for the whole request: a client trickling bytes cannot hold the
        // connection longer than an idle one.
        stream_.expires_after(server_->options.idle_timeout);
        http::async_read_header(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onHeader(ec); });
    }

    void onHeader(beast::error_code ec) {
        if (ec) return onReadFailed(ec);
        if (server_->stopped) return closeNow();
        const auto& request = parser_->get();
        // curl and others wait (a second, for curl) for this before sending a body.
        if (request.version() >= 11 && !parser_->is_done() &&
            beast::iequals(request[http::field::expect], "100-continue")) {
            net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                             [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                                 if (write_ec || self->server_->stopped) return self->closeNow();
                                 self->readBody();
                             });
            return;
        }
        readBody();
    }

    void readBody() {
        if (parser_->is_done()) return onRequest({});
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->onRequest(ec);
                         });
    }

    void onReadFailed(beast::error_code ec) {
        if (server_->stopped) return closeNow();
        if (ec == http::error::body_limit) {
            return refuse(Refusal::BodyTooLarge, http::status::payload_too_large,
                          "request body too large\n");
        }
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
            return refuse(Refusal::HeaderTooLarge, http::status::request_header_fields_too_large,
                          "request header too large\n");
        }
        // end_of_stream is a clean close between requests, partial_message a close in the middle
        // of one; there is nobody left to answer either.
        if (ec.category() == httpErrorCategory() && ec != http::error::end_of_stream &&
            ec != http::error::partial_message) {
            spdlog::debug("{}: malformed request from {}: {}", server_->options.name, peer(),
                          ec.message());
            return refuse(Refusal::Malformed, http::status::bad_request, "malformed request\n");
        }
        // Timeouts, resets, operation_aborted: the connection is already unusable.
        closeNow();
    }

    void onRequest(beast::error_code ec) {
        if (ec) return onReadFailed(ec);
        if (server_->stopped) return closeNow();
        auto& message = parser_->get();
        const bool head = message.method() == http::verb::head;
        const unsigned version = message.version();
        const bool keep_alive = message.keep_alive();

        HttpRequest request;
        request.method = head ? "GET" : toString(message.method_string());
        if (auto problem = parseTarget(toString(message.target()), request); !problem.empty()) {
            server_->count(Refusal::Malformed);
            spdlog::debug("{}: bad request from {}: {}", server_->options.name, peer(), problem);
            HttpResponse bad{400, "text/plain; charset=utf-8", problem + "\n", {}};
            return send(std::move(bad), version, head, keep_alive);
        }
        for (const auto& field : message) {
            request.headers.emplace_back(toString(field.name_string()), toString(field.value()));
        }
        request.body = std::move(message.body());

        server_->requests.inc();
        HttpResponse response;
        std::string failure;
        try {
            response = server_->handler(request);
        } catch (const std::exception& e) {
            failure = fmt::format("handler threw: {}", e.what());
        } catch (...) {
            failure = "handler threw a non-std::exception";
        }
        // The handler may have stopped the server; the connection is closed already.
        if (server_->stopped) return closeNow();
        if (failure.empty()) {
            if (auto problem = responseProblem(response); !problem.empty()) {
                failure = "bad response: " + problem;
            }
        }
        if (!failure.empty()) {
            server_->count(Refusal::HandlerFailed);
            spdlog::error("{}: {} {}: {}", server_->options.name, request.method, request.path,
                          failure);
            response = HttpResponse{500, "text/plain; charset=utf-8", "internal error\n", {}};
        }
        send(std::move(response), version, head, keep_alive);
    }

    // Answers a request that could not be read whole, then closes: what is left of it on the
    // wire cannot be told apart from a next request.
    void refuse(Refusal refusal, http::status status, std::string_view text) {
        server_->count(refusal);
        send(
            HttpResponse{
                static_cast<unsigned>(status), "text/plain; charset=utf-8", std::string(text), {}},
            11, false, false);
    }

    void send(HttpResponse out, unsigned version, bool head, bool keep_alive) {
        response_ = {};
        response_.version(version);
        response_.result(out.status);
        response_.set(http::field::server, toBeast(kServerHeader));
        if (!out.content_type.empty()) response_.set(http::field::content_type, out.content_type);
        for (const auto& [name, value] : out.headers) response_.insert(name, value);
        // 204 and 304 have no body by definition, and RFC 9110 forbids Content-Length on a 204.
        if (out.status != 204 && out.status != 304) {
            response_.content_length(out.body.size());
            if (!head) response_.body() = std::move(out.body);
        }
        response_.keep_alive(keep_alive);
        stream_.expires_after(server_->options.idle_timeout);
        http::async_write(
            stream_, response_,
            [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                if (ec || self->server_->stopped) return self->closeNow();
                if (!keep_alive) return self->lingerThenClose();
                self->readHeader();
            });
    }

    void lingerThenClose() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return closeNow();
        buffer_.consume(buffer_.size());
        stream_.expires_after(kLingerTime);
        drain();
    }

    void drain() {
        // Never committed: the buffer only lends its storage.
        stream_.async_read_some(buffer_.prepare(kReadBufferBytes),
                                [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                    if (ec || self->server_->stopped) return self->closeNow();
                                    self->drain();
                                });
    }

    void closeNow() { stream_.close(); }

    std::string peer() {
        beast::error_code ec;
        const auto endpoint = stream_.socket().remote_endpoint(ec);
        return ec ? std::string("unknown peer") : endpointText(endpoint);
    }

    std::shared_ptr<HttpServerState> server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
};

void HttpServerState::accept() {
    acceptor.async_accept(
        [self = shared_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
            self->onAccept(ec, std::move(socket));
        });
}

void HttpServerState::onAccept(const boost::system::error_code& ec, tcp::socket socket) {
    if (stopped || ec == net::error::operation_aborted) return;
    if (ec) {
        count(Refusal::AcceptFailed);
        spdlog::warn("{}: accept failed: {}", options.name, ec.message());
        accept_retry.expires_after(kAcceptRetryDelay);
        accept_retry.async_wait(
            [self = shared_from_this()](const boost::system::error_code& wait_ec) {
                if (!wait_ec && !self->stopped) self->accept();
            });
        return;
    }
    if (sessions.size() >= options.max_connections) {
        // No response: writing one would cost the very resources the limit protects.
        count(Refusal::ConnectionLimit);
        boost::system::error_code ignored;
        socket.close(ignored);
    } else {
        connections.inc();
        std::make_shared<HttpSession>(shared_from_this(), std::move(socket))->start();
    }
    accept();
}

void HttpServerState::stop() {
    if (stopped) return;
    stopped = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    // abort() only closes sockets; sessions go away later, as their completions run, so the set
    // does not change under this loop.
    for (HttpSession* session : sessions) session->abort();
    spdlog::info("{}: stopped", options.name);
}

}  // namespace detail

Result<std::unique_ptr<HttpServer>> HttpServer::start(net::io_context& io,
                                                      HttpServerOptions options,
                                                      HttpHandler handler,
                                                      MetricsRegistry& metrics) {
    const auto invalid = [&](const std::string& why) {
        return Error::stop("invalid_http_options", fmt::format("{}: {}", options.name, why));
    };
    boost::system::error_code ec;
    const auto address = net::ip::make_address(options.address, ec);
    if (ec) {
        return invalid(fmt::format("address \"{}\" is not a numeric IP address", options.address));
    }
    if (options.max_connections == 0) return invalid("max_connections is 0");
    if (options.max_body_bytes == 0) return invalid("max_body_bytes is 0");
    if (options.idle_timeout <= std::chrono::milliseconds::zero()) {
        return invalid("idle_timeout is not positive");
    }
    if (!handler) return invalid("no handler");

    auto state = std::make_shared<detail::HttpServerState>(io, std::move(options),
                                                           std::move(handler), metrics);
    const tcp::endpoint endpoint(address, state->options.port);
    auto& acceptor = state->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    // Lets a restarted agent bind while connections of its previous run sit in TIME_WAIT; it
    // does not let two live servers share a port.
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (!ec) state->port = acceptor.local_endpoint(ec).port();
    if (ec) {
        return Error::stop("http_listen_failed",
                           fmt::format("{}: cannot listen on {}: {}", state->options.name,
                                       endpointText(endpoint), ec.message()));
    }
    state->accept();
    spdlog::info("{}: listening on {}", state->options.name,
                 endpointText(tcp::endpoint(address, state->port)));
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

HttpServer::HttpServer(std::shared_ptr<detail::HttpServerState> state) : state_(std::move(state)) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::port() const { return state_->port; }

void HttpServer::stop() { state_->stop(); }

std::optional<std::pair<std::string, std::uint16_t>> parseListenAddress(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    const auto host = std::string(text.substr(0, colon));
    const auto port_text = text.substr(colon + 1);
    if (port_text.empty() || port_text.size() > 5) return std::nullopt;
    unsigned port = 0;
    for (char c : port_text) {
        if (c < '0' || c > '9') return std::nullopt;
        port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (port > 65535) return std::nullopt;
    boost::system::error_code ec;
    boost::asio::ip::make_address_v4(host, ec);
    if (ec) return std::nullopt;
    return std::pair{host, static_cast<std::uint16_t>(port)};
}

}  // namespace tern::shared
