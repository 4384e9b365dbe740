#include "extensions/filters/network/http_connection_manager/proxy_stream.h"

namespace mcproxy::extensions::http_connection_manager {

ResponseTimeouts::ResponseTimeouts(event::Dispatcher& dispatcher, std::chrono::milliseconds timeout,
                                   std::function<void(ProxyStream&)> on_timeout)
    : dispatcher_(dispatcher),
      timeout_(timeout),
      on_timeout_(std::move(on_timeout)),
      timer_(dispatcher, [this] { onTimer(); }) {}

ResponseTimeouts::~ResponseTimeouts() {
  while (head_ != nullptr) stop(*head_);
}

void ResponseTimeouts::start(ProxyStream& stream) {
  if (stream.timeouts_ != nullptr) stop(stream);
  stream.timeouts_ = this;
  stream.response_deadline_ = dispatcher_.now() + timeout_;
  stream.timeout_prev_ = tail_;
  stream.timeout_next_ = nullptr;
  (tail_ != nullptr ? tail_->timeout_next_ : head_) = &stream;
  tail_ = &stream;
  if (head_ == &stream) armForHead();
}

void ResponseTimeouts::stop(ProxyStream& stream) {
  if (stream.timeouts_ != this) return;
  (stream.timeout_prev_ != nullptr ? stream.timeout_prev_->timeout_next_ : head_) =
      stream.timeout_next_;
  (stream.timeout_next_ != nullptr ? stream.timeout_next_->timeout_prev_ : tail_) =
      stream.timeout_prev_;
  stream.timeouts_ = nullptr;
  stream.timeout_prev_ = stream.timeout_next_ = nullptr;
  // A later deadline at the head only makes the timer fire early, and onTimer() re-arms.
  if (head_ == nullptr) timer_.cancel();
}

void ResponseTimeouts::armForHead() {
  const auto wait = head_->response_deadline_ - dispatcher_.now();
  timer_.arm(
      std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(wait)));
}

void ResponseTimeouts::onTimer() {
  const auto now = dispatcher_.now();
  while (head_ != nullptr && head_->response_deadline_ <= now) {
    ProxyStream& expired = *head_;
    stop(expired);
    on_timeout_(expired);  // may destroy the stream, and start or stop others
  }
  if (head_ != nullptr) armForHead();
}

}  // namespace mcproxy::extensions::http_connection_manager
