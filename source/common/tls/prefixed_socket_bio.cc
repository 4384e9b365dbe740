#include "source/common/tls/prefixed_socket_bio.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mcproxy::tls {
namespace {

struct State {
  int fd;
  std::string prefix;
  size_t offset = 0;
  bool drained = false;  // the last recv() returned less than asked for
};

State* state(BIO* bio) { return static_cast<State*>(BIO_get_data(bio)); }

bool retryable(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

int bioRead(BIO* bio, char* out, int len) {
  State* s = state(bio);
  BIO_clear_retry_flags(bio);
  if (s->offset < s->prefix.size()) {
    const size_t n = std::min(static_cast<size_t>(len), s->prefix.size() - s->offset);
    std::memcpy(out, s->prefix.data() + s->offset, n);
    s->offset += n;
    if (s->offset == s->prefix.size()) std::string().swap(s->prefix);  // free it
    return static_cast<int>(n);
  }
  const ssize_t n = ::recv(s->fd, out, static_cast<size_t>(len), 0);
  if (n < 0 && retryable(errno)) BIO_set_retry_read(bio);
  s->drained = n < len;
  return static_cast<int>(n);
}

int bioWrite(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(state(bio)->fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && retryable(errno)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

long bioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

int bioDestroy(BIO* bio) {
  delete state(bio);  // allocated in newPrefixedSocketBio, the factory
  BIO_set_data(bio, nullptr);
  return 1;
}

BIO_METHOD* method() {
  static BIO_METHOD* const kMethod = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mc-proxy prefixed socket");
    BIO_meth_set_read(m, bioRead);
    BIO_meth_set_write(m, bioWrite);
    BIO_meth_set_ctrl(m, bioCtrl);
    BIO_meth_set_create(m, bioCreate);
    BIO_meth_set_destroy(m, bioDestroy);
    return m;
  }();
  return kMethod;
}

}  // namespace

bool prefixedSocketBioDrained(BIO* bio) { return state(bio)->drained; }

BIO* newPrefixedSocketBio(int fd, std::string prefix) {
  BIO* bio = BIO_new(method());
  BIO_set_data(bio, new State{fd, std::move(prefix)});
  return bio;
}

}  // namespace mcproxy::tls
