#pragma once

// The agent's local HTTP endpoint (default 127.0.0.1:9464), for the board's own supervision and a
// Prometheus scraper on the gateway:
//   GET /healthz  200 {"status":"ok","uplink_connected":<bool>} while the event loop turns
//                 (a wedged loop does not answer at all, which is what a liveness probe needs)
//   GET /metrics  the registry in Prometheus text format
// Anything else is 404; only GET and HEAD are served.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "tern/shared/http_server.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

class StatusEndpoint {
public:
    // listen is "address:port" (see parseListenAddress); port 0 picks a free one.
    static shared::Result<std::unique_ptr<StatusEndpoint>> start(
        boost::asio::io_context& io, const std::string& listen, shared::MetricsRegistry& metrics,
        std::function<bool()> uplink_connected);

    std::string address() const;  // "127.0.0.1:<bound port>"
    void stop();

private:
    StatusEndpoint() = default;
    std::string host_;
    std::unique_ptr<shared::HttpServer> server_;
};

}  // namespace tern::edge
