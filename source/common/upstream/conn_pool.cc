#include "source/common/upstream/conn_pool.h"

#include <algorithm>

#include "source/common/upstream/http_connection.h"

namespace mcproxy::upstream {

ConnPool::ConnPool(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

ConnPool::~ConnPool() { closeAll(); }

http::Stream& ConnPool::newStream(const Endpoint& endpoint, const PoolSettings& settings,
                                  const std::string& proxy_header,
                                  http::StreamCallbacks& callbacks) {
  const absl::string_view key(endpoint.key.data(), endpoint.key.size());
  auto found = connections_.find(key);
  if (found != connections_.end()) {
    for (auto& connection : found->second) {
      if (connection->available()) return connection->newStream(callbacks);
    }
  }
  auto& list = found != connections_.end() ? found->second : connections_[key];
  list.push_back(
      std::make_unique<HttpConnection>(dispatcher_, *this, endpoint, settings, proxy_header));
  HttpConnection& connection = *list.back();
  connection.connect();
  return connection.newStream(callbacks);
}

size_t ConnPool::connections() const {
  size_t count = 0;
  for (const auto& [key, list] : connections_) count += list.size();
  return count;
}

void ConnPool::closeAll() {
  auto all = std::move(connections_);
  connections_.clear();
  for (auto& [key, list] : all) {
    for (auto& connection : list) connection->close("connection pool closed");
  }
}

void ConnPool::remove(HttpConnection& connection) {
  auto it = connections_.find(connection.poolKey());
  if (it == connections_.end()) return;
  auto& list = it->second;
  auto entry = std::find_if(list.begin(), list.end(),
                            [&](const auto& owned) { return owned.get() == &connection; });
  if (entry == list.end()) return;
  dispatcher_.deferredDelete(std::move(*entry));
  list.erase(entry);
  if (list.empty()) connections_.erase(it);
}

}  // namespace mcproxy::upstream
