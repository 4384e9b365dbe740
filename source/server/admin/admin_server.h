#pragma once

#include <sys/types.h>

#include <list>
#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/network/address.h"
#include "source/common/network/fd.h"
#include "source/server/admin/admin_backend.h"

namespace mcproxy::server {

class AdminConnection;

// The admin server on the main thread, on the proxy's own transport loop and HTTP codecs:
// - a Unix socket (mode 0600, in a directory other users cannot write to) speaking HTTP/2 with
//   prior knowledge, so stock gRPC clients work: mcproxy.admin.v1.Admin and the endpoints
//   below. A peer whose uid (SO_PEERCRED) is neither ours nor in allowed_uids is refused.
// - optionally a TCP address (admin { http_address }) serving GET /metrics, /healthz, /readyz
//   and /config_dump over HTTP/1.1 and h2c (prior knowledge), for Prometheus and curl. No gRPC
//   there: changes stay behind the socket's file permissions.
class AdminServer {
 public:
  AdminServer(event::Dispatcher& dispatcher, AdminBackend& backend, std::string socket_path,
              std::vector<uid_t> allowed_uids, std::string http_address);
  ~AdminServer();

  // Creates the socket and the TCP listener that are configured; false with `error` set when
  // one cannot (or must not) be created.
  bool start(std::string& error);
  // The TCP address bound (port 0 resolved), when http_address is set.
  const network::Address& httpAddress() const { return http_bound_; }
  void onConnectionClosed(AdminConnection& connection);
  AdminBackend& backend() { return backend_; }
  event::Dispatcher& dispatcher() { return dispatcher_; }

 private:
  bool startSocket(std::string& error);
  bool startHttp(std::string& error);
  void onAccept(int listen_fd, bool grpc);

  event::Dispatcher& dispatcher_;
  AdminBackend& backend_;
  std::string socket_path_;
  std::vector<uid_t> allowed_uids_;
  std::string http_address_;
  network::Address http_bound_;
  network::UniqueFd socket_;
  network::UniqueFd http_socket_;
  std::unique_ptr<event::IoEvent> accept_event_;
  std::unique_ptr<event::IoEvent> http_accept_event_;
  std::list<std::unique_ptr<AdminConnection>> connections_;
};

}  // namespace mcproxy::server
