#include "tern/shared/topics.h"

#include <fmt/format.h>

#include <array>

namespace tern::shared {
namespace {

constexpr std::string_view kGatewayLevel = "gw";

struct KindName {
    TopicKind kind;
    std::string_view name;
};
constexpr std::array<KindName, 6> kKindNames{{
    {TopicKind::Telemetry, "telemetry"},
    {TopicKind::Alerts, "alerts"},
    {TopicKind::Status, "status"},
    {TopicKind::Receipt, "receipt"},
    {TopicKind::Command, "cmd"},
    {TopicKind::CommandAck, "cmd-ack"},
}};

Error badTopic(std::string detail) { return Error::drop("bad_topic", std::move(detail)); }

// Splits off the text before the next '/'; the rest (after the '/') stays in `rest`.
std::string_view nextLevel(std::string_view& rest, bool& had_separator) {
    const auto slash = rest.find('/');
    had_separator = slash != std::string_view::npos;
    const auto level = rest.substr(0, slash);
    rest = had_separator ? rest.substr(slash + 1) : std::string_view{};
    return level;
}

}  // namespace

bool isValidUtf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = 0;
        std::uint32_t code_point = 0;
        std::uint32_t min_code_point = 0;
        if ((lead & 0xE0) == 0xC0) {
            length = 2;
            code_point = lead & 0x1F;
            min_code_point = 0x80;
        } else if ((lead & 0xF0) == 0xE0) {
            length = 3;
            code_point = lead & 0x0F;
            min_code_point = 0x800;
        } else if ((lead & 0xF8) == 0xF0) {
            length = 4;
            code_point = lead & 0x07;
            min_code_point = 0x10000;
        } else {
            return false;
        }
        if (text.size() - i < length) return false;
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) return false;
            code_point = (code_point << 6) | (next & 0x3F);
        }
        if (code_point < min_code_point || code_point > 0x10FFFF ||
            (code_point >= 0xD800 && code_point <= 0xDFFF)) {
            return false;
        }
        i += length;
    }
    return true;
}

VoidResult validateGatewayId(std::string_view id) {
    if (id.empty()) return Error::drop("invalid_gateway_id", "empty gateway id");
    if (id.size() > kMaxGatewayIdBytes) {
        return Error::drop("invalid_gateway_id", fmt::format("gateway id is {} bytes, over {}",
                                                             id.size(), kMaxGatewayIdBytes));
    }
    if (!isValidUtf8(id)) return Error::drop("invalid_gateway_id", "gateway id is not UTF-8");
    for (const char c : id) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '/' || c == '+' || c == '#') {
            return Error::drop("invalid_gateway_id", fmt::format("gateway id contains '{}'", c));
        }
        if (byte < 0x20 || byte == 0x7F || c == ' ') {
            return Error::drop("invalid_gateway_id",
                               fmt::format("gateway id contains byte 0x{:02x}", byte));
        }
    }
    return success();
}

VoidResult validateCommandName(std::string_view name) {
    if (name.empty() || name.size() > kMaxCommandNameBytes) {
        return Error::drop("invalid_command_name",
                           fmt::format("command name must be 1..{} bytes", kMaxCommandNameBytes));
    }
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return Error::drop("invalid_command_name", "command name is not [a-z0-9_-]");
    }
    return success();
}

std::string_view topicKindName(TopicKind kind) {
    for (const auto& entry : kKindNames) {
        if (entry.kind == kind) return entry.name;
    }
    return "unknown";
}

Result<TopicScheme> TopicScheme::create(std::string_view prefix) {
    if (prefix.empty()) return Error::stop("bad_topic_prefix", "topic prefix is empty");
    if (!isValidUtf8(prefix)) return Error::stop("bad_topic_prefix", "topic prefix is not UTF-8");
    if (prefix.front() == '$') {
        return Error::stop("bad_topic_prefix", "topic prefix may not start with '$'");
    }
    std::string_view rest = prefix;
    bool more = true;
    while (more) {
        const auto level = nextLevel(rest, more);
        if (level.empty()) {
            return Error::stop("bad_topic_prefix",
                               fmt::format("topic prefix '{}' has an empty level", prefix));
        }
        if (level.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) {
            return Error::stop("bad_topic_prefix", "topic prefix may not contain '+', '#' or NUL");
        }
    }
    return TopicScheme(std::string(prefix));
}

Result<std::string> TopicScheme::topic(std::string_view gateway_id, TopicKind kind,
                                       std::string_view command_name) const {
    if (auto ok = validateGatewayId(gateway_id); !ok) return ok.error();
    auto topic =
        fmt::format("{}/{}/{}/{}", prefix_, kGatewayLevel, gateway_id, topicKindName(kind));
    if (kind == TopicKind::Command) {
        if (auto ok = validateCommandName(command_name); !ok) return ok.error();
        topic += '/';
        topic += command_name;
    }
    return topic;
}

Result<std::string> TopicScheme::fleetFilter(TopicKind kind, std::string_view share_group) const {
    auto filter = fmt::format("{}/{}/+/{}", prefix_, kGatewayLevel, topicKindName(kind));
    if (kind == TopicKind::Command) filter += "/+";
    if (share_group.empty()) return filter;
    if (share_group.find_first_of(std::string_view("/+#\0", 4)) != std::string_view::npos ||
        !isValidUtf8(share_group)) {
        return Error::stop("bad_share_group", "share group may not contain '/', '+', '#' or NUL");
    }
    return fmt::format("$share/{}/{}", share_group, filter);
}

Result<ParsedTopic> TopicScheme::parse(std::string_view topic) const {
    if (!topic.starts_with(prefix_) || topic.size() <= prefix_.size() ||
        topic[prefix_.size()] != '/') {
        return badTopic(fmt::format("topic does not start with '{}/'", prefix_));
    }
    std::string_view rest = topic.substr(prefix_.size() + 1);
    bool more = false;
    if (nextLevel(rest, more) != kGatewayLevel || !more) {
        return badTopic(fmt::format("expected '{}/{}/<id>/<kind>'", prefix_, kGatewayLevel));
    }
    const auto gateway_id = nextLevel(rest, more);
    if (auto ok = validateGatewayId(gateway_id); !ok) return ok.error();
    if (!more) return badTopic("topic has no kind after the gateway id");
    const auto kind_name = nextLevel(rest, more);

    ParsedTopic parsed;
    parsed.gateway_id = std::string(gateway_id);
    bool known = false;
    for (const auto& entry : kKindNames) {
        if (entry.name == kind_name) {
            parsed.kind = entry.kind;
            known = true;
        }
    }
    if (!known) return badTopic(fmt::format("unknown topic kind '{}'", kind_name));
    if (parsed.kind == TopicKind::Command) {
        if (!more) return badTopic("command topic has no command name");
        const auto name = nextLevel(rest, more);
        if (auto ok = validateCommandName(name); !ok) return ok.error();
        parsed.command_name = std::string(name);
    }
    if (more) return badTopic("topic has extra levels after its kind");
    return parsed;
}

}  // namespace tern::shared
