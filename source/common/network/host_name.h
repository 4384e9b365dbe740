#pragma once

#include <string>

namespace mcproxy::network {

// This machine's host name (gethostname), or "localhost" when it has none.
std::string hostName();

}  // namespace mcproxy::network
