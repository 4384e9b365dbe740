#include "source/common/stream_info/filter_state.h"

namespace mcproxy::stream_info {
namespace {

class StringObject : public FilterState::Object {
 public:
  explicit StringObject(std::string value) : value(std::move(value)) {}
  std::string asString() const override { return value; }
  std::string value;
};

}  // namespace

void FilterState::set(std::string_view name, std::unique_ptr<Object> object) {
  objects_.insert_or_assign(std::string(name), std::move(object));
}

void FilterState::setString(std::string_view name, std::string value) {
  set(name, std::make_unique<StringObject>(std::move(value)));
}

const std::string* FilterState::getString(std::string_view name) const {
  const StringObject* object = get<StringObject>(name);
  return object != nullptr ? &object->value : nullptr;
}

}  // namespace mcproxy::stream_info
