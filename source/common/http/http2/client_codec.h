#pragma once

#include <nghttp2/nghttp2.h>

#include <memory>
#include <vector>

#include "source/common/http/codec.h"
#include "source/common/http/stream_table.h"

namespace mcproxy::http::http2 {

// HTTP/2 client side of a backend connection (h2c with prior knowledge, or h2 over TLS): many
// streams at once. Request bodies go out as the backend's flow control allows; response bodies
// open the backend's window only as each stream's owner consumes them.
class ClientCodec : public http::ClientCodec {
 public:
  ClientCodec(ClientCodecCallbacks& callbacks, uint32_t stream_window_bytes);
  ~ClientCodec() override;

  Stream& newStream(StreamCallbacks& callbacks) override;
  bool receive(const char* data, size_t len) override;
  void produce(std::string& out, size_t max) override;
  size_t activeStreams() const override { return streams_.size() + unsubmitted_.size(); }
  bool acceptsStreams() const override;
  bool exhausted() const override;
  bool finished() const override;
  bool ping() override;
  void onConnectionEnd(StreamEndReason reason, std::string_view detail) override;
  std::string_view protocol() const override { return "HTTP/2"; }

 private:
  class ClientStream;
  static nghttp2_session_callbacks* sessionCallbacks();
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunkRecv(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readRequestBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                                 nghttp2_data_source*, void*);
  ClientStream* find(int32_t id);
  // Streams whose request could not be submitted, ended from produce() rather than from inside
  // their owner's call.
  void endFailedSubmits();
  void forget(ClientStream& stream);

  ClientCodecCallbacks& callbacks_;
  nghttp2_session* session_ = nullptr;
  StreamTable<std::unique_ptr<ClientStream>> streams_;      // submitted, by stream id
  std::vector<std::unique_ptr<ClientStream>> unsubmitted_;  // made, headers not encoded yet
  std::vector<std::unique_ptr<ClientStream>> failed_submits_;
  bool failed_ = false;
  bool ended_ = false;
};

}  // namespace mcproxy::http::http2
