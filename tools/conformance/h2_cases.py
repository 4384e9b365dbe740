#!/usr/bin/env python3
"""Runs mc-proxy's HTTP/2 conformance cases (test/conformance/http2_cases.py) against any HTTP/2
server over TLS, to compare peers on the same cases:

    tools/conformance/h2_cases.py PORT SNI CA_FILE [--host 127.0.0.1]

The server must serve GET /small.html with 200 (the cases use it to tell a served request from
a refused one) and may answer /missing with a 404 that carries a body. Prints how many cases
pass and what each failing one got; exits 1 when one fails."""

import argparse
import os
import sys
import types


def load_cases(repo):
    # The repository's test/ package, not Python's own `test` package.
    package = types.ModuleType("test")
    package.__path__ = [os.path.join(repo, "test")]
    sys.modules["test"] = package
    from test.conformance import h2wire, http2_cases  # noqa: E402
    return h2wire, http2_cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("sni")
    parser.add_argument("cafile")
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    h2wire, http2_cases = load_cases(repo)
    failures = {}
    for name, run in http2_cases.CASES.items():
        try:
            wire = h2wire.H2Wire(args.port, args.sni, args.cafile)
        except Exception as e:  # the peer refused the connection itself
            failures[name] = f"connect: {e}"
            continue
        try:
            problem = run(wire)
        except Exception as e:
            problem = f"{type(e).__name__}: {e}"
        finally:
            wire.close()
        if problem:
            failures[name] = problem
    total = len(http2_cases.CASES)
    print(f"{total - len(failures)} of {total} cases pass")
    for name, problem in failures.items():
        print(f"  {name}: {problem}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
