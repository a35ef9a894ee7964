#include "tern/sim/identities.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ctime>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

#include "tern/shared/topics.h"

namespace tern::sim {

using shared::Error;
using shared::Result;
using shared::VoidResult;

namespace {

// Every OpenSSL object is owned by a unique_ptr whose deleter is the matching *_free.
template <auto free_object>
struct OpensslFree {
    template <class T>
    void operator()(T* object) const {
        free_object(object);
    }
};
using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpensslFree<BN_free>>;
using DecoderPtr = std::unique_ptr<OSSL_DECODER_CTX, OpensslFree<OSSL_DECODER_CTX_free>>;
using CertPtr = std::unique_ptr<X509, OpensslFree<X509_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpensslFree<X509_EXTENSION_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY_free>>;
using KeyGenPtr = std::unique_ptr<EVP_PKEY_CTX, OpensslFree<EVP_PKEY_CTX_free>>;
using NamePtr = std::unique_ptr<X509_NAME, OpensslFree<X509_NAME_free>>;
// OPENSSL_free is a macro, so it gets a deleter of its own.
struct BytesFree {
    void operator()(unsigned char* bytes) const { OPENSSL_free(bytes); }
};
using BytesPtr = std::unique_ptr<unsigned char, BytesFree>;

constexpr int kValidityDays = 825;
// Starting an hour back lets a gateway whose clock runs a little behind accept its certificate.
constexpr long kBackdateSeconds = 3600;
constexpr int kSerialBits = 128;
constexpr std::size_t kP256PointBytes = 65;  // uncompressed: 0x04, X, Y
constexpr mode_t kKeyMode = 0600;
constexpr mode_t kCertMode = 0644;

struct ExtensionSpec {
    int nid;
    const char* value;
};
// scripts/pki's [client_cert] section, in its order. The subject key identifier needs the
// certificate's public key and the authority key identifier the CA's, so both are set first.
constexpr std::array<ExtensionSpec, 5> kClientExtensions = {{
    {NID_basic_constraints, "critical,CA:FALSE"},
    {NID_key_usage, "critical,digitalSignature"},
    {NID_ext_key_usage, "clientAuth"},
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid"},
}};

// Drains OpenSSL's error queue into one line. The entries are library reasons ("no such file",
// "bad decrypt"), never the bytes of a key.
std::string opensslErrors() {
    std::string text;
    std::array<char, 256> buffer{};
    while (const unsigned long code = ERR_get_error()) {
        ERR_error_string_n(code, buffer.data(), buffer.size());
        if (!text.empty()) text += "; ";
        text += buffer.data();
    }
    return text.empty() ? std::string("OpenSSL reported no reason") : text;
}

Error issueFailure(std::string_view id, std::string_view step) {
    return Error::stop("identity_issue_failed",
                       fmt::format("gateway '{}': {}: {}", id, step, opensslErrors()));
}

Error writeFailure(std::string_view action, const std::filesystem::path& path, int error_number) {
    return Error::stop(
        "identity_write_failed",
        fmt::format("cannot {} {}: {}", action, path.string(),
                    std::error_code(error_number, std::generic_category()).message()));
}

// An id as it may appear in an error: quoted, control bytes escaped.
std::string printableId(std::string_view id) {
    std::string out = "'";
    for (const char c : id) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7F) {
            out += fmt::format("\\x{:02x}", byte);
        } else {
            out += c;
        }
    }
    return out + "'";
}

VoidResult validateId(std::string_view id) {
    if (auto valid = shared::validateGatewayId(id); !valid) {
        return Error::stop(
            "invalid_gateway_id",
            fmt::format("{} is not a valid gateway id: {}", printableId(id), valid.error().detail));
    }
    // "." and ".." and hidden files: the id names DIR/clients/<id>.crt, so it must be a plain name.
    if (id.front() == '.') {
        return Error::stop("invalid_gateway_id",
                           fmt::format("{} starts with '.'; a gateway id here is also a file name",
                                       printableId(id)));
    }
    return shared::success();
}

// Key files are never encrypted; refusing any passphrase keeps OpenSSL from prompting on the
// terminal when one is.
int refusePassphrase(char* /*buffer*/, int /*size*/, int /*rwflag*/, void* /*user*/) { return -1; }

CertPtr readCertificate(const std::filesystem::path& path) {
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) return nullptr;
    return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Any key OpenSSL can read: the CA's is read once per run and need not be EC.
KeyPtr readPrivateKey(const std::filesystem::path& path) {
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) return nullptr;
    return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, refusePassphrase, nullptr));
}

// A gateway key as this module and scripts/pki write it: PEM PKCS#8, EC. PEM_read_bio_PrivateKey
// would set up a decoder for every format and key type OpenSSL knows, which took 1 ms a key and
// most of the time of a run that keeps 1000 pairs; a decoder for just this format takes a
// quarter of that. (One decoder reused for every file would be cheaper still, but OpenSSL
// documents no reuse and keeps error state in it.) A key in another format fails to load, so
// its pair is issued again.
KeyPtr readGatewayKey(const std::filesystem::path& path) {
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) return nullptr;
    EVP_PKEY* key = nullptr;
    const DecoderPtr decoder(OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", "PrivateKeyInfo", "EC",
                                                           EVP_PKEY_KEYPAIR, nullptr, nullptr));
    if (!decoder ||
        OSSL_DECODER_CTX_set_pem_password_cb(decoder.get(), refusePassphrase, nullptr) != 1 ||
        OSSL_DECODER_from_bio(decoder.get(), bio.get()) != 1) {
        EVP_PKEY_free(key);
        return nullptr;
    }
    return KeyPtr(key);
}

// Sets the certificate's SubjectPublicKeyInfo to `key`, a P-256 key. X509_set_pubkey would run
// the key through OpenSSL 3's encoder and decoder lookup, half the cost of issuing a
// certificate; the structure is fixed apart from the point, so it is filled in directly
// (id-ecPublicKey, namedCurve prime256v1, the uncompressed point), as OpenSSL's own EC encoder
// writes it.
bool setEcPublicKey(X509* cert, EVP_PKEY* key) {
    unsigned char* raw_point = nullptr;
    const std::size_t length = EVP_PKEY_get1_encoded_public_key(key, &raw_point);
    BytesPtr point(raw_point);
    if (length != kP256PointBytes) return false;
    // On success the public key takes ownership of the point.
    if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                               V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1), point.get(),
                               static_cast<int>(length)) != 1) {
        return false;
    }
    static_cast<void>(point.release());  // the certificate frees it now
    return true;
}

// The first CN of the subject, byte for byte, as the edge's certificateCommonName reads it.
std::string commonName(const X509* cert) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) return {};
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
            static_cast<std::size_t>(ASN1_STRING_length(data))};
}

struct Authority {
    CertPtr cert;
    KeyPtr key;
};

Result<Authority> loadAuthority(const std::filesystem::path& pki_dir) {
    const auto cert_path = pki_dir / "ca.crt";
    const auto key_path = pki_dir / "ca.key";
    Authority ca{readCertificate(cert_path), nullptr};
    if (!ca.cert) {
        return Error::stop("ca_unreadable",
                           fmt::format("no CA certificate in {} (scripts/pki init creates it): {}",
                                       cert_path.string(), opensslErrors()));
    }
    ca.key = readPrivateKey(key_path);
    if (!ca.key) {
        return Error::stop("ca_unreadable", fmt::format("cannot read the CA key {}: {}",
                                                        key_path.string(), opensslErrors()));
    }
    if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
        return Error::stop("ca_key_mismatch",
                           fmt::format("{} is not the key of {}: {}", key_path.string(),
                                       cert_path.string(), opensslErrors()));
    }
    return ca;
}

// Whether the pair on disk may stay. Any failure to read or parse is a "no": the pair is then
// issued again, which is what a missing or damaged pair needs.
bool isCurrent(const GatewayIdentityFiles& files, std::string_view id, const Authority& ca) {
    const CertPtr cert = readCertificate(files.cert);
    if (!cert || commonName(cert.get()) != id) return false;
    if (X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca.cert.get())) !=
        0) {
        return false;
    }
    // The name alone proves nothing: every scripts/pki CA is "Tern local CA".
    if (X509_verify(cert.get(), X509_get0_pubkey(ca.cert.get())) != 1) return false;
    // The key is written before the certificate, so a run that stopped between the two leaves a
    // new key beside the old certificate; that pair is useless and must be issued again.
    const KeyPtr key = readGatewayKey(files.key);
    return key && X509_check_private_key(cert.get(), key.get()) == 1;
}

// Closes on destruction; close() reports a failed close, which can mean lost data.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    int get() const { return fd_; }
    bool close() { return ::close(std::exchange(fd_, -1)) == 0; }

private:
    int fd_;
};

// Removes a temporary file unless the write it belongs to succeeded.
class TempFile {
public:
    explicit TempFile(std::filesystem::path path) : path_(std::move(path)) {}
    ~TempFile() {
        if (!kept_) ::unlink(path_.c_str());
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    void keep() { kept_ = true; }

private:
    std::filesystem::path path_;
    bool kept_ = false;
};

// Writes a new file at `path` through `write_pem` (which writes PEM to a BIO and returns whether
// it did). The file is created under a temporary name with `mode` from its first moment, never
// chmod-ed later, so a key is not readable by others even briefly, and then renamed over
// whatever was at `path`: a reader sees the old file or the whole new one.
template <class WritePem>
VoidResult replaceFile(const std::filesystem::path& path, mode_t mode, WritePem&& write_pem) {
    std::filesystem::path temp = path;
    temp += ".tmp";
    // A temporary file left by a crash may have any mode; O_EXCL below needs it gone.
    if (::unlink(temp.c_str()) != 0 && errno != ENOENT) return writeFailure("remove", temp, errno);
    FileDescriptor fd(
        ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (fd.get() < 0) return writeFailure("create", temp, errno);
    TempFile cleanup(temp);
    {
        const BioPtr bio(BIO_new_fd(fd.get(), BIO_NOCLOSE));
        errno = 0;
        if (!bio || !write_pem(bio.get())) {
            // A failed write(2) sets errno without queueing an OpenSSL error; report both.
            const int error_number = errno;
            std::string reason = opensslErrors();
            if (error_number != 0) {
                reason += "; " + std::error_code(error_number, std::generic_category()).message();
            }
            return Error::stop("identity_write_failed",
                               fmt::format("cannot write {}: {}", temp.string(), reason));
        }
    }
    if (!fd.close()) return writeFailure("write", temp, errno);
    if (::rename(temp.c_str(), path.c_str()) != 0) return writeFailure("rename", temp, errno);
    cleanup.keep();
    return shared::success();
}

// Mints one gateway's identity. Holds the CA and a key generator set up once for the whole run.
class Issuer {
public:
    explicit Issuer(Authority ca) : ca_(std::move(ca)) {}

    VoidResult start() {
        keygen_.reset(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
        if (!keygen_ || EVP_PKEY_keygen_init(keygen_.get()) <= 0 ||
            EVP_PKEY_CTX_set_group_name(keygen_.get(), "P-256") <= 0) {
            return Error::stop("identity_issue_failed",
                               "cannot set up EC P-256 key generation: " + opensslErrors());
        }
        return shared::success();
    }

    const Authority& authority() const { return ca_; }

    VoidResult issue(const std::string& id, const GatewayIdentityFiles& files) {
        EVP_PKEY* raw_key = nullptr;
        if (EVP_PKEY_generate(keygen_.get(), &raw_key) <= 0) {
            return issueFailure(id, "generating the key");
        }
        const KeyPtr key(raw_key);
        auto cert = certificate(id, key.get());
        if (!cert) return cert.error();
        // Key first: see isCurrent for why a crash between the two writes is harmless.
        if (auto written = replaceFile(files.key, kKeyMode,
                                       [&](BIO* bio) {
                                           return PEM_write_bio_PrivateKey(bio, key.get(), nullptr,
                                                                           nullptr, 0, nullptr,
                                                                           nullptr) == 1;
                                       });
            !written) {
            return written;
        }
        return replaceFile(files.cert, kCertMode, [&](BIO* bio) {
            return PEM_write_bio_X509(bio, cert.value().get()) == 1;
        });
    }

private:
    Result<CertPtr> certificate(const std::string& id, EVP_PKEY* key) {
        CertPtr cert(X509_new());
        if (!cert) return issueFailure(id, "allocating the certificate");
        if (X509_set_version(cert.get(), X509_VERSION_3) != 1) {
            return issueFailure(id, "setting version 3");
        }

        // Random and positive; BN_rand yields 0 <= serial < 2^128, so only zero is redrawn.
        const BignumPtr serial(BN_new());
        if (!serial) return issueFailure(id, "allocating the serial");
        do {
            if (BN_rand(serial.get(), kSerialBits, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
                return issueFailure(id, "drawing the serial");
            }
        } while (BN_is_zero(serial.get()));
        if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
            return issueFailure(id, "setting the serial");
        }

        std::time_t now = std::time(nullptr);  // X509_time_adj_ex takes it non-const
        if (X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -kBackdateSeconds, &now) ==
                nullptr ||
            X509_time_adj_ex(X509_getm_notAfter(cert.get()), kValidityDays, -kBackdateSeconds,
                             &now) == nullptr) {
            return issueFailure(id, "setting the validity");
        }

        const NamePtr subject(X509_NAME_new());
        if (!subject ||
            X509_NAME_add_entry_by_NID(subject.get(), NID_commonName, MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(id.data()),
                                       static_cast<int>(id.size()), -1, 0) != 1 ||
            X509_set_subject_name(cert.get(), subject.get()) != 1) {
            return issueFailure(id, "setting the subject");
        }
        if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_.cert.get())) != 1) {
            return issueFailure(id, "setting the issuer");
        }
        if (!setEcPublicKey(cert.get(), key)) return issueFailure(id, "setting the public key");

        X509V3_CTX context{};
        X509V3_set_ctx(&context, ca_.cert.get(), cert.get(), nullptr, nullptr, 0);
        for (const auto& spec : kClientExtensions) {
            const ExtensionPtr extension(
                X509V3_EXT_nconf_nid(nullptr, &context, spec.nid, spec.value));
            if (!extension || X509_add_ext(cert.get(), extension.get(), -1) != 1) {
                return issueFailure(
                    id, fmt::format("adding {} = {}", OBJ_nid2sn(spec.nid), spec.value));
            }
        }

        if (X509_sign(cert.get(), ca_.key.get(), EVP_sha256()) <= 0) {
            return issueFailure(id, "signing with the CA key");
        }
        return cert;
    }

    Authority ca_;
    KeyGenPtr keygen_;
};

VoidResult makeClientsDir(const std::filesystem::path& dir) {
    // Like scripts/pki: only the owner may list the keys.
    if (::mkdir(dir.c_str(), 0700) == 0) return shared::success();
    const int error_number = errno;
    std::error_code ignored;
    if (error_number == EEXIST && std::filesystem::is_directory(dir, ignored)) {
        return shared::success();
    }
    return writeFailure("create the directory", dir, error_number);
}

}  // namespace

Result<std::vector<GatewayIdentityFiles>> ensureGatewayIdentities(
    const std::filesystem::path& pki_dir, const std::vector<std::string>& ids) {
    // Checked up front so a bad id in the list leaves the directory untouched.
    for (const auto& id : ids) {
        if (auto valid = validateId(id); !valid) return valid.error();
    }
    // Errors left queued by other code in this thread would otherwise end up in our details.
    ERR_clear_error();

    auto ca = loadAuthority(pki_dir);
    if (!ca) return ca.error();
    Issuer issuer(std::move(ca).value());
    if (auto started = issuer.start(); !started) return started.error();

    const auto clients = pki_dir / "clients";
    if (auto made = makeClientsDir(clients); !made) return made.error();

    std::vector<GatewayIdentityFiles> result;
    result.reserve(ids.size());
    for (const auto& id : ids) {
        GatewayIdentityFiles files{clients / (id + ".crt"), clients / (id + ".key")};
        const bool current = isCurrent(files, id, issuer.authority());
        // A failed check is an answer, not an error: drop what it queued.
        ERR_clear_error();
        if (!current) {
            if (auto issued = issuer.issue(id, files); !issued) return issued.error();
        }
        result.push_back(std::move(files));
    }
    return result;
}

}  // namespace tern::sim
