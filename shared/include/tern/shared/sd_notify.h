#pragma once

// The systemd notify protocol (sd_notify(3)) without libsystemd: a datagram to $NOTIFY_SOCKET.
// With Type=notify a unit is "started" at READY=1; with WatchdogSec= systemd kills and restarts
// a service that stops sending WATCHDOG=1. Outside systemd (no $NOTIFY_SOCKET) every call is a
// no-op that reports false.

#include <chrono>
#include <optional>
#include <string_view>

namespace tern::shared {

// Sends one notification ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..."). True if sent.
bool sdNotify(std::string_view state);

// How often to send WATCHDOG=1 (half of WatchdogSec=), if systemd asked this process for it.
std::optional<std::chrono::microseconds> sdWatchdogPeriod();

}  // namespace tern::shared
