#include "tern/ingest/api.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tern::ingest {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using shared::SeqRange;

// 2026-06-01T00:00:00Z: the start of a UTC day and hour.
const std::int64_t kHour0 =
    std::chrono::sys_days{std::chrono::year{2026} / std::chrono::June / 1}.time_since_epoch() /
    std::chrono::milliseconds{1};
// The clock stands 90 minutes later, so the default series window (the last hour) starts at
// kHour0 + 30 minutes.
const std::int64_t kNow = kHour0 + 90 * 60'000;
constexpr std::int64_t kMaxPoints = 500;

struct SentCommand {
    std::string gateway;
    std::string name;
    std::uint64_t epoch = 0;
    std::vector<SeqRange> ranges;
};

shared::GatewayStatus birth(const std::string& gateway, std::uint64_t epoch) {
    shared::GatewayStatus s;
    s.gateway_id = gateway;
    s.kind = shared::StatusKind::Birth;
    s.session = 3;
    s.epoch = epoch;
    s.sent_at_ms = kNow - 1'000;
    s.clock_synced = true;
    s.firmware_version = "2.4.1";
    s.sensors = {{0, "s0", "Cel", shared::SensorKind::Temperature},
                 {1, "s1", "%", shared::SensorKind::Humidity}};
    s.backlog_batches = 7;
    s.backlog_bytes = 700;
    s.oldest_backlog_ms = kNow - 60'000;
    s.drops = {{"store_full", 2, 20}};
    return s;
}

shared::Alert alert(std::uint64_t seq, std::int64_t time_ms, const std::string& gateway = "gw-1") {
    shared::Alert a;
    a.gateway_id = gateway;
    a.sequence = {1, seq};
    a.incident_id = 100 + seq;
    a.rule = "too_hot";
    a.sensor = 0;
    a.severity = shared::Severity::Critical;
    a.state = seq % 2 == 0 ? shared::AlertState::Resolved : shared::AlertState::Firing;
    a.value = 40.5;
    a.time_ms = time_ms;
    a.clock_synced = true;
    a.message = "s0 above 40";
    return a;
}

class IngestApiTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/tern-api-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        auto spool = Spool::open((dir_ / "spool.db").string(), {}, clock_, metrics_);
        ASSERT_TRUE(spool) << spool.error().message();
        spool_ = std::move(spool.value());
        TimeseriesStoreConfig config;
        config.path = (dir_ / "tsdb.db").string();
        config.cache_bytes = 4 * shared::kMiB;
        config.max_points = kMaxPoints;
        auto store = TimeseriesStore::open(config, clock_, metrics_);
        ASSERT_TRUE(store) << store.error().message();
        store_ = std::move(store.value());
        ASSERT_TRUE(store_->setSensors("gw-1", birth("gw-1", 1).sensors));
    }
    void TearDown() override {
        store_.reset();
        spool_.reset();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    ApiSources sources(std::string token = {}) {
        return ApiSources{
            .fleet = &fleet_,
            .quarantine = &quarantine_,
            .spool = spool_.get(),
            .series = store_.get(),
            .metrics = &metrics_,
            .clock = &clock_,
            .subscribed = [this] { return subscribed_; },
            .spool_writable = [this] { return writable_; },
            .send_command = [this](const std::string& gateway, const std::string& name,
                                   std::uint64_t epoch,
                                   std::vector<SeqRange> ranges) -> shared::Result<std::uint64_t> {
                commands_.push_back({gateway, name, epoch, std::move(ranges)});
                if (command_error_) return *command_error_;
                return next_command_id_++;
            },
            .token = std::move(token),
        };
    }

    shared::HttpResponse request(const std::string& method, const std::string& path,
                                 std::map<std::string, std::string> query = {},
                                 std::string body = {},
                                 std::vector<std::pair<std::string, std::string>> headers = {}) {
        const IngestApi api(sources(token_));
        shared::HttpRequest r;
        r.method = method;
        r.path = path;
        r.query = std::move(query);
        r.headers = std::move(headers);
        r.body = std::move(body);
        return api.handle(r);
    }
    shared::HttpResponse get(const std::string& path,
                             std::map<std::string, std::string> query = {}) {
        return request("GET", path, std::move(query));
    }
    shared::HttpResponse post(const std::string& path, const std::string& body) {
        return request("POST", path, {}, body);
    }

    // The JSON body; fails the test if it is not JSON.
    static json body(const shared::HttpResponse& response) {
        EXPECT_EQ(response.content_type, "application/json") << response.body;
        auto parsed = json::parse(response.body, nullptr, false);
        EXPECT_FALSE(parsed.is_discarded()) << response.body;
        return parsed;
    }
    // Asserts the status and the error code of a JSON error response.
    static void expectError(const shared::HttpResponse& response, unsigned status,
                            const std::string& code) {
        EXPECT_EQ(response.status, status) << response.body;
        const auto parsed = body(response);
        EXPECT_EQ(parsed.value("error", ""), code) << response.body;
        EXPECT_FALSE(parsed.value("detail", "").empty()) << response.body;
    }

    void writeReadings(const std::string& gateway, std::uint16_t sensor, std::int64_t from_ms,
                       std::int64_t every_ms, int count) {
        shared::TelemetryBatch batch;
        batch.gateway_id = gateway;
        batch.clock_synced = true;
        for (int i = 0; i < count; ++i) {
            batch.readings.push_back(
                {sensor, from_ms + i * every_ms, static_cast<double>(i), shared::Quality::Good});
        }
        auto written = store_->write(gateway, batch);
        ASSERT_TRUE(written) << written.error().message();
        ASSERT_EQ(written.value().readings_written, static_cast<std::uint64_t>(count));
    }

    fs::path dir_;
    shared::ManualClock clock_{shared::fromUnixMillis(kNow)};
    shared::MetricsRegistry metrics_;
    FleetState fleet_{metrics_};
    Quarantine quarantine_{QuarantineConfig{}, metrics_};
    std::unique_ptr<Spool> spool_;
    std::unique_ptr<TimeseriesStore> store_;
    bool subscribed_ = true;
    bool writable_ = true;
    std::string token_;
    std::vector<SentCommand> commands_;
    std::optional<shared::Error> command_error_;
    std::uint64_t next_command_id_ = 9001;
};

// --- probes and routing ----------------------------------------------------------------------

TEST_F(IngestApiTest, HealthzAnswersWhileTheThreadTurns) {
    const auto response = get("/healthz");
    EXPECT_EQ(response.status, 200u);
    EXPECT_EQ(body(response), (json{{"status", "ok"}}));
    expectError(post("/healthz", ""), 405, "method_not_allowed");
}

TEST_F(IngestApiTest, ReadyzNeedsASubscriptionAndAWritableSpool) {
    auto response = get("/readyz");
    EXPECT_EQ(response.status, 200u);
    EXPECT_EQ(body(response),
              (json{{"ready", true}, {"subscribed", true}, {"spool_writable", true}}));

    subscribed_ = false;
    response = get("/readyz");
    EXPECT_EQ(response.status, 503u);
    EXPECT_EQ(body(response),
              (json{{"ready", false}, {"subscribed", false}, {"spool_writable", true}}));

    subscribed_ = true;
    writable_ = false;
    response = get("/readyz");
    EXPECT_EQ(response.status, 503u);
    EXPECT_EQ(body(response),
              (json{{"ready", false}, {"subscribed", true}, {"spool_writable", false}}));

    // Without the probes wired up it is not ready either.
    auto bare = sources();
    bare.subscribed = nullptr;
    bare.spool_writable = nullptr;
    shared::HttpRequest r;
    r.method = "GET";
    r.path = "/readyz";
    EXPECT_EQ(IngestApi(bare).handle(r).status, 503u);

    expectError(post("/readyz", ""), 405, "method_not_allowed");
}

TEST_F(IngestApiTest, MetricsArePrometheusText) {
    fleet_.onStatus("gw-1", birth("gw-1", 1), kNow, 0, false);
    const auto response = get("/metrics");
    EXPECT_EQ(response.status, 200u);
    EXPECT_EQ(response.content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(response.body.find("tern_ingest_gateways{state=\"online\"} 1"), std::string::npos)
        << response.body;
    expectError(post("/metrics", ""), 405, "method_not_allowed");
}

TEST_F(IngestApiTest, UnknownRoutesAre404) {
    expectError(get("/"), 404, "not_found");
    expectError(get("/nope"), 404, "not_found");
    expectError(get("/api/v1/nope"), 404, "not_found");
    expectError(get("/api/v2/gateways"), 404, "not_found");
    expectError(get("/api/v1/gateways/gw-1/other"), 404, "not_found");
    expectError(get("/api/v1/gateways/gw-1/commands/rebirth"), 404, "not_found");
}

TEST_F(IngestApiTest, WrongMethodsAre405) {
    for (const char* path : {"/api/v1/gateways", "/api/v1/gateways/gw-1", "/api/v1/series",
                             "/api/v1/alerts", "/api/v1/quarantine", "/api/v1/spool"}) {
        for (const char* method : {"POST", "PUT", "DELETE"}) {
            SCOPED_TRACE(std::string(method) + " " + path);
            expectError(request(method, path), 405, "method_not_allowed");
        }
    }
    expectError(get("/api/v1/gateways/gw-1/commands"), 405, "method_not_allowed");
    expectError(request("PUT", "/api/v1/gateways/gw-1/commands", {}, R"({"name":"rebirth"})"), 405,
                "method_not_allowed");
    EXPECT_TRUE(commands_.empty());
}

// --- the bearer token ------------------------------------------------------------------------

TEST_F(IngestApiTest, ApiRoutesNeedTheBearerToken) {
    token_ = "s3cret-t0ken";
    const auto with = [&](std::vector<std::pair<std::string, std::string>> headers,
                          const std::string& path = "/api/v1/gateways") {
        return request("GET", path, {}, {}, std::move(headers));
    };

    auto response = with({});
    expectError(response, 401, "unauthorized");
    ASSERT_EQ(response.headers.size(), 1u);
    EXPECT_EQ(response.headers[0],
              (std::pair<std::string, std::string>{"WWW-Authenticate", "Bearer"}));

    for (const std::string& value :
         {std::string("Bearer s3cret-t0keN"),   // one byte off at the end
          std::string("Bearer S3cret-t0ken"),   // one byte off at the start
          std::string("Bearer s3cret-t0ke"),    // a prefix
          std::string("Bearer s3cret-t0ken0"),  // longer, with the right prefix
          std::string("Bearer "), std::string("Bearer"), std::string("s3cret-t0ken"),
          std::string("Basic s3cret-t0ken"), std::string("Bearer  s3cret-t0ken"),
          std::string("Bearer s3cret-t0ken\0", 20)}) {
        SCOPED_TRACE(value);
        expectError(with({{"Authorization", value}}), 401, "unauthorized");
    }

    // The right token, under any spelling of the header name; the first header counts.
    EXPECT_EQ(with({{"Authorization", "Bearer s3cret-t0ken"}}).status, 200u);
    EXPECT_EQ(with({{"authorization", "Bearer s3cret-t0ken"}}).status, 200u);
    EXPECT_EQ(
        with({{"Authorization", "Bearer s3cret-t0ken"}, {"Authorization", "Bearer x"}}).status,
        200u);
    expectError(with({{"Authorization", "Bearer x"}, {"Authorization", "Bearer s3cret-t0ken"}}),
                401, "unauthorized");

    // Every /api/ route, known or not, is behind it; a POST is refused before it is sent.
    expectError(with({}, "/api/v1/nope"), 401, "unauthorized");
    expectError(with({}, "/api/v1/spool"), 401, "unauthorized");
    expectError(request("POST", "/api/v1/gateways/gw-1/commands", {}, R"({"name":"rebirth"})"), 401,
                "unauthorized");
    EXPECT_TRUE(commands_.empty());
    EXPECT_EQ(request("POST", "/api/v1/gateways/gw-1/commands", {}, R"({"name":"rebirth"})",
                      {{"Authorization", "Bearer s3cret-t0ken"}})
                  .status,
              202u);

    // Probes and the scraper stay open.
    EXPECT_EQ(get("/healthz").status, 200u);
    EXPECT_EQ(get("/readyz").status, 200u);
    EXPECT_EQ(get("/metrics").status, 200u);
    // Outside /api/ an unknown route is a plain 404, token or not.
    expectError(get("/nope"), 404, "not_found");
}

TEST_F(IngestApiTest, WithoutATokenNothingIsAsked) {
    EXPECT_EQ(get("/api/v1/gateways").status, 200u);
    EXPECT_EQ(
        request("GET", "/api/v1/gateways", {}, {}, {{"Authorization", "Bearer whatever"}}).status,
        200u);
}

// RFC 7235 section 2.1: the auth-scheme is case-insensitive ("bearer", "BEARER").
TEST_F(IngestApiTest, TheBearerSchemeIsCaseInsensitive) {
    token_ = "s3cret-t0ken";
    for (const char* scheme : {"Bearer", "bearer", "BEARER"}) {
        SCOPED_TRACE(scheme);
        EXPECT_EQ(request("GET", "/api/v1/gateways", {}, {},
                          {{"Authorization", std::string(scheme) + " s3cret-t0ken"}})
                      .status,
                  200u);
    }
}

// --- gateways --------------------------------------------------------------------------------

TEST_F(IngestApiTest, GatewaysListsTheFleetById) {
    EXPECT_EQ(body(get("/api/v1/gateways")), (json{{"gateways", json::array()}}));

    fleet_.onStatus("gw-2", birth("gw-2", 4), kNow, 1'000, false);
    fleet_.onTelemetry("gw-1", {1, 5}, 40, kNow);
    const auto response = get("/api/v1/gateways");
    EXPECT_EQ(response.status, 200u);
    const auto list = body(response)["gateways"];
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0]["gateway_id"], "gw-1");
    EXPECT_EQ(list[0]["has_status"], false);
    EXPECT_EQ(list[0]["online"], false);
    EXPECT_EQ(list[0]["received"]["batches"], 1);
    EXPECT_EQ(list[0]["received"]["readings"], 40);
    EXPECT_TRUE(list[0]["clock_skew_ms"].is_null());
    EXPECT_FALSE(list[0].contains("last_command_ack"));
    EXPECT_EQ(list[1]["gateway_id"], "gw-2");
    EXPECT_EQ(list[1]["online"], true);
    EXPECT_EQ(list[1]["epoch"], 4);
}

TEST_F(IngestApiTest, OneGatewayHasItsWholeView) {
    fleet_.onStatus("gw-1", birth("gw-1", 2), kNow - 500, 250, false);
    fleet_.onTelemetry("gw-1", {2, 1}, 12, kNow - 400);
    fleet_.onAlert("gw-1", kNow - 300);
    fleet_.onRejected("gw-1", kNow - 200);
    fleet_.onCommandAck("gw-1", {"gw-1", 77, shared::CommandResult::Done, "birth published", kNow},
                        kNow - 100);

    const auto response = get("/api/v1/gateways/gw-1");
    EXPECT_EQ(response.status, 200u);
    const auto g = body(response);
    EXPECT_EQ(g["gateway_id"], "gw-1");
    EXPECT_EQ(g["online"], true);
    EXPECT_EQ(g["has_status"], true);
    EXPECT_EQ(g["last_status"], "birth");
    EXPECT_EQ(g["last_status_ms"], kNow - 500);
    EXPECT_EQ(g["last_seen_ms"], kNow - 100);
    EXPECT_EQ(g["session"], 3);
    EXPECT_EQ(g["epoch"], 2);
    EXPECT_EQ(g["firmware_version"], "2.4.1");
    EXPECT_EQ(g["clock_synced"], true);
    EXPECT_EQ(g["clock_skew_ms"], 250);
    EXPECT_EQ(g["sensors"], (json::array({{{"index", 0}, {"name", "s0"}, {"unit", "Cel"}},
                                          {{"index", 1}, {"name", "s1"}, {"unit", "%"}}})));
    EXPECT_EQ(g["backlog"], (json{{"batches", 7}, {"bytes", 700}, {"oldest_ms", kNow - 60'000}}));
    EXPECT_EQ(g["drops"],
              (json::array({{{"reason", "store_full"}, {"batches", 2}, {"readings", 20}}})));
    EXPECT_EQ(g["received"],
              (json{{"batches", 1}, {"readings", 12}, {"alerts", 1}, {"rejected", 1}}));
    EXPECT_EQ(
        g["last_command_ack"],
        (json{
            {"command_id", 77}, {"result", 1}, {"detail", "birth published"}, {"time_ms", kNow}}));
}

TEST_F(IngestApiTest, UnknownGatewayIs404AndAnInvalidIdIs400) {
    expectError(get("/api/v1/gateways/gw-9"), 404, "unknown_gateway");
    expectError(get("/api/v1/gateways/"), 400, "invalid_gateway_id");
    expectError(get("/api/v1/gateways/gw+1"), 400, "invalid_gateway_id");
    expectError(get("/api/v1/gateways/gw#1"), 400, "invalid_gateway_id");
    expectError(get("/api/v1/gateways/gw 1"), 400, "invalid_gateway_id");
    expectError(get("/api/v1/gateways/gw\x01"), 400, "invalid_gateway_id");
    expectError(get("/api/v1/gateways/gw-\xff"), 400, "invalid_gateway_id");
    expectError(get("/api/v1/gateways/" + std::string(300, 'g')), 400, "invalid_gateway_id");
    expectError(post("/api/v1/gateways/gw+1/commands", R"({"name":"rebirth"})"), 400,
                "invalid_gateway_id");
    EXPECT_TRUE(commands_.empty());
}

// --- commands --------------------------------------------------------------------------------

TEST_F(IngestApiTest, RebirthIsSentWithTheEpochTheFleetKnows) {
    auto response = post("/api/v1/gateways/gw-9/commands", R"({"name":"rebirth"})");
    EXPECT_EQ(response.status, 202u);
    EXPECT_EQ(
        body(response),
        (json{{"command_id", 9001}, {"gateway_id", "gw-9"}, {"name", "rebirth"}, {"epoch", 0}}));

    fleet_.onStatus("gw-1", birth("gw-1", 6), kNow, 0, false);
    response = post("/api/v1/gateways/gw-1/commands", R"({"name":"rebirth"})");
    EXPECT_EQ(response.status, 202u);
    EXPECT_EQ(body(response)["command_id"], 9002);
    EXPECT_EQ(body(response)["epoch"], 6);

    ASSERT_EQ(commands_.size(), 2u);
    EXPECT_EQ(commands_[0].gateway, "gw-9");
    EXPECT_EQ(commands_[0].name, "rebirth");
    EXPECT_EQ(commands_[0].epoch, 0u);
    EXPECT_TRUE(commands_[0].ranges.empty());
    EXPECT_EQ(commands_[1].gateway, "gw-1");
    EXPECT_EQ(commands_[1].epoch, 6u);
}

TEST_F(IngestApiTest, ResendTakesAnEpochAndRanges) {
    auto response = post("/api/v1/gateways/gw-1/commands",
                         R"({"name":"resend","epoch":3,"ranges":[[10,20],[25,25]]})");
    EXPECT_EQ(response.status, 202u);
    EXPECT_EQ(
        body(response),
        (json{{"command_id", 9001}, {"gateway_id", "gw-1"}, {"name", "resend"}, {"epoch", 3}}));
    ASSERT_EQ(commands_.size(), 1u);
    EXPECT_EQ(commands_[0].name, "resend");
    EXPECT_EQ(commands_[0].epoch, 3u);
    EXPECT_EQ(commands_[0].ranges, (std::vector<SeqRange>{{10, 20}, {25, 25}}));

    // Without ranges: the sender fills in the spool's gaps.
    response = post("/api/v1/gateways/gw-1/commands", R"({"name":"resend","epoch":3})");
    EXPECT_EQ(response.status, 202u);
    ASSERT_EQ(commands_.size(), 2u);
    EXPECT_TRUE(commands_[1].ranges.empty());

    // Without an epoch: the one the fleet knows.
    fleet_.onStatus("gw-1", birth("gw-1", 5), kNow, 0, false);
    response = post("/api/v1/gateways/gw-1/commands", R"({"name":"resend","ranges":[[1,2]]})");
    EXPECT_EQ(response.status, 202u);
    EXPECT_EQ(body(response)["epoch"], 5);
    ASSERT_EQ(commands_.size(), 3u);
    EXPECT_EQ(commands_[2].epoch, 5u);
    EXPECT_EQ(commands_[2].ranges, (std::vector<SeqRange>{{1, 2}}));

    // An explicit epoch wins over the fleet's.
    response = post("/api/v1/gateways/gw-1/commands", R"({"name":"resend","epoch":4})");
    EXPECT_EQ(body(response)["epoch"], 4);
}

TEST_F(IngestApiTest, ResendNeedsAnEpochWhenTheFleetDoesNotKnowTheGateway) {
    expectError(post("/api/v1/gateways/gw-9/commands", R"({"name":"resend"})"), 400,
                "invalid_body");
    expectError(post("/api/v1/gateways/gw-9/commands", R"({"name":"resend","ranges":[[1,2]]})"),
                400, "invalid_body");
    expectError(post("/api/v1/gateways/gw-9/commands", R"({"name":"resend","epoch":0})"), 400,
                "invalid_body");
    EXPECT_TRUE(commands_.empty());
    // Known from its telemetry alone: the epoch comes from there.
    fleet_.onTelemetry("gw-9", {2, 1}, 1, kNow);
    const auto response = post("/api/v1/gateways/gw-9/commands", R"({"name":"resend"})");
    EXPECT_EQ(response.status, 202u);
    EXPECT_EQ(body(response)["epoch"], 2);
}

TEST_F(IngestApiTest, CommandBodiesAreValidated) {
    const std::string path = "/api/v1/gateways/gw-1/commands";
    for (const char* bad : {
             "",
             "not json",
             "{\"name\":",
             "[\"rebirth\"]",
             "\"rebirth\"",
             "42",
             "null",
             "{}",
             R"({"name":7})",
             R"({"name":null})",
             R"({"name":["rebirth"]})",
             R"({"name":"resend","epoch":-1})",
             R"({"name":"resend","epoch":"3"})",
             R"({"name":"resend","epoch":1.5})",
             R"({"name":"resend","epoch":3,"ranges":{"first":1}})",
             R"({"name":"resend","epoch":3,"ranges":[1,2]})",
             R"({"name":"resend","epoch":3,"ranges":[[1]]})",
             R"({"name":"resend","epoch":3,"ranges":[[1,2,3]]})",
             R"({"name":"resend","epoch":3,"ranges":[[0,2]]})",
             R"({"name":"resend","epoch":3,"ranges":[[5,3]]})",
             R"({"name":"resend","epoch":3,"ranges":[[-1,2]]})",
             R"({"name":"resend","epoch":3,"ranges":[["1","2"]]})",
             R"({"name":"resend","epoch":3,"ranges":[[1,2],[1.5,3]]})",
             R"({"name":"rebirth","epoch":3})",
             R"({"name":"rebirth","ranges":[[1,2]]})",
         }) {
        SCOPED_TRACE(bad);
        expectError(post(path, bad), 400, "invalid_body");
    }
    EXPECT_TRUE(commands_.empty());
    // Empty ranges are no ranges, even for rebirth.
    EXPECT_EQ(post(path, R"({"name":"rebirth","ranges":[]})").status, 202u);
    // Unknown keys are ignored.
    EXPECT_EQ(post(path, R"({"name":"rebirth","why":"testing"})").status, 202u);
}

TEST_F(IngestApiTest, CommandErrorsSayWhetherToRetry) {
    command_error_ = shared::Error::drop("no_gaps", "the spool has no gaps for gw-1 in epoch 3");
    expectError(post("/api/v1/gateways/gw-1/commands", R"({"name":"resend","epoch":3})"), 400,
                "no_gaps");
    command_error_ = shared::Error::drop("invalid_command", "command name is not [a-z0-9_-]");
    expectError(post("/api/v1/gateways/gw-1/commands", R"({"name":"Re Birth"})"), 400,
                "invalid_command");
    command_error_ = shared::Error::retry("not_connected", "not connected to the broker");
    expectError(post("/api/v1/gateways/gw-1/commands", R"({"name":"rebirth"})"), 503,
                "not_connected");
    EXPECT_EQ(commands_.size(), 3u);
}

// --- series ----------------------------------------------------------------------------------

TEST_F(IngestApiTest, SeriesPicksRawOrARollupByStep) {
    // One hour of s0, a reading every 10 s with value = its index.
    writeReadings("gw-1", 0, kHour0, 10'000, 360);
    const std::map<std::string, std::string> range{{"gateway", "gw-1"},
                                                   {"sensor", "s0"},
                                                   {"from", std::to_string(kHour0)},
                                                   {"to", std::to_string(kHour0 + 3'600'000)}};
    const auto series = [&](const std::string& step) {
        auto query = range;
        if (!step.empty()) query["step"] = step;
        const auto response = get("/api/v1/series", query);
        EXPECT_EQ(response.status, 200u) << response.body;
        return body(response);
    };

    for (const std::string step : {"", "0", "0ms"}) {
        SCOPED_TRACE("step=" + step);
        const auto raw = series(step);
        EXPECT_EQ(raw["gateway"], "gw-1");
        EXPECT_EQ(raw["sensor"], "s0");
        EXPECT_EQ(raw["from"], kHour0);
        EXPECT_EQ(raw["to"], kHour0 + 3'600'000);
        EXPECT_EQ(raw["tier"], "raw");
        EXPECT_EQ(raw["step_ms"], 0);
        ASSERT_EQ(raw["points"].size(), 360u);
        EXPECT_EQ(raw["points"][0], (json{{"t", kHour0}, {"v", 0.0}, {"q", "good"}}));
        EXPECT_EQ(raw["points"][359],
                  (json{{"t", kHour0 + 3'590'000}, {"v", 359.0}, {"q", "good"}}));
    }

    for (const std::string step : {"1m", "60s", "60000"}) {
        SCOPED_TRACE("step=" + step);
        const auto minutes = series(step);
        EXPECT_EQ(minutes["tier"], "1m");
        EXPECT_EQ(minutes["step_ms"], 60'000);
        ASSERT_EQ(minutes["points"].size(), 60u);
        // The first minute: readings 0..5.
        EXPECT_EQ(minutes["points"][0], (json{{"t", kHour0},
                                              {"v", 2.5},
                                              {"min", 0.0},
                                              {"max", 5.0},
                                              {"first", 0.0},
                                              {"last", 5.0},
                                              {"count", 6}}));
    }

    // 90 s over 1-minute rollups: rounded up to two minutes.
    const auto two_minutes = series("90s");
    EXPECT_EQ(two_minutes["tier"], "1m");
    EXPECT_EQ(two_minutes["step_ms"], 120'000);
    ASSERT_EQ(two_minutes["points"].size(), 30u);
    EXPECT_EQ(two_minutes["points"][1]["t"], kHour0 + 120'000);
    EXPECT_EQ(two_minutes["points"][1]["count"], 12);
    EXPECT_EQ(two_minutes["points"][1]["min"], 12.0);

    for (const std::string step : {"1h", "60m", "3600000"}) {
        SCOPED_TRACE("step=" + step);
        const auto hour = series(step);
        EXPECT_EQ(hour["tier"], "1h");
        EXPECT_EQ(hour["step_ms"], 3'600'000);
        ASSERT_EQ(hour["points"].size(), 1u);
        EXPECT_EQ(hour["points"][0]["count"], 360);
        EXPECT_EQ(hour["points"][0]["min"], 0.0);
        EXPECT_EQ(hour["points"][0]["max"], 359.0);
        EXPECT_EQ(hour["points"][0]["v"], 179.5);
    }

    // A day over 1-hour rollups.
    const auto day = series("1d");
    EXPECT_EQ(day["tier"], "1h");
    EXPECT_EQ(day["step_ms"], 86'400'000);
    ASSERT_EQ(day["points"].size(), 1u);
    EXPECT_EQ(day["points"][0]["t"], kHour0);  // kHour0 is midnight UTC
    EXPECT_EQ(day["points"][0]["count"], 360);

    // Just below a minute: still the raw tier.
    EXPECT_EQ(series("59999")["tier"], "raw");
    EXPECT_EQ(series("59s")["tier"], "raw");
}

// Below a minute, a non-zero step summarises the raw readings per step (the store's contract),
// so the points are summaries: they must say how many readings each stands for, as the rollup
// tiers' points do, not pass a mean off as a reading of quality "good".
TEST_F(IngestApiTest, SeriesBelowAMinuteWithAStepReturnsSummaries) {
    writeReadings("gw-1", 0, kHour0, 10'000, 360);
    const auto response = get("/api/v1/series", {{"gateway", "gw-1"},
                                                 {"sensor", "s0"},
                                                 {"from", std::to_string(kHour0)},
                                                 {"to", std::to_string(kHour0 + 60'000)},
                                                 {"step", "30s"}});
    ASSERT_EQ(response.status, 200u) << response.body;
    const auto series = body(response);
    EXPECT_EQ(series["tier"], "raw");
    EXPECT_EQ(series["step_ms"], 30'000);
    ASSERT_EQ(series["points"].size(), 2u) << series.dump();
    // Readings 0, 1, 2 in the first 30 s.
    EXPECT_EQ(series["points"][0], (json{{"t", kHour0},
                                         {"v", 1.0},
                                         {"min", 0.0},
                                         {"max", 2.0},
                                         {"first", 0.0},
                                         {"last", 2.0},
                                         {"count", 3}}))
        << series.dump();
}

TEST_F(IngestApiTest, SeriesDefaultsToTheLastHour) {
    // A reading every minute over 90 minutes; the clock is at the end of them.
    writeReadings("gw-1", 0, kHour0, 60'000, 90);
    const auto response = get("/api/v1/series", {{"gateway", "gw-1"}, {"sensor", "s0"}});
    ASSERT_EQ(response.status, 200u) << response.body;
    const auto series = body(response);
    EXPECT_EQ(series["from"], kNow - 3'600'000);
    EXPECT_EQ(series["to"], kNow);
    EXPECT_EQ(series["tier"], "raw");
    ASSERT_EQ(series["points"].size(), 60u);
    EXPECT_EQ(series["points"][0]["t"], kNow - 3'600'000);

    // Only `to`: the hour before it.
    const auto earlier = body(
        get("/api/v1/series",
            {{"gateway", "gw-1"}, {"sensor", "s0"}, {"to", std::to_string(kHour0 + 600'000)}}));
    EXPECT_EQ(earlier["from"], kHour0 + 600'000 - 3'600'000);
    EXPECT_EQ(earlier["points"].size(), 10u);
}

TEST_F(IngestApiTest, SeriesQueryErrors) {
    writeReadings("gw-1", 0, kHour0, 1'000, 10);
    const std::map<std::string, std::string> good{{"gateway", "gw-1"},
                                                  {"sensor", "s0"},
                                                  {"from", std::to_string(kHour0)},
                                                  {"to", std::to_string(kHour0 + 60'000)}};
    const auto with = [&](std::map<std::string, std::string> changes,
                          std::vector<std::string> removed = {}) {
        auto query = good;
        for (auto& [key, value] : changes) query[key] = value;
        for (const auto& key : removed) query.erase(key);
        return get("/api/v1/series", query);
    };
    EXPECT_EQ(with({}).status, 200u);

    expectError(with({}, {"gateway"}), 400, "invalid_query");
    expectError(with({}, {"sensor"}), 400, "invalid_query");
    expectError(with({}, {"gateway", "sensor"}), 400, "invalid_query");
    expectError(get("/api/v1/series"), 400, "invalid_query");

    for (const char* bad : {"", "abc", "1.5", "1e3", "+5", "99999999999999999999"}) {
        SCOPED_TRACE(bad);
        expectError(with({{"from", bad}}), 400, "invalid_query");
        expectError(with({{"to", bad}}), 400, "invalid_query");
    }
    expectError(with({{"to", std::to_string(kHour0)}}), 400, "invalid_query");  // from == to
    expectError(with({{"to", std::to_string(kHour0 - 1)}}), 400, "invalid_query");
    // The default `from` (an hour before `to`) must not overflow at the bottom of the range.
    expectError(
        get("/api/v1/series", {{"gateway", "gw-1"},
                               {"sensor", "s0"},
                               {"to", std::to_string(std::numeric_limits<std::int64_t>::min())}}),
        400, "invalid_query");

    for (const char* bad : {"", "abc", "1x", "s", "ms", "-1s", "1.5s", "1e3", " 1m", "1m ",
                            "9223372036854775807s", "-5"}) {
        SCOPED_TRACE(std::string("step=") + bad);
        expectError(with({{"step", bad}}), 400, "invalid_query");
    }

    expectError(with({{"sensor", "s9"}}), 404, "unknown_sensor");
    expectError(with({{"sensor", "S0"}}), 404, "unknown_sensor");
    expectError(with({{"gateway", "gw-9"}}), 404, "unknown_sensor");

    // More than max_points: raw points actually held, or buckets a step would make.
    writeReadings("gw-1", 1, kHour0, 100, kMaxPoints + 1);
    expectError(with({{"sensor", "s1"}}), 400, "too_many_points");
    EXPECT_EQ(with({{"sensor", "s1"}, {"to", std::to_string(kHour0 + 100 * kMaxPoints)}}).status,
              200u);
    expectError(with({{"from", "0"}, {"step", "1h"}}), 400, "too_many_points");
    expectError(with({{"from", "0"}, {"step", "1s"}}), 400, "too_many_points");
}

TEST_F(IngestApiTest, SeriesAndAlertsNeedTheStore) {
    auto no_store = sources();
    no_store.series = nullptr;
    const IngestApi api(no_store);
    shared::HttpRequest r;
    r.method = "GET";
    r.path = "/api/v1/series";
    r.query = {{"gateway", "gw-1"}, {"sensor", "s0"}};
    expectError(api.handle(r), 404, "no_store");
    r.path = "/api/v1/alerts";
    expectError(api.handle(r), 404, "no_store");
    // The rest does not need it.
    r.path = "/api/v1/spool";
    EXPECT_EQ(api.handle(r).status, 200u);
}

// --- alerts ----------------------------------------------------------------------------------

TEST_F(IngestApiTest, AlertsNewestFirstFilteredAndLimited) {
    ASSERT_TRUE(store_->setSensors("gw-2", birth("gw-2", 1).sensors));
    for (std::uint64_t seq = 1; seq <= 5; ++seq) {
        ASSERT_TRUE(
            store_->writeAlert("gw-1", alert(seq, kHour0 + static_cast<std::int64_t>(seq))));
    }
    ASSERT_TRUE(store_->writeAlert("gw-2", alert(1, kHour0 + 10, "gw-2")));

    auto response = get("/api/v1/alerts");
    ASSERT_EQ(response.status, 200u) << response.body;
    auto list = body(response)["alerts"];
    ASSERT_EQ(list.size(), 6u);
    EXPECT_EQ(list[0]["gateway_id"], "gw-2");
    EXPECT_EQ(list[1], (json{{"gateway_id", "gw-1"},
                             {"epoch", 1},
                             {"seq", 5},
                             {"incident_id", 105},
                             {"rule", "too_hot"},
                             {"sensor", 0},
                             {"severity", "critical"},
                             {"state", "firing"},
                             {"value", 40.5},
                             {"time_ms", kHour0 + 5},
                             {"clock_synced", true},
                             {"message", "s0 above 40"}}));
    EXPECT_EQ(list[2]["state"], "resolved");

    list = body(get("/api/v1/alerts", {{"gateway", "gw-1"}, {"limit", "2"}}))["alerts"];
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0]["seq"], 5);
    EXPECT_EQ(list[1]["seq"], 4);

    // [from, to)
    list = body(get("/api/v1/alerts", {{"gateway", "gw-1"},
                                       {"from", std::to_string(kHour0 + 2)},
                                       {"to", std::to_string(kHour0 + 4)}}))["alerts"];
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0]["seq"], 3);
    EXPECT_EQ(list[1]["seq"], 2);

    EXPECT_EQ(body(get("/api/v1/alerts", {{"gateway", "gw-9"}}))["alerts"].size(), 0u);
    EXPECT_EQ(get("/api/v1/alerts", {{"limit", "10000"}}).status, 200u);
}

TEST_F(IngestApiTest, AlertQueryErrors) {
    for (const auto& [key, value] :
         std::vector<std::pair<std::string, std::string>>{{"limit", "0"},
                                                          {"limit", "-1"},
                                                          {"limit", "10001"},
                                                          {"limit", "ten"},
                                                          {"from", "x"},
                                                          {"to", "1.5"}}) {
        SCOPED_TRACE(key + "=" + value);
        expectError(get("/api/v1/alerts", {{key, value}}), 400, "invalid_query");
    }
}

// --- quarantine ------------------------------------------------------------------------------

TEST_F(IngestApiTest, QuarantinePagesNewestFirst) {
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 5; ++i) {
        const std::string gateway = i % 2 == 0 ? "gw-1" : "gw-2";
        const std::string reason = i < 3 ? "truncated" : "gateway_mismatch";
        const shared::Bytes payload{0xde, 0xad, static_cast<std::uint8_t>(i)};
        ids.push_back(quarantine_.add(kNow + i, "tern/v1/gw/" + gateway + "/telemetry", gateway,
                                      reason, "detail " + std::to_string(i), payload));
    }

    auto response = get("/api/v1/quarantine");
    ASSERT_EQ(response.status, 200u);
    auto page = body(response);
    ASSERT_EQ(page["entries"].size(), 5u);
    EXPECT_EQ(page["entries"][0], (json{{"id", ids[4]},
                                        {"received_ms", kNow + 4},
                                        {"topic", "tern/v1/gw/gw-1/telemetry"},
                                        {"gateway_id", "gw-1"},
                                        {"reason", "gateway_mismatch"},
                                        {"detail", "detail 4"},
                                        {"payload_bytes", 3},
                                        {"payload_hex", "dead04"}}));
    EXPECT_EQ(page["counts"], (json{{"gateway_mismatch", 2}, {"truncated", 3}}));
    EXPECT_EQ(page["held"], 5);
    EXPECT_EQ(page["evicted"], 0);

    // Paging: two at a time, each page before the last id seen.
    std::vector<std::uint64_t> seen;
    std::optional<std::uint64_t> before;
    for (int pages = 0; pages < 10; ++pages) {
        std::map<std::string, std::string> query{{"limit", "2"}};
        if (before) query["before"] = std::to_string(*before);
        page = body(get("/api/v1/quarantine", query));
        if (page["entries"].empty()) break;
        EXPECT_LE(page["entries"].size(), 2u);
        for (const auto& entry : page["entries"]) seen.push_back(entry["id"].get<std::uint64_t>());
        before = seen.back();
    }
    EXPECT_EQ(seen, (std::vector<std::uint64_t>{ids[4], ids[3], ids[2], ids[1], ids[0]}));

    // before=0 is the newest page.
    page = body(get("/api/v1/quarantine", {{"before", "0"}, {"limit", "1"}}));
    ASSERT_EQ(page["entries"].size(), 1u);
    EXPECT_EQ(page["entries"][0]["id"], ids[4]);

    // Filters.
    page = body(get("/api/v1/quarantine", {{"gateway", "gw-2"}}));
    ASSERT_EQ(page["entries"].size(), 2u);
    EXPECT_EQ(page["entries"][0]["id"], ids[3]);
    EXPECT_EQ(page["entries"][1]["id"], ids[1]);
    page = body(get("/api/v1/quarantine", {{"reason", "truncated"}, {"gateway", "gw-1"}}));
    ASSERT_EQ(page["entries"].size(), 2u);
    EXPECT_EQ(page["entries"][0]["id"], ids[2]);
    EXPECT_EQ(page["entries"][1]["id"], ids[0]);
    // Counts are the whole quarantine's, whatever the filter.
    EXPECT_EQ(page["counts"], (json{{"gateway_mismatch", 2}, {"truncated", 3}}));
}

TEST_F(IngestApiTest, QuarantineQueryErrors) {
    for (const auto& [key, value] :
         std::vector<std::pair<std::string, std::string>>{{"limit", "0"},
                                                          {"limit", "10001"},
                                                          {"limit", "x"},
                                                          {"before", "-1"},
                                                          {"before", "abc"},
                                                          {"before", "99999999999999999999"}}) {
        SCOPED_TRACE(key + "=" + value);
        expectError(get("/api/v1/quarantine", {{key, value}}), 400, "invalid_query");
    }
    EXPECT_EQ(get("/api/v1/quarantine", {{"limit", "10000"}}).status, 200u);
}

// --- spool -----------------------------------------------------------------------------------

TEST_F(IngestApiTest, SpoolShowsRecordsBytesAndCursors) {
    auto response = get("/api/v1/spool");
    ASSERT_EQ(response.status, 200u);
    auto stats = body(response);
    EXPECT_EQ(stats["records"], 0);
    EXPECT_EQ(stats["bytes"], 0);
    EXPECT_EQ(stats["last_offset"], 0);
    EXPECT_EQ(stats["above_high_water"], false);
    EXPECT_EQ(stats["max_bytes"], SpoolOptions{}.max_bytes);
    EXPECT_EQ(stats["cursors"], json::array());

    ASSERT_TRUE(spool_->addCursor("tsdb"));
    ASSERT_TRUE(spool_->addCursor("kafka"));
    std::vector<Incoming> group;
    for (std::uint64_t seq = 1; seq <= 3; ++seq) {
        Incoming m;
        m.gateway_id = "gw-1";
        m.sequence = {1, seq};
        m.readings = 10;
        m.received_ms = kNow;
        m.payload = shared::Bytes(100, static_cast<std::uint8_t>(seq));
        group.push_back(std::move(m));
    }
    ASSERT_TRUE(spool_->append(group));
    ASSERT_TRUE(spool_->advance("tsdb", 2));

    stats = body(get("/api/v1/spool"));
    EXPECT_EQ(stats["records"], 3);
    EXPECT_EQ(stats["bytes"], 300);
    EXPECT_EQ(stats["last_offset"], 3);
    EXPECT_EQ(stats["cursors"], (json::array({{{"sink", "kafka"}, {"offset", 0}, {"lag", 3}},
                                              {{"sink", "tsdb"}, {"offset", 2}, {"lag", 1}}})));
}

// --- parseStep -------------------------------------------------------------------------------

TEST(ParseStepTest, DurationsAndPlainMilliseconds) {
    EXPECT_EQ(parseStep("0"), 0);
    EXPECT_EQ(parseStep("250"), 250);
    EXPECT_EQ(parseStep("250ms"), 250);
    EXPECT_EQ(parseStep("0ms"), 0);
    EXPECT_EQ(parseStep("90s"), 90'000);
    EXPECT_EQ(parseStep("1m"), 60'000);
    EXPECT_EQ(parseStep("15m"), 900'000);
    EXPECT_EQ(parseStep("1h"), 3'600'000);
    EXPECT_EQ(parseStep("2d"), 172'800'000);
    EXPECT_EQ(parseStep("9223372036854775807"), std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(parseStep("9223372036854775807ms"), std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(parseStep("9223372036854775s"), 9'223'372'036'854'775'000);
}

TEST(ParseStepTest, RejectsWhatIsNotADuration) {
    for (const char* bad : {"",
                            "s",
                            "ms",
                            "m",
                            "h",
                            "d",
                            "x",
                            "1x",
                            "1 s",
                            " 1s",
                            "1s ",
                            "1.5s",
                            "1e3",
                            "+5",
                            "+5s",
                            "-1s",
                            "-1ms",
                            "1sm",
                            "1hs",
                            "1S",
                            "1H",
                            "0x10",
                            "9223372036854775808",
                            "9223372036854775808ms",
                            "9223372036854776s",
                            "106751991167301d"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(parseStep(bad), std::nullopt);
    }
}

// A step is a duration: a negative one is refused like "-1s", not passed on as a number.
TEST(ParseStepTest, RejectsNegativePlainMilliseconds) {
    EXPECT_EQ(parseStep("-1"), std::nullopt);
    EXPECT_EQ(parseStep("-60000"), std::nullopt);
}

}  // namespace
}  // namespace tern::ingest
