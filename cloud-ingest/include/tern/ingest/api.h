#pragma once

// The ingest's HTTP API, JSON in and out (docs/ingest-api.md lists every route):
//   GET  /healthz                           200 while the API thread turns
//   GET  /readyz                            200 when subscribed and the spool is writable, else 503
//   GET  /metrics                           Prometheus text
//   GET  /api/v1/gateways                   the fleet
//   GET  /api/v1/gateways/{id}              one gateway
//   POST /api/v1/gateways/{id}/commands     {"name":"rebirth"} or {"name":"resend","epoch":N,
//                                           "ranges":[[first,last],...]} (no ranges: the gaps)
//   GET  /api/v1/series?gateway=&sensor=&from=&to=&step=    from/to Unix ms, step "0" (raw
//                                           readings) or "90s", "1m", "1h", ms (summaries from
//                                           raw or a rollup, picked by the step)
//   GET  /api/v1/alerts?gateway=&from=&to=&limit=
//   GET  /api/v1/quarantine?gateway=&reason=&before=&limit=
//   GET  /api/v1/spool                      depth, bytes, cursors
// Errors are {"error": "<code>", "detail": "<what is wrong>"} with a 4xx status (5xx when a
// store fails). With a token configured, every /api/ route needs "Authorization: Bearer <token>"
// (401 otherwise); /healthz, /readyz and /metrics stay open for probes and scrapers.
//
// handle() is a pure function of the request and the sources' state, so tests call it directly;
// the daemon serves it with shared::HttpServer on one io_context thread.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tern/ingest/fleet_state.h"
#include "tern/ingest/quarantine.h"
#include "tern/ingest/spool.h"
#include "tern/ingest/timeseries_store.h"
#include "tern/shared/clock.h"
#include "tern/shared/http_server.h"
#include "tern/shared/metrics.h"

namespace tern::ingest {

struct ApiSources {
    const FleetState* fleet = nullptr;
    const Quarantine* quarantine = nullptr;
    const Spool* spool = nullptr;
    // Read-only use (query, alerts, sensors); null when the embedded store is not configured.
    const TimeseriesStore* series = nullptr;
    shared::MetricsRegistry* metrics = nullptr;
    const shared::Clock* clock = nullptr;
    std::function<bool()> subscribed;
    std::function<bool()> spool_writable;
    std::function<shared::Result<std::uint64_t>(const std::string& gateway, const std::string& name,
                                                std::uint64_t epoch,
                                                std::vector<shared::SeqRange> ranges)>
        send_command;
    std::string token;  // "" requires none
};

class IngestApi {
public:
    explicit IngestApi(ApiSources sources);
    shared::HttpResponse handle(const shared::HttpRequest& request) const;

private:
    ApiSources sources_;
};

// "90s" / "1m" / "1h" / "250ms" / "2d" / plain milliseconds -> ms; nullopt otherwise.
std::optional<std::int64_t> parseStep(std::string_view text);

}  // namespace tern::ingest
