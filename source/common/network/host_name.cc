#include "source/common/network/host_name.h"

#include <unistd.h>

namespace mcproxy::network {

std::string hostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace mcproxy::network
