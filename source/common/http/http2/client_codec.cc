#include "source/common/http/http2/client_codec.h"

#include <algorithm>

#include "source/common/http/http2/session.h"
#include "source/common/http/http2/stream_base.h"
#include "source/common/http/nghttp2_headers.h"
#include "source/common/http/nghttp2_memory.h"
#include "source/common/http/upgrade.h"
#include "source/common/logging/logger.h"

namespace mcproxy::http::http2 {

class ClientCodec::ClientStream : public StreamBase {
 public:
  ClientStream(ClientCodec& codec, StreamCallbacks& owner)
      : StreamBase(codec.session_), codec_(codec) {
    owner_ = &owner;
  }

  void encodeHeaders(const HeaderMap& headers, bool end_stream) override {
    if (headers.get("upgrade") != nullptr) {
      // A WebSocket handshake: RFC 8441's extended CONNECT on this stream.
      HeaderMap request = headers;
      websocket_key_ = upgrade::toExtendedConnect(request);
      extended_connect_ = true;
      submitRequest(request, end_stream);
      return;
    }
    submitRequest(headers, end_stream);
  }
  void submitRequest(const HeaderMap& headers, bool end_stream) {
    headers_encoded_ = true;
    body_complete_ = end_stream;
    const std::string* method = headers.get(":method");
    head_request_ = method != nullptr && *method == "HEAD";
    NvList nv(headers);
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = &ClientCodec::readRequestBody;
    const int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                              end_stream ? nullptr : &provider, this);
    auto self = std::find_if(codec_.unsubmitted_.begin(), codec_.unsubmitted_.end(),
                             [this](const auto& entry) { return entry.get() == this; });
    std::unique_ptr<ClientStream> owned = std::move(*self);
    codec_.unsubmitted_.erase(self);
    if (id < 0) {
      failure_ = nghttp2_strerror(id);
      codec_.failed_submits_.push_back(std::move(owned));
    } else {
      id_ = id;
      codec_.streams_.insert(id, std::move(owned));
    }
    codec_.callbacks_.scheduleFlush();
  }
  void detach() override {
    owner_ = nullptr;
    if (id_ <= 0) {
      codec_.forget(*this);
      return;
    }
    releaseUnacked();
    // An exchange that finished both ways is just forgotten: resetting it would be a pointless
    // RST_STREAM, and backends (nghttp2's own rapid-reset limit among them) answer a run of
    // those with GOAWAY.
    if (codec_.ended_ || (response_complete_ && body_complete_ && body_.empty())) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    codec_.callbacks_.scheduleFlush();
  }
  bool headersEncoded() const override { return headers_encoded_; }
  void onResponseTimeout() override { codec_.callbacks_.onResponseTimeout(); }
  std::optional<std::chrono::steady_clock::time_point> connectionReadyTime() const override {
    return codec_.callbacks_.readyTime();
  }

  void onHeader(std::string_view name, std::string_view value) {
    if (isHopByHop(name, value)) return;  // this hop's business only
    // Until the final response went to the owner, a HEADERS block is the response (nghttp2
    // files a final response that follows a 1xx under NGHTTP2_HCAT_HEADERS); after it, trailers.
    HeaderMap& target = response_started_ ? response_trailers_ : response_headers_;
    if (target.empty()) target.reserve(kUsualHeaderFields);
    target.push_back({std::string(name), std::string(value)});
  }
  void onHeadersDone(bool end_stream) {
    if (!response_started_) {
      if (response_headers_.status() < 200 && !end_stream) {
        response_headers_.clear();  // 100 Continue and friends: wait for the real one
        return;
      }
      response_started_ = true;
      if (extended_connect_)
        upgrade::responseFromExtendedConnect(response_headers_, websocket_key_);
      // A response to HEAD ends with its headers (RFC 9110 §9.3.2). A backend that sends a body
      // anyway (nghttpd's error pages do) gets its stream reset by nghttp2; the client still
      // gets the answer, as from haproxy.
      end_stream = end_stream || head_request_;
      response_complete_ = end_stream;
      if (owner_ != nullptr) owner_->onHeaders(std::move(response_headers_), end_stream);
    } else if (end_stream) {
      response_complete_ = true;
      if (owner_ != nullptr) owner_->onTrailers(std::move(response_trailers_));
    }
  }
  void onBodyEnd() {
    response_complete_ = true;
    if (owner_ != nullptr) owner_->onData({}, true);
  }
  // False when nobody will read it (the caller returns the window at once).
  bool onBody(std::string_view data) {
    if (owner_ == nullptr) return false;
    unacked_ += data.size();
    owner_->onData(data, false);
    return true;
  }
  void onClose(uint32_t error_code) {
    releaseUnacked();
    if (owner_ == nullptr) return;
    const StreamEndReason reason = response_complete_ ? StreamEndReason::kComplete
                                   : error_code == NGHTTP2_REFUSED_STREAM
                                       ? StreamEndReason::kRefused
                                       : StreamEndReason::kRemoteReset;
    std::exchange(owner_, nullptr)
        ->onStreamEnd(reason, response_complete_ ? std::string()
                                                 : std::string("upstream reset the stream (") +
                                                       nghttp2_http2_strerror(error_code) + ")");
  }
  void end(StreamEndReason reason, std::string_view detail) {
    unacked_ = 0;
    if (owner_ != nullptr) std::exchange(owner_, nullptr)->onStreamEnd(reason, detail);
  }
  ssize_t readBody(uint8_t* buf, size_t length, uint32_t* flags) {
    return pull(buf, length, flags);
  }
  const std::string& failure() const { return failure_; }

 private:
  bool canResume() const override { return id_ > 0 && !codec_.ended_; }
  bool canAcknowledge() const override { return id_ > 0 && !codec_.ended_; }
  void scheduleFlush() override { codec_.callbacks_.scheduleFlush(); }

  ClientCodec& codec_;
  bool headers_encoded_ = false;
  HeaderMap response_headers_;
  HeaderMap response_trailers_;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool head_request_ = false;
  bool extended_connect_ = false;
  std::string websocket_key_;  // the client's, for the 101's Sec-WebSocket-Accept
  std::string failure_;
};

ClientCodec::ClientCodec(ClientCodecCallbacks& callbacks, uint32_t stream_window_bytes)
    : callbacks_(callbacks) {
  nghttp2_option* option;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);  // windows open as owners consume
  nghttp2_session_client_new3(&session_, sessionCallbacks(), this, option, lazyPagesAllocator());
  nghttp2_option_del(option);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window_bytes}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

ClientCodec::~ClientCodec() {
  onConnectionEnd(StreamEndReason::kConnectionFailure, "upstream connection closed");
  nghttp2_session_del(session_);
}

nghttp2_session_callbacks* ClientCodec::sessionCallbacks() {
  static nghttp2_session_callbacks* const kCallbacks = [] {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onDataChunkRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &onStreamClose);
    return cbs;
  }();
  return kCallbacks;
}

Stream& ClientCodec::newStream(StreamCallbacks& callbacks) {
  unsubmitted_.push_back(std::make_unique<ClientStream>(*this, callbacks));
  return *unsubmitted_.back();
}

void ClientCodec::forget(ClientStream& stream) {
  auto it = std::find_if(unsubmitted_.begin(), unsubmitted_.end(),
                         [&](const auto& entry) { return entry.get() == &stream; });
  if (it == unsubmitted_.end()) return;
  failed_submits_.push_back(std::move(*it));  // destroyed from produce(), not inside its call
  unsubmitted_.erase(it);
}

ClientCodec::ClientStream* ClientCodec::find(int32_t id) {
  std::unique_ptr<ClientStream>* stream = streams_.find(id);
  return stream != nullptr ? stream->get() : nullptr;
}

bool ClientCodec::acceptsStreams() const {
  if (ended_ || failed_ || !nghttp2_session_check_request_allowed(session_)) return false;
  const uint32_t max =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return activeStreams() < max;
}

bool ClientCodec::exhausted() const {
  return ended_ || failed_ || !nghttp2_session_check_request_allowed(session_);
}

bool ClientCodec::finished() const {
  return failed_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

bool ClientCodec::ping() {
  if (ended_) return false;
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  callbacks_.scheduleFlush();
  return true;
}

int ClientCodec::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                          void* user_data) {
  auto* self = static_cast<ClientCodec*>(user_data);
  ClientStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr || frame->hd.type != NGHTTP2_HEADERS) return 0;
  stream->onHeader({reinterpret_cast<const char*>(name), namelen},
                   {reinterpret_cast<const char*>(value), valuelen});
  return 0;
}

int ClientCodec::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<ClientCodec*>(user_data);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
    case NGHTTP2_GOAWAY:
      self->callbacks_.onCapacityChanged();
      return 0;
    case NGHTTP2_PING:
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) self->callbacks_.onPingAck();
      return 0;
    default:
      break;
  }
  ClientStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    stream->onHeadersDone(end);
  } else if (frame->hd.type == NGHTTP2_DATA && end) {
    stream->onBodyEnd();
  }
  return 0;
}

int ClientCodec::onDataChunkRecv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                 const uint8_t* data, size_t len, void* user_data) {
  auto* self = static_cast<ClientCodec*>(user_data);
  ClientStream* stream = self->find(stream_id);
  if (stream == nullptr || !stream->onBody({reinterpret_cast<const char*>(data), len})) {
    nghttp2_session_consume_connection(session, len);  // a cancelled stream: discard
    if (stream != nullptr) nghttp2_session_consume_stream(session, stream_id, len);
  }
  return 0;
}

int ClientCodec::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                               void* user_data) {
  auto* self = static_cast<ClientCodec*>(user_data);
  std::unique_ptr<ClientStream> stream = self->streams_.take(stream_id);
  if (stream == nullptr) return 0;
  stream->onClose(error_code);
  self->callbacks_.onCapacityChanged();
  return 0;
}

ssize_t ClientCodec::readRequestBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                     uint32_t* flags, nghttp2_data_source* source, void*) {
  return static_cast<ClientStream*>(source->ptr)->readBody(buf, length, flags);
}

bool ClientCodec::receive(const char* data, size_t len) {
  if (ended_) return true;
  const ssize_t rc =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
  if (rc < 0) {
    LOG_DEBUG << "HTTP/2 from upstream: " << nghttp2_strerror(static_cast<int>(rc));
    failed_ = true;
    return false;
  }
  return true;
}

void ClientCodec::endFailedSubmits() {
  std::vector<std::unique_ptr<ClientStream>> failed;
  failed.swap(failed_submits_);
  for (auto& stream : failed) stream->end(StreamEndReason::kConnectionFailure, stream->failure());
}

void ClientCodec::produce(std::string& out, size_t max) {
  endFailedSubmits();
  if (ended_) return;
  if (!produceFrames(session_, out, max)) failed_ = true;
}

void ClientCodec::onConnectionEnd(StreamEndReason reason, std::string_view detail) {
  if (ended_) return;
  ended_ = true;
  std::vector<std::unique_ptr<ClientStream>> all;
  streams_.forEach(
      [&](int32_t, std::unique_ptr<ClientStream>& stream) { all.push_back(std::move(stream)); });
  streams_.clear();
  for (auto& stream : unsubmitted_) all.push_back(std::move(stream));
  unsubmitted_.clear();
  for (auto& stream : failed_submits_) all.push_back(std::move(stream));
  failed_submits_.clear();
  // Ended after the tables are empty: an owner may ask the codec anything from its callback.
  for (auto& stream : all) {
    stream->end(reason, stream->failure().empty() ? detail : std::string_view(stream->failure()));
  }
}

}  // namespace mcproxy::http::http2
