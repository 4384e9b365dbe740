#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/etcd/v3/etcd.pb.h"
#include "source/common/grpc/blocking_channel.h"

namespace mcproxy::fleet {

// Where etcd is and how to reach it: --etcd URLS (comma-separated http:// or https:// URLs),
// and for https the CA to verify etcd with and the client certificate etcd may require.
struct EtcdOptions {
  struct Endpoint {
    std::string host;
    uint16_t port = 2379;
    bool tls = false;
    std::string url;
  };
  std::vector<Endpoint> endpoints;
  std::string ca_file;    // empty: the system's trust store
  std::string cert_file;  // client certificate (etcd --client-cert-auth)
  std::string key_file;
  std::chrono::milliseconds timeout{5000};

  // "http://127.0.0.1:2379,https://etcd-1:2379" -> endpoints; an error names the bad URL. The
  // TLS files as given (a client certificate needs its key, and the other way round).
  static absl::StatusOr<EtcdOptions> parse(const std::string& urls, std::string ca_file = "",
                                           std::string cert_file = "", std::string key_file = "");
  std::string describe() const;  // the URLs, comma-separated
};

// What the fleet needs of etcd's v3 API: one session (connection) to one member. The real one
// is EtcdClient; tests use test/mocks/fleet/fake_etcd.h.
class Etcd {
 public:
  virtual ~Etcd() = default;

  // keys_only: the keys and revisions without their values.
  virtual absl::StatusOr<etcdserverpb::RangeResponse> range(const std::string& key,
                                                            const std::string& range_end = "",
                                                            bool keys_only = false) = 0;
  virtual absl::Status put(const std::string& key, const std::string& value, int64_t lease = 0) = 0;
  virtual absl::StatusOr<etcdserverpb::TxnResponse> txn(
      const etcdserverpb::TxnRequest& request) = 0;
  // Deletes [key, range_end) (range_end empty: the key alone); how many keys went.
  virtual absl::StatusOr<int64_t> deleteRange(const std::string& key,
                                              const std::string& range_end) = 0;

  // A lease of `ttl_seconds`; its id.
  virtual absl::StatusOr<int64_t> grantLease(int64_t ttl_seconds) = 0;
  // Renews a lease; returns the TTL left, 0 when etcd no longer has it (it expired).
  virtual absl::StatusOr<int64_t> keepAlive(int64_t lease) = 0;
  virtual absl::Status revokeLease(int64_t lease) = 0;

  // Watches `key` from `start_revision` (one watch per session).
  virtual absl::Status watch(const std::string& key, int64_t start_revision) = 0;
  // The watch's next response: nullopt when none came within `timeout`.
  virtual absl::StatusOr<std::optional<etcdserverpb::WatchResponse>> nextWatchResponse(
      std::chrono::milliseconds timeout) = 0;

  virtual const std::string& endpoint() const = 0;

  // Every key under `prefix`, in key order.
  absl::StatusOr<etcdserverpb::RangeResponse> rangePrefix(const std::string& prefix,
                                                          bool keys_only = false);
  // The key's value and revisions, or nullopt when it does not exist.
  absl::StatusOr<std::optional<etcdserverpb::KeyValue>> get(const std::string& key);

  // The end of the range holding every key that starts with `prefix`.
  static std::string prefixEnd(const std::string& prefix);
};

// etcd's v3 API over gRPC (api/etcd/v3/etcd.proto) on one connection to the first endpoint
// that answers. Blocking, for the fleet follower's thread and mcproxyctl: never the data path.
class EtcdClient : public Etcd {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdClient>> connect(const EtcdOptions& options);

  absl::StatusOr<etcdserverpb::RangeResponse> range(const std::string& key,
                                                    const std::string& range_end,
                                                    bool keys_only) override;
  absl::Status put(const std::string& key, const std::string& value, int64_t lease) override;
  absl::StatusOr<etcdserverpb::TxnResponse> txn(const etcdserverpb::TxnRequest& request) override;
  absl::StatusOr<int64_t> deleteRange(const std::string& key,
                                      const std::string& range_end) override;
  absl::StatusOr<int64_t> grantLease(int64_t ttl_seconds) override;
  absl::StatusOr<int64_t> keepAlive(int64_t lease) override;
  absl::Status revokeLease(int64_t lease) override;
  absl::Status watch(const std::string& key, int64_t start_revision) override;
  absl::StatusOr<std::optional<etcdserverpb::WatchResponse>> nextWatchResponse(
      std::chrono::milliseconds timeout) override;
  const std::string& endpoint() const override { return endpoint_; }

 private:
  EtcdClient(std::unique_ptr<grpc::BlockingChannel> channel, std::string endpoint,
             std::chrono::milliseconds timeout)
      : channel_(std::move(channel)), endpoint_(std::move(endpoint)), timeout_(timeout) {}
  absl::Status call(const char* method, const google::protobuf::Message& request,
                    google::protobuf::Message& response);
  template <class Response>
  absl::StatusOr<Response> unary(const char* method, const google::protobuf::Message& request) {
    Response response;
    if (absl::Status s = call(method, request, response); !s.ok()) return s;
    return response;
  }

  std::unique_ptr<grpc::BlockingChannel> channel_;
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  std::optional<int32_t> watch_stream_;
};

}  // namespace mcproxy::fleet
