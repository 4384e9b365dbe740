#pragma once

#include <http_parser.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "extensions/filters/network/http_connection_manager/proxy_stream.h"
#include "extensions/filters/network/http_connection_manager/upstream_http2.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/address.h"
#include "source/common/network/fd.h"

namespace mcproxy::extensions::http_connection_manager {

class Http1UpstreamPool;

// One HTTP/1.1 connection to a backend: one request at a time, kept alive between requests
// when the backend agrees. Request bodies go out as they arrive (chunked unless the client
// gave a Content-Length); the response is read no faster than the client takes it.
class Http1UpstreamConnection : public UpstreamSide, public event::DeferredDeletable {
 public:
  Http1UpstreamConnection(event::Dispatcher& dispatcher, const network::Address& backend,
                          std::string pool_key, std::string proxy_header,
                          const UpstreamSettings& settings, Http1UpstreamPool& pool);

  void connect();
  // Sends `stream`'s request on this (idle) connection.
  void attach(ProxyStream& stream);
  const std::string& poolKey() const { return pool_key_; }
  bool closed() const { return closed_; }
  // Not closed by either side, as far as a non-blocking peek can tell.
  bool stillOpen() const;

  // UpstreamSide
  void onRequestData(ProxyStream& stream) override;
  void onResponseBodyConsumed(ProxyStream& stream, size_t bytes) override;
  void cancel(ProxyStream& stream) override;

 private:
  static int onHeaderField(http_parser*, const char*, size_t);
  static int onHeaderValue(http_parser*, const char*, size_t);
  static int onHeadersComplete(http_parser*);
  static int onBody(http_parser*, const char*, size_t);
  static int onMessageComplete(http_parser*);

  void onConnected();
  void writeRequestHead();
  void moveRequestBody();
  void onReadable();
  void flush();
  void updateInterest();
  void fail(int status, const std::string& reason);
  void close();

  event::Dispatcher& dispatcher_;
  network::Address backend_;
  std::string backend_key_;
  std::string pool_key_;
  const UpstreamSettings settings_;
  Http1UpstreamPool& pool_;
  network::UniqueFd fd_;
  std::unique_ptr<event::IoEvent> read_event_;
  std::unique_ptr<event::IoEvent> write_event_;
  std::unique_ptr<event::Timer> connect_timer_;
  http_parser parser_{};
  http_parser_settings settings_parser_{};
  std::string pending_out_;
  ProxyStream* stream_ = nullptr;
  bool chunked_request_ = false;
  bool request_done_ = false;
  bool last_was_value_ = false;
  bool keep_alive_ = true;
  bool connected_ = false;
  bool closed_ = false;
};

// The idle HTTP/1.1 connections of one worker, by backend.
class Http1UpstreamPool {
 public:
  static Http1UpstreamPool& forThisThread(event::Dispatcher& dispatcher);
  explicit Http1UpstreamPool(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

  // Sends `stream` on an idle connection to `backend`, or a new one.
  void send(ProxyStream& stream, const router::Route& route, const UpstreamSettings& settings,
            const std::string& proxy_header);
  // The request on `connection` is done and it may carry another.
  void release(Http1UpstreamConnection& connection);
  // `connection` is finished (closed or failed): destroyed after the current callback.
  void remove(Http1UpstreamConnection& connection);

 private:
  event::Dispatcher& dispatcher_;
  std::map<std::string, std::vector<std::unique_ptr<Http1UpstreamConnection>>> idle_;
  std::vector<std::unique_ptr<Http1UpstreamConnection>> busy_;
};

}  // namespace mcproxy::extensions::http_connection_manager
