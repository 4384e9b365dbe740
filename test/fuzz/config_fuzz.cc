// libFuzzer target: the config compiler, as `mcproxyctl compile` runs it. Text-format config is
// parsed, validated and compiled into a snapshot (every in-tree filter's factory included); a
// config that compiles is written to a fresh in-memory snapshot store and read back.
//
// Aborts when anything other than a ConfigError escapes (an operator's typo must never crash
// the proxy or the CLI), when a ConfigError names no field and no position, or when the store
// does not give back exactly what it was given (normalized) or gives back something that no
// longer compiles: the proxy loads what the store holds, so both must agree.
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "source/common/config/config_error.h"
#include "source/common/stats/stats.h"
#include "source/snapshot/config_loader.h"
#include "source/snapshot/snapshot.h"
#include "source/snapshot/store.h"
#include "test/fuzz/fuzz_check.h"

namespace {}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mcproxy::snapshot::SnapshotStore;
  const std::string text(reinterpret_cast<const char*>(data), size);
  mcproxy::config::v1::Bootstrap config;
  try {
    config = mcproxy::snapshot::parseTextConfig(text, "fuzz.textproto");
    mcproxy::stats::Store stats;
    mcproxy::snapshot::compile(config, stats, 1);
  } catch (const mcproxy::config::ConfigError& e) {
    // "FIELD: reason" or "fuzz.textproto:LINE:COL: reason": never a bare reason.
    FUZZ_CHECK(std::string(e.what()).find(": ") != std::string::npos);
    return 0;
  }

  SnapshotStore store(":memory:");
  const auto written = store.write(config, "fuzz");
  FUZZ_CHECK(written.created && written.version == 1);
  const auto stored = store.loadLatest();
  FUZZ_CHECK(stored.has_value());
  std::string differences;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&differences);
  if (!differencer.Compare(SnapshotStore::normalize(config), stored->config)) {
    std::fprintf(stderr, "the store gave back another config:\n%s", differences.c_str());
    std::abort();
  }
  std::string error;
  FUZZ_CHECK(store.verify(written.version, error));
  try {
    mcproxy::stats::Store stats;
    mcproxy::snapshot::compile(stored->config, stats, 2);
  } catch (const mcproxy::config::ConfigError&) {
    std::abort();
  }
  return 0;
}
