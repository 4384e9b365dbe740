#pragma once

#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;

namespace mcproxy::tls {

// A real ClientHello, as OpenSSL's client writes it (TLS records, ready to send): for route
// tests (mcproxyctl check) that run a listener's filters on what a client would send, tests and
// the load generator. An empty `sni` sends none. `context`: a client context of the caller's
// (extensions, versions); null for OpenSSL's defaults.
std::string writeClientHello(std::string_view sni, const std::vector<std::string>& alpn = {},
                             ssl_ctx_st* context = nullptr);

}  // namespace mcproxy::tls
