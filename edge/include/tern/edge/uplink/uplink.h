#pragma once

// The uplink: publishes what the store holds over MQTT 5 with TLS, and deletes nothing itself —
// the store deletes a message when the ingest's Receipt covers it (Store::acknowledge).
//
// What it sends, in this order whenever the in-flight window has room:
//   1. alerts, oldest first;
//   2. seq ranges the cloud asked for again (cmd/resend);
//   3. live telemetry: messages stored since the session began, oldest first;
//   4. backlog telemetry: what was stored before, oldest first, at most backlog_rate bytes/s.
// "In flight" means published and not yet covered by a receipt: the window is bounded by
// receipts, not PUBACKs. When the session drops, or no receipt arrives within receipt_timeout,
// everything unreceipted becomes backlog again and is resent with the same (epoch, seq).
// Nothing but Status goes while the wall clock reads before shared::kEarliestPlausibleUnixMs (a
// board that booted in 1970): those timestamps wait in the store for the clock to sync and
// Store::restamp to correct them. An unsynchronised clock that reads a plausible time sends, and
// its messages say clock_synced = false.
//
// Session: clean start; a retained Status birth (with the sensor table) right after connecting,
// a retained Status death as the will, both carrying a session number that grows per connect.
// Reconnects wait a random time in [0, min(reconnect_max, reconnect_min * 2^attempt)] (full
// jitter), so a fleet coming back after a broker outage does not arrive at once.
//
// Threads: every method is called on the agent's io_context thread; Paho's callbacks only post
// work into that io_context.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "tern/edge/store/store.h"
#include "tern/shared/backoff.h"
#include "tern/shared/clock.h"
#include "tern/shared/config.h"
#include "tern/shared/messages.h"
#include "tern/shared/metrics.h"
#include "tern/shared/result.h"

namespace tern::edge {

// [uplink] in the agent's config.
struct UplinkConfig {
    std::string broker = "ssl://localhost:8883";
    std::string gateway_id;
    std::string ca_file = "/etc/tern/ca.pem";
    std::string cert_file = "/etc/tern/gateway.pem";
    std::string key_file = "/etc/tern/gateway.key";
    std::string topic_prefix = "tern/v1";
    std::chrono::milliseconds keepalive{30'000};
    std::chrono::milliseconds connect_timeout{10'000};
    std::int64_t inflight_window = 16;
    std::uint64_t max_payload_bytes = 256 * shared::kKiB;
    std::uint64_t backlog_rate = 0;  // bytes per second; 0: as fast as receipts come back
    std::chrono::milliseconds reconnect_min{1'000};
    std::chrono::milliseconds reconnect_max{120'000};
    std::chrono::milliseconds receipt_timeout{30'000};
    std::chrono::milliseconds status_interval{60'000};
};

shared::ConfigTable<UplinkConfig> uplinkTable();

// Problems the table cannot see: the gateway id must be topic-safe, the broker an ssl:// URL.
shared::ConfigErrors validateUplinkConfig(const UplinkConfig& config, const std::string& file);

using shared::backoffDelay;

// A token bucket in bytes per second with one second of burst. A message larger than the burst
// goes when the bucket is full and leaves it in debt, so the long-run rate holds.
class RateLimiter {
public:
    explicit RateLimiter(std::uint64_t bytes_per_second);
    // Takes `bytes` if available now; otherwise returns how long until they will be.
    std::chrono::milliseconds tryTake(std::uint64_t bytes,
                                      std::chrono::steady_clock::time_point now);
    bool unlimited() const { return rate_ == 0; }

private:
    std::uint64_t rate_;
    double capacity_;
    double tokens_;
    std::chrono::steady_clock::time_point last_{};
};

// What the uplink needs from the agent for a Status message: everything but kind, session and
// sent_at_ms, which it fills in.
using StatusSource = std::function<shared::GatewayStatus()>;

struct UplinkCounters {
    std::uint64_t connects = 0;
    std::uint64_t published = 0;
    std::uint64_t receipts = 0;
    std::uint64_t acknowledged = 0;
    std::uint64_t receipt_timeouts = 0;
};

class Uplink {
public:
    // Builds the client; connecting starts with start(). Errors: a certificate or key file that
    // cannot be read, a certificate whose CN is not the gateway id.
    static shared::Result<std::unique_ptr<Uplink>> create(boost::asio::io_context& io,
                                                          UplinkConfig config, Store& store,
                                                          StatusSource status,
                                                          const shared::Clock& clock,
                                                          shared::MetricsRegistry& metrics);
    ~Uplink();
    Uplink(const Uplink&) = delete;
    Uplink& operator=(const Uplink&) = delete;

    void start();
    // A message was committed to the store: send it if the window has room.
    void onStored();
    // Publishes a Status update (retained) now, if connected.
    void publishStatus();
    // Publishes the death status, disconnects and stops reconnecting; waits at most `timeout`.
    void stop(std::chrono::milliseconds timeout);

    // The network is gone for `duration` (tern-sim's outages): the session ends as a lost link
    // would, so the broker publishes the will, and no connection is tried before the time is up.
    // Whatever was in flight is sent again after reconnecting, as after any lost session.
    void cutOff(std::chrono::milliseconds duration);

    bool connected() const;
    std::size_t inFlight() const;
    UplinkCounters counters() const;

private:
    struct Impl;
    explicit Uplink(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

// The CN of the first certificate in a PEM file, or an error saying why there is none.
shared::Result<std::string> certificateCommonName(const std::string& pem_file);

}  // namespace tern::edge
