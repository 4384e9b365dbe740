"""A gigabyte each way through one L7 stream: flow control holds the proxy's memory flat."""

import os
import subprocess
import unittest

from test.integration import harness
from test.integration.l7_harness import L7TestCase


class L7BigBodyTest(L7TestCase):
    GIB = 1 << 30

    def test_one_gigabyte_each_way_holds_memory_flat(self):
        # Sparse files: a gigabyte of zeros that costs no disk.
        with open(os.path.join(self.www, "1g.bin"), "wb") as f:
            f.truncate(self.GIB)
        upload = os.path.join(self.workdir, "upload-1g.bin")
        with open(upload, "wb") as f:
            f.truncate(self.GIB)
        backend = self.nghttpd()
        proxy = self.start_proxy(f"""
            listeners {{ name: "big" address: "127.0.0.1:0" {self.l7_route("a.test", backend.address, self.cert_a)} }}""",
                                 workers=1)
        port = proxy.port()
        code, _, meta, err = self.curl(port, "/small.html", "a.test", "--http2")  # warm up
        peak_before = harness.peak_rss_kib(proxy.proc.pid)
        download = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{port}:127.0.0.1", "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
             f"https://a.test:{port}/1g.bin"], capture_output=True, text=True, timeout=240)
        self.assertEqual(download.stdout, f"{self.GIB} 200", download.stderr)
        upload_result = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", self.certs.ca_cert, "--resolve",
             f"a.test:{port}:127.0.0.1", "-o", "/dev/null", "-X", "POST", "-T", upload,  # streamed
             "-w", "%{size_upload} %{http_code}", f"https://a.test:{port}/small.html"],
            capture_output=True, text=True, timeout=240)
        self.assertEqual(upload_result.stdout, f"{self.GIB} 200", upload_result.stderr)
        growth = harness.peak_rss_kib(proxy.proc.pid) - peak_before
        print(f"peak RSS growth over 2 GiB proxied: {growth} KiB", flush=True)
        if not harness.sanitized():  # a sanitizer's allocator keeps freed memory resident
            # Flow control bounds the buffering at one stream window (256 KiB) per direction.
            self.assertLess(growth, 16 * 1024)


if __name__ == "__main__":
    unittest.main()
