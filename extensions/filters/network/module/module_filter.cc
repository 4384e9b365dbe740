#include "extensions/filters/network/module/module_filter.h"

#include "source/common/module/attributes.h"

namespace mcproxy::extensions::module_filter {

NetworkModuleFilter::NetworkModuleFilter(std::shared_ptr<const module::FilterConfig> config)
    : config_(std::move(config)) {}

NetworkModuleFilter::~NetworkModuleFilter() {
  timer_.reset();
  if (instance_ != nullptr) hooks().destroy(instance_);
  // After destroy: the module's handle no longer resolves, whatever it keeps.
  if (handle_ != 0) dispatcher_->handles().release(handle_);
}

void NetworkModuleFilter::initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) {
  callbacks_ = &callbacks;
  dispatcher_ = &callbacks.connection().dispatcher();
  handle_ = dispatcher_->handles().acquire(static_cast<module::NetworkFilterTarget*>(this),
                                           module::kNetworkFilterHandle);
  instance_ = hooks().create(config_->get(), handle());
}

network::FilterStatus NetworkModuleFilter::onNewConnection() {
  if (hooks().on_new_connection == nullptr || instance_ == nullptr) {
    return network::FilterStatus::kContinue;
  }
  return hooks().on_new_connection(instance_, handle()) == MCPROXY_STOP
             ? network::FilterStatus::kStopIteration
             : network::FilterStatus::kContinue;
}

network::FilterStatus NetworkModuleFilter::onData(buffer::Buffer& data, bool end_stream) {
  read_data_ = &data;
  if (hooks().on_data == nullptr || instance_ == nullptr) return network::FilterStatus::kContinue;
  return hooks().on_data(instance_, handle(), data.size(), end_stream ? 1 : 0) == MCPROXY_STOP
             ? network::FilterStatus::kStopIteration
             : network::FilterStatus::kContinue;
}

void NetworkModuleFilter::onConnectionClose() {
  closed_ = true;
  read_data_ = nullptr;
  if (timer_) timer_->cancel();
  if (hooks().on_close == nullptr || instance_ == nullptr) return;
  const network::StreamInfo& info = callbacks_->connection().streamInfo();
  const std::string reason = info.close_detail.empty()
                                 ? std::string(network::closeReasonName(info.close_reason))
                                 : info.close_detail;
  hooks().on_close(instance_, handle(), module::toAbi(reason));
}

mcproxy_result NetworkModuleFilter::getAttribute(mcproxy_attribute attribute, mcproxy_str* value) {
  return module::connectionAttribute(callbacks_->connection().streamInfo(), attribute, scratch_,
                                     value);
}

mcproxy_result NetworkModuleFilter::getReadData(mcproxy_str* data) {
  if (closed_) return MCPROXY_ERR_ENDED;
  if (read_data_ == nullptr) {
    *data = {nullptr, 0};
    return MCPROXY_OK;
  }
  *data = module::toAbi(read_data_->view());
  return MCPROXY_OK;
}

mcproxy_result NetworkModuleFilter::continueChain() {
  if (closed_) return MCPROXY_ERR_ENDED;
  callbacks_->continueReading();
  return MCPROXY_OK;
}

mcproxy_result NetworkModuleFilter::close(std::string_view reason) {
  if (closed_) return MCPROXY_ERR_ENDED;
  network::Connection& connection = callbacks_->connection();
  connection.streamInfo().close_detail =
      "module:" + config_->module().name() + ":" + std::string(reason);
  connection.close(network::CloseReason::kModule);
  return MCPROXY_OK;
}

mcproxy_result NetworkModuleFilter::setTimer(uint64_t delay_ms, uint64_t token) {
  if (closed_) return MCPROXY_ERR_ENDED;
  if (hooks().on_timer == nullptr) return MCPROXY_ERR_INVALID;  // nothing to call back
  if (!timer_) {
    timer_.emplace(*dispatcher_, [this](uint64_t fired) {
      if (!closed_) hooks().on_timer(instance_, handle(), fired);
    });
  }
  timer_->set(delay_ms, token);
  return MCPROXY_OK;
}

}  // namespace mcproxy::extensions::module_filter
