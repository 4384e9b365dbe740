#include "source/common/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <ctime>

namespace mcproxy::tls {
namespace {

// Drawn once, on first use, and never changed: a random prefix that marks this process's ticket
// key names, and the secret keys are derived from, as an HMAC-SHA512 context keyed with it
// (each derivation copies it: no fetch of the algorithm per ticket).
struct ProcessSecret {
  unsigned char prefix[8];
  EVP_MAC_CTX* keyed = nullptr;

  ProcessSecret() {
    unsigned char secret[32];
    RAND_bytes(prefix, sizeof(prefix));
    RAND_bytes(secret, sizeof(secret));
    EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    keyed = EVP_MAC_CTX_new(hmac);
    EVP_MAC_free(hmac);  // the context holds its own reference
    char digest[] = "SHA512";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    EVP_MAC_init(keyed, secret, sizeof(secret), params);
    OPENSSL_cleanse(secret, sizeof(secret));
  }
};

const ProcessSecret& processSecret() {
  static const ProcessSecret secret;  // lives until exit: contexts use it to the end
  return secret;
}

int64_t currentEpoch() { return std::time(nullptr) / TicketKeys::kRotation.count(); }

bool setMacKey(EVP_MAC_CTX* hmac, const TicketKeys::Key& key) {
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  return EVP_MAC_init(hmac, key.hmac, sizeof(key.hmac), params) == 1;
}

// OpenSSL's ticket callback: `encrypt` 1 to issue a ticket (fill name and iv), 0 to open one.
int ticketCallback(SSL*, unsigned char name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                   EVP_MAC_CTX* hmac, int encrypt) {
  const int64_t now = currentEpoch();
  if (encrypt == 1) {
    TicketKeys::Key key = TicketKeys::derive(now);
    std::memcpy(name, key.name, sizeof(key.name));
    const bool ok = RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
                    EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) == 1 &&
                    setMacKey(hmac, key);
    OPENSSL_cleanse(&key, sizeof(key));
    return ok ? 1 : -1;
  }
  // The name says which hour's key sealed it: only ours, of this hour or the last, open.
  if (CRYPTO_memcmp(name, processSecret().prefix, sizeof(ProcessSecret::prefix)) != 0) return 0;
  int64_t epoch = 0;
  for (int i = 8; i < 16; ++i) epoch = (epoch << 8) | name[i];
  if (epoch != now && epoch != now - 1) return 0;  // too old (or from the future): full handshake
  TicketKeys::Key key = TicketKeys::derive(epoch);
  const bool ok = EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) == 1 &&
                  setMacKey(hmac, key);
  OPENSSL_cleanse(&key, sizeof(key));
  if (!ok) return -1;
  return epoch == now ? 1 : 2;  // 2: valid, and a fresh ticket replaces it
}

}  // namespace

TicketKeys::Key TicketKeys::derive(int64_t epoch) {
  Key key;
  const ProcessSecret& secret = processSecret();
  std::memcpy(key.name, secret.prefix, sizeof(secret.prefix));
  for (int i = 0; i < 8; ++i) key.name[8 + i] = static_cast<unsigned char>(epoch >> (56 - 8 * i));
  unsigned char derived[64];
  size_t derived_len = 0;
  EVP_MAC_CTX* mac = EVP_MAC_CTX_dup(secret.keyed);
  EVP_MAC_update(mac, key.name + 8, 8);
  EVP_MAC_final(mac, derived, &derived_len, sizeof(derived));
  EVP_MAC_CTX_free(mac);
  std::memcpy(key.hmac, derived, sizeof(key.hmac));
  std::memcpy(key.aes, derived + sizeof(key.hmac), sizeof(key.aes));
  OPENSSL_cleanse(derived, sizeof(derived));
  return key;
}

void TicketKeys::install(SSL_CTX* ctx) {
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketCallback);
  // A ticket lives for the hour it was issued in and the next.
  SSL_CTX_set_timeout(ctx, static_cast<long>(2 * kRotation.count()));
}

}  // namespace mcproxy::tls
