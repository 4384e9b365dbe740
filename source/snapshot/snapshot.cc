#include "source/snapshot/snapshot.h"

#include <google/protobuf/any.pb.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "source/common/access_log/access_log.h"
#include "source/common/config/config_error.h"
#include "source/common/http/filter_factory.h"
#include "source/common/http/headers.h"
#include "source/common/logging/logger.h"
#include "source/common/module/module.h"
#include "source/common/tls/digest.h"
#include "source/common/tls/server_context.h"
#include "source/common/upstream/endpoint.h"
#include "source/snapshot/config_loader.h"

namespace mcproxy::snapshot {
namespace {

using config::ConfigError;
using mcproxy::config::v1::Bootstrap;
using mcproxy::config::v1::Listener;
using mcproxy::config::v1::Route;

constexpr uint32_t kDefaultBacklog = 1024;
constexpr uint32_t kDefaultDrainTimeoutMs = 15000;

std::string routePath(size_t listener_index, int route_index) {
  return "listeners[" + std::to_string(listener_index) + "].routes[" + std::to_string(route_index) +
         "]";
}

ListenerStats makeListenerStats(stats::Store& store, const std::string& name) {
  const std::string prefix = "listener." + name + ".";
  auto metric = [&](const char* family, const char* help) {
    return stats::MetricId{family, {{"listener", name}}, help};
  };
  ListenerStats out{
      store.counter(prefix + "downstream_cx_total",
                    metric("mcproxy_listener_connections_total", "Connections accepted.")),
      store.gauge(prefix + "downstream_cx_active",
                  metric("mcproxy_listener_active_connections", "Connections open now.")),
      store.counter(prefix + "downstream_cx_overflow",
                    metric("mcproxy_listener_accept_overflow_total",
                           "accept() failures for lack of file descriptors.")),
      {}};
  for (size_t i = 0; i < network::kCloseReasonCount; ++i) {
    const char* reason = network::closeReasonName(static_cast<network::CloseReason>(i));
    out.closes.push_back(
        &store.counter(prefix + "close." + reason,
                       {"mcproxy_listener_closes_total",
                        {{"listener", name}, {"reason", reason}},
                        "Connections closed, by reason (docs/configuration.md lists them)."}));
  }
  return out;
}

constexpr const char* kRouterFilter = "mcproxy.filters.http.router";
constexpr const char* kForwardingHeadersFilter = "mcproxy.filters.http.forwarding_headers";

using ClusterTable = std::map<std::string, const upstream::Cluster*, std::less<>>;

// The cluster a route or http_routes entry names; throws naming `path`.cluster.
const upstream::Cluster* findCluster(const ClusterTable& clusters, const std::string& name,
                                     const std::string& path) {
  auto it = clusters.find(name);
  if (it == clusters.end()) {
    throw ConfigError(path + ".cluster", "no cluster is named \"" + name + "\"");
  }
  return it->second;
}

// An address to connect to, given as `text` in the field `field`; throws naming the field.
network::Address resolveBackend(const std::string& text, const std::string& field) {
  if (text.empty()) throw ConfigError(field, "is required");
  std::string error;
  auto resolved = network::Address::resolveHostPort(text, error);
  if (!resolved) throw ConfigError(field, error);
  if (resolved->port() == 0) throw ConfigError(field, "port 0 cannot be connected to");
  return *resolved;
}

// Where a route or an http_routes entry at `path` sends traffic: its `backend`, resolved, or
// its `cluster` (exactly one of the two).
struct Target {
  network::Address backend;
  const upstream::Cluster* cluster = nullptr;
  std::string text;  // "127.0.0.1:9001", "cluster api": for logs, diffs and route tests
};

Target compileTarget(const std::string& backend, const std::string& cluster,
                     const std::string& path, const ClusterTable& clusters) {
  if (cluster.empty()) {
    if (backend.empty()) throw ConfigError(path + ".backend", "is required (or cluster)");
    return {resolveBackend(backend, path + ".backend"), nullptr, backend};
  }
  if (!backend.empty()) {
    throw ConfigError(path + ".cluster", "set either backend or cluster, not both");
  }
  return {network::Address(), findCluster(clusters, cluster, path), "cluster " + cluster};
}

std::string indexed(const std::string& path, const char* field, int index) {
  return path + "." + field + "[" + std::to_string(index) + "]";
}

void compileHttpRoutes(const Route& proto, const std::string& path, upstream::Protocol protocol,
                       const ClusterTable& clusters, router::L7Route& route) {
  for (int i = 0; i < proto.http_routes_size(); ++i) {
    const auto& entry = proto.http_routes(i);
    const std::string entry_path = indexed(path, "http_routes", i);
    if (std::string why = router::PathMatcher::validate(entry.path_prefix(), entry.path_exact());
        !why.empty()) {
      throw ConfigError(entry_path, why);
    }
    router::HttpRoute compiled;
    compiled.path = {entry.path_prefix(), entry.path_exact()};
    for (int j = 0; j < entry.headers_size(); ++j) {
      const std::string header_path = indexed(entry_path, "headers", j);
      std::string name = router::toLowerAscii(entry.headers(j).name());
      if (!http::validHeaderName(name) && !(name.size() > 1 && name[0] == ':')) {
        throw ConfigError(header_path + ".name",
                          "\"" + entry.headers(j).name() + "\" is not a header name");
      }
      if (!http::validHeaderValue(entry.headers(j).value())) {
        throw ConfigError(header_path + ".value", "control characters are not allowed");
      }
      compiled.headers.push_back({std::move(name), entry.headers(j).value()});
    }
    Target target = compileTarget(entry.backend(), entry.cluster(), entry_path, clusters);
    compiled.backend_text = std::move(target.text);
    compiled.backend = target.backend;
    compiled.cluster = target.cluster;
    if (compiled.cluster == nullptr) {
      compiled.pool_key = upstream::poolKey(compiled.backend, protocol, false, "");
    }
    compiled.timeout = std::chrono::milliseconds(entry.timeout_ms());
    route.http_routes.push_back(std::move(compiled));
  }
}

std::vector<http::FilterFactory> compileHttpFilters(const Route& proto, const std::string& path,
                                                    const std::string& route_name,
                                                    stats::Store& store,
                                                    std::vector<std::string>& warnings,
                                                    std::vector<std::string>& watched_files,
                                                    const module::ModuleSet& modules) {
  struct Entry {
    std::string name;
    std::unique_ptr<google::protobuf::Message> config;
    std::string path;
  };
  std::vector<Entry> entries;
  const std::string chain_path = path + ".http_filters";
  if (proto.http_filters().empty()) {
    for (const char* name : {kForwardingHeadersFilter, kRouterFilter}) {
      const auto* factory = http::HttpFilterRegistry::find(name);
      if (factory == nullptr) {
        throw ConfigError(chain_path, std::string("built-in HTTP filter ") + name +
                                          " is not linked into this binary");
      }
      entries.push_back(
          {name, factory->createEmptyConfigProto(), chain_path + "(default " + name + ")"});
    }
  }
  for (int i = 0; i < proto.http_filters_size(); ++i) {
    const auto& filter = proto.http_filters(i);
    const std::string filter_path = indexed(path, "http_filters", i);
    const auto* factory = http::HttpFilterRegistry::find(filter.name());
    if (factory == nullptr) {
      std::string known;
      for (const auto& name : http::HttpFilterRegistry::names()) known += " " + name;
      throw ConfigError(filter_path + ".name",
                        "unknown HTTP filter \"" + filter.name() + "\"; registered:" + known);
    }
    const bool last = i + 1 == proto.http_filters_size();
    if (factory->terminal() != last) {
      throw ConfigError(
          filter_path + ".name",
          last ? "the chain must end with a terminal filter (" + std::string(kRouterFilter) +
                     "), not \"" + filter.name() + "\""
               : "\"" + filter.name() + "\" answers every request, so it must be the last filter");
    }
    auto config = factory->createEmptyConfigProto();
    if (filter.has_typed_config() && !filter.typed_config().UnpackTo(config.get())) {
      throw ConfigError(filter_path + ".typed_config",
                        "expected " + config->GetDescriptor()->full_name() + ", got " +
                            filter.typed_config().type_url());
    }
    entries.push_back({filter.name(), std::move(config), filter_path});
  }
  std::vector<http::FilterFactory> chain;
  for (auto& entry : entries) {
    http::FilterFactoryContext context{entry.path, path,          route_name, store,
                                       warnings,   watched_files, &modules};
    chain.push_back(
        http::HttpFilterRegistry::find(entry.name)->createFilterFactory(*entry.config, context));
  }
  return chain;
}

// The TLS contexts of one compile. Identical certificate/key pairs (by content) share one server
// context and identical CA bundles one client context per ALPN: here, and in later compiles
// while the files hold the same bytes (SharedObjects). 10,000 routes on one wildcard
// certificate load and check it once.
class TlsContexts {
 public:
  TlsContexts(config::SharedObjects& shared, std::vector<std::string>& watched_files)
      : shared_(shared), watched_files_(watched_files) {}

  struct Server {
    std::shared_ptr<SSL_CTX> context;
    std::vector<std::string> chain_problems;  // checked in this compile (expiry moves on)
    std::string ocsp_problem;                 // why the OCSP response is not stapled, if so
  };

 private:
  // What SharedObjects keeps (SSL_CTX itself is an incomplete type); routes hold the context
  // through it (aliasing shared_ptr), so it lives while a snapshot uses it.
  struct Shared {
    std::shared_ptr<SSL_CTX> context;
  };

  std::shared_ptr<SSL_CTX> share(const std::string& key,
                                 const std::function<std::shared_ptr<SSL_CTX>()>& make) {
    auto held = shared_.getOrCreate<Shared>(
        key, [](const Shared&) { return true; },
        [&] { return std::make_shared<Shared>(Shared{make()}); });
    return std::shared_ptr<SSL_CTX>(held, held->context.get());
  }

 public:
  // Throws ConfigError naming `path`.tls_cert, .tls_key, .client_ca or .ocsp_response, or the
  // listener's policy `policy_path`.
  const Server& server(const std::string& cert, const std::string& key,
                       const tls::ServerContextOptions& options, const std::string& ocsp_file,
                       const std::string& path, const std::string& policy_path) {
    const std::string mode = options.client_ca_file.empty() ? ""
                             : options.client_cert_required ? "required"
                                                            : "optional";
    const std::string local_key =
        absl::StrCat(cert, "\n", key, "\n", options.policy.describe(), "\n", options.client_ca_file,
                     "\n", mode, "\n", ocsp_file);
    auto [it, inserted] = servers_.try_emplace(local_key);
    if (!inserted) return it->second;
    std::string cert_bytes;
    std::string key_bytes;
    std::string ca_bytes;
    std::string error;
    tls::ServerContextFault fault = tls::ServerContextFault::kCertificate;
    auto make = [&]() -> std::shared_ptr<SSL_CTX> {
      auto made = tls::makeServerContext(cert, key, options, error, &fault);
      if (!made) {
        servers_.erase(it);
        switch (fault) {
          case tls::ServerContextFault::kKey:
            throw ConfigError(path + ".tls_key", error);
          case tls::ServerContextFault::kClientCa:
            throw ConfigError(path + ".client_ca", error);
          case tls::ServerContextFault::kPolicy:
            throw ConfigError(policy_path, error);
          case tls::ServerContextFault::kCertificate:
            break;
        }
        throw ConfigError(path + ".tls_cert", error);
      }
      return made;
    };
    const bool readable =
        readWholeFile(cert, cert_bytes) && readWholeFile(key, key_bytes) &&
        (options.client_ca_file.empty() || readWholeFile(options.client_ca_file, ca_bytes));
    if (readable) {
      // Content-addressed: the same files and settings share one context across routes and
      // compiles.
      it->second.context = share(
          absl::StrCat("tls.server/", tls::sha256Hex(cert_bytes), "/", tls::sha256Hex(key_bytes),
                       "/", options.policy.describe(), "/", tls::sha256Hex(ca_bytes), "/", mode,
                       "/", tls::sha256Hex(options.ocsp_der)),
          make);
    } else {
      it->second.context = make();  // fails, with OpenSSL's words for why
    }
    it->second.chain_problems = tls::checkCertificateChain(it->second.context.get());
    if (!options.ocsp_der.empty()) {
      // Checked in every compile: a response expires while its file stays the same.
      it->second.ocsp_problem =
          tls::checkOcspResponse(it->second.context.get(), options.ocsp_der).problem;
    }
    watched_files_.push_back(cert);
    watched_files_.push_back(key);
    if (!options.client_ca_file.empty()) watched_files_.push_back(options.client_ca_file);
    if (!ocsp_file.empty()) watched_files_.push_back(ocsp_file);
    return it->second;
  }

  // Throws ConfigError naming `path`.backend_tls_ca.
  std::shared_ptr<SSL_CTX> client(const std::string& ca, const std::string& alpn,
                                  const std::string& path) {
    auto [it, inserted] = clients_.try_emplace({ca, alpn});
    if (!inserted) return it->second;
    std::string ca_bytes;
    std::string error;
    auto make = [&]() -> std::shared_ptr<SSL_CTX> {
      auto made = tls::makeClientContext(ca, alpn, error);
      if (!made) {
        clients_.erase(it);
        throw ConfigError(path + ".backend_tls_ca", error);
      }
      return made;
    };
    if (ca.empty()) {  // the system bundle
      it->second = share("tls.client/system/" + alpn, make);
    } else if (readWholeFile(ca, ca_bytes)) {
      it->second = share("tls.client/" + tls::sha256Hex(ca_bytes) + "/" + alpn, make);
      watched_files_.push_back(ca);
    } else {
      it->second = make();
    }
    return it->second;
  }

 private:
  config::SharedObjects& shared_;
  std::vector<std::string>& watched_files_;
  std::map<std::string, Server> servers_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<SSL_CTX>> clients_;
};

int opensslVersion(mcproxy::config::v1::TlsPolicy::Version version) {
  using mcproxy::config::v1::TlsPolicy;
  switch (version) {
    case TlsPolicy::TLSv1_0:
      return TLS1_VERSION;
    case TlsPolicy::TLSv1_1:
      return TLS1_1_VERSION;
    case TlsPolicy::TLSv1_2:
      return TLS1_2_VERSION;
    case TlsPolicy::TLSv1_3:
      return TLS1_3_VERSION;
    default:
      return 0;
  }
}

// A listener's TLS policy. Throws ConfigError naming the field; `path` is "listeners[i].tls".
tls::ServerPolicy compileTlsPolicy(const mcproxy::config::v1::TlsPolicy& proto,
                                   const std::string& path, std::vector<std::string>& warnings) {
  using mcproxy::config::v1::TlsPolicy;
  tls::ServerPolicy policy;
  for (const auto& [version, field] : {std::pair{proto.min_version(), "min_version"},
                                       std::pair{proto.max_version(), "max_version"}}) {
    if (!TlsPolicy::Version_IsValid(version)) {
      throw ConfigError(path + "." + field, "unknown version " + std::to_string(version) +
                                                "; expected TLSv1_0 ... TLSv1_3 or TLS_AUTO");
    }
  }
  if (proto.min_version() != TlsPolicy::TLS_AUTO) {
    policy.min_version = opensslVersion(proto.min_version());
  }
  if (proto.max_version() != TlsPolicy::TLS_AUTO) {
    policy.max_version = opensslVersion(proto.max_version());
  }
  if (policy.max_version != 0 && policy.max_version < policy.min_version) {
    throw ConfigError(path + ".max_version",
                      TlsPolicy::Version_Name(proto.max_version()) + " is below min_version " +
                          (proto.min_version() == TlsPolicy::TLS_AUTO
                               ? std::string("TLSv1_2 (the default)")
                               : TlsPolicy::Version_Name(proto.min_version())));
  }
  if (policy.min_version < TLS1_2_VERSION) {
    warnings.push_back(path +
                       ".min_version: TLS 1.0 and 1.1 are deprecated (RFC 8996) and need "
                       "cipher_suites with CBC ciphers (e.g. ECDHE-RSA-AES128-SHA)");
  }
  std::vector<std::string> tls12;
  std::vector<std::string> tls13;
  for (int i = 0; i < proto.cipher_suites_size(); ++i) {
    const std::string& name = proto.cipher_suites(i);
    if (name.empty() || name.find_first_of(":, ") != std::string::npos ||
        !tls::knownCipherSuite(name)) {
      throw ConfigError(
          path + ".cipher_suites[" + std::to_string(i) + "]",
          "\"" + name + "\" is not a cipher suite OpenSSL knows (one name per entry)");
    }
    (name.starts_with("TLS_") ? tls13 : tls12).push_back(name);
  }
  if (!proto.cipher_suites().empty() && tls12.empty() &&
      (policy.max_version == 0 || policy.max_version >= TLS1_3_VERSION) &&
      policy.min_version < TLS1_3_VERSION) {
    throw ConfigError(path + ".cipher_suites",
                      "lists only TLS 1.3 suites while TLS 1.2 is allowed: add TLS 1.2 ciphers "
                      "or set min_version: TLSv1_3");
  }
  policy.tls12_ciphers = absl::StrJoin(tls12, ":");
  policy.tls13_suites = absl::StrJoin(tls13, ":");
  for (int i = 0; i < proto.groups_size(); ++i) {
    const std::string& name = proto.groups(i);
    if (name.empty() || name.find_first_of(":, ") != std::string::npos || !tls::knownGroup(name)) {
      throw ConfigError(path + ".groups[" + std::to_string(i) + "]",
                        "\"" + name + "\" is not a key exchange group OpenSSL knows");
    }
  }
  policy.groups = absl::StrJoin(proto.groups(), ":");
  return policy;
}

// How routes and clusters say a backend is spoken to; each throws naming `path`.field.
void checkBackendProtocol(int protocol, const std::string& path) {
  // Text format and JSON take any number for an enum (proto3 enums are open).
  if (!Route::BackendProtocol_IsValid(protocol)) {
    throw ConfigError(
        path + ".backend_protocol",
        "unknown backend protocol " + std::to_string(protocol) + "; expected H2 or HTTP1");
  }
}

void checkProxyProtocolVersion(uint32_t version, const std::string& path) {
  if (version > 2) throw ConfigError(path + ".proxy_protocol_version", "must be 1 or 2");
}

bool validClusterName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

upstream::HealthCheckSpec compileHealthCheck(const mcproxy::config::v1::HealthCheck& proto,
                                             const std::string& path, bool http1) {
  using Check = mcproxy::config::v1::HealthCheck;
  upstream::HealthCheckSpec spec;
  switch (proto.kind_case()) {
    case Check::KIND_NOT_SET:
      throw ConfigError(path, "needs one of tcp {}, tls {}, http {...}, grpc {...}");
    case Check::kTcp:
      spec.kind = upstream::HealthCheckSpec::Kind::kTcp;
      break;
    case Check::kTls:
      spec.kind = upstream::HealthCheckSpec::Kind::kTls;
      break;
    case Check::kHttp:
      spec.kind = upstream::HealthCheckSpec::Kind::kHttp;
      if (!proto.http().path().empty()) {
        if (proto.http().path()[0] != '/' || !http::validHeaderValue(proto.http().path()) ||
            proto.http().path().find(' ') != std::string::npos) {
          throw ConfigError(path + ".http.path", "must be an absolute path (\"/healthz\")");
        }
        spec.http_path = proto.http().path();
      }
      if (proto.http().expected_status() != 0 &&
          (proto.http().expected_status() < 100 || proto.http().expected_status() > 599)) {
        throw ConfigError(path + ".http.expected_status", "must be an HTTP status (100-599)");
      }
      spec.expected_status = proto.http().expected_status();
      break;
    case Check::kGrpc:
      if (http1) {
        throw ConfigError(path + ".grpc",
                          "gRPC needs HTTP/2; the cluster's backend_protocol is HTTP1");
      }
      spec.kind = upstream::HealthCheckSpec::Kind::kGrpc;
      spec.grpc_service = proto.grpc().service();
      break;
  }
  auto orDefault = [](uint32_t value, uint32_t fallback) { return value == 0 ? fallback : value; };
  spec.interval = std::chrono::milliseconds(orDefault(proto.interval_ms(), 5000));
  spec.timeout = std::chrono::milliseconds(orDefault(proto.timeout_ms(), 1000));
  spec.unhealthy_threshold = orDefault(proto.unhealthy_threshold(), 2);
  spec.healthy_threshold = orDefault(proto.healthy_threshold(), 2);
  return spec;
}

// Compiles the top-level clusters. An endpoint's state (health, ejections) is taken from the
// compile before while the cluster keeps the endpoint, so reloads do not forget it.
std::vector<std::shared_ptr<const upstream::Cluster>> compileClusters(
    const Bootstrap& config, stats::Store& store, config::SharedObjects& shared, TlsContexts& tls,
    std::vector<std::string>& warnings, ClusterTable& table) {
  std::vector<std::shared_ptr<const upstream::Cluster>> out;
  for (int i = 0; i < config.clusters_size(); ++i) {
    const auto& proto = config.clusters(i);
    const std::string path = "clusters[" + std::to_string(i) + "]";
    if (!validClusterName(proto.name())) {
      throw ConfigError(path + ".name", "\"" + proto.name() + "\" is not [A-Za-z0-9_.-]+ (1-128)");
    }
    if (table.contains(proto.name())) {
      throw ConfigError(path + ".name", "\"" + proto.name() + "\" names two clusters");
    }
    if (proto.endpoints().empty())
      throw ConfigError(path + ".endpoints", "at least one is required");
    if (!mcproxy::config::v1::Cluster::LbPolicy_IsValid(proto.lb_policy())) {
      throw ConfigError(path + ".lb_policy",
                        "unknown policy " + std::to_string(proto.lb_policy()) +
                            "; expected ROUND_ROBIN, LEAST_REQUEST, RING_HASH or RANDOM");
    }
    checkBackendProtocol(proto.backend_protocol(), path);
    checkProxyProtocolVersion(proto.proxy_protocol_version(), path);
    for (const auto& [value, field] :
         {std::pair{proto.retry_budget_percent(), "retry_budget_percent"},
          std::pair{proto.outlier_detection().max_ejection_percent(),
                    "outlier_detection.max_ejection_percent"}}) {
      if (value > 100) throw ConfigError(path + "." + field, "is a percentage (0-100)");
    }
    upstream::Cluster::Settings settings;
    settings.policy = static_cast<upstream::LbPolicy>(proto.lb_policy());
    settings.connect_timeout = std::chrono::milliseconds(proto.connect_timeout_ms());
    settings.backend_http1 = proto.backend_protocol() == Route::HTTP1;
    if (proto.backend_tls()) {
      settings.backend_tls_context =
          tls.client(proto.backend_tls_ca(), settings.backend_http1 ? "http/1.1" : "h2", path);
    } else if (!proto.backend_tls_ca().empty() && !proto.health_check().has_tls()) {
      warnings.push_back(path + ".backend_tls_ca: ignored without backend_tls");
    }
    settings.send_proxy_protocol = proto.send_proxy_protocol();
    settings.proxy_protocol_version = proto.proxy_protocol_version() == 1 ? 1 : 2;
    settings.dns_refresh =
        std::chrono::milliseconds(proto.dns_refresh_ms() == 0 ? 30000 : proto.dns_refresh_ms());
    settings.max_connect_attempts =
        proto.max_connect_attempts() == 0 ? 3 : proto.max_connect_attempts();
    settings.max_request_attempts =
        proto.max_request_attempts() == 0 ? 2 : proto.max_request_attempts();
    settings.retry_budget_percent =
        proto.retry_budget_percent() == 0 ? 20 : proto.retry_budget_percent();
    if (proto.has_health_check()) {
      settings.health_check =
          compileHealthCheck(proto.health_check(), path + ".health_check", settings.backend_http1);
      if (settings.health_check.kind == upstream::HealthCheckSpec::Kind::kTls) {
        settings.health_check.tls_context = settings.backend_tls_context != nullptr
                                                ? settings.backend_tls_context
                                                : tls.client(proto.backend_tls_ca(), "", path);
      }
    }
    const auto& outlier = proto.outlier_detection();
    settings.outlier.consecutive_failures = outlier.consecutive_failures();
    settings.outlier.base_ejection = std::chrono::milliseconds(
        outlier.base_ejection_ms() == 0 ? 30000 : outlier.base_ejection_ms());
    settings.outlier.max_ejection_percent =
        outlier.max_ejection_percent() == 0 ? 50 : outlier.max_ejection_percent();

    const auto protocol =
        settings.backend_http1 ? upstream::Protocol::kHttp1 : upstream::Protocol::kHttp2;
    std::vector<upstream::ClusterEndpoint> endpoints;
    std::set<std::string> seen;
    uint64_t total_weight = 0;
    for (int j = 0; j < proto.endpoints_size(); ++j) {
      const auto& endpoint = proto.endpoints(j);
      const std::string endpoint_path = indexed(path, "endpoints", j);
      const network::Address address =
          resolveBackend(endpoint.address(), endpoint_path + ".address");
      if (!seen.insert(endpoint.address()).second) {
        throw ConfigError(endpoint_path + ".address",
                          "\"" + endpoint.address() + "\" is listed twice in this cluster");
      }
      const uint32_t weight = endpoint.has_weight() ? endpoint.weight() : 1;
      if (weight > 10000) throw ConfigError(endpoint_path + ".weight", "must be at most 10000");
      total_weight += weight;
      auto state = shared.getOrCreate<upstream::EndpointState>(
          "cluster/" + proto.name() + "/" + endpoint.address(),
          [](const upstream::EndpointState&) { return true; },
          [] { return std::make_shared<upstream::EndpointState>(); });
      upstream::EndpointStats endpoint_stats =
          upstream::makeEndpointStats(store, proto.name(), endpoint.address());
      if (!proto.has_health_check()) {
        state->healthy.store(true, std::memory_order_relaxed);
        endpoint_stats.healthy.set(1);
      } else {
        endpoint_stats.healthy.set(state->healthy.load(std::memory_order_relaxed) ? 1 : 0);
      }
      endpoints.push_back(upstream::ClusterEndpoint{endpoint.address(), address, weight,
                                                    upstream::poolKey(address, protocol, false, ""),
                                                    std::move(state), endpoint_stats});
    }
    if (total_weight == 0) {
      warnings.push_back(path +
                         ": every endpoint is drained (weight 0); its routes refuse traffic");
    }
    auto cluster_state = shared.getOrCreate<upstream::ClusterState>(
        "cluster/" + proto.name(), [](const upstream::ClusterState&) { return true; },
        [] { return std::make_shared<upstream::ClusterState>(); });
    auto cluster = std::make_shared<upstream::Cluster>(
        proto.name(), std::move(settings), std::move(endpoints), std::move(cluster_state),
        upstream::makeClusterStats(store, proto.name()));
    table.emplace(proto.name(), cluster.get());
    out.push_back(std::move(cluster));
  }
  return out;
}

std::shared_ptr<router::Route> compileRoute(
    const Route& proto, const std::string& path, const std::string& listener_name, bool is_default,
    stats::Store& store, std::vector<std::string>& warnings,
    std::vector<std::string>& watched_files, const module::ModuleSet& modules, TlsContexts& tls,
    const tls::ServerPolicy& policy, const std::string& policy_path, const ClusterTable& clusters) {
  if (is_default) {
    if (!proto.hostname().empty()) {
      throw ConfigError(path + ".hostname", "the default route matches every name; leave it empty");
    }
  } else if (std::string why = router::validateHostnamePattern(proto.hostname()); !why.empty()) {
    throw ConfigError(path + ".hostname", why);
  }
  const Target target = compileTarget(proto.backend(), proto.cluster(), path, clusters);
  if (target.cluster != nullptr) {
    // The cluster says how its endpoints are reached.
    for (const auto& [set, field] :
         {std::pair{proto.backend_tls(), "backend_tls"},
          std::pair{!proto.backend_tls_ca().empty(), "backend_tls_ca"},
          std::pair{proto.backend_protocol() != Route::H2, "backend_protocol"},
          std::pair{proto.send_proxy_protocol(), "send_proxy_protocol"},
          std::pair{proto.proxy_protocol_version() != 0, "proxy_protocol_version"}}) {
      if (set) {
        throw ConfigError(path + "." + field,
                          "comes from cluster \"" + proto.cluster() + "\"; set it there");
      }
    }
  }

  // Text format and JSON take any number for an enum (proto3 enums are open): refuse the ones
  // that name nothing rather than treat them as the default.
  if (!Route::Mode_IsValid(proto.mode())) {
    throw ConfigError(path + ".mode",
                      "unknown mode " + std::to_string(proto.mode()) + "; expected L4 or L7");
  }
  checkBackendProtocol(proto.backend_protocol(), path);
  const bool l7 = proto.mode() == Route::L7;
  std::shared_ptr<SSL_CTX> tls_context;
  std::shared_ptr<SSL_CTX> backend_tls_context;
  if (!proto.backend_tls_ca().empty() && !proto.backend_tls()) {
    warnings.push_back(path + ".backend_tls_ca: ignored without backend_tls");
  }
  if (l7) {
    if (proto.tls_cert().empty() || proto.tls_key().empty()) {
      throw ConfigError(path + (proto.tls_cert().empty() ? ".tls_cert" : ".tls_key"),
                        "an L7 route terminates TLS and needs both tls_cert and tls_key");
    }
    if (!Route::ClientCert_IsValid(proto.client_cert())) {
      throw ConfigError(path + ".client_cert", "unknown value " +
                                                   std::to_string(proto.client_cert()) +
                                                   "; expected REQUIRED or OPTIONAL");
    }
    if (proto.client_cert() != Route::CLIENT_CERT_UNSPECIFIED && proto.client_ca().empty()) {
      throw ConfigError(path + ".client_cert",
                        "needs client_ca: the CAs a client certificate must be issued by");
    }
    tls::ServerContextOptions options;
    options.policy = policy;
    options.client_ca_file = proto.client_ca();
    options.client_cert_required = proto.client_cert() != Route::OPTIONAL;
    if (!proto.ocsp_response().empty() && !readWholeFile(proto.ocsp_response(), options.ocsp_der)) {
      throw ConfigError(path + ".ocsp_response",
                        "cannot read \"" + proto.ocsp_response() + "\": " + std::strerror(errno));
    }
    const TlsContexts::Server& served = tls.server(proto.tls_cert(), proto.tls_key(), options,
                                                   proto.ocsp_response(), path, policy_path);
    tls_context = served.context;
    for (const std::string& problem : served.chain_problems) {
      warnings.push_back(path + ".tls_cert: " + problem);
    }
    if (!served.ocsp_problem.empty()) {
      warnings.push_back(path + ".ocsp_response: " + served.ocsp_problem);
    }
    if (std::string problem =
            tls::checkCertificateHost(tls_context.get(), router::toLowerAscii(proto.hostname()));
        !problem.empty()) {
      warnings.push_back(path + ".tls_cert: " + problem);
    }
    if (proto.backend_tls()) {
      backend_tls_context =
          tls.client(proto.backend_tls_ca(),
                     proto.backend_protocol() == Route::HTTP1 ? "http/1.1" : "h2", path);
    }
  } else {
    if (!proto.tls_cert().empty() || !proto.tls_key().empty()) {
      warnings.push_back(path +
                         ": tls_cert/tls_key are ignored on an L4 route (TLS passes through)");
    }
    for (const auto& [set, field] :
         {std::pair{!proto.client_ca().empty(), "client_ca"},
          std::pair{proto.client_cert() != Route::CLIENT_CERT_UNSPECIFIED, "client_cert"},
          std::pair{!proto.ocsp_response().empty(), "ocsp_response"},
          std::pair{proto.has_allow_upgrades(), "allow_upgrades"}}) {
      if (set) {
        warnings.push_back(path + "." + field +
                           ": ignored on an L4 route (the client's TLS passes through)");
      }
    }
    if (proto.backend_tls()) {
      warnings.push_back(path +
                         ".backend_tls: ignored on an L4 route (the client's TLS passes through)");
    }
  }
  if (proto.proxy_protocol_version() != 0 && !proto.send_proxy_protocol()) {
    warnings.push_back(path + ".proxy_protocol_version: ignored without send_proxy_protocol");
  }
  checkProxyProtocolVersion(proto.proxy_protocol_version(), path);

  const std::string route_label = is_default ? std::string("(default)") : proto.hostname();
  auto route = std::make_shared<router::Route>(
      router::Route{router::toLowerAscii(proto.hostname()), target.text, target.backend,
                    l7 ? router::RouteMode::kL7 : router::RouteMode::kL4, proto.backend_tls(),
                    proto.send_proxy_protocol(), proto.proxy_protocol_version() == 1 ? 1u : 2u,
                    router::makeRouteStats(store, listener_name, proto.hostname(), is_default, l7),
                    target.cluster, nullptr});
  bool backend_http1 = proto.backend_protocol() == Route::HTTP1;
  if (target.cluster != nullptr) {
    // The route's copies of the cluster's settings, for the code that reads them off the route.
    const upstream::Cluster::Settings& settings = target.cluster->settings();
    route->backend_tls = settings.backend_tls_context != nullptr;
    backend_tls_context = settings.backend_tls_context;
    backend_http1 = settings.backend_http1;
    route->send_proxy_protocol = settings.send_proxy_protocol;
    route->proxy_protocol_version = settings.proxy_protocol_version;
  }
  if (l7) {
    route->l7 = std::make_unique<router::L7Route>();
    router::L7Route& http = *route->l7;
    http.tls_context = std::move(tls_context);
    http.backend_tls_context = std::move(backend_tls_context);
    http.backend_http1 = backend_http1;
    const auto protocol = backend_http1 ? upstream::Protocol::kHttp1 : upstream::Protocol::kHttp2;
    if (target.cluster == nullptr) {
      http.http_pool_key = upstream::poolKey(route->backend, protocol, false, "");
    }
    http.timeout = std::chrono::milliseconds(proto.timeout_ms());
    http.allow_upgrades = !proto.has_allow_upgrades() || proto.allow_upgrades();
    http.http_customized =
        !proto.http_routes().empty() || !proto.http_filters().empty() || proto.timeout_ms() != 0;
    compileHttpRoutes(proto, path, protocol, clusters, http);
    http.http_filters =
        compileHttpFilters(proto, path, route_label, store, warnings, watched_files, modules);
  } else {
    if (!proto.http_routes().empty()) {
      warnings.push_back(path + ".http_routes: ignored on an L4 route (HTTP is not seen)");
    }
    if (!proto.http_filters().empty()) {
      warnings.push_back(path + ".http_filters: ignored on an L4 route (HTTP is not seen)");
    }
    if (proto.timeout_ms() != 0) {
      warnings.push_back(path + ".timeout_ms: ignored on an L4 route");
    }
  }
  return route;
}

// Enters a listed route in its listener's table; a hostname routed twice is refused.
void addToRouteTable(CompiledListener& listener, const router::Route& route,
                     const std::string& route_path, const std::string& configured_hostname) {
  if (!listener.route_table.add(route.hostname, &route)) {
    throw ConfigError(route_path + ".hostname",
                      "\"" + configured_hostname + "\" is already routed on this listener");
  }
}

bool hasFirewallRules(const mcproxy::config::v1::Firewall& firewall) {
  return !firewall.blocked_ips().empty() || !firewall.blocked_cidrs().empty() ||
         !firewall.blocked_countries().empty() || firewall.rate_limit().connections() > 0;
}

constexpr const char* kProxyProtocolFilter = "mcproxy.filters.network.proxy_protocol";
constexpr const char* kFirewallFilter = "mcproxy.filters.network.firewall";

void compileFilterChain(const Bootstrap& bootstrap, const Listener& proto, size_t index,
                        CompiledListener& listener, stats::Store& store,
                        std::vector<std::string>& warnings, std::vector<std::string>& watched_files,
                        config::SharedObjects& shared, const module::ModuleSet& modules) {
  const std::string listener_path = "listeners[" + std::to_string(index) + "]";
  const std::string path = listener_path + ".filters";
  const bool wants_firewall =
      hasFirewallRules(bootstrap.firewall()) || hasFirewallRules(proto.firewall());
  struct Entry {
    std::string name;
    std::unique_ptr<google::protobuf::Message> config;
    std::string path;
  };
  std::vector<Entry> entries;
  if (proto.filters().empty()) {
    for (const std::string& name : defaultFilterChain(proto.proxy_protocol(), wants_firewall)) {
      const auto* factory = network::FilterRegistry::find(name);
      if (factory == nullptr) {
        throw ConfigError(path, "built-in filter " + name + " is not linked into this binary");
      }
      entries.push_back({name, factory->createEmptyConfigProto(), path + "(default " + name + ")"});
    }
  }
  for (int i = 0; i < proto.filters_size(); ++i) {
    const auto& filter = proto.filters(i);
    const std::string filter_path = path + "[" + std::to_string(i) + "]";
    const auto* factory = network::FilterRegistry::find(filter.name());
    if (factory == nullptr) {
      std::string known;
      for (const auto& name : network::FilterRegistry::names()) known += " " + name;
      throw ConfigError(filter_path + ".name",
                        "unknown filter \"" + filter.name() + "\"; registered:" + known);
    }
    auto config = factory->createEmptyConfigProto();
    if (filter.has_typed_config()) {
      if (!filter.typed_config().UnpackTo(config.get())) {
        throw ConfigError(filter_path + ".typed_config",
                          "expected " + config->GetDescriptor()->full_name() + ", got " +
                              filter.typed_config().type_url());
      }
    }
    entries.push_back({filter.name(), std::move(config), filter_path});
  }
  // A custom chain must carry what the listener's own settings ask for.
  auto hasFilter = [&](const char* name) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const Entry& entry) { return entry.name == name; });
  };
  if (proto.proxy_protocol() != hasFilter(kProxyProtocolFilter)) {
    throw ConfigError(
        proto.proxy_protocol() ? path : listener_path + ".proxy_protocol",
        std::string("proxy_protocol: true and a ") + kProxyProtocolFilter + " filter go together");
  }
  if (proto.proxy_protocol() && entries.front().name != kProxyProtocolFilter) {
    throw ConfigError(path, std::string(kProxyProtocolFilter) +
                                " must be first: the PROXY header precedes every other byte");
  }
  if (wants_firewall && !hasFilter(kFirewallFilter)) {
    throw ConfigError(path, std::string("firewall rules apply to this listener, but its chain has "
                                        "no ") +
                                kFirewallFilter);
  }
  bool terminal_seen = false;
  for (auto& entry : entries) {
    network::FilterFactoryContext context{listener,   bootstrap,     proto,    store,
                                          entry.path, listener_path, warnings, watched_files,
                                          shared,     &modules};
    const auto* factory = network::FilterRegistry::find(entry.name);
    listener.filter_factories.push_back(factory->createFilterFactory(*entry.config, context));
    listener.filter_names.push_back(entry.name);
    terminal_seen = terminal_seen || factory->terminal();
    if (!terminal_seen) ++listener.filters_before_terminal;
  }
}

// An exact route that a wildcard already covers with the same backend and settings adds
// nothing; most often it is a leftover from before the wildcard was added.
// `only`: the one route to check (a patch's new exact route); null checks every route.
void warnRedundantRoutes(const CompiledListener& listener, size_t index,
                         std::vector<std::string>& warnings, const router::Route* only = nullptr) {
  for (size_t i = 0; i < listener.routes.size(); ++i) {
    const router::Route& route = *listener.routes[i];
    if (only != nullptr && &route != only) continue;
    if (route.hostname.empty() || route.hostname.starts_with("*.")) continue;
    const auto* covering = listener.route_table.findWildcard(route.hostname);
    if (covering == nullptr) continue;
    const router::Route& wildcard = **covering;
    // L7: the same certificate (contexts are shared by content) and no HTTP settings of their
    // own on either.
    auto plainL7 = [](const router::Route& r) { return r.l7 == nullptr || !r.l7->http_customized; };
    auto context = [](const router::Route& r) {
      return r.l7 != nullptr ? r.l7->tls_context.get() : nullptr;
    };
    if (wildcard.backend_text == route.backend_text && wildcard.mode == route.mode &&
        context(wildcard) == context(route) &&
        wildcard.send_proxy_protocol == route.send_proxy_protocol && plainL7(wildcard) &&
        plainL7(route)) {
      warnings.push_back(routePath(index, static_cast<int>(i)) + ": \"" + route.hostname +
                         "\" is already covered by \"" + wildcard.hostname +
                         "\" with the same backend; the exact route is redundant");
    }
  }
}

// Null for an empty path (no access log). The file is opened only by a live compile (the
// server): a path it cannot write is an error there, and the CLI only validates.
std::shared_ptr<const access_log::AccessLog> compileAccessLog(
    const mcproxy::config::v1::AccessLog& proto, const std::string& path,
    config::SharedObjects& shared) {
  if (proto.path().empty()) {
    if (!proto.text_format().empty()) {
      throw ConfigError(path + ".path", "text_format is set but no path: where should lines go?");
    }
    return nullptr;
  }
  formatter::Formatter text;
  if (proto.format() == mcproxy::config::v1::AccessLog::TEXT) {
    if (proto.text_format().empty()) {
      throw ConfigError(path + ".text_format", "format TEXT needs a text_format");
    }
    auto parsed = formatter::Formatter::parse(proto.text_format(), "-");
    if (!parsed.ok()) {
      throw ConfigError(path + ".text_format", std::string(parsed.status().message()));
    }
    text = std::move(*parsed);
  } else if (!proto.text_format().empty()) {
    throw ConfigError(path + ".text_format", "only used with format: TEXT");
  }
  std::shared_ptr<access_log::File> file;
  if (shared.live()) {
    file = shared.getOrCreate<access_log::File>(
        proto.path(), [](const access_log::File&) { return true; },
        [&]() -> std::shared_ptr<access_log::File> {
          auto opened = access_log::File::open(proto.path());
          if (!opened.ok())
            throw ConfigError(path + ".path", std::string(opened.status().message()));
          return *opened;
        });
  }
  return std::make_shared<access_log::AccessLog>(
      std::move(file),
      proto.format() == mcproxy::config::v1::AccessLog::TEXT ? access_log::Format::kText
                                                             : access_log::Format::kJson,
      std::move(text));
}

// What a listener gets once its routes are in place (and checked for redundancy by the
// caller): the other checks across its routes, its filter chain and its access log.
void finishListener(const Bootstrap& bootstrap, const Listener& proto, size_t index,
                    CompiledListener& listener, stats::Store& store,
                    std::vector<std::string>& warnings, std::vector<std::string>& watched_files,
                    config::SharedObjects& shared, const module::ModuleSet& modules) {
  const std::string path = "listeners[" + std::to_string(index) + "]";
  if (listener.routes.empty()) {
    warnings.push_back(path + ": no routes and no default_route; every connection is refused");
  }
  if (!proto.filters().empty() && !listener.routes.empty()) {
    const bool has_router = std::any_of(
        proto.filters().begin(), proto.filters().end(),
        [](const auto& filter) { return filter.name() == "mcproxy.filters.network.router"; });
    if (!has_router) {
      warnings.push_back(path +
                         ".filters: the chain has no mcproxy.filters.network.router, so its "
                         "routes and default_route are unreachable");
    }
  }
  compileFilterChain(bootstrap, proto, index, listener, store, warnings, watched_files, shared,
                     modules);
  if (proto.has_access_log()) {
    listener.access_log = compileAccessLog(proto.access_log(), path + ".access_log", shared);
  } else if (bootstrap.has_access_log()) {
    listener.access_log = compileAccessLog(bootstrap.access_log(), "access_log", shared);
  }
}

std::unique_ptr<CompiledListener> compileListener(const Bootstrap& bootstrap, const Listener& proto,
                                                  size_t index, stats::Store& store,
                                                  std::vector<std::string>& warnings,
                                                  std::vector<std::string>& watched_files,
                                                  config::SharedObjects& shared,
                                                  const module::ModuleSet& modules,
                                                  TlsContexts& tls, const ClusterTable& clusters) {
  const std::string path = "listeners[" + std::to_string(index) + "]";
  if (proto.address().empty()) throw ConfigError(path + ".address", "is required");
  std::string error;
  auto address = network::Address::parseIpPort(proto.address(), error);
  if (!address) throw ConfigError(path + ".address", error);
  if (!proto.proxy_protocol() && !proto.trusted_sources().empty()) {
    warnings.push_back(path + ".trusted_sources: ignored without proxy_protocol: true");
  }
  const std::string name = proto.name().empty() ? proto.address() : proto.name();
  auto listener = std::make_unique<CompiledListener>(
      name, proto.address(), *address, proto.proxy_protocol(),
      proto.backlog() == 0 ? kDefaultBacklog : proto.backlog(), makeListenerStats(store, name));
  const tls::ServerPolicy policy = compileTlsPolicy(proto.tls(), path + ".tls", warnings);

  for (int i = 0; i < proto.routes_size(); ++i) {
    auto route = compileRoute(proto.routes(i), routePath(index, i), name, false, store, warnings,
                              watched_files, modules, tls, policy, path + ".tls", clusters);
    addToRouteTable(*listener, *route, routePath(index, i), proto.routes(i).hostname());
    listener->routes.push_back(std::move(route));
  }
  if (proto.has_default_route()) {
    auto route =
        compileRoute(proto.default_route(), path + ".default_route", name, true, store, warnings,
                     watched_files, modules, tls, policy, path + ".tls", clusters);
    listener->default_route = route.get();
    listener->routes.push_back(std::move(route));
  }
  warnRedundantRoutes(*listener, index, warnings);
  finishListener(bootstrap, proto, index, *listener, store, warnings, watched_files, shared,
                 modules);
  return listener;
}

// A module as loaded, and the file it was loaded from then: a later compile reuses it while the
// file is unchanged (and its digest still the one asked for).
struct LoadedModule {
  WatchedFile file;
  std::string sha256;
  std::shared_ptr<module::Module> module;
};

bool validModuleName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Loads `modules` (or takes them from an earlier compile) into `snapshot`. Throws ConfigError
// naming the field; a load failure is also counted.
void loadModules(const Bootstrap& config, stats::Store& store, config::SharedObjects& shared,
                 Snapshot& snapshot, std::vector<std::string>& watched_files) {
  stats::Counter& failures = store.counter(
      "modules.load_failures",
      {"mcproxy_module_load_failures_total", {}, "Plugin modules that could not be loaded."});
  for (int i = 0; i < config.modules_size(); ++i) {
    const auto& proto = config.modules(i);
    const std::string path = "modules[" + std::to_string(i) + "]";
    if (!validModuleName(proto.name())) {
      throw ConfigError(path + ".name", "\"" + proto.name() + "\" is not [a-z0-9_]+ (1-64)");
    }
    if (snapshot.modules.find(proto.name()) != nullptr) {
      throw ConfigError(path + ".name", "\"" + proto.name() + "\" names two modules");
    }
    if (proto.path().empty()) throw ConfigError(path + ".path", "is required");
    const std::string& sha256 = proto.sha256();
    if (!sha256.empty() &&
        (sha256.size() != 64 ||
         sha256.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)) {
      throw ConfigError(path + ".sha256", "must be 64 hex digits (sha256sum's output)");
    }
    std::string error;
    auto loaded = shared.getOrCreate<LoadedModule>(
        "module/" + proto.name() + "/" + proto.path(),
        [&](const LoadedModule& existing) {
          return !existing.file.changed() && existing.sha256 == sha256;
        },
        [&]() -> std::shared_ptr<LoadedModule> {
          auto made = std::make_shared<LoadedModule>();
          made->file = WatchedFile::stat(proto.path());
          made->sha256 = sha256;
          auto module = module::Module::load(proto.name(), proto.path(), sha256);
          if (!module.ok()) {
            failures.inc();
            const bool digest =
                std::string(module.status().message()).find("sha256 is") != std::string::npos;
            throw ConfigError(path + (digest ? ".sha256" : ".path"),
                              std::string(module.status().message()));
          }
          made->module = std::move(*module);
          LOG_INFO << "module " << proto.name() << " loaded from " << proto.path()
                   << " (built for module ABI " << made->module->abiVersion() << ")";
          return made;
        });
    snapshot.modules.add(loaded->module);
    snapshot.loaded_modules.push_back(loaded);
    watched_files.push_back(proto.path());
  }
}

void addWatchedFiles(Snapshot& snapshot, std::vector<std::string> paths) {
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  for (const std::string& path : paths) snapshot.watched_files.push_back(WatchedFile::stat(path));
}

std::atomic<int64_t> g_alive_snapshots{0};

}  // namespace

WatchedFile WatchedFile::stat(const std::string& path) {
  WatchedFile file{path, 0, 0, 0};
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    file.mtime_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
    file.size = static_cast<int64_t>(info.st_size);
    file.inode = static_cast<uint64_t>(info.st_ino);
  }
  return file;
}

bool WatchedFile::changed() const {
  const WatchedFile now = stat(path);
  return now.mtime_ns != mtime_ns || now.size != size || now.inode != inode;
}

Snapshot::Snapshot() { g_alive_snapshots.fetch_add(1, std::memory_order_relaxed); }

Snapshot::~Snapshot() { g_alive_snapshots.fetch_sub(1, std::memory_order_relaxed); }

int64_t Snapshot::alive() { return g_alive_snapshots.load(std::memory_order_relaxed); }

const router::Route* CompiledListener::findRoute(std::string_view server_name) const {
  if (!server_name.empty()) {
    if (const auto* found = route_table.find(server_name)) return *found;
  }
  return default_route;
}

Bootstrap Snapshot::config() const {
  Bootstrap out;
  out.ParseFromString(config_bytes);
  return out;
}

const CompiledListener* Snapshot::findListener(const std::string& address_text) const {
  auto it = listeners_by_address.find(address_text);
  return it == listeners_by_address.end() ? nullptr : it->second;
}

std::vector<std::string> defaultFilterChain(bool proxy_protocol, bool firewall) {
  std::vector<std::string> chain;
  if (proxy_protocol) chain.push_back(kProxyProtocolFilter);
  if (firewall) chain.push_back(kFirewallFilter);
  for (const char* name :
       {"mcproxy.filters.network.tls_inspector", "mcproxy.filters.network.router",
        "mcproxy.filters.network.tcp_proxy", "mcproxy.filters.network.http_connection_manager"}) {
    chain.push_back(name);
  }
  return chain;
}

CompileResult compile(Bootstrap input, stats::Store& store, uint64_t version) {
  config::SharedObjects unshared;
  return compile(std::move(input), store, version, unshared);
}

CompileResult compile(Bootstrap input, stats::Store& store, uint64_t version,
                      config::SharedObjects& shared) {
  CompileResult result;
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->version = version;
  // Taken by value (moved in by callers), so 100,000 routes are not held twice while they
  // compile; the snapshot keeps only its bytes.
  const Bootstrap& config = input;
  snapshot->drain_timeout = std::chrono::milliseconds(
      config.drain_timeout_ms() == 0 ? kDefaultDrainTimeoutMs : config.drain_timeout_ms());
  if (config.listeners().empty())
    throw ConfigError("listeners", "at least one listener is required");
  std::set<std::string> names;
  std::vector<std::string> watched_paths;
  loadModules(config, store, shared, *snapshot, watched_paths);
  TlsContexts tls(shared, watched_paths);
  ClusterTable clusters;
  snapshot->clusters = compileClusters(config, store, shared, tls, result.warnings, clusters);
  for (int i = 0; i < config.listeners_size(); ++i) {
    auto listener = compileListener(config, config.listeners(i), i, store, result.warnings,
                                    watched_paths, shared, snapshot->modules, tls, clusters);
    const std::string path = "listeners[" + std::to_string(i) + "]";
    if (!names.insert(listener->name).second) {
      throw ConfigError(path + ".name", "\"" + listener->name + "\" names two listeners");
    }
    if (!snapshot->listeners_by_address.emplace(listener->address_text, listener.get()).second) {
      throw ConfigError(path + ".address", "\"" + listener->address_text + "\" is used twice");
    }
    snapshot->listeners.push_back(std::move(listener));
  }
  addWatchedFiles(*snapshot, std::move(watched_paths));
  config.SerializeToString(&snapshot->config_bytes);
  result.snapshot = std::move(snapshot);
  return result;
}

CompileResult patchRoutes(const Snapshot& base, const PreparedRouteEdit& prepared,
                          stats::Store& store, config::SharedObjects& shared) {
  const RouteEdit& edit = prepared.edit;
  const Bootstrap& skeleton = prepared.skeleton;
  const size_t index = edit.listener_index;
  const std::string path = "listeners[" + std::to_string(index) + "]";
  if (index >= base.listeners.size() ||
      static_cast<size_t>(skeleton.listeners_size()) != base.listeners.size()) {
    throw ConfigError(path, "the route edit was made to another config than the running one");
  }
  CompileResult result;
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->drain_timeout = base.drain_timeout;
  snapshot->modules = base.modules;
  snapshot->loaded_modules = base.loaded_modules;
  snapshot->clusters = base.clusters;
  ClusterTable clusters;
  for (const auto& cluster : base.clusters) clusters.emplace(cluster->name(), cluster.get());
  std::vector<std::string> watched_paths;
  TlsContexts tls(shared, watched_paths);

  const Listener& proto = skeleton.listeners(static_cast<int>(index));
  const CompiledListener& old = *base.listeners[index];
  auto listener = std::make_shared<CompiledListener>(old.name, old.address_text, old.address,
                                                     old.proxy_protocol, old.backlog, old.stats);
  listener->route_table = old.route_table;
  listener->default_route = old.default_route;
  listener->routes.reserve(old.routes.size() + 1);
  std::shared_ptr<const router::Route> default_route;
  std::shared_ptr<router::Route> added;
  if (edit.kind == RouteEdit::Kind::kAdd) {
    const tls::ServerPolicy policy = compileTlsPolicy(proto.tls(), path + ".tls", result.warnings);
    const int route_index = static_cast<int>(old.routes.size() - (old.default_route ? 1 : 0));
    added = compileRoute(edit.route, routePath(index, route_index), old.name, false, store,
                         result.warnings, watched_paths, base.modules, tls, policy, path + ".tls",
                         clusters);
    addToRouteTable(*listener, *added, routePath(index, route_index), edit.route.hostname());
  } else if (!listener->route_table.remove(edit.hostname)) {
    throw ConfigError(path + ".routes", "no route \"" + edit.hostname + "\" to remove");
  }
  for (const auto& route : old.routes) {
    if (route.get() == old.default_route) {
      default_route = route;
    } else if (edit.kind == RouteEdit::Kind::kAdd || route->hostname != edit.hostname) {
      listener->routes.push_back(route);
    }
  }
  // Config order: the routes, then the default route.
  const router::Route* added_route = added.get();
  if (added) listener->routes.push_back(std::move(added));
  if (default_route) listener->routes.push_back(std::move(default_route));
  // The other routes were checked for redundancy when they came, and a removal makes nothing
  // redundant: only an added exact route is checked, or every route when the added one is a
  // wildcard (it may cover any of them).
  if (added_route != nullptr) {
    const bool wildcard = added_route->hostname.starts_with("*.");
    warnRedundantRoutes(*listener, index, result.warnings, wildcard ? nullptr : added_route);
  }
  finishListener(skeleton, proto, index, *listener, store, result.warnings, watched_paths, shared,
                 base.modules);

  snapshot->listeners = base.listeners;
  snapshot->listeners[index] = std::move(listener);
  for (const auto& compiled : snapshot->listeners) {
    snapshot->listeners_by_address.emplace(compiled->address_text, compiled.get());
  }
  // The base's files, and any the new route reads.
  snapshot->watched_files = base.watched_files;
  for (const WatchedFile& file : base.watched_files) {
    std::erase(watched_paths, file.path);
  }
  addWatchedFiles(*snapshot, std::move(watched_paths));
  snapshot->config_bytes = prepared.canonical_after;
  snapshot->config_hash = prepared.content_hash;
  result.snapshot = std::move(snapshot);
  return result;
}

}  // namespace mcproxy::snapshot
