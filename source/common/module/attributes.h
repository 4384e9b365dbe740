#pragma once

#include <string>

#include "mcproxy/module_abi.h"
#include "source/common/network/stream_info.h"

namespace mcproxy::module {

// A connection attribute for a module (MCPROXY_ATTR_*), written into `scratch` when it has to
// be made (an address), viewed in place otherwise. NOT_FOUND for one that is not known (yet), or
// that a connection does not have (the HTTP ones).
mcproxy_result connectionAttribute(const network::StreamInfo& connection,
                                   mcproxy_attribute attribute, std::string& scratch,
                                   mcproxy_str* value);

}  // namespace mcproxy::module
