#pragma once

#include <string>
#include <string_view>

#include "source/common/http/headers.h"

namespace mcproxy::http::upgrade {

// One shape for a WebSocket handshake between the codecs, whatever the client and the backend
// speak: HTTP/1.1's (RFC 6455 §4). A request is `:method GET` with `upgrade: websocket` and a
// `sec-websocket-key`; the backend's acceptance is `:status 101` with `upgrade: websocket` and
// `sec-websocket-accept`. The HTTP/1.1 codecs keep those fields (and write `connection: upgrade`
// themselves); the HTTP/2 codecs translate to and from RFC 8441's extended CONNECT
// (`:method CONNECT`, `:protocol websocket`, answered by a 2xx). After the handshake the
// stream's body, both ways, is the tunnelled bytes.

// The upgrade a request asks for, lower-cased ("websocket"); "" when none.
std::string requested(const HeaderMap& request);

// An HTTP/2 request with `:protocol` (extended CONNECT) in the shared shape, with a fresh
// Sec-WebSocket-Key (HTTP/2 clients send none). False (nothing changed) when it is not one.
bool fromExtendedConnect(HeaderMap& request);
// The shared shape as an extended CONNECT for an HTTP/2 backend; returns the Sec-WebSocket-Key
// it took out (the 101 made from the backend's 2xx must carry its accept value).
std::string toExtendedConnect(HeaderMap& request);
// A backend's answer to an upgrade, for an HTTP/2 client: 101 becomes 200; the HTTP/1.1
// handshake fields go.
void responseForExtendedConnect(HeaderMap& response);
// An HTTP/2 backend's 2xx to an extended CONNECT in the shared shape (101 with the accept value
// for `key`); other statuses stay as they are.
void responseFromExtendedConnect(HeaderMap& response, std::string_view key);

// RFC 6455 §4.2.2: base64(SHA-1(key + the protocol's GUID)).
std::string webSocketAccept(std::string_view key);

}  // namespace mcproxy::http::upgrade
