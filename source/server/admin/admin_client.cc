#include "source/server/admin/admin_client.h"

#include "source/common/grpc/blocking_channel.h"

namespace mcproxy::server {

AdminCallResult callAdmin(const std::string& socket_path, const std::string& method,
                          const google::protobuf::Message& request,
                          google::protobuf::Message& response, std::chrono::milliseconds timeout) {
  auto channel = grpc::BlockingChannel::connectUnix(socket_path, timeout);
  if (!channel.ok()) return {-1, std::string(channel.status().message())};
  const absl::Status status =
      (*channel)->call("/mcproxy.admin.v1.Admin/" + method, request, response, timeout);
  // A reply (any status) came from mc-proxy; a broken connection or no reply did not.
  if (!status.ok() && !(*channel)->usable()) return {-1, std::string(status.message())};
  if (absl::IsDeadlineExceeded(status)) return {-1, "timed out waiting for mc-proxy"};
  return {static_cast<int>(status.code()), std::string(status.message())};
}

}  // namespace mcproxy::server
