#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <typeinfo>

namespace mcproxy::network {
class CountryLookup;
}

namespace mcproxy::config {

// Objects that outlive the snapshot that made them and are handed on to the snapshots after it
// while they fit (a rate limiter's table must not reset on every reload). Whoever compiles owns
// one: the server for the process's life; the CLI and tests their own. Compiles reach it through
// their factory context; nothing is kept in a hidden static. An object lives as long as a
// snapshot holds it.
class SharedObjects {
 public:
  // `live`: what is compiled will serve traffic in this process, so files it writes (access
  // logs) are opened; otherwise a compile only validates (the CLI, tests).
  explicit SharedObjects(bool live = false) : live_(live) {}
  bool live() const { return live_; }

  // Offline evaluation (mcproxyctl check): every client's country comes from `countries`, and
  // the GeoIP databases a config names are neither opened nor required.
  void setCountryOverride(std::shared_ptr<const network::CountryLookup> countries) {
    countries_ = std::move(countries);
  }
  std::shared_ptr<const network::CountryLookup> countryOverride() const { return countries_; }

  // The T kept under `key` if one is alive and `fits(existing)`; otherwise a new `make()`, kept
  // under `key` for the next compile.
  template <class T>
  std::shared_ptr<T> getOrCreate(const std::string& key, const std::function<bool(const T&)>& fits,
                                 const std::function<std::shared_ptr<T>()>& make) {
    const std::string slot = std::string(typeid(T).name()) + "/" + key;
    std::lock_guard<std::mutex> lock(mutex_);  // compiles are rare; never on the data path
    if (auto existing = std::static_pointer_cast<T>(objects_[slot].lock())) {
      if (fits(*existing)) return existing;
    }
    std::shared_ptr<T> made = make();
    objects_[slot] = made;
    return made;
  }

 private:
  const bool live_;
  std::shared_ptr<const network::CountryLookup> countries_;
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<void>> objects_;
};

}  // namespace mcproxy::config
