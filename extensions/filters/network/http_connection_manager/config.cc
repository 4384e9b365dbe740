// Factory and registration of mcproxy.filters.network.http_connection_manager.
#include "api/mcproxy/extensions/filters/network/http_connection_manager/v1/http_connection_manager.pb.h"
#include "extensions/filters/network/http_connection_manager/http_connection_manager.h"
#include "source/common/config/config_error.h"
#include "source/common/network/filter_factory.h"

namespace mcproxy::extensions::http_connection_manager {
namespace {

using ProtoConfig =
    mcproxy::extensions::filters::network::http_connection_manager::v1::HttpConnectionManager;

uint32_t orDefault(uint32_t value, uint32_t fallback) { return value == 0 ? fallback : value; }

class HttpConnectionManagerConfigFactory
    : public network::TypedNetworkFilterConfigFactory<ProtoConfig> {
 public:
  std::string name() const override { return "mcproxy.filters.network.http_connection_manager"; }
  bool terminal() const override { return true; }

 protected:
  network::FilterFactoryCb createTypedFilterFactory(
      const ProtoConfig& proto, network::FilterFactoryContext& context) const override {
    const uint32_t window = orDefault(proto.stream_window_bytes(), 262144);
    if (window < 65535 || window > (1u << 30)) {
      throw config::ConfigError(context.field_path + ".stream_window_bytes",
                                "must be between 65535 and 1073741824");
    }
    const uint32_t streams = orDefault(proto.max_concurrent_streams(), 100);
    if (streams > 10000) {
      throw config::ConfigError(context.field_path + ".max_concurrent_streams", "at most 10000");
    }
    const uint32_t header_bytes = orDefault(proto.max_header_list_bytes(), 65536);
    upstream::PoolSettings upstream;
    upstream.connect_timeout =
        std::chrono::milliseconds(orDefault(proto.connect_timeout_ms(), 5000));
    upstream.idle_timeout =
        std::chrono::milliseconds(orDefault(proto.upstream_idle_timeout_ms(), 60000));
    upstream.ping_timeout =
        std::chrono::milliseconds(orDefault(proto.upstream_ping_timeout_ms(), 5000));
    upstream.stream_window_bytes = window;
    upstream.max_header_bytes = header_bytes;
    auto config = std::make_shared<HttpConnectionManagerConfig>(HttpConnectionManagerConfig{
        upstream, std::chrono::milliseconds(orDefault(proto.response_timeout_ms(), 30000)),
        std::chrono::milliseconds(orDefault(proto.upgrade_idle_timeout_ms(), 300000)),
        std::chrono::milliseconds(orDefault(proto.tls_handshake_timeout_ms(), 10000)),
        http::http2::ServerLimits{streams, header_bytes, window},
        std::chrono::milliseconds(orDefault(proto.idle_timeout_ms(), 300000)),
        std::chrono::milliseconds(orDefault(proto.request_header_timeout_ms(), 10000)),
        TlsStats(context.stats, context.listener_config.name().empty()
                                    ? context.listener_config.address()
                                    : context.listener_config.name())});
    return [config] { return std::make_unique<HttpConnectionManagerFilter>(*config); };
  }
};

}  // namespace

MCPROXY_REGISTER_NETWORK_FILTER(HttpConnectionManagerConfigFactory)

}  // namespace mcproxy::extensions::http_connection_manager
