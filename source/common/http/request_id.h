#pragma once

#include <absl/random/bit_gen_ref.h>

#include <string>
#include <string_view>

namespace mcproxy::http {

// A new x-request-id: a random (version 4) UUID, "6f1c2a9e-...".
std::string newRequestId(absl::BitGenRef random);
// Whether an incoming x-request-id is kept: 1 to 128 visible ASCII characters.
bool acceptableRequestId(std::string_view id);

}  // namespace mcproxy::http
