// Factory and registration of mcproxy.filters.network.tcp_proxy.
#include "api/mcproxy/extensions/filters/network/tcp_proxy/v1/tcp_proxy.pb.h"
#include "extensions/filters/network/tcp_proxy/tcp_proxy.h"
#include "source/common/config/config_error.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::tcp_proxy {
namespace {

using ProtoConfig = mcproxy::extensions::filters::network::tcp_proxy::v1::TcpProxy;

constexpr uint32_t kDefaultConnectTimeoutMs = 5000;
constexpr uint32_t kDefaultIdleTimeoutMs = 3600 * 1000;
constexpr uint32_t kDefaultBufferBytes = 65536;

class TcpProxyConfigFactory : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.tcp_proxy"; }
  bool terminal() const override { return true; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig& proto, network::FilterFactoryContext& context) const override {
    const uint32_t buffer_bytes =
        proto.buffer_bytes() == 0 ? kDefaultBufferBytes : proto.buffer_bytes();
    if (buffer_bytes < 4096 || buffer_bytes > 1048576) {
      throw config::ConfigError(context.field_path + ".buffer_bytes",
                                "must be between 4096 and 1048576");
    }
    auto config = std::make_shared<TcpProxyConfig>(TcpProxyConfig{
        std::chrono::milliseconds(proto.connect_timeout_ms() == 0 ? kDefaultConnectTimeoutMs
                                                                  : proto.connect_timeout_ms()),
        std::chrono::milliseconds(proto.idle_timeout_ms() == 0 ? kDefaultIdleTimeoutMs
                                                               : proto.idle_timeout_ms()),
        buffer_bytes, !proto.disable_splice()});
    return [config] { return std::make_unique<TcpProxyFilter>(*config); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(TcpProxyConfigFactory)

}  // namespace mcproxy::extensions::tcp_proxy
