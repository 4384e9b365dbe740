#pragma once

#include <sys/types.h>

#include <list>
#include <memory>
#include <string>
#include <vector>

#include "source/common/event/dispatcher.h"
#include "source/common/network/fd.h"
#include "source/server/admin/admin_backend.h"

namespace mcproxy::server {

class AdminConnection;

// The admin server on the main thread: a Unix socket (mode 0600, in a directory other users
// cannot write to) speaking HTTP/2 with prior knowledge, so stock gRPC clients work. Serves
// mcproxy.admin.v1.Admin and GET /healthz, /readyz, /metrics, /config_dump. A peer whose uid
// (SO_PEERCRED) is neither ours nor in allowed_uids is refused.
class AdminServer {
 public:
  AdminServer(event::Dispatcher& dispatcher, AdminBackend& backend, std::string socket_path,
              std::vector<uid_t> allowed_uids);
  ~AdminServer();

  // Creates the socket; false with `error` set when it cannot (or must not) be created.
  bool start(std::string& error);
  void onConnectionClosed(AdminConnection& connection);
  AdminBackend& backend() { return backend_; }

 private:
  void onAccept();

  event::Dispatcher& dispatcher_;
  AdminBackend& backend_;
  std::string socket_path_;
  std::vector<uid_t> allowed_uids_;
  network::UniqueFd socket_;
  std::unique_ptr<event::IoEvent> accept_event_;
  std::list<std::unique_ptr<AdminConnection>> connections_;
};

}  // namespace mcproxy::server
