#include "source/common/tls/server_context.h"

#include <openssl/err.h>

#include <cstring>

namespace mcproxy::tls {
namespace {

constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// h2 when the client offers it, else http/1.1; a client offering neither gets no ALPN (and
// HTTP/1.1, as a client without ALPN expects).
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  for (const char* wanted : {"h2", "http/1.1"}) {
    const size_t wanted_len = std::strlen(wanted);
    for (unsigned int i = 0; i < inlen; i += 1 + in[i]) {
      if (in[i] == wanted_len && i + 1 + wanted_len <= inlen &&
          std::memcmp(in + i + 1, wanted, wanted_len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(wanted_len);
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string opensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::shared_ptr<SSL_CTX> makeServerContext(const std::string& cert_file,
                                           const std::string& key_file, std::string& error) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    error = opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers);
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Read whole socket buffers, not a record header and then its body: one recv() per batch
  // of records instead of two per record.
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(ctx.get(), reinterpret_cast<const unsigned char*>("mc-proxy"), 8);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    error = "cannot load certificate \"" + cert_file + "\": " + opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "cannot load private key \"" + key_file + "\": " + opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    error = "private key \"" + key_file + "\" does not match certificate \"" + cert_file + "\"";
    ERR_clear_error();
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, nullptr);
  return std::shared_ptr<SSL_CTX>(ctx.release(), SslCtxDeleter());
}

std::shared_ptr<SSL_CTX> makeClientContext(const std::string& ca_file, std::string_view alpn,
                                           std::string& error) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    error = opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  const int loaded = ca_file.empty()
                         ? SSL_CTX_set_default_verify_paths(ctx.get())
                         : SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr);
  if (loaded != 1) {
    error = "cannot load CA bundle \"" + ca_file + "\": " + opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_read_ahead(ctx.get(), 1);  // as for servers: whole buffers, not record by record
  std::string wire(1, static_cast<char>(alpn.size()));
  wire += alpn;
  SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned int>(wire.size()));
  return std::shared_ptr<SSL_CTX>(ctx.release(), SslCtxDeleter());
}

}  // namespace mcproxy::tls
