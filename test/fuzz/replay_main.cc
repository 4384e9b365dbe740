// Replays a fuzz target over its corpus (every file under the directories given), so that
// `bazel test //...` runs each corpus entry, old crashes included, as a regression test with
// the ordinary compiler. Fuzzing itself uses clang's libFuzzer (tools/fuzz/run.sh).
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string dir = std::string(std::getenv("TEST_SRCDIR")) + "/mcproxy/" + argv[i];
    DIR* handle = opendir(dir.c_str());
    if (handle == nullptr) {
      std::fprintf(stderr, "no corpus at %s\n", dir.c_str());
      return 1;
    }
    while (dirent* entry = readdir(handle)) {
      if (entry->d_name[0] == '.') continue;
      std::ifstream in(dir + "/" + entry->d_name, std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      const std::string input = bytes.str();
      // Named before it runs: if it crashes, the log's last line says which entry did.
      std::fprintf(stderr, "%s\n", entry->d_name);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
      ++replayed;
    }
    closedir(handle);
  }
  std::printf("replayed %d corpus entries\n", replayed);
  return replayed > 0 ? 0 : 1;
}
