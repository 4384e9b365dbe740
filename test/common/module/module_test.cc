#include "source/common/module/module.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace mcproxy::module {
namespace {

TEST(ModuleTest, TheAbiRuleIsSameMajorAndMinorAtMostTheProxys) {
  std::string why;
  EXPECT_TRUE(abiCompatible("1.0.0", "1.0.0", why));
  EXPECT_TRUE(abiCompatible("1.0.7", "1.0.0", why));   // patches never matter
  EXPECT_TRUE(abiCompatible("1.2.0", "1.3.1", why));   // an older minor: a subset
  EXPECT_FALSE(abiCompatible("1.4.0", "1.3.1", why));  // a newer minor may call what is not here
  EXPECT_EQ(why,
            "built for module ABI 1.4.0, this mc-proxy has ABI 1.3.1 (the major must match and "
            "the minor be at most 3)");
  EXPECT_FALSE(abiCompatible("2.0.0", "1.3.1", why));
  EXPECT_FALSE(abiCompatible("1.0", "1.0.0", why));
  EXPECT_EQ(why, "mcproxy_module_init() returned \"1.0\", not an ABI version MAJOR.MINOR.PATCH");
  EXPECT_FALSE(abiCompatible("one.0.0", "1.0.0", why));
}

TEST(ModuleTest, LoadErrorsNameTheFileAndTheReason) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
      "/not-a-module-" + std::to_string(::getpid()) + ".so";
  {
    std::ofstream out(path);
    out << "not ELF";
  }
  auto loaded = Module::load("m", path, "");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("cannot load " + path + ": "), std::string::npos)
      << loaded.status();
  loaded = Module::load("m", path, std::string(64, 'a'));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find(path + ": sha256 is "), std::string::npos);
  EXPECT_NE(loaded.status().message().find(", the config says " + std::string(64, 'a')),
            std::string::npos);
  loaded = Module::load("m", path + ".missing", "");
  EXPECT_EQ(loaded.status().message(), path + ".missing: No such file or directory");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace mcproxy::module
