#pragma once

#include <chrono>
#include <memory>

#include "source/common/event/dispatcher.h"
#include "source/common/network/cidr.h"
#include "source/common/network/filter.h"

namespace mcproxy::extensions::proxy_protocol {

struct ProxyProtocolConfig {
  std::chrono::milliseconds header_timeout;
  bool v2_only;
  network::CidrSet trusted_sources;  // empty: any peer
};

// Reads the PROXY header an earlier tier sent, records the real client address (and the TLVs)
// in StreamInfo, and removes the header from the byte stream, so the next filters see the
// client's own first bytes. Peers outside trusted_sources are refused at accept.
class ProxyProtocolFilter : public network::ReadFilter {
 public:
  explicit ProxyProtocolFilter(const ProxyProtocolConfig& config) : config_(config) {}

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void onConnectionClose() override { timer_.reset(); }

 private:
  const ProxyProtocolConfig& config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  std::unique_ptr<event::Timer> timer_;
  bool done_ = false;
};

}  // namespace mcproxy::extensions::proxy_protocol
