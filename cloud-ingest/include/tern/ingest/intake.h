#pragma once

// The ingest's hot path, on one thread: messages from the MQTT link wait in a bounded queue; the
// intake thread takes them in groups, verifies each, commits the group's telemetry and alerts to
// the spool in one transaction, and then, only for what the spool admitted (stored or
// duplicate), schedules the gateway's receipt. Status and command acks update the fleet state;
// rejections go to the quarantine; the sinks are woken after every commit.
//
// What the spool does not admit is neither receipted nor lost: Full and TooManyGaps leave the
// message with its gateway, which retransmits it (for TooManyGaps a cmd/resend asks for the
// gaps first, at most once per gateway per resend_interval); Stale and Invalid are quarantined. A
// failed spool transaction admits nothing and counts the group in
// tern_ingest_spool_errors_total; the gateways retransmit.
//
// Threads: push() is called from Paho's callback thread and blocks while the queue holds
// queue_max_bytes (backpressure); stop() wakes it. Everything else runs on the intake thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tern/ingest/config.h"
#include "tern/ingest/fleet_state.h"
#include "tern/ingest/mqtt_link.h"
#include "tern/ingest/quarantine.h"
#include "tern/ingest/spool.h"
#include "tern/ingest/verifier.h"
#include "tern/shared/clock.h"
#include "tern/shared/metrics.h"

namespace tern::ingest {

// Where the intake publishes receipts (QoS 0) and commands (QoS 1): the MqttLink in the daemon.
using Publisher = std::function<shared::VoidResult(const std::string& topic,
                                                   const shared::Bytes& payload, int qos)>;

struct IntakeHooks {
    Publisher publish;
    // After each spool commit that stored something.
    std::function<void()> spooled;
    // A gateway's Birth was applied: its sensor table, for the sinks that name sensors.
    std::function<void(const std::string& gateway, const std::vector<shared::SensorInfo>&)> birth;
    // The spool crossed its high-water mark (above = true), or went back below it.
    std::function<void(bool above, const SpoolStats& stats)> high_water;
};

class Intake {
public:
    Intake(const IntakeConfig& intake, const MqttConfig& mqtt, const Verifier& verifier,
           Spool& spool, Quarantine& quarantine, FleetState& fleet, const shared::Clock& clock,
           IntakeHooks hooks, shared::MetricsRegistry& metrics);
    ~Intake();  // stop()
    Intake(const Intake&) = delete;
    Intake& operator=(const Intake&) = delete;

    void start();
    // Blocks while the queue is full; returns false (message dropped, counted) once stopping.
    bool push(MqttMessage&& message);
    // Processes everything already queued, sends due receipts, then stops the thread.
    void stop();

    // Receipts due now for every (gateway, epoch) that has anything spooled, e.g. after a
    // reconnect: receipts sent while the link was down were lost.
    void receiptAllSoon();

    // Publishes a command to the gateway (cmd/<name>), with a fresh command id, issued now and
    // expiring after command_ttl. For "resend" without ranges, the ranges are the gaps the spool
    // sees in `epoch` (at most kMaxReceiptRanges; error "no_gaps" if there are none). Returns the
    // command id. Errors: "invalid_command" (drop: a bad name or ranges), the publisher's (retry).
    // Any thread.
    shared::Result<std::uint64_t> sendCommand(const std::string& gateway, const std::string& name,
                                              std::uint64_t epoch,
                                              std::vector<shared::SeqRange> ranges = {});

    std::uint64_t queuedBytes() const;
    // The last spool transaction succeeded (or none was needed yet): /readyz.
    bool spoolWritable() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tern::ingest
