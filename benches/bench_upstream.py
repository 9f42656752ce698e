#!/usr/bin/env python3
"""Cache-miss benchmark through encrypted upstreams: dnsveil against unbound (DoT) and dnsdist (DoH).

Every query is a name nobody asked before (a wildcard zone in nsd, `dnsperf -d` of unique names),
so every query goes through the resolver's miss path and its encrypted upstream. The encrypted
upstream is the same for both sides of a comparison: one dnsdist ("the upstream", restarted fresh
for each measured resolver) terminating DNS-over-TLS and DNS-over-HTTPS with the test certificates
(certs/test/) in front of nsd.

    dnsperf --udp--> resolver under test --DoT or DoH--> dnsdist (upstream) --> nsd (wildcard zone)

dnsdist forwards DoT queries to nsd over TCP, one query per backend connection at a time (nsd does
not answer out of order), and by default keeps only 10 idle backend connections per worker: at 100
queries in flight it then opened a fresh TCP connection to nsd for every 1.5 queries, whichever
resolver was asking, and that churn (about 115 µs of CPU per query for dnsdist and nsd together)
shared CPU 0 with the resolver and decided both sides' throughput. A real upstream's CPU is not on
the resolver's machine, so the upstream here caches up to 1000 backend connections
(`setMaxCachedTCPConnectionsPerDownstream`), which both resolvers get alike.

Compared, same run, same worker threads, same pinning (servers on CPU 0, dnsperf on CPU 1):
  - DoT: dnsveil `--upstream tls://...` vs unbound with `forward-tls-upstream: yes`;
  - DoH: dnsveil `--upstream https://.../dns-query` vs dnsdist with a DoH backend (outgoing DoH).
For each: queries per second at 100 outstanding (one pass over unique names, bounded in time),
latency p50/p99 at a fixed offered rate (fresh unique names), the share of NOERROR answers in a
burst at 200 outstanding (does the resolver queue or refuse?), CPU per answered query of the
resolver (and of the upstream plus nsd, from /proc), and the TLS handshakes the upstream accepted from the
resolver over its whole life (dnsdist's `showTCPStats()`: TLS new sessions + resumptions on that
frontend) next to the most connections the resolver held at once (dnsdist's "Max concurrent
conn"). Results go to BENCHMARKS.md, into the section between this script's markers only.

Usage: python3 benches/bench_upstream.py [--threads 1] [--seconds 10] [--rounds 3] [--only dot|doh] [--out BENCHMARKS.md]
                                          [--extra-dnsveil-threads 2] [--no-build]
Needs: nsd, unbound, dnsdist, dnsperf, kdig, taskset (Debian: nsd unbound dnsdist dnsperf
knot-dnsutils util-linux).
"""
import argparse
import base64
import os
import shutil
import statistics
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (shared helpers of the cached-answer benchmark)

ROOT = bench.ROOT
CERTS = os.path.join(ROOT, "certs", "test")
CA = os.path.join(CERTS, "ca.pem")
CERT_NAME = "dns.test"
ZONE = "bench.test"
SECTION = "bench_upstream.py"


def pinned(cmd, cpu=0):
    return ["taskset", "-c", str(cpu)] + cmd


class Daemon:
    """A pinned daemon in its own process group, killed as a group."""

    def __init__(self, cmd, log):
        self.log = log
        with open(log, "w") as f:
            self.p = subprocess.Popen(pinned(cmd), stdout=f, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait()

    def cpu(self):
        """CPU seconds of the daemon (taskset execs it, so the pid is the daemon's)."""
        return bench.cpu_seconds(self.p.pid)


def kdig_ok(port, doh):
    cmd = ["kdig", "@127.0.0.1", "-p", str(port), f"+tls-ca={CA}", f"+tls-hostname={CERT_NAME}",
           "+short", "+timeout=1", "+retry=0", f"www.{ZONE}", "A"]
    if doh:
        cmd.append("+https=/dns-query")
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() != ""


def wait_until(what, probe, timeout=15.0):
    """Bounded readiness loop: the probe (a real query) is the signal."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} never became ready")


class Authority:
    """nsd with a wildcard zone: every name has an A record. Response rate limiting off (Debian's
    nsd enables RRL, which treats all wildcard answers as one flow and drops most of them at this
    rate). Many TCP slots, because dnsdist forwards DoT queries over TCP."""

    def __init__(self, d):
        self.port = bench.free_port()
        zone = os.path.join(d, f"{ZONE}.zone")
        with open(zone, "w") as f:
            f.write(f"$ORIGIN {ZONE}.\n$TTL 86400\n@ SOA ns1 hostmaster 1 3600 900 604800 3600\n@ NS ns1\n"
                    "ns1 A 127.0.0.1\nwww A 192.0.2.1\n* A 192.0.2.2\n")
        conf = os.path.join(d, "nsd.conf")
        with open(conf, "w") as f:
            f.write(f"server:\n ip-address: 127.0.0.1\n port: {self.port}\n username: \"\"\n chroot: \"\"\n"
                    f" zonesdir: \"{d}\"\n database: \"\"\n pidfile: \"{d}/nsd.pid\"\n xfrdfile: \"{d}/xfrd\"\n"
                    f" zonelistfile: \"{d}/zl\"\n logfile: \"{d}/nsd.log\"\n server-count: 1\n"
                    " tcp-count: 1000\n tcp-timeout: 30\n rrl-ratelimit: 0\n rrl-whitelist-ratelimit: 0\n"
                    f"remote-control:\n control-enable: no\nzone:\n name: {ZONE}\n zonefile: {ZONE}.zone\n")
        self.d = Daemon(["nsd", "-d", "-c", conf], os.path.join(d, "nsd.out"))
        bench.wait_answer(self.port)

    def cpu(self):
        """CPU seconds of nsd's processes (it forks a main and a server process)."""
        total = 0.0
        for pid in subprocess.run(["pgrep", "-g", str(self.d.pid)], capture_output=True,
                                  text=True).stdout.split():
            try:
                total += bench.cpu_seconds(int(pid))
            except OSError:
                pass
        return total

    def stop(self):
        self.d.stop()


def dnsdist_key():
    return base64.b64encode(os.urandom(32)).decode()


class Upstream:
    """dnsdist terminating DoT and DoH (path /dns-query) in front of the authority."""

    def __init__(self, d, authority_port):
        self.dot = bench.free_port()
        self.doh = bench.free_port()
        plain = bench.free_port()
        console = bench.free_port()
        self.conf = os.path.join(d, f"upstream-{self.dot}.conf")
        cert, key = os.path.join(CERTS, "server.pem"), os.path.join(CERTS, "server.key")
        with open(self.conf, "w") as f:
            f.write(f"""setSecurityPollSuffix("")
setLocal("127.0.0.1:{plain}")
addTLSLocal("127.0.0.1:{self.dot}", "{cert}", "{key}", {{maxInFlight=1000}})
addDOHLocal("127.0.0.1:{self.doh}", "{cert}", "{key}", "/dns-query")
newServer{{address="127.0.0.1:{authority_port}", name="nsd"}}
setMaxCachedTCPConnectionsPerDownstream(1000)
controlSocket("127.0.0.1:{console}")
setKey("{dnsdist_key()}")
""")
        self.d = Daemon(["dnsdist", "--supervised", "--disable-syslog", "-C", self.conf],
                        os.path.join(d, f"upstream-{self.dot}.log"))
        wait_until("upstream DoT", lambda: kdig_ok(self.dot, False))
        wait_until("upstream DoH", lambda: kdig_ok(self.doh, True))

    def console(self, cmd):
        return subprocess.run(["dnsdist", "-C", self.conf, "-c", "-e", cmd], capture_output=True,
                              text=True, check=True).stdout

    def frontend(self, port):
        """TLS handshakes (new + resumed sessions) and the most concurrent connections so far
        on the TLS frontend listening on `port` (rows of showTCPStats(): # Address Connections
        MaxConcurrent DiedReading DiedSending GaveUp ClientTimeouts DownstreamTimeouts AvgQueries
        AvgDuration TLSNew TLSResumed ...)."""
        text = self.console("showTCPStats()")
        frontends = text.split("Frontends:")[1].split("Backends:")[0]
        for line in frontends.splitlines():
            f = line.split()
            if len(f) > 12 and f[1] == f"127.0.0.1:{port}":
                return {"handshakes": int(f[11]) + int(f[12]), "resumed": int(f[12]),
                        "max_conns": int(f[3])}
        raise RuntimeError(f"frontend {port} not in showTCPStats():\n{text}")

    def stop(self):
        self.d.stop()


class Resolver:
    """The resolver under test, listening on UDP 127.0.0.1:port."""

    def __init__(self, kind, d, upstream, threads):
        self.kind = kind
        self.port = bench.free_port()
        self.upstream_port = upstream.doh if kind in ("dnsveil-doh", "dnsdist-doh") else upstream.dot
        log = os.path.join(d, f"{kind}-{self.port}.log")
        if kind.startswith("dnsveil"):
            url = (f"https://127.0.0.1:{upstream.doh}/dns-query" if kind == "dnsveil-doh"
                   else f"tls://127.0.0.1:{upstream.dot}")
            cmd = [os.path.join(ROOT, "target", "release", "dnsveil"), "run",
                   "--listen", f"127.0.0.1:{self.port}", "--upstream", url, "--ca-file", CA,
                   "--threads", str(threads), "--cache-size", "300000", "--hosts", "", "--log-level", "warn"]
        elif kind == "unbound-dot":
            conf = bench.write_unbound_conf(
                d, self.port, threads, f"127.0.0.1@{upstream.dot}#{CERT_NAME}",
                server_extra=f"  so-reuseport: yes\n  tls-cert-bundle: \"{CA}\"\n",
                forward_extra="  forward-tls-upstream: yes\n")
            cmd = ["unbound", "-d", "-c", conf]
        elif kind == "dnsdist-doh":
            conf = os.path.join(d, f"dnsdist-{self.port}.conf")
            with open(conf, "w") as f:
                f.write(f"""setSecurityPollSuffix("")
setLocal("127.0.0.1:{self.port}")
srv = newServer{{address="127.0.0.1:{upstream.doh}", name="doh", tls="openssl",
  subjectName="{CERT_NAME}", dohPath="/dns-query", caStore="{CA}", validateCertificates=true,
  checkName="www.{ZONE}."}}
srv:setUp()
setOutgoingDoHWorkerThreads({threads})
getPool(""):setCache(newPacketCache(300000))
""")
            cmd = ["dnsdist", "--supervised", "--disable-syslog", "-C", conf]
        else:
            raise ValueError(kind)
        self.d = Daemon(cmd, log)
        bench.wait_answer(self.port, name=f"www.{ZONE}")

    def stop(self):
        self.d.stop()


def names_file(d, prefix, count):
    path = os.path.join(d, f"{prefix}.txt")
    with open(path, "w") as f:
        for i in range(count):
            f.write(f"{prefix}-{i}.{ZONE} A\n")
    return path


def measure(kind, d, authority, threads, seconds, latency_qps, names, burst_names=20_000):
    upstream = Upstream(d, authority.port)
    try:
        port = upstream.doh if kind.endswith("doh") else upstream.dot
        before = upstream.frontend(port)  # after the upstream's own readiness probes
        r = Resolver(kind, d, upstream, threads)
        try:
            tag = f"{kind}-{r.port}"
            c0, u0 = r.d.cpu(), upstream.d.cpu() + authority.cpu()
            run = bench.dnsperf(r.port, names_file(d, f"t{tag}", names), "udp", seconds=seconds, runs=1,
                                clients=4, outstanding=100)
            c1, u1 = r.d.cpu(), upstream.d.cpu() + authority.cpu()
            n_lat = max(1000, latency_qps * max(3, seconds // 2))
            lat = bench.dnsperf(r.port, names_file(d, f"l{tag}", n_lat), "udp", runs=1, qps=latency_qps,
                                verbose=True, clients=4, outstanding=100)
            # A burst past 100 outstanding: does the resolver queue, or refuse (SERVFAIL)?
            burst = bench.dnsperf(r.port, names_file(d, f"b{tag}", burst_names), "udp", seconds=seconds,
                                  runs=1, clients=4, outstanding=200, strict=False)
            after = upstream.frontend(port)
        finally:
            r.stop()
    finally:
        upstream.stop()
    done = max(1, run.get("completed", 0))
    return {
        "resolver": kind.split("-")[0] + (f" ({threads} threads)" if threads != 1 else ""),
        "proto": kind.split("-")[1].replace("dot", "DoT").replace("doh", "DoH"),
        "qps": run.get("qps", 0.0),
        "completed": run.get("completed", 0),
        "lost": run.get("lost", 0),
        "noerror": run.get("rcodes", {}).get("NOERROR", 0) / done * 100,
        "cpu_us": (c1 - c0) / done * 1e6,
        "up_cpu_us": (u1 - u0) / done * 1e6,
        "p50_ms": bench.pct(lat["latencies"], 0.50) * 1e3,
        "p99_ms": bench.pct(lat["latencies"], 0.99) * 1e3,
        "lat_lost": lat.get("lost", 0),
        "burst_noerror": burst.get("rcodes", {}).get("NOERROR", 0) / max(1, burst.get("completed", 0)) * 100,
        "burst_lost": burst.get("lost", 0),
        "handshakes": after["handshakes"] - before["handshakes"],
        "resumed": after["resumed"] - before["resumed"],
        "max_conns": after["max_conns"],
    }


# Counted over every round (the worst round is reported); everything else numeric is a median.
WORST = {"lost", "lat_lost", "burst_lost", "handshakes", "resumed", "max_conns"}


def combine(rs):
    """One resolver's figures over its rounds."""
    out = dict(rs[0])
    for k, v in rs[0].items():
        if isinstance(v, (int, float)):
            vals = [r[k] for r in rs]
            out[k] = max(vals) if k in WORST else statistics.median(vals)
    out["rounds"] = len(rs)
    return out


def write_report(args, results, pairs):
    def ratio(a, b, key):
        x, y = results[a][key], results[b][key]
        return x / y if y else float("nan")

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    dnsdist_version = subprocess.run(["dnsdist", "--version"], capture_output=True,
                                     text=True).stdout.split()[1]
    lines = [
        "## Cache-miss path through encrypted upstreams",
        "",
        f"Every query a new name (wildcard zone in nsd), so every answer takes the miss path through an encrypted",
        f"upstream: dnsdist {dnsdist_version} terminating DoT and DoH (test certificates) in front of nsd, restarted",
        f"fresh for each resolver. {args.threads} worker thread(s) per resolver; resolver, upstream and nsd pinned to",
        f"CPU 0, dnsperf to CPU 1; loopback. Throughput: one pass over unique names at 100 outstanding, at most",
        f"{args.seconds} s. Latency: fresh unique names at {args.latency_qps} q/s offered. CPU: the resolver's (and the",
        "upstream's and nsd's together) user+system time per answered query. Handshakes: TLS sessions (new + resumed) the upstream's",
        "frontend accepted from the resolver over its whole life (all runs); connections: the most it held at once.",
        "Burst: 20,000 more unique names at 200 outstanding; the share answered NOERROR (the rest SERVFAIL or lost).",
        f"Each resolver is measured {args.rounds} times, alternating with its reference; each figure is the median of",
        "its rounds (losses, handshakes and connections: the worst round).",
        f"Commit {rev}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Reproduce: "
        f"`python3 benches/bench_upstream.py --threads {args.threads} --seconds {args.seconds} --rounds {args.rounds}`.",
        "",
        "| resolver | upstream | queries/s | lost | NOERROR % | CPU µs/q | upstream+nsd CPU µs/q | p50 ms | p99 ms | NOERROR % at 200 outstanding | handshakes (resumed) | max connections |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        lines.append(f"| {r['resolver']} | {r['proto']} | {r['qps']:.0f} | {r['lost']} | {r['noerror']:.1f} | {r['cpu_us']:.1f} | "
                     f"{r['up_cpu_us']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['burst_noerror']:.1f} | "
                     f"{r['handshakes']} ({r['resumed']}) | {r['max_conns']} |")
    lines += ["", "Ratios dnsveil / reference (goal in brackets):", ""]
    for ours, theirs, proto, goal in pairs:
        lines.append(f"- {proto}: queries/s {ratio(ours, theirs, 'qps'):.2f}x (≥ {goal}), "
                     f"CPU per query {ratio(ours, theirs, 'cpu_us'):.2f}x, p99 {ratio(ours, theirs, 'p99_ms'):.2f}x; "
                     f"dnsveil handshakes {results[ours]['handshakes']} vs {results[ours]['max_conns']} "
                     f"pooled connection(s) (goal: handshakes ≤ connections)")
    lines += ["", "Where the time goes (everything server-side shares CPU 0, so a CPU-bound run tops out near",
              "10^6 / (resolver + upstream+nsd CPU µs/q) queries per second):", ""]
    for ours, theirs, proto, goal in pairs:
        o, t = results[ours], results[theirs]
        for name, r in ((ours, o), (theirs, t)):
            ceiling = 1e6 / max(1e-9, r["cpu_us"] + r["up_cpu_us"])
            bound = "CPU-bound" if r["qps"] >= 0.8 * ceiling else \
                f"not CPU-bound: {100 / max(1e-9, r['qps']) * 1e3:.1f} ms per query at 100 outstanding"
            lines.append(f"- {proto}, {r['resolver']}: {r['qps']:.0f} q/s of a {ceiling:.0f} q/s ceiling ({bound})")
        if t["qps"] >= 0.8 * 1e6 / max(1e-9, t["cpu_us"] + t["up_cpu_us"]):
            need = (t["cpu_us"] + t["up_cpu_us"]) / float(goal) - o["up_cpu_us"]
            lines.append(f"- {proto}: with the reference CPU-bound, {goal}x its q/s needs dnsveil at ≤ {need:.1f} µs "
                         f"per query (now {o['cpu_us']:.1f})")
    for kind, r in results.items():
        if kind.startswith("dnsveil") and kind not in {p[0] for p in pairs}:
            base = results[kind.rsplit("-", 1)[0]]
            lines.append(f"- {r['resolver']} over {r['proto']}: {r['qps']:.0f} q/s, "
                         f"{r['qps'] / base['qps'] if base['qps'] else float('nan'):.2f}x the 1-thread run")
    bench.write_section(args.out, SECTION, lines)
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--names", type=int, default=100_000, help="unique names per throughput run")
    ap.add_argument("--latency-qps", type=int, default=1000)
    ap.add_argument("--extra-dnsveil-threads", type=int, default=0,
                    help="also run dnsveil with this many worker threads (DoT and DoH)")
    ap.add_argument("--only", choices=["dot", "doh"], help="run one comparison only")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are medians")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    bench.setup(args, ["nsd", "unbound", "dnsdist", "dnsperf", "kdig", "taskset"])

    pairs = []
    if args.only in (None, "dot"):
        pairs.append(("dnsveil-dot", "unbound-dot", "DoT", "1.2"))
    if args.only in (None, "doh"):
        pairs.append(("dnsveil-doh", "dnsdist-doh", "DoH", "2"))
    d = tempfile.mkdtemp(prefix="dnsveil-bench-upstream-")
    authority = Authority(d)
    results = {}
    try:
        for ours, theirs, _, _ in pairs:
            # Alternating rounds, medians: this shared VM's speed drifts by tens of percent within
            # minutes, and a single run of each would compare two different machines.
            runs = {ours: [], theirs: []}
            for rnd in range(args.rounds):
                for kind in ((theirs, ours) if rnd % 2 == 0 else (ours, theirs)):
                    r = measure(kind, d, authority, args.threads, args.seconds, args.latency_qps, args.names)
                    runs[kind].append(r)
                    print(f"round {rnd + 1}", kind, r, flush=True)
            for kind, rs in runs.items():
                results[kind] = combine(rs)
            if args.extra_dnsveil_threads:
                key = f"{ours}-t{args.extra_dnsveil_threads}"
                r = measure(ours, d, authority, args.extra_dnsveil_threads, args.seconds, args.latency_qps,
                            args.names)
                results[key] = r
                print(key, r, flush=True)
    finally:
        authority.stop()
        shutil.rmtree(d, ignore_errors=True)
    write_report(args, results, pairs)


if __name__ == "__main__":
    main()
