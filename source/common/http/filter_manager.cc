#include "source/common/http/filter_manager.h"

#include <algorithm>

#include "source/common/http/local_reply.h"

namespace mcproxy::http {

FilterManager::FilterManager(FilterManagerCallbacks& callbacks, StreamInfo& info,
                             const std::vector<FilterFactory>& chain)
    : callbacks_(callbacks), info_(info), count_(static_cast<int>(chain.size())) {
  if (count_ <= kInlineFilters) {
    filters_ = inline_filters_.data();
  } else {
    more_filters_ = std::make_unique<ActiveFilter[]>(chain.size());
    filters_ = more_filters_.get();
  }
  for (int i = 0; i < count_; ++i) filters_[i].init(*this, i, chain[i]);
}

FilterManager::~FilterManager() = default;

// ---- request phases, in chain order ----

bool FilterManager::requestStopped() const { return request_done_ || callbacks_.streamEnded(); }

void FilterManager::decodeHeaders(HeaderMap&& headers, bool end_stream) {
  request_headers_ = std::move(headers);
  request_end_at_headers_ = end_stream;
  request_started_ = true;
  if (end_stream) info_.request_complete_time = callbacks_.dispatcher().now();
  runRequestHeaders(0);
}

void FilterManager::refuseRequest(HeaderMap&& headers, int status, std::string_view body,
                                  std::string_view detail) {
  request_headers_ = std::move(headers);
  request_started_ = true;
  localReply(responseScope(nullptr), status, body, {}, detail);
}

void FilterManager::runRequestHeaders(int from) {
  for (int i = from; i < count_; ++i) {
    request_headers_reached_ = std::max(request_headers_reached_, i + 1);
    ActiveFilter& active = filters_[i];
    if (!active.has(kRequestHeadersPhase)) continue;
    const FilterStatus status =
        active.filter->onRequestHeaders(request_headers_, request_end_at_headers_);
    if (requestStopped()) return;
    if (status == FilterStatus::kStopIteration) {
      request_held_.event = Event::kHeaders;
      request_held_.next = i + 1;
      return;
    }
  }
}

void FilterManager::decodeData(buffer::Buffer& data, bool end_stream) {
  info_.request_body_bytes += data.size();
  if (end_stream) info_.request_complete_time = callbacks_.dispatcher().now();
  if (requestStopped()) {
    if (!data.empty()) callbacks_.releaseRequestBody(data.size());
    data.clear();
    return;
  }
  if (request_held_.event != Event::kNone) {
    request_queued_.body.move(data);
    request_queued_.end = request_queued_.end || end_stream;
    return;
  }
  runRequestBody(0, data, end_stream);
}

void FilterManager::runRequestBody(int from, buffer::Buffer& body, bool end_stream) {
  const int terminal = count_ - 1;
  for (int i = from; i < count_; ++i) {
    ActiveFilter& active = filters_[i];
    if (!active.has(kRequestBodyPhase)) continue;
    const size_t before = body.size();
    const FilterStatus status = active.filter->onRequestBody(body, end_stream);
    if (requestStopped()) {
      if (!body.empty()) callbacks_.releaseRequestBody(body.size());
      body.clear();
      return;
    }
    // The terminal filter reports what it forwarded as it goes (onRequestBodyForwarded); bytes
    // any other filter took out of the chain are released at once.
    if (i != terminal && body.size() < before) callbacks_.releaseRequestBody(before - body.size());
    if (status == FilterStatus::kStopIteration) {
      request_held_.event = Event::kBody;
      request_held_.next = i + 1;
      request_held_.body.move(body);
      request_held_.end = end_stream;
      return;
    }
  }
  if (!body.empty()) {  // nobody took it
    callbacks_.releaseRequestBody(body.size());
    body.clear();
  }
}

void FilterManager::decodeTrailers(HeaderMap&& trailers) {
  info_.request_complete_time = callbacks_.dispatcher().now();
  if (requestStopped()) return;
  request_trailers_ = std::move(trailers);
  if (request_held_.event != Event::kNone) {
    request_queued_.trailers = true;
    return;
  }
  runRequestTrailers(0);
}

void FilterManager::runRequestTrailers(int from) {
  for (int i = from; i < count_; ++i) {
    ActiveFilter& active = filters_[i];
    if (!active.has(kRequestTrailersPhase)) continue;
    const FilterStatus status = active.filter->onRequestTrailers(request_trailers_);
    if (requestStopped()) return;
    if (status == FilterStatus::kStopIteration) {
      request_held_.event = Event::kTrailers;
      request_held_.next = i + 1;
      return;
    }
  }
}

void FilterManager::continueRequest(ActiveFilter& filter) {
  if (requestStopped() || request_held_.event == Event::kNone ||
      request_held_.next != filter.index + 1) {
    return;  // nothing of this filter's is held
  }
  Held held = std::move(request_held_);
  request_held_ = Held();
  switch (held.event) {
    case Event::kHeaders:
      runRequestHeaders(held.next);
      break;
    case Event::kBody:
      runRequestBody(held.next, held.body, held.end);
      break;
    case Event::kTrailers:
      runRequestTrailers(held.next);
      break;
    case Event::kNone:
      break;
  }
  drainRequestQueue();
}

void FilterManager::drainRequestQueue() {
  while (!requestStopped() && request_held_.event == Event::kNone && request_queued_.any()) {
    if (!request_queued_.body.empty() || (request_queued_.end && !request_queued_.trailers)) {
      buffer::Buffer body;
      body.move(request_queued_.body);
      const bool end = request_queued_.end && !request_queued_.trailers;
      request_queued_.end = false;
      runRequestBody(0, body, end);
      continue;
    }
    request_queued_.trailers = false;
    request_queued_.end = false;
    runRequestTrailers(0);
  }
}

void FilterManager::abandonRequest() {
  request_done_ = true;
  const size_t held = request_held_.body.size() + request_queued_.body.size();
  request_held_ = Held();
  request_queued_ = Queued();
  if (held > 0) callbacks_.releaseRequestBody(held);
}

// ---- response phases, in reverse chain order ----

bool FilterManager::responseStopped(uint64_t generation) const {
  return generation != response_generation_ || callbacks_.streamEnded();
}

int FilterManager::responseScope(const ActiveFilter* filter) const {
  if (filter == nullptr) return request_headers_reached_ - 1;
  return response_started_ ? -1 : filter->index;
}

void FilterManager::startResponse(ActiveFilter* producer, int first) {
  ++response_generation_;
  response_started_ = true;
  producer_ = producer;
  response_held_ = Held();
  response_held_.next = first;
  response_queued_ = Queued();
}

void FilterManager::produceHeaders(ActiveFilter* producer, HeaderMap&& headers, bool end_stream) {
  if (response_started_) return;  // a local reply answered already
  startResponse(producer, producer->index);
  response_headers_ = std::move(headers);
  response_end_at_headers_ = end_stream;
  runResponseHeaders(producer->index);
}

void FilterManager::produceBody(ActiveFilter* producer, buffer::Buffer& body, bool end_stream) {
  if (producer_ != producer || response_complete_) {
    body.clear();  // not (or no longer) the response being sent
    return;
  }
  if (response_held_.event != Event::kNone) {
    response_queued_.body.move(body);
    response_queued_.end = response_queued_.end || end_stream;
    return;
  }
  runResponseBody(producer->index, body, end_stream);
}

void FilterManager::produceTrailers(ActiveFilter* producer, HeaderMap&& trailers) {
  if (producer_ != producer || response_complete_) return;
  response_trailers_ = std::move(trailers);
  if (response_held_.event != Event::kNone) {
    response_queued_.trailers = true;
    return;
  }
  runResponseTrailers(producer->index);
}

void FilterManager::runResponseHeaders(int from) {
  const uint64_t generation = response_generation_;
  for (int i = from; i >= 0; --i) {
    ActiveFilter& active = filters_[i];
    if (!active.has(kResponseHeadersPhase)) continue;
    const FilterStatus status =
        active.filter->onResponseHeaders(response_headers_, response_end_at_headers_);
    if (responseStopped(generation)) return;
    if (status == FilterStatus::kStopIteration) {
      response_held_.event = Event::kHeaders;
      response_held_.next = i - 1;
      return;
    }
  }
  response_headers_sent_ = true;
  info_.response_status = response_headers_.status();
  if (response_end_at_headers_) response_complete_ = true;
  callbacks_.encodeHeaders(response_headers_, response_end_at_headers_);
}

void FilterManager::runResponseBody(int from, buffer::Buffer& body, bool end_stream) {
  const uint64_t generation = response_generation_;
  for (int i = from; i >= 0; --i) {
    ActiveFilter& active = filters_[i];
    if (!active.has(kResponseBodyPhase)) continue;
    const size_t before = body.size();
    const FilterStatus status = active.filter->onResponseBody(body, end_stream);
    if (responseStopped(generation)) return;
    // Bytes a filter took out will never be sent: the producer may send as many more.
    if (body.size() < before && producer_ != nullptr && &active != producer_) {
      producer_->filter->onResponseBodySent(before - body.size());
    }
    if (status == FilterStatus::kStopIteration) {
      response_held_.event = Event::kBody;
      response_held_.next = i - 1;
      response_held_.body.move(body);
      response_held_.end = end_stream;
      return;
    }
  }
  info_.response_body_bytes += body.size();
  if (end_stream) response_complete_ = true;
  callbacks_.encodeData(body, end_stream);
}

void FilterManager::runResponseTrailers(int from) {
  const uint64_t generation = response_generation_;
  for (int i = from; i >= 0; --i) {
    ActiveFilter& active = filters_[i];
    if (!active.has(kResponseTrailersPhase)) continue;
    const FilterStatus status = active.filter->onResponseTrailers(response_trailers_);
    if (responseStopped(generation)) return;
    if (status == FilterStatus::kStopIteration) {
      response_held_.event = Event::kTrailers;
      response_held_.next = i - 1;
      return;
    }
  }
  response_complete_ = true;
  callbacks_.encodeTrailers(response_trailers_);
}

void FilterManager::continueResponse(ActiveFilter& filter) {
  if (callbacks_.streamEnded() || response_held_.event == Event::kNone ||
      response_held_.next != filter.index - 1) {
    return;
  }
  Held held = std::move(response_held_);
  response_held_ = Held();
  switch (held.event) {
    case Event::kHeaders:
      runResponseHeaders(held.next);
      break;
    case Event::kBody:
      runResponseBody(held.next, held.body, held.end);
      break;
    case Event::kTrailers:
      runResponseTrailers(held.next);
      break;
    case Event::kNone:
      break;
  }
  drainResponseQueue();
}

void FilterManager::drainResponseQueue() {
  const uint64_t generation = response_generation_;
  const int first = producer_ != nullptr ? producer_->index : response_queued_first_;
  while (!responseStopped(generation) && response_held_.event == Event::kNone &&
         response_queued_.any()) {
    if (!response_queued_.body.empty() || (response_queued_.end && !response_queued_.trailers)) {
      buffer::Buffer body;
      body.move(response_queued_.body);
      const bool end = response_queued_.end && !response_queued_.trailers;
      response_queued_.end = false;
      runResponseBody(first, body, end);
      continue;
    }
    response_queued_.trailers = false;
    response_queued_.end = false;
    runResponseTrailers(first);
  }
}

// ---- the one local reply ----

void FilterManager::sendLocalReply(int status, std::string_view body, HeaderMap extra_headers,
                                   std::string_view detail) {
  if (callbacks_.streamEnded()) return;
  localReply(responseScope(nullptr), status, body, std::move(extra_headers), detail);
}

void FilterManager::localReply(int first, int status, std::string_view body,
                               HeaderMap extra_headers, std::string_view detail) {
  info_.local_reply = true;
  info_.response_detail = std::string(detail.empty() ? body : detail);
  while (!info_.response_detail.empty() && info_.response_detail.back() == '\n') {
    info_.response_detail.pop_back();
  }
  if (response_headers_sent_) {
    // Part of a response reached the client: all that can be said now is that it broke.
    callbacks_.resetStream();
    return;
  }
  abandonRequest();
  startResponse(nullptr, first);
  response_queued_first_ = first;
  response_headers_ = localReplyHeaders(status, body.size(), std::move(extra_headers));
  response_end_at_headers_ = body.empty();
  if (!body.empty()) {
    response_queued_.body.append(body);
    response_queued_.end = true;
  }
  runResponseHeaders(first);
  drainResponseQueue();
}

void FilterManager::onResponseBodySent(size_t bytes) {
  if (producer_ != nullptr) producer_->filter->onResponseBodySent(bytes);
}

void FilterManager::log() {
  for (int i = 0; i < count_; ++i) {
    if (filters_[i].has(kLogPhase)) filters_[i].filter->onLog(info_);
  }
}

}  // namespace mcproxy::http
