#include "source/common/network/filter_manager.h"

#include <gtest/gtest.h>

#include "test/mocks/network/mocks.h"

namespace mcproxy::network {
namespace {

using test::ScriptedReadFilter;

// A chain of scripted filters named a, b, c... over a fake connection.
class NetworkFilterManagerTest : public ::testing::Test {
 protected:
  // Filters are made when the chain is built; filters_ then holds them in order.
  void add(const std::string& name) {
    factories_.push_back([this, name] {
      auto made = std::make_unique<ScriptedReadFilter>(name, log_);
      filters_.push_back(made.get());
      return made;
    });
  }
  void build() {
    manager_ = std::make_unique<FilterManager>(connection_, factories_);
    connection_.manager = manager_.get();
  }
  void script(size_t index, std::function<void(ScriptedReadFilter&)> set) { set(*filters_[index]); }
  void receive(const std::string& bytes) {
    connection_.read_buffer.append(bytes);
    manager_->onData();
  }

  std::vector<std::string> log_;
  std::vector<FilterFactoryCb> factories_;
  std::vector<ScriptedReadFilter*> filters_;
  test::FakeConnection connection_;
  std::unique_ptr<FilterManager> manager_;
};

TEST_F(NetworkFilterManagerTest, FiltersRunInOrderAndTheChainEndsWithoutATerminalFilter) {
  add("a");
  add("b");
  build();
  manager_->start();
  EXPECT_TRUE(connection_.filters_ready);
  receive("hi");
  EXPECT_EQ(log_, (std::vector<std::string>{"a.new", "b.new", "a.data(hi)", "b.data(hi)", "a.close",
                                            "b.close"}));
  EXPECT_EQ(connection_.close_reason, CloseReason::kNoTerminalFilter);
}

TEST_F(NetworkFilterManagerTest, AStoppedFilterResumesTheChainAfterItself) {
  add("a");
  add("b");
  add("c");
  build();
  script(1, [](ScriptedReadFilter& b) {
    b.on_data = [](ScriptedReadFilter&, buffer::Buffer&) { return FilterStatus::kStopIteration; };
  });
  script(2, [](ScriptedReadFilter& c) {
    c.on_data = [](ScriptedReadFilter& self, buffer::Buffer& data) {
      self.callbacks->takeOverTransport();
      data.clear();
      return FilterStatus::kStopIteration;
    };
  });
  manager_->start();
  receive("x");
  EXPECT_EQ(log_.back(), "b.data(x)");  // c waits
  filters_[1]->callbacks->continueReading();
  EXPECT_EQ(log_.back(), "c.data(x)");  // from b's successor, not from a
  EXPECT_TRUE(connection_.transport_taken);
  EXPECT_FALSE(connection_.closed());
  receive("more");  // after a takeover the chain no longer runs
  EXPECT_EQ(log_.back(), "c.data(x)");
}

TEST_F(NetworkFilterManagerTest, AFilterStoppingOnNewConnectionHoldsReadingUntilItContinues) {
  add("a");
  add("b");
  build();
  script(0, [](ScriptedReadFilter& a) {
    a.on_new = [](ScriptedReadFilter&) { return FilterStatus::kStopIteration; };
  });
  manager_->start();
  EXPECT_FALSE(connection_.filters_ready);
  EXPECT_EQ(log_, (std::vector<std::string>{"a.new"}));
  connection_.read_buffer.append("early");
  filters_[0]->callbacks->continueReading();
  // b accepts the connection, then the bytes already read go through the whole chain.
  EXPECT_EQ(log_, (std::vector<std::string>{"a.new", "b.new", "a.data(early)", "b.data(early)",
                                            "a.close", "b.close"}));
}

TEST_F(NetworkFilterManagerTest, AFilterThatClosesEndsTheChainAtOnce) {
  add("a");
  add("b");
  build();
  script(0, [](ScriptedReadFilter& a) {
    a.on_data = [](ScriptedReadFilter& self, buffer::Buffer&) {
      self.callbacks->connection().close(CloseReason::kFirewallBlockedIp);
      return FilterStatus::kStopIteration;
    };
  });
  manager_->start();
  receive("x");
  EXPECT_EQ(log_, (std::vector<std::string>{"a.new", "b.new", "a.data(x)", "a.close", "b.close"}));
  EXPECT_EQ(connection_.close_reason, CloseReason::kFirewallBlockedIp);
}

TEST_F(NetworkFilterManagerTest, EndOfStreamReachesTheFiltersAndDrainTellsEachOne) {
  add("a");
  build();
  script(0, [](ScriptedReadFilter& a) {
    a.on_data = [](ScriptedReadFilter&, buffer::Buffer&) { return FilterStatus::kStopIteration; };
  });
  manager_->start();
  connection_.read_ended = true;
  manager_->onData();
  manager_->drain();
  EXPECT_EQ(log_, (std::vector<std::string>{"a.new", "a.data(,end)", "a.drain"}));
}

}  // namespace
}  // namespace mcproxy::network
