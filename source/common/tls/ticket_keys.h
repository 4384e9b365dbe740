#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>

namespace mcproxy::tls {

// Session-ticket keys for every server context of the process, so that a ticket one worker
// issued resumes on any other, and on the contexts of a later snapshot (a certificate renewed,
// a route added). Nothing is stored or shared between threads but one secret drawn at start:
// the keys of each hour are derived from it (HMAC-SHA512 of the hour's number under the
// secret), so keys rotate every hour with no timer and no lock. A key's name is a random prefix
// of the process and the hour: a ticket is accepted in the hour it was issued and the next (then
// it is renewed); older ones, and those of an earlier process, get a full handshake. Tickets are
// AES-256-CBC with an HMAC-SHA256, as OpenSSL's own.
class TicketKeys {
 public:
  static constexpr std::chrono::seconds kRotation{3600};

  // Makes `ctx` issue and accept tickets under the process's keys.
  static void install(SSL_CTX* ctx);

  struct Key {
    unsigned char name[16];  // the process's prefix (8 bytes), then the hour (big-endian)
    unsigned char hmac[32];
    unsigned char aes[32];
  };
  // The key of rotation period `epoch` (seconds since the Unix epoch / kRotation).
  static Key derive(int64_t epoch);
};

}  // namespace mcproxy::tls
