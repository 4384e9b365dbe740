#include "source/common/tls/client_hello_writer.h"

#include <openssl/ssl.h>

#include <memory>

namespace mcproxy::tls {

std::string writeClientHello(std::string_view sni, const std::vector<std::string>& alpn,
                             SSL_CTX* context) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> own(
      context == nullptr ? SSL_CTX_new(TLS_client_method()) : nullptr, &SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(context != nullptr ? context : own.get()),
                                                &SSL_free);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);  // ssl owns both
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl.get(), std::string(sni).c_str());
  if (!alpn.empty()) {
    std::string wire;
    for (const auto& protocol : alpn) wire += static_cast<char>(protocol.size()) + protocol;
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get());  // writes the ClientHello, then wants to read
  char* data = nullptr;
  const long len = BIO_get_mem_data(out, &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace mcproxy::tls
