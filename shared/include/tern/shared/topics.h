#pragma once

// MQTT topic names: <prefix>/gw/<gateway-id>/<kind>, prefix "tern/v1" by default.
// A gateway id is also the MQTT client id and its certificate's CN, and the broker's ACL grants
// gateway G only topics under <prefix>/gw/G/, so an id that could widen or break a topic
// (a '/', a wildcard, NUL) is rejected everywhere an id enters the system.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "tern/shared/result.h"

namespace tern::shared {

inline constexpr std::size_t kMaxGatewayIdBytes = 64;
inline constexpr std::size_t kMaxCommandNameBytes = 32;
inline constexpr std::string_view kDefaultTopicPrefix = "tern/v1";

// True when text is well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF.
bool isValidUtf8(std::string_view text);

// 1..64 bytes of UTF-8 without '/', '+', '#', NUL, other control characters or white space.
VoidResult validateGatewayId(std::string_view id);

// 1..32 bytes of [a-z0-9_-].
VoidResult validateCommandName(std::string_view name);

enum class TopicKind { Telemetry, Alerts, Status, Receipt, Command, CommandAck };

std::string_view topicKindName(TopicKind kind);

struct ParsedTopic {
    std::string gateway_id;
    TopicKind kind = TopicKind::Telemetry;
    std::string command_name;  // for TopicKind::Command
    friend bool operator==(const ParsedTopic&, const ParsedTopic&) = default;
};

class TopicScheme {
public:
    // The prefix is one or more non-empty levels without wildcards, '$' at its start or NUL.
    static Result<TopicScheme> create(std::string_view prefix = kDefaultTopicPrefix);

    const std::string& prefix() const { return prefix_; }

    // Callers pass validated ids (validateGatewayId); an invalid one is a programming error and
    // yields an Error rather than a topic another gateway's ACL would match.
    Result<std::string> topic(std::string_view gateway_id, TopicKind kind,
                              std::string_view command_name = {}) const;

    // Subscription filter for one kind across every gateway (<prefix>/gw/+/<kind>); for Command,
    // <prefix>/gw/+/cmd/+. With a share group: $share/<group>/<filter>.
    Result<std::string> fleetFilter(TopicKind kind, std::string_view share_group = {}) const;

    // Parses a topic received from the broker; errors name what is wrong with it.
    Result<ParsedTopic> parse(std::string_view topic) const;

private:
    explicit TopicScheme(std::string prefix) : prefix_(std::move(prefix)) {}
    std::string prefix_;
};

}  // namespace tern::shared
