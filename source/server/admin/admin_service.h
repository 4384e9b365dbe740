#pragma once

#include <string>

#include "source/server/admin/admin_backend.h"

namespace mcproxy::server {

// gRPC status codes the admin API answers with.
enum class GrpcCode : int {
  kOk = 0,
  kInvalidArgument = 3,
  kNotFound = 5,
  kAlreadyExists = 6,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kInternal = 13,
  kUnimplemented = 12,
};

struct GrpcReply {
  GrpcCode code = GrpcCode::kOk;
  std::string message;   // grpc-message, for errors
  std::string response;  // the serialized response message, for kOk
};

// Whether `method` changes the config (such calls run through AdminBackend::runChange).
bool changesConfig(const std::string& method);

// Runs one call of mcproxy.admin.v1.Admin: `method` is the part after the service name
// ("AddRoute"), `request` the serialized request message. A change (changesConfig) runs on the
// change thread with its ConfigChanges; a read on the main thread with the AdminBackend.
GrpcReply handleAdminChange(const std::string& method, const std::string& request,
                            ConfigChanges& backend);
GrpcReply handleAdminRead(const std::string& method, const std::string& request,
                          AdminBackend& backend);

// The stats in Prometheus text exposition format 0.0.4.
std::string renderPrometheus(const stats::Store& stats, const AdminBackend& backend);

}  // namespace mcproxy::server
