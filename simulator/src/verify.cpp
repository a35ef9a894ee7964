#include "verify.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

namespace tern::sim {

namespace http = boost::beast::http;
using boost::asio::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kThreads = 4;
// Below the ingest's default max_points (11,000) per series query.
constexpr std::int64_t kPointsPerQuery = 9'000;
constexpr auto kRetryPause = 2s;

struct Endpoint {
    std::string host;
    std::string port;
};

std::optional<Endpoint> parseUrl(const std::string& url) {
    constexpr std::string_view scheme = "http://";
    if (!url.starts_with(scheme)) return std::nullopt;
    auto rest = url.substr(scheme.size());
    if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) return Endpoint{rest, "80"};
    return Endpoint{rest.substr(0, colon), rest.substr(colon + 1)};
}

std::string percentEncode(std::string_view text) {
    std::string out;
    for (const unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out += fmt::format("%{:02X}", c);
        }
    }
    return out;
}

// One keep-alive connection to the API, reopened when the server closes it.
class ApiClient {
public:
    ApiClient(Endpoint endpoint, std::string token)
        : endpoint_(std::move(endpoint)), token_(std::move(token)), socket_(io_) {}

    // (status, body); throws boost::system::system_error when the API cannot be reached.
    std::pair<unsigned, std::string> get(const std::string& target) {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!socket_.is_open()) {
                    tcp::resolver resolver(io_);
                    boost::asio::connect(socket_, resolver.resolve(endpoint_.host, endpoint_.port));
                }
                http::request<http::empty_body> request{http::verb::get, target, 11};
                request.set(http::field::host, endpoint_.host);
                request.keep_alive(true);
                if (!token_.empty()) request.set(http::field::authorization, "Bearer " + token_);
                http::write(socket_, request);
                boost::beast::flat_buffer buffer;
                http::response<http::string_body> response;
                http::read(socket_, buffer, response);
                if (!response.keep_alive()) close();
                return {response.result_int(), std::move(response.body())};
            } catch (const boost::system::system_error&) {
                close();
                if (attempt >= 1) throw;
            }
        }
    }

private:
    void close() {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

    boost::asio::io_context io_;
    Endpoint endpoint_;
    std::string token_;
    tcp::socket socket_;
};

GatewayVerdict verifyGateway(ApiClient& api, const GatewayPlan& plan, const GatewayReport& report,
                             const VerifyOptions& options) {
    GatewayVerdict verdict;
    verdict.id = plan.id;
    verdict.expected_readings = report.produced - std::min(report.produced, report.evicted);
    verdict.expected_alerts = report.alerts;
    const auto id = percentEncode(plan.id);
    for (const auto& sensor : plan.config.sensors) {
        const std::int64_t window = std::max<std::int64_t>(
            60'000, kPointsPerQuery * std::max<std::int64_t>(1, sensor.interval.count()));
        for (std::int64_t from = options.from_ms; from < options.to_ms; from += window) {
            const auto to = std::min(options.to_ms, from + window);
            auto [status, body] =
                api.get(fmt::format("/api/v1/series?gateway={}&sensor={}&from={}&to={}&step=0", id,
                                    percentEncode(sensor.name), from, to));
            if (status == 404) break;  // the ingest has not seen this gateway's sensor table
            if (status != 200) {
                verdict.problem =
                    fmt::format("series {} answered {}: {}", sensor.name, status, body);
                return verdict;
            }
            const auto points = json::parse(body).at("points");
            std::optional<std::int64_t> previous;
            for (const auto& point : points) {
                const auto t = point.at("t").get<std::int64_t>();
                if (previous && *previous == t) verdict.duplicate_readings += 1;
                previous = t;
            }
            verdict.stored_readings += points.size();
        }
    }
    auto [status, body] = api.get("/api/v1/alerts?gateway=" + id + "&limit=10000");
    if (status != 200) {
        verdict.problem = fmt::format("alerts answered {}: {}", status, body);
        return verdict;
    }
    const auto alerts = json::parse(body).at("alerts");
    verdict.stored_alerts = alerts.size();
    for (const auto& anomaly : plan.anomalies) {
        if (!anomaly.expect_alert) continue;
        verdict.anomalies_expected += 1;
        const bool alerted = std::any_of(alerts.begin(), alerts.end(), [&](const json& alert) {
            return alert.at("sensor").get<int>() == anomaly.sensor_index &&
                   alert.at("state").get<std::string>() == "firing" &&
                   !alert.at("rule").get<std::string>().starts_with("store.");
        });
        if (alerted) verdict.anomalies_alerted += 1;
    }
    std::vector<std::string> problems;
    if (!report.error.empty()) problems.push_back("did not run: " + report.error);
    if (verdict.stored_readings != verdict.expected_readings) {
        problems.push_back(fmt::format("{} readings stored, {} expected (produced {} - evicted {})",
                                       verdict.stored_readings, verdict.expected_readings,
                                       report.produced, report.evicted));
    }
    if (verdict.duplicate_readings > 0) {
        problems.push_back(fmt::format("{} duplicate readings", verdict.duplicate_readings));
    }
    if (verdict.stored_alerts != verdict.expected_alerts) {
        problems.push_back(fmt::format("{} alerts stored, {} raised", verdict.stored_alerts,
                                       verdict.expected_alerts));
    }
    if (verdict.anomalies_alerted != verdict.anomalies_expected) {
        problems.push_back(fmt::format("{} of {} injected anomalies raised an alert",
                                       verdict.anomalies_alerted, verdict.anomalies_expected));
    }
    for (const auto& problem : problems) {
        verdict.problem += (verdict.problem.empty() ? "" : "; ") + problem;
    }
    return verdict;
}

}  // namespace

VerifyResult verifyRun(const FleetPlan& plan, const std::vector<GatewayReport>& reports,
                       const VerifyOptions& options) {
    VerifyResult result;
    const auto endpoint = parseUrl(options.url);
    if (!endpoint) {
        result.error = "--verify takes http://host:port, not \"" + options.url + "\"";
        return result;
    }
    std::map<std::string, const GatewayReport*> by_id;
    for (const auto& report : reports) by_id[report.id] = &report;
    std::map<std::string, GatewayVerdict> verdicts;
    std::vector<const GatewayPlan*> pending;
    for (const auto& gateway : plan.gateways) pending.push_back(&gateway);
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    GatewayReport no_report;
    no_report.error = "no report from its worker";

    while (true) {
        std::mutex mutex;
        std::vector<const GatewayPlan*> failed;
        std::size_t next = 0;
        std::vector<std::thread> threads;
        for (std::size_t t = 0; t < std::min(kThreads, pending.size()); ++t) {
            threads.emplace_back([&] {
                ApiClient api(*endpoint, options.token);
                while (true) {
                    const GatewayPlan* gateway = nullptr;
                    {
                        std::lock_guard lock(mutex);
                        if (next == pending.size() || !result.error.empty()) return;
                        gateway = pending[next++];
                    }
                    const auto found = by_id.find(gateway->id);
                    const auto& report = found == by_id.end() ? no_report : *found->second;
                    try {
                        auto verdict = verifyGateway(api, *gateway, report, options);
                        std::lock_guard lock(mutex);
                        if (!verdict.problem.empty()) failed.push_back(gateway);
                        verdicts[gateway->id] = std::move(verdict);
                    } catch (const std::exception& e) {
                        std::lock_guard lock(mutex);
                        result.error = std::string("cannot ask the ingest API: ") + e.what();
                    }
                }
            });
        }
        for (auto& thread : threads) thread.join();
        if (!result.error.empty()) break;
        pending = std::move(failed);
        if (pending.empty() || std::chrono::steady_clock::now() + kRetryPause > deadline) break;
        spdlog::info("verify: {} gateways do not reconcile yet; asking again", pending.size());
        std::this_thread::sleep_for(kRetryPause);
    }
    for (auto& [id, verdict] : verdicts) result.verdicts.push_back(std::move(verdict));
    result.ok = result.error.empty() && pending.empty();
    return result;
}

}  // namespace tern::sim
