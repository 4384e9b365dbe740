// libFuzzer target: the TLS ClientHello parser tls_inspector runs on every new connection.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "source/common/tls/client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mcproxy::tls::ClientHelloInfo info;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto result = mcproxy::tls::parseClientHello(input, 16384, info);
  if (result.status == mcproxy::tls::ParseStatus::kDone && info.record_bytes > size) std::abort();
  return 0;
}
