#include "source/common/module/filter_config.h"

#include "source/common/config/config_error.h"

namespace mcproxy::module {

std::shared_ptr<const FilterConfig> makeFilterConfig(
    FilterKind kind, const ModuleSet* modules, stats::Store& stats, const std::string& field_path,
    const std::string& module_name, const std::string& filter_name, const std::string& config) {
  const std::shared_ptr<Module> module = modules != nullptr ? modules->find(module_name) : nullptr;
  if (module == nullptr) {
    throw config::ConfigError(field_path + ".module",
                              "no module named \"" + module_name + "\" in the top-level modules");
  }
  const bool network = kind == FilterKind::kNetwork;
  const std::string missing = network ? module->missingNetworkHook() : module->missingHttpHook();
  if (!missing.empty()) {
    throw config::ConfigError(field_path + ".module",
                              "module \"" + module_name + "\" (" + module->path() + ") has no " +
                                  missing + ": it provides no " + (network ? "network" : "HTTP") +
                                  " filter");
  }
  ConfigContext context{*module, stats, ""};
  auto* abi_context = reinterpret_cast<mcproxy_config_context>(&context);
  void* made = network
                   ? module->network().config_new(abi_context, toAbi(filter_name), toAbi(config))
                   : module->http().config_new(abi_context, toAbi(filter_name), toAbi(config));
  if (made == nullptr) {
    throw config::ConfigError(
        field_path + ".config",
        "module \"" + module_name + "\" refused the config of filter \"" + filter_name +
            "\": " + (context.failure.empty() ? "(it gave no reason)" : context.failure));
  }
  return std::make_shared<FilterConfig>(
      module, made, network ? module->network().config_destroy : module->http().config_destroy);
}

}  // namespace mcproxy::module
