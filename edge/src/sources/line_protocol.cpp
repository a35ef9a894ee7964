#include "tern/edge/sources/line_protocol.h"

#include <charconv>
#include <cmath>
#include <system_error>

namespace tern::edge {
namespace {

// Where one section of a line stopped.
enum class Stop { Delimiter, End, BadEscape };

// Reads an escaped name (measurement, tag key or value, field key) from line at pos into out, up
// to the first unescaped delimiter in `delimiters`; pos is left on that delimiter. `escapable` are
// the characters a backslash turns literal in this section.
Stop readName(std::string_view line, std::size_t& pos, std::string_view delimiters,
              std::string_view escapable, std::string& out) {
    out.clear();
    while (pos < line.size()) {
        const char c = line[pos];
        if (c == '\\') {
            if (pos + 1 == line.size()) return Stop::BadEscape;
            const char next = line[pos + 1];
            if (next == '\\' || escapable.find(next) != std::string_view::npos) {
                out += next;
            } else {
                // InfluxDB keeps a backslash that escapes nothing.
                out += c;
                out += next;
            }
            pos += 2;
            continue;
        }
        if (delimiters.find(c) != std::string_view::npos) return Stop::Delimiter;
        out += c;
        ++pos;
    }
    return Stop::End;
}

void skipSpaces(std::string_view line, std::size_t& pos) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
}

bool isBooleanTrue(std::string_view v) {
    return v == "t" || v == "T" || v == "true" || v == "True" || v == "TRUE";
}
bool isBooleanFalse(std::string_view v) {
    return v == "f" || v == "F" || v == "false" || v == "False" || v == "FALSE";
}

template <class Int>
bool parseWhole(std::string_view text, Int& value) {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size();
}

// A bare field value (not a string): float, integer, unsigned or boolean.
bool parseValue(std::string_view token, LineField& field) {
    if (isBooleanTrue(token) || isBooleanFalse(token)) {
        field.type = LineFieldType::Boolean;
        field.value = isBooleanTrue(token) ? 1.0 : 0.0;
        return true;
    }
    const char last = token.back();
    if (last == 'i') {
        std::int64_t value = 0;
        if (!parseWhole(token.substr(0, token.size() - 1), value)) return false;
        field.type = LineFieldType::Integer;
        field.value = static_cast<double>(value);
        return true;
    }
    if (last == 'u') {
        std::uint64_t value = 0;
        const std::string_view digits = token.substr(0, token.size() - 1);
        // from_chars would read "-1" as a huge unsigned; a sign is no part of an unsigned.
        if (digits.empty() || digits.front() == '-' || !parseWhole(digits, value)) return false;
        field.type = LineFieldType::Unsigned;
        field.value = static_cast<double>(value);
        return true;
    }
    // from_chars also takes "inf", "nan" and "infinity"; InfluxDB takes none of them, and a
    // number must start with a digit, '.', or '-'.
    const char first = token.front() == '-' && token.size() > 1 ? token[1] : token.front();
    if (!(first >= '0' && first <= '9') && first != '.') return false;
    double value = 0.0;
    if (!parseWhole(token, value) || !std::isfinite(value)) return false;
    field.type = LineFieldType::Float;
    field.value = value;
    return true;
}

// A string field value starting at the opening quote; pos is left after the closing one.
bool readString(std::string_view line, std::size_t& pos, std::string& out) {
    out.clear();
    ++pos;  // the opening quote
    while (pos < line.size()) {
        const char c = line[pos];
        if (c == '\\' && pos + 1 < line.size() && (line[pos + 1] == '"' || line[pos + 1] == '\\')) {
            out += line[pos + 1];
            pos += 2;
            continue;
        }
        if (c == '"') {
            ++pos;
            return true;
        }
        out += c;
        ++pos;
    }
    return false;
}

}  // namespace

const char* lineErrorName(LineError error) {
    switch (error) {
        case LineError::BadSyntax:
            return "bad_syntax";
        case LineError::NoFields:
            return "no_fields";
        case LineError::BadNumber:
            return "bad_number";
        case LineError::BadEscape:
            return "bad_escape";
        case LineError::UnterminatedString:
            return "unterminated_string";
        case LineError::BadTimestamp:
            return "bad_timestamp";
    }
    return "unknown";
}

namespace {

// A tag or field key and the '=' after it; pos ends past the '='.
std::optional<LineError> readKey(std::string_view line, std::size_t& pos, std::string& key) {
    switch (readName(line, pos, ",= ", ",= ", key)) {
        case Stop::BadEscape:
            return LineError::BadEscape;
        case Stop::End:
            return LineError::BadSyntax;
        case Stop::Delimiter:
            break;
    }
    if (line[pos] != '=' || key.empty()) return LineError::BadSyntax;
    ++pos;
    return std::nullopt;
}

}  // namespace

std::optional<LineError> LineProtocolParser::parseLine(std::string_view line, ParsedLine& out) {
    out.measurement.clear();
    out.tags.clear();
    out.fields.clear();
    out.timestamp_ns.reset();
    std::size_t pos = 0;

    // Measurement.
    switch (readName(line, pos, ", ", ", ", out.measurement)) {
        case Stop::BadEscape:
            return LineError::BadEscape;
        case Stop::End:
            return out.measurement.empty() ? LineError::BadSyntax : LineError::NoFields;
        case Stop::Delimiter:
            break;
    }
    if (out.measurement.empty()) return LineError::BadSyntax;

    // Tags.
    while (line[pos] == ',') {
        ++pos;
        LineTag& tag = out.tags.emplace_back();
        if (auto error = readKey(line, pos, tag.key)) return error;
        const Stop stop = readName(line, pos, ",= ", ",= ", tag.value);
        if (stop == Stop::BadEscape) return LineError::BadEscape;
        if (tag.value.empty()) return LineError::BadSyntax;
        if (stop == Stop::End) return LineError::NoFields;
        if (line[pos] == '=') return LineError::BadSyntax;  // an unescaped '=' in a tag value
    }

    // Fields.
    skipSpaces(line, pos);
    if (pos == line.size()) return LineError::NoFields;
    while (true) {
        LineField& field = out.fields.emplace_back();
        if (auto error = readKey(line, pos, field.key)) return error;
        if (pos < line.size() && line[pos] == '"') {
            if (!readString(line, pos, field.text)) return LineError::UnterminatedString;
            field.type = LineFieldType::String;
            field.value = 0.0;
        } else {
            const std::size_t start = pos;
            while (pos < line.size() && line[pos] != ',' && line[pos] != ' ') ++pos;
            if (pos == start) return LineError::BadSyntax;
            field.text.clear();
            if (!parseValue(line.substr(start, pos - start), field)) return LineError::BadNumber;
        }
        if (pos == line.size() || line[pos] == ' ') break;
        if (line[pos] != ',') return LineError::BadSyntax;  // e.g. "x"y after a string
        ++pos;
    }

    // Timestamp.
    skipSpaces(line, pos);
    if (pos == line.size()) return std::nullopt;
    const std::size_t start = pos;
    while (pos < line.size() && line[pos] != ' ') ++pos;
    std::int64_t ns = 0;
    if (!parseWhole(line.substr(start, pos - start), ns)) return LineError::BadTimestamp;
    skipSpaces(line, pos);
    if (pos != line.size()) return LineError::BadSyntax;
    out.timestamp_ns = ns;
    return std::nullopt;
}

void LineProtocolParser::parse(std::string_view text, LineProtocolHandler& handler) {
    std::size_t line_number = 0;
    while (!text.empty()) {
        const std::size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        std::size_t first = 0;
        while (first < line.size() && (line[first] == ' ' || line[first] == '\t')) ++first;
        if (first == line.size() || line[first] == '#') continue;
        line.remove_prefix(first);
        if (auto error = parseLine(line, line_)) {
            handler.onError(*error, line_number, line);
        } else {
            handler.onLine(line_);
        }
    }
}

void parseLineProtocol(std::string_view text, LineProtocolHandler& handler) {
    LineProtocolParser parser;
    parser.parse(text, handler);
}

}  // namespace tern::edge
