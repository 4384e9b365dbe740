#pragma once

#include <string>

#include "source/common/network/address.h"
#include "source/common/network/fd.h"

namespace mcproxy::server {

// A non-blocking listening TCP socket with SO_REUSEPORT, so that each worker can bind its own
// socket to the same address and the kernel spreads new connections across them.
// Returns an invalid fd and sets `error` on failure.
network::UniqueFd createListenSocket(const network::Address& address, int backlog,
                                     std::string& error);

// The address a socket is bound to (resolves port 0 to the port the OS picked).
network::Address boundAddress(int fd);

}  // namespace mcproxy::server
