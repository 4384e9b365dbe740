#pragma once

#include <memory>
#include <string>

#include "source/common/module/module.h"
#include "source/common/stats/stats.h"

namespace mcproxy::module {

enum class FilterKind { kNetwork, kHttp };

// Compiles the typed config of a module filter (mcproxy.filters.network.module or
// mcproxy.filters.http.module): finds `module_name` among `modules`, checks that it provides the
// filter kind, and runs its config_new with `filter_name` and `config`. Throws
// config::ConfigError at `field_path`: an unknown module, a missing hook (named), or the
// module's own reason for refusing the config.
std::shared_ptr<const FilterConfig> makeFilterConfig(
    FilterKind kind, const ModuleSet* modules, stats::Store& stats, const std::string& field_path,
    const std::string& module_name, const std::string& filter_name, const std::string& config);

}  // namespace mcproxy::module
