#pragma once

#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include "source/common/buffer/buffer.h"
#include "source/common/http/filter.h"
#include "source/common/http/headers.h"
#include "source/common/http/stream_info.h"

namespace mcproxy::http {

// What a FilterManager drives at the ends of its chain, and what the stream's connection lends
// to its filters.
class FilterManagerCallbacks {
 public:
  virtual ~FilterManagerCallbacks() = default;
  // The response, past every response phase, for the client.
  virtual void encodeHeaders(HeaderMap& headers, bool end_stream) = 0;
  virtual void encodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(HeaderMap& trailers) = 0;
  // The stream must end abnormally: a filter reset it, or an answer came too late.
  virtual void resetStream() = 0;
  // `bytes` of request body left the chain (went on to a backend, or were dropped): the client
  // may send as many more.
  virtual void releaseRequestBody(size_t bytes) = 0;
  virtual bool streamEnded() const = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual event::TimeoutQueue& timeoutQueue() = 0;
  virtual Upstreams& upstreams() = 0;
};

// One request's HTTP filter chain: runs the request phases in chain order and the response
// phases in reverse, holds what a stopped filter holds, and owns the stream's one local-reply
// path. Knows nothing of codecs or sockets (unit-tested with fakes).
class FilterManager {
 public:
  FilterManager(FilterManagerCallbacks& callbacks, StreamInfo& info,
                const std::vector<FilterFactory>& chain);
  ~FilterManager();
  FilterManager(const FilterManager&) = delete;
  FilterManager& operator=(const FilterManager&) = delete;

  // The request, as the client's codec decoded it.
  void decodeHeaders(HeaderMap&& headers, bool end_stream);
  // The request is answered before any filter sees it (the connection manager's own checks);
  // its headers are kept for the access log.
  void refuseRequest(HeaderMap&& headers, int status, std::string_view body,
                     std::string_view detail);
  void decodeData(buffer::Buffer& data, bool end_stream);
  void decodeTrailers(HeaderMap&& trailers);

  // The stream's one local reply, for the connection manager and codec errors. The filters that
  // have seen the request see the response.
  void sendLocalReply(int status, std::string_view body, HeaderMap extra_headers,
                      std::string_view detail);
  // The client took `bytes` of response body.
  void onResponseBodySent(size_t bytes);
  // The log phase: the stream ended.
  void log();

  const HeaderMap* requestHeaders() const { return request_started_ ? &request_headers_ : nullptr; }
  bool responseHeadersSent() const { return response_headers_sent_; }
  bool responseComplete() const { return response_complete_; }
  int size() const { return count_; }

 private:
  // A filter in its place in the chain, and the callbacks it got.
  class ActiveFilter : public FilterCallbacks {
   public:
    void init(FilterManager& manager, int index, const FilterFactory& factory) {
      manager_ = &manager;
      this->index = index;
      phases = factory.phases;
      filter = factory.create(*this);
    }
    bool has(uint32_t phase) const { return (phases & phase) != 0; }

    event::Dispatcher& dispatcher() override { return manager_->callbacks_.dispatcher(); }
    StreamInfo& streamInfo() override { return manager_->info_; }
    const HeaderMap* requestHeaders() const override { return manager_->requestHeaders(); }
    void continueRequest() override {
      if (!ended()) manager_->continueRequest(*this);
    }
    void continueResponse() override {
      if (!ended()) manager_->continueResponse(*this);
    }
    void sendLocalReply(int status, std::string_view body, HeaderMap extra_headers,
                        std::string_view detail) override {
      if (!ended()) {
        manager_->localReply(manager_->responseScope(this), status, body, std::move(extra_headers),
                             detail);
      }
    }
    void resetStream() override {
      if (!ended()) manager_->callbacks_.resetStream();
    }
    bool ended() const override { return manager_->callbacks_.streamEnded(); }
    void encodeResponseHeaders(HeaderMap headers, bool end_stream) override {
      if (!ended()) manager_->produceHeaders(this, std::move(headers), end_stream);
    }
    void encodeResponseBody(buffer::Buffer& body, bool end_stream) override {
      if (!ended()) manager_->produceBody(this, body, end_stream);
    }
    void encodeResponseTrailers(HeaderMap trailers) override {
      if (!ended()) manager_->produceTrailers(this, std::move(trailers));
    }
    void onRequestBodyForwarded(size_t bytes) override {
      if (!ended()) manager_->callbacks_.releaseRequestBody(bytes);
    }
    event::TimeoutQueue& timeoutQueue() override { return manager_->callbacks_.timeoutQueue(); }
    Upstreams& upstreams() override { return manager_->callbacks_.upstreams(); }

    int index = 0;
    uint32_t phases = 0;
    std::unique_ptr<StreamFilter> filter;

   private:
    FilterManager* manager_ = nullptr;
  };
  enum class Event : uint8_t { kNone, kHeaders, kBody, kTrailers };
  // An event a filter stopped: it goes on at filter `next` (request: upwards; response:
  // downwards, -1 past the first filter).
  struct Held {
    Event event = Event::kNone;
    int next = 0;
    buffer::Buffer body;
    bool end = false;
  };
  // What arrived while an event was held; it starts at the chain's beginning once that is let go.
  struct Queued {
    buffer::Buffer body;
    bool end = false;
    bool trailers = false;
    bool any() const { return !body.empty() || end || trailers; }
  };

  bool requestStopped() const;
  void runRequestHeaders(int from);
  void runRequestBody(int from, buffer::Buffer& body, bool end_stream);
  void runRequestTrailers(int from);
  void continueRequest(ActiveFilter& filter);
  void drainRequestQueue();
  // Stops the request phases for good and releases what they held.
  void abandonRequest();

  bool responseStopped(uint64_t generation) const;
  // The highest filter a response from `filter` passes first: itself (from a request phase),
  // or none when a response is already under way in the chain.
  int responseScope(const ActiveFilter* filter) const;
  void startResponse(ActiveFilter* producer, int first);
  void produceHeaders(ActiveFilter* producer, HeaderMap&& headers, bool end_stream);
  void produceBody(ActiveFilter* producer, buffer::Buffer& body, bool end_stream);
  void produceTrailers(ActiveFilter* producer, HeaderMap&& trailers);
  void runResponseHeaders(int from);
  void runResponseBody(int from, buffer::Buffer& body, bool end_stream);
  void runResponseTrailers(int from);
  void continueResponse(ActiveFilter& filter);
  void drainResponseQueue();
  void localReply(int first, int status, std::string_view body, HeaderMap extra_headers,
                  std::string_view detail);

  FilterManagerCallbacks& callbacks_;
  StreamInfo& info_;
  // The chain's wrappers (each owns its filter): inside the manager for a usual chain, one
  // allocation for a longer one.
  static constexpr int kInlineFilters = 4;
  std::array<ActiveFilter, kInlineFilters> inline_filters_;
  std::unique_ptr<ActiveFilter[]> more_filters_;
  ActiveFilter* filters_ = nullptr;
  int count_ = 0;

  HeaderMap request_headers_;
  HeaderMap request_trailers_;
  bool request_end_at_headers_ = false;
  bool request_started_ = false;
  bool request_done_ = false;        // answered or abandoned: later request events are dropped
  int request_headers_reached_ = 0;  // filters the request headers reached
  Held request_held_;
  Queued request_queued_;

  HeaderMap response_headers_;
  HeaderMap response_trailers_;
  bool response_end_at_headers_ = false;
  ActiveFilter* producer_ = nullptr;  // who produces the response (null: a local reply)
  bool response_started_ = false;     // a response entered the chain
  bool response_headers_sent_ = false;
  bool response_complete_ = false;
  uint64_t response_generation_ = 0;  // a local reply that replaces a response starts anew
  Held response_held_;
  Queued response_queued_;
  int response_queued_first_ = -1;  // where a local reply's queued body starts
};

}  // namespace mcproxy::http
