#include "source/common/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <ctime>

namespace mcproxy::tls {
namespace {

// Drawn once, on first use; immutable after that.
const std::array<unsigned char, 32>& processSecret() {
  static const std::array<unsigned char, 32> secret = [] {
    std::array<unsigned char, 32> bytes{};
    RAND_bytes(bytes.data(), static_cast<int>(bytes.size()));
    return bytes;
  }();
  return secret;
}

void hmacInto(const char* label, int64_t epoch, unsigned char* out, size_t len) {
  unsigned char message[32] = {};
  const size_t label_len = std::strlen(label);
  std::memcpy(message, label, label_len);
  for (int i = 0; i < 8; ++i) message[label_len + i] = static_cast<unsigned char>(epoch >> (8 * i));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const auto& secret = processSecret();
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), message, label_len + 8, digest,
       &digest_len);
  std::memcpy(out, digest, len);
  OPENSSL_cleanse(digest, sizeof(digest));
}

int64_t currentEpoch() { return std::time(nullptr) / TicketKeys::kRotation.count(); }

bool setMacKey(EVP_MAC_CTX* hmac, const TicketKeys::Key& key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  return EVP_MAC_init(hmac, key.hmac, sizeof(key.hmac), params) == 1;
}

// OpenSSL's ticket callback: `encrypt` 1 to issue a ticket (fill name and iv), 0 to open one.
int ticketCallback(SSL*, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                   EVP_MAC_CTX* hmac, int encrypt) {
  const int64_t epoch = currentEpoch();
  if (encrypt == 1) {
    TicketKeys::Key key = TicketKeys::derive(epoch);
    std::memcpy(name, key.name, sizeof(key.name));
    const bool ok = RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
                    EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) == 1 &&
                    setMacKey(hmac, key);
    OPENSSL_cleanse(&key, sizeof(key));
    return ok ? 1 : -1;
  }
  for (int64_t age = 0; age < 2; ++age) {
    TicketKeys::Key key = TicketKeys::derive(epoch - age);
    const bool match = CRYPTO_memcmp(name, key.name, sizeof(key.name)) == 0;
    const bool ok = match &&
                    EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) == 1 &&
                    setMacKey(hmac, key);
    OPENSSL_cleanse(&key, sizeof(key));
    if (match) return ok ? (age == 0 ? 1 : 2) : -1;  // 2: valid, issue a fresh ticket
  }
  return 0;  // unknown or too old: a full handshake
}

}  // namespace

TicketKeys::Key TicketKeys::derive(int64_t epoch) {
  Key key;
  hmacInto("mc-proxy tkt name", epoch, key.name, sizeof(key.name));
  hmacInto("mc-proxy tkt hmac", epoch, key.hmac, sizeof(key.hmac));
  hmacInto("mc-proxy tkt aes", epoch, key.aes, sizeof(key.aes));
  return key;
}

void TicketKeys::install(SSL_CTX* ctx) {
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketCallback);
  // A ticket lives for the hour it was issued in and the next.
  SSL_CTX_set_timeout(ctx, static_cast<long>(2 * kRotation.count()));
}

}  // namespace mcproxy::tls
