#include "tern/shared/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tern::shared {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Bounds every client operation, so a server that never answers fails a test instead of hanging
// it. Far longer than anything here should take.
constexpr std::chrono::seconds kDeadline{10};

// A blocking client on its own io_context: each call runs that context until its operation
// completes or kDeadline passes (the operation then fails with beast::error::timeout).
class TestClient {
public:
    struct Reply {
        beast::error_code error;
        http::response<http::string_body> response;
    };

    explicit TestClient(std::uint16_t port) : stream_(io_) {
        stream_.expires_after(kDeadline);
        stream_.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), port),
                              [this](beast::error_code ec) { connect_error_ = ec; });
        run();
    }

    beast::error_code connectError() const { return connect_error_; }

    beast::error_code send(std::string_view raw) {
        beast::error_code result;
        stream_.expires_after(kDeadline);
        net::async_write(stream_, net::buffer(raw.data(), raw.size()),
                         [&](beast::error_code ec, std::size_t) { result = ec; });
        run();
        return result;
    }

    // One response. For a response to HEAD, head must be true: its Content-Length describes a
    // body that is not sent.
    Reply receive(bool head = false) {
        Reply reply;
        http::response_parser<http::string_body> parser;
        parser.skip(head);
        stream_.expires_after(kDeadline);
        http::async_read(stream_, buffer_, parser,
                         [&](beast::error_code ec, std::size_t) { reply.error = ec; });
        run();
        if (!reply.error) reply.response = parser.release();
        return reply;
    }

    Reply roundTrip(std::string_view raw, bool head = false) {
        if (auto ec = send(raw)) return Reply{ec, {}};
        return receive(head);
    }

    // Reads until the server closes the connection. eof means it closed cleanly; timeout means
    // it did not close within kDeadline. Bytes read on the way are returned in `data`.
    beast::error_code readToEnd(std::string* data = nullptr) {
        beast::error_code result;
        std::string received = beast::buffers_to_string(buffer_.data());
        buffer_.consume(buffer_.size());
        stream_.expires_after(kDeadline);
        std::function<void()> next;
        next = [&] {
            stream_.async_read_some(buffer_.prepare(4096),
                                    [&](beast::error_code ec, std::size_t size) {
                                        buffer_.commit(size);
                                        received += beast::buffers_to_string(buffer_.data());
                                        buffer_.consume(buffer_.size());
                                        if (ec) {
                                            result = ec;
                                        } else {
                                            next();
                                        }
                                    });
        };
        next();
        run();
        if (data) *data = received;
        return result;
    }

private:
    void run() {
        io_.restart();
        io_.run();
    }

    net::io_context io_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    beast::error_code connect_error_;
};

std::string get(std::string_view target, std::string_view extra_headers = "") {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
           std::string(extra_headers) + "\r\n";
}

std::string post(std::string_view target, std::string_view body) {
    return "POST " + std::string(target) +
           " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + std::string(body);
}

// The server's io_context runs on a background thread, as in the agents. Whatever the test reads
// from the server side (requests seen, metrics) is read through onIo(), on that thread.
class HttpServerTest : public testing::Test {
protected:
    ~HttpServerTest() override {
        if (runner_.joinable()) {
            if (server_) onIo([this] { server_->stop(); });
            work_.reset();
            runner_.join();
        }
    }

    bool startServer(HttpHandler handler, HttpServerOptions options = {}) {
        options.name = "test";
        auto started = HttpServer::start(io_, options, std::move(handler), metrics_);
        EXPECT_TRUE(started) << started.error().message();
        if (!started) return false;
        server_ = std::move(started).value();
        port_ = server_->port();
        runner_ = std::thread([this] { io_.run(); });
        return true;
    }

    // A server that records each request and answers 200 with its body echoed.
    bool startEchoServer(HttpServerOptions options = {}) {
        return startServer(
            [this](const HttpRequest& request) {
                seen_.push_back(request);
                return HttpResponse{200, "text/plain; charset=utf-8", request.body, {}};
            },
            options);
    }

    void onIo(const std::function<void()>& work) {
        std::promise<void> done;
        net::post(io_, [&] {
            work();
            done.set_value();
        });
        done.get_future().wait();
    }

    std::vector<HttpRequest> seen() {
        std::vector<HttpRequest> copy;
        onIo([&] { copy = seen_; });
        return copy;
    }

    // The value of one series in the exposition, e.g. metric("tern_http_requests_total",
    // "server=\"test\""); "" if it is absent.
    std::string metric(const std::string& name, const std::string& labels) {
        std::string text;
        onIo([&] { text = metrics_.exposition(); });
        const std::string prefix = name + "{" + labels + "} ";
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
            if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
        }
        return "";
    }

    std::string errors(const std::string& reason) {
        return metric("tern_http_errors_total", "server=\"test\",reason=\"" + reason + "\"");
    }

    // Declared before io_ so that it outlives connections the io_context destroys last.
    MetricsRegistry metrics_;
    net::io_context io_;
    net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
    std::unique_ptr<HttpServer> server_;
    std::uint16_t port_ = 0;
    std::thread runner_;
    std::vector<HttpRequest> seen_;  // only on the io thread
};

// --- Requests and responses --------------------------------------------------------------------

TEST_F(HttpServerTest, GetReturnsWhatTheHandlerReturns) {
    ASSERT_TRUE(startServer([this](const HttpRequest& request) {
        seen_.push_back(request);
        return HttpResponse{201, "application/json", R"({"ok":true})", {{"X-Tern", "yes"}}};
    }));
    TestClient client(port_);
    const auto reply = client.roundTrip(get("/healthz", "X-Probe: one\r\n"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 201u);
    EXPECT_EQ(reply.response.body(), R"({"ok":true})");
    EXPECT_EQ(reply.response[http::field::content_type], "application/json");
    EXPECT_EQ(reply.response[http::field::content_length], "11");
    EXPECT_EQ(reply.response[http::field::server], "tern");
    EXPECT_EQ(reply.response["X-Tern"], "yes");

    const auto requests = seen();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].method, "GET");
    EXPECT_EQ(requests[0].path, "/healthz");
    EXPECT_TRUE(requests[0].query.empty());
    EXPECT_EQ(requests[0].header("x-probe"), "one");
    EXPECT_EQ(requests[0].header("X-PROBE"), "one");
    EXPECT_EQ(requests[0].header("X-Absent"), "");
    EXPECT_EQ(metric("tern_http_requests_total", "server=\"test\""), "1");
}

TEST_F(HttpServerTest, PostBodyReachesTheHandler) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto reply = client.roundTrip(post("/api/readings", R"({"v":1.5})"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.body(), R"({"v":1.5})");
    const auto requests = seen();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].method, "POST");
    EXPECT_EQ(requests[0].body, R"({"v":1.5})");
}

TEST_F(HttpServerTest, QueryIsSplitAndDecodedButPathIsNot) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto reply = client.roundTrip(
        get("/a%2Fb?name=a%20b+c&empty=&flag&&sep=%2f%26%3D&dup=1&dup=2&%C3%A9t%c3%a9=%00"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 200u);
    const auto requests = seen();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].path, "/a%2Fb");
    const std::map<std::string, std::string> expected = {
        {"name", "a b c"}, {"empty", ""}, {"flag", ""},
        {"sep", "/&="},    {"dup", "1"},  {"\xC3\xA9t\xC3\xA9", std::string(1, '\0')},
    };
    EXPECT_EQ(requests[0].query, expected);
}

TEST_F(HttpServerTest, InvalidPercentEscapeGets400AndKeepsTheConnection) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    for (const std::string_view target : {"/q?x=%zz", "/q?x=%4", "/q?%=1", "/q?x=1%"}) {
        const auto reply = client.roundTrip(get(target));
        ASSERT_FALSE(reply.error) << target << ": " << reply.error.message();
        EXPECT_EQ(reply.response.result_int(), 400u) << target;
    }
    EXPECT_TRUE(seen().empty());
    EXPECT_EQ(errors("malformed"), "4");

    const auto after = client.roundTrip(get("/q?x=%41"));
    ASSERT_FALSE(after.error) << after.error.message();
    EXPECT_EQ(after.response.result_int(), 200u);
    ASSERT_EQ(seen().size(), 1u);
    EXPECT_EQ(seen()[0].query.at("x"), "A");
}

TEST_F(HttpServerTest, TargetNotStartingWithSlashGets400) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto reply = client.roundTrip(get("http://test/healthz"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 400u);
    EXPECT_TRUE(seen().empty());
}

TEST_F(HttpServerTest, HeadSendsGetHeadersWithoutTheBody) {
    ASSERT_TRUE(startServer([this](const HttpRequest& request) {
        seen_.push_back(request);
        return HttpResponse{200, "text/plain; charset=utf-8", "hello", {}};
    }));
    TestClient client(port_);
    const auto head = client.roundTrip("HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\n", true);
    ASSERT_FALSE(head.error) << head.error.message();
    EXPECT_EQ(head.response.result_int(), 200u);
    EXPECT_EQ(head.response[http::field::content_length], "5");
    EXPECT_EQ(head.response.body(), "");

    // Had the server sent the body after all, those bytes would be read as this response's start.
    const auto next = client.roundTrip(get("/healthz"));
    ASSERT_FALSE(next.error) << next.error.message();
    EXPECT_EQ(next.response.result_int(), 200u);
    EXPECT_EQ(next.response.body(), "hello");

    const auto requests = seen();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].method, "GET");
}

TEST_F(HttpServerTest, HandlerStatusPassesThrough) {
    ASSERT_TRUE(startServer([](const HttpRequest& request) {
        return HttpResponse{
            404, "text/plain; charset=utf-8", "no route " + request.path + "\n", {}};
    }));
    TestClient client(port_);
    const auto reply = client.roundTrip(get("/nope"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 404u);
    EXPECT_EQ(reply.response.body(), "no route /nope\n");
    EXPECT_TRUE(reply.response.keep_alive());
}

TEST_F(HttpServerTest, NoContentHasNeitherBodyNorContentLength) {
    ASSERT_TRUE(startServer([](const HttpRequest&) {
        return HttpResponse{204, "", "ignored", {}};
    }));
    TestClient client(port_);
    const auto reply = client.roundTrip(get("/"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 204u);
    EXPECT_EQ(reply.response.count(http::field::content_length), 0u);
    EXPECT_EQ(reply.response.count(http::field::content_type), 0u);
    // The next response parses only if no body bytes were sent.
    const auto next = client.roundTrip(get("/"));
    ASSERT_FALSE(next.error) << next.error.message();
    EXPECT_EQ(next.response.result_int(), 204u);
}

// --- Limits and bad input ----------------------------------------------------------------------

TEST_F(HttpServerTest, BodyAtTheLimitIsServedAndOneByteMoreGets413) {
    HttpServerOptions options;
    options.max_body_bytes = 1024;
    ASSERT_TRUE(startEchoServer(options));

    TestClient fits(port_);
    const auto ok = fits.roundTrip(post("/", std::string(1024, 'a')));
    ASSERT_FALSE(ok.error) << ok.error.message();
    EXPECT_EQ(ok.response.result_int(), 200u);
    EXPECT_EQ(ok.response.body().size(), 1024u);

    TestClient over(port_);
    const auto refused = over.roundTrip(post("/", std::string(1025, 'a')));
    ASSERT_FALSE(refused.error) << refused.error.message();
    EXPECT_EQ(refused.response.result_int(), 413u);
    EXPECT_FALSE(refused.response.keep_alive());
    EXPECT_EQ(over.readToEnd(), net::error::eof);
    EXPECT_EQ(seen().size(), 1u);
    EXPECT_EQ(errors("body_too_large"), "1");
}

// The server answers after the header, with the body still on its way. Closing the socket on
// unread input would send RST, failing the client's write before it reads the 413. The body is
// larger than both sockets' buffers together, so only a server that reads it lets the write end.
TEST_F(HttpServerTest, FarOversizeBodyStillGets413) {
    HttpServerOptions options;
    options.max_body_bytes = 1024;
    ASSERT_TRUE(startEchoServer(options));
    TestClient client(port_);
    const auto reply = client.roundTrip(post("/", std::string(64 * 1024 * 1024, 'a')));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 413u);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitGets413) {
    HttpServerOptions options;
    options.max_body_bytes = 1024;
    ASSERT_TRUE(startEchoServer(options));
    TestClient client(port_);
    const std::string chunk(600, 'b');
    const auto reply = client.roundTrip(
        "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        "258\r\n" +
        chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n");
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 413u);
    EXPECT_TRUE(seen().empty());
}

TEST_F(HttpServerTest, MalformedRequestLineGets400AndClose) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto reply = client.roundTrip("this is not http\r\n\r\n");
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 400u);
    EXPECT_FALSE(reply.response.keep_alive());
    EXPECT_EQ(client.readToEnd(), net::error::eof);
    EXPECT_TRUE(seen().empty());
    EXPECT_EQ(errors("malformed"), "1");
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto reply = client.roundTrip(get("/", "X-Big: " + std::string(10000, 'h') + "\r\n"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 431u);
    EXPECT_EQ(client.readToEnd(), net::error::eof);
    EXPECT_EQ(errors("header_too_large"), "1");
}

TEST_F(HttpServerTest, ThrowingHandlerGives500AndServerKeepsServing) {
    ASSERT_TRUE(startServer([](const HttpRequest& request) -> HttpResponse {
        if (request.path == "/boom") throw std::runtime_error("boom");
        if (request.path == "/int") throw 42;
        return HttpResponse{200, "text/plain; charset=utf-8", "fine", {}};
    }));
    TestClient client(port_);
    for (const std::string_view target : {"/boom", "/int"}) {
        const auto failed = client.roundTrip(get(target));
        ASSERT_FALSE(failed.error) << target << ": " << failed.error.message();
        EXPECT_EQ(failed.response.result_int(), 500u) << target;
    }
    const auto same_connection = client.roundTrip(get("/ok"));
    ASSERT_FALSE(same_connection.error) << same_connection.error.message();
    EXPECT_EQ(same_connection.response.body(), "fine");

    TestClient other(port_);
    const auto new_connection = other.roundTrip(get("/ok"));
    ASSERT_FALSE(new_connection.error) << new_connection.error.message();
    EXPECT_EQ(new_connection.response.body(), "fine");
    EXPECT_EQ(errors("handler_failed"), "2");
}

TEST_F(HttpServerTest, ResponseTheServerCannotSendGives500) {
    ASSERT_TRUE(startServer([](const HttpRequest& request) {
        HttpResponse response{200, "text/plain; charset=utf-8", "body", {}};
        if (request.path == "/crlf") response.headers = {{"X-Injected", "a\r\nSet-Cookie: x=1"}};
        if (request.path == "/owned") response.headers = {{"content-length", "99"}};
        if (request.path == "/name") response.headers = {{"Bad Name", "v"}};
        if (request.path == "/status") response.status = 1000;
        return response;
    }));
    TestClient client(port_);
    for (const std::string_view target : {"/crlf", "/owned", "/name", "/status"}) {
        const auto reply = client.roundTrip(get(target));
        ASSERT_FALSE(reply.error) << target << ": " << reply.error.message();
        EXPECT_EQ(reply.response.result_int(), 500u) << target;
        EXPECT_EQ(reply.response.count("Set-Cookie"), 0u) << target;
    }
    EXPECT_EQ(errors("handler_failed"), "4");
}

// --- Connections -------------------------------------------------------------------------------

TEST_F(HttpServerTest, KeepAliveServesSequentialAndPipelinedRequestsOnOneConnection) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto first = client.roundTrip(post("/1", "one"));
    ASSERT_FALSE(first.error) << first.error.message();
    EXPECT_TRUE(first.response.keep_alive());
    const auto second = client.roundTrip(post("/2", "two"));
    ASSERT_FALSE(second.error) << second.error.message();
    EXPECT_EQ(second.response.body(), "two");

    ASSERT_FALSE(client.send(post("/3", "three") + post("/4", "four")));
    const auto third = client.receive();
    const auto fourth = client.receive();
    ASSERT_FALSE(third.error) << third.error.message();
    ASSERT_FALSE(fourth.error) << fourth.error.message();
    EXPECT_EQ(third.response.body(), "three");
    EXPECT_EQ(fourth.response.body(), "four");

    EXPECT_EQ(seen().size(), 4u);
    EXPECT_EQ(metric("tern_http_connections_total", "server=\"test\""), "1");
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    const auto reply = client.roundTrip(get("/", "Connection: close\r\n"));
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 200u);
    EXPECT_EQ(reply.response[http::field::connection], "close");
    EXPECT_EQ(client.readToEnd(), net::error::eof);
}

TEST_F(HttpServerTest, Http10WithoutKeepAliveIsClosed) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    ASSERT_FALSE(client.send("GET / HTTP/1.0\r\n\r\n"));
    std::string data;
    EXPECT_EQ(client.readToEnd(&data), net::error::eof);
    EXPECT_EQ(data.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << data;
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
    ASSERT_TRUE(startEchoServer());
    TestClient client(port_);
    ASSERT_FALSE(client.send(
        "POST / HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    const auto interim = client.receive();
    ASSERT_FALSE(interim.error) << interim.error.message();
    EXPECT_EQ(interim.response.result_int(), 100u);
    ASSERT_FALSE(client.send("hello"));
    const auto reply = client.receive();
    ASSERT_FALSE(reply.error) << reply.error.message();
    EXPECT_EQ(reply.response.result_int(), 200u);
    EXPECT_EQ(reply.response.body(), "hello");
}

TEST_F(HttpServerTest, ConnectionsAboveTheLimitAreClosedAtOnce) {
    HttpServerOptions options;
    options.max_connections = 2;
    ASSERT_TRUE(startEchoServer(options));
    // Completed requests prove both connections are open on the server side.
    auto first = std::make_unique<TestClient>(port_);
    TestClient second(port_);
    ASSERT_FALSE(first->roundTrip(get("/")).error);
    ASSERT_FALSE(second.roundTrip(get("/")).error);

    // The kernel completes the handshake; the server then closes without reading or answering.
    // Were it served instead, this would end in timeout after kDeadline, not eof.
    TestClient third(port_);
    ASSERT_FALSE(third.connectError()) << third.connectError().message();
    EXPECT_EQ(third.readToEnd(), net::error::eof);
    EXPECT_EQ(errors("connection_limit"), "1");

    // Once a connection goes away there is room again; the server learns of it asynchronously.
    first.reset();
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    bool served = false;
    while (!served && std::chrono::steady_clock::now() < until) {
        TestClient retry(port_);
        const auto reply = retry.roundTrip(get("/"));
        served = !reply.error && reply.response.result_int() == 200;
    }
    EXPECT_TRUE(served);
}

TEST_F(HttpServerTest, IdleAndTricklingConnectionsTimeOut) {
    HttpServerOptions options;
    options.idle_timeout = std::chrono::milliseconds(200);
    ASSERT_TRUE(startEchoServer(options));

    TestClient silent(port_);
    EXPECT_EQ(silent.readToEnd(), net::error::eof);

    TestClient partial(port_);
    ASSERT_FALSE(partial.send("GET / HTTP/1.1\r\nHost: te"));
    EXPECT_EQ(partial.readToEnd(), net::error::eof);

    // After a response, the connection waits idle_timeout for the next request, then closes.
    TestClient served(port_);
    ASSERT_FALSE(served.roundTrip(get("/")).error);
    EXPECT_EQ(served.readToEnd(), net::error::eof);
    EXPECT_EQ(seen().size(), 1u);
}

TEST_F(HttpServerTest, StopClosesListenerAndOpenConnections) {
    ASSERT_TRUE(startEchoServer());
    TestClient open(port_);
    ASSERT_FALSE(open.roundTrip(get("/")).error);

    onIo([this] {
        server_->stop();
        server_->stop();
    });

    // Were the connection left open, this would end in timeout after kDeadline.
    const auto closed = open.readToEnd();
    EXPECT_TRUE(closed == net::error::eof || closed == net::error::connection_reset)
        << closed.message();
    TestClient late(port_);
    EXPECT_EQ(late.connectError(), net::error::connection_refused);
    EXPECT_EQ(server_->port(), port_);
}

TEST_F(HttpServerTest, HandlerMayStopTheServer) {
    ASSERT_TRUE(startServer([this](const HttpRequest&) {
        server_->stop();
        return HttpResponse{};
    }));
    TestClient client(port_);
    const auto reply = client.roundTrip(get("/"));
    EXPECT_TRUE(reply.error);  // closed without an answer
    TestClient late(port_);
    EXPECT_EQ(late.connectError(), net::error::connection_refused);
}

// --- Starting ----------------------------------------------------------------------------------

TEST_F(HttpServerTest, BindsAnEphemeralPort) {
    ASSERT_TRUE(startEchoServer());
    EXPECT_NE(port_, 0);
    TestClient client(port_);
    EXPECT_FALSE(client.connectError()) << client.connectError().message();
}

TEST_F(HttpServerTest, AddressInUseIsAnError) {
    ASSERT_TRUE(startEchoServer());
    net::io_context other_io;
    HttpServerOptions options;
    options.port = port_;
    const auto second = HttpServer::start(
        other_io, options, [](const HttpRequest&) { return HttpResponse{}; }, metrics_);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, "http_listen_failed");
    EXPECT_EQ(second.error().action, ErrorAction::Stop);
    EXPECT_NE(second.error().detail.find("127.0.0.1:" + std::to_string(port_)), std::string::npos)
        << second.error().detail;
}

TEST(HttpServerStart, RejectsInvalidOptions) {
    MetricsRegistry metrics;
    net::io_context io;
    const HttpHandler handler = [](const HttpRequest&) { return HttpResponse{}; };
    auto expectInvalid = [&](HttpServerOptions options, const HttpHandler& with,
                             const std::string& needle) {
        const auto started = HttpServer::start(io, std::move(options), with, metrics);
        ASSERT_FALSE(started) << needle;
        EXPECT_EQ(started.error().code, "invalid_http_options");
        EXPECT_NE(started.error().detail.find(needle), std::string::npos) << started.error().detail;
    };
    HttpServerOptions name_not_address;
    name_not_address.address = "localhost";
    expectInvalid(name_not_address, handler, "localhost");
    HttpServerOptions no_connections;
    no_connections.max_connections = 0;
    expectInvalid(no_connections, handler, "max_connections");
    HttpServerOptions no_body;
    no_body.max_body_bytes = 0;
    expectInvalid(no_body, handler, "max_body_bytes");
    HttpServerOptions no_timeout;
    no_timeout.idle_timeout = std::chrono::milliseconds(0);
    expectInvalid(no_timeout, handler, "idle_timeout");
    expectInvalid(HttpServerOptions{}, HttpHandler{}, "handler");
}

}  // namespace
}  // namespace tern::shared
