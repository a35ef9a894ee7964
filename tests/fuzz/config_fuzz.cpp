// Loads arbitrary bytes as a config against a schema with every kind of key. The loader must
// never crash, throw or hang, whatever toml++ makes of the input; a failed load must explain
// itself. Seeds are in corpus/config/.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tern/shared/config.h"

namespace {

using namespace std::chrono_literals;
using tern::shared::ConfigTable;

struct Tls {
    std::string ca_file;
    bool verify = true;
};

struct Channel {
    std::string name;
    std::chrono::milliseconds interval{};
    double scale = 0;
    std::vector<std::string> tags;
};

struct Component {
    std::string url;
    std::int64_t inflight = 0;
    double ratio = 0;
    std::chrono::milliseconds timeout{};
    std::uint64_t buffer = 0;
    std::string mode;
    std::vector<std::string> topics;
    std::map<std::string, std::string> library;
    Tls tls;
};

struct Root {
    std::string id;
    Component component;
    std::vector<Channel> channels;
};

ConfigTable<Root> fuzzSchema() {
    auto tls = ConfigTable<Tls>("tls", "TLS")
                   .string("ca_file", &Tls::ca_file, "", "CA bundle")
                   .required()
                   .boolean("verify", &Tls::verify, true, "verify peers");
    auto channel = ConfigTable<Channel>("channel", "a channel")
                       .string("name", &Channel::name, "", "name")
                       .required()
                       .duration("interval", &Channel::interval, 1s, {1ms, 24h}, "poll interval")
                       .number("scale", &Channel::scale, 1.0, {-1e9, 1e9}, "", "multiplier")
                       .stringList("tags", &Channel::tags, {}, "tags");
    auto component =
        ConfigTable<Component>("component", "a component")
            .string("url", &Component::url, "tcp://localhost", "address",
                    {.check =
                         [](const std::string& value) {
                             return value.find("://") == std::string::npos ? "needs a scheme" : "";
                         }})
            .integer("inflight", &Component::inflight, 8, {1, 1 << 20}, "messages", "window")
            .number("ratio", &Component::ratio, 0.5, {0.0, 1.0}, "", "ratio")
            .duration("timeout", &Component::timeout, 5s, {0ms, 7 * 24h}, "timeout")
            .byteSize("buffer", &Component::buffer, 1 << 20, {0, UINT64_MAX}, "buffer")
            .string("mode", &Component::mode, "fast", "mode", {.one_of = {"fast", "safe"}})
            .stringList("topics", &Component::topics, {"t"}, "topics")
            .stringMap("library", &Component::library, "pass-through",
                       [](const std::string& key, const std::string&) {
                           return key.empty() ? std::string("empty key") : std::string();
                       })
            .table(&Component::tls, std::move(tls));
    return ConfigTable<Root>("", "fuzz root")
        .string("id", &Root::id, "", "id")
        .required()
        .table(&Root::component, std::move(component))
        .tables(&Root::channels, std::move(channel));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const ConfigTable<Root> schema = fuzzSchema();
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    auto result = tern::shared::loadConfigString(text, "fuzz.toml", schema);
    if (!result) {
        if (result.error().empty()) std::abort();  // a failure must say why
        for (const auto& error : result.error()) {
            if (error.message.empty()) std::abort();
        }
        (void)tern::shared::formatConfigErrors(result.error());
    }

    // The value parsers see the raw bytes too; whatever they accept must survive a round trip.
    if (auto duration = tern::shared::parseDuration(text)) {
        if (tern::shared::parseDuration(tern::shared::formatDuration(*duration)) != duration) {
            std::abort();
        }
    }
    if (auto bytes = tern::shared::parseByteSize(text)) {
        if (tern::shared::parseByteSize(tern::shared::formatByteSize(*bytes)) != bytes) {
            std::abort();
        }
    }
    return 0;
}
