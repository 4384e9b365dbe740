#pragma once

#include <string>
#include <vector>

namespace mcproxy::network {

// A client certificate the TLS handshake verified (mutual TLS).
struct PeerCertificate {
  std::string sha256;                 // of the DER encoding, lower-case hex
  std::string subject;                // RFC 2253 ("CN=client,O=Example")
  std::vector<std::string> dns_sans;  // subjectAltName dNSName entries
  std::vector<std::string> uri_sans;  // subjectAltName uniformResourceIdentifier entries
  // What goes to the backend in x-forwarded-client-cert, made once per connection (Envoy's
  // format: Hash=...;Subject="...";URI=...;DNS=...).
  std::string forwarded;
};

}  // namespace mcproxy::network
