#!/usr/bin/python3
"""tools/bench: mc-proxy, haproxy, nginx, h2o (L7) and sniproxy (L4) measured side by side in
one run on 127.0.0.1.

Started from the team's peerbench harness (../shared/peerbench): the same peer adapters
(peers/NAME.sh), the same certificates and backends, plus what the proof needs: TLS traffic
through the passthrough as users send it (small HTTP/2 and HTTP/1.1 requests, 1 MiB responses,
new connections full and resumed), a raw L4 stream (GB/s), idle-connection memory, CPU per GB,
per 100k requests and per connection, syscalls per unit (--strace). Stdlib only.

    tools/bench/run [--peers mc-proxy,haproxy,nginx,h2o,sniproxy] [--modes l4,l7]
                    [--duration 5] [--runs 3] [--idle 10000] [--threads 1] [--strace] [--no-docs]

Every figure is the median of --runs runs (peers interleaved run by run) with its spread. Prints
a markdown table with mc-proxy ÷ peer ratios and writes it to docs/benchmarks.md (with the
machine and versions); raw client output goes to tools/bench/out/.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEERS_DIR = os.path.join(HERE, "peers")
LOOP = "127.0.0.1"
SNI_A, SNI_B = "a.test", "b.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# "mc-proxy-base" is another mc-proxy binary (--baseline): an A/B of a change in the same run.
# "mc-proxy-cluster" is mc-proxy with its routes sent to clusters (--cluster): what the
# endpoint pick, health checks and outlier bookkeeping cost beside a plain backend.
PEER_ORDER = ["mc-proxy", "mc-proxy-base", "mc-proxy-cluster", "haproxy", "nginx", "h2o",
              "sniproxy"]
MC_PROXY_VARIANTS = ("mc-proxy-base", "mc-proxy-cluster")

# name -> (modes, what it measures). A result's key is "<test>_<mode>".
TESTS = {
    "stream": ("l4", "raw stream after a real ClientHello"),
    "conn": ("l4 l7", "new TLS connections, full handshakes, one HTTP/1.1 request each"),
    "resumed": ("l4 l7", "new TLS connections resuming a session, one request each"),
    "h2": ("l4 l7", "HTTP/2 small requests over TLS (h2load -c32 -m10)"),
    "h1": ("l4 l7", "HTTP/1.1 small requests over TLS, keep-alive (wrk -c32)"),
    "big": ("l4 l7", "1 MiB responses over HTTP/2 and TLS (h2load -c4)"),
    "idle": ("l4 l7", "RSS per idle connection"),
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- processes -------------------------------------------------------------------------------
def proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return {"ppid": int(rest[1]), "ticks": sum(int(x) for x in rest[11:15]),
            "start": int(rest[19])}


def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                kids.setdefault(st["ppid"], []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids):
    return sum((proc_stat(p) or {"ticks": 0})["ticks"] for p in pids) / CLK_TCK


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def worker_cpu(pids):
    """CPU seconds of each mc-proxy worker thread (named worker-N), by name."""
    out = {}
    for p in pids:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/comm") as f:
                    name = f.read().strip()
                with open(f"/proc/{p}/task/{t}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if name.startswith("worker-"):
                out[name] = out.get(name, 0) + sum(int(x) for x in rest[11:13]) / CLK_TCK
    return out


def median_and_spread(values):
    """(median, spread as +-% of the median: half the range) of the numbers in `values`."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None, None
    n = len(values)
    mid = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    spread = 100 * (values[-1] - values[0]) / 2 / mid if mid else 0.0
    return mid, spread


class Proc:
    """A process we started, in its own session; stopped by PID (SIGTERM, then SIGKILL)."""
    started = []

    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                  start_new_session=True)
        self.pid = self.p.pid
        Proc.started.append(self)

    def alive(self):
        return self.p.poll() is None

    def pids(self):
        return [self.pid] + descendants(self.pid) if self.alive() else []

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            victims = self.pids()
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                for pid in victims:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.p.wait(5)
        self._log.close()

    @classmethod
    def stop_all(cls):
        for p in reversed(cls.started):
            p.stop()
        cls.started = []


def free_port():
    with socket.socket() as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        try:
            socket.create_connection((LOOP, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {port}:\n{proc.log_tail()}")


def run(argv, timeout=60):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout)


# ---- fixtures --------------------------------------------------------------------------------
def make_certs(d):
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]

    def ossl(*args):
        r = run(["openssl", *args])
        if r.returncode:
            raise RuntimeError("openssl " + " ".join(args) + ":\n" + r.stdout)

    ca_key, ca = f"{d}/ca.key", f"{d}/ca.crt"
    ossl("req", "-x509", "-new", "-nodes", *newkey, "-keyout", ca_key, "-out", ca, "-days", "7",
         "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(f"{d}/server.ext", "w") as f:
        f.write(f"subjectAltName=DNS:{SNI_A},DNS:{SNI_B}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    out = {"ca": ca}
    for name in ("peer", "backend"):
        key, csr, crt, pem = (f"{d}/{name}.{x}" for x in ("key", "csr", "crt", "pem"))
        ossl("req", "-new", "-nodes", *newkey, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
             "7", "-out", crt, "-extfile", f"{d}/server.ext")
        with open(pem, "w") as f:
            f.write(open(crt).read() + open(key).read())
        out[name] = {"crt": crt, "key": key, "pem": pem}
    return out


def nginx_backend_conf(d, htdocs, h1_port, tls_port, certs):
    t = f"{d}/nginx-backend"
    os.makedirs(f"{t}/tmp")
    with open(f"{t}/nginx.conf", "w") as f:
        f.write(f"""user root;
daemon off;
worker_processes 1;
worker_rlimit_nofile 200000;
pid {t}/nginx.pid;
error_log {t}/error.log warn;
events {{ worker_connections 32768; }}
http {{
    access_log off;
    client_body_temp_path {t}/tmp/body;
    proxy_temp_path {t}/tmp/proxy;
    fastcgi_temp_path {t}/tmp/fastcgi;
    uwsgi_temp_path {t}/tmp/uwsgi;
    scgi_temp_path {t}/tmp/scgi;
    types {{ text/html html; application/octet-stream bin; }}
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    http2_idle_timeout 600s;
    server {{ listen {LOOP}:{h1_port}; root {htdocs}; }}
    server {{
        listen {LOOP}:{tls_port} ssl http2;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {certs['backend']['crt']};
        ssl_certificate_key {certs['backend']['key']};
        root {htdocs};
    }}
}}
""")
    return t, f"{t}/nginx.conf"


# ---- load clients and their parsers ----------------------------------------------------------
_TUNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _TUNIT[m.group(2)] if m else None


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q / 100.0 * len(values) + 0.5)) - 1))]


def parse_h2load(out, logfile):
    r = {}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)(\w+)/s", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        r["requests"] = int(m.group(4))
        r["errors"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["non2xx"] = sum(int(m.group(i)) for i in (2, 3, 4))
    m = re.search(r"traffic: .*?\((\d+)\) total", out)
    if m:
        r["bytes"] = int(m.group(1))
    lat = []
    try:
        with open(logfile) as f:
            for line in f:
                p = line.split("\t")
                if len(p) >= 3 and p[1].startswith("2"):
                    lat.append(int(p[2]) / 1e3)
    except OSError:
        pass
    r["p50_ms"], r["p99_ms"] = percentile(lat, 50), percentile(lat, 99)
    return r


def parse_wrk(out):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    for q in ("50", "99"):
        m = re.search(rf"\s{q}%\s+(\S+)", out)
        if m:
            r[f"p{q}_ms"] = ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    return r


WRK_LUA = """-- keep the URL host (SNI + Host header) but connect to loopback
wrk.resolve = function(host, service)
    wrk.addrs = wrk.lookup("127.0.0.1", service)
end
"""


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = tempfile.mkdtemp(prefix="mcproxy-bench.")
        os.chmod(self.work, 0o755)
        self.out = os.path.join(HERE, "out")
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self.lua = os.path.join(self.work, "resolve.lua")
        with open(self.lua, "w") as f:
            f.write(WRK_LUA)
        self.results = {}  # peer -> test -> [result of each run]
        self.run_number = 0
        self.notes = {}
        self.versions = {}
        self.errors = {}

    def setup(self):
        self.certs = make_certs(self.work)
        self.htdocs = os.path.join(self.work, "htdocs")
        os.makedirs(self.htdocs)
        with open(f"{self.htdocs}/small.html", "w") as f:
            f.write("<!doctype html><html><body>" + "<p>small test document</p>" * 20 +
                    "</body></html>\n")
        with open(f"{self.htdocs}/1m.bin", "wb") as f:
            f.write(os.urandom(1 << 20))
        self.p_h2c, self.p_h1, self.p_tls = free_port(), free_port(), free_port()
        h2c = Proc("backend-h2c-nghttpd", ["nghttpd", "--no-tls", "-a", LOOP, "-d", self.htdocs,
                                           "-n", "1", str(self.p_h2c)], self.out)
        prefix, conf = nginx_backend_conf(self.work, self.htdocs, self.p_h1, self.p_tls,
                                          self.certs)
        nginx = Proc("backend-nginx", ["nginx", "-p", prefix, "-c", conf], self.out)
        stream = subprocess.Popen([self.a.loadgen, "stream-server"], stdout=subprocess.PIPE,
                                  text=True, start_new_session=True)
        self.p_stream = int(stream.stdout.readline().split()[1])
        self.stream_server = stream
        for proc, port in ((h2c, self.p_h2c), (nginx, self.p_h1), (nginx, self.p_tls)):
            wait_port(port, proc)
        log(f"backends: h2c nghttpd :{self.p_h2c}, nginx h1 :{self.p_h1} tls :{self.p_tls}, "
            f"stream :{self.p_stream}")

    def collect_versions(self):
        def first(argv):
            try:
                return (run(argv, timeout=10).stdout.strip().splitlines() or ["?"])[0]
            except (OSError, subprocess.SubprocessError) as e:
                return f"? ({e})"
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        mem = open("/proc/meminfo").readline().split()[1]
        commit = first(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
        dirty = run(["git", "-C", ROOT, "status", "--porcelain"]).stdout.strip()
        self.versions = {
            "machine": f"{os.cpu_count()} CPUs ({cpu}), {int(mem) // 1024 // 1024} GiB, "
                       f"Linux {platform.release()}",
            "mc-proxy": f"git {commit}{' + local changes' if dirty else ''}, "
                        f"bazel --config=opt",
            "haproxy": first(["haproxy", "-v"]),
            "nginx": first(["nginx", "-v"]),
            "h2o": first(["h2o", "--version"]),
            "sniproxy": first(["sniproxy", "-V"]),
            "backends": f"{first(['nghttpd', '--version'])} (h2c), nginx (HTTP/1.1, TLS), "
                        "tools/bench/loadgen stream-server (raw stream)",
            "clients": f"{first(['h2load', '--version'])}, {first(['wrk', '-v'])}, "
                       "tools/bench/loadgen (stream, idle)",
            "openssl": first(["openssl", "version"]),
        }

    def peer_env(self, mode, port, workdir):
        env = dict(os.environ)
        c = self.certs
        env.update({
            "PB_MODE": mode, "PB_LISTEN_ADDR": LOOP, "PB_LISTEN_PORT": str(port),
            "PB_WORKDIR": workdir, "PB_THREADS": str(self.a.threads),
            "PB_CERT": c["peer"]["crt"], "PB_KEY": c["peer"]["key"],
            "PB_CERT_KEY_PEM": c["peer"]["pem"], "PB_CA": c["ca"],
            "PB_SNI_A": SNI_A, "PB_SNI_B": SNI_B,
            # L4: a.test passes through to TLS nginx, b.test to the raw stream server.
            "PB_BACKEND_TLS_A": f"{LOOP}:{self.p_tls}", "PB_BACKEND_TLS_B": f"{LOOP}:{self.p_stream}",
            "PB_BACKEND_H2C": f"{LOOP}:{self.p_h2c}", "PB_BACKEND_H1": f"{LOOP}:{self.p_h1}",
            "MC_PROXY_BIN": self.a.mc_proxy,
        })
        return env

    def adapter(self, name):
        """A peer's adapter script; mc-proxy's variants run through mc-proxy's own."""
        return os.path.join(PEERS_DIR,
                            "mc-proxy.sh" if name in MC_PROXY_VARIANTS else f"{name}.sh")

    # ---- one peer in one mode -----------------------------------------------------------------
    def run_peer(self, name, mode):
        adapter = self.adapter(name)
        port = free_port()
        workdir = os.path.join(self.work, f"{name}-{mode}-run{self.run_number}")
        os.makedirs(workdir)
        env = self.peer_env(mode, port, workdir)
        if name == "mc-proxy-base":
            env["MC_PROXY_BIN"] = self.a.baseline
        if name == "mc-proxy-cluster":
            env["MC_PROXY_CLUSTER"] = "1"
        proc = Proc(f"peer-{name}-{mode}-run{self.run_number}", ["bash", adapter, "start"], self.out, env=env,
                    cwd=workdir)
        results = self.results.setdefault(name, {})
        try:
            wait_port(port, proc)
            self.check(name, mode, port)
            for test, (test_modes, _what) in TESTS.items():
                if mode not in test_modes.split() or test not in self.a.tests:
                    continue
                key = f"{test}_{mode}"
                workers_before = worker_cpu(proc.pids()) if name == "mc-proxy" else {}
                r = getattr(self, f"measure_{test}")(proc, port, mode)
                if len(workers_before) > 1:
                    # How evenly SO_REUSEPORT spread the load: each worker's share of the CPU.
                    after = worker_cpu(proc.pids())
                    used = {w: after.get(w, 0) - workers_before[w] for w in workers_before}
                    total = sum(used.values())
                    if total > 0:
                        r["busiest_worker_pct"] = 100 * max(used.values()) / total
                results.setdefault(key, []).append(r)
                log(f"{name}/{mode} {key}: " + ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in r.items() if k != "cmd"))
                if not proc.alive():
                    raise RuntimeError(f"{name} died during {key}:\n{proc.log_tail()}")
        except Exception as e:  # keep going with the other peers
            self.errors[f"{name}/{mode}"] = str(e).strip()
            log(f"{name}/{mode}: ERROR {e}")
        finally:
            proc.stop()

    def check(self, name, mode, port):
        """A request through the peer must work before it is measured."""
        r = run(["curl", "-sS", "--http2", "--cacert", self.certs["ca"], "--resolve",
                 f"{SNI_A}:{port}:{LOOP}", "-o", "/dev/null", "-w", "%{http_code}",
                 f"https://{SNI_A}:{port}/small.html"], timeout=20)
        if r.stdout.strip() != "200":
            raise RuntimeError(f"check: GET https://{SNI_A}/small.html through {name}/{mode} "
                               f"gave {r.stdout.strip()!r}")

    def window(self, proc):
        pids = proc.pids()
        return cpu_seconds(pids), time.time()

    def cpu_since(self, proc, start):
        cpu0, t0 = start
        return cpu_seconds(proc.pids()) - cpu0, time.time() - t0

    def timed_client(self, argv, proc, warmup, tag):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace")
        time.sleep(warmup)
        start = self.window(proc)
        try:
            out, _ = p.communicate(timeout=self.a.duration + warmup + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0] + "\n[bench] client killed: over its time bound\n"
        cpu, wall = self.cpu_since(proc, start)
        with open(os.path.join(self.out, f"{tag}.txt"), "w") as f:
            f.write("$ " + " ".join(argv) + "\n\n" + out)
        return out, cpu, wall

    def h2load(self, port, extra, path, logf):
        return ["h2load", "-t", "1", "--connect-to", f"{LOOP}:{port}", "--tls13-ciphers",
                "TLS_AES_128_GCM_SHA256", "-D", str(self.a.duration), "--warm-up-time", "1",
                "--log-file", logf, *extra, f"https://{SNI_A}:{port}/{path}"]

    def measure_stream(self, proc, port, mode):
        argv = [self.a.loadgen, "stream", "--connect", f"{LOOP}:{port}", "--sni", SNI_B,
                "--connections", "4", "--seconds", str(self.a.duration)]
        out, cpu, wall = self.timed_client(argv, proc, 0, f"{proc.name}-stream")
        m = re.search(r"bytes (\d+) seconds ([\d.]+)", out)
        if not m or int(m.group(1)) == 0:
            raise RuntimeError("stream: " + out[-300:])
        gb = int(m.group(1)) / 1e9
        return {"gbps": gb / float(m.group(2)), "cpu_s_per_gb": cpu / gb, "cpu_pct": 100 * cpu / wall}

    def handshakes(self, proc, port, resume):
        argv = [self.a.loadgen, "handshakes", "--connect", f"{LOOP}:{port}", "--sni", SNI_A,
                "--ca", self.certs["ca"], "--threads", "4", "--seconds", str(self.a.duration),
                "--resume", "1" if resume else "0"]
        out, cpu, _ = self.timed_client(argv, proc, 0,
                                        f"{proc.name}-{'resumed' if resume else 'conn'}")
        m = re.search(r"connections (\d+) resumed (\d+) failed (\d+) seconds ([\d.]+)", out)
        if not m or int(m.group(1)) == 0:
            raise RuntimeError("handshakes: " + out[-300:])
        ok, resumed, failed, secs = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
        return {"conn_per_s": ok / secs, "cpu_us_per_conn": cpu * 1e6 / ok,
                "resumed_pct": 100 * resumed / ok, "errors": failed}

    def measure_conn(self, proc, port, mode):
        return self.handshakes(proc, port, False)

    def measure_resumed(self, proc, port, mode):
        return self.handshakes(proc, port, True)

    def request_result(self, r, cpu, wall):
        if not r.get("requests"):
            raise RuntimeError("no request succeeded")
        return {"rps": r["rps"], "p50_ms": r.get("p50_ms"), "p99_ms": r.get("p99_ms"),
                "cpu_s_per_100k": cpu * 1e5 / (r["rps"] * wall),
                "errors": r.get("errors", 0) + r.get("non2xx", 0)}

    def measure_h2(self, proc, port, mode):
        logf = os.path.join(self.work, "h2.log")
        argv = self.h2load(port, ["-c", "32", "-m", "10"], "small.html", logf)
        out, cpu, wall = self.timed_client(argv, proc, 1, f"{proc.name}-h2")
        return self.request_result(parse_h2load(out, logf), cpu, wall)

    def measure_h1(self, proc, port, mode):
        argv = ["wrk", "-t", "1", "-c", "32", "-d", f"{self.a.duration}s", "--latency",
                "--timeout", "5s", "-s", self.lua, f"https://{SNI_A}:{port}/small.html"]
        out, cpu, wall = self.timed_client(argv, proc, 0, f"{proc.name}-h1")
        return self.request_result(parse_wrk(out), cpu, wall)

    def measure_big(self, proc, port, mode):
        logf = os.path.join(self.work, "big.log")
        argv = self.h2load(port, ["-c", "4", "-m", "1"], "1m.bin", logf)
        out, cpu, wall = self.timed_client(argv, proc, 1, f"{proc.name}-big")
        r = parse_h2load(out, logf)
        if not r.get("bytes"):
            raise RuntimeError("big: no traffic")
        gb = r["bytes"] / 1e9
        return {"gbps": gb / wall, "p99_ms": r.get("p99_ms"), "cpu_s_per_gb": cpu / gb,
                "errors": r.get("errors", 0) + r.get("non2xx", 0)}

    def measure_idle(self, proc, port, mode):
        before = rss_kib(proc.pids())
        count = self.a.idle
        argv = [self.a.loadgen, "idle", "--connect", f"{LOOP}:{port}", "--sni", SNI_A,
                "--count", str(count), "--alpn", "h2", "--ca", self.certs["ca"],
                "--hold-seconds", "120"]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            words = p.stdout.readline().split()
            time.sleep(1.0)
            held = rss_kib(proc.pids())
        finally:
            p.stdin.close()
            p.wait(60)
        if len(words) != 4 or int(words[1]) == 0:
            raise RuntimeError(f"idle: loadgen said {words}")
        established = int(words[1])
        return {"established": established, "rss_mib": held / 1024,
                "kib_per_conn": (held - before) / established}

    # ---- report -------------------------------------------------------------------------------
    def peer_modes(self, name):
        r = run(["bash", self.adapter(name), "modes"], timeout=10)
        return [m for m in self.a.modes if m in r.stdout.split()]

    # ---- syscalls per unit (--strace) ----------------------------------------------------------
    def strace_counts(self, name, mode):
        """Syscalls the proxy makes per connection and per request: a short fixed load under
        `strace -c -f`, attached to every process of the proxy."""
        port = free_port()
        workdir = os.path.join(self.work, f"{name}-{mode}-strace")
        os.makedirs(workdir)
        proc = Proc(f"strace-{name}-{mode}", ["bash", self.adapter(name), "start"], self.out,
                    env=self.peer_env(mode, port, workdir), cwd=workdir)
        out = {}
        try:
            wait_port(port, proc)
            self.check(name, mode, port)
            logf = os.path.join(self.work, "strace-h2.log")
            loads = {
                "conn": ([self.a.loadgen, "handshakes", "--connect", f"{LOOP}:{port}", "--sni",
                          SNI_A, "--ca", self.certs["ca"], "--threads", "1", "--seconds", "2"],
                         lambda o: int(re.search(r"connections (\d+)", o).group(1))),
                "h2": (["h2load", "-t", "1", "--connect-to", f"{LOOP}:{port}", "-c", "8", "-m",
                        "10", "-n", "4000", "--log-file", logf, f"https://{SNI_A}:{port}/small.html"],
                       lambda o: parse_h2load(o, logf).get("requests", 0)),
            }
            for unit, (argv, count) in loads.items():
                summary = os.path.join(self.work, f"strace-{name}-{mode}-{unit}.txt")
                tracer = subprocess.Popen(["strace", "-c", "-f", "-o", summary] +
                                          [a for pid in proc.pids() for a in ("-p", str(pid))],
                                          stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                result = run(argv, timeout=120)
                tracer.send_signal(signal.SIGINT)
                tracer.wait(30)
                with open(summary) as f:
                    text = f.read()
                shutil.copy(summary, self.out)
                total = re.search(r"^\s*100\.00\s+[\d.]+\s+\d+\s+(\d+)", text, re.M) or \
                    re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+\d*\s*total", text, re.M)
                units = count(result.stdout)
                if total and units:
                    out[unit] = int(total.group(1)) / units
                    top = sorted(((int(m.group(1)), m.group(2)) for m in re.finditer(
                        r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", text, re.M)
                        if m.group(2) != "total"), reverse=True)[:6]
                    out[unit + "_top"] = ", ".join(f"{c / units:.1f} {n}" for c, n in top)
        except Exception as e:
            self.errors[f"strace {name}/{mode}"] = str(e).strip()
        finally:
            proc.stop()
        return out

    def main(self):
        t0 = time.time()
        self.load_before = open("/proc/loadavg").read().split()[:3]
        self.collect_versions()
        self.setup()
        available = []
        for name in self.a.peers:
            rc = run(["bash", self.adapter(name), "version"],
                     timeout=10) if os.path.exists(self.adapter(name)) else None
            if rc is None or rc.returncode:
                self.errors[name] = "not available"
                continue
            available.append(name)
            if name == "mc-proxy-base":
                self.notes[name] = [f"the baseline binary {self.a.baseline}, through mc-proxy's "
                                    "adapter"]
            elif name == "mc-proxy-cluster":
                self.notes[name] = ["mc-proxy with each route sent to a one-endpoint cluster "
                                    "(least request, HTTP health check every second, outlier "
                                    "detection) instead of a backend"]
            else:
                notes = run(["bash", self.adapter(name), "notes"], timeout=10)
                self.notes[name] = [l for l in notes.stdout.splitlines() if l.strip()]
        # Run by run, every peer in turn: a slow drift of the machine touches all of them alike.
        for number in range(self.a.runs):
            self.run_number = number + 1
            log(f"run {number + 1} of {self.a.runs}")
            for name in available:
                for mode in self.peer_modes(name):
                    self.run_peer(name, mode)
        self.syscalls = {}
        if self.a.strace:
            for name in available:
                for mode in self.peer_modes(name):
                    self.syscalls.setdefault(name, {})[mode] = self.strace_counts(name, mode)
        self.elapsed = time.time() - t0
        self.load_after = open("/proc/loadavg").read().split()[:3]
        Proc.stop_all()
        self.stream_server.kill()
        self.stream_server.wait()
        data = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "elapsed_s": self.elapsed, "versions": self.versions, "runs": self.results,
                "results": aggregate(self.results), "syscalls": self.syscalls,
                "errors": self.errors, "notes": self.notes,
                "params": {"duration": self.a.duration, "idle": self.a.idle,
                           "idle_asked": getattr(self.a, "idle_asked", self.a.idle),
                           "fd_limit": self.a.fd_limit, "threads": self.a.threads,
                           "runs": self.a.runs},
                "loadavg": [self.load_before, self.load_after]}
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(data, f, indent=1)
        text = render(data)
        print(text)
        if self.a.docs:
            with open(os.path.join(ROOT, "docs", "benchmarks.md"), "w") as f:
                f.write(text)
        shutil.rmtree(self.work, ignore_errors=True)


def aggregate(results):
    """peer -> key -> field -> [median, spread %] over the runs."""
    out = {}
    for peer, keys in results.items():
        for key, runs in keys.items():
            fields = sorted({f for r in runs for f, v in r.items() if isinstance(v, (int, float))})
            out.setdefault(peer, {})[key] = {
                f: list(median_and_spread([r.get(f) for r in runs])) for f in fields}
    return out


ROWS = [
    # (result key, field, label, unit, higher is better, digits)
    ("conn_l4", "cpu_us_per_conn", "L4 CPU per new connection, full handshake", "µs", False, 1),
    ("resumed_l4", "cpu_us_per_conn", "L4 CPU per new connection, resumed", "µs", False, 1),
    ("h2_l4", "cpu_s_per_100k", "L4 CPU per 100k HTTP/2 small requests over TLS", "CPU s", False, 2),
    ("h1_l4", "cpu_s_per_100k", "L4 CPU per 100k HTTP/1.1 small requests over TLS", "CPU s",
     False, 2),
    ("big_l4", "cpu_s_per_gb", "L4 CPU per GB of 1 MiB responses over TLS", "CPU s/GB", False, 3),
    ("stream_l4", "cpu_s_per_gb", "L4 CPU per GB, raw stream", "CPU s/GB", False, 3),
    ("conn_l4", "conn_per_s", "L4 new connections, full handshake", "conn/s", True, 0),
    ("resumed_l4", "conn_per_s", "L4 new connections, resumed", "conn/s", True, 0),
    ("h2_l4", "rps", "L4 HTTP/2 small requests over TLS", "req/s", True, 0),
    ("h1_l4", "rps", "L4 HTTP/1.1 small requests over TLS", "req/s", True, 0),
    ("big_l4", "gbps", "L4 1 MiB responses over TLS", "GB/s", True, 2),
    ("stream_l4", "gbps", "L4 raw stream", "GB/s", True, 2),
    ("idle_l4", "kib_per_conn", "L4 RSS per idle connection", "KiB", False, 2),
    ("h2_l7", "cpu_s_per_100k", "L7 CPU per 100k HTTP/2 small requests", "CPU s", False, 2),
    ("h1_l7", "cpu_s_per_100k", "L7 CPU per 100k HTTP/1.1 small requests", "CPU s", False, 2),
    ("big_l7", "cpu_s_per_gb", "L7 CPU per GB of 1 MiB responses (HTTP/2)", "CPU s/GB", False, 2),
    ("conn_l7", "cpu_us_per_conn", "L7 CPU per new TLS connection, full handshake", "µs", False, 1),
    ("resumed_l7", "cpu_us_per_conn", "L7 CPU per new TLS connection, resumed", "µs", False, 1),
    ("h2_l7", "rps", "L7 HTTP/2 small requests", "req/s", True, 0),
    ("h2_l7", "p99_ms", "L7 HTTP/2 p99 latency", "ms", False, 2),
    ("h1_l7", "rps", "L7 HTTP/1.1 small requests", "req/s", True, 0),
    ("h1_l7", "p99_ms", "L7 HTTP/1.1 p99 latency", "ms", False, 2),
    ("big_l7", "gbps", "L7 1 MiB responses (HTTP/2)", "GB/s", True, 2),
    ("conn_l7", "conn_per_s", "L7 new TLS connections, full handshake", "conn/s", True, 0),
    ("resumed_l7", "conn_per_s", "L7 new TLS connections, resumed", "conn/s", True, 0),
    ("idle_l7", "kib_per_conn", "L7 RSS per idle HTTP/2 connection", "KiB", False, 2),
]


def fmt(value, digits):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def idle_note(params):
    if params["idle"] == params["idle_asked"]:
        return ""
    return (f" ({params['idle_asked']:,} asked: the descriptor limit here is "
            f"{params['fd_limit']:,} and cannot be raised, and a passthrough connection takes "
            f"two descriptors in the proxy)")


def cell(entry, digits):
    """"median ±spread%" of one aggregated field."""
    if not entry or entry[0] is None:
        return "–"
    value, spread = entry
    return fmt(value, digits) + (f" ±{spread:.0f}%" if spread is not None and spread >= 0.5 else "")


def render(data):
    res = data["results"]
    params = data["params"]
    peers = [p for p in PEER_ORDER if p in res]
    others = [p for p in peers if p != "mc-proxy"]
    L = ["# Benchmarks", ""]
    L.append(f"Generated {data['generated']} by `tools/bench/run` in {data['elapsed_s']:.0f} s, "
             f"all on 127.0.0.1: {data['versions'].get('machine')}. Each figure is the median of "
             f"{params.get('runs', 1)} runs (peers interleaved run by run) ± half the range of "
             f"those runs; each load run {params['duration']} s, {params['threads']} worker "
             f"thread(s)/process(es) per proxy, {params['idle']:,} idle "
             f"connections{idle_note(params)}. Load average before/after "
             f"{' '.join(data['loadavg'][0])} / {' '.join(data['loadavg'][1])}.")
    L.append("")
    L.append("What the profiles showed and what was changed for these numbers: "
             "[performance.md](performance.md). How to run: `tools/bench/README.md`.")
    L.append("")
    L.append("Ratios are mc-proxy ÷ peer on the medians; the last column says which way is better. "
             "Client, backends and proxy share the machine's cores, so throughput is \"how far "
             "each proxy gets under the same client\"; CPU per unit is the fairer cost comparison. "
             "h2o runs only L7 rows, sniproxy only L4 rows.")
    L.append("")
    L.append("| metric | unit | " + " | ".join(peers) + " | " +
             " | ".join(f"mc-proxy/{p}" for p in others) + " | better |")
    L.append("|---|---|" + "---:|" * (len(peers) + len(others)) + "---|")
    for key, field, label, unit, higher, digits in ROWS:
        entries = {p: res[p].get(key, {}).get(field) for p in peers}
        if all(not e or e[0] is None for e in entries.values()):
            continue
        mc = (entries.get("mc-proxy") or [None])[0]
        ratios = []
        for p in others:
            v = (entries[p] or [None])[0]
            ratios.append(f"{mc / v:.2f}×" if mc is not None and v else "–")
        L.append(f"| {label} | {unit} | " + " | ".join(cell(entries[p], digits) for p in peers) +
                 " | " + " | ".join(ratios) + f" | {'higher' if higher else 'lower'} |")
    split = {k: v.get("busiest_worker_pct") for k, v in res.get("mc-proxy", {}).items()
             if v.get("busiest_worker_pct")}
    if split:
        L.append("")
        L.append("mc-proxy's busiest worker's share of the workers' CPU per test, in % "
                 "(SO_REUSEPORT's spread; 50 is even with two workers): " +
                 ", ".join(f"{k} {cell(v, 0)}" for k, v in sorted(split.items())) + ".")
    if data.get("syscalls"):
        L.append("")
        L.append("## Syscalls per unit (`--strace`: `strace -c -f` on every process of the proxy)")
        L.append("")
        L.append("| proxy | mode | per new connection (full handshake, one request) | per HTTP/2 "
                 "request (h2load -c8 -m10) |")
        L.append("|---|---|---|---|")
        for p in PEER_ORDER:
            for mode, counts in sorted(data["syscalls"].get(p, {}).items()):
                if counts:
                    L.append(f"| {p} | {mode} | {counts.get('conn', 0):.1f} "
                             f"({counts.get('conn_top', '')}) | {counts.get('h2', 0):.2f} "
                             f"({counts.get('h2_top', '')}) |")
    L.append("")
    L.append("## What each row measures")
    L.append("")
    L.append("- **L4 rows** go through the passthrough (SNI a.test) to TLS nginx, as passthrough "
             "users' traffic does: TLS records of 16 KiB or less, handshakes with the backend. "
             "New connections: `loadgen handshakes`, 4 threads, each connection a TLS handshake "
             "(full, or resuming the thread's last session: TLS 1.3 tickets), one HTTP/1.1 GET "
             "of the 551-byte document, close. Small requests: `h2load -c32 -m10` (HTTP/2) and "
             "`wrk -c32` (HTTP/1.1 keep-alive). 1 MiB: `h2load -c4 -m1`. The raw stream: "
             "`loadgen stream`, 4 connections reading zeros after a real ClientHello (the proxy's "
             "copying alone, no crypto at either end).")
    L.append("- **L7 rows**: TLS terminated by the proxy (ECDSA P-256, TLS_AES_128_GCM_SHA256 for "
             "h2load), the same document. mc-proxy and haproxy forward over pooled HTTP/2 "
             "cleartext (h2c) to nghttpd; **nginx and h2o cannot speak HTTP/2 to a backend**, so "
             "they forward HTTP/1.1 (keep-alive pool) to nginx.")
    L.append("- **RSS per idle connection**: `loadgen idle` opens the connections (full TLS "
             "handshakes; for L7 also the HTTP/2 preface and SETTINGS), waits a second, and the "
             "proxy's RSS growth is divided by their number. Kernel socket buffers are not in RSS.")
    L.append("- CPU is the proxy's own (utime + stime of its processes) over the load run.")
    L.append("")
    L.append("## Details (medians)")
    L.append("")
    for p in peers:
        for key in sorted(res[p]):
            r = res[p][key]
            L.append(f"- {p} {key}: " + ", ".join(
                f"{k} {v[0]:,.3g}" for k, v in r.items() if v[0] is not None))
    if data["errors"]:
        L.append("")
        L.append("Errors: " + "; ".join(f"{k}: {v[:200]}" for k, v in data["errors"].items()))
    L.append("")
    L.append("## Versions")
    L.append("")
    for k, v in data["versions"].items():
        L.append(f"- {k}: {v}")
    notes = [f"- **{name}**: {line}" for name, lines in data["notes"].items() for line in lines]
    if notes:
        L.append("")
        L.append("## Notes from the peer adapters")
        L.append("")
        L.extend(notes)
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="mc-proxy,haproxy,nginx,h2o,sniproxy")
    ap.add_argument("--modes", default="l4,l7")
    ap.add_argument("--tests", default=",".join(TESTS))
    ap.add_argument("--duration", type=int, default=5, help="seconds per load run")
    ap.add_argument("--idle", type=int, default=10000,
                    help="idle connections to hold (fewer if the descriptor limit says so)")
    ap.add_argument("--threads", type=int, default=1, help="worker threads/processes per proxy")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    ap.add_argument("--strace", action="store_true",
                    help="also count the proxies' syscalls per connection and per request")
    ap.add_argument("--no-docs", dest="docs", action="store_false",
                    help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--mc-proxy", required=True, help="the mc-proxy binary (optimized)")
    ap.add_argument("--loadgen", required=True, help="tools/bench/loadgen")
    ap.add_argument("--baseline", help="another mc-proxy binary, measured as the peer "
                    "mc-proxy-base (an A/B of a change in one run)")
    ap.add_argument("--cluster", action="store_true",
                    help="also measure mc-proxy with its routes sent to clusters, as the peer "
                    "mc-proxy-cluster")
    a = ap.parse_args()
    a.peers = [p for p in a.peers.split(",") if p]
    if a.baseline and "mc-proxy-base" not in a.peers:
        a.peers.insert(1, "mc-proxy-base")
    if a.cluster and "mc-proxy-cluster" not in a.peers:
        a.peers.insert(1, "mc-proxy-cluster")
    a.modes = [m for m in a.modes.split(",") if m]
    a.tests = [t for t in a.tests.split(",") if t]
    missing = [t for t in ("openssl", "nghttpd", "nginx", "haproxy", "h2load", "wrk", "curl")
               if not shutil.which(t)]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (run tools/setup)")
    os.environ["MC_PROXY_BIN"] = a.mc_proxy
    # A passthrough connection takes two descriptors in the proxy, and haproxy sizes itself for
    # two per connection in any mode: 10,000 idle connections need a limit above 20,000.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200000, 200000))
        limit = 200000
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        limit = hard
    a.fd_limit = limit
    fits = (limit - 1000) // 2 // 500 * 500
    if a.idle > fits:
        log(f"descriptor limit {limit} (hard; not raisable here): holding {fits} idle "
            f"connections instead of {a.idle}")
        a.idle_asked, a.idle = a.idle, fits
    os.environ.setdefault("HAPROXY_MAXCONN", str((limit - 100) // 2))

    def on_signal(sig, _frame):
        Proc.stop_all()
        sys.exit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bench = Bench(a)
    try:
        bench.main()
    finally:
        Proc.stop_all()


if __name__ == "__main__":
    main()
