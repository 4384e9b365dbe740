#pragma once

#include <nghttp2/nghttp2.h>

#include <memory>
#include <vector>

#include "extensions/filters/network/http_connection_manager/downstream_codec.h"
#include "source/common/http/nghttp2_memory.h"
#include "source/common/http/stream_table.h"

namespace mcproxy::extensions::http_connection_manager {

struct Http2Limits {
  uint32_t max_concurrent_streams;
  uint32_t max_header_list_bytes;
  uint32_t stream_window_bytes;
};

// The HTTP/2 server side of a client connection (nghttp2). Abuse limits: concurrent streams,
// header list size, HPACK table size, rapid RST_STREAM (CVE-2023-44487) and CONTINUATION
// floods are bounded by nghttp2 options; a stream that breaks a limit is reset, a connection
// that floods gets GOAWAY.
class Http2DownstreamCodec : public DownstreamCodec, public DownstreamSide {
 public:
  Http2DownstreamCodec(DownstreamConnection& connection, const Http2Limits& limits);
  ~Http2DownstreamCodec() override;

  // DownstreamCodec
  bool receive(const char* data, size_t len) override;
  void produce(std::string& out, size_t max) override;
  bool finished() const override;
  void drain() override;
  void abort() override;
  void releaseIdleMemory() override;

  // DownstreamSide
  void onResponseHeaders(ProxyStream& stream) override;
  void onResponseData(ProxyStream& stream) override;
  void onUpstreamFailure(ProxyStream& stream, int status, const std::string& reason) override;
  void onRequestBodyConsumed(ProxyStream& stream, size_t bytes) override;

 private:
  static nghttp2_session_callbacks* callbacks();
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunkRecv(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readResponseBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                                  nghttp2_data_source*, void*);
  ProxyStream* find(int32_t id);
  void startPendingStreams();
  void submitResponse(ProxyStream& stream);

  DownstreamConnection& connection_;
  const Http2Limits limits_;
  http::SessionMemory memory_;  // before session_: the session allocates through it
  nghttp2_session* session_ = nullptr;
  http::StreamTable<std::unique_ptr<ProxyStream>> streams_;
  std::vector<int32_t> pending_starts_;  // requests whose headers completed in this batch
  bool failed_ = false;
};

}  // namespace mcproxy::extensions::http_connection_manager
