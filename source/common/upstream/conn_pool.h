#pragma once

#include <absl/container/flat_hash_map.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/http/codec.h"
#include "source/common/upstream/endpoint.h"

namespace mcproxy::upstream {

class HttpConnection;

// Where a request gets its upstream stream. ConnPool is the real one; tests of filters that
// reach backends (the router) give them a fake.
class StreamPool {
 public:
  virtual ~StreamPool() = default;
  // A new request stream to `endpoint` for `callbacks`, on a connection that can take it or a
  // new one (written with `proxy_header` first when it is not empty). Failures (refused,
  // timeout, TLS) arrive as callbacks.onStreamEnd() from the event loop, never from here.
  virtual http::Stream& newStream(const Endpoint& endpoint, const PoolSettings& settings,
                                  const std::string& proxy_header,
                                  http::StreamCallbacks& callbacks) = 0;
};

// The one front door to HTTP backends: a request gets a stream on a pooled connection to its
// endpoint, HTTP/2 (multiplexed) or HTTP/1.1 (one exchange per connection at a time), cleartext
// or TLS, whichever the endpoint says. A worker owns one pool shared by its client connections;
// a client connection whose upstream requests carry a PROXY header owns a pool of its own, so
// those connections speak for that one client and end with it.
class ConnPool : public StreamPool {
 public:
  explicit ConnPool(event::Dispatcher& dispatcher);
  ~ConnPool() override;
  ConnPool(const ConnPool&) = delete;
  ConnPool& operator=(const ConnPool&) = delete;

  http::Stream& newStream(const Endpoint& endpoint, const PoolSettings& settings,
                          const std::string& proxy_header,
                          http::StreamCallbacks& callbacks) override;

  // Open connections (for tests and stats).
  size_t connections() const;
  // Closes every connection; their streams end with a connection failure.
  void closeAll();

  // For HttpConnection: it closed or failed, and leaves the pool (destroyed after the current
  // callback).
  void remove(HttpConnection& connection);

 private:
  event::Dispatcher& dispatcher_;
  // By pool key; looked up with a string_view, no string made per request.
  absl::flat_hash_map<std::string, std::vector<std::unique_ptr<HttpConnection>>> connections_;
};

}  // namespace mcproxy::upstream
