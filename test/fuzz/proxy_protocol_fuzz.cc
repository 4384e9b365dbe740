// libFuzzer target: PROXY protocol v1/v2 headers. The parser must never read out of bounds,
// and a header it accepts must fit in the bytes it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "source/common/proxy_protocol/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mcproxy::proxy_protocol::ProxyHeader header;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto result = mcproxy::proxy_protocol::parse(input, header);
  if (result.status == mcproxy::proxy_protocol::ParseStatus::kDone && header.header_bytes > size) {
    std::abort();
  }
  return 0;
}
