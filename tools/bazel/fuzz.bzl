"""Fuzz targets: one libFuzzer entry point (LLVMFuzzerTestOneInput), two ways to run it.

- `<name>_corpus_test`: replays every file of test/fuzz/corpus/<name>/ through the target with
  the ordinary compiler, so `bazel test //...` keeps each corpus entry (old crashes included)
  as a regression test.
- `<name>_fuzzer` (tag manual): the libFuzzer binary, built by tools/fuzz/run.sh with clang-14
  and `--config=fuzz` in a separate output base.
"""

def mc_fuzz_target(name, srcs, deps = [], data = []):
    """data: files the target reads by path relative to the workspace root."""
    corpus = "corpus/%s" % name
    native.filegroup(
        name = name + "_corpus",
        srcs = native.glob([corpus + "/*"]),
    )
    native.cc_test(
        name = name + "_corpus_test",
        srcs = srcs + ["fuzz_check.h", "replay_main.cc"],
        args = ["test/fuzz/" + corpus],
        data = [":" + name + "_corpus"] + data,
        deps = deps,
    )
    native.cc_binary(
        name = name + "_fuzzer",
        srcs = srcs + ["fuzz_check.h"],
        data = data,
        tags = ["manual"],
        deps = deps,
    )
