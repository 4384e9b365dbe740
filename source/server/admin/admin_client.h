#pragma once

#include <google/protobuf/message.h>

#include <chrono>
#include <string>

namespace mcproxy::server {

struct AdminCallResult {
  int grpc_status = -1;  // -1: the call never completed (connection, protocol)
  std::string message;   // grpc-message, or what went wrong
};

// A blocking gRPC client for mcproxy.admin.v1.Admin over the proxy's Unix socket (HTTP/2 with
// prior knowledge), for mcproxyctl.
AdminCallResult callAdmin(const std::string& socket_path, const std::string& method,
                          const google::protobuf::Message& request,
                          google::protobuf::Message& response,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace mcproxy::server
