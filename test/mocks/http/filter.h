#pragma once

// Fakes for HTTP filter tests: what a filter chain sees of its stream and connection, a
// scripted filter, and an upstream pool whose streams a test answers by hand.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/event/timeout_queue.h"
#include "source/common/http/filter.h"
#include "source/common/http/filter_manager.h"
#include "source/common/upstream/conn_pool.h"
#include "source/common/upstream/endpoint.h"

namespace mcproxy::test {

// An upstream stream a test drives: it records the request and the test plays the backend
// through `callbacks`.
class FakeUpstreamStream : public http::Stream {
 public:
  explicit FakeUpstreamStream(http::StreamCallbacks& callbacks) : callbacks(&callbacks) {}
  void encodeHeaders(const http::HeaderMap& encoded, bool end_stream) override {
    headers = encoded;
    headers_encoded = true;
    request_complete = end_stream;
  }
  void encodeData(buffer::Buffer& data, bool end_stream) override {
    body.append(data.view());
    data.clear();
    request_complete = end_stream;
  }
  void encodeTrailers(const http::HeaderMap& encoded) override {
    trailers = encoded;
    request_complete = true;
  }
  void consumeBody(size_t bytes) override { consumed += bytes; }
  void detach() override {
    detached = true;
    callbacks = nullptr;
  }
  bool headersEncoded() const override { return headers_encoded; }
  void onResponseTimeout() override { ++response_timeouts; }

  // The backend's side: ends the stream (its owner must let go of it).
  void end(http::StreamEndReason reason, std::string_view detail) {
    std::exchange(callbacks, nullptr)->onStreamEnd(reason, detail);
  }

  http::StreamCallbacks* callbacks;
  http::HeaderMap headers;
  std::string body;
  http::HeaderMap trailers;
  bool headers_encoded = false;
  bool request_complete = false;
  size_t consumed = 0;
  bool detached = false;
  int response_timeouts = 0;
};

// Hands out FakeUpstreamStreams and records where each request was meant to go.
class FakeStreamPool : public upstream::StreamPool {
 public:
  http::Stream& newStream(const upstream::Endpoint& endpoint, const upstream::PoolSettings&,
                          const std::string& proxy_header,
                          http::StreamCallbacks& callbacks) override {
    addresses.push_back(endpoint.address.toString());
    keys.emplace_back(endpoint.key);
    tls_names.emplace_back(endpoint.tls_server_name);
    proxy_headers.push_back(proxy_header);
    streams.push_back(std::make_unique<FakeUpstreamStream>(callbacks));
    return *streams.back();
  }
  FakeUpstreamStream& last() { return *streams.back(); }

  std::vector<std::string> addresses;
  std::vector<std::string> keys;
  std::vector<std::string> tls_names;
  std::vector<std::string> proxy_headers;
  std::vector<std::unique_ptr<FakeUpstreamStream>> streams;
};

class FakeUpstreams : public http::Upstreams {
 public:
  upstream::StreamPool& pool(bool per_client) override {
    return per_client ? client_pool : shared_pool;
  }
  const upstream::PoolSettings& settings() const override { return pool_settings; }
  std::chrono::milliseconds responseTimeout() const override { return response_timeout; }

  FakeStreamPool shared_pool;
  FakeStreamPool client_pool;
  upstream::PoolSettings pool_settings;
  std::chrono::milliseconds response_timeout{30000};
};

// What a FilterManager drives at its ends, recorded: the client's side of the stream.
class FakeManagerCallbacks : public http::FilterManagerCallbacks {
 public:
  void encodeHeaders(http::HeaderMap& headers, bool end_stream) override {
    response_headers = headers;
    if (end_stream) response_complete = true;
    log.push_back("client.headers" + std::string(end_stream ? "(end)" : ""));
  }
  void encodeData(buffer::Buffer& data, bool end_stream) override {
    response_body.append(data.view());
    data.clear();
    if (end_stream) response_complete = true;
    log.push_back("client.body" + std::string(end_stream ? "(end)" : ""));
  }
  void encodeTrailers(http::HeaderMap& trailers) override {
    response_trailers = trailers;
    response_complete = true;
    log.push_back("client.trailers");
  }
  void resetStream() override {
    resets++;
    ended = true;
  }
  void releaseRequestBody(size_t bytes) override { released += bytes; }
  bool streamEnded() const override { return ended; }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  event::TimeoutQueue& timeoutQueue() override { return timeouts_; }
  http::Upstreams& upstreams() override { return upstreams_; }

  FakeUpstreams& fakeUpstreams() { return upstreams_; }
  // One turn of the event loop (a timer a filter armed fires; blocks until one does).
  void runOnce() { dispatcher_.runOnce(); }
  // Runs the event loop for `time`.
  void runFor(std::chrono::milliseconds time) {
    bool over = false;
    event::Timer stop(dispatcher_, [&over] { over = true; });
    stop.arm(time);
    while (!over) dispatcher_.runOnce();
  }

  std::vector<std::string> log;
  http::HeaderMap response_headers;
  std::string response_body;
  http::HeaderMap response_trailers;
  bool response_complete = false;
  int resets = 0;
  size_t released = 0;
  bool ended = false;

 private:
  event::Dispatcher dispatcher_;
  event::TimeoutQueue timeouts_{dispatcher_};
  FakeUpstreams upstreams_;
};

// An HTTP filter that answers as its test says, writing "<name>.<phase>" to a shared log.
class ScriptedFilter : public http::StreamFilter {
 public:
  using Hook = std::function<http::FilterStatus(ScriptedFilter&)>;

  ScriptedFilter(std::string name, std::vector<std::string>& log, http::FilterCallbacks& callbacks)
      : callbacks(callbacks), name_(std::move(name)), log_(log) {}

  http::FilterStatus onRequestHeaders(http::HeaderMap& headers, bool end_stream) override {
    return run("request_headers", end_stream, request_headers, &headers, nullptr);
  }
  http::FilterStatus onRequestBody(buffer::Buffer& body, bool end_stream) override {
    return run("request_body(" + std::string(body.view()) + ")", end_stream, request_body, nullptr,
               &body);
  }
  http::FilterStatus onRequestTrailers(http::HeaderMap& trailers) override {
    return run("request_trailers", false, request_trailers, &trailers, nullptr);
  }
  http::FilterStatus onResponseHeaders(http::HeaderMap& headers, bool end_stream) override {
    return run("response_headers", end_stream, response_headers, &headers, nullptr);
  }
  http::FilterStatus onResponseBody(buffer::Buffer& body, bool end_stream) override {
    return run("response_body(" + std::string(body.view()) + ")", end_stream, response_body,
               nullptr, &body);
  }
  http::FilterStatus onResponseTrailers(http::HeaderMap& trailers) override {
    return run("response_trailers", false, response_trailers, &trailers, nullptr);
  }
  void onLog(const http::StreamInfo&) override { log_.push_back(name_ + ".log"); }

  http::FilterCallbacks& callbacks;
  Hook request_headers, request_body, request_trailers;
  Hook response_headers, response_body, response_trailers;
  // The headers or body of the phase a hook runs in.
  http::HeaderMap* current_headers = nullptr;
  buffer::Buffer* current_body = nullptr;

 private:
  http::FilterStatus run(const std::string& phase, bool end_stream, const Hook& hook,
                         http::HeaderMap* headers, buffer::Buffer* body) {
    log_.push_back(name_ + "." + phase + (end_stream ? "(end)" : ""));
    current_headers = headers;
    current_body = body;
    return hook ? hook(*this) : http::FilterStatus::kContinue;
  }
  std::string name_;
  std::vector<std::string>& log_;
};

}  // namespace mcproxy::test
