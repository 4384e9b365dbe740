#pragma once

#include <memory>
#include <optional>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/module/filter_timer.h"
#include "source/common/module/module.h"
#include "source/common/network/filter.h"

namespace mcproxy::extensions::module_filter {

// mcproxy.filters.network.module: one instance of a plugin module's network filter on one
// connection. Runs the module's hooks, and is what the module's handle resolves to for its
// callbacks until the instance is destroyed (then the handle is stale: MCPROXY_ERR_ENDED).
class NetworkModuleFilter : public network::ReadFilter, public module::NetworkFilterTarget {
 public:
  explicit NetworkModuleFilter(std::shared_ptr<const module::FilterConfig> config);
  ~NetworkModuleFilter() override;

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override;
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void onConnectionClose() override;

  // module::NetworkFilterTarget
  mcproxy_result getAttribute(mcproxy_attribute attribute, mcproxy_str* value) override;
  mcproxy_result getReadData(mcproxy_str* data) override;
  mcproxy_result continueChain() override;
  mcproxy_result close(std::string_view reason) override;
  mcproxy_result setTimer(uint64_t delay_ms, uint64_t token) override;

 private:
  const module::NetworkHooks& hooks() const { return config_->module().network(); }
  mcproxy_network_filter handle() const {
    return reinterpret_cast<mcproxy_network_filter>(handle_);
  }

  std::shared_ptr<const module::FilterConfig> config_;
  network::ReadFilterCallbacks* callbacks_ = nullptr;
  event::Dispatcher* dispatcher_ = nullptr;
  uintptr_t handle_ = 0;
  void* instance_ = nullptr;
  buffer::Buffer* read_data_ = nullptr;  // the connection's read buffer, once seen
  std::string scratch_;                  // an attribute's value, until the next call
  std::optional<module::FilterTimer> timer_;
  bool closed_ = false;
};

}  // namespace mcproxy::extensions::module_filter
