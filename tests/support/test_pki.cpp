#include "test_pki.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "process.h"

namespace tern::test {
namespace {

constexpr const char* kOpenssl = "/usr/bin/openssl";
constexpr const char* kValidDays = "2";

// One config for every step: the dn section is empty because subjects come from -subj; the ca
// section serves only the revocation list (`openssl ca -revoke` and `-gencrl`).
constexpr const char* kConfig = R"(
[ca]
default_ca = tern_ca
[tern_ca]
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_crl_days = 2
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_cert]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_cert]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
)";

bool isPlainId(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

}  // namespace

TestPki::TestPki(std::filesystem::path dir, std::string caName) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    {
        std::ofstream cfg(dir_ / "openssl.cnf");
        cfg << "dir = " << dir_.string() << "\n" << kConfig;
        if (!cfg) throw std::runtime_error("cannot write " + (dir_ / "openssl.cnf").string());
    }
    caKey_ = generateKey("ca");
    caCert_ = dir_ / "ca.crt";
    openssl({"req", "-x509", "-new", "-key", caKey_.string(), "-sha256", "-days", kValidDays,
             "-subj", "/CN=" + caName, "-config", (dir_ / "openssl.cnf").string(), "-extensions",
             "v3_ca", "-out", caCert_.string()});
    server_ = issue("localhost", "server", true);
    std::ofstream(dir_ / "index.txt").flush();
    std::ofstream(dir_ / "crlnumber") << "01\n";
    crl_ = dir_ / "crl.pem";
    writeCrl();
}

void TestPki::revoke(const std::string& cn) {
    const auto it = clients_.find(cn);
    if (it == clients_.end()) throw std::invalid_argument("no client certificate for " + cn);
    openssl(
        {"ca", "-config", (dir_ / "openssl.cnf").string(), "-revoke", it->second.cert.string()});
    writeCrl();
}

void TestPki::writeCrl() {
    openssl({"ca", "-config", (dir_ / "openssl.cnf").string(), "-gencrl", "-out", crl_.string()});
}

const TlsIdentity& TestPki::client(const std::string& cn) {
    if (!isPlainId(cn)) throw std::invalid_argument("client CN must match [A-Za-z0-9._-]+: " + cn);
    auto it = clients_.find(cn);
    if (it == clients_.end()) it = clients_.emplace(cn, issue(cn, "client-" + cn, false)).first;
    return it->second;
}

TlsIdentity TestPki::issue(const std::string& cn, const std::string& fileStem, bool serverCert) {
    TlsIdentity id{dir_ / (fileStem + ".crt"), generateKey(fileStem)};
    const auto csr = dir_ / (fileStem + ".csr");
    openssl({"req", "-new", "-key", id.key.string(), "-subj", "/CN=" + cn, "-config",
             (dir_ / "openssl.cnf").string(), "-out", csr.string()});
    openssl({"x509",
             "-req",
             "-in",
             csr.string(),
             "-CA",
             caCert_.string(),
             "-CAkey",
             caKey_.string(),
             "-CAcreateserial",
             "-CAserial",
             (dir_ / "ca.srl").string(),
             "-days",
             kValidDays,
             "-sha256",
             "-extfile",
             (dir_ / "openssl.cnf").string(),
             "-extensions",
             serverCert ? "server_cert" : "client_cert",
             "-out",
             id.cert.string()});
    std::filesystem::remove(csr);
    return id;
}

std::filesystem::path TestPki::generateKey(const std::string& fileStem) {
    const auto key = dir_ / (fileStem + ".key");
    openssl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
             key.string()});
    // openssl already creates private keys 0600; make it explicit rather than rely on that.
    std::filesystem::permissions(
        key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return key;
}

void TestPki::openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{kOpenssl};
    argv.insert(argv.end(), args.begin(), args.end());
    // Keys are only ever written to files (-out), so this log holds diagnostics, not secrets.
    const auto log = dir_ / "openssl.log";
    if (runProcess(argv, log) != 0) {
        throw std::runtime_error("openssl " + args.front() + " failed: " + readTail(log));
    }
}

}  // namespace tern::test
