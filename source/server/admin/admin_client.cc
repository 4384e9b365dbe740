#include "source/server/admin/admin_client.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "source/common/http/nghttp2_headers.h"
#include "source/common/network/fd.h"

namespace mcproxy::server {
namespace {

struct Call {
  std::string request;  // framed
  std::string response;
  std::string grpc_status;
  std::string grpc_message;
  bool closed = false;
};

int onHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  auto* call = static_cast<Call*>(user);
  const std::string key(reinterpret_cast<const char*>(name), namelen);
  const std::string text(reinterpret_cast<const char*>(value), valuelen);
  if (key == "grpc-status") call->grpc_status = text;
  if (key == "grpc-message") call->grpc_message = text;
  return 0;
}

int onData(nghttp2_session*, uint8_t, int32_t, const uint8_t* data, size_t len, void* user) {
  static_cast<Call*>(user)->response.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int onClose(nghttp2_session*, int32_t, uint32_t, void* user) {
  static_cast<Call*>(user)->closed = true;
  return 0;
}

ssize_t readRequest(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                    uint32_t* flags, nghttp2_data_source* source, void*) {
  return http::pullBody(session, id, *static_cast<std::string*>(source->ptr), true, {}, buf, length,
                        flags);
}

std::string percentDecode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

AdminCallResult callAdmin(const std::string& socket_path, const std::string& method,
                          const google::protobuf::Message& request,
                          google::protobuf::Message& response, std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  if (socket_path.size() >= sizeof(address.sun_path)) return {-1, "socket path too long"};
  network::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return {-1, "cannot connect to " + socket_path + ": " + std::strerror(errno)};
  }
  Call call;
  std::string message;
  request.SerializeToString(&message);
  const uint32_t len = static_cast<uint32_t>(message.size());
  call.request = std::string{0, static_cast<char>(len >> 24), static_cast<char>(len >> 16),
                             static_cast<char>(len >> 8), static_cast<char>(len)} +
                 message;

  nghttp2_session_callbacks* callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &onHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &onData);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &onClose);
  nghttp2_session* session;
  nghttp2_session_client_new(&session, callbacks, &call);
  nghttp2_session_callbacks_del(callbacks);
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
  const http::HeaderMap headers = {{":method", "POST"},
                                   {":scheme", "http"},
                                   {":path", "/mcproxy.admin.v1.Admin/" + method},
                                   {":authority", "localhost"},
                                   {"content-type", "application/grpc"},
                                   {"te", "trailers"}};
  http::NvList nv(headers);
  nghttp2_data_provider provider{};
  provider.source.ptr = &call.request;
  provider.read_callback = &readRequest;
  nghttp2_submit_request(session, nullptr, nv.data(), nv.size(), &provider, nullptr);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  AdminCallResult result{-1, ""};
  while (!call.closed) {
    const uint8_t* data = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session, &data)) > 0) {
      if (::send(fd.get(), data, static_cast<size_t>(n), MSG_NOSIGNAL) != n) {
        result.message = std::string("write: ") + std::strerror(errno);
        nghttp2_session_del(session);
        return result;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      result.message = "timed out waiting for mc-proxy";
      nghttp2_session_del(session);
      return result;
    }
    char buffer[16384];
    const ssize_t got = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (got <= 0 || nghttp2_session_mem_recv(session, reinterpret_cast<uint8_t*>(buffer),
                                             static_cast<size_t>(got)) < 0) {
      result.message = "mc-proxy closed the admin connection";
      nghttp2_session_del(session);
      return result;
    }
  }
  nghttp2_session_del(session);
  if (call.grpc_status.empty()) return {-1, "no grpc-status from mc-proxy"};
  result.grpc_status = std::stoi(call.grpc_status);
  result.message = percentDecode(call.grpc_message);
  if (result.grpc_status == 0 &&
      (call.response.size() < 5 || !response.ParseFromString(call.response.substr(5)))) {
    return {-1, "malformed response from mc-proxy"};
  }
  return result;
}

}  // namespace mcproxy::server
