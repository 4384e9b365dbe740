#pragma once

#include <nghttp2/nghttp2.h>

#include <string>

namespace mcproxy::http::http2 {

// Appends the frames `session` has to send to `out` until it holds about `max` bytes. False
// when the session failed (a fatal nghttp2 error).
bool produceFrames(nghttp2_session* session, std::string& out, size_t max);

// A session's whole-connection receive window: large, so that one slow stream's window (which
// flow control holds per stream) does not stall the others.
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;

}  // namespace mcproxy::http::http2
