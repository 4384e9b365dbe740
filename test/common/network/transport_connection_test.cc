#include "source/common/network/transport_connection.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

#include "source/common/network/address.h"

namespace mcproxy::network {
namespace {

// Records what a TransportConnection tells its owner; output comes from `to_send`.
class Owner : public TransportCallbacks {
 public:
  void onTransportReady() override { ready = true; }
  void onTransportData(const char* data, size_t len) override { received.append(data, len); }
  void produceOutput(std::string& out, size_t) override {
    out += to_send;
    to_send.clear();
  }
  void onTransportFlushed() override { ++flushed; }
  bool readPaused() const override { return paused; }
  void onTransportEnd(TransportEnd how, const std::string& why) override {
    ended = true;
    end = how;
    detail = why;
  }

  bool ready = false;
  std::string received;
  std::string to_send;
  int flushed = 0;
  bool paused = false;
  bool ended = false;
  TransportEnd end = TransportEnd::kReset;
  std::string detail;
};

class TransportConnectionTest : public ::testing::Test {
 protected:
  template <class Done>
  void runUntil(Done done) {
    for (int i = 0; i < 200 && !done(); ++i) dispatcher_.runOnce();
    ASSERT_TRUE(done());
  }
  // A listening socket on 127.0.0.1 and the address the OS gave it.
  UniqueFd listen(Address& address) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    std::string error;
    Address any = *Address::parseIpPort("127.0.0.1:0", error);
    EXPECT_EQ(::bind(fd.get(), any.sockaddrPtr(), any.sockaddrLen()), 0);
    EXPECT_EQ(::listen(fd.get(), 8), 0);
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    address = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&bound), len);
    return fd;
  }

  event::Dispatcher dispatcher_;
};

TEST_F(TransportConnectionTest, ClientSideWritesItsPrefixThenTheOwnersBytes) {
  Address address;
  UniqueFd listener = listen(address);
  Owner owner;
  owner.to_send = "request";
  TransportConnection connection(dispatcher_, owner);
  connection.connect(
      address, "PROXY-HEADER ", [](int fd) { return makeRawTransportSocket(fd); },
      std::chrono::milliseconds(1000));
  runUntil([&] { return owner.ready; });
  UniqueFd peer(::accept(listener.get(), nullptr, nullptr));
  runUntil([&] { return owner.flushed > 0; });
  char buffer[64] = {};
  ASSERT_EQ(::recv(peer.get(), buffer, sizeof(buffer), 0), 20);
  EXPECT_EQ(std::string(buffer), "PROXY-HEADER request");
  ::send(peer.get(), "answer", 6, 0);
  runUntil([&] { return owner.received == "answer"; });
  peer.reset();
  runUntil([&] { return owner.ended; });
  EXPECT_EQ(owner.end, TransportEnd::kPeerClosed);
  EXPECT_EQ(connection.bytesRead(), 6u);
  EXPECT_EQ(connection.bytesWritten(), 7u);  // the prefix is not the owner's
}

TEST_F(TransportConnectionTest, ARefusedConnectIsReportedFromTheLoopNotFromConnect) {
  Address address;
  { UniqueFd closed_again = listen(address); }  // nobody listens there any more
  Owner owner;
  TransportConnection connection(dispatcher_, owner);
  connection.connect(
      address, "", [](int fd) { return makeRawTransportSocket(fd); },
      std::chrono::milliseconds(1000));
  EXPECT_FALSE(owner.ended);
  runUntil([&] { return owner.ended; });
  EXPECT_EQ(owner.end, TransportEnd::kConnectFailed);
  EXPECT_NE(owner.detail.find("refused"), std::string::npos) << owner.detail;
}

TEST_F(TransportConnectionTest, ReadingStopsWhileTheOwnerIsPausedAndResumes) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), 0);
  UniqueFd mine(pair[0]);
  UniqueFd peer(pair[1]);
  Owner owner;
  owner.paused = true;
  TransportConnection connection(dispatcher_, owner);
  connection.accept(mine.get(), makeRawTransportSocket(mine.get()),
                    std::chrono::milliseconds(1000));
  ASSERT_TRUE(owner.ready);
  ::send(peer.get(), "abc", 3, 0);
  bool over = false;
  event::Timer stop(dispatcher_, [&over] { over = true; });
  stop.arm(std::chrono::milliseconds(30));
  while (!over) dispatcher_.runOnce();
  EXPECT_EQ(owner.received, "");
  owner.paused = false;
  connection.resumeReading();
  runUntil([&] { return owner.received == "abc"; });
}

TEST_F(TransportConnectionTest, ALingeringCloseSendsFinAndWaitsForThePeer) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), 0);
  UniqueFd mine(pair[0]);
  UniqueFd peer(pair[1]);
  Owner owner;
  owner.to_send = "bye";
  TransportConnection connection(dispatcher_, owner);
  connection.accept(mine.get(), makeRawTransportSocket(mine.get()),
                    std::chrono::milliseconds(1000));
  connection.flush();
  connection.lingeringClose(std::chrono::milliseconds(2000));
  char buffer[8] = {};
  ASSERT_EQ(::recv(peer.get(), buffer, sizeof(buffer), 0), 3);
  EXPECT_EQ(::recv(peer.get(), buffer, sizeof(buffer), 0), 0);  // FIN
  ::send(peer.get(), "late", 4, 0);                             // read and discarded, no RST
  EXPECT_FALSE(owner.ended);
  peer.reset();
  runUntil([&] { return owner.ended; });
  EXPECT_EQ(owner.end, TransportEnd::kLingerDone);
}

}  // namespace
}  // namespace mcproxy::network
