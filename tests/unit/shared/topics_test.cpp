#include "tern/shared/topics.h"

#include <gtest/gtest.h>

namespace tern::shared {
namespace {

TopicScheme scheme(std::string_view prefix = kDefaultTopicPrefix) {
    auto created = TopicScheme::create(prefix);
    EXPECT_TRUE(created) << created.error().message();
    return created.value();
}

TEST(Topics, BuildAndParseEveryKind) {
    const auto topics = scheme();
    for (const auto kind : {TopicKind::Telemetry, TopicKind::Alerts, TopicKind::Status,
                            TopicKind::Receipt, TopicKind::CommandAck}) {
        const auto topic = topics.topic("gw-01", kind).value();
        EXPECT_EQ(topic, "tern/v1/gw/gw-01/" + std::string(topicKindName(kind)));
        EXPECT_EQ(topics.parse(topic).value(), (ParsedTopic{"gw-01", kind, ""}));
    }
    const auto command = topics.topic("gw-01", TopicKind::Command, "rebirth").value();
    EXPECT_EQ(command, "tern/v1/gw/gw-01/cmd/rebirth");
    EXPECT_EQ(topics.parse(command).value(), (ParsedTopic{"gw-01", TopicKind::Command, "rebirth"}));
    EXPECT_EQ(topics.topic("gw-01", TopicKind::CommandAck).value(), "tern/v1/gw/gw-01/cmd-ack");
}

TEST(Topics, CustomPrefix) {
    const auto topics = scheme("acme/plant-7/tern");
    EXPECT_EQ(topics.topic("g", TopicKind::Status).value(), "acme/plant-7/tern/gw/g/status");
    EXPECT_EQ(topics.parse("acme/plant-7/tern/gw/g/status").value().gateway_id, "g");
    EXPECT_FALSE(topics.parse("tern/v1/gw/g/status"));
}

TEST(Topics, BadPrefixesAreRefused) {
    for (const std::string_view prefix :
         {"", "/tern", "tern/", "tern//v1", "tern/+/v1", "tern/#", "$SYS/tern"}) {
        EXPECT_FALSE(TopicScheme::create(prefix)) << prefix;
    }
    EXPECT_FALSE(TopicScheme::create(std::string_view("te\0rn", 5)));
}

TEST(Topics, FleetFilters) {
    const auto topics = scheme();
    EXPECT_EQ(topics.fleetFilter(TopicKind::Telemetry).value(), "tern/v1/gw/+/telemetry");
    EXPECT_EQ(topics.fleetFilter(TopicKind::Command).value(), "tern/v1/gw/+/cmd/+");
    EXPECT_EQ(topics.fleetFilter(TopicKind::Status, "ingest").value(),
              "$share/ingest/tern/v1/gw/+/status");
    EXPECT_FALSE(topics.fleetFilter(TopicKind::Status, "in/gest"));
    EXPECT_FALSE(topics.fleetFilter(TopicKind::Status, "in+"));
}

TEST(GatewayId, AcceptsTopicSafeUtf8) {
    EXPECT_TRUE(validateGatewayId("gw-building-a-01"));
    EXPECT_TRUE(validateGatewayId("gw.Zürich_01"));
    EXPECT_TRUE(validateGatewayId("網關-7"));
    EXPECT_TRUE(validateGatewayId(std::string(kMaxGatewayIdBytes, 'a')));
}

TEST(GatewayId, RejectsUnsafeIds) {
    const std::vector<std::string> bad = {
        "",
        std::string(kMaxGatewayIdBytes + 1, 'a'),
        "gw/1",
        "gw+1",
        "gw#1",
        std::string("gw\0"
                    "1",
                    4),
        "gw 1",
        "gw\t1",
        "gw\x7f",
        "gw\xC0\x80",          // overlong NUL
        "gw\xED\xA0\x80",      // UTF-16 surrogate
        "gw\xF4\x90\x80\x80",  // past U+10FFFF
        "gw\xE2\x82",          // truncated sequence
        "gw\xFF",
    };
    for (const auto& id : bad) {
        const auto result = validateGatewayId(id);
        ASSERT_FALSE(result) << "accepted " << id;
        EXPECT_EQ(result.error().code, "invalid_gateway_id");
    }
    // Builders refuse them too, so no topic can escape a gateway's subtree.
    EXPECT_FALSE(scheme().topic("gw/../other", TopicKind::Telemetry));
}

TEST(Topics, ParseRejectsMalformedTopics) {
    const auto topics = scheme();
    const std::vector<std::string> bad = {
        "tern/v1/gw/g",                  // no kind
        "tern/v1/gw/g/",                 // empty kind
        "tern/v1/gw//telemetry",         // empty id
        "tern/v1/gw/g/telemetry/extra",  // extra level
        "tern/v1/gw/g/firmware",         // unknown kind
        "tern/v1/gw/g/cmd",              // command without a name
        "tern/v1/gw/g/cmd/Reboot",       // bad command name
        "tern/v1/gw/g/cmd/a/b",          // extra level after the name
        "tern/v1/gateway/g/telemetry",   // wrong level
        "tern/v2/gw/g/telemetry",        // other prefix
        "tern/v1",                       // prefix only
        "tern/v1gw/g/telemetry",         // prefix not followed by '/'
        "tern/v1/gw/g\xFF/telemetry",    // bad UTF-8 id
        "tern/v1/gw/+/telemetry",        // wildcard id
    };
    for (const auto& topic : bad) EXPECT_FALSE(topics.parse(topic)) << topic;
}

TEST(CommandName, Validation) {
    EXPECT_TRUE(validateCommandName("resend"));
    EXPECT_TRUE(validateCommandName("set-rate_2"));
    EXPECT_FALSE(validateCommandName(""));
    EXPECT_FALSE(validateCommandName("Resend"));
    EXPECT_FALSE(validateCommandName(std::string(kMaxCommandNameBytes + 1, 'a')));
}

TEST(Utf8, Validation) {
    EXPECT_TRUE(isValidUtf8(""));
    EXPECT_TRUE(isValidUtf8("plain ascii"));
    EXPECT_TRUE(isValidUtf8("\xF0\x9F\x90\xA6"));  // U+1F426
    EXPECT_FALSE(isValidUtf8("\xE0\x80\xAF"));     // overlong '/'
    EXPECT_FALSE(isValidUtf8("\x80"));
}

}  // namespace
}  // namespace tern::shared
