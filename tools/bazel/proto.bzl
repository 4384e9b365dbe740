"""C++ code generation from .proto files with Debian's protoc.

proto_library/cc_proto_library would fetch protobuf's own repository, which is not reachable
offline; a genrule running the system protoc and a cc_library over its outputs does the same.
"""

def mc_cc_proto_library(name, srcs, deps = [], visibility = None):
    """Generates <src>.pb.h/.pb.cc for each src and wraps them in a cc_library `name`.

    deps: other mc_cc_proto_library targets whose .proto files srcs import. Their .proto
    sources are passed to protoc through the `<dep>_srcs` filegroup.
    """
    hdrs = [s.replace(".proto", ".pb.h") for s in srcs]
    ccs = [s.replace(".proto", ".pb.cc") for s in srcs]
    dep_srcs = [d + "_srcs" for d in deps]
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + dep_srcs,
        visibility = ["//visibility:public"],
    )
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_srcs,
        outs = hdrs + ccs,
        cmd = "protoc -I. -I/usr/include --cpp_out=$(GENDIR) " +
              " ".join(["$(location %s)" % s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = ccs,
        hdrs = hdrs,
        # Generated code trips -Wextra in places we do not own.
        copts = ["-Wno-error", "-w"],
        deps = ["@system//:protobuf"] + deps,
        visibility = visibility,
    )
