#include "source/common/upstream/health_checker.h"

#include <absl/random/distributions.h>

#include "source/common/grpc/framing.h"
#include "source/common/http/codec.h"
#include "source/common/logging/logger.h"
#include "source/common/network/transport_connection.h"
#include "source/common/proxy_protocol/proxy_protocol.h"
#include "source/common/tls/tls_transport_socket.h"
#include "source/common/upstream/endpoint.h"

namespace mcproxy::upstream {
namespace {

using Kind = HealthCheckSpec::Kind;

// grpc.health.v1.HealthCheckRequest {service = 1}, framed as one gRPC message.
std::string grpcHealthRequest(const std::string& service) {
  std::string message;
  if (!service.empty()) {
    message.push_back(0x0a);  // field 1, length-delimited
    for (size_t length = service.size();; length >>= 7) {
      if (length < 0x80) {
        message.push_back(static_cast<char>(length));
        break;
      }
      message.push_back(static_cast<char>((length & 0x7f) | 0x80));
    }
    message += service;
  }
  return grpc::frameMessage(message);
}

// grpc.health.v1.HealthCheckResponse's status (field 1): SERVING is 1. The message is tiny and
// has that one field; anything else is not SERVING.
bool grpcServing(std::string_view body) {
  const auto header = grpc::frameHeader(body);
  if (!header || header->compressed) return false;
  const std::string_view message = body.substr(5);
  return message.size() >= 2 && message[0] == 0x08 && message[1] == 0x01;
}

}  // namespace

// One endpoint's checks: a probe every interval, a verdict after thresholds in a row.
class HealthChecker::EndpointCheck : public network::TransportCallbacks,
                                     public http::StreamCallbacks {
 public:
  EndpointCheck(HealthChecker& checker, const Cluster& cluster, const ClusterEndpoint& endpoint)
      : checker_(checker),
        cluster_name_(cluster.name()),
        spec_(cluster.settings().health_check),
        address_(endpoint.address),
        address_text_(endpoint.address_text),
        backend_tls_context_(cluster.settings().backend_tls_context),
        http1_(cluster.settings().backend_http1),
        proxy_header_(cluster.settings().send_proxy_protocol
                          ? proxy_protocol::encodeLocal(cluster.settings().proxy_protocol_version)
                          : std::string()),
        state_(endpoint.state),
        healthy_gauge_(endpoint.stats.healthy),
        interval_timer_(checker.dispatcher_, [this] { runCheck(); }),
        timeout_timer_(checker.dispatcher_, [this] { onTimeout(); }) {
    interval_timer_.fireSoon();
  }

  ~EndpointCheck() override {
    stream_.reset();
    if (transport_) transport_->close();
  }

  // The same endpoint in a newer snapshot (its name may resolve elsewhere now).
  void refresh(const ClusterEndpoint& endpoint) { address_ = endpoint.address; }

  // network::TransportCallbacks: tcp {} and tls {} checks.
  void onTransportReady() override {
    transport_->close();
    finish(true, "");
  }
  void onTransportData(const char*, size_t) override {}
  void produceOutput(std::string&, size_t) override {}
  void onTransportEnd(network::TransportEnd end, const std::string& detail) override {
    finish(false, std::string(network::transportEndName(end)) + ": " + detail);
  }

  // http::StreamCallbacks: http {...} and grpc {...} checks.
  void onHeaders(http::HeaderMap&& headers, bool end_stream) override {
    status_ = headers.status();
    if (const std::string* grpc_status = headers.get("grpc-status")) grpc_status_ = *grpc_status;
  }
  void onData(std::string_view data, bool) override {
    if (body_.size() < 1024) body_.append(data.substr(0, 1024 - body_.size()));
  }
  void onTrailers(http::HeaderMap&& trailers) override {
    if (const std::string* grpc_status = trailers.get("grpc-status")) grpc_status_ = *grpc_status;
  }
  void onBodySent(size_t) override {}
  void onStreamEnd(http::StreamEndReason reason, std::string_view detail) override {
    stream_.onEnd();
    if (reason != http::StreamEndReason::kComplete) {
      finish(false, std::string(detail));
      return;
    }
    if (spec_.kind == Kind::kGrpc) {
      if (status_ != 200 || grpc_status_ != "0") {
        finish(false, "HTTP " + std::to_string(status_) + ", grpc-status " +
                          (grpc_status_.empty() ? std::string("missing") : grpc_status_));
      } else {
        finish(grpcServing(body_), grpcServing(body_) ? "" : "not SERVING");
      }
      return;
    }
    const bool passed = spec_.expected_status != 0
                            ? status_ == static_cast<int>(spec_.expected_status)
                            : status_ >= 200 && status_ < 300;
    finish(passed, passed ? "" : "answered " + std::to_string(status_));
  }

 private:
  void runCheck() {
    in_progress_ = true;
    ++checker_.checks_started_;
    timeout_timer_.arm(spec_.timeout);
    if (spec_.kind == Kind::kTcp || spec_.kind == Kind::kTls) {
      transport_ = std::make_unique<network::TransportConnection>(checker_.dispatcher_, *this);
      network::TransportSocketFactory factory;
      if (spec_.kind == Kind::kTls) {
        factory = [context = spec_.tls_context](int fd) {
          return tls::makeClientTransportSocket(fd, context.get(), "");
        };
      } else {
        factory = [](int fd) { return network::makeRawTransportSocket(fd); };
      }
      transport_->connect(address_, proxy_header_, std::move(factory), spec_.timeout);
      return;
    }
    status_ = 0;
    grpc_status_.clear();
    body_.clear();
    const bool tls = backend_tls_context_ != nullptr;
    const Protocol protocol = http1_ ? Protocol::kHttp1 : Protocol::kHttp2;
    const std::string key = poolKey(address_, protocol, tls, "") + "|health";
    const Endpoint endpoint{address_, key, protocol, backend_tls_context_, "", nullptr};
    PoolSettings settings;
    settings.connect_timeout = spec_.timeout;
    settings.idle_timeout = spec_.interval * 2 + std::chrono::seconds(1);
    const bool grpc = spec_.kind == Kind::kGrpc;
    http::HeaderMap request{{":method", grpc ? "POST" : "GET"},
                            {":scheme", tls ? "https" : "http"},
                            {":authority", address_text_},
                            {":path", grpc ? "/grpc.health.v1.Health/Check" : spec_.http_path},
                            {"user-agent", "mc-proxy-health-check"}};
    if (grpc) {
      request.add("content-type", "application/grpc");
      request.add("te", "trailers");
    }
    stream_ =
        http::StreamHandle(&checker_.pool_.newStream(endpoint, settings, proxy_header_, *this));
    stream_->encodeHeaders(request, !grpc);
    if (grpc) {
      buffer::Buffer body;
      body.append(grpcHealthRequest(spec_.grpc_service));
      stream_->encodeData(body, true);
    }
  }

  void onTimeout() {
    stream_.reset();
    if (transport_) transport_->close();
    finish(false, "no answer within " + std::to_string(spec_.timeout.count()) + " ms");
  }

  void finish(bool passed, const std::string& why) {
    if (!in_progress_) return;
    in_progress_ = false;
    timeout_timer_.cancel();
    bool healthy = state_->healthy.load(std::memory_order_relaxed);
    if (passed) {
      failures_ = 0;
      ++passes_;
      if (first_ || (!healthy && passes_ >= spec_.healthy_threshold)) healthy = true;
    } else {
      passes_ = 0;
      ++failures_;
      if (first_ || (healthy && failures_ >= spec_.unhealthy_threshold)) healthy = false;
      state_->last_check_failure = why;
    }
    first_ = false;
    if (healthy != state_->healthy.load(std::memory_order_relaxed)) {
      state_->healthy.store(healthy, std::memory_order_relaxed);
      if (healthy) {
        LOG_INFO << "cluster " << cluster_name_ << ": endpoint " << address_text_ << " is healthy ("
                 << healthCheckKindName(spec_.kind) << " check)";
      } else {
        LOG_WARN << "cluster " << cluster_name_ << ": endpoint " << address_text_
                 << " is unhealthy (" << healthCheckKindName(spec_.kind) << " check: " << why
                 << ")";
      }
    }
    healthy_gauge_.set(healthy ? 1 : 0);
    // Up to 10 % later, so the checks of many endpoints do not fire in step.
    const auto jitter = std::chrono::milliseconds(
        absl::Uniform<int64_t>(checker_.dispatcher_.random(), 0, spec_.interval.count() / 10 + 1));
    interval_timer_.arm(spec_.interval + jitter);
  }

  HealthChecker& checker_;
  const std::string cluster_name_;
  const HealthCheckSpec spec_;
  network::Address address_;
  const std::string address_text_;
  const std::shared_ptr<ssl_ctx_st> backend_tls_context_;
  const bool http1_;
  const std::string proxy_header_;
  const std::shared_ptr<EndpointState> state_;
  stats::Gauge& healthy_gauge_;
  event::Timer interval_timer_;
  event::Timer timeout_timer_;
  std::unique_ptr<network::TransportConnection> transport_;
  http::StreamHandle stream_;
  int status_ = 0;
  std::string grpc_status_;
  std::string body_;
  uint32_t passes_ = 0;
  uint32_t failures_ = 0;
  bool first_ = true;
  bool in_progress_ = false;
};

// A cluster's endpoints given by name, resolved again every dns_refresh_ms.
class HealthChecker::NameRefresh {
 public:
  NameRefresh(HealthChecker& checker, const Cluster& cluster)
      : checker_(checker),
        cluster_name_(cluster.name()),
        every_(cluster.settings().dns_refresh),
        timer_(checker.dispatcher_, [this] { refresh(); }) {
    update(cluster);
  }

  void update(const Cluster& cluster) {
    names_.clear();
    for (const ClusterEndpoint& endpoint : cluster.endpoints()) {
      std::string error;
      if (network::Address::parseIpPort(endpoint.address_text, error)) continue;
      names_.emplace_back(endpoint.address_text, endpoint.address);
    }
    timer_.arm(every_);
  }
  bool empty() const { return names_.empty(); }

 private:
  void refresh() {
    for (const auto& [name, compiled] : names_) {
      std::string error;
      auto now = network::Address::resolveHostPort(name, error);
      if (!now) {
        // Keep the last answer: a resolver hiccup must not take the endpoint away.
        LOG_WARN << "cluster " << cluster_name_ << ": cannot resolve " << name << ": " << error;
        continue;
      }
      if (now->toString() != compiled.toString()) {
        checker_.on_dns_change_("cluster " + cluster_name_ + ": " + name + " now resolves to " +
                                now->toString() + " (was " + compiled.toString() + ")");
        return;  // the new snapshot's update() re-arms
      }
    }
    timer_.arm(every_);
  }

  HealthChecker& checker_;
  const std::string cluster_name_;
  const std::chrono::milliseconds every_;
  std::vector<std::pair<std::string, network::Address>> names_;
  event::Timer timer_;
};

HealthChecker::HealthChecker(event::Dispatcher& dispatcher,
                             std::function<void(std::string)> on_dns_change)
    : dispatcher_(dispatcher), on_dns_change_(std::move(on_dns_change)), pool_(dispatcher) {}

HealthChecker::~HealthChecker() {
  checks_.clear();
  pool_.closeAll();
}

void HealthChecker::update(std::span<const std::shared_ptr<const Cluster>> clusters) {
  std::map<std::string, std::unique_ptr<EndpointCheck>> checks;
  std::map<std::string, std::unique_ptr<NameRefresh>> refreshes;
  for (const auto& cluster : clusters) {
    const Cluster::Settings& settings = cluster->settings();
    const HealthCheckSpec& spec = settings.health_check;
    if (spec.kind != Kind::kNone) {
      // A check whose settings changed starts over.
      const std::string settings_key =
          std::string(healthCheckKindName(spec.kind)) + "|" +
          std::to_string(spec.interval.count()) + "|" + std::to_string(spec.timeout.count()) + "|" +
          std::to_string(spec.healthy_threshold) + "|" + std::to_string(spec.unhealthy_threshold) +
          "|" + spec.http_path + "|" + std::to_string(spec.expected_status) + "|" +
          spec.grpc_service + "|" + (settings.backend_http1 ? "http1" : "h2") + "|" +
          std::to_string(reinterpret_cast<uintptr_t>(settings.backend_tls_context.get())) + "|" +
          std::to_string(reinterpret_cast<uintptr_t>(spec.tls_context.get())) + "|" +
          (settings.send_proxy_protocol ? std::to_string(settings.proxy_protocol_version) : "-");
      for (const ClusterEndpoint& endpoint : cluster->endpoints()) {
        const std::string key = cluster->name() + "|" + endpoint.address_text + "|" + settings_key;
        auto existing = checks_.find(key);
        if (existing != checks_.end()) {
          existing->second->refresh(endpoint);
          checks.emplace(key, std::move(existing->second));
        } else {
          checks.emplace(key, std::make_unique<EndpointCheck>(*this, *cluster, endpoint));
        }
      }
    }
    auto refresh = std::make_unique<NameRefresh>(*this, *cluster);
    if (!refresh->empty()) refreshes.emplace(cluster->name(), std::move(refresh));
  }
  checks_.swap(checks);
  refreshes_.swap(refreshes);
}

}  // namespace mcproxy::upstream
