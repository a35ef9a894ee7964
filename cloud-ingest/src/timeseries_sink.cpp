#include "tern/ingest/timeseries_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tern/shared/codec.h"

namespace tern::ingest {

namespace {

// Payloads come from the spool, which took them only after the verifier decoded them once, so
// these limits are there to decode what the verifier accepted, not to guard against it: no time
// window (a record may wait in the spool for days; the store applies its own retention and
// max_future), and byte bounds wider than the verifier's defaults, so that a verifier configured
// for larger messages does not make this sink reject what it let in.
shared::DecodeLimits decodeLimits() {
    shared::DecodeLimits limits;
    limits.max_readings = 100'000;
    limits.time_window.reset();
    limits.max_message_bytes = std::size_t{16} * 1024 * 1024;
    limits.max_decompressed_bytes = std::size_t{64} * 1024 * 1024;
    return limits;
}

constexpr auto kRetentionEvery = std::chrono::hours{1};

void appendError(std::string& to, const std::string& error) {
    if (!to.empty()) to += "; ";
    to += error;
}

}  // namespace

TimeseriesSink::TimeseriesSink(std::string name, std::unique_ptr<TimeseriesStore> store,
                               const shared::Clock& clock)
    : name_(std::move(name)), store_(std::move(store)), clock_(clock) {}

void TimeseriesSink::deliver(std::vector<SpoolRecord> records, SinkCompletion done) {
    applyPendingSensors();
    const shared::DecodeLimits limits = decodeLimits();
    SinkResult result = SinkResult::all(records.size(), RecordOutcome::Delivered);

    std::vector<shared::TelemetryBatch> batches;
    std::vector<std::size_t> batch_records;  // index of the record each batch came from
    std::vector<shared::Alert> alerts;
    std::vector<std::size_t> alert_records;
    batches.reserve(records.size());
    batch_records.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        const SpoolRecord& record = records[i];
        std::optional<shared::Error> error;
        if (record.kind == Kind::Telemetry) {
            auto decoded = shared::decodeBatch(record.payload, limits);
            if (decoded) {
                batches.push_back(std::move(decoded.value()));
                batch_records.push_back(i);
            } else {
                error = decoded.error();
            }
        } else {
            auto decoded = shared::decodeAlert(record.payload, limits);
            if (decoded) {
                alerts.push_back(std::move(decoded.value()));
                alert_records.push_back(i);
            } else {
                error = decoded.error();
            }
        }
        if (error) {
            // The verifier decoded it once: the spool or the codec changed under it. Retrying
            // would decode it the same way.
            result.outcomes[i] = RecordOutcome::Rejected;
            appendError(result.error,
                        "offset " + std::to_string(record.offset) + ": " + error->message());
        }
    }

    // Every store error is a reason to retry (the store documents only sqlite_error and
    // disk_full, both retry); anything else is retried too rather than dropping data that exists
    // nowhere else. Whatever was committed before the error is stored again harmlessly.
    const auto retryAll = [&](const shared::Error& error) {
        for (auto& outcome : result.outcomes) {
            if (outcome != RecordOutcome::Rejected) outcome = RecordOutcome::Retry;
        }
        appendError(result.error, error.message());
    };
    bool failed = false;
    if (!batches.empty()) {
        // Stored under the gateway the ingest verified (the topic's), not the batch's own field.
        std::vector<GatewayBatch> group;
        group.reserve(batches.size());
        for (std::size_t b = 0; b < batches.size(); ++b) {
            group.push_back({records[batch_records[b]].gateway_id, &batches[b]});
        }
        if (auto written = store_->writeMany(group); !written) {
            retryAll(written.error());
            failed = true;
        } else {
            for (const auto& chunk : written.value().undecodable_chunks) {
                spdlog::error(
                    "sink {}: a stored raw chunk no longer decodes ({}); set aside in "
                    "the undecodable_chunks table, and the write went on",
                    name_, chunk);
            }
        }
    }
    for (std::size_t a = 0; !failed && a < alerts.size(); ++a) {
        if (auto written = store_->writeAlert(records[alert_records[a]].gateway_id, alerts[a]);
            !written) {
            retryAll(written.error());
            failed = true;
        }
    }
    // Delivered means on disk: the worker lets the spool forget these records next.
    if (!failed && (!batches.empty() || !alerts.empty())) {
        if (auto synced = store_->sync(); !synced) retryAll(synced.error());
    }
    done(std::move(result));
}

void TimeseriesSink::tick() {
    applyPendingSensors();
    applyPendingAlerts();
    const auto now = clock_.monoNow();
    if (last_retention_ && now - *last_retention_ < kRetentionEvery) return;
    // Tried again in an hour whether or not it worked: a failing one logs at most hourly.
    last_retention_ = now;
    auto result = store_->enforceRetention();
    if (!result) {
        spdlog::error("sink {}: retention failed: {}", name_, result.error().message());
        return;
    }
    const RetentionResult& r = result.value();
    if (r.tables_dropped + r.minute_rows_deleted + r.hour_rows_deleted + r.aggregates_deleted +
            r.alerts_deleted >
        0) {
        spdlog::info(
            "sink {}: retention dropped {} raw day tables, {} minute and {} hour rollups, {} "
            "aggregates, {} alerts",
            name_, r.tables_dropped, r.minute_rows_deleted, r.hour_rows_deleted,
            r.aggregates_deleted, r.alerts_deleted);
    }
}

void TimeseriesSink::setSensors(std::string gateway_id, std::vector<shared::SensorInfo> sensors) {
    std::lock_guard lock(pending_mutex_);
    const auto same = std::find_if(pending_sensors_.begin(), pending_sensors_.end(),
                                   [&](const auto& entry) { return entry.first == gateway_id; });
    if (same != pending_sensors_.end()) {
        same->second = std::move(sensors);
    } else {
        pending_sensors_.emplace_back(std::move(gateway_id), std::move(sensors));
    }
}

void TimeseriesSink::addAlert(std::string gateway_id, shared::Alert alert) {
    std::lock_guard lock(pending_mutex_);
    pending_alerts_.emplace_back(std::move(gateway_id), std::move(alert));
}

void TimeseriesSink::applyPendingAlerts() {
    std::vector<std::pair<std::string, shared::Alert>> pending;
    {
        std::lock_guard lock(pending_mutex_);
        pending.swap(pending_alerts_);
    }
    for (std::size_t i = 0; i < pending.size(); ++i) {
        auto written = store_->writeAlert(pending[i].first, pending[i].second);
        if (written || written.error().action != shared::ErrorAction::Retry) {
            if (!written) {
                spdlog::warn("sink {}: alert of {} not stored: {}", name_, pending[i].first,
                             written.error().message());
            }
            continue;
        }
        // Kept, in order, for the next deliver() or tick().
        std::lock_guard lock(pending_mutex_);
        pending_alerts_.insert(
            pending_alerts_.begin(),
            std::make_move_iterator(pending.begin() + static_cast<std::ptrdiff_t>(i)),
            std::make_move_iterator(pending.end()));
        return;
    }
}

void TimeseriesSink::applyPendingSensors() {
    std::vector<std::pair<std::string, std::vector<shared::SensorInfo>>> pending;
    {
        std::lock_guard lock(pending_mutex_);
        pending.swap(pending_sensors_);
    }
    for (auto& entry : pending) {
        const std::string& gateway = entry.first;
        auto applied = store_->setSensors(gateway, entry.second);
        if (applied) continue;
        const shared::Error& error = applied.error();
        if (error.action != shared::ErrorAction::Retry) {
            spdlog::warn("sink {}: sensor table of {} not applied: {}", name_, gateway,
                         error.message());
            continue;
        }
        spdlog::warn("sink {}: sensor table of {} not applied yet: {}", name_, gateway,
                     error.message());
        // Kept for the next deliver() or tick(), unless a newer birth has arrived meanwhile.
        std::lock_guard lock(pending_mutex_);
        const bool superseded =
            std::any_of(pending_sensors_.begin(), pending_sensors_.end(),
                        [&](const auto& newer) { return newer.first == gateway; });
        if (!superseded) pending_sensors_.push_back(std::move(entry));
    }
}

}  // namespace tern::ingest
