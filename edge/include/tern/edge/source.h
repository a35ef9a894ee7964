#pragma once

// Where samples come from: sysfs (hwmon, IIO), the local line-protocol socket, Modbus TCP, the
// simulator. Every source runs on the agent's loop (one boost::asio::io_context thread) and
// hands samples to a SampleSink on that thread.

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <string>

#include "tern/edge/sample.h"
#include "tern/shared/metrics.h"

namespace tern::edge {

class SampleSink {
public:
    virtual ~SampleSink() = default;
    // On the loop thread. Must not block.
    virtual void onSample(const Sample& sample) = 0;
};

class Source {
public:
    virtual ~Source() = default;
    // Begins delivering samples to sink from io's thread; timers and sockets are bound to io.
    // The sink outlives the source.
    virtual void start(boost::asio::io_context& io, SampleSink& sink) = 0;
    // Stops timers and closes sockets; no sample is delivered after it returns.
    virtual void stop() = 0;
};

}  // namespace tern::edge
