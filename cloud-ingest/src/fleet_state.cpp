#include "tern/ingest/fleet_state.h"

#include <algorithm>
#include <utility>

namespace tern::ingest {

namespace {

constexpr std::string_view kGatewaysName = "tern_ingest_gateways";
constexpr std::string_view kGatewaysHelp =
    "Gateways known since the ingest started, by state (online: last Status a Birth or Update)";

void seen(GatewayView& view, std::int64_t received_ms) {
    view.last_seen_ms = std::max(view.last_seen_ms, received_ms);
}

}  // namespace

FleetState::FleetState(shared::MetricsRegistry& metrics)
    : online_(&metrics.gauge(kGatewaysName, kGatewaysHelp, {{"state", "online"}})),
      offline_(&metrics.gauge(kGatewaysName, kGatewaysHelp, {{"state", "offline"}})) {}

FleetState::Gateway& FleetState::gateway(std::string_view gateway_id) {
    auto it = gateways_.find(gateway_id);
    if (it == gateways_.end()) {
        it = gateways_.emplace(std::string(gateway_id), Gateway{}).first;
        it->second.view.gateway_id = std::string(gateway_id);
        updateGauges();
    }
    return it->second;
}

void FleetState::updateGauges() {
    online_->set(static_cast<double>(online_count_));
    offline_->set(static_cast<double>(gateways_.size() - online_count_));
}

bool FleetState::onStatus(std::string_view gateway_id, const shared::GatewayStatus& status,
                          std::int64_t received_ms, std::int64_t skew_ms, bool retained) {
    const std::lock_guard lock(mutex_);
    Gateway& held = gateway(gateway_id);
    GatewayView& view = held.view;
    const bool is_death = status.kind == shared::StatusKind::Death;

    bool newer = true;  // carries newer backlog, drops, firmware than the Status held
    if (view.has_status) {
        if (status.session < view.session) return false;
        if (status.session == view.session) {
            const bool ended = view.last_status == shared::StatusKind::Death;
            // A session that has died stays dead: its late Birth or Update changes nothing.
            if (ended && !is_death) return false;
            newer = status.sent_at_ms >= held.status_sent_at_ms;
            // The will is encoded at connect, so a Death older than the Birth it follows is
            // normal and still ends the session; an older Birth or Update is a stale copy.
            if (!newer && !(is_death && !ended)) return false;
        }
    }

    const bool was_online = view.online;
    view.has_status = true;
    view.online = !is_death;
    view.last_status = status.kind;
    view.last_status_ms = received_ms;
    view.session = status.session;
    if (newer) {
        held.status_sent_at_ms = status.sent_at_ms;
        view.epoch = status.epoch;
        view.firmware_version = status.firmware_version;
        view.clock_synced = status.clock_synced;
        view.backlog_batches = status.backlog_batches;
        view.backlog_bytes = status.backlog_bytes;
        view.oldest_backlog_ms = status.oldest_backlog_ms;
        view.drops = status.drops;
        // Updates and Deaths carry no sensor table (the uplink clears it); only a Birth does.
        if (status.kind == shared::StatusKind::Birth) view.sensors = status.sensors;
    }
    if (!retained) {
        seen(view, received_ms);
        // A Death may be the will, whose sent_at_ms is its session's start: no measurement.
        if (!is_death) view.clock_skew_ms = skew_ms;
    }
    if (was_online != view.online) {
        if (view.online) {
            online_count_ += 1;
        } else {
            online_count_ -= 1;
        }
        updateGauges();
    }
    return true;
}

void FleetState::onTelemetry(std::string_view gateway_id, const shared::Sequence& sequence,
                             std::uint32_t readings, std::int64_t received_ms) {
    const std::lock_guard lock(mutex_);
    GatewayView& view = gateway(gateway_id).view;
    view.batches_received += 1;
    view.readings_received += readings;
    // A backlog may come from an older epoch; a newer one means the store started over before
    // its Status said so.
    view.epoch = std::max(view.epoch, sequence.epoch);
    seen(view, received_ms);
}

void FleetState::onAlert(std::string_view gateway_id, std::int64_t received_ms) {
    const std::lock_guard lock(mutex_);
    GatewayView& view = gateway(gateway_id).view;
    view.alerts_received += 1;
    seen(view, received_ms);
}

void FleetState::onRejected(std::string_view gateway_id, std::int64_t received_ms) {
    // A topic that did not parse names no gateway to count it against.
    if (gateway_id.empty()) return;
    const std::lock_guard lock(mutex_);
    GatewayView& view = gateway(gateway_id).view;
    view.rejected += 1;
    seen(view, received_ms);
}

void FleetState::onCommandAck(std::string_view gateway_id, const shared::CommandAck& ack,
                              std::int64_t received_ms) {
    const std::lock_guard lock(mutex_);
    GatewayView& view = gateway(gateway_id).view;
    view.last_command_ack = ack;
    seen(view, received_ms);
}

std::vector<GatewayView> FleetState::list() const {
    const std::lock_guard lock(mutex_);
    std::vector<GatewayView> out;
    out.reserve(gateways_.size());
    for (const auto& [id, held] : gateways_) out.push_back(held.view);
    return out;
}

std::optional<GatewayView> FleetState::get(std::string_view gateway_id) const {
    const std::lock_guard lock(mutex_);
    const auto it = gateways_.find(gateway_id);
    if (it == gateways_.end()) return std::nullopt;
    return it->second.view;
}

}  // namespace tern::ingest
