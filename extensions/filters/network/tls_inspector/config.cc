// Factory and registration of mcproxy.filters.network.tls_inspector.
#include "api/mcproxy/extensions/filters/network/tls_inspector/v1/tls_inspector.pb.h"
#include "extensions/filters/network/tls_inspector/tls_inspector.h"
#include "source/common/config/config_error.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::tls_inspector {
namespace {

using ProtoConfig = mcproxy::extensions::filters::network::tls_inspector::v1::TlsInspector;

constexpr uint32_t kDefaultMaxClientHelloBytes = 16384;
constexpr uint32_t kLargestMaxClientHelloBytes = 65536;
constexpr uint32_t kDefaultHandshakeTimeoutMs = 10000;

class TlsInspectorConfigFactory : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.tls_inspector"; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig& proto, network::FilterFactoryContext& context) const override {
    const uint32_t max_bytes = proto.max_client_hello_bytes() == 0 ? kDefaultMaxClientHelloBytes
                                                                   : proto.max_client_hello_bytes();
    if (max_bytes < 512 || max_bytes > kLargestMaxClientHelloBytes) {
      throw config::ConfigError(context.field_path + ".max_client_hello_bytes",
                                "must be between 512 and 65536");
    }
    auto config = std::make_shared<TlsInspectorConfig>(TlsInspectorConfig{
        max_bytes, std::chrono::milliseconds(proto.handshake_timeout_ms() == 0
                                                 ? kDefaultHandshakeTimeoutMs
                                                 : proto.handshake_timeout_ms())});
    return [config] { return std::make_unique<TlsInspectorFilter>(*config); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(TlsInspectorConfigFactory)

}  // namespace mcproxy::extensions::tls_inspector
