#include "source/fleet/etcd_client.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "source/common/tls/server_context.h"

namespace mcproxy::fleet {

absl::StatusOr<EtcdOptions> EtcdOptions::parse(const std::string& urls, std::string ca_file,
                                               std::string cert_file, std::string key_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("--etcd-cert and --etcd-key go together");
  }
  EtcdOptions options;
  options.ca_file = std::move(ca_file);
  options.cert_file = std::move(cert_file);
  options.key_file = std::move(key_file);
  const std::vector<std::string> parts = absl::StrSplit(urls, ',', absl::SkipWhitespace());
  for (const std::string& part : parts) {
    const std::string url(absl::StripAsciiWhitespace(part));
    EtcdOptions::Endpoint endpoint;
    endpoint.url = url;
    std::string rest;
    if (url.rfind("http://", 0) == 0) {
      rest = url.substr(7);
    } else if (url.rfind("https://", 0) == 0) {
      rest = url.substr(8);
      endpoint.tls = true;
    } else {
      return absl::InvalidArgumentError("--etcd: \"" + url +
                                        "\" is not an http:// or https:// URL");
    }
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    std::string host = rest;
    if (const size_t colon = rest.rfind(':');
        colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
      host = rest.substr(0, colon);
      int port = 0;
      if (!absl::SimpleAtoi(rest.substr(colon + 1), &port) || port < 1 || port > 65535) {
        return absl::InvalidArgumentError("--etcd: \"" + url + "\" has no valid port");
      }
      endpoint.port = static_cast<uint16_t>(port);
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    if (host.empty() || host.find('/') != std::string::npos) {
      return absl::InvalidArgumentError("--etcd: \"" + url + "\" has no host");
    }
    endpoint.host = host;
    options.endpoints.push_back(std::move(endpoint));
  }
  if (options.endpoints.empty()) return absl::InvalidArgumentError("--etcd: no URL given");
  return options;
}

std::string EtcdOptions::describe() const {
  std::vector<std::string> urls;
  for (const auto& endpoint : endpoints) urls.push_back(endpoint.url);
  return absl::StrJoin(urls, ",");
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::connect(const EtcdOptions& options) {
  std::vector<std::string> failures;
  std::shared_ptr<SSL_CTX> tls;
  for (const auto& endpoint : options.endpoints) {
    if (endpoint.tls && !tls) {
      std::string error;
      tls = tls::makeClientContext(options.ca_file, "h2", error);
      if (!tls) return absl::InvalidArgumentError("--etcd-ca: " + error);
      if (!options.cert_file.empty() &&
          (SSL_CTX_use_certificate_chain_file(tls.get(), options.cert_file.c_str()) != 1 ||
           SSL_CTX_use_PrivateKey_file(tls.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) !=
               1 ||
           SSL_CTX_check_private_key(tls.get()) != 1)) {
        return absl::InvalidArgumentError("--etcd-cert/--etcd-key: cannot use \"" +
                                          options.cert_file + "\" with \"" + options.key_file +
                                          "\": " + tls::opensslErrors());
      }
    }
    auto channel = grpc::BlockingChannel::connectTcp(endpoint.host, endpoint.port,
                                                     endpoint.tls ? tls : nullptr, options.timeout);
    if (channel.ok()) {
      return std::unique_ptr<EtcdClient>(
          new EtcdClient(std::move(*channel), endpoint.url, options.timeout));
    }
    failures.push_back(endpoint.url + ": " + std::string(channel.status().message()));
  }
  return absl::UnavailableError("etcd unreachable (" + absl::StrJoin(failures, "; ") + ")");
}

absl::Status EtcdClient::call(const char* method, const google::protobuf::Message& request,
                              google::protobuf::Message& response) {
  absl::Status status = channel_->call(method, request, response, timeout_);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("etcd ", endpoint_, " ", method, ": ",
                                                    std::string(status.message())));
  }
  return status;
}

std::string Etcd::prefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::range(const std::string& key,
                                                              const std::string& range_end,
                                                              bool keys_only) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  request.set_range_end(range_end);
  request.set_keys_only(keys_only);
  return unary<etcdserverpb::RangeResponse>("/etcdserverpb.KV/Range", request);
}

absl::StatusOr<etcdserverpb::RangeResponse> Etcd::rangePrefix(const std::string& prefix,
                                                              bool keys_only) {
  return range(prefix, prefixEnd(prefix), keys_only);
}

absl::StatusOr<std::optional<etcdserverpb::KeyValue>> Etcd::get(const std::string& key) {
  auto response = range(key);
  if (!response.ok()) return response.status();
  if (response->kvs().empty()) return std::optional<etcdserverpb::KeyValue>();
  return std::optional<etcdserverpb::KeyValue>(response->kvs(0));
}

absl::Status EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  return unary<etcdserverpb::PutResponse>("/etcdserverpb.KV/Put", request).status();
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::txn(const etcdserverpb::TxnRequest& request) {
  return unary<etcdserverpb::TxnResponse>("/etcdserverpb.KV/Txn", request);
}

absl::StatusOr<int64_t> EtcdClient::deleteRange(const std::string& key,
                                                const std::string& range_end) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  request.set_range_end(range_end);
  auto response = unary<etcdserverpb::DeleteRangeResponse>("/etcdserverpb.KV/DeleteRange", request);
  if (!response.ok()) return response.status();
  return response->deleted();
}

absl::StatusOr<int64_t> EtcdClient::grantLease(int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  auto response =
      unary<etcdserverpb::LeaseGrantResponse>("/etcdserverpb.Lease/LeaseGrant", request);
  if (!response.ok()) return response.status();
  if (!response->error().empty()) return absl::UnavailableError("etcd: " + response->error());
  return response->id();
}

absl::StatusOr<int64_t> EtcdClient::keepAlive(int64_t lease) {
  // LeaseKeepAlive is a bidirectional stream; one request and its answer on a stream of their
  // own is a renewal, and keeps this client's calls one at a time.
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  auto response =
      unary<etcdserverpb::LeaseKeepAliveResponse>("/etcdserverpb.Lease/LeaseKeepAlive", request);
  if (!response.ok()) return response.status();
  return response->ttl();
}

absl::Status EtcdClient::revokeLease(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  return unary<etcdserverpb::LeaseRevokeResponse>("/etcdserverpb.Lease/LeaseRevoke", request)
      .status();
}

absl::Status EtcdClient::watch(const std::string& key, int64_t start_revision) {
  if (watch_stream_) channel_->cancel(*watch_stream_);
  auto stream = channel_->openStream("/etcdserverpb.Watch/Watch");
  if (!stream.ok()) return stream.status();
  watch_stream_ = *stream;
  etcdserverpb::WatchRequest request;
  request.mutable_create_request()->set_key(key);
  request.mutable_create_request()->set_start_revision(start_revision);
  return channel_->send(*watch_stream_, request, /*last=*/false);
}

absl::StatusOr<std::optional<etcdserverpb::WatchResponse>> EtcdClient::nextWatchResponse(
    std::chrono::milliseconds timeout) {
  if (!watch_stream_) return absl::FailedPreconditionError("no watch");
  etcdserverpb::WatchResponse response;
  absl::Status status = channel_->read(*watch_stream_, response, timeout);
  if (absl::IsDeadlineExceeded(status) && channel_->usable()) {
    return std::optional<etcdserverpb::WatchResponse>();
  }
  if (!status.ok()) {
    return absl::UnavailableError("etcd " + endpoint_ + " watch: " + std::string(status.message()));
  }
  return std::optional<etcdserverpb::WatchResponse>(std::move(response));
}

}  // namespace mcproxy::fleet
