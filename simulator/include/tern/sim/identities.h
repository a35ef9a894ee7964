#pragma once

// TLS client identities for the simulator's virtual gateways, minted in-process with OpenSSL so a
// fleet of thousands gets its certificates in about a second instead of two openssl runs per
// gateway. The files follow the layout scripts/pki writes, so the broker and tools see no
// difference between a gateway enrolled by the script and one enrolled here:
//
//   DIR/ca.crt, DIR/ca.key            the local CA (scripts/pki init DIR)
//   DIR/clients/<id>.crt, <id>.key    one pair per gateway id, CN = id
//
// Invariants: a key file is created with mode 0600 and its bytes are never logged or put in an
// Error; each file is written under a temporary name and renamed into place, so a reader never
// sees a half-written file. The issued certificate carries the extensions of scripts/pki's
// [client_cert] section.

#include <filesystem>
#include <string>
#include <vector>

#include "tern/shared/result.h"

namespace tern::sim {

// Where one gateway's certificate and private key are (both PEM).
struct GatewayIdentityFiles {
    std::filesystem::path cert;
    std::filesystem::path key;
};

// Makes sure DIR/clients/<id>.{crt,key} exist for every id and returns their paths, one entry per
// id in the order given. An existing pair is kept when its certificate's CN is the id, it was
// signed by DIR/ca.crt and the key belongs to it; anything else (a missing file, another id's
// certificate, another CA's, a key that does not match) is replaced by a new EC P-256 key and a
// certificate signed with DIR/ca.key, valid from an hour ago for 825 days.
//
// Every id is checked before anything is written: it must be a valid gateway id (1-64 bytes of
// UTF-8, no '/', '+', '#', white space or control characters, as scripts/pki and the topics
// require) and must not start with '.', so it is a plain file name. Errors are Stop errors naming
// the id or file at fault. Blocking file I/O: call it at startup, not on an event loop.
shared::Result<std::vector<GatewayIdentityFiles>> ensureGatewayIdentities(
    const std::filesystem::path& pki_dir, const std::vector<std::string>& ids);

}  // namespace tern::sim
