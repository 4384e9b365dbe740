#pragma once

#include <nghttp2/nghttp2.h>

#include <vector>

#include "source/common/http/headers.h"

namespace mcproxy::http {

// nghttp2's view of `headers`: pointers into it, so `headers` must outlive the returned vector
// until nghttp2 has copied the fields (nghttp2_submit_* do so before returning).
inline std::vector<nghttp2_nv> toNghttp2(const HeaderList& headers) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(headers.size());
  for (const auto& header : headers) {
    nv.push_back({const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(header.name.data())),
                  const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(header.value.data())),
                  header.name.size(), header.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

}  // namespace mcproxy::http
