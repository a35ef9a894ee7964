#pragma once

// A parser for the InfluxDB line protocol, with no I/O: text in, parsed lines and errors out.
//
//   measurement[,tag=value...] field=value[,field=value...] [timestamp]
//
// - Lines end in '\n' (a '\r' before it is dropped); blank lines and lines starting with '#'
//   are skipped.
// - Measurements escape ',' and ' ' with a backslash; tag keys, tag values and field keys escape
//   ',', '=' and ' '. "\\" is one backslash; a backslash before any other character is kept as
//   written, as InfluxDB does; a backslash that ends the line is an error (bad_escape).
// - Field values: 1.5, -2e3 (float); -3i (signed integer); 7u (unsigned integer); t, T, true,
//   True, TRUE, f, F, false, False, FALSE (boolean); "text" (string, escaping '"' and '\'). A
//   string may not hold a raw newline: lines are split first, so that one broken line cannot eat
//   the ones after it. NaN and infinities are not numbers here.
// - The timestamp is a signed integer of nanoseconds since the Unix epoch.
// - Runs of spaces between the sections are accepted.
// A line with any error is rejected as a whole; the other lines of the text are unaffected.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::edge {

enum class LineFieldType : std::uint8_t { Float, Integer, Unsigned, Boolean, String };

struct LineTag {
    std::string key;
    std::string value;
};

struct LineField {
    std::string key;
    LineFieldType type = LineFieldType::Float;
    double value = 0.0;  // booleans are 1 and 0; unset for strings
    std::string text;    // the unescaped content of a string field; empty otherwise
};

struct ParsedLine {
    std::string measurement;
    std::vector<LineTag> tags;  // in the order written
    std::vector<LineField> fields;
    std::optional<std::int64_t> timestamp_ns;
};

// Why a line was rejected; the snake_case names are metrics label values.
enum class LineError : std::uint8_t {
    BadSyntax,           // no measurement, a key without '=' or value, text after the timestamp
    NoFields,            // a measurement (and tags) without a field set
    BadNumber,           // a field value that is no number, integer, boolean or string
    BadEscape,           // a backslash at the end of the line
    UnterminatedString,  // a string field without its closing quote
    BadTimestamp,        // a timestamp that is not an integer in int64 range
};
inline constexpr std::size_t kLineErrorCount = 6;
const char* lineErrorName(LineError error);

// Receives what the parser finds, in order. line_number counts from 1 within the text.
class LineProtocolHandler {
public:
    virtual ~LineProtocolHandler() = default;
    // line is valid only during the call.
    virtual void onLine(const ParsedLine& line) = 0;
    virtual void onError(LineError error, std::size_t line_number, std::string_view text) = 0;
};

// Keeps its scratch line between calls, so that the vectors keep their capacity from one datagram
// to the next. Not thread-safe; one per receiving thread.
class LineProtocolParser {
public:
    void parse(std::string_view text, LineProtocolHandler& handler);
    // One line without its newline. Returns nullopt when it parsed into out.
    std::optional<LineError> parseLine(std::string_view line, ParsedLine& out);

private:
    ParsedLine line_;
};

// Convenience for one-off use: a parser of its own per call.
void parseLineProtocol(std::string_view text, LineProtocolHandler& handler);

}  // namespace tern::edge
