#include "source/common/tls/server_context.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "source/common/tls/ticket_keys.h"

namespace mcproxy::tls {
namespace {

std::string tempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// A self-signed certificate and its key in PEM files, made with OpenSSL's API.
struct TestCert {
  std::string cert;
  std::string key;
};

TestCert makeCert(const std::string& name) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                   static_cast<long>(std::hash<std::string>()(name) & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), subject);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  TestCert out{tempDir() + "/" + name + "-" + std::to_string(getpid()) + ".crt",
               tempDir() + "/" + name + "-" + std::to_string(getpid()) + ".key"};
  FILE* f = std::fopen(out.cert.c_str(), "w");
  PEM_write_X509(f, cert.get());
  std::fclose(f);
  f = std::fopen(out.key.c_str(), "w");
  PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  return out;
}

// One TLS 1.3 handshake over memory BIOs between a client offering `session` and `server`.
// Returns the client's session afterwards (its ticket read) and whether it resumed; null when
// the handshake failed.
struct Outcome {
  std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session{nullptr, &SSL_SESSION_free};
  bool resumed = false;
};

Outcome handshake(SSL_CTX* server, SSL_SESSION* session, const TestCert* client_cert = nullptr) {
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (client_cert != nullptr) {
    SSL_CTX_use_certificate_file(client_ctx.get(), client_cert->cert.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(client_ctx.get(), client_cert->key.c_str(), SSL_FILETYPE_PEM);
  }
  SslPtr client(SSL_new(client_ctx.get()));
  SslPtr serving(SSL_new(server));
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(serving.get(), server_bio, server_bio);
  SSL_set_tlsext_host_name(client.get(), "a.test");
  if (session != nullptr) SSL_set_session(client.get(), session);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(serving.get());
  Outcome out;
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    if (!client_done) client_done = SSL_do_handshake(client.get()) == 1;
    if (!server_done) {
      const int rc = SSL_do_handshake(serving.get());
      server_done = rc == 1;
      const int error = SSL_get_error(serving.get(), rc);
      if (!server_done && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return out;
      }
    }
  }
  if (!client_done || !server_done) return out;
  // TLS 1.3 tickets come after the handshake: the server writes, the client reads them.
  SSL_write(serving.get(), "x", 1);
  char byte;
  SSL_read(client.get(), &byte, 1);
  out.resumed = SSL_session_reused(client.get()) == 1;
  out.session.reset(SSL_get1_session(client.get()));
  // A connection freed without close_notify marks its session unusable.
  SSL_shutdown(client.get());
  return out;
}

class ServerContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cert_ = new TestCert(makeCert("a.test"));
    renewed_ = new TestCert(makeCert("a-renewed.test"));
  }
  std::shared_ptr<SSL_CTX> context(const TestCert& cert, const ServerContextOptions& options = {}) {
    std::string error;
    auto made = makeServerContext(cert.cert, cert.key, options, error);
    EXPECT_NE(made, nullptr) << error;
    return made;
  }
  static inline TestCert* cert_ = nullptr;
  static inline TestCert* renewed_ = nullptr;
};

TEST_F(ServerContextTest, ASessionResumesOnAnotherContextOfTheProcess) {
  // Two contexts made apart, as two snapshots (or a renewed certificate) make them: tickets are
  // under the process's keys, not each context's own.
  auto first = context(*cert_);
  Outcome full = handshake(first.get(), nullptr);
  ASSERT_NE(full.session, nullptr);
  EXPECT_FALSE(full.resumed);
  auto second = context(*cert_);
  EXPECT_TRUE(handshake(second.get(), full.session.get()).resumed);
  auto renewed = context(*renewed_);
  EXPECT_TRUE(handshake(renewed.get(), full.session.get()).resumed);
}

TEST_F(ServerContextTest, ASessionDoesNotResumeWhereClientCertificatesAreAskedFor) {
  auto open = context(*cert_);
  Outcome full = handshake(open.get(), nullptr);
  ASSERT_NE(full.session, nullptr);
  ServerContextOptions mtls;
  mtls.client_ca_file = renewed_->cert;
  mtls.client_cert_required = false;
  auto guarded = context(*cert_, mtls);
  Outcome next = handshake(guarded.get(), full.session.get());
  ASSERT_NE(next.session, nullptr);
  EXPECT_FALSE(next.resumed);  // a full handshake, which asks for a certificate
}

TEST_F(ServerContextTest, ARequiredClientCertificateIsChecked) {
  ServerContextOptions mtls;
  mtls.client_ca_file = renewed_->cert;  // the CA is the renewed certificate, self-signed
  auto guarded = context(*cert_, mtls);
  EXPECT_EQ(handshake(guarded.get(), nullptr).session, nullptr);            // none presented
  EXPECT_EQ(handshake(guarded.get(), nullptr, cert_).session, nullptr);     // another issuer
  EXPECT_NE(handshake(guarded.get(), nullptr, renewed_).session, nullptr);  // issued by the CA
}

TEST_F(ServerContextTest, KeysRotateWithTheHour) {
  const TicketKeys::Key a = TicketKeys::derive(1000);
  const TicketKeys::Key again = TicketKeys::derive(1000);
  const TicketKeys::Key b = TicketKeys::derive(1001);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a.aes), 32),
            std::string(reinterpret_cast<const char*>(again.aes), 32));
  EXPECT_NE(std::string(reinterpret_cast<const char*>(a.name), 16),
            std::string(reinterpret_cast<const char*>(b.name), 16));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a.name), 8),  // the process's prefix
            std::string(reinterpret_cast<const char*>(b.name), 8));
  EXPECT_NE(std::string(reinterpret_cast<const char*>(a.aes), 32),
            std::string(reinterpret_cast<const char*>(b.aes), 32));
  EXPECT_NE(std::string(reinterpret_cast<const char*>(a.hmac), 32),
            std::string(reinterpret_cast<const char*>(b.hmac), 32));
}

TEST_F(ServerContextTest, CipherAndGroupNamesAreCheckedOneByOne) {
  EXPECT_TRUE(knownCipherSuite("ECDHE-RSA-AES128-GCM-SHA256"));
  EXPECT_TRUE(knownCipherSuite("TLS_AES_256_GCM_SHA384"));
  EXPECT_FALSE(knownCipherSuite("NOT-A-CIPHER"));
  EXPECT_FALSE(knownCipherSuite("TLS_NOT_A_SUITE"));
  EXPECT_TRUE(knownGroup("X25519"));
  EXPECT_TRUE(knownGroup("P-384"));
  EXPECT_FALSE(knownGroup("P-999"));
}

TEST_F(ServerContextTest, APolicyBoundsTheVersion) {
  ServerContextOptions tls13;
  tls13.policy.min_version = TLS1_3_VERSION;
  auto strict = context(*cert_, tls13);
  SslCtxPtr old_client(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(old_client.get(), TLS1_2_VERSION);
  SslPtr client(SSL_new(old_client.get()));
  SslPtr serving(SSL_new(strict.get()));
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(serving.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(serving.get());
  SSL_do_handshake(client.get());
  EXPECT_NE(SSL_do_handshake(serving.get()), 1);
  EXPECT_EQ(ERR_GET_REASON(ERR_peek_error()), SSL_R_UNSUPPORTED_PROTOCOL);
  ERR_clear_error();
}

}  // namespace
}  // namespace mcproxy::tls
