#pragma once

#include <nghttp2/nghttp2.h>

#include <memory>
#include <vector>

#include "source/common/http/codec.h"
#include "source/common/http/http2/closed_streams.h"
#include "source/common/http/nghttp2_memory.h"
#include "source/common/http/stream_table.h"

namespace mcproxy::http::http2 {

struct ServerLimits {
  uint32_t max_concurrent_streams;
  uint32_t max_header_list_bytes;
  uint32_t stream_window_bytes;
  // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): clients may open WebSockets with extended
  // CONNECT, which reaches the stream's owner in HTTP/1.1's handshake shape (http/upgrade.h).
  bool enable_connect_protocol = true;
};

// HTTP/2 server side of a client connection (nghttp2). Abuse limits: concurrent streams, header
// list size, HPACK table size, rapid RST_STREAM (CVE-2023-44487) and CONTINUATION floods are
// bounded by nghttp2 options; a stream that breaks a limit is reset, a connection that floods
// gets GOAWAY. Requests start only after the whole received batch is processed, so a stream the
// client resets in the same batch never reaches its owner (no rapid-reset amplification).
// Request bodies open the client's window only as the owner consumes them.
class ServerCodec : public http::ServerCodec {
 public:
  ServerCodec(ServerCodecCallbacks& callbacks, const ServerLimits& limits);
  ~ServerCodec() override;

  bool receive(const char* data, size_t len) override;
  void produce(std::string& out, size_t max) override;
  bool finished() const override;
  void drain() override;
  void releaseIdleMemory() override;
  void abort() override;
  std::string_view protocol() const override { return "HTTP/2"; }

 private:
  class ServerStream;
  static nghttp2_session_callbacks* sessionCallbacks();
  static int onFrameSend(nghttp2_session*, const nghttp2_frame*, void*);
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunkRecv(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readResponseBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                                  nghttp2_data_source*, void*);
  ServerStream* find(int32_t id);
  void startPendingStreams();
  void judgeFrameOnClosedStream(int32_t id, bool headers);
  void recordWindowsBeforeSettings();
  void checkWindowsAfterSettings();

  ServerCodecCallbacks& callbacks_;
  const ServerLimits limits_;
  SessionMemory memory_;  // before session_: the session allocates through it
  nghttp2_session* session_ = nullptr;
  StreamTable<std::unique_ptr<ServerStream>> streams_;
  std::vector<int32_t> pending_starts_;  // requests whose headers completed in this batch
  ClosedStreams closed_streams_;
  FrameHeaderScanner frame_headers_;
  int64_t initial_window_before_settings_ = 0;
  int64_t largest_window_before_settings_ = 0;
  bool failed_ = false;
};

}  // namespace mcproxy::http::http2
