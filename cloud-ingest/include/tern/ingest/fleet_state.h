#pragma once

// What the ingest knows about each gateway, for the API and the metrics: online or offline (from
// its retained Status birth/update and its death will), when it was last heard from, its
// firmware, sensors, backlog and drop counters (as its last Status reported them), its clock skew,
// and how much it has sent.
//
// Online means: the last Status was a Birth or an Update and no Death came after it. A gateway
// that goes quiet without a death (the broker has not yet noticed the dead link) stays online
// until its keep-alive expires and the broker publishes the will; last_seen_ms shows how quiet.
// A retained Status delivered on subscribe is applied like a live one, so a restarted ingest
// knows the fleet at once; a Status older (by session, then sent_at_ms) than the one held is
// ignored, so a late retained copy never overrides a newer live one. One exception within a
// session: the will (a Death) is encoded when the gateway connects, so its sent_at_ms is older
// than the session's Birth and Updates; a Death ends its session whatever its sent_at_ms, and a
// Birth or Update of a session that has ended is ignored. Such an older Death takes the gateway
// offline but does not replace the backlog, drops and firmware of the newer Status held.
//
// Clock skew is taken from live Births and Updates only: a retained one may be hours old, and a
// will's sent_at_ms is its session's start, not its publication.
//
// In memory; rebuilt from the retained statuses after a restart (the received counters restart
// from zero).
//
// Threads: every member may be called from any thread (one mutex).

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"

namespace tern::ingest {

struct GatewayView {
    std::string gateway_id;
    bool online = false;
    bool has_status = false;  // false: known only from telemetry so far
    shared::StatusKind last_status = shared::StatusKind::Birth;
    std::int64_t last_status_ms = 0;  // receive time of the last Status applied
    // Receive time of the newest message from it; a retained Status does not count (the broker
    // replays it on subscribing, however long the gateway has been silent). 0: not yet.
    std::int64_t last_seen_ms = 0;
    std::uint64_t session = 0;
    std::uint64_t epoch = 0;
    std::string firmware_version;
    bool clock_synced = false;
    std::optional<std::int64_t> clock_skew_ms;  // from the last live Birth or Update
    std::vector<shared::SensorInfo> sensors;    // from the last Birth
    std::uint64_t backlog_batches = 0;
    std::uint64_t backlog_bytes = 0;
    std::int64_t oldest_backlog_ms = 0;
    std::vector<shared::DropCounter> drops;
    // Since this process started.
    std::uint64_t batches_received = 0;
    std::uint64_t readings_received = 0;
    std::uint64_t alerts_received = 0;
    std::uint64_t rejected = 0;
    std::optional<shared::CommandAck> last_command_ack;
};

class FleetState {
public:
    explicit FleetState(shared::MetricsRegistry& metrics);

    // received_ms is the ingest's clock; skew_ms as the Verifier computed it. `retained`: the
    // broker delivered it from its retained store (on subscribing), so it is not live and its
    // skew is not a measurement. Returns true if the status was applied (not older than the one
    // held).
    bool onStatus(std::string_view gateway_id, const shared::GatewayStatus& status,
                  std::int64_t received_ms, std::int64_t skew_ms, bool retained);
    void onTelemetry(std::string_view gateway_id, const shared::Sequence& sequence,
                     std::uint32_t readings, std::int64_t received_ms);
    void onAlert(std::string_view gateway_id, std::int64_t received_ms);
    void onRejected(std::string_view gateway_id, std::int64_t received_ms);
    void onCommandAck(std::string_view gateway_id, const shared::CommandAck& ack,
                      std::int64_t received_ms);

    // By gateway id, ascending.
    std::vector<GatewayView> list() const;
    std::optional<GatewayView> get(std::string_view gateway_id) const;

private:
    struct Gateway {
        GatewayView view;
        // sent_at_ms of the newest Status applied, which orders statuses of one session.
        std::int64_t status_sent_at_ms = 0;
    };

    Gateway& gateway(std::string_view gateway_id);  // under mutex_; created on first sight
    void updateGauges();  // under mutex_: tern_ingest_gateways{state="online"|"offline"}

    mutable std::mutex mutex_;
    std::map<std::string, Gateway, std::less<>> gateways_;
    std::size_t online_count_ = 0;  // gateways_ with view.online, kept so gauges cost O(1)
    shared::Gauge* online_;
    shared::Gauge* offline_;
};

}  // namespace tern::ingest
