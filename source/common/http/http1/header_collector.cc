#include "source/common/http/http1/header_collector.h"

namespace mcproxy::http::http1 {

bool HeaderCollector::onField(const char* at, size_t len) {
  if (!count(len)) return false;
  if (target_ == nullptr) return true;
  std::string piece(at, len);
  lowerCaseInPlace(piece);
  if (in_name_) {
    target_->back().name += piece;  // the rest of a name the last read cut
  } else {
    if (target_->empty()) target_->reserve(kUsualHeaderFields);
    target_->push_back({std::move(piece), ""});
  }
  in_name_ = true;
  return true;
}

bool HeaderCollector::onValue(const char* at, size_t len) {
  if (!count(len)) return false;
  if (target_ == nullptr || target_->empty()) return true;
  target_->back().value.append(at, len);
  in_name_ = false;
  return true;
}

}  // namespace mcproxy::http::http1
