#include "test/mocks/http/codec.h"

#include <cstring>

namespace mcproxy::test {
namespace {

Http2Peer* peer(void* user_data) { return static_cast<Http2Peer*>(user_data); }

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  PeerStream& stream = peer(user_data)->streams[frame->hd.stream_id];
  http::HeaderMap& target = frame->headers.cat == NGHTTP2_HCAT_HEADERS && !stream.headers.empty()
                                ? stream.trailers
                                : stream.headers;
  target.push_back({std::string(reinterpret_cast<const char*>(name), namelen),
                    std::string(reinterpret_cast<const char*>(value), valuelen)});
  return 0;
}

int onDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len,
                void* user_data) {
  peer(user_data)->streams[id].body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int onStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* user_data) {
  PeerStream& stream = peer(user_data)->streams[id];
  stream.closed = true;
  stream.reset_code = code;
  return 0;
}

int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
    peer(user_data)->ping_acks++;
  }
  if (frame->hd.type == NGHTTP2_HEADERS) peer(user_data)->streams[frame->hd.stream_id];
  return 0;
}

}  // namespace

Http2Peer::Http2Peer(bool server) {
  nghttp2_session_callbacks* callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &onHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &onStreamClose);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &onFrameRecv);
  if (server) {
    nghttp2_session_server_new(&session_, callbacks, this);
  } else {
    nghttp2_session_client_new(&session_, callbacks, this);
  }
  nghttp2_session_callbacks_del(callbacks);
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
}

Http2Peer::~Http2Peer() { nghttp2_session_del(session_); }

ssize_t Http2Peer::readBody(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                            uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* outgoing = static_cast<Outgoing*>(source->ptr);
  return http::pullBody(session, id, outgoing->body, true, outgoing->trailers, buf, length, flags);
}

int32_t Http2Peer::submit(const http::HeaderMap& headers, std::string body,
                          const http::HeaderMap& trailers, bool end) {
  http::NvList nv(headers);
  auto outgoing = std::make_unique<Outgoing>();
  buffer::Buffer piece;
  piece.append(body);
  outgoing->body.append(piece);
  outgoing->trailers = trailers;
  nghttp2_data_provider provider{};
  provider.source.ptr = outgoing.get();
  provider.read_callback = &readBody;
  const bool has_body = !body.empty() || !trailers.empty();
  if (!end) {
    // An open request: the body goes out, the stream stays open.
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t*,
                                nghttp2_data_source* source, void*) -> ssize_t {
      auto* open = static_cast<Outgoing*>(source->ptr);
      const size_t n = open->body.copyOut(buf, length);
      return n == 0 ? static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED) : static_cast<ssize_t>(n);
    };
  }
  const int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                            has_body || !end ? &provider : nullptr, nullptr);
  outgoing_[id] = std::move(outgoing);
  return id;
}

void Http2Peer::respond(int32_t id, const http::HeaderMap& headers, std::string body,
                        const http::HeaderMap& trailers) {
  http::NvList nv(headers);
  auto outgoing = std::make_unique<Outgoing>();
  buffer::Buffer piece;
  piece.append(body);
  outgoing->body.append(piece);
  outgoing->trailers = trailers;
  nghttp2_data_provider provider{};
  provider.source.ptr = outgoing.get();
  provider.read_callback = &readBody;
  const bool has_body = !body.empty() || !trailers.empty();
  nghttp2_submit_response(session_, id, nv.data(), nv.size(), has_body ? &provider : nullptr);
  outgoing_[id] = std::move(outgoing);
}

void Http2Peer::reset(int32_t id, uint32_t code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
}

void Http2Peer::ping() { nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr); }

std::string Http2Peer::output() {
  std::string out;
  while (true) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return out;
}

bool Http2Peer::input(const std::string& bytes) {
  if (bytes.empty()) return true;
  return nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                  bytes.size()) >= 0;
}

}  // namespace mcproxy::test
