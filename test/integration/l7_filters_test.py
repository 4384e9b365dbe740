"""The HTTP filter chain of L7 routes through the real binary: routing by path and header to
different backends, forwarding headers, header mutation seen by the backend and the client, a
direct response with no backend, a filter that stops a request and resumes it on a timer, and
a chain that does not end with the router refused as a config error."""

import os
import time
import unittest

from test.integration import harness
from test.integration.l7_harness import L7TestCase

API = "type.googleapis.com/mcproxy.extensions.filters.http"


def http_filter(name, config_type="", config=""):
    typed = (f'typed_config {{ [{API}.{name}.v1.{config_type}] {{ {config} }} }}'
             if config_type else "")
    return f'http_filters {{ name: "mcproxy.filters.http.{name}" {typed} }}'


ROUTER = http_filter("router")


def headers_of(body):
    """The 'name: value' lines a /headers answer lists, as a dict (the last value wins)."""
    return dict(line.split(": ", 1) for line in body.decode().splitlines()[1:] if ": " in line)


class L7FiltersTest(L7TestCase):
    def route(self, backend, extra):
        return self.l7_route("a.test", backend.address, self.cert_a,
                             f"backend_protocol: HTTP1 {extra}")

    def test_requests_are_routed_by_path_and_header_to_their_backends(self):
        main = self.http1_backend(name="main")
        api = self.http1_backend(name="api")
        canary = self.http1_backend(name="canary")
        health = self.http1_backend(name="health")
        proxy = self.start_proxy(f"""
            listeners {{ name: "paths" address: "127.0.0.1:0"
              {self.route(main, f'''
                http_routes {{ path_prefix: "/api/" headers {{ name: "X-Canary" value: "1" }}
                               backend: "{canary.address}" }}
                http_routes {{ path_prefix: "/api/" backend: "{api.address}" }}
                http_routes {{ path_exact: "/healthz" backend: "{health.address}" }}''')} }}""")
        port = proxy.port()
        cases = [("/api/users", (), "api"), ("/api/users", ("-H", "x-canary: 1"), "canary"),
                 ("/healthz?full=1", (), "health"), ("/healthz/deep", (), "main"),
                 ("/", (), "main"), ("/apiary", (), "main")]
        for path, extra, expected in cases:
            for version in ("--http2", "--http1.1"):
                code, body, meta, err = self.curl(port, path, "a.test", version, *extra)
                self.assertEqual(code, 0, err)
                self.assertTrue(body.startswith(f"backend={expected}\n".encode()),
                                f"{path} {extra} {version}: {body[:40]!r}")
        self.assertEqual(proxy.stats()["route.paths.a.test.rq_total"], 2 * len(cases))

    def test_forwarding_headers_replace_what_the_client_claims_unless_hops_are_trusted(self):
        backend = self.http1_backend()
        proxy = self.start_proxy(f"""
            listeners {{ name: "fw" address: "127.0.0.1:0"
              {self.route(backend, "")}
              {self.l7_route("x.b.test", backend.address, self.cert_b, "backend_protocol: HTTP1 " +
                             http_filter("forwarding_headers", "ForwardingHeaders", "trusted_hops: 1") +
                             ROUTER)} }}""")
        forged = ("-H", "x-forwarded-for: 6.6.6.6, 203.0.113.9", "-H", "x-real-ip: 6.6.6.6",
                  "-H", "x-forwarded-proto: http")
        code, body, meta, err = self.curl(proxy.port(), "/", "a.test", "--http2", *forged,
                                          source="127.0.0.5")
        seen = headers_of(body)
        self.assertEqual(seen["x-forwarded-for"], "127.0.0.5", body)
        self.assertEqual(seen["x-real-ip"], "127.0.0.5")
        self.assertEqual(seen["x-forwarded-proto"], "https")
        # One trusted hop in front (a load balancer appended 203.0.113.9): that entry stays, and
        # names the client.
        code, body, meta, err = self.curl(proxy.port(), "/", "x.b.test", "--http2", *forged,
                                          source="127.0.0.5")
        seen = headers_of(body)
        self.assertEqual(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.5", body)
        self.assertEqual(seen["x-real-ip"], "203.0.113.9")
        self.assertEqual(seen["x-forwarded-proto"], "http")

    def test_edge_to_origin_where_the_backend_sees_the_real_client(self):
        backend = self.grpc_backend()
        origin = self.start_proxy(f"""
            listeners {{ name: "origin" address: "127.0.0.1:0" proxy_protocol: true
              trusted_sources: "127.0.0.1/32"
              {self.l7_route("a.test", backend.address, self.cert_a)} }}""")
        edge = self.start_proxy(f"""
            listeners {{ name: "edge" address: "127.0.0.1:0"
              routes {{ hostname: "a.test" backend: "127.0.0.1:{origin.port()}" send_proxy_protocol: true }} }}""")
        # grpcio cannot choose its source address, so the client whose address must arrive is
        # curl bound to 127.0.0.9, speaking gRPC framing by hand; grpcio checks the path too.
        channel = self.grpc_channel(edge.port())
        reply = channel.unary_unary("/test.Echo/Unary")(b"e", timeout=10)
        self.assertIn(b"xff=127.0.0.1 ", reply)
        code, body, meta, err = self.curl(
            edge.port(), "/test.Echo/Unary", "a.test", "--http2", "-X", "POST", "-H",
            "content-type: application/grpc", "-H", "te: trailers", "--data-binary",
            "@" + self._grpc_frame(b"from-curl"), source="127.0.0.9")
        self.assertEqual(code, 0, err)
        self.assertIn(b"xff=127.0.0.9 ", body)
        self.assertIn(b"real=127.0.0.9 ", body)

    def test_header_mutation_is_seen_by_the_backend_and_the_client(self):
        backend = self.http1_backend()
        mutation = http_filter("header_mutation", "HeaderMutation", """
            request { remove: "x-debug"
                      set { name: "x-client" value: "%CLIENT_IP% %SNI% %ROUTE% %PROTOCOL%" }
                      add { name: "x-agent-copy" value: "%REQ(user-agent)%" } }
            response { remove: "x-internal"
                       set { name: "strict-transport-security" value: "max-age=31536000" }
                       add { name: "x-requested" value: "%REQ(:path)%" } }""")
        proxy = self.start_proxy(f"""
            listeners {{ name: "mut" address: "127.0.0.1:0"
              {self.route(backend, mutation + ROUTER)} }}""")
        headers_file = os.path.join(self.workdir, "mutation-headers.txt")
        code, body, meta, err = self.curl(proxy.port(), "/p?q=1", "a.test", "--http2", "-H",
                                          "x-debug: on", "-H", "user-agent: tester/1", "-D",
                                          headers_file, source="127.0.0.6")
        self.assertEqual((code, meta), (0, "200 2"), err)
        seen = headers_of(body)
        self.assertNotIn("x-debug", seen)
        self.assertEqual(seen["x-client"], "127.0.0.6 a.test a.test HTTP/2")
        self.assertEqual(seen["x-agent-copy"], "tester/1")
        # A chain spelled out is the whole chain: forwarding_headers is not in this one.
        self.assertNotIn("x-forwarded-for", seen)
        with open(headers_file) as f:
            response = f.read().lower()
        self.assertNotIn("x-internal", response)
        self.assertIn("x-backend-name: backend", response)
        self.assertIn("strict-transport-security: max-age=31536000", response)
        self.assertIn("x-requested: /p?q=1", response)

    def test_direct_response_answers_without_a_backend(self):
        backend = self.http1_backend()
        direct = http_filter("direct_response", "DirectResponse", """
            rules { path_exact: "/robots.txt" status: 200 body: "User-agent: *\\nDisallow: /\\n" }
            rules { path_prefix: "/old/" status: 301
                    headers { name: "location" value: "https://a.test/new%REQ(:path)%" } }""")
        proxy = self.start_proxy(f"""
            listeners {{ name: "direct" address: "127.0.0.1:0"
              {self.route(backend, direct + ROUTER)} }}""")
        for version in ("--http2", "--http1.1"):
            code, body, meta, err = self.curl(proxy.port(), "/robots.txt", "a.test", version)
            self.assertEqual((meta.split()[0], body), ("200", b"User-agent: *\nDisallow: /\n"), err)
            headers_file = os.path.join(self.workdir, f"redirect{version}.txt")
            code, body, meta, err = self.curl(proxy.port(), "/old/page", "a.test", version, "-D",
                                              headers_file)
            self.assertEqual(meta.split()[0], "301", err)
            with open(headers_file) as f:
                self.assertIn("location: https://a.test/new/old/page", f.read().lower())
        self.assertEqual(backend.requests, [])  # nothing reached the backend
        code, body, meta, err = self.curl(proxy.port(), "/else", "a.test", "--http2")
        self.assertTrue(body.startswith(b"backend=backend"), body)

    def test_a_filter_that_stops_resumes_the_request_on_a_timer(self):
        backend = self.http1_backend()
        fault = http_filter("fault", "Fault", 'delay { fixed_delay_ms: 400 } header: "x-slow"')
        proxy = self.start_proxy(f"""
            listeners {{ name: "delay" address: "127.0.0.1:0"
              {self.route(backend, fault + http_filter("forwarding_headers") + ROUTER)} }}""")
        for version in ("--http2", "--http1.1"):
            started = time.monotonic()
            code, body, meta, err = self.curl(proxy.port(), "/", "a.test", version, "-H",
                                              "x-slow: 1")
            elapsed = time.monotonic() - started
            self.assertEqual(meta.split()[0], "200", err)
            self.assertGreaterEqual(elapsed, 0.4, version)
            self.assertIn("x-forwarded-for", headers_of(body))  # the filters after it ran too
            started = time.monotonic()
            code, body, meta, err = self.curl(proxy.port(), "/", "a.test", version)
            self.assertLess(time.monotonic() - started, 0.4, version)

    def test_a_chain_that_does_not_end_with_the_router_is_refused(self):
        config = self.write_config("no-router.textproto", f"""
            listeners {{ name: "bad" address: "127.0.0.1:0"
              {self.l7_route("a.test", "127.0.0.1:1", self.cert_a,
                             http_filter("forwarding_headers"))} }}""")
        result = harness.ctl("validate", "--config", config, check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("listeners[0].routes[0].http_filters[0].name: the chain must end with a "
                      "terminal filter (mcproxy.filters.http.router)", result.stdout + result.stderr)

    def test_http_routes_and_filters_live_in_the_snapshot_store(self):
        main = self.http1_backend(name="main")
        api = self.http1_backend(name="api")
        db = os.path.join(self.workdir, f"http-{time.monotonic_ns()}.db")
        mutation = http_filter("header_mutation", "HeaderMutation",
                               'response { set { name: "x-version" value: "one" } }')
        text = f"""
            listeners {{ name: "db" address: "127.0.0.1:0"
              {self.route(main, f'http_routes {{ path_prefix: "/api/" backend: "{api.address}" }}'
                          + mutation + ROUTER)} }}"""
        config = self.write_config("http-db.textproto", text)
        proxy = self.start_proxy(text, extra_args=("--db", db))
        headers_file = os.path.join(self.workdir, "db-headers.txt")
        code, body, meta, err = self.curl(proxy.port(), "/api/x", "a.test", "--http2", "-D",
                                          headers_file)
        self.assertTrue(body.startswith(b"backend=api"), body)
        with open(headers_file) as f:
            self.assertIn("x-version: one", f.read())
        harness.ctl("snapshots", "verify", "--db", db)
        # A change of the route's HTTP settings is a new version, and the diff says what.
        with open(config, "w") as f:
            f.write(text.replace('"one"', '"two"').replace('"/api/"', '"/v2/"'))
        harness.ctl("compile", "--config", config, "--db", db)
        diff = harness.ctl("snapshots", "diff", "1", "2", "--db", db).stdout
        self.assertIn("- http_route db a.test [0] prefix /api/ -> " + api.address, diff)
        self.assertIn("+ http_route db a.test [0] prefix /v2/ -> " + api.address, diff)
        self.assertIn("~ http_filters db a.test", diff)
        harness.wait_until(lambda: "reload done" in proxy.log(), what="the proxy to apply v2")
        code, body, meta, err = self.curl(proxy.port(), "/v2/x", "a.test", "--http2")
        self.assertTrue(body.startswith(b"backend=api"), body)


if __name__ == "__main__":
    unittest.main()
