#pragma once

#include "source/common/network/address.h"
#include "source/common/network/fd.h"

namespace mcproxy::network {

enum class ConnectStatus { kConnected, kInProgress, kFailed };

struct ConnectResult {
  UniqueFd fd;  // valid unless kFailed
  ConnectStatus status;
  int error = 0;  // errno, for kFailed
};

// Starts a non-blocking TCP connection (close-on-exec, TCP_NODELAY) to `address`. With
// kInProgress, wait for the fd to be writable and read SO_ERROR.
ConnectResult connectTcp(const Address& address);

// The error of a finished non-blocking connect (SO_ERROR): 0 when it succeeded.
int connectError(int fd);

}  // namespace mcproxy::network
