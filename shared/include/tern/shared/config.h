#pragma once

// Declarative config tables. Each component declares its keys once — name, type, default, range,
// unit, one line of doc — and binds them to a plain struct through member pointers. The same
// declaration drives loading, defaults and the generated docs/configuration.md, so the three
// cannot drift apart.
//
// Loading never stops at the first problem: an operator fixing a config file on a device wants
// every mistake in one run, each with file, line and dotted key, and then exit status 2
// (kConfigErrorExitStatus). Loading never throws either; toml++ is used only inside config.cpp.
//
// Example:
//   struct UplinkConfig { std::string broker_url; std::int64_t max_inflight; };
//   ConfigTable<UplinkConfig> uplinkTable() {
//       return ConfigTable<UplinkConfig>("uplink", "MQTT uplink to the broker")
//           .string("broker_url", &UplinkConfig::broker_url, "", "broker address").required()
//           .integer("max_inflight", &UplinkConfig::max_inflight, 32, {1, 1024}, "messages",
//                    "QoS 1 publishes awaiting PUBACK");
//   }
//   struct EdgeConfig { UplinkConfig uplink; };
//   const auto schema =
//       ConfigTable<EdgeConfig>("", "edge agent").table(&EdgeConfig::uplink, uplinkTable());
//   ConfigResult<EdgeConfig> config = loadConfigFile("/etc/tern/edge.toml", schema);

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tern/shared/result.h"

namespace tern::shared {

struct ConfigError {
    std::string file;
    // 1-based; 0 when the error has no place in the file (unreadable file, a required key of a
    // table that is absent altogether).
    int line = 0;
    int column = 0;
    // Dotted path such as "uplink.max_inflight" or "sensor[2].interval"; array indexes count from
    // 0, as toml++'s own paths do (the line number says which block is meant). Empty for syntax
    // errors, which belong to no key.
    std::string key;
    std::string message;

    // "edge.toml:12:3: uplink.max_inflight: 5000 is out of range [1, 1024]"
    std::string format() const;
};
using ConfigErrors = std::vector<ConfigError>;

// A loaded config, or every error found in it, in file order.
template <class T>
using ConfigResult =
    boost::outcome_v2::basic_result<T, ConfigErrors, boost::outcome_v2::policy::terminate>;

// The status a binary exits with when its config does not load (house rule).
inline constexpr int kConfigErrorExitStatus = 2;

// One error per line, each ending in '\n': what a binary prints to stderr before exiting.
std::string formatConfigErrors(const ConfigErrors& errors);
// For callers that carry errors as a Result: Error::stop("invalid_config", all errors).
Error toError(const ConfigErrors& errors);

// Inclusive bounds; every numeric key has one so that the docs can say what is allowed.
template <class V>
struct Range {
    V min;
    V max;
};

// Written with designated initializers: {.one_of = {"text", "json"}} or {.check = validUrl}.
struct StringRules {
    // When not empty, the value must be one of these (an enum); the docs list them.
    std::vector<std::string> one_of{};
    // Returns an empty string when the value is acceptable, otherwise why it is not.
    std::function<std::string(const std::string& value)> check{};
};

// Validates one entry of a pass-through table before the library sees it, so that a bad
// librdkafka property fails at load time with file and line. Returns "" or why not.
using EntryCheck = std::function<std::string(const std::string& key, const std::string& value)>;

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;
inline constexpr std::uint64_t kGiB = 1024 * kMiB;

// "250ms", "5s", "2m", "1h", "7d": a whole number and one unit. nullopt when malformed or when
// the result does not fit in milliseconds' int64.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);
// "512KiB", "64MiB", "1GB", "4096", "4096B"; 1000-based units (kB/KB, MB, GB, TB) and
// 1024-based ones (KiB, MiB, GiB, TiB). nullopt when malformed or beyond uint64.
std::optional<std::uint64_t> parseByteSize(std::string_view text);
// The largest unit that represents the value exactly: 30000ms -> "30s", 65536 -> "64KiB".
std::string formatDuration(std::chrono::milliseconds value);
std::string formatByteSize(std::uint64_t bytes);

// What the docs say about one key or table; independent of the struct the table binds.
struct KeyDoc {
    std::string key;
    std::string type;
    std::string default_value;  // as written in TOML; empty for required keys
    std::string range;
    std::string unit;
    std::string doc;
    bool required = false;
};
struct TableDoc {
    std::string name;  // the TOML key; empty for the root
    std::string doc;
    bool array = false;  // [[name]] rather than [name]
    std::vector<KeyDoc> keys;
    std::vector<TableDoc> tables;
};

// Markdown reference for a table and everything nested in it: per table a heading, its doc and a
// table of key, type, default, range, unit and description.
std::string renderMarkdown(const TableDoc& root);

namespace detail {

// A TOML value and where it sits; defined in config.cpp so that toml++ stays out of this header.
struct Node;

// Collects errors while a document is bound. Every read* reports its own error (with file, line
// and key path) and returns nullopt when the value cannot be used, so table code just skips it.
class LoadContext {
public:
    explicit LoadContext(std::string file) : file_(std::move(file)) {}

    // Parses text and calls visit with the root table; a syntax error, or an exception escaping
    // visit, becomes an error instead.
    void parse(std::string_view text, const std::function<void(const Node& root)>& visit);
    std::optional<std::string> readFile(const std::string& path);

    std::optional<bool> readBoolean(const Node& node, const std::string& path);
    std::optional<std::int64_t> readInteger(const Node& node, const std::string& path,
                                            Range<std::int64_t> range);
    std::optional<double> readNumber(const Node& node, const std::string& path,
                                     Range<double> range);
    std::optional<std::string> readString(const Node& node, const std::string& path,
                                          const StringRules& rules);
    std::optional<std::chrono::milliseconds> readDuration(const Node& node, const std::string& path,
                                                          Range<std::chrono::milliseconds> range);
    std::optional<std::uint64_t> readByteSize(const Node& node, const std::string& path,
                                              Range<std::uint64_t> range);
    std::optional<std::vector<std::string>> readStringList(const Node& node,
                                                           const std::string& path);
    std::optional<std::map<std::string, std::string>> readStringMap(const Node& node,
                                                                    const std::string& path,
                                                                    const EntryCheck& check);

    // Calls visit for each key of a table, or reports that node is not a table and returns false.
    bool forEachEntry(const Node& node, const std::string& path,
                      const std::function<void(const std::string& key, const Node& value)>& visit);
    // Calls visit for each element of an array of tables, or reports what is wrong instead.
    void forEachTable(const Node& node, const std::string& path,
                      const std::function<void(std::size_t index, const Node& element)>& visit);

    // name: the key as written, to suggest the closest of the known ones.
    void unknownKey(const Node& node, const std::string& path, std::string_view name,
                    const std::vector<std::string_view>& known);
    // anchor: the nearest enclosing table present in the file, or null.
    void missingKey(const Node* anchor, const std::string& path);

    bool failed() const { return !errors_.empty(); }
    // Errors in file order; errors without a line come last.
    ConfigErrors takeErrors();

private:
    void error(const Node* where, const std::string& path, std::string message);

    std::string file_;
    ConfigErrors errors_;
};

// "table" + "key" -> "table.key"; keys that are not bare TOML keys are quoted.
std::string joinKey(const std::string& path, std::string_view key);
std::string joinIndex(const std::string& path, std::size_t index);
// Values as the docs show them: a TOML string literal, the shortest exact float.
std::string quoteForDocs(std::string_view text);
std::string numberForDocs(double value);

}  // namespace detail

// The keys of one TOML table, bound to the members of T. Built once at startup with the fluent
// methods below; the result is immutable in use and may be shared.
template <class T>
class ConfigTable {
public:
    ConfigTable(std::string name, std::string doc) : name_(std::move(name)), doc_(std::move(doc)) {}

    const std::string& name() const { return name_; }

    ConfigTable& boolean(std::string key, bool T::*member, bool default_value, std::string doc) {
        return add(
            {std::move(key), "boolean", default_value ? "true" : "false", "", "", std::move(doc)},
            [member, default_value](T& target) { target.*member = default_value; },
            [member](const detail::Node& node, const std::string& path, T& target,
                     detail::LoadContext& ctx) {
                if (auto value = ctx.readBoolean(node, path)) target.*member = *value;
            });
    }

    ConfigTable& integer(std::string key, std::int64_t T::*member, std::int64_t default_value,
                         Range<std::int64_t> range, std::string unit, std::string doc) {
        return add(
            {std::move(key), "integer", std::to_string(default_value),
             "[" + std::to_string(range.min) + ", " + std::to_string(range.max) + "]",
             std::move(unit), std::move(doc)},
            [member, default_value](T& target) { target.*member = default_value; },
            [member, range](const detail::Node& node, const std::string& path, T& target,
                            detail::LoadContext& ctx) {
                if (auto value = ctx.readInteger(node, path, range)) target.*member = *value;
            });
    }

    // Rejects NaN and infinities whatever the range.
    ConfigTable& number(std::string key, double T::*member, double default_value,
                        Range<double> range, std::string unit, std::string doc) {
        return add(
            {std::move(key), "float", numberText(default_value),
             "[" + numberText(range.min) + ", " + numberText(range.max) + "]", std::move(unit),
             std::move(doc)},
            [member, default_value](T& target) { target.*member = default_value; },
            [member, range](const detail::Node& node, const std::string& path, T& target,
                            detail::LoadContext& ctx) {
                if (auto value = ctx.readNumber(node, path, range)) target.*member = *value;
            });
    }

    ConfigTable& string(std::string key, std::string T::*member, const std::string& default_value,
                        std::string doc, StringRules rules = {}) {
        // Everything the docs need from rules is taken before the reader lambda moves it away.
        std::string allowed;
        for (const auto& value : rules.one_of) {
            allowed += (allowed.empty() ? "" : ", ") + quote(value);
        }
        KeyDoc key_doc{std::move(key),
                       allowed.empty() ? "string" : "enum",
                       quote(default_value),
                       allowed.empty() ? "" : "one of " + allowed,
                       "",
                       std::move(doc)};
        return add(
            std::move(key_doc),
            [member, default_value](T& target) { target.*member = default_value; },
            [member, rules = std::move(rules)](const detail::Node& node, const std::string& path,
                                               T& target, detail::LoadContext& ctx) {
                if (auto value = ctx.readString(node, path, rules)) {
                    target.*member = std::move(*value);
                }
            });
    }

    // Written as a string with a unit ("250ms", "5s", "2m", "1h", "7d").
    ConfigTable& duration(std::string key, std::chrono::milliseconds T::*member,
                          std::chrono::milliseconds default_value,
                          Range<std::chrono::milliseconds> range, std::string doc) {
        return add(
            {std::move(key), "duration", quote(formatDuration(default_value)),
             "[" + formatDuration(range.min) + ", " + formatDuration(range.max) + "]", "",
             std::move(doc)},
            [member, default_value](T& target) { target.*member = default_value; },
            [member, range](const detail::Node& node, const std::string& path, T& target,
                            detail::LoadContext& ctx) {
                if (auto value = ctx.readDuration(node, path, range)) target.*member = *value;
            });
    }

    // Written as an integer number of bytes or a string with a unit ("512KiB", "64MiB", "1GB").
    ConfigTable& byteSize(std::string key, std::uint64_t T::*member, std::uint64_t default_value,
                          Range<std::uint64_t> range, std::string doc) {
        return add(
            {std::move(key), "size", quote(formatByteSize(default_value)),
             "[" + formatByteSize(range.min) + ", " + formatByteSize(range.max) + "]", "bytes",
             std::move(doc)},
            [member, default_value](T& target) { target.*member = default_value; },
            [member, range](const detail::Node& node, const std::string& path, T& target,
                            detail::LoadContext& ctx) {
                if (auto value = ctx.readByteSize(node, path, range)) target.*member = *value;
            });
    }

    ConfigTable& stringList(std::string key, std::vector<std::string> T::*member,
                            std::vector<std::string> default_value, std::string doc) {
        std::string shown;
        for (const auto& value : default_value) shown += (shown.empty() ? "" : ", ") + quote(value);
        return add(
            {std::move(key), "array of strings", "[" + shown + "]", "", "", std::move(doc)},
            [member, default_value = std::move(default_value)](T& target) {
                target.*member = default_value;
            },
            [member](const detail::Node& node, const std::string& path, T& target,
                     detail::LoadContext& ctx) {
                if (auto value = ctx.readStringList(node, path)) {
                    target.*member = std::move(*value);
                }
            });
    }

    // A pass-through table of library options: any key, with string, integer, float or boolean
    // values turned into strings. Nested keys are joined with dots, so `bootstrap.servers = "x"`
    // and `"bootstrap.servers" = "x"` mean the same, as librdkafka expects.
    ConfigTable& stringMap(std::string key, std::map<std::string, std::string> T::*member,
                           std::string doc, EntryCheck check = {}) {
        return add(
            {std::move(key), "table of strings", "{}", "", "", std::move(doc)},
            [member](T& target) { (target.*member).clear(); },
            [member, check = std::move(check)](const detail::Node& node, const std::string& path,
                                               T& target, detail::LoadContext& ctx) {
                if (auto value = ctx.readStringMap(node, path, check)) {
                    target.*member = std::move(*value);
                }
            });
    }

    // A nested [name.sub] table, named and documented by the sub-table itself.
    template <class U>
    ConfigTable& table(U T::*member, ConfigTable<U> sub) {
        tables_.push_back(sub.describe());
        std::string key = sub.name();
        auto nested = std::make_shared<const ConfigTable<U>>(std::move(sub));
        Key& added = add(
                         {std::move(key), "table", "", "", "", nested->doc_},
                         [member, nested](T& target) { nested->applyDefaults(target.*member); },
                         [member, nested](const detail::Node& node, const std::string& path,
                                          T& target, detail::LoadContext& ctx) {
                             nested->read(&node, path, target.*member, ctx, nullptr);
                         })
                         .keys_.back();
        added.table = true;
        // An absent table still has to report its required keys.
        added.absent = [member, nested](const std::string& path, T& target,
                                        detail::LoadContext& ctx, const detail::Node* anchor) {
            nested->read(nullptr, path, target.*member, ctx, anchor);
        };
        return *this;
    }

    // An array of tables, [[name]] (or [[outer.name]]); each element bound by sub. Absent means
    // empty.
    template <class U>
    ConfigTable& tables(std::vector<U> T::*member, ConfigTable<U> sub) {
        TableDoc doc = sub.describe();
        doc.array = true;
        tables_.push_back(std::move(doc));
        std::string key = sub.name();
        auto nested = std::make_shared<const ConfigTable<U>>(std::move(sub));
        add(
            {std::move(key), "array of tables", "", "", "", nested->doc_},
            [member](T& target) { (target.*member).clear(); },
            [member, nested](const detail::Node& node, const std::string& path, T& target,
                             detail::LoadContext& ctx) {
                std::vector<U> elements;
                ctx.forEachTable(node, path, [&](std::size_t index, const detail::Node& element) {
                    U value{};
                    nested->applyDefaults(value);
                    nested->read(&element, detail::joinIndex(path, index), value, ctx, nullptr);
                    elements.push_back(std::move(value));
                });
                target.*member = std::move(elements);
            });
        keys_.back().table = true;
        return *this;
    }

    // Marks the key declared last as one that must be present: for keys without a sensible
    // default (a broker address, a device id). Its default is then never used.
    ConfigTable& required() {
        if (!keys_.empty()) {
            keys_.back().doc.required = true;
            keys_.back().doc.default_value.clear();
        }
        return *this;
    }

    void applyDefaults(T& target) const {
        for (const auto& key : keys_) key.set_default(target);
    }

    // Binds node (a table, or null when the file has no such table) into target. anchor is the
    // nearest enclosing table in the file, to place errors about keys that are missing.
    void read(const detail::Node* node, const std::string& path, T& target,
              detail::LoadContext& ctx, const detail::Node* anchor) const {
        std::vector<bool> seen(keys_.size(), false);
        if (node != nullptr) {
            // The root table has no line of its own; keys missing there are placed nowhere.
            if (!path.empty()) anchor = node;
            const bool is_table = ctx.forEachEntry(
                *node, path, [&](const std::string& entry, const detail::Node& value) {
                    const std::string key_path = detail::joinKey(path, entry);
                    for (std::size_t i = 0; i < keys_.size(); ++i) {
                        if (keys_[i].doc.key == entry) {
                            seen[i] = true;
                            keys_[i].read(value, key_path, target, ctx);
                            return;
                        }
                    }
                    std::vector<std::string_view> known;
                    known.reserve(keys_.size());
                    for (const auto& key : keys_) known.emplace_back(key.doc.key);
                    ctx.unknownKey(value, key_path, entry, known);
                });
            // Not a table at all: that one error says it; its missing keys would be noise.
            if (!is_table) return;
        }
        for (std::size_t i = 0; i < keys_.size(); ++i) {
            if (seen[i]) continue;
            const std::string key_path = detail::joinKey(path, keys_[i].doc.key);
            if (keys_[i].doc.required) {
                ctx.missingKey(anchor, key_path);
            } else if (keys_[i].absent) {
                keys_[i].absent(key_path, target, ctx, anchor);
            }
        }
    }

    TableDoc describe() const {
        TableDoc doc{name_, doc_, false, {}, tables_};
        for (const auto& key : keys_) {
            if (!key.table) doc.keys.push_back(key.doc);
        }
        return doc;
    }

private:
    template <class U>
    friend class ConfigTable;

    struct Key {
        KeyDoc doc;
        bool table = false;
        std::function<void(T&)> set_default;
        std::function<void(const detail::Node&, const std::string& path, T&, detail::LoadContext&)>
            read;
        std::function<void(const std::string& path, T&, detail::LoadContext&,
                           const detail::Node* anchor)>
            absent;
    };

    ConfigTable& add(
        KeyDoc doc, std::function<void(T&)> set_default,
        std::function<void(const detail::Node&, const std::string&, T&, detail::LoadContext&)>
            read) {
        keys_.push_back(Key{std::move(doc), false, std::move(set_default), std::move(read), {}});
        return *this;
    }

    static std::string quote(std::string_view text) { return detail::quoteForDocs(text); }
    static std::string numberText(double value) { return detail::numberForDocs(value); }

    std::string name_;
    std::string doc_;
    std::vector<Key> keys_;
    std::vector<TableDoc> tables_;
};

// Parses text as TOML and binds it with schema, the root table (its name is ignored). Keys that
// are absent take their defaults. source_name is what errors call the file.
template <class T>
ConfigResult<T> loadConfigString(std::string_view text, std::string_view source_name,
                                 const ConfigTable<T>& schema) {
    detail::LoadContext ctx{std::string(source_name)};
    T config{};
    schema.applyDefaults(config);
    ctx.parse(text,
              [&](const detail::Node& root) { schema.read(&root, "", config, ctx, nullptr); });
    if (ctx.failed()) return boost::outcome_v2::failure(ctx.takeErrors());
    return config;
}

template <class T>
ConfigResult<T> loadConfigFile(const std::string& path, const ConfigTable<T>& schema) {
    detail::LoadContext ctx{path};
    std::optional<std::string> text = ctx.readFile(path);
    if (!text) return boost::outcome_v2::failure(ctx.takeErrors());
    return loadConfigString(*text, path, schema);
}

template <class T>
std::string renderMarkdown(const ConfigTable<T>& schema) {
    return renderMarkdown(schema.describe());
}

}  // namespace tern::shared
