// Gateway identities minted in-process, checked against the openssl CLI and scripts/pki: each
// test starts from a CA made by `scripts/pki init`, so the files are the ones the broker and the
// script really use.

#include "tern/sim/identities.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace tern::sim {
namespace {

namespace fs = std::filesystem;

struct CommandOutput {
    int status = -1;
    std::string text;  // stdout and stderr
};

CommandOutput run(const std::string& command) {
    CommandOutput out;
    std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return out;
    std::array<char, 4096> buffer{};
    std::size_t n = 0;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
        out.text.append(buffer.data(), n);
    }
    const int status = ::pclose(pipe);
    out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

std::string quote(const fs::path& path) { return "'" + path.string() + "'"; }

fs::path pkiScript() { return fs::path(TERN_SOURCE_DIR) / "scripts/pki"; }

std::string readFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

unsigned permissions(const fs::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return 0;
    return info.st_mode & 07777;
}

struct Snapshot {
    std::string contents;
    std::int64_t mtime_ns = 0;
    bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const fs::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return {};
    return {readFile(path),
            std::int64_t{info.st_mtim.tv_sec} * 1'000'000'000 + info.st_mtim.tv_nsec};
}

std::string certField(const fs::path& cert, const std::string& options) {
    return run("openssl x509 -in " + quote(cert) + " -noout " + options).text;
}

// "Mon DD HH:MM:SS YYYY GMT" as openssl prints notBefore/notAfter, in seconds since the epoch.
std::time_t certTime(const fs::path& cert, const std::string& field) {
    const std::string line = certField(cert, "-" + field);  // "notBefore=Nov 21 08:50:53 2026 GMT"
    const auto equals = line.find('=');
    if (equals == std::string::npos) return 0;
    std::tm parts{};
    if (::strptime(line.c_str() + equals + 1, "%b %d %H:%M:%S %Y GMT", &parts) == nullptr) return 0;
    return ::timegm(&parts);
}

class GatewayIdentitiesTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "tern-identities-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        root_ = pattern;
        pki_ = root_ / "pki";
        ASSERT_TRUE(fs::exists(pkiScript())) << pkiScript();
        makeCa(pki_);
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(root_, ignored);
    }

    static void makeCa(const fs::path& dir) {
        const auto made = run(quote(pkiScript()) + " init " + quote(dir));
        ASSERT_EQ(made.status, 0) << made.text;
    }

    fs::path crt(const std::string& id) const { return pki_ / "clients" / (id + ".crt"); }
    fs::path key(const std::string& id) const { return pki_ / "clients" / (id + ".key"); }

    // What the broker checks of a client: chains to the CA, fit for TLS client authentication.
    bool brokerAccepts(const fs::path& cert) const {
        const auto verified = run("openssl verify -CAfile " + quote(pki_ / "ca.crt") +
                                  " -purpose sslclient " + quote(cert));
        return verified.status == 0 && verified.text == cert.string() + ": OK\n";
    }

    static std::string subject(const fs::path& cert) {
        return certField(cert, "-subject -nameopt RFC2253");
    }

    static bool keyMatches(const fs::path& key_file, const fs::path& cert) {
        const auto from_key = run("openssl pkey -in " + quote(key_file) + " -pubout");
        const auto from_cert = certField(cert, "-pubkey");
        return from_key.status == 0 && from_key.text.find("PUBLIC KEY") != std::string::npos &&
               from_key.text == from_cert;
    }

    void ensure(const std::vector<std::string>& ids) const {
        auto result = ensureGatewayIdentities(pki_, ids);
        ASSERT_TRUE(result) << result.error().message();
        ASSERT_EQ(result.value().size(), ids.size());
    }

    fs::path root_;
    fs::path pki_;
};

TEST_F(GatewayIdentitiesTest, IssuesAPairPerIdThatTheBrokerAccepts) {
    const std::vector<std::string> ids = {"gw-1", "site-b.pump", "gw-0003"};
    auto result = ensureGatewayIdentities(pki_, ids);
    ASSERT_TRUE(result) << result.error().message();
    ASSERT_EQ(result.value().size(), ids.size());

    std::set<std::string> serials;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        SCOPED_TRACE(ids[i]);
        const auto& files = result.value()[i];
        EXPECT_EQ(files.cert, crt(ids[i]));  // in the order given
        EXPECT_EQ(files.key, key(ids[i]));
        EXPECT_TRUE(brokerAccepts(files.cert));
        EXPECT_EQ(subject(files.cert), "subject=CN=" + ids[i] + "\n");
        EXPECT_EQ(permissions(files.key), 0600u);
        EXPECT_TRUE(keyMatches(files.key, files.cert));
        EXPECT_NE(readFile(files.key).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
        EXPECT_FALSE(fs::exists(files.key.string() + ".tmp"));
        EXPECT_FALSE(fs::exists(files.cert.string() + ".tmp"));

        const std::string serial = certField(files.cert, "-serial");  // "serial=<hex>\n"
        ASSERT_TRUE(serial.starts_with("serial=")) << serial;
        const std::string hex = serial.substr(7, serial.size() - 8);
        EXPECT_EQ(hex.find('-'), std::string::npos) << "negative serial " << hex;
        EXPECT_LE(hex.size(), 32u) << "more than 128 bits: " << hex;
        // A random 128-bit number has fewer than 20 hex digits with probability 2^-48.
        EXPECT_GE(hex.size(), 20u) << "not random-looking: " << hex;
        serials.insert(hex);
    }
    EXPECT_EQ(serials.size(), ids.size());
}

TEST_F(GatewayIdentitiesTest, CertificatesCarryTheExtensionsScriptsPkiGivesAClient) {
    const auto made = run(quote(pkiScript()) + " client " + quote(pki_) + " by-script");
    ASSERT_EQ(made.status, 0) << made.text;
    ensure({"in-process"});

    const auto text = [](const fs::path& cert) {
        const std::string all = certField(cert, "-text");
        // Version, algorithms and the extension headers (names and "critical"), not the values
        // that differ per certificate.
        std::string kept;
        std::istringstream lines(all);
        for (std::string line; std::getline(lines, line);) {
            if (line.find("Version:") != std::string::npos ||
                line.find("Signature Algorithm:") != std::string::npos ||
                line.find("Public Key Algorithm:") != std::string::npos ||
                line.find("NIST CURVE:") != std::string::npos ||
                line.find("X509v3 ") != std::string::npos) {
                kept += line + "\n";
            }
        }
        return kept;
    };
    const std::string expected = text(pki_ / "clients" / "by-script.crt");
    ASSERT_NE(expected.find("X509v3 Authority Key Identifier"), std::string::npos) << expected;
    EXPECT_EQ(text(crt("in-process")), expected);

    // The values that do not depend on the certificate's own key are the script's too.
    const std::string fixed =
        "-ext basicConstraints,keyUsage,extendedKeyUsage,authorityKeyIdentifier";
    EXPECT_EQ(certField(crt("in-process"), fixed),
              certField(pki_ / "clients" / "by-script.crt", fixed));
    EXPECT_NE(certField(crt("in-process"), fixed).find("TLS Web Client Authentication"),
              std::string::npos);
}

TEST_F(GatewayIdentitiesTest, CertificatesAreValidFromAnHourAgoFor825Days) {
    const std::time_t before = std::time(nullptr);
    ensure({"gw-1"});
    const std::time_t after = std::time(nullptr);

    const std::time_t not_before = certTime(crt("gw-1"), "startdate");
    const std::time_t not_after = certTime(crt("gw-1"), "enddate");
    EXPECT_GE(not_before, before - 3600);
    EXPECT_LE(not_before, after - 3600);
    EXPECT_EQ(not_after - not_before, std::time_t{825} * 24 * 3600);
}

TEST_F(GatewayIdentitiesTest, ASecondCallKeepsEveryPair) {
    const std::vector<std::string> ids = {"gw-1", "gw-2", "gw-3"};
    ensure(ids);
    std::vector<Snapshot> first;
    for (const auto& id : ids) {
        first.push_back(snapshot(crt(id)));
        first.push_back(snapshot(key(id)));
    }

    ensure(ids);
    std::vector<Snapshot> second;
    for (const auto& id : ids) {
        second.push_back(snapshot(crt(id)));
        second.push_back(snapshot(key(id)));
    }
    EXPECT_EQ(first, second);
    EXPECT_FALSE(first[0].contents.empty());
}

TEST_F(GatewayIdentitiesTest, ReissuesAPairHoldingAnotherIdsCertificate) {
    ensure({"gw-1", "gw-2"});
    const Snapshot gw2_cert = snapshot(crt("gw-2"));
    const Snapshot gw2_key = snapshot(key("gw-2"));
    // A consistent pair from the right CA: only the CN is wrong.
    fs::copy_file(crt("gw-2"), crt("gw-1"), fs::copy_options::overwrite_existing);
    fs::copy_file(key("gw-2"), key("gw-1"), fs::copy_options::overwrite_existing);
    ASSERT_TRUE(brokerAccepts(crt("gw-1")));
    ASSERT_TRUE(keyMatches(key("gw-1"), crt("gw-1")));

    ensure({"gw-1", "gw-2"});
    EXPECT_EQ(subject(crt("gw-1")), "subject=CN=gw-1\n");
    EXPECT_TRUE(brokerAccepts(crt("gw-1")));
    EXPECT_TRUE(keyMatches(key("gw-1"), crt("gw-1")));
    EXPECT_NE(readFile(key("gw-1")), gw2_key.contents);
    // The pair it was copied from stays as it was.
    EXPECT_EQ(snapshot(crt("gw-2")), gw2_cert);
    EXPECT_EQ(snapshot(key("gw-2")), gw2_key);
}

TEST_F(GatewayIdentitiesTest, ReissuesACertificateFromAnotherCa) {
    const fs::path other = root_ / "other-pki";
    makeCa(other);
    ASSERT_TRUE(ensureGatewayIdentities(other, {"gw-1"}));
    // Same CN, same CA name ("Tern local CA"), a key that matches: only the signature tells.
    fs::copy_file(other / "clients" / "gw-1.crt", crt("gw-1"));
    fs::copy_file(other / "clients" / "gw-1.key", key("gw-1"));
    ASSERT_EQ(subject(crt("gw-1")), "subject=CN=gw-1\n");
    ASSERT_EQ(certField(crt("gw-1"), "-issuer -nameopt RFC2253"), "issuer=CN=Tern local CA\n");
    ASSERT_EQ(certField(pki_ / "ca.crt", "-subject -nameopt RFC2253"),
              "subject=CN=Tern local CA\n");
    ASSERT_FALSE(brokerAccepts(crt("gw-1")));
    const std::string foreign = readFile(crt("gw-1"));

    ensure({"gw-1"});
    EXPECT_NE(readFile(crt("gw-1")), foreign);
    EXPECT_TRUE(brokerAccepts(crt("gw-1")));
    EXPECT_EQ(subject(crt("gw-1")), "subject=CN=gw-1\n");
    EXPECT_TRUE(keyMatches(key("gw-1"), crt("gw-1")));
}

TEST_F(GatewayIdentitiesTest, ReissuesWhenTheKeyIsNotTheCertificatesAndMakesItPrivate) {
    ensure({"gw-1", "gw-2"});
    const std::string old_cert = readFile(crt("gw-1"));
    fs::copy_file(key("gw-2"), key("gw-1"), fs::copy_options::overwrite_existing);
    fs::permissions(key("gw-1"), fs::perms(0644));
    ASSERT_FALSE(keyMatches(key("gw-1"), crt("gw-1")));

    ensure({"gw-1"});
    EXPECT_TRUE(keyMatches(key("gw-1"), crt("gw-1")));
    EXPECT_NE(readFile(crt("gw-1")), old_cert);
    EXPECT_TRUE(brokerAccepts(crt("gw-1")));
    // The new key is a new file, not the world-readable one written over.
    EXPECT_EQ(permissions(key("gw-1")), 0600u);
}

TEST_F(GatewayIdentitiesTest, ReissuesAPairWhoseKeyIsMissing) {
    ensure({"gw-1"});
    const std::string old_cert = readFile(crt("gw-1"));
    fs::remove(key("gw-1"));

    ensure({"gw-1"});
    EXPECT_NE(readFile(crt("gw-1")), old_cert);
    EXPECT_TRUE(keyMatches(key("gw-1"), crt("gw-1")));
    EXPECT_EQ(permissions(key("gw-1")), 0600u);
}

TEST_F(GatewayIdentitiesTest, CreatesTheClientsDirectoryForItsOwnerOnly) {
    fs::remove_all(pki_ / "clients");
    ensure({"gw-1"});
    EXPECT_EQ(permissions(pki_ / "clients"), 0700u);
    EXPECT_TRUE(brokerAccepts(crt("gw-1")));
}

TEST_F(GatewayIdentitiesTest, RejectsAnInvalidIdNamingItAndWritesNothing) {
    const std::string longest(64, 'g');
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"a/b", "'a/b'"},
        {"", "''"},
        {std::string(65, 'g'), "'" + std::string(65, 'g') + "'"},
        {".hidden", "'.hidden'"},
        {"..", "'..'"},
        {"a b", "'a b'"},
        {"a+b", "'a+b'"},
        {"a#b", "'a#b'"},
        {"tab\there", "'tab\\x09here'"},
    };
    for (const auto& [id, named] : cases) {
        SCOPED_TRACE(named);
        auto result = ensureGatewayIdentities(pki_, {"gw-ok", id});
        ASSERT_FALSE(result);
        EXPECT_EQ(result.error().code, "invalid_gateway_id");
        EXPECT_EQ(result.error().action, shared::ErrorAction::Stop);
        EXPECT_NE(result.error().detail.find(named), std::string::npos) << result.error().detail;
        EXPECT_FALSE(fs::exists(crt("gw-ok")));
    }
    // The bounds are the bounds: 64 bytes is fine.
    ensure({longest});
    EXPECT_TRUE(brokerAccepts(crt(longest)));
}

TEST_F(GatewayIdentitiesTest, AMissingCaKeyIsAnErrorNamingIt) {
    fs::remove(pki_ / "ca.key");
    auto result = ensureGatewayIdentities(pki_, {"gw-1"});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, "ca_unreadable");
    EXPECT_EQ(result.error().action, shared::ErrorAction::Stop);
    EXPECT_NE(result.error().detail.find((pki_ / "ca.key").string()), std::string::npos)
        << result.error().detail;
    EXPECT_FALSE(fs::exists(crt("gw-1")));
    EXPECT_FALSE(fs::exists(key("gw-1")));
}

TEST_F(GatewayIdentitiesTest, AnotherCasKeyIsAnErrorAndNeverQuoted) {
    const fs::path other = root_ / "other-pki";
    makeCa(other);
    fs::copy_file(other / "ca.key", pki_ / "ca.key", fs::copy_options::overwrite_existing);
    auto result = ensureGatewayIdentities(pki_, {"gw-1"});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, "ca_key_mismatch");
    // The first line of the key's base64 body appears nowhere in the error.
    std::istringstream pem(readFile(pki_ / "ca.key"));
    std::string body;
    std::getline(pem, body);
    std::getline(pem, body);
    ASSERT_GT(body.size(), 20u);
    EXPECT_EQ(result.error().message().find(body), std::string::npos);
    EXPECT_NE(result.error().detail.find((pki_ / "ca.key").string()), std::string::npos);
    EXPECT_FALSE(fs::exists(crt("gw-1")));
}

}  // namespace
}  // namespace tern::sim
