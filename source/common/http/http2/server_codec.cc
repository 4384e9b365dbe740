#include "source/common/http/http2/server_codec.h"

#include <algorithm>

#include "source/common/http/http2/session.h"
#include "source/common/http/http2/stream_base.h"
#include "source/common/http/nghttp2_headers.h"
#include "source/common/http/upgrade.h"
#include "source/common/logging/logger.h"

namespace mcproxy::http::http2 {
namespace {

constexpr uint32_t kHpackTableBytes = 4096;
// Rapid reset (CVE-2023-44487): at most this many RST_STREAM before the rate limit applies.
constexpr uint64_t kResetBurst = 1000;
constexpr uint64_t kResetsPerSecond = 33;
// CONTINUATION flood: frames allowed after a HEADERS frame.
constexpr size_t kMaxContinuations = 8;

}  // namespace

// One request stream. Until its owner exists (after the batch that carried its HEADERS), what
// arrives for it waits here.
class ServerCodec::ServerStream : public StreamBase {
 public:
  ServerStream(ServerCodec& codec, int32_t id) : StreamBase(codec.session_), codec_(codec) {
    id_ = id;
  }

  void encodeHeaders(const HeaderMap& headers, bool end_stream) override {
    headers_encoded_ = true;
    body_complete_ = end_stream;
    if (extended_connect_) {
      HeaderMap response = headers;
      upgrade::responseForExtendedConnect(response);
      submitResponse(response, end_stream);
      return;
    }
    submitResponse(headers, end_stream);
  }
  void submitResponse(const HeaderMap& headers, bool end_stream) {
    NvList nv(headers);
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = &ServerCodec::readResponseBody;
    nghttp2_submit_response(session_, id_, nv.data(), nv.size(), end_stream ? nullptr : &provider);
    codec_.callbacks_.scheduleFlush();
  }
  void detach() override {
    owner_ = nullptr;
    if (body_complete_ && request_complete_) return;
    // A complete response with the request still coming: NO_ERROR asks the client to stop
    // sending (RFC 9113 §8.1). Otherwise the response broke off.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id_,
                              body_complete_ ? NGHTTP2_NO_ERROR : NGHTTP2_INTERNAL_ERROR);
    codec_.callbacks_.scheduleFlush();
  }
  bool headersEncoded() const override { return headers_encoded_; }

  // The batch that carried the request's HEADERS is processed: the owner hears of it, then of
  // what came for it meanwhile.
  void start(StreamCallbacks& owner) {
    started_ = true;
    owner_ = &owner;
    extended_connect_ = has_protocol_ && upgrade::fromExtendedConnect(request_headers_);
    owner_->onHeaders(std::move(request_headers_), end_at_headers_);
    if (owner_ != nullptr && !early_body_.empty()) {
      const bool end = request_complete_ && request_trailers_.empty();
      owner_->onData(early_body_.view(), end);
      early_body_.clear();
      if (end) return;
    }
    if (owner_ != nullptr && !request_trailers_.empty()) {
      owner_->onTrailers(std::move(request_trailers_));
    } else if (owner_ != nullptr && request_complete_ && !end_at_headers_) {
      owner_->onData({}, true);
    }
  }
  void onHeader(std::string_view name, std::string_view value, bool trailers) {
    HeaderMap& target = trailers ? request_trailers_ : request_headers_;
    if (target.empty()) target.reserve(kUsualHeaderFields);
    // nghttp2 lets :protocol through only with SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
    if (!trailers && name == ":protocol") has_protocol_ = true;
    target.push_back({std::string(name), std::string(value)});
  }
  void onRequestHeadersDone(bool end_stream) {
    header_bytes_ = 0;  // trailers count from zero
    end_at_headers_ = end_stream;
    request_complete_ = end_stream;
  }
  void onTrailersDone() {
    request_complete_ = true;
    if (started_ && owner_ != nullptr) owner_->onTrailers(std::move(request_trailers_));
  }
  void onBodyEnd() {
    request_complete_ = true;
    if (started_ && owner_ != nullptr) owner_->onData({}, true);
  }
  // False when nobody will read it (the caller returns the window at once).
  bool onBody(std::string_view data) {
    if (started_ && owner_ == nullptr) return false;
    unacked_ += data.size();
    if (!started_) {
      early_body_.append(data);
    } else {
      owner_->onData(data, false);
    }
    return true;
  }
  // nghttp2 closed the stream; the codec destroys it after this.
  void onClose(uint32_t error_code) {
    releaseUnacked();  // request bytes nobody took: the connection's window gets them back
    if (owner_ == nullptr) return;
    const bool complete =
        error_code == NGHTTP2_NO_ERROR && body_complete_ && body_.empty() && request_complete_;
    std::exchange(owner_, nullptr)
        ->onStreamEnd(complete ? StreamEndReason::kComplete : StreamEndReason::kRemoteReset,
                      nghttp2_http2_strerror(error_code));
  }
  void abort() {
    if (owner_ != nullptr) {
      std::exchange(owner_, nullptr)
          ->onStreamEnd(StreamEndReason::kConnectionFailure, "client connection closed");
    }
  }
  ssize_t readBody(uint8_t* buf, size_t length, uint32_t* flags) {
    return pull(buf, length, flags);
  }
  bool headerBytesExceed(size_t added, size_t limit) {
    header_bytes_ += added;
    return header_bytes_ > limit;
  }

 private:
  bool canResume() const override { return headers_encoded_; }
  bool canAcknowledge() const override { return true; }
  void scheduleFlush() override { codec_.callbacks_.scheduleFlush(); }

  ServerCodec& codec_;
  bool started_ = false;
  HeaderMap request_headers_;
  HeaderMap request_trailers_;
  size_t header_bytes_ = 0;  // RFC 9113 §6.5.2 size of the header list so far
  bool end_at_headers_ = false;
  bool request_complete_ = false;
  buffer::Buffer early_body_;
  bool headers_encoded_ = false;
  bool has_protocol_ = false;      // the request has a :protocol pseudo-header
  bool extended_connect_ = false;  // RFC 8441: a 101 from the backend goes out as 200
};

ServerCodec::ServerCodec(ServerCodecCallbacks& callbacks, const ServerLimits& limits)
    : callbacks_(callbacks), limits_(limits) {
  nghttp2_option* option;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);  // windows open as owners consume
  nghttp2_option_set_max_deflate_dynamic_table_size(option, kHpackTableBytes);
  nghttp2_option_set_stream_reset_rate_limit(option, kResetBurst, kResetsPerSecond);
  nghttp2_option_set_max_continuations(option, kMaxContinuations);
  // Closed streams are kept only for RFC 7540's priority tree, which RFC 9113 deprecated and we
  // do not use; without them, a connection that served requests and went quiet holds no stream
  // state, and its stream map is all zeros (SessionMemory gives that page back).
  nghttp2_option_set_no_closed_streams(option, 1);
  nghttp2_session_server_new3(&session_, sessionCallbacks(), this, option, memory_.allocator());
  nghttp2_option_del(option);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, kHpackTableBytes},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}};
  // The last entry only when WebSockets may go through.
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                          std::size(settings) - (limits_.enable_connect_protocol ? 0 : 1));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

ServerCodec::~ServerCodec() {
  abort();
  nghttp2_session_del(session_);
}

nghttp2_session_callbacks* ServerCodec::sessionCallbacks() {
  static nghttp2_session_callbacks* const kCallbacks = [] {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &onFrameSend);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &onBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onDataChunkRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &onStreamClose);
    return cbs;
  }();
  return kCallbacks;
}

ServerCodec::ServerStream* ServerCodec::find(int32_t id) {
  std::unique_ptr<ServerStream>* stream = streams_.find(id);
  return stream != nullptr ? stream->get() : nullptr;
}

int ServerCodec::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    static_cast<ServerCodec*>(user_data)->closed_streams_.onResetSent(frame->hd.stream_id);
  }
  return 0;
}

int ServerCodec::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<ServerCodec*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  self->closed_streams_.onOpened(frame->hd.stream_id);
  auto stream = std::make_unique<ServerStream>(*self, frame->hd.stream_id);
  self->streams_.insert(frame->hd.stream_id, std::move(stream));
  return 0;
}

int ServerCodec::onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                          void* user_data) {
  auto* self = static_cast<ServerCodec*>(user_data);
  ServerStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  // RFC 9113 §6.5.2 accounting: each field costs its name, value and 32 bytes.
  if (stream->headerBytesExceed(namelen + valuelen + 32, self->limits_.max_header_list_bytes)) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  stream->onHeader({reinterpret_cast<const char*>(name), namelen},
                   {reinterpret_cast<const char*>(value), valuelen},
                   frame->headers.cat != NGHTTP2_HCAT_REQUEST);
  return 0;
}

int ServerCodec::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<ServerCodec*>(user_data);
  if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
    self->checkWindowsAfterSettings();
    return 0;
  }
  ServerStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->onRequestHeadersDone(end);
    self->pending_starts_.push_back(frame->hd.stream_id);
  } else if (frame->hd.type == NGHTTP2_HEADERS && end) {
    stream->onTrailersDone();
  } else if (frame->hd.type == NGHTTP2_DATA && end) {
    stream->onBodyEnd();
  }
  return 0;
}

int ServerCodec::onDataChunkRecv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                 const uint8_t* data, size_t len, void* user_data) {
  auto* self = static_cast<ServerCodec*>(user_data);
  ServerStream* stream = self->find(stream_id);
  if (stream == nullptr || !stream->onBody({reinterpret_cast<const char*>(data), len})) {
    nghttp2_session_consume_connection(session, len);  // nobody will read it
    if (stream != nullptr) nghttp2_session_consume_stream(session, stream_id, len);
  }
  return 0;
}

int ServerCodec::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                               void* user_data) {
  auto* self = static_cast<ServerCodec*>(user_data);
  self->closed_streams_.onClosed(stream_id);
  std::unique_ptr<ServerStream> stream = self->streams_.take(stream_id);
  if (stream != nullptr) stream->onClose(error_code);
  return 0;
}

ssize_t ServerCodec::readResponseBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                      uint32_t* flags, nghttp2_data_source* source, void*) {
  return static_cast<ServerStream*>(source->ptr)->readBody(buf, length, flags);
}

// nghttp2 keeps no closed streams here, so it cannot tell a closed stream from one it never
// saw and drops DATA or HEADERS for either silently. Such a frame, for a stream below the
// highest the client opened, is judged by RFC 9113 §5.1 first, with everything before it fed.
void ServerCodec::judgeFrameOnClosedStream(int32_t id, bool headers) {
  if (id == 0 || id % 2 == 0 || id > closed_streams_.highestOpened() || find(id) != nullptr) {
    return;  // nghttp2's own rules apply (stream 0, idle, even and open streams)
  }
  switch (closed_streams_.judge(id, headers)) {
    case ClosedStreams::Verdict::kIgnore:
      break;
    case ClosedStreams::Verdict::kStreamClosed:
      nghttp2_session_terminate_session(session_, NGHTTP2_STREAM_CLOSED);
      break;
    case ClosedStreams::Verdict::kProtocolError:
      nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
      break;
  }
}

// RFC 9113 §6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE that takes a stream's send window past
// 2^31-1 is a connection error; nghttp2 resets just that stream. So before each SETTINGS frame
// (rare: a client sends one or two) the largest stream window is noted, and checked after it.
void ServerCodec::recordWindowsBeforeSettings() {
  initial_window_before_settings_ =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
  largest_window_before_settings_ = 0;
  streams_.forEach([&](int32_t id, std::unique_ptr<ServerStream>&) {
    largest_window_before_settings_ =
        std::max<int64_t>(largest_window_before_settings_,
                          nghttp2_session_get_stream_remote_window_size(session_, id));
  });
}

void ServerCodec::checkWindowsAfterSettings() {
  const int64_t grown =
      int64_t{nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)} -
      initial_window_before_settings_;
  if (grown > 0 && largest_window_before_settings_ + grown > NGHTTP2_MAX_WINDOW_SIZE) {
    nghttp2_session_terminate_session(session_, NGHTTP2_FLOW_CONTROL_ERROR);
  }
}

bool ServerCodec::receive(const char* data, size_t len) {
  size_t fed = 0;
  ssize_t rc = 0;
  frame_headers_.scan(data, len, [&](size_t offset, uint8_t type, int32_t stream) {
    if (type != NGHTTP2_DATA && type != NGHTTP2_HEADERS && type != NGHTTP2_SETTINGS) return true;
    if (offset > fed) {
      rc = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data + fed),
                                    offset - fed);
      if (rc < 0) return false;
      fed = offset;
    }
    if (type == NGHTTP2_SETTINGS) {
      recordWindowsBeforeSettings();
    } else {
      judgeFrameOnClosedStream(stream, type == NGHTTP2_HEADERS);
    }
    return true;
  });
  if (rc >= 0 && fed < len) {
    rc =
        nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data + fed), len - fed);
  }
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
  callbacks_.scheduleFlush();
  return true;
}

void ServerCodec::startPendingStreams() {
  std::vector<int32_t> starts;
  starts.swap(pending_starts_);
  // A session that stopped reading (it sent a terminating GOAWAY) takes no new work.
  const bool refusing = !nghttp2_session_want_read(session_);
  for (int32_t id : starts) {
    ServerStream* stream = find(id);
    if (stream == nullptr || refusing) continue;  // reset (or refused) before it started
    stream->start(callbacks_.onNewStream(*stream));
  }
}

void ServerCodec::produce(std::string& out, size_t max) {
  if (!produceFrames(session_, out, max)) failed_ = true;
}

bool ServerCodec::finished() const {
  return failed_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

void ServerCodec::drain() {
  // GOAWAY naming the last stream we will answer: streams already open finish, new ones are
  // refused, and the session ends (finished()) when the last open stream closes.
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  callbacks_.scheduleFlush();
}

void ServerCodec::releaseIdleMemory() {
  // Whatever went through the frame buffer was copied out by produce(); with nothing left to
  // send, its bytes are dead.
  if (!nghttp2_session_want_write(session_)) memory_.releaseIdlePages();
}

void ServerCodec::abort() {
  streams_.forEach([](int32_t, std::unique_ptr<ServerStream>& stream) { stream->abort(); });
}

}  // namespace mcproxy::http::http2
