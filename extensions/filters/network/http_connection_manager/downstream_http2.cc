#include "extensions/filters/network/http_connection_manager/downstream_http2.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "source/common/http/nghttp2_headers.h"
#include "source/common/http/nghttp2_memory.h"
#include "source/common/logging/logger.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
constexpr uint32_t kHpackTableBytes = 4096;
// Rapid reset (CVE-2023-44487): at most this many RST_STREAM before the rate limit applies.
constexpr uint64_t kResetBurst = 1000;
constexpr uint64_t kResetsPerSecond = 33;
// CONTINUATION flood: frames allowed after a HEADERS frame.
constexpr size_t kMaxContinuations = 8;

}  // namespace

Http2DownstreamCodec::Http2DownstreamCodec(DownstreamConnection& connection,
                                           const Http2Limits& limits)
    : connection_(connection), limits_(limits) {
  nghttp2_option* option;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);  // windows open as the upstream takes data
  nghttp2_option_set_max_deflate_dynamic_table_size(option, kHpackTableBytes);
  nghttp2_option_set_stream_reset_rate_limit(option, kResetBurst, kResetsPerSecond);
  nghttp2_option_set_max_continuations(option, kMaxContinuations);
  // Closed streams are kept only for RFC 7540's priority tree, which RFC 9113 deprecated and we
  // do not use; without them, a connection that served requests and went quiet holds no stream
  // state, and its stream map is all zeros (SessionMemory gives that page back).
  nghttp2_option_set_no_closed_streams(option, 1);
  nghttp2_session_server_new3(&session_, callbacks(), this, option, memory_.allocator());
  nghttp2_option_del(option);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, kHpackTableBytes},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

Http2DownstreamCodec::~Http2DownstreamCodec() {
  abort();
  nghttp2_session_del(session_);
}

nghttp2_session_callbacks* Http2DownstreamCodec::callbacks() {
  static nghttp2_session_callbacks* const kCallbacks = [] {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onDataChunkRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &onStreamClose);
    return cbs;
  }();
  return kCallbacks;
}

ProxyStream* Http2DownstreamCodec::find(int32_t id) {
  std::unique_ptr<ProxyStream>* stream = streams_.find(id);
  return stream != nullptr ? stream->get() : nullptr;
}

int Http2DownstreamCodec::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame,
                                         void* user_data) {
  auto* self = static_cast<Http2DownstreamCodec*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto stream = std::make_unique<ProxyStream>();
  stream->downstream = self;
  stream->downstream_id = frame->hd.stream_id;
  stream->request_headers.reserve(16);  // one allocation for a typical request's headers
  self->streams_.insert(frame->hd.stream_id, std::move(stream));
  return 0;
}

int Http2DownstreamCodec::onHeader(nghttp2_session* session, const nghttp2_frame* frame,
                                   const uint8_t* name, size_t namelen, const uint8_t* value,
                                   size_t valuelen, uint8_t, void* user_data) {
  auto* self = static_cast<Http2DownstreamCodec*>(user_data);
  ProxyStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  stream->request_header_bytes += namelen + valuelen + 32;  // RFC 9113 §6.5.2 accounting
  if (stream->request_header_bytes > self->limits_.max_header_list_bytes) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  http::Header header{std::string(reinterpret_cast<const char*>(name), namelen),
                      std::string(reinterpret_cast<const char*>(value), valuelen)};
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->request_headers.push_back(std::move(header));
  } else {
    stream->request_trailers.push_back(std::move(header));
  }
  return 0;
}

int Http2DownstreamCodec::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame,
                                      void* user_data) {
  auto* self = static_cast<Http2DownstreamCodec*>(user_data);
  ProxyStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->request_header_bytes = 0;  // trailers count from zero
    stream->request_complete = end;
    // Started after the whole received batch is processed (receive()), so a stream the client
    // resets in the same batch never costs the backend anything: the rapid-reset attack
    // (CVE-2023-44487) gets no amplification.
    self->pending_starts_.push_back(frame->hd.stream_id);
  } else if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end) {
    stream->request_complete = true;
    self->connection_.onRequestComplete(*stream);
    if (stream->upstream) stream->upstream->onRequestData(*stream);
  }
  return 0;
}

int Http2DownstreamCodec::onDataChunkRecv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                          const uint8_t* data, size_t len, void* user_data) {
  auto* self = static_cast<Http2DownstreamCodec*>(user_data);
  ProxyStream* stream = self->find(stream_id);
  if (stream == nullptr || stream->response_complete) {
    nghttp2_session_consume_connection(session, len);  // nobody will read it
    if (stream != nullptr) nghttp2_session_consume_stream(session, stream_id, len);
    return 0;
  }
  stream->request_body.append(reinterpret_cast<const char*>(data), len);
  stream->request_unacked += len;
  if (stream->upstream) stream->upstream->onRequestData(*stream);
  return 0;
}

int Http2DownstreamCodec::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t,
                                        void* user_data) {
  auto* self = static_cast<Http2DownstreamCodec*>(user_data);
  ProxyStream* found = self->find(stream_id);
  if (found == nullptr) return 0;
  ProxyStream& stream = *found;
  if (stream.upstream) stream.upstream->cancel(stream);
  if (stream.request_unacked > 0) {
    // Request bytes the upstream never took: the connection's window gets them back.
    nghttp2_session_consume_connection(self->session_, stream.request_unacked);
    stream.request_unacked = 0;
  }
  if (stream.response_started) self->connection_.onRequestFinished(stream);
  self->streams_.take(stream_id);  // destroys the stream
  return 0;
}

ssize_t Http2DownstreamCodec::readResponseBody(nghttp2_session* session, int32_t stream_id,
                                               uint8_t* buf, size_t length, uint32_t* flags,
                                               nghttp2_data_source* source, void*) {
  auto* stream = static_cast<ProxyStream*>(source->ptr);
  // Trailers were stripped of hop-by-hop fields when they arrived.
  const ssize_t n =
      http::pullBody(session, stream_id, stream->response_body, stream->response_complete,
                     stream->response_trailers, buf, length, flags);
  if (n > 0 && stream->upstream) {
    stream->upstream->onResponseBodyConsumed(*stream, static_cast<size_t>(n));
  }
  return n;
}

void Http2DownstreamCodec::submitResponse(ProxyStream& stream) {
  stream.response_started = true;
  // Hop-by-hop fields were dropped when the upstream received the headers.
  http::NvList nv(stream.response_headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = &readResponseBody;
  const bool has_body = !(stream.response_complete && stream.response_body.empty() &&
                          stream.response_trailers.empty());
  nghttp2_submit_response(session_, stream.downstream_id, nv.data(), nv.size(),
                          has_body ? &provider : nullptr);
  connection_.scheduleFlush();
}

void Http2DownstreamCodec::onResponseHeaders(ProxyStream& stream) { submitResponse(stream); }

void Http2DownstreamCodec::onResponseData(ProxyStream& stream) {
  if (!stream.response_started) return;
  nghttp2_session_resume_data(session_, stream.downstream_id);
  connection_.scheduleFlush();
}

void Http2DownstreamCodec::onUpstreamFailure(ProxyStream& stream, int status,
                                             const std::string& reason) {
  stream.stopResponseTimeout();
  connection_.onUpstreamFailed(status);
  if (stream.response_started) {
    // Part of the response went out already: all we can say is that the stream broke.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.downstream_id,
                              NGHTTP2_INTERNAL_ERROR);
    connection_.scheduleFlush();
    return;
  }
  stream.response_headers = {
      {":status", std::to_string(status)}, {"content-type", "text/plain"}, {"server", "mc-proxy"}};
  stream.response_body = reason + "\n";
  stream.response_trailers.clear();
  stream.response_complete = true;
  submitResponse(stream);
}

void Http2DownstreamCodec::onRequestBodyConsumed(ProxyStream& stream, size_t bytes) {
  bytes = std::min(bytes, stream.request_unacked);
  stream.request_unacked -= bytes;
  nghttp2_session_consume(session_, stream.downstream_id, bytes);
  connection_.scheduleFlush();
}

bool Http2DownstreamCodec::receive(const char* data, size_t len) {
  const ssize_t rc =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
  if (rc < 0) {
    LOG_DEBUG << "HTTP/2 from client: " << nghttp2_strerror(static_cast<int>(rc));
    // A fatal error leaves ending the session to us: GOAWAY with the reason, then close.
    const bool flood = rc == NGHTTP2_ERR_FLOODED || rc == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
    nghttp2_session_terminate_session(session_,
                                      flood ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
    failed_ = true;
    return false;
  }
  startPendingStreams();
  connection_.scheduleFlush();
  return true;
}

void Http2DownstreamCodec::startPendingStreams() {
  std::vector<int32_t> starts;
  starts.swap(pending_starts_);
  // A session that stopped reading (it sent a terminating GOAWAY) takes no new work.
  const bool refusing = !nghttp2_session_want_read(session_);
  for (int32_t id : starts) {
    ProxyStream* stream = find(id);
    if (stream == nullptr || refusing) continue;  // reset (or refused) before it started
    connection_.startUpstream(*stream);
  }
}

void Http2DownstreamCodec::produce(std::string& out, size_t max) {
  while (out.size() < max) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) {
      if (n < 0) failed_ = true;
      return;
    }
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
}

bool Http2DownstreamCodec::finished() const {
  return failed_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

void Http2DownstreamCodec::drain() {
  // GOAWAY naming the last stream we will answer: streams already open finish, new ones are
  // refused, and the session ends (finished()) when the last open stream closes.
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  connection_.scheduleFlush();
}

void Http2DownstreamCodec::releaseIdleMemory() {
  // Whatever went through the frame buffer was copied out by produce(); with nothing left to
  // send, its bytes are dead.
  if (!nghttp2_session_want_write(session_)) memory_.releaseIdlePages();
}

void Http2DownstreamCodec::abort() {
  streams_.forEach([](int32_t, std::unique_ptr<ProxyStream>& stream) {
    if (stream->upstream) stream->upstream->cancel(*stream);
  });
}

}  // namespace mcproxy::extensions::http_connection_manager
