#pragma once

#include <cstddef>

#include "source/common/http/headers.h"

namespace mcproxy::http {

// The header section of a response the proxy gives itself (an error, a redirect, a maintenance
// page): :status, content-type text/plain (unless `extra` names one), content-length, server,
// then `extra`, whose fields replace the defaults of the same name.
HeaderMap localReplyHeaders(int status, size_t body_size, HeaderMap extra);

}  // namespace mcproxy::http
