#include "tern/shared/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <system_error>

namespace tern::shared {

namespace detail {

struct Node {
    const toml::node* value;
    // Where the key that names this value was written; unknown-key errors point there, errors
    // about the value point at the value itself.
    toml::source_position key;
};

}  // namespace detail

namespace {

using std::chrono::milliseconds;

// Messages quote values from the file; a fuzzed or mistyped file can hold anything, so keep them
// to one printable line of bounded length.
constexpr std::size_t kMaxQuotedBytes = 64;

void appendEscaped(std::string& out, std::string_view text) {
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (byte < 0x20 || byte == 0x7f) {
                    static constexpr char kHex[] = "0123456789abcdef";
                    out += "\\u00";
                    out += kHex[byte >> 4];
                    out += kHex[byte & 0xf];
                } else {
                    out += c;
                }
        }
    }
}

std::string quoteValue(std::string_view text) {
    bool truncated = false;
    if (text.size() > kMaxQuotedBytes) {
        std::size_t cut = kMaxQuotedBytes;
        // Do not split a UTF-8 sequence: back off continuation bytes.
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
        text = text.substr(0, cut);
        truncated = true;
    }
    std::string out = "\"";
    appendEscaped(out, text);
    out += truncated ? "...\"" : "\"";
    return out;
}

bool isBareKey(std::string_view key, bool allow_dots) {
    if (key.empty()) return false;
    return std::all_of(key.begin(), key.end(), [allow_dots](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || (allow_dots && c == '.');
    });
}

std::string keySegment(std::string_view key, bool allow_dots) {
    return isBareKey(key, allow_dots) ? std::string(key) : quoteValue(key);
}

std::string typeName(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

std::string expected(std::string_view what, const toml::node& node) {
    return "expected " + std::string(what) + ", got " + typeName(node);
}

// Both parsers distinguish "not this syntax" from "too large" so that the message says which.
enum class ParseStatus { Ok, Malformed, Overflow };

struct Unit {
    std::string_view suffix;
    std::uint64_t factor;
};

constexpr std::array<Unit, 5> kDurationUnits{{
    {"ms", 1},
    {"s", 1000},
    {"m", 60'000},
    {"h", 3'600'000},
    {"d", 86'400'000},
}};

constexpr std::uint64_t kKB = 1000;
constexpr std::array<Unit, 11> kSizeUnits{{
    {"", 1},
    {"B", 1},
    {"kB", kKB},
    {"KB", kKB},
    {"MB", kKB* kKB},
    {"GB", kKB* kKB* kKB},
    {"TB", kKB* kKB* kKB* kKB},
    {"KiB", kKiB},
    {"MiB", kMiB},
    {"GiB", kGiB},
    {"TiB", kGiB* kKiB},
}};

// "<digits><unit>", the result bounded by limit. Digits only: no sign, no fraction, no spaces
// (sizes allow one space before the unit, the way people write "64 MiB").
template <std::size_t N>
ParseStatus parseScaled(std::string_view text, const std::array<Unit, N>& units, bool allow_space,
                        std::uint64_t limit, std::uint64_t& out) {
    std::size_t i = 0;
    std::uint64_t number = 0;
    bool overflow = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        const auto digit = static_cast<std::uint64_t>(text[i] - '0');
        if (number > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
            overflow = true;
        } else {
            number = number * 10 + digit;
        }
        ++i;
    }
    if (i == 0) return ParseStatus::Malformed;
    std::string_view suffix = text.substr(i);
    if (allow_space && suffix.size() > 1 && suffix.front() == ' ') suffix.remove_prefix(1);
    for (const Unit& unit : units) {
        if (unit.suffix != suffix) continue;
        if (overflow || number > limit / unit.factor) return ParseStatus::Overflow;
        out = number * unit.factor;
        return ParseStatus::Ok;
    }
    return ParseStatus::Malformed;
}

ParseStatus parseDurationText(std::string_view text, milliseconds& out) {
    std::uint64_t value = 0;
    const auto limit = static_cast<std::uint64_t>(std::numeric_limits<milliseconds::rep>::max());
    const ParseStatus status = parseScaled(text, kDurationUnits, false, limit, value);
    if (status == ParseStatus::Ok) out = milliseconds(static_cast<milliseconds::rep>(value));
    return status;
}

ParseStatus parseSizeText(std::string_view text, std::uint64_t& out) {
    return parseScaled(text, kSizeUnits, true, std::numeric_limits<std::uint64_t>::max(), out);
}

std::string rangeText(const std::string& min, const std::string& max) {
    return "[" + min + ", " + max + "]";
}

std::string outOfRange(const std::string& value, const std::string& min, const std::string& max) {
    return value + " is out of range " + rangeText(min, max);
}

// Suggests the declared key closest to a misspelt one, if it is close enough to be the intent.
std::size_t editDistance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string markdownCell(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '|') {
            out += "\\|";
        } else if (c == '\n' || c == '\r') {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

std::string codeSpan(std::string_view text) {
    if (text.empty()) return "";
    const bool has_tick = text.find('`') != std::string_view::npos;
    return has_tick ? "`` " + markdownCell(text) + " ``" : "`" + markdownCell(text) + "`";
}

void renderTable(const TableDoc& table, const std::string& path, std::string& out) {
    if (!path.empty()) {
        out += table.array ? "## `[[" + path + "]]`\n\n" : "## `[" + path + "]`\n\n";
        if (!table.doc.empty()) out += table.doc + "\n\n";
    } else if (!table.keys.empty()) {
        out += "## Top-level keys\n\n";
    }
    if (!table.keys.empty()) {
        out += "| Key | Type | Default | Range | Unit | Description |\n";
        out += "| --- | --- | --- | --- | --- | --- |\n";
        for (const KeyDoc& key : table.keys) {
            out += "| " + codeSpan(key.key) + " | " + markdownCell(key.type) + " | " +
                   (key.required ? std::string("**required**") : codeSpan(key.default_value)) +
                   " | " + markdownCell(key.range) + " | " + markdownCell(key.unit) + " | " +
                   markdownCell(key.doc) + " |\n";
        }
        out += "\n";
    }
    for (const TableDoc& child : table.tables) {
        renderTable(child, path.empty() ? child.name : path + "." + child.name, out);
    }
}

}  // namespace

std::string ConfigError::format() const {
    std::string out = file;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
    if (!key.empty()) out += key + ": ";
    out += message;
    return out;
}

std::string formatConfigErrors(const ConfigErrors& errors) {
    std::string out;
    for (const ConfigError& error : errors) out += error.format() + "\n";
    return out;
}

Error toError(const ConfigErrors& errors) {
    std::string detail = formatConfigErrors(errors);
    if (!detail.empty()) detail.pop_back();
    return Error::stop("invalid_config", std::move(detail));
}

std::optional<milliseconds> parseDuration(std::string_view text) {
    milliseconds value{};
    if (parseDurationText(text, value) != ParseStatus::Ok) return std::nullopt;
    return value;
}

std::optional<std::uint64_t> parseByteSize(std::string_view text) {
    std::uint64_t value = 0;
    if (parseSizeText(text, value) != ParseStatus::Ok) return std::nullopt;
    return value;
}

std::string formatDuration(milliseconds value) {
    const milliseconds::rep count = value.count();
    if (count == 0) return "0s";
    for (auto unit = kDurationUnits.rbegin(); unit != kDurationUnits.rend(); ++unit) {
        const auto factor = static_cast<milliseconds::rep>(unit->factor);
        if (count % factor == 0) return std::to_string(count / factor) + std::string(unit->suffix);
    }
    return std::to_string(count) + "ms";
}

std::string formatByteSize(std::uint64_t bytes) {
    if (bytes == 0) return "0";
    // Prefer the binary units (what buffers are sized in), then the decimal ones.
    for (std::string_view suffix : {"TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "kB"}) {
        for (const Unit& unit : kSizeUnits) {
            if (unit.suffix == suffix && bytes % unit.factor == 0) {
                return std::to_string(bytes / unit.factor) + std::string(suffix);
            }
        }
    }
    return std::to_string(bytes) + "B";
}

std::string renderMarkdown(const TableDoc& root) {
    std::string out;
    if (root.name.empty() && !root.doc.empty()) out += root.doc + "\n\n";
    renderTable(root, root.name, out);
    return out;
}

namespace detail {

std::string joinKey(const std::string& path, std::string_view key) {
    const std::string segment = keySegment(key, false);
    return path.empty() ? segment : path + "." + segment;
}

std::string joinIndex(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

std::string quoteForDocs(std::string_view text) {
    std::string out = "\"";
    appendEscaped(out, text);
    return out + "\"";
}

std::string numberForDocs(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
    std::array<char, 64> buffer{};
    const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    if (ec != std::errc{}) return "?";
    std::string text(buffer.data(), end);
    // Keep the ".0" so that the docs show a TOML float, not an integer.
    if (text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
}

void LoadContext::error(const Node* where, const std::string& path, std::string message) {
    ConfigError error{file_, 0, 0, path, std::move(message)};
    if (where != nullptr) {
        const toml::source_position begin = where->value->source().begin;
        error.line = static_cast<int>(begin.line);
        error.column = static_cast<int>(begin.column);
    }
    errors_.push_back(std::move(error));
}

ConfigErrors LoadContext::takeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) {
                         const bool a_placed = a.line > 0;
                         const bool b_placed = b.line > 0;
                         if (a_placed != b_placed) return a_placed;
                         if (a.line != b.line) return a.line < b.line;
                         return a.column < b.column;
                     });
    return std::move(errors_);
}

void LoadContext::parse(std::string_view text, const std::function<void(const Node& root)>& visit) {
    // toml++ reports only the first syntax error: its parser cannot resynchronise. Errors in
    // values and keys, which are most of an operator's mistakes, are all reported.
    try {
        const toml::table root = toml::parse(text, std::string_view(file_));
        const Node node{&root, {}};
        visit(node);
    } catch (const toml::parse_error& e) {
        const toml::source_position begin = e.source().begin;
        errors_.push_back(ConfigError{file_, static_cast<int>(begin.line),
                                      static_cast<int>(begin.column), "",
                                      std::string(e.description())});
    } catch (const std::exception& e) {
        errors_.push_back(ConfigError{file_, 0, 0, "", std::string("cannot load: ") + e.what()});
    } catch (...) {
        errors_.push_back(ConfigError{file_, 0, 0, "", "cannot load: unknown exception"});
    }
}

std::optional<std::string> LoadContext::readFile(const std::string& path) {
    try {
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec)) {
            errors_.push_back(ConfigError{file_, 0, 0, "", "cannot read: is a directory"});
            return std::nullopt;
        }
        errno = 0;
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            const std::string reason = errno != 0 ? std::strerror(errno) : "cannot open";
            errors_.push_back(ConfigError{file_, 0, 0, "", "cannot read: " + reason});
            return std::nullopt;
        }
        std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        if (in.bad()) {
            errors_.push_back(ConfigError{file_, 0, 0, "", "cannot read: I/O error"});
            return std::nullopt;
        }
        return text;
    } catch (const std::exception& e) {
        errors_.push_back(ConfigError{file_, 0, 0, "", std::string("cannot read: ") + e.what()});
        return std::nullopt;
    }
}

std::optional<bool> LoadContext::readBoolean(const Node& node, const std::string& path) {
    if (const auto* value = node.value->as_boolean()) return value->get();
    error(&node, path, expected("a boolean", *node.value));
    return std::nullopt;
}

std::optional<std::int64_t> LoadContext::readInteger(const Node& node, const std::string& path,
                                                     Range<std::int64_t> range) {
    const auto* value = node.value->as_integer();
    if (value == nullptr) {
        error(&node, path, expected("an integer", *node.value));
        return std::nullopt;
    }
    const std::int64_t number = value->get();
    if (number < range.min || number > range.max) {
        error(&node, path,
              outOfRange(std::to_string(number), std::to_string(range.min),
                         std::to_string(range.max)));
        return std::nullopt;
    }
    return number;
}

std::optional<double> LoadContext::readNumber(const Node& node, const std::string& path,
                                              Range<double> range) {
    double number = 0;
    if (const auto* integer = node.value->as_integer()) {
        number = static_cast<double>(integer->get());
    } else if (const auto* floating = node.value->as_floating_point()) {
        number = floating->get();
    } else {
        error(&node, path, expected("a number", *node.value));
        return std::nullopt;
    }
    if (!std::isfinite(number)) {
        error(&node, path, numberForDocs(number) + " is not a finite number");
        return std::nullopt;
    }
    if (number < range.min || number > range.max) {
        error(
            &node, path,
            outOfRange(numberForDocs(number), numberForDocs(range.min), numberForDocs(range.max)));
        return std::nullopt;
    }
    return number;
}

std::optional<std::string> LoadContext::readString(const Node& node, const std::string& path,
                                                   const StringRules& rules) {
    const auto* value = node.value->as_string();
    if (value == nullptr) {
        error(&node, path, expected("a string", *node.value));
        return std::nullopt;
    }
    const std::string& text = value->get();
    if (!rules.one_of.empty() &&
        std::find(rules.one_of.begin(), rules.one_of.end(), text) == rules.one_of.end()) {
        std::string allowed;
        for (const auto& option : rules.one_of) {
            allowed += (allowed.empty() ? "" : ", ") + quoteValue(option);
        }
        error(&node, path, quoteValue(text) + " is not one of " + allowed);
        return std::nullopt;
    }
    if (rules.check) {
        std::string problem;
        try {
            problem = rules.check(text);
        } catch (const std::exception& e) {
            problem = std::string("check failed: ") + e.what();
        }
        if (!problem.empty()) {
            error(&node, path, quoteValue(text) + ": " + problem);
            return std::nullopt;
        }
    }
    return text;
}

std::optional<milliseconds> LoadContext::readDuration(const Node& node, const std::string& path,
                                                      Range<milliseconds> range) {
    const auto* value = node.value->as_string();
    if (value == nullptr) {
        // A bare number is refused rather than guessed: "30" could mean seconds or milliseconds.
        error(&node, path, expected("a duration string with a unit, like \"250ms\"", *node.value));
        return std::nullopt;
    }
    const std::string& text = value->get();
    milliseconds duration{};
    switch (parseDurationText(text, duration)) {
        case ParseStatus::Ok:
            break;
        case ParseStatus::Malformed:
            error(&node, path,
                  quoteValue(text) +
                      " is not a duration: write a whole number and a unit (ms, s, m, h, d), "
                      "like \"250ms\"");
            return std::nullopt;
        case ParseStatus::Overflow:
            error(&node, path, quoteValue(text) + " is too long a duration");
            return std::nullopt;
    }
    if (duration < range.min || duration > range.max) {
        error(&node, path,
              outOfRange(quoteValue(text), formatDuration(range.min), formatDuration(range.max)));
        return std::nullopt;
    }
    return duration;
}

std::optional<std::uint64_t> LoadContext::readByteSize(const Node& node, const std::string& path,
                                                       Range<std::uint64_t> range) {
    std::uint64_t size = 0;
    std::string shown;
    if (const auto* integer = node.value->as_integer()) {
        shown = std::to_string(integer->get());
        if (integer->get() < 0) {
            error(&node, path,
                  outOfRange(shown, formatByteSize(range.min), formatByteSize(range.max)));
            return std::nullopt;
        }
        size = static_cast<std::uint64_t>(integer->get());
    } else if (const auto* text = node.value->as_string()) {
        shown = quoteValue(text->get());
        switch (parseSizeText(text->get(), size)) {
            case ParseStatus::Ok:
                break;
            case ParseStatus::Malformed:
                error(&node, path,
                      shown +
                          " is not a size: write bytes, or a whole number and a unit (KiB, MiB, "
                          "GiB, TiB, kB, MB, GB, TB), like \"64MiB\"");
                return std::nullopt;
            case ParseStatus::Overflow:
                error(&node, path, shown + " is too large a size");
                return std::nullopt;
        }
    } else {
        error(&node, path, expected("a size (bytes, or a string like \"64MiB\")", *node.value));
        return std::nullopt;
    }
    if (size < range.min || size > range.max) {
        error(&node, path, outOfRange(shown, formatByteSize(range.min), formatByteSize(range.max)));
        return std::nullopt;
    }
    return size;
}

std::optional<std::vector<std::string>> LoadContext::readStringList(const Node& node,
                                                                    const std::string& path) {
    const auto* array = node.value->as_array();
    if (array == nullptr) {
        error(&node, path, expected("an array of strings", *node.value));
        return std::nullopt;
    }
    std::vector<std::string> values;
    bool ok = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        if (const auto* text = element.as_string()) {
            values.push_back(text->get());
        } else {
            const Node element_node{&element, element.source().begin};
            error(&element_node, joinIndex(path, i), expected("a string", element));
            ok = false;
        }
    }
    if (!ok) return std::nullopt;
    return values;
}

std::optional<std::map<std::string, std::string>> LoadContext::readStringMap(
    const Node& node, const std::string& path, const EntryCheck& check) {
    if (node.value->as_table() == nullptr) {
        error(&node, path, expected("a table", *node.value));
        return std::nullopt;
    }
    std::map<std::string, std::string> values;
    bool ok = true;
    // Library keys are dotted ("bootstrap.servers"); TOML turns a bare dotted key into nested
    // tables, so flatten them back. Depth is bounded by toml++'s own nesting limit.
    const std::function<void(const toml::table&, const std::string&)> flatten =
        [&](const toml::table& table, const std::string& prefix) {
            for (auto&& [key, value] : table) {
                const std::string name =
                    prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
                const std::string key_path = path + "." + keySegment(name, true);
                const Node entry{&value, key.source().begin};
                std::string text;
                if (const auto* nested = value.as_table()) {
                    flatten(*nested, name);
                    continue;
                } else if (const auto* string = value.as_string()) {
                    text = string->get();
                } else if (const auto* integer = value.as_integer()) {
                    text = std::to_string(integer->get());
                } else if (const auto* floating = value.as_floating_point()) {
                    text = numberForDocs(floating->get());
                } else if (const auto* boolean = value.as_boolean()) {
                    text = boolean->get() ? "true" : "false";
                } else if (value.is_array()) {
                    error(&entry, key_path,
                          "arrays are not passed through; write a comma-separated string");
                    ok = false;
                    continue;
                } else {
                    error(&entry, key_path, expected("a string, integer, float or boolean", value));
                    ok = false;
                    continue;
                }
                if (check) {
                    std::string problem;
                    try {
                        problem = check(name, text);
                    } catch (const std::exception& e) {
                        problem = std::string("check failed: ") + e.what();
                    }
                    if (!problem.empty()) {
                        error(&entry, key_path, problem);
                        ok = false;
                        continue;
                    }
                }
                values[name] = std::move(text);
            }
        };
    flatten(*node.value->as_table(), "");
    if (!ok) return std::nullopt;
    return values;
}

bool LoadContext::forEachEntry(
    const Node& node, const std::string& path,
    const std::function<void(const std::string& key, const Node& value)>& visit) {
    const auto* table = node.value->as_table();
    if (table == nullptr) {
        error(&node, path, expected("a table", *node.value));
        return false;
    }
    for (auto&& [key, value] : *table) {
        const Node entry{&value, key.source().begin};
        visit(std::string(key.str()), entry);
    }
    return true;
}

void LoadContext::forEachTable(
    const Node& node, const std::string& path,
    const std::function<void(std::size_t index, const Node& element)>& visit) {
    const auto* array = node.value->as_array();
    if (array == nullptr) {
        error(&node, path, expected("an array of tables ([[...]])", *node.value));
        return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const Node element_node{&element, element.source().begin};
        if (element.is_table()) {
            visit(i, element_node);
        } else {
            error(&element_node, joinIndex(path, i), expected("a table", element));
        }
    }
}

void LoadContext::unknownKey(const Node& node, const std::string& path, std::string_view name,
                             const std::vector<std::string_view>& known) {
    std::string message = node.value->is_table() ? "unknown table" : "unknown key";
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (std::string_view candidate : known) {
        // A typo is a couple of edits, a few more in a long key; beyond that it is another word.
        const std::size_t limit = std::max<std::size_t>(2, candidate.size() / 4);
        const std::size_t distance = editDistance(name, candidate);
        if (distance <= limit && distance < candidate.size() && distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (!best.empty()) message += " (did you mean " + quoteValue(best) + "?)";
    ConfigError error{file_, static_cast<int>(node.key.line), static_cast<int>(node.key.column),
                      path, std::move(message)};
    if (!node.key) {
        const toml::source_position begin = node.value->source().begin;
        error.line = static_cast<int>(begin.line);
        error.column = static_cast<int>(begin.column);
    }
    errors_.push_back(std::move(error));
}

void LoadContext::missingKey(const Node* anchor, const std::string& path) {
    error(anchor, path, "required key is missing");
}

}  // namespace detail

}  // namespace tern::shared
