#include "tern/edge/sources/line_protocol.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tern::edge {
namespace {

struct Rejected {
    LineError error;
    std::size_t line_number;
    std::string text;
};

class Collector final : public LineProtocolHandler {
public:
    void onLine(const ParsedLine& line) override { lines.push_back(line); }
    void onError(LineError error, std::size_t line_number, std::string_view text) override {
        rejected.push_back({error, line_number, std::string(text)});
    }
    std::vector<ParsedLine> lines;
    std::vector<Rejected> rejected;
};

Collector parse(std::string_view text) {
    Collector collector;
    parseLineProtocol(text, collector);
    return collector;
}

// The line text parses to exactly one line; fails the test otherwise.
ParsedLine one(std::string_view text) {
    Collector c = parse(text);
    EXPECT_EQ(c.lines.size(), 1u) << text;
    EXPECT_TRUE(c.rejected.empty())
        << text << " -> " << (c.rejected.empty() ? "" : lineErrorName(c.rejected[0].error));
    return c.lines.empty() ? ParsedLine{} : c.lines.front();
}

std::optional<LineError> errorOf(std::string_view line) {
    ParsedLine out;
    LineProtocolParser parser;
    return parser.parseLine(line, out);
}

TEST(LineProtocolTest, ParsesMeasurementTagsFieldsAndTimestamp) {
    const ParsedLine line = one("env,room=a,floor=2 temp=21.5,hum=40i 1700000000000000000");
    EXPECT_EQ(line.measurement, "env");
    ASSERT_EQ(line.tags.size(), 2u);
    EXPECT_EQ(line.tags[0].key, "room");
    EXPECT_EQ(line.tags[0].value, "a");
    EXPECT_EQ(line.tags[1].key, "floor");
    EXPECT_EQ(line.tags[1].value, "2");
    ASSERT_EQ(line.fields.size(), 2u);
    EXPECT_EQ(line.fields[0].key, "temp");
    EXPECT_EQ(line.fields[0].type, LineFieldType::Float);
    EXPECT_EQ(line.fields[0].value, 21.5);
    EXPECT_EQ(line.fields[1].key, "hum");
    EXPECT_EQ(line.fields[1].type, LineFieldType::Integer);
    EXPECT_EQ(line.fields[1].value, 40.0);
    EXPECT_EQ(line.timestamp_ns, 1'700'000'000'000'000'000);
}

TEST(LineProtocolTest, TagsAndTimestampAreOptional) {
    const ParsedLine line = one("env temp=1");
    EXPECT_EQ(line.measurement, "env");
    EXPECT_TRUE(line.tags.empty());
    ASSERT_EQ(line.fields.size(), 1u);
    EXPECT_EQ(line.timestamp_ns, std::nullopt);
    EXPECT_EQ(one("env temp=1 -1000").timestamp_ns, -1000);  // before 1970 is still a timestamp
    EXPECT_EQ(one("env temp=1 0").timestamp_ns, 0);
}

TEST(LineProtocolTest, FloatValues) {
    const std::vector<std::pair<std::string, double>> cases = {
        {"1", 1.0},      {"-3", -3.0},  {"1.5", 1.5},    {"-0.25", -0.25},
        {".5", 0.5},     {"-.5", -0.5}, {"1e3", 1000.0}, {"2.5E-2", 0.025},
        {"1e+2", 100.0}, {"0", 0.0},    {"1.", 1.0},     {"123456789012", 123456789012.0},
    };
    for (const auto& [text, expected] : cases) {
        const ParsedLine line = one("m v=" + text);
        ASSERT_EQ(line.fields.size(), 1u) << text;
        EXPECT_EQ(line.fields[0].type, LineFieldType::Float) << text;
        EXPECT_EQ(line.fields[0].value, expected) << text;
    }
}

TEST(LineProtocolTest, IntegerUnsignedAndBooleanValues) {
    const ParsedLine line = one("m a=-3i,b=9223372036854775807i,c=7u,d=18446744073709551615u,e=0i");
    ASSERT_EQ(line.fields.size(), 5u);
    EXPECT_EQ(line.fields[0].type, LineFieldType::Integer);
    EXPECT_EQ(line.fields[0].value, -3.0);
    EXPECT_EQ(line.fields[1].value, static_cast<double>(std::numeric_limits<std::int64_t>::max()));
    EXPECT_EQ(line.fields[2].type, LineFieldType::Unsigned);
    EXPECT_EQ(line.fields[2].value, 7.0);
    EXPECT_EQ(line.fields[3].value, static_cast<double>(std::numeric_limits<std::uint64_t>::max()));
    EXPECT_EQ(line.fields[4].value, 0.0);

    for (const char* yes : {"t", "T", "true", "True", "TRUE"}) {
        const ParsedLine b = one(std::string("m v=") + yes);
        ASSERT_EQ(b.fields.size(), 1u);
        EXPECT_EQ(b.fields[0].type, LineFieldType::Boolean) << yes;
        EXPECT_EQ(b.fields[0].value, 1.0) << yes;
    }
    for (const char* no : {"f", "F", "false", "False", "FALSE"}) {
        const ParsedLine b = one(std::string("m v=") + no);
        ASSERT_EQ(b.fields.size(), 1u);
        EXPECT_EQ(b.fields[0].type, LineFieldType::Boolean) << no;
        EXPECT_EQ(b.fields[0].value, 0.0) << no;
    }
}

TEST(LineProtocolTest, StringFieldsAreParsedAndKeptApart) {
    const ParsedLine line =
        one(R"(m status="ok, really = yes",temp=1.5,quote="say \"hi\" \\ there",empty="" 5)");
    ASSERT_EQ(line.fields.size(), 4u);
    EXPECT_EQ(line.fields[0].type, LineFieldType::String);
    EXPECT_EQ(line.fields[0].text, "ok, really = yes");
    EXPECT_EQ(line.fields[1].type, LineFieldType::Float);
    EXPECT_EQ(line.fields[1].value, 1.5);
    EXPECT_EQ(line.fields[2].text, R"(say "hi" \ there)");
    EXPECT_EQ(line.fields[3].type, LineFieldType::String);
    EXPECT_EQ(line.fields[3].text, "");
    EXPECT_EQ(line.timestamp_ns, 5);
}

TEST(LineProtocolTest, EscapesInNames) {
    const ParsedLine line = one(R"(my\ meas\,ure,tag\ key\=x=tag\,val\ ue\=y field\ k\=e\,y=1)");
    EXPECT_EQ(line.measurement, "my meas,ure");
    ASSERT_EQ(line.tags.size(), 1u);
    EXPECT_EQ(line.tags[0].key, "tag key=x");
    EXPECT_EQ(line.tags[0].value, "tag,val ue=y");
    ASSERT_EQ(line.fields.size(), 1u);
    EXPECT_EQ(line.fields[0].key, "field k=e,y");
}

TEST(LineProtocolTest, BackslashesThatEscapeNothingAreKept) {
    // "\\" is one backslash; "\d" and, in a measurement, "\=" stay as written.
    const ParsedLine line = one(R"(C:\dir\\x\=y,path=a\b v=1)");
    EXPECT_EQ(line.measurement, R"(C:\dir\x\=y)");
    ASSERT_EQ(line.tags.size(), 1u);
    EXPECT_EQ(line.tags[0].value, R"(a\b)");
}

TEST(LineProtocolTest, RunsOfSpacesBetweenSectionsAreAccepted) {
    const ParsedLine line = one("   env,room=a    temp=2    17   ");
    EXPECT_EQ(line.measurement, "env");
    ASSERT_EQ(line.fields.size(), 1u);
    EXPECT_EQ(line.fields[0].value, 2.0);
    EXPECT_EQ(line.timestamp_ns, 17);
}

TEST(LineProtocolTest, EveryMalformedLineHasItsReason) {
    const std::vector<std::pair<std::string, LineError>> cases = {
        // no field set
        {"env", LineError::NoFields},
        {"env,room=a", LineError::NoFields},
        {"env ", LineError::NoFields},
        {"env,room=a   ", LineError::NoFields},
        // structure
        {",room=a v=1", LineError::BadSyntax},
        {"env,=a v=1", LineError::BadSyntax},
        {"env,room v=1", LineError::BadSyntax},
        {"env,room= v=1", LineError::BadSyntax},
        {"env,room=a=b v=1", LineError::BadSyntax},
        {"env,room", LineError::BadSyntax},
        {"env, v=1", LineError::BadSyntax},
        {"env v", LineError::BadSyntax},
        {"env v 1", LineError::BadSyntax},
        {"env v=", LineError::BadSyntax},
        {"env v= 1", LineError::BadSyntax},
        {"env =1", LineError::BadSyntax},
        {"env v=1,", LineError::BadSyntax},
        {"env v=1,,w=2", LineError::BadSyntax},
        {"env v=\"a\"b", LineError::BadSyntax},
        {"env v=1 5 6", LineError::BadSyntax},
        // values
        {"env v=abc", LineError::BadNumber},
        {"env v=1.5i", LineError::BadNumber},
        {"env v=i", LineError::BadNumber},
        {"env v=u", LineError::BadNumber},
        {"env v=-1u", LineError::BadNumber},
        {"env v=1e3i", LineError::BadNumber},
        {"env v=99999999999999999999i", LineError::BadNumber},
        {"env v=18446744073709551616u", LineError::BadNumber},
        {"env v=nan", LineError::BadNumber},
        {"env v=inf", LineError::BadNumber},
        {"env v=-inf", LineError::BadNumber},
        {"env v=1e400", LineError::BadNumber},
        {"env v=+1", LineError::BadNumber},
        {"env v=1..2", LineError::BadNumber},
        {"env v=0x10", LineError::BadNumber},
        {"env v=-", LineError::BadNumber},
        {"env v=yes", LineError::BadNumber},
        {"env v=tRUE", LineError::BadNumber},
        {"env v=1,w=bad", LineError::BadNumber},
        // escapes
        {R"(env\)", LineError::BadEscape},
        {R"(env,room=a\)", LineError::BadEscape},
        {R"(env,room\)", LineError::BadEscape},
        {R"(env v\)", LineError::BadEscape},
        // strings
        {"env v=\"abc", LineError::UnterminatedString},
        {R"(env v="abc\")", LineError::UnterminatedString},
        {"env v=\"", LineError::UnterminatedString},
        // timestamps
        {"env v=1 12a", LineError::BadTimestamp},
        {"env v=1 1.5", LineError::BadTimestamp},
        {"env v=1 +5", LineError::BadTimestamp},
        {"env v=1 99999999999999999999", LineError::BadTimestamp},
        {"env v=1 1e9", LineError::BadTimestamp},
    };
    for (const auto& [text, expected] : cases) {
        EXPECT_EQ(errorOf(text), expected)
            << text << " -> " << (errorOf(text) ? lineErrorName(*errorOf(text)) : "parsed");
        Collector c = parse(text);
        EXPECT_TRUE(c.lines.empty()) << text;
        ASSERT_EQ(c.rejected.size(), 1u) << text;
        EXPECT_EQ(c.rejected[0].error, expected) << text;
    }
}

TEST(LineProtocolTest, OneBadLineDoesNotSpoilTheOthers) {
    const Collector c = parse(
        "# a comment\n"
        "env temp=1\n"
        "env temp=oops\n"
        "\n"
        "   \n"
        "env,room=\"x temp=2\r\n"  // a quote in a tag value is just a character
        "env str=\"never closed\n"
        "env temp=3 1700000000000000000\r\n"
        "  # an indented comment\n"
        "env temp=4");
    ASSERT_EQ(c.lines.size(), 4u);
    EXPECT_EQ(c.lines[0].fields[0].value, 1.0);
    EXPECT_EQ(c.lines[1].tags[0].value, "\"x");
    EXPECT_EQ(c.lines[1].fields[0].value, 2.0);
    EXPECT_EQ(c.lines[2].fields[0].value, 3.0);
    EXPECT_EQ(c.lines[2].timestamp_ns, 1'700'000'000'000'000'000);
    EXPECT_EQ(c.lines[3].fields[0].value, 4.0);
    ASSERT_EQ(c.rejected.size(), 2u);
    EXPECT_EQ(c.rejected[0].error, LineError::BadNumber);
    EXPECT_EQ(c.rejected[0].line_number, 3u);
    EXPECT_EQ(c.rejected[0].text, "env temp=oops");
    EXPECT_EQ(c.rejected[1].error, LineError::UnterminatedString);
    EXPECT_EQ(c.rejected[1].line_number, 7u);
}

TEST(LineProtocolTest, ParserReuseStartsEachLineAfresh) {
    LineProtocolParser parser;
    ParsedLine out;
    ASSERT_EQ(parser.parseLine("a,x=1,y=2 f=1,g=2 99", out), std::nullopt);
    ASSERT_EQ(parser.parseLine("b h=3", out), std::nullopt);
    EXPECT_EQ(out.measurement, "b");
    EXPECT_TRUE(out.tags.empty());
    ASSERT_EQ(out.fields.size(), 1u);
    EXPECT_EQ(out.fields[0].key, "h");
    EXPECT_EQ(out.timestamp_ns, std::nullopt);

    Collector c;
    parser.parse("a v=1\nb v=2\n", c);
    parser.parse("c v=3", c);
    ASSERT_EQ(c.lines.size(), 3u);
    EXPECT_EQ(c.lines[2].measurement, "c");
}

TEST(LineProtocolTest, EmptyTextAndOnlyCommentsGiveNothing) {
    for (const char* text : {"", "\n", "\n\n\r\n", "# c\n#d", "   "}) {
        const Collector c = parse(text);
        EXPECT_TRUE(c.lines.empty()) << text;
        EXPECT_TRUE(c.rejected.empty()) << text;
    }
}

TEST(LineProtocolTest, ErrorNamesAreLabelValues) {
    EXPECT_STREQ(lineErrorName(LineError::BadSyntax), "bad_syntax");
    EXPECT_STREQ(lineErrorName(LineError::NoFields), "no_fields");
    EXPECT_STREQ(lineErrorName(LineError::BadNumber), "bad_number");
    EXPECT_STREQ(lineErrorName(LineError::BadEscape), "bad_escape");
    EXPECT_STREQ(lineErrorName(LineError::UnterminatedString), "unterminated_string");
    EXPECT_STREQ(lineErrorName(LineError::BadTimestamp), "bad_timestamp");
}

}  // namespace
}  // namespace tern::edge
