#pragma once

// Test PKI generated at test time with the `openssl` CLI: one CA with its revocation list, a
// broker certificate for localhost / 127.0.0.1, and client certificates whose CN is the MQTT
// identity (a gateway id or "tern-ingest"). All keys are EC P-256, written with mode 0600, never
// printed. Nothing here is fit for production; certificates are valid for two days.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace tern::test {

struct TlsIdentity {
    std::filesystem::path cert;  // PEM certificate
    std::filesystem::path key;   // PEM private key, mode 0600
};

class TestPki {
public:
    // Creates `dir` if needed and generates the CA and the broker certificate in it.
    // Throws std::runtime_error (with openssl's output, which never contains keys) on failure.
    explicit TestPki(std::filesystem::path dir, std::string caName = "Tern Test CA");

    const std::filesystem::path& caCert() const { return caCert_; }
    const TlsIdentity& server() const { return server_; }
    // The CA's certificate revocation list (PEM), rewritten by revoke(); the broker loads it.
    const std::filesystem::path& crl() const { return crl_; }

    // The client identity for `cn`, generated on first use. `cn` is used in file names, so it
    // must be a plain id: [A-Za-z0-9._-]+.
    const TlsIdentity& client(const std::string& cn);
    // Revokes the client certificate issued for `cn` and rewrites crl().
    void revoke(const std::string& cn);

private:
    TlsIdentity issue(const std::string& cn, const std::string& fileStem, bool serverCert);
    std::filesystem::path generateKey(const std::string& fileStem);
    void openssl(const std::vector<std::string>& args);
    void writeCrl();

    std::filesystem::path dir_;
    std::filesystem::path caCert_;
    std::filesystem::path caKey_;
    std::filesystem::path crl_;
    TlsIdentity server_;
    std::map<std::string, TlsIdentity> clients_;
};

}  // namespace tern::test
