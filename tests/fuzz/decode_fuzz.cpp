// libFuzzer target for every decoder. Beyond "no crash, no sanitizer report", it checks the
// codec's contract: a payload that decodes is a valid message, and encoding it again and
// decoding that gives the same message.

#include <cstdint>
#include <cstdlib>
#include <span>

#include "tern/shared/codec.h"

namespace {

using namespace tern::shared;

template <class Message, class Decode, class Encode>
void roundTrip(std::span<const std::uint8_t> payload, Decode decode, Encode encode) {
    auto decoded = decode(payload, DecodeLimits{});
    if (!decoded) return;
    const Message& message = decoded.value();
    if (!validate(message)) std::abort();
    auto reencoded = encode(message, EncodeOptions{});
    if (!reencoded) std::abort();
    auto again = decode(reencoded.value(), DecodeLimits{});
    if (!again || !(again.value() == message)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> payload(data, size);
    roundTrip<TelemetryBatch>(payload, decodeBatch, encodeBatch);
    roundTrip<Alert>(payload, decodeAlert, encodeAlert);
    roundTrip<GatewayStatus>(payload, decodeStatus, encodeStatus);
    roundTrip<Receipt>(payload, decodeReceipt, encodeReceipt);
    roundTrip<Command>(payload, decodeCommand, encodeCommand);
    roundTrip<CommandAck>(payload, decodeCommandAck, encodeCommandAck);
    return 0;
}
