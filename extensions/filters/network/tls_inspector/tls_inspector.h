#pragma once

#include <chrono>
#include <memory>

#include "source/common/event/dispatcher.h"
#include "source/common/network/filter.h"

namespace mcproxy::extensions::tls_inspector {

struct TlsInspectorConfig {
  size_t max_client_hello_bytes;
  std::chrono::milliseconds handshake_timeout;
};

// Waits for the complete ClientHello, records SNI and ALPN in StreamInfo, and lets the bytes
// through untouched for the filters after it.
class TlsInspectorFilter : public network::ReadFilter {
 public:
  explicit TlsInspectorFilter(const TlsInspectorConfig& config) : config_(config) {}

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void onConnectionClose() override { timer_.reset(); }

 private:
  const TlsInspectorConfig& config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  std::unique_ptr<event::Timer> timer_;
  bool done_ = false;
};

}  // namespace mcproxy::extensions::tls_inspector
