#include "tern/ingest/api.h"

#include <cctype>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "tern/shared/topics.h"

namespace tern::ingest {

namespace {

using nlohmann::json;

constexpr std::string_view kGatewaysPrefix = "/api/v1/gateways/";
constexpr std::size_t kMaxListLimit = 10'000;

shared::HttpResponse jsonResponse(unsigned status, const json& body) {
    return shared::HttpResponse{status, "application/json", body.dump() + "\n", {}};
}

shared::HttpResponse errorResponse(unsigned status, std::string_view code, std::string detail) {
    return jsonResponse(status, json{{"error", code}, {"detail", std::move(detail)}});
}

// RFC 7235 section 2.1: the auth-scheme is case-insensitive.
bool startsWithBearer(std::string_view authorization) {
    constexpr std::string_view kScheme = "bearer ";
    if (authorization.size() < kScheme.size()) return false;
    for (std::size_t i = 0; i < kScheme.size(); ++i) {
        const auto c = static_cast<unsigned char>(authorization[i]);
        if (static_cast<char>(std::tolower(c)) != kScheme[i]) return false;
    }
    return true;
}

// Constant time in the length of the expected token, so the comparison does not say how much of
// a guess was right.
bool tokenMatches(std::string_view given, std::string_view expected) {
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const char g = i < given.size() ? given[i] : '\0';
        diff |= static_cast<unsigned char>(g ^ expected[i]);
    }
    return diff == 0;
}

std::optional<std::int64_t> parseInteger(std::string_view text) {
    std::int64_t value = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
    return value;
}

std::string_view severityName(shared::Severity severity) {
    switch (severity) {
        case shared::Severity::Info:
            return "info";
        case shared::Severity::Warning:
            return "warning";
        case shared::Severity::Critical:
            return "critical";
    }
    return "unknown";
}

std::string_view qualityName(shared::Quality quality) {
    switch (quality) {
        case shared::Quality::Good:
            return "good";
        case shared::Quality::Uncertain:
            return "uncertain";
        case shared::Quality::Bad:
            return "bad";
        case shared::Quality::TimeUncertain:
            return "time_uncertain";
    }
    return "unknown";
}

std::string_view statusKindName(shared::StatusKind kind) {
    switch (kind) {
        case shared::StatusKind::Birth:
            return "birth";
        case shared::StatusKind::Death:
            return "death";
        case shared::StatusKind::Update:
            return "update";
    }
    return "unknown";
}

std::string_view tierName(Tier tier) {
    switch (tier) {
        case Tier::Raw:
            return "raw";
        case Tier::Minute:
            return "1m";
        case Tier::Hour:
            return "1h";
    }
    return "unknown";
}

std::string hex(std::span<const std::uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 0xf]);
    }
    return out;
}

json gatewayJson(const GatewayView& g) {
    json sensors = json::array();
    for (const auto& s : g.sensors) {
        sensors.push_back({{"index", s.index}, {"name", s.name}, {"unit", s.unit}});
    }
    json drops = json::array();
    for (const auto& d : g.drops) {
        drops.push_back({{"reason", d.reason}, {"batches", d.batches}, {"readings", d.readings}});
    }
    json out{
        {"gateway_id", g.gateway_id},
        {"online", g.online},
        {"has_status", g.has_status},
        {"last_status", statusKindName(g.last_status)},
        {"last_status_ms", g.last_status_ms},
        {"last_seen_ms", g.last_seen_ms},
        {"session", g.session},
        {"epoch", g.epoch},
        {"firmware_version", g.firmware_version},
        {"clock_synced", g.clock_synced},
        {"clock_skew_ms", g.clock_skew_ms ? json(*g.clock_skew_ms) : json(nullptr)},
        {"sensors", std::move(sensors)},
        {"backlog",
         {{"batches", g.backlog_batches},
          {"bytes", g.backlog_bytes},
          {"oldest_ms", g.oldest_backlog_ms}}},
        {"drops", std::move(drops)},
        {"received",
         {{"batches", g.batches_received},
          {"readings", g.readings_received},
          {"alerts", g.alerts_received},
          {"rejected", g.rejected}}},
    };
    if (g.last_command_ack) {
        out["last_command_ack"] = {{"command_id", g.last_command_ack->command_id},
                                   {"result", static_cast<int>(g.last_command_ack->result)},
                                   {"detail", g.last_command_ack->detail},
                                   {"time_ms", g.last_command_ack->time_ms}};
    }
    return out;
}

json alertJson(const shared::Alert& a) {
    return json{{"gateway_id", a.gateway_id},
                {"epoch", a.sequence.epoch},
                {"seq", a.sequence.seq},
                {"incident_id", a.incident_id},
                {"rule", a.rule},
                {"sensor", a.sensor},
                {"severity", severityName(a.severity)},
                {"state", a.state == shared::AlertState::Firing ? "firing" : "resolved"},
                {"value", a.value},
                {"time_ms", a.time_ms},
                {"clock_synced", a.clock_synced},
                {"message", a.message}};
}

}  // namespace

std::optional<std::int64_t> parseStep(std::string_view text) {
    struct Unit {
        std::string_view suffix;
        std::int64_t ms;
    };
    static constexpr Unit kUnits[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
    if (auto plain = parseInteger(text)) {
        if (*plain < 0) return std::nullopt;  // a step is a duration: "-1" fails as "-1s" does
        return plain;
    }
    for (const auto& unit : kUnits) {
        if (text.size() > unit.suffix.size() && text.ends_with(unit.suffix)) {
            auto number = parseInteger(text.substr(0, text.size() - unit.suffix.size()));
            if (!number || *number < 0 ||
                *number > std::numeric_limits<std::int64_t>::max() / unit.ms) {
                return std::nullopt;
            }
            return *number * unit.ms;
        }
    }
    return std::nullopt;
}

IngestApi::IngestApi(ApiSources sources) : sources_(std::move(sources)) {}

shared::HttpResponse IngestApi::handle(const shared::HttpRequest& request) const {
    const auto& path = request.path;
    const bool get = request.method == "GET";

    if (path == "/healthz") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        return jsonResponse(200, json{{"status", "ok"}});
    }
    if (path == "/readyz") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        const bool subscribed = sources_.subscribed && sources_.subscribed();
        const bool writable = sources_.spool_writable && sources_.spool_writable();
        return jsonResponse(subscribed && writable ? 200 : 503,
                            json{{"ready", subscribed && writable},
                                 {"subscribed", subscribed},
                                 {"spool_writable", writable}});
    }
    if (path == "/metrics") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        return shared::HttpResponse{
            200, "text/plain; version=0.0.4; charset=utf-8", sources_.metrics->exposition(), {}};
    }
    if (!path.starts_with("/api/")) {
        return errorResponse(404, "not_found", "no route " + path);
    }
    if (!sources_.token.empty()) {
        const auto authorization = request.header("Authorization");
        if (!startsWithBearer(authorization) ||
            !tokenMatches(std::string_view(authorization).substr(7), sources_.token)) {
            auto response = errorResponse(401, "unauthorized",
                                          "this API needs an Authorization: Bearer <token> header");
            response.headers.emplace_back("WWW-Authenticate", "Bearer");
            return response;
        }
    }
    const auto param = [&](const char* name) -> std::optional<std::string> {
        auto it = request.query.find(name);
        if (it == request.query.end()) return std::nullopt;
        return it->second;
    };
    const auto integerParam = [&](const char* name, std::int64_t fallback,
                                  std::int64_t min) -> std::optional<std::int64_t> {
        auto text = param(name);
        if (!text) return fallback;
        auto value = parseInteger(*text);
        if (!value || *value < min) return std::nullopt;
        return value;
    };
    const auto now_ms = shared::toUnixMillis(sources_.clock->wallNow());

    if (path == "/api/v1/gateways") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        json gateways = json::array();
        for (const auto& view : sources_.fleet->list()) gateways.push_back(gatewayJson(view));
        return jsonResponse(200, json{{"gateways", std::move(gateways)}});
    }
    if (path.starts_with(kGatewaysPrefix)) {
        std::string_view rest = std::string_view(path).substr(kGatewaysPrefix.size());
        const auto slash = rest.find('/');
        const std::string id(rest.substr(0, slash));
        if (auto valid = shared::validateGatewayId(id); !valid) {
            return errorResponse(400, "invalid_gateway_id", valid.error().message());
        }
        if (slash == std::string_view::npos) {
            if (!get) return errorResponse(405, "method_not_allowed", "use GET");
            auto view = sources_.fleet->get(id);
            if (!view) return errorResponse(404, "unknown_gateway", "no gateway '" + id + "'");
            return jsonResponse(200, gatewayJson(*view));
        }
        if (rest.substr(slash) != "/commands") {
            return errorResponse(404, "not_found", "no route " + path);
        }
        if (request.method != "POST") return errorResponse(405, "method_not_allowed", "use POST");
        const json body = json::parse(request.body, nullptr, false);
        if (body.is_discarded() || !body.is_object()) {
            return errorResponse(400, "invalid_body", "the body must be a JSON object");
        }
        if (!body.contains("name") || !body["name"].is_string()) {
            return errorResponse(400, "invalid_body", "\"name\" (a string) is required");
        }
        const auto name = body["name"].get<std::string>();
        std::uint64_t epoch = 0;
        if (body.contains("epoch")) {
            if (!body["epoch"].is_number_unsigned()) {
                return errorResponse(400, "invalid_body", "\"epoch\" must be an unsigned integer");
            }
            epoch = body["epoch"].get<std::uint64_t>();
        } else if (auto view = sources_.fleet->get(id)) {
            epoch = view->epoch;
        }
        std::vector<shared::SeqRange> ranges;
        if (body.contains("ranges")) {
            const auto& list = body["ranges"];
            if (!list.is_array()) {
                return errorResponse(400, "invalid_body",
                                     "\"ranges\" must be [[first, last], ...]");
            }
            for (const auto& range : list) {
                if (!range.is_array() || range.size() != 2 || !range[0].is_number_unsigned() ||
                    !range[1].is_number_unsigned() ||
                    range[0].get<std::uint64_t>() > range[1].get<std::uint64_t>() ||
                    range[0].get<std::uint64_t>() == 0) {
                    return errorResponse(
                        400, "invalid_body",
                        "each range must be [first, last] with 1 <= first <= last");
                }
                ranges.push_back({range[0].get<std::uint64_t>(), range[1].get<std::uint64_t>()});
            }
        }
        if (name != "resend" && (!ranges.empty() || body.contains("epoch"))) {
            return errorResponse(400, "invalid_body", "only \"resend\" takes epoch and ranges");
        }
        if (name == "resend" && epoch == 0) {
            return errorResponse(400, "invalid_body",
                                 "\"resend\" needs an epoch (none is known for this gateway)");
        }
        auto sent = sources_.send_command(id, name, epoch, std::move(ranges));
        if (!sent) {
            return errorResponse(sent.error().action == shared::ErrorAction::Drop ? 400 : 503,
                                 sent.error().code, sent.error().detail);
        }
        return jsonResponse(202, json{{"command_id", sent.value()},
                                      {"gateway_id", id},
                                      {"name", name},
                                      {"epoch", epoch}});
    }
    if (path == "/api/v1/series") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        if (!sources_.series) {
            return errorResponse(404, "no_store", "the embedded time-series store is not enabled");
        }
        const auto gateway = param("gateway");
        const auto sensor = param("sensor");
        if (!gateway || !sensor) {
            return errorResponse(400, "invalid_query", "gateway and sensor are required");
        }
        const auto to = integerParam("to", now_ms, std::numeric_limits<std::int64_t>::min());
        if (!to) return errorResponse(400, "invalid_query", "to must be Unix milliseconds");
        // An hour before `to`, saturating: `to` may be near the bottom of the range.
        const auto from = integerParam("from",
                                       *to < std::numeric_limits<std::int64_t>::min() + 3'600'000
                                           ? std::numeric_limits<std::int64_t>::min()
                                           : *to - 3'600'000,
                                       std::numeric_limits<std::int64_t>::min());
        if (!from) return errorResponse(400, "invalid_query", "from must be Unix milliseconds");
        std::int64_t step = 0;
        if (auto text = param("step")) {
            auto parsed = parseStep(*text);
            if (!parsed) {
                return errorResponse(400, "invalid_query",
                                     "step must be milliseconds or a duration such as 90s, 1m, 1h");
            }
            step = *parsed;
        }
        auto result = sources_.series->query(*gateway, *sensor, *from, *to, step);
        if (!result) {
            const auto& error = result.error();
            const unsigned status = error.code == "unknown_sensor"
                                        ? 404
                                        : (error.action == shared::ErrorAction::Drop ? 400 : 503);
            return errorResponse(status, error.code, error.detail);
        }
        json points = json::array();
        for (const auto& p : result.value().points) {
            // Only step 0 returns readings; any other step returns summaries, even over the raw
            // tier (below a minute the store summarises raw readings per step).
            if (result.value().step_ms == 0) {
                points.push_back({{"t", p.time_ms}, {"v", p.value}, {"q", qualityName(p.quality)}});
            } else {
                points.push_back({{"t", p.time_ms},
                                  {"v", p.value},
                                  {"min", p.min},
                                  {"max", p.max},
                                  {"first", p.first},
                                  {"last", p.last},
                                  {"count", p.count}});
            }
        }
        return jsonResponse(200, json{{"gateway", *gateway},
                                      {"sensor", *sensor},
                                      {"from", *from},
                                      {"to", *to},
                                      {"tier", tierName(result.value().tier)},
                                      {"step_ms", result.value().step_ms},
                                      {"points", std::move(points)}});
    }
    if (path == "/api/v1/alerts") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        if (!sources_.series) {
            return errorResponse(404, "no_store", "the embedded time-series store is not enabled");
        }
        AlertQuery query;
        query.gateway = param("gateway");
        const auto from = integerParam("from", 0, std::numeric_limits<std::int64_t>::min());
        const auto to = integerParam("to", std::numeric_limits<std::int64_t>::max(),
                                     std::numeric_limits<std::int64_t>::min());
        const auto limit = integerParam("limit", 100, 1);
        if (!from || !to || !limit || *limit > static_cast<std::int64_t>(kMaxListLimit)) {
            return errorResponse(400, "invalid_query",
                                 "from and to are Unix milliseconds; limit is 1..10000");
        }
        query.from_ms = *from;
        query.to_ms = *to;
        query.limit = static_cast<std::size_t>(*limit);
        auto alerts = sources_.series->alerts(query);
        if (!alerts) return errorResponse(503, alerts.error().code, alerts.error().detail);
        json list = json::array();
        for (const auto& alert : alerts.value()) list.push_back(alertJson(alert));
        return jsonResponse(200, json{{"alerts", std::move(list)}});
    }
    if (path == "/api/v1/quarantine") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        QuarantineQuery query;
        query.gateway_id = param("gateway");
        query.reason = param("reason");
        const auto before = integerParam("before", 0, 0);
        const auto limit = integerParam("limit", 100, 1);
        if (!before || !limit || *limit > static_cast<std::int64_t>(kMaxListLimit)) {
            return errorResponse(400, "invalid_query", "before is an entry id; limit is 1..10000");
        }
        query.before_id = static_cast<std::uint64_t>(*before);
        query.limit = static_cast<std::size_t>(*limit);
        json entries = json::array();
        for (const auto& e : sources_.quarantine->list(query)) {
            entries.push_back({{"id", e.id},
                               {"received_ms", e.received_ms},
                               {"topic", e.topic},
                               {"gateway_id", e.gateway_id},
                               {"reason", e.reason},
                               {"detail", e.detail},
                               {"payload_bytes", e.payload_bytes},
                               {"payload_hex", hex(e.payload)}});
        }
        const auto stats = sources_.quarantine->stats();
        return jsonResponse(200, json{{"entries", std::move(entries)},
                                      {"counts", sources_.quarantine->countsByReason()},
                                      {"held", stats.entries},
                                      {"evicted", stats.evicted}});
    }
    if (path == "/api/v1/spool") {
        if (!get) return errorResponse(405, "method_not_allowed", "use GET");
        const auto stats = sources_.spool->stats();
        json cursors = json::array();
        for (const auto& c : stats.cursors) {
            cursors.push_back({{"sink", c.sink}, {"offset", c.offset}, {"lag", c.lag}});
        }
        return jsonResponse(200, json{{"records", stats.records},
                                      {"bytes", stats.bytes},
                                      {"max_bytes", stats.max_bytes},
                                      {"above_high_water", stats.above_high_water},
                                      {"last_offset", stats.last_offset},
                                      {"cursors", std::move(cursors)}});
    }
    return errorResponse(404, "not_found", "no route " + path);
}

}  // namespace tern::ingest
