#include <gtest/gtest.h>

#include "source/fleet/etcd_client.h"
#include "source/fleet/fleet.h"

namespace mcproxy::fleet {
namespace {

TEST(EtcdOptionsTest, ParsesEndpointsInOrder) {
  auto options =
      EtcdOptions::parse("http://127.0.0.1:2379, https://etcd-1.example:2381/,http://[::1]:23790");
  ASSERT_TRUE(options.ok()) << options.status();
  ASSERT_EQ(options->endpoints.size(), 3u);
  EXPECT_EQ(options->endpoints[0].host, "127.0.0.1");
  EXPECT_EQ(options->endpoints[0].port, 2379);
  EXPECT_FALSE(options->endpoints[0].tls);
  EXPECT_EQ(options->endpoints[1].host, "etcd-1.example");
  EXPECT_EQ(options->endpoints[1].port, 2381);
  EXPECT_TRUE(options->endpoints[1].tls);
  EXPECT_EQ(options->endpoints[2].host, "::1");
  EXPECT_EQ(options->endpoints[2].port, 23790);
  EXPECT_EQ(options->describe(),
            "http://127.0.0.1:2379,https://etcd-1.example:2381/,http://[::1]:23790");
  EXPECT_EQ(EtcdOptions::parse("http://[::1]")->endpoints[0].host, "::1");
  EXPECT_EQ(EtcdOptions::parse("http://etcd")->endpoints[0].port, 2379);
}

TEST(EtcdOptionsTest, TakesTheTlsFilesAClientCertificateWithItsKey) {
  auto options = EtcdOptions::parse("https://etcd:2379", "ca.pem", "c.pem", "k.pem");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->ca_file, "ca.pem");
  EXPECT_EQ(options->cert_file, "c.pem");
  EXPECT_EQ(options->key_file, "k.pem");
  for (const auto& [cert, key] :
       {std::pair<std::string, std::string>{"c.pem", ""}, {"", "k.pem"}}) {
    auto half = EtcdOptions::parse("https://etcd:2379", "", cert, key);
    EXPECT_TRUE(absl::IsInvalidArgument(half.status()));
    EXPECT_EQ(half.status().message(), "--etcd-cert and --etcd-key go together");
  }
}

TEST(EtcdOptionsTest, RefusesWhatIsNotAnEndpointNamingIt) {
  for (const char* bad : {"", "127.0.0.1:2379", "grpc://etcd:2379", "http://:2379", "http://etcd:0",
                          "http://etcd:70000", "http://etcd:x"}) {
    auto options = EtcdOptions::parse(bad);
    EXPECT_FALSE(options.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(options.status())) << bad;
    EXPECT_NE(options.status().message().find("--etcd"), std::string::npos);
  }
}

TEST(EtcdTest, PrefixEndCoversEveryKeyUnderThePrefix) {
  EXPECT_EQ(Etcd::prefixEnd("/mcproxy/edge/nodes/"), "/mcproxy/edge/nodes0");
  EXPECT_EQ(Etcd::prefixEnd("a\xff"), "b");
  EXPECT_EQ(Etcd::prefixEnd("\xff"), std::string(1, '\0'));
}

TEST(FleetKeysTest, NamesAreKeyParts) {
  EXPECT_TRUE(checkName("--fleet", "edge-eu.1_a").ok());
  EXPECT_FALSE(checkName("--fleet", "").ok());
  EXPECT_FALSE(checkName("--fleet", "a/b").ok());
  EXPECT_FALSE(checkName("--node-id", "n 1").ok());
  EXPECT_EQ(currentKey("edge"), "/mcproxy/edge/current");
  EXPECT_EQ(snapshotKey("edge", 12), "/mcproxy/edge/snapshots/12");
  EXPECT_EQ(nodeKey("edge", "n1"), "/mcproxy/edge/nodes/n1");
}

TEST(FleetKeysTest, TheLocalSourceOfAFleetVersionReadsBack) {
  PublishedSnapshot published;
  published.set_version(12);
  published.set_source("file:edge.textproto");
  const std::string source = localSource("edge", published);
  EXPECT_EQ(source, "fleet:edge version 12 (file:edge.textproto)");
  EXPECT_EQ(fleetVersionOf("edge", source), 12);
  EXPECT_EQ(fleetVersionOf("other", source), 0);
  EXPECT_EQ(fleetVersionOf("edge", "file:edge.textproto"), 0);
  EXPECT_EQ(fleetVersionOf("edge", "fleet:edge version x (y)"), 0);
}

TEST(FleetKeysTest, StatusRoundTripsThroughJson) {
  NodeStatus status;
  status.set_node_id("n1");
  status.set_state("refused");
  status.set_applied_version(7);
  status.set_error("listeners[0].routes[1].tls_cert: cannot read \"certs/b.crt\"");
  const std::string json = toJson(status);
  EXPECT_NE(json.find("\"applied_version\":\"7\""), std::string::npos) << json;
  NodeStatus back;
  ASSERT_TRUE(fromJson(json, back).ok());
  EXPECT_EQ(back.SerializeAsString(), status.SerializeAsString());
  EXPECT_TRUE(absl::IsDataLoss(fromJson("{not json", back)));
}

}  // namespace
}  // namespace mcproxy::fleet
