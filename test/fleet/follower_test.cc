#include "source/fleet/follower.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "source/snapshot/config_loader.h"
#include "test/mocks/fleet/fake_etcd.h"

namespace mcproxy::fleet {
namespace {

using mcproxy::config::v1::Bootstrap;
using namespace std::chrono_literals;

std::string tempDb(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir ? dir : "/tmp") + "/" + name + "-" + std::to_string(::getpid()) + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
  return path;
}

std::string configText(int routes, const std::string& first = "a.test") {
  std::string text = "listeners { name: \"edge\" address: \"127.0.0.1:8443\"\n";
  text += "  routes { hostname: \"" + first + "\" backend: \"127.0.0.1:9001\" }\n";
  for (int i = 1; i < routes; ++i) {
    text += "  routes { hostname: \"r" + std::to_string(i) +
            ".bulk.test\" backend: \"127.0.0.1:9002\" }\n";
  }
  return text + "}\n";
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

class FleetTest : public ::testing::Test {
 protected:
  FleetTest() : author_(tempDb(::testing::UnitTest::GetInstance()->current_test_info()->name())) {}

  // Writes `text` into the author's database and publishes it; the fleet version.
  int64_t publishText(const std::string& text) {
    author_.write(snapshot::parseTextConfig(text, "test"), "file:test");
    auto session = etcd_.connectFromElsewhere();
    auto published = publish(*session, author_, {"edge", 0, std::nullopt, "test"});
    EXPECT_TRUE(published.ok()) << published.status();
    return published.ok() ? published->version() : 0;
  }

  std::unique_ptr<Follower> follow(NodeStatus running = {}) {
    FollowerOptions options{"edge", "n1", 1s, [this] { return etcd_.connect(); }};
    auto follower = std::make_unique<Follower>(
        std::move(options), std::move(running),
        [this](const PublishedSnapshot& published, Bootstrap config) {
          std::promise<ApplyVerdict> verdict;
          {
            std::lock_guard lock(mutex_);
            applied_.push_back(published.version());
            configs_.push_back(std::move(config));
            verdict.set_value(next_verdict_ ? *std::exchange(next_verdict_, std::nullopt)
                                            : ApplyVerdict{true, ++local_version_, ""});
          }
          return verdict.get_future();
        });
    follower->start();
    return follower;
  }

  std::optional<NodeStatus> nodeStatus() {
    auto kv = etcd_.value(fleet::nodeKey("edge", "n1"));
    if (!kv) return std::nullopt;
    NodeStatus status;
    EXPECT_TRUE(fromJson(kv->value(), status).ok());
    return status;
  }

  bool nodeKeyShows(const std::string& state, int64_t version) {
    auto status = nodeStatus();
    return status && status->state() == state &&
           (state == "refused" ? status->refused_version() : status->applied_version()) == version;
  }

  std::vector<int64_t> applied() {
    std::lock_guard lock(mutex_);
    return applied_;
  }

  FakeEtcdCluster etcd_;
  snapshot::SnapshotStore author_;
  std::mutex mutex_;
  std::vector<int64_t> applied_;
  std::vector<Bootstrap> configs_;
  std::optional<ApplyVerdict> next_verdict_;
  int64_t local_version_ = 0;
};

TEST_F(FleetTest, AppliesCurrentAtStartThenEachPublish) {
  ASSERT_EQ(publishText(configText(1)), 1);
  auto follower = follow();
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  ASSERT_EQ(publishText(configText(2)), 2);
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 2); }));
  EXPECT_EQ(applied(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(configs_[1].listeners(0).routes_size(), 2);
  const NodeStatus status = *nodeStatus();
  EXPECT_EQ(status.local_version(), 2);
  EXPECT_EQ(status.applied_hash(), author_.load(2).info.content_hash);
  EXPECT_EQ(status.node_id(), "n1");
  EXPECT_GT(status.pid(), 0);
  EXPECT_TRUE(follower->connected());
  EXPECT_EQ(follower->status().applied_version(), 2);
}

TEST_F(FleetTest, WhatTheNodeRunsIsNotCompiledAgain) {
  ASSERT_EQ(publishText(configText(1)), 1);
  NodeStatus running;
  running.set_local_version(5);
  running.set_applied_hash(author_.load(1).info.content_hash);
  auto follower = follow(running);
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  EXPECT_TRUE(applied().empty());
  EXPECT_EQ(nodeStatus()->local_version(), 5);
}

TEST_F(FleetTest, ARefusedVersionKeepsTheLastGoodOneUntilTheNextPublish) {
  ASSERT_EQ(publishText(configText(1)), 1);
  auto follower = follow();
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  {
    std::lock_guard lock(mutex_);
    next_verdict_ = ApplyVerdict{false, 0, "listeners[0].routes[1].tls_cert: cannot read"};
  }
  ASSERT_EQ(publishText(configText(2)), 2);
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("refused", 2); }));
  NodeStatus status = *nodeStatus();
  EXPECT_EQ(status.applied_version(), 1);
  EXPECT_EQ(status.local_version(), 1);
  EXPECT_EQ(status.error(), "listeners[0].routes[1].tls_cert: cannot read");
  ASSERT_EQ(publishText(configText(3)), 3);
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 3); }));
  status = *nodeStatus();
  EXPECT_EQ(status.error(), "");
  EXPECT_EQ(status.refused_version(), 0);
}

TEST_F(FleetTest, BytesThatDoNotHashToThePublishedHashAreNeverApplied) {
  ASSERT_EQ(publishText(configText(1)), 1);
  auto follower = follow();
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  PublishedSnapshot forged;
  ASSERT_TRUE(fromJson(etcd_.value(currentKey("edge"))->value(), forged).ok());
  forged.set_version(9);
  forged.set_content_hash(std::string(64, '0'));
  etcd_.put(currentKey("edge"), toJson(forged));
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("refused", 9); }));
  EXPECT_NE(nodeStatus()->error().find("not the published 000000"), std::string::npos);
  EXPECT_EQ(applied(), (std::vector<int64_t>{1}));
}

TEST_F(FleetTest, CatchesUpWithWhatWasPublishedWhileEtcdWasAway) {
  ASSERT_EQ(publishText(configText(1)), 1);
  auto follower = follow();
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  etcd_.setDown(true);
  ASSERT_TRUE(eventually([&] { return !follower->connected(); }));
  ASSERT_EQ(publishText(configText(2)), 2);  // reaches etcd from elsewhere
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(applied(), (std::vector<int64_t>{1}));  // the node cannot see it yet
  etcd_.setDown(false);
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 2); }));
  EXPECT_TRUE(follower->connected());
  EXPECT_EQ(etcd_.grantedLeases(), 2);  // a new session, a new lease
}

TEST_F(FleetTest, AnExpiredLeaseIsReplacedAndTheKeyComesBack) {
  ASSERT_EQ(publishText(configText(1)), 1);
  auto follower = follow();
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  const int64_t first_lease = etcd_.value(fleet::nodeKey("edge", "n1"))->lease();
  etcd_.expireLease(first_lease);
  EXPECT_FALSE(nodeStatus());
  ASSERT_TRUE(eventually([&] { return nodeStatus().has_value(); }));
  EXPECT_NE(etcd_.value(fleet::nodeKey("edge", "n1"))->lease(), first_lease);
  EXPECT_EQ(nodeStatus()->applied_version(), 1);
}

TEST_F(FleetTest, StoppingRevokesTheLeaseSoTheNodesKeyGoesAtOnce) {
  ASSERT_EQ(publishText(configText(1)), 1);
  auto follower = follow();
  ASSERT_TRUE(eventually([&] { return nodeKeyShows("applied", 1); }));
  const int64_t lease = etcd_.value(fleet::nodeKey("edge", "n1"))->lease();
  follower->stop();
  EXPECT_FALSE(nodeStatus());
  EXPECT_FALSE(etcd_.leaseAlive(lease));
}

TEST_F(FleetTest, LargeConfigsAreChunkedAndReadBackWhole) {
  ASSERT_EQ(publishText(configText(40000)), 1);
  PublishedSnapshot published;
  ASSERT_TRUE(fromJson(etcd_.value(currentKey("edge"))->value(), published).ok());
  EXPECT_GE(published.chunks(), 2);
  EXPECT_EQ(published.routes(), 40000);
  for (int i = 0; i < published.chunks(); ++i) {
    EXPECT_LE(etcd_.value(published.chunk_prefix() + absl::StrFormat("%06d", i))->value().size(),
              kChunkBytes);
  }
  auto session = etcd_.connectFromElsewhere();
  auto config = fetchSnapshot(*session, published);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(snapshot::SnapshotStore::contentHash(*config), author_.load(1).info.content_hash);
}

TEST_F(FleetTest, APublisherThatLosesTheRaceChangesNothing) {
  ASSERT_EQ(publishText(configText(1)), 1);
  author_.write(snapshot::parseTextConfig(configText(2), "test"), "file:2");
  author_.write(snapshot::parseTextConfig(configText(3), "test"), "file:3");
  // Between this publisher's read of current and its transaction, another one publishes 3.
  etcd_.beforeNextTxn([&] {
    auto other = etcd_.connectFromElsewhere();
    auto won = publish(*other, author_, {"edge", 3, std::nullopt, "other@host"});
    ASSERT_TRUE(won.ok()) << won.status();
  });
  auto session = etcd_.connectFromElsewhere();
  auto lost = publish(*session, author_, {"edge", 2, std::nullopt, "me@host"});
  ASSERT_TRUE(absl::IsAborted(lost.status())) << lost.status();
  EXPECT_NE(lost.status().message().find("moved fleet edge's current to version 3 (from "
                                         "other@host)"),
            std::string::npos)
      << lost.status();
  PublishedSnapshot current;
  ASSERT_TRUE(fromJson(etcd_.value(currentKey("edge"))->value(), current).ok());
  EXPECT_EQ(current.version(), 3);
  EXPECT_FALSE(etcd_.value(snapshotKey("edge", 2)));
}

TEST_F(FleetTest, IfCurrentAndVersionClashesRefuseBeforeWriting) {
  ASSERT_EQ(publishText(configText(1)), 1);
  author_.write(snapshot::parseTextConfig(configText(2), "test"), "file:2");
  auto session = etcd_.connectFromElsewhere();
  auto stale = publish(*session, author_, {"edge", 2, 0, "me"});
  ASSERT_TRUE(absl::IsFailedPrecondition(stale.status())) << stale.status();
  EXPECT_NE(stale.status().message().find("runs version 1, not 0"), std::string::npos);
  EXPECT_FALSE(etcd_.value(snapshotKey("edge", 2)));

  snapshot::SnapshotStore other(tempDb("other"));
  other.write(snapshot::parseTextConfig(configText(1, "other.test"), "test"), "file:other");
  auto clash = publish(*session, other, {"edge", 1, std::nullopt, "other"});
  ASSERT_TRUE(absl::IsFailedPrecondition(clash.status())) << clash.status();
  EXPECT_NE(clash.status().message().find("already has a version 1 with another content"),
            std::string::npos);
  // A rollback: an older version published again points current at it.
  auto rollback = publish(*session, author_, {"edge", 1, 1, "me"});
  ASSERT_TRUE(rollback.ok()) << rollback.status();
  EXPECT_EQ(rollback->version(), 1);
}

}  // namespace
}  // namespace mcproxy::fleet

namespace mcproxy::fleet {
namespace {

TEST_F(FleetTest, PruneKeepsTheNewestAndCurrentAndTheirChunksOnly) {
  for (int i = 1; i <= 5; ++i) ASSERT_EQ(publishText(configText(i)), i);
  auto session = etcd_.connectFromElsewhere();
  // A rollback: current points at version 2, older than the two kept.
  auto rollback = publish(*session, author_, {"edge", 2, std::nullopt, "me"});
  ASSERT_TRUE(rollback.ok()) << rollback.status();
  auto dry = pruneFleet(*session, "edge", 2, /*dry_run=*/true);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->deleted, (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE(etcd_.value(snapshotKey("edge", 1)).has_value());  // a dry run deletes nothing
  auto pruned = pruneFleet(*session, "edge", 2, /*dry_run=*/false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->kept, (std::vector<int64_t>{2, 4, 5}));
  EXPECT_EQ(pruned->chunk_sets_deleted, 2);
  EXPECT_FALSE(etcd_.value(snapshotKey("edge", 3)));
  auto chunks = session->rangePrefix("/mcproxy/edge/chunks/", true);
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->kvs_size(), 3);  // one chunk each for versions 2, 4 and 5
  // What current points at still reads back whole.
  PublishedSnapshot current;
  ASSERT_TRUE(fromJson(etcd_.value(currentKey("edge"))->value(), current).ok());
  EXPECT_TRUE(fetchSnapshot(*session, current).ok());
}

TEST_F(FleetTest, APublishWhoseChunksWerePrunedMeanwhileChangesNothing) {
  ASSERT_EQ(publishText(configText(1)), 1);
  author_.write(snapshot::parseTextConfig(configText(2), "test"), "file:2");
  etcd_.beforeNextTxn([&] {
    auto other = etcd_.connectFromElsewhere();
    auto pruned = pruneFleet(*other, "edge", 1, false);  // version 2's chunks: no version yet
    ASSERT_TRUE(pruned.ok()) << pruned.status();
    EXPECT_EQ(pruned->chunk_sets_deleted, 1);
  });
  auto session = etcd_.connectFromElsewhere();
  auto lost = publish(*session, author_, {"edge", 2, std::nullopt, "me"});
  ASSERT_TRUE(absl::IsAborted(lost.status())) << lost.status();
  EXPECT_NE(lost.status().message().find("a prune deleted this publish's chunks"),
            std::string::npos);
  PublishedSnapshot current;
  ASSERT_TRUE(fromJson(etcd_.value(currentKey("edge"))->value(), current).ok());
  EXPECT_EQ(current.version(), 1);
  ASSERT_TRUE(publish(*session, author_, {"edge", 2, std::nullopt, "me"}).ok());  // again: fine
}

}  // namespace
}  // namespace mcproxy::fleet
