#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "extensions/filters/network/http_connection_manager/proxy_stream.h"
#include "source/common/event/dispatcher.h"
#include "source/common/http/stream_table.h"
#include "source/common/network/address.h"
#include "source/common/network/fd.h"
#include "source/common/router/route.h"
#include "source/common/tls/server_context.h"

namespace mcproxy::extensions::http_connection_manager {

struct UpstreamSettings {
  std::chrono::milliseconds connect_timeout;
  uint32_t stream_window_bytes;
};

class UpstreamPool;

// One HTTP/2 cleartext (h2c, prior knowledge) connection to a backend, shared by many client
// streams of one worker. Request bodies flow with the upstream's flow control; response bodies
// are acknowledged (WINDOW_UPDATE) only as the client side takes them.
class Http2UpstreamConnection : public UpstreamSide, public event::DeferredDeletable {
 public:
  // `proxy_header`, when not empty, is written before anything else: the connection then
  // speaks for that one client only (the pool keys it by the header).
  // With `tls_context`, the connection is HTTP/2 over TLS: SNI and verified name `sni`, ALPN h2.
  Http2UpstreamConnection(event::Dispatcher& dispatcher, const network::Address& backend,
                          std::string pool_key, std::string proxy_header,
                          std::shared_ptr<ssl_ctx_st> tls_context, std::string sni,
                          const UpstreamSettings& settings, UpstreamPool& pool);
  ~Http2UpstreamConnection() override;

  // Connects (non-blocking). Streams attached meanwhile wait for the connection.
  void connect();
  bool acceptsStreams() const;
  void attach(ProxyStream& stream);
  const std::string& poolKey() const { return pool_key_; }

  // UpstreamSide
  void onRequestData(ProxyStream& stream) override;
  void onResponseBodyConsumed(ProxyStream& stream, size_t bytes) override;
  void cancel(ProxyStream& stream) override;

 private:
  static nghttp2_session_callbacks* callbacks();
  static int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int onDataChunkRecv(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int onStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t readRequestBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                                 nghttp2_data_source*, void*);

  void afterTcpConnect();
  void sendProxyHeader();
  void startTls();
  void handshake();
  void onConnected();
  // recv/send, or SSL_read/SSL_write: > 0 bytes, 0 at EOF, -1 with `would_block` set or not.
  ssize_t readSome(char* buffer, size_t len, bool& would_block);
  ssize_t writeSome(const char* data, size_t len, bool& would_block);
  void submit(ProxyStream& stream);
  void onReadable();
  void scheduleFlush();
  void flush();
  // Fails every stream (502/504) and leaves the pool.
  void fail(int status, const std::string& reason);
  ProxyStream* streamById(int32_t id);
  // Returns the bytes `stream` still owes to this connection's flow-control window.
  void releaseUnacked(ProxyStream& stream);

  event::Dispatcher& dispatcher_;
  network::Address backend_;
  std::string backend_key_;
  std::string pool_key_;
  const UpstreamSettings settings_;  // a copy: pooled connections outlive snapshots
  UpstreamPool& pool_;
  enum class State { kConnecting, kProxyHeader, kTlsHandshake, kReady };
  State state_ = State::kConnecting;
  std::shared_ptr<ssl_ctx_st> tls_context_;
  std::string sni_;
  std::string raw_header_;  // a PROXY header that must precede the TLS handshake
  tls::SslPtr ssl_;
  network::UniqueFd fd_;
  std::unique_ptr<event::IoEvent> read_event_;
  std::unique_ptr<event::IoEvent> write_event_;
  std::unique_ptr<event::Timer> connect_timer_;
  std::unique_ptr<event::Timer> flush_timer_;
  nghttp2_session* session_ = nullptr;
  std::string pending_out_;
  bool connected_ = false;
  bool closed_ = false;
  int failure_status_ = 502;  // why it closed, for streams that attach too late
  std::string failure_reason_;
  std::vector<ProxyStream*> waiting_;        // attached before the connection was up
  http::StreamTable<ProxyStream*> streams_;  // by upstream stream id
};

// The upstream connections of one worker, by backend address. Connections are reused and
// multiplexed; a new one opens when every existing one is full or failed.
class UpstreamPool {
 public:
  // The pool of the calling worker thread (connections live on that worker's event loop).
  static UpstreamPool& forThisThread(event::Dispatcher& dispatcher);

  explicit UpstreamPool(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  // A connection to `backend` that can take one more stream. With a `proxy_header`, only
  // connections opened with that same header (the same client) are shared; with TLS, only those
  // for the same SNI.
  Http2UpstreamConnection& connectionFor(const router::Route& route,
                                         const UpstreamSettings& settings,
                                         const std::string& proxy_header, const std::string& sni);
  // A failed or closed connection leaves the pool (destroyed after the current callback).
  void remove(Http2UpstreamConnection& connection);

 private:
  event::Dispatcher& dispatcher_;
  std::map<std::string, std::vector<std::unique_ptr<Http2UpstreamConnection>>> connections_;
};

}  // namespace mcproxy::extensions::http_connection_manager
