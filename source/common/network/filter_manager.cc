#include "source/common/network/filter_manager.h"

namespace mcproxy::network {

FilterManager::FilterManager(FilterManagerConnection& connection,
                             const std::vector<FilterFactoryCb>& factories)
    : connection_(connection) {
  filters_.reserve(factories.size());
  for (size_t i = 0; i < factories.size(); ++i) {
    filters_.push_back(std::make_unique<ActiveFilter>(*this, i, factories[i]()));
    filters_.back()->filter->initializeReadFilterCallbacks(*filters_.back());
  }
}

FilterManager::~FilterManager() = default;

void FilterManager::start() { runNewConnection(0); }

void FilterManager::runNewConnection(size_t from) {
  for (size_t i = from; i < filters_.size(); ++i) {
    if (closed()) return;
    if (filters_[i]->filter->onNewConnection() == FilterStatus::kStopIteration) return;
  }
  if (closed()) return;
  new_connection_done_ = true;
  if (!connection_.readBuffer().empty() || connection_.readEnded()) runData(0);
  if (!closed() && !transport_taken_) connection_.onFiltersReady();
}

void FilterManager::continueChain(size_t from) {
  if (closed() || transport_taken_) return;
  if (!new_connection_done_) {
    runNewConnection(from);
  } else {
    runData(from);
  }
}

void FilterManager::onData() {
  if (new_connection_done_) runData(0);
}

void FilterManager::runData(size_t from) {
  for (size_t i = from; i < filters_.size(); ++i) {
    if (closed() || transport_taken_) return;
    if (filters_[i]->filter->onData(connection_.readBuffer(), connection_.readEnded()) ==
        FilterStatus::kStopIteration) {
      return;
    }
  }
  if (!closed() && !transport_taken_) {
    connection_.connection().close(CloseReason::kNoTerminalFilter);
  }
}

void FilterManager::takeOverTransport() {
  transport_taken_ = true;
  connection_.onTransportTaken();
}

void FilterManager::drain() {
  for (auto& active : filters_) {
    if (closed()) return;
    active->filter->onDrain();
  }
}

void FilterManager::onClose() {
  for (auto& active : filters_) active->filter->onConnectionClose();
}

}  // namespace mcproxy::network
