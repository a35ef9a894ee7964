#include "tern/edge/agent/status_endpoint.h"

#include "tern/edge/config.h"

namespace tern::edge {

shared::Result<std::unique_ptr<StatusEndpoint>> StatusEndpoint::start(
    boost::asio::io_context& io, const std::string& listen, shared::MetricsRegistry& metrics,
    std::function<bool()> uplink_connected) {
    const auto parsed = parseListenAddress(listen);
    if (!parsed) return shared::Error::stop("invalid_address", "not address:port: " + listen);
    shared::HttpServerOptions options;
    options.address = parsed->first;
    options.port = parsed->second;
    options.max_connections = 8;
    options.name = "edge_status";
    options.max_body_bytes = 1024;
    auto handler = [&metrics, uplink_connected =
                                  std::move(uplink_connected)](const shared::HttpRequest& request) {
        shared::HttpResponse response;
        if (request.method != "GET" && request.method != "HEAD") {
            response.status = 405;
            response.body = "only GET and HEAD\n";
            response.headers.emplace_back("Allow", "GET, HEAD");
        } else if (request.path == "/healthz") {
            response.content_type = "application/json";
            response.body = std::string("{\"status\":\"ok\",\"uplink_connected\":") +
                            (uplink_connected() ? "true" : "false") + "}\n";
        } else if (request.path == "/metrics") {
            response.content_type = "text/plain; version=0.0.4; charset=utf-8";
            response.body = metrics.exposition();
        } else {
            response.status = 404;
            response.body = "not found: /healthz and /metrics are served here\n";
        }
        return response;
    };
    auto server = shared::HttpServer::start(io, options, std::move(handler), metrics);
    if (!server) return server.error();
    std::unique_ptr<StatusEndpoint> endpoint(new StatusEndpoint());
    endpoint->host_ = parsed->first;
    endpoint->server_ = std::move(server.value());
    return endpoint;
}

std::string StatusEndpoint::address() const {
    return host_ + ":" + std::to_string(server_->port());
}

void StatusEndpoint::stop() { server_->stop(); }

}  // namespace tern::edge
