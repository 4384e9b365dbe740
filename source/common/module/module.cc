#include "source/common/module/module.h"

#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_split.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "source/common/tls/digest.h"

namespace mcproxy::module {
namespace {

struct Version {
  int major = 0;
  int minor = 0;
  int patch = 0;
};

bool parseVersion(std::string_view text, Version& out) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(text.data(), text.size()), '.');
  return parts.size() == 3 && absl::SimpleAtoi(parts[0], &out.major) &&
         absl::SimpleAtoi(parts[1], &out.minor) && absl::SimpleAtoi(parts[2], &out.patch) &&
         out.major >= 0 && out.minor >= 0 && out.patch >= 0;
}

template <class F>
void lookup(void* library, const char* symbol, F& hook) {
  hook = reinterpret_cast<F>(dlsym(library, symbol));
}

}  // namespace

bool abiCompatible(std::string_view module_version, std::string_view proxy_version,
                   std::string& why) {
  Version module;
  Version proxy;
  if (!parseVersion(module_version, module)) {
    why = "mcproxy_module_init() returned \"" + std::string(module_version) +
          "\", not an ABI version MAJOR.MINOR.PATCH";
    return false;
  }
  parseVersion(proxy_version, proxy);
  if (module.major != proxy.major || module.minor > proxy.minor) {
    why = "built for module ABI " + std::string(module_version) + ", this mc-proxy has ABI " +
          std::string(proxy_version) + " (the major must match and the minor be at most " +
          std::to_string(proxy.minor) + ")";
    return false;
  }
  return true;
}

absl::StatusOr<std::shared_ptr<Module>> Module::load(const std::string& name,
                                                     const std::string& path,
                                                     const std::string& sha256) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": " + std::strerror(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string content = bytes.str();
  if (!sha256.empty()) {
    const std::string actual = tls::sha256Hex(content);
    if (absl::AsciiStrToLower(sha256) != actual) {
      return absl::InvalidArgumentError(path + ": sha256 is " + actual + ", the config says " +
                                        sha256);
    }
  }
  std::shared_ptr<Module> module(new Module(name, path));
  // A private copy: dlopen() of a path it loaded before returns the old library even after the
  // file was replaced, and the bytes whose digest was checked are the bytes that run.
  module->copy_.reset(::memfd_create(("mcproxy-module-" + name).c_str(), MFD_CLOEXEC));
  if (!module->copy_.valid()) {
    return absl::InternalError(std::string("memfd_create: ") + std::strerror(errno));
  }
  for (size_t written = 0; written < content.size();) {
    const ssize_t n =
        ::write(module->copy_.get(), content.data() + written, content.size() - written);
    if (n <= 0) return absl::InternalError(std::string("memfd write: ") + std::strerror(errno));
    written += static_cast<size_t>(n);
  }
  const std::string copy_path = "/proc/self/fd/" + std::to_string(module->copy_.get());
  // RTLD_NOW: a callback this proxy does not have fails here, naming the symbol, not later.
  module->library_ = dlopen(copy_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (module->library_ == nullptr) {
    std::string error = dlerror();
    const size_t at = error.find(copy_path);  // the memfd's path means nothing to an operator
    if (at != std::string::npos) error.replace(at, copy_path.size(), path);
    return absl::InvalidArgumentError("cannot load " + path + ": " + error);
  }
  using Init = const char* (*)();
  auto init = reinterpret_cast<Init>(dlsym(module->library_, "mcproxy_module_init"));
  if (init == nullptr) {
    return absl::InvalidArgumentError(path +
                                      " exports no mcproxy_module_init: not an mc-proxy module");
  }
  const char* version = init();
  module->abi_version_ = version != nullptr ? version : "";
  std::string why;
  if (!abiCompatible(module->abi_version_, MCPROXY_MODULE_ABI_VERSION, why)) {
    return absl::FailedPreconditionError(path + ": " + why);
  }
  void* library = module->library_;
  NetworkHooks& network = module->network_;
  lookup(library, "mcproxy_network_filter_config_new", network.config_new);
  lookup(library, "mcproxy_network_filter_config_destroy", network.config_destroy);
  lookup(library, "mcproxy_network_filter_new", network.create);
  lookup(library, "mcproxy_network_filter_on_new_connection", network.on_new_connection);
  lookup(library, "mcproxy_network_filter_on_data", network.on_data);
  lookup(library, "mcproxy_network_filter_on_close", network.on_close);
  lookup(library, "mcproxy_network_filter_on_timer", network.on_timer);
  lookup(library, "mcproxy_network_filter_destroy", network.destroy);
  HttpHooks& http = module->http_;
  lookup(library, "mcproxy_http_filter_config_new", http.config_new);
  lookup(library, "mcproxy_http_filter_config_destroy", http.config_destroy);
  lookup(library, "mcproxy_http_filter_new", http.create);
  lookup(library, "mcproxy_http_filter_on_request_headers", http.on_request_headers);
  lookup(library, "mcproxy_http_filter_on_request_body", http.on_request_body);
  lookup(library, "mcproxy_http_filter_on_request_trailers", http.on_request_trailers);
  lookup(library, "mcproxy_http_filter_on_response_headers", http.on_response_headers);
  lookup(library, "mcproxy_http_filter_on_response_body", http.on_response_body);
  lookup(library, "mcproxy_http_filter_on_response_trailers", http.on_response_trailers);
  lookup(library, "mcproxy_http_filter_on_log", http.on_log);
  lookup(library, "mcproxy_http_filter_on_timer", http.on_timer);
  lookup(library, "mcproxy_http_filter_destroy", http.destroy);
  return module;
}

Module::~Module() {
  if (library_ != nullptr) dlclose(library_);
}

std::string Module::missingNetworkHook() const {
  if (network_.config_new == nullptr) return "mcproxy_network_filter_config_new";
  if (network_.config_destroy == nullptr) return "mcproxy_network_filter_config_destroy";
  if (network_.create == nullptr) return "mcproxy_network_filter_new";
  if (network_.destroy == nullptr) return "mcproxy_network_filter_destroy";
  return "";
}

std::string Module::missingHttpHook() const {
  if (http_.config_new == nullptr) return "mcproxy_http_filter_config_new";
  if (http_.config_destroy == nullptr) return "mcproxy_http_filter_config_destroy";
  if (http_.create == nullptr) return "mcproxy_http_filter_new";
  if (http_.destroy == nullptr) return "mcproxy_http_filter_destroy";
  return "";
}

}  // namespace mcproxy::module
