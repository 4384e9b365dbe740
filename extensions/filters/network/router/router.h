#pragma once

#include "source/common/network/filter.h"
#include "source/snapshot/snapshot.h"

namespace mcproxy::extensions::router {

// Picks the route for the SNI that tls_inspector recorded (exact, longest wildcard, listener
// default) and stores it in StreamInfo for the terminal filter. No route closes the connection.
class RouterFilter : public network::ReadFilter {
 public:
  explicit RouterFilter(const snapshot::CompiledListener& listener) : listener_(listener) {}

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  network::FilterStatus onNewConnection() override { return network::FilterStatus::kContinue; }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;

 private:
  const snapshot::CompiledListener& listener_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
};

}  // namespace mcproxy::extensions::router
