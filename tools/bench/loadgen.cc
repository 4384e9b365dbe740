// loadgen: the load that tools/bench and the load tests need and that stock clients (h2load,
// wrk, curl) do not give: many held-open TLS connections, and a raw stream through an L4
// passthrough. Loopback only; one thread, epoll, non-blocking sockets.
//
//   loadgen idle --connect 127.0.0.1:PORT --sni NAME --count N [--alpn h2|http/1.1]
//                [--ca FILE] [--in-flight K] [--hold-seconds S]
//     Opens N TLS connections (full handshakes, at most K at a time), sends the HTTP/2 client
//     preface + SETTINGS (+ the ACK of the server's) on those that negotiated h2, and prints
//     "established E failed F" once every connection is up or has failed. Then holds them
//     until stdin closes (or S seconds pass), reading and discarding what arrives, and prints
//     "closed E dropped D" (D: connections the peer closed while they were held).
//
//   loadgen stream-server [--port P]
//     A backend for `stream`: prints "listening PORT", then for each connection reads one TLS
//     record (the ClientHello) and from then on writes zeros as fast as the peer takes them.
//
//   loadgen stream --connect 127.0.0.1:PORT --sni NAME [--connections C] [--seconds S]
//     C connections each send a real ClientHello (so an L4 proxy routes them by SNI), then
//     read as fast as they can for S seconds; prints "bytes B seconds T connections C".
//
//   loadgen handshakes --connect 127.0.0.1:PORT --sni NAME --ca FILE [--path /small.html]
//                      [--threads T] [--seconds S] [--resume 0|1]
//     T threads each open connections one after another for S seconds: TCP, a TLS handshake
//     (with --resume 1, offering the session of the thread's first connection, as a browser
//     coming back does), one HTTP/1.1 GET of PATH read to its end, close_notify, close. Prints
//     "connections N resumed R failed F seconds T".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "source/common/network/fd.h"
#include "source/common/tls/client_hello_writer.h"
#include "source/common/tls/server_context.h"

namespace {

using mcproxy::network::UniqueFd;
using Clock = std::chrono::steady_clock;

using mcproxy::tls::SslCtxPtr;
using mcproxy::tls::SslPtr;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "loadgen: %s\n", message.c_str());
  std::exit(2);
}

class Flags {
 public:
  Flags(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 || i + 1 >= argc) die("expected --flag VALUE, got " + arg);
      values_[arg.substr(2)] = argv[++i];
    }
  }
  // The flag's value; without one, `fallback`, or an error if there is none.
  std::string get(const std::string& name, const char* fallback = nullptr) const {
    auto it = values_.find(name);
    if (it != values_.end()) return it->second;
    if (fallback == nullptr) die("--" + name + " is required");
    return fallback;
  }
  long number(const std::string& name, long fallback) const {
    return std::stol(get(name, std::to_string(fallback).c_str()));
  }

 private:
  std::map<std::string, std::string> values_;
};

sockaddr_in parseAddress(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) die("address must be IP:PORT, got " + text);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::stoi(text.substr(colon + 1))));
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &address.sin_addr) != 1) {
    die("not an IPv4 address: " + text);
  }
  return address;
}

void raiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// A non-blocking connect; the socket is writable once connected.
UniqueFd startConnect(const sockaddr_in& address) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 &&
      errno != EINPROGRESS) {
    fd.reset();
  }
  return fd;
}

class Epoll {
 public:
  Epoll() : fd_(epoll_create1(EPOLL_CLOEXEC)) {}
  void add(int fd, uint32_t events, uint64_t key) { control(EPOLL_CTL_ADD, fd, events, key); }
  void modify(int fd, uint32_t events, uint64_t key) { control(EPOLL_CTL_MOD, fd, events, key); }
  void remove(int fd) { epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }
  int wait(epoll_event* events, int max, int timeout_ms) {
    const int n = epoll_wait(fd_.get(), events, max, timeout_ms);
    return n < 0 ? 0 : n;
  }

 private:
  void control(int op, int fd, uint32_t events, uint64_t key) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = key;
    epoll_ctl(fd_.get(), op, fd, &event);
  }
  UniqueFd fd_;
};

SslCtxPtr clientContext(const std::string& alpn, const std::string& ca) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Every connection a full handshake: what a new client costs the server.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (!ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) != 1)
      die("cannot read " + ca);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  if (!alpn.empty()) {
    std::string wire;
    wire += static_cast<char>(alpn.size());
    wire += alpn;
    SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
  }
  return ctx;
}

// ---- idle -------------------------------------------------------------------------------------

struct IdleConnection {
  UniqueFd fd;
  SslPtr ssl;
  bool connected = false;
  bool established = false;
};

int runIdle(const Flags& flags) {
  const sockaddr_in address = parseAddress(flags.get("connect"));
  const std::string sni = flags.get("sni");
  const long count = flags.number("count", 1000);
  const long in_flight_max = flags.number("in-flight", 128);
  const long hold_seconds = flags.number("hold-seconds", 600);
  SslCtxPtr ctx = clientContext(flags.get("alpn", ""), flags.get("ca", ""));

  std::vector<IdleConnection> connections(static_cast<size_t>(count));
  Epoll epoll;
  constexpr uint64_t kStdin = ~0ull;
  long started = 0, established = 0, failed = 0, in_flight = 0, dropped = 0;
  bool reported = false;
  // The client preface, an empty SETTINGS, and the ACK of the server's SETTINGS (a server sends
  // its SETTINGS first thing; one that waits for the ACK closes the connection after ~10 s).
  static const std::string kPreface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                                      std::string("\0\0\0\4\0\0\0\0\0", 9) +
                                      std::string("\0\0\0\4\1\0\0\0\0", 9);

  auto fail = [&](size_t i) {
    IdleConnection& c = connections[i];
    if (c.fd.valid()) epoll.remove(c.fd.get());
    c.ssl.reset();
    c.fd.reset();
    if (c.established) {
      ++dropped;
    } else {
      ++failed;
      --in_flight;
    }
  };
  auto handshake = [&](size_t i) {
    IdleConnection& c = connections[i];
    ERR_clear_error();
    const int rc = SSL_connect(c.ssl.get());
    if (rc == 1) {
      c.established = true;
      ++established;
      --in_flight;
      const unsigned char* selected = nullptr;
      unsigned selected_len = 0;
      SSL_get0_alpn_selected(c.ssl.get(), &selected, &selected_len);
      if (selected_len == 2 && std::memcmp(selected, "h2", 2) == 0) {
        SSL_write(c.ssl.get(), kPreface.data(), static_cast<int>(kPreface.size()));
      }
      epoll.modify(c.fd.get(), EPOLLIN | EPOLLRDHUP, i);
      return;
    }
    const int error = SSL_get_error(c.ssl.get(), rc);
    if (error == SSL_ERROR_WANT_READ) {
      epoll.modify(c.fd.get(), EPOLLIN, i);
    } else if (error == SSL_ERROR_WANT_WRITE) {
      epoll.modify(c.fd.get(), EPOLLOUT, i);
    } else {
      fail(i);
    }
  };
  auto startMore = [&] {
    while (started < count && in_flight < in_flight_max) {
      const size_t i = static_cast<size_t>(started++);
      IdleConnection& c = connections[i];
      c.fd = startConnect(address);
      ++in_flight;
      if (!c.fd.valid()) {
        fail(i);
        continue;
      }
      c.ssl.reset(SSL_new(ctx.get()));
      SSL_set_fd(c.ssl.get(), c.fd.get());
      SSL_set_tlsext_host_name(c.ssl.get(), sni.c_str());
      SSL_set1_host(c.ssl.get(), sni.c_str());
      epoll.add(c.fd.get(), EPOLLOUT, i);
    }
  };

  startMore();
  const auto hold_until = Clock::now() + std::chrono::seconds(hold_seconds);
  std::vector<epoll_event> events(256);
  char scratch[16384];
  while (Clock::now() < hold_until) {
    if (!reported && established + failed == count) {
      std::printf("established %ld failed %ld\n", established, failed);
      std::fflush(stdout);
      reported = true;
      epoll.add(STDIN_FILENO, EPOLLIN, kStdin);
    }
    const int n = epoll.wait(events.data(), static_cast<int>(events.size()), 200);
    bool stdin_closed = false;
    for (int e = 0; e < n; ++e) {
      if (events[e].data.u64 == kStdin) {
        if (::read(STDIN_FILENO, scratch, sizeof(scratch)) <= 0) stdin_closed = true;
        continue;
      }
      const size_t i = events[e].data.u64;
      IdleConnection& c = connections[i];
      if (!c.fd.valid()) continue;
      if (!c.connected) {
        int error = 0;
        socklen_t len = sizeof(error);
        getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
        if (error != 0) {
          fail(i);
          continue;
        }
        c.connected = true;
      }
      if (!c.established) {
        handshake(i);
        continue;
      }
      // Held: take what the server sends (its SETTINGS, a ticket) so nothing backs up.
      while (true) {
        ERR_clear_error();
        const int got = SSL_read(c.ssl.get(), scratch, sizeof(scratch));
        if (got > 0) continue;
        const int error = SSL_get_error(c.ssl.get(), got);
        if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) fail(i);
        break;
      }
    }
    if (stdin_closed) break;
    startMore();
  }
  if (!reported) std::printf("established %ld failed %ld\n", established, failed);
  std::printf("closed %ld dropped %ld\n", established - dropped, dropped);
  std::fflush(stdout);
  return 0;
}

// ---- stream -----------------------------------------------------------------------------------

// A real ClientHello for `sni`, as OpenSSL would send it.
std::string clientHelloBytes(const std::string& sni) {
  SslCtxPtr ctx = clientContext("", "");
  return mcproxy::tls::writeClientHello(sni, {}, ctx.get());
}

struct StreamPeer {
  UniqueFd fd;
  std::string hello;  // server side: the record being received
  bool sending = false;
  bool connected = false;
  size_t hello_sent = 0;
};

int runStreamServer(const Flags& flags) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address = parseAddress("127.0.0.1:" + flags.get("port", "0"));
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(listener.get(), 1024) != 0) {
    die(std::string("listen: ") + std::strerror(errno));
  }
  socklen_t len = sizeof(address);
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &len);
  std::printf("listening %d\n", ntohs(address.sin_port));
  std::fflush(stdout);

  Epoll epoll;
  constexpr uint64_t kListener = ~0ull;
  epoll.add(listener.get(), EPOLLIN, kListener);
  std::map<uint64_t, StreamPeer> peers;
  uint64_t next_key = 0;
  const std::string zeros(256 * 1024, '\0');
  std::vector<char> scratch(256 * 1024);
  std::vector<epoll_event> events(256);
  while (true) {
    const int n = epoll.wait(events.data(), static_cast<int>(events.size()), -1);
    for (int e = 0; e < n; ++e) {
      const uint64_t key = events[e].data.u64;
      if (key == kListener) {
        while (true) {
          UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
          if (!fd.valid()) break;
          const uint64_t peer_key = next_key++;
          epoll.add(fd.get(), EPOLLIN | EPOLLRDHUP, peer_key);
          peers[peer_key].fd = std::move(fd);
        }
        continue;
      }
      auto it = peers.find(key);
      if (it == peers.end()) continue;
      StreamPeer& peer = it->second;
      bool closed = (events[e].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0;
      if (events[e].events & EPOLLIN) {
        const ssize_t got = ::read(peer.fd.get(), scratch.data(), scratch.size());
        if (got == 0 || (got < 0 && errno != EAGAIN)) closed = true;
        if (got > 0 && !peer.sending) {
          peer.hello.append(scratch.data(), static_cast<size_t>(got));
          if (peer.hello.size() >= 5) {
            const size_t record = 5 + ((static_cast<uint8_t>(peer.hello[3]) << 8) |
                                       static_cast<uint8_t>(peer.hello[4]));
            if (peer.hello.size() >= record) {
              peer.sending = true;
              epoll.modify(peer.fd.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP, key);
            }
          }
        }
      }
      if (!closed && peer.sending && (events[e].events & EPOLLOUT)) {
        const ssize_t sent = ::send(peer.fd.get(), zeros.data(), zeros.size(), MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN) closed = true;
      }
      if (closed) {
        epoll.remove(peer.fd.get());
        peers.erase(it);
      }
    }
  }
}

int runStream(const Flags& flags) {
  const sockaddr_in address = parseAddress(flags.get("connect"));
  const std::string hello = clientHelloBytes(flags.get("sni"));
  const long count = flags.number("connections", 4);
  const auto duration = std::chrono::duration<double>(std::stod(flags.get("seconds", "5")));
  Epoll epoll;
  std::vector<StreamPeer> peers(static_cast<size_t>(count));
  for (size_t i = 0; i < peers.size(); ++i) {
    peers[i].fd = startConnect(address);
    if (!peers[i].fd.valid()) die(std::string("connect: ") + std::strerror(errno));
    epoll.add(peers[i].fd.get(), EPOLLOUT, i);
  }
  std::vector<char> scratch(256 * 1024);
  std::vector<epoll_event> events(256);
  uint64_t bytes = 0;
  long closed = 0;
  const auto start = Clock::now();
  while (Clock::now() - start < duration && closed < count) {
    const int n = epoll.wait(events.data(), static_cast<int>(events.size()), 100);
    for (int e = 0; e < n; ++e) {
      StreamPeer& peer = peers[events[e].data.u64];
      if (!peer.fd.valid()) continue;
      if (peer.hello_sent < hello.size()) {
        const ssize_t sent = ::send(peer.fd.get(), hello.data() + peer.hello_sent,
                                    hello.size() - peer.hello_sent, MSG_NOSIGNAL);
        if (sent > 0) peer.hello_sent += static_cast<size_t>(sent);
        if (peer.hello_sent == hello.size()) {
          epoll.modify(peer.fd.get(), EPOLLIN | EPOLLRDHUP, events[e].data.u64);
        }
        continue;
      }
      const ssize_t got = ::read(peer.fd.get(), scratch.data(), scratch.size());
      if (got > 0) {
        bytes += static_cast<uint64_t>(got);
      } else if (got == 0 || errno != EAGAIN) {
        epoll.remove(peer.fd.get());
        peer.fd.reset();
        ++closed;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("bytes %llu seconds %.3f connections %ld closed_early %ld\n",
              static_cast<unsigned long long>(bytes), seconds, count, closed);
  return 0;
}

// One TLS connection with one HTTP/1.1 request, blocking. Returns false on any failure; sets
// `resumed`, and leaves the session in `session` (for the next one) when asked.
bool oneConnection(const sockaddr_in& address, SSL_CTX* ctx, const std::string& sni,
                   const std::string& request, SSL_SESSION* offer, SSL_SESSION** session,
                   bool& resumed) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return false;
  }
  SslPtr ssl(SSL_new(ctx));
  SSL_set_fd(ssl.get(), fd.get());
  SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
  if (offer != nullptr) SSL_set_session(ssl.get(), offer);
  if (SSL_connect(ssl.get()) != 1 ||
      SSL_write(ssl.get(), request.data(), static_cast<int>(request.size())) <= 0) {
    ERR_clear_error();
    return false;
  }
  // "Connection: close": the response ends with the connection.
  char buffer[16384];
  std::string head;
  int n;
  while ((n = SSL_read(ssl.get(), buffer, sizeof(buffer))) > 0) {
    if (head.size() < 12) head.append(buffer, static_cast<size_t>(n));
  }
  ERR_clear_error();
  resumed = SSL_session_reused(ssl.get()) == 1;
  if (session != nullptr) *session = SSL_get1_session(ssl.get());
  SSL_shutdown(ssl.get());
  return head.starts_with("HTTP/1.1 200");
}

int runHandshakes(const Flags& flags) {
  const sockaddr_in address = parseAddress(flags.get("connect"));
  const std::string sni = flags.get("sni");
  const std::string request = "GET " + flags.get("path", "/small.html") +
                              " HTTP/1.1\r\nHost: " + sni + "\r\nConnection: close\r\n\r\n";
  const long threads = flags.number("threads", 4);
  const bool resume = flags.number("resume", 0) != 0;
  const auto duration = std::chrono::duration<double>(std::stod(flags.get("seconds", "5")));
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx.get(), flags.get("ca").c_str(), nullptr) != 1) {
    die("cannot load --ca");
  }
  SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>("\x08http/1.1"), 9);
  std::atomic<long> connections{0}, resumed_count{0}, failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> running;
  for (long t = 0; t < threads; ++t) {
    running.emplace_back([&] {
      SSL_SESSION* session = nullptr;
      while (Clock::now() - start < duration) {
        bool resumed = false;
        SSL_SESSION* fresh = nullptr;
        const bool ok = oneConnection(address, ctx.get(), sni, request, resume ? session : nullptr,
                                      resume ? &fresh : nullptr, resumed);
        if (fresh != nullptr) {
          // Keep offering the newest ticket (TLS 1.3 tickets are meant for one use).
          if (session != nullptr) SSL_SESSION_free(session);
          session = fresh;
        }
        (ok ? connections : failed)++;
        if (resumed) resumed_count++;
      }
      if (session != nullptr) SSL_SESSION_free(session);
    });
  }
  for (auto& thread : running) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("connections %ld resumed %ld failed %ld seconds %.3f\n", connections.load(),
              resumed_count.load(), failed.load(), seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  raiseFdLimit();
  if (argc < 2) die("usage: loadgen idle|stream-server|stream|handshakes --flag value ...");
  const std::string command = argv[1];
  const Flags flags(argc, argv, 2);
  if (command == "idle") return runIdle(flags);
  if (command == "stream-server") return runStreamServer(flags);
  if (command == "stream") return runStream(flags);
  if (command == "handshakes") return runHandshakes(flags);
  die("unknown command " + command);
}
