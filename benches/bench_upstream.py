#!/usr/bin/env python3
"""Cache-miss benchmark: dnsveil against unbound over plain UDP and DoT, and against dnsdist over DoH.

Every query is a name nobody asked before (a wildcard zone in nsd, `dnsperf -d` of unique names),
so every query goes through the resolver's miss path and its upstream. Over DoT and DoH the
encrypted upstream is the same for every resolver of a comparison: one dnsdist ("the upstream",
restarted fresh for each measured resolver) terminating DNS-over-TLS and DNS-over-HTTPS with the
test certificates (certs/test/) in front of nsd. Over plain UDP the resolvers ask nsd directly.

    dnsperf --udp--> resolver under test --UDP------------------------------> nsd (wildcard zone)
                                         --DoT or DoH--> dnsdist (upstream) --> nsd

dnsdist forwards DoT queries to nsd over TCP, one query per backend connection at a time (nsd does
not answer out of order), and by default keeps only 10 idle backend connections per worker: at 100
queries in flight it then opened a fresh TCP connection to nsd for every 1.5 queries, whichever
resolver was asking. A real upstream's CPU is not on the resolver's machine, so the upstream here
caches up to 1000 backend connections (`setMaxCachedTCPConnectionsPerDownstream`), which every
resolver gets alike.

Layout (`--layout`, for a machine of two cores):
  - split (the default): the resolver under test alone on CPU 0; the upstream, nsd and dnsperf
    ("the rig") on CPU 1. The resolver's CPU per query is then its own, undisturbed by the rig's,
    and a throughput figure is either the resolver's (it used all of CPU 0) or the rig's (CPU 1 was
    saturated: that run measures the rig, not the resolver, and the report says so).
  - shared: resolver, upstream and nsd on CPU 0, dnsperf on CPU 1 (this script's first layout:
    the rig's CPU then competes with the resolver's and decides both sides' throughput).

Compared, same run, same worker threads, same layout:
  - UDP: dnsveil `--upstream udp://...` vs unbound forwarding plain to nsd;
  - DoT: dnsveil `--upstream tls://...` vs unbound with `forward-tls-upstream: yes`;
  - DoH: dnsveil `--upstream https://.../dns-query` vs dnsdist with a DoH backend (outgoing DoH);
    with `--dnsdist-nodelay`, also vs that dnsdist with TCP_NODELAY forced (see NODELAY below);
  - with `--baseline REV`, also dnsveil built at git revision REV (bench.baseline_binary), so the
    report gives this tree against the baseline, measured in the same rounds.
First, in each round, the rig alone (no resolver): dnsperf straight to the upstream's DoT frontend
(dnsperf speaking TLS itself) or to nsd over UDP (DoH has none: see RIG_ALONE), at the same fixed rates with fresh
unique names: the floor under every resolver's latency, and the report says how far above it each
resolver sits (a p50 goal of 0.8x the reference needs dnsveil's part above the floor to be at most
0.8x the reference's part minus 0.2x the floor). With it, the crossing: dnsperf to an nsd on the
resolver's CPU, less dnsperf to the nsd on the rig's, is what one round trip to CPU 0 and back
costs (nsd does next to no work); a resolver makes two, so the floor plus two crossings is about the
least p50 any resolver on CPU 0 can have, and the report sets it against the p50 goals.
For each resolver, each started fresh (and its upstream too):
  1. latency at fixed offered rates (`--rates`, default 500 and 1000 q/s): fresh unique names for
     `--latency-seconds`, p50/p99 from dnsperf's per-query latencies, the resolver's CPU per
     answered query, and whether dnsperf reached the offered rate;
  2. throughput at saturation: one pass over `--names` unique names at 100 outstanding, at most
     `--seconds`; queries per second, the resolver's CPU per answered query (and the upstream's
     and nsd's), the resolver's share of CPU 0 and how busy each CPU was (/proc/stat);
  3. a burst past 100 outstanding (20,000 unique names at 200 outstanding): the share answered
     NOERROR (does the resolver queue or refuse?);
  4. over DoT and DoH, the TLS handshakes the upstream accepted from the resolver (dnsdist's
     `showTCPStats()`: new + resumed sessions on that frontend) next to the most connections the
     resolver held at once.
CPU is always the measured process's own user+system ticks (/proc/PID/stat) over the run, divided
by the answers of that run. Resolvers take turns in rounds (the order rotating each round); the
report gives every round's figures and the medians of the rounds, the ratios to the reference
and to the baseline, and issue 13's goals with whether each is met. Results go to BENCHMARKS.md,
into the section between this script's markers only.

Usage: python3 benches/bench_upstream.py [--layout split|shared] [--only udp|dot|doh] [--baseline REV]
           [--threads 1] [--seconds 10] [--rates 500,1000] [--latency-seconds 10] [--names 100000]
           [--rounds 3] [--extra-dnsveil-threads 2] [--dnsdist-nodelay] [--cap PCT] [--out BENCHMARKS.md] [--no-build]
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
# The resolver's core and the rig's (dnsperf always runs on CPU 1: bench.dnsperf).
RESOLVER_CPU, RIG_CPU = 0, 1
# A CPU this busy during a run was saturated: the run measured whatever ran there.
SATURATED = 0.90
# More of CPU 0 than this taken by processes other than the resolver (and, in the shared layout,
# the upstream and nsd) during a run is noted next to its figures: the machine was not quiet.
INTRUDERS = 0.05
# The rate dnsperf must reach at a fixed offered rate for its latencies to be of that rate.
RATE_REACHED = 0.95
# Per transport: the reference resolver, its name in the report, issue 13's goals (the most CPU
# per miss of this tree against the reference, or None; the most p50 at GOAL_RATE against it).
TRANSPORTS = {
    "udp": {"reference": "unbound", "name": "UDP", "cpu_goal": None, "p50_goal": 0.8},
    "dot": {"reference": "unbound", "name": "DoT", "cpu_goal": 0.8, "p50_goal": 0.8},
    "doh": {"reference": "dnsdist", "name": "DoH", "cpu_goal": 0.8, "p50_goal": None},
}
# Issue 13: the miss path's CPU per query at least 20% lower than before over each transport.
BASELINE_CPU_GOAL = 0.8
GOAL_RATE = 500
# The key of the rig-alone runs (no resolver: dnsperf straight to the upstream or nsd), and the
# transports that have them: dnsperf 2.10's DoH client loses nearly every query to dnsdist 1.7.3's
# DoH frontend, so DoH has no floor (and no p50 goal).
RIG = "rig"
RIG_ALONE = ("udp", "dot")
# `--dnsdist-nodelay`: dnsdist as the DoH resolver once more, with TCP_NODELAY forced on its
# connections by a preload shim (benches/nodelay.c, built with cc into NODELAY_SHIM["so"]). Its
# outgoing DoH writes HEADERS and DATA as two small TLS records, so Nagle's algorithm holds the
# second until the server's delayed ACK: answers come tens of ms late and in bulk, few wake-ups
# per query, a low CPU per query at fixed rates. With the shim it answers each query as it comes.
NODELAY = "dnsdist-nodelay"
NODELAY_SHIM = {"so": None}
# `--cap`: the quota per period, the least the kernel takes; the period follows from the share
# (2.5 ms at 40%). Short periods keep a throttled resolver's stalls short: dnsperf's window of 100
# outstanding queries must outlast a stall, or the run is paced by the window, not the resolver.
CAP_QUOTA_US = 1000


def pinned(cmd, cpu):
    return ["taskset", "-c", str(cpu)] + cmd


class CpuCap:
    """`--cap`: a CPU quota on the resolver under test for its saturation run, so that the resolver,
    not the rig, limits that run. On two cores the rig (dnsperf, the upstream and nsd on CPU 1) runs
    out of CPU before a DoT resolver does: such a run measures the rig, and the resolver's CPU per
    query is that of a lighter load. Held to a share of CPU 0 by a cgroup (v2 `cpu.max`, or v1
    `cpu.cfs_quota_us`; period CAP_PERIOD_US), the resolver works flat out within it, with a backlog
    of queries at every wake-up as at saturation, and the rig has CPU to spare. The quota is lifted
    for the other runs (fixed rates, burst). A run under a cap counts as the resolver's when it used
    more than SATURATED of its share."""

    def __init__(self, name):
        v2 = "/sys/fs/cgroup"
        v1 = "/sys/fs/cgroup/cpu"
        if os.path.exists(f"{v2}/cgroup.controllers") and "cpu" in open(f"{v2}/cgroup.controllers").read().split():
            self.path, self.v2 = os.path.join(v2, name), True
        elif os.path.exists(f"{v1}/cpu.cfs_quota_us"):
            self.path, self.v2 = os.path.join(v1, name), False
        else:
            sys.exit("--cap needs the cgroup cpu controller (v2 cpu.max or v1 cpu.cfs_quota_us), and root")
        os.makedirs(self.path, exist_ok=True)
        if self.v2:
            with open(os.path.join(v2, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu")
        self.limit(None)

    def _write(self, leaf, text):
        with open(os.path.join(self.path, leaf), "w") as f:
            f.write(text)

    def join(self, pid):
        """Moves a process (all its threads) into the group."""
        self._write("cgroup.procs", str(pid))

    def limit(self, share):
        """Holds the group to `share` of one CPU, or lifts the quota (None)."""
        period = 100_000 if share is None else int(CAP_QUOTA_US / share)
        if self.v2:
            self._write("cpu.max", f"{'max' if share is None else CAP_QUOTA_US} {period}")
        else:
            self._write("cpu.cfs_quota_us", "-1")
            self._write("cpu.cfs_period_us", str(period))
            if share is not None:
                self._write("cpu.cfs_quota_us", str(CAP_QUOTA_US))

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


class Daemon:
    """A pinned daemon in its own process group, killed as a group."""

    def __init__(self, cmd, log, cpu, env=None):
        self.log = log
        with open(log, "w") as f:
            self.p = subprocess.Popen(pinned(cmd, cpu), stdout=f, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      env=None if env is None else {**os.environ, **env})

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

    def __init__(self, d, cpu):
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
        self.d = Daemon(["nsd", "-d", "-c", conf], os.path.join(d, "nsd.out"), cpu)
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

    def __init__(self, d, authority_port, cpu):
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
                        os.path.join(d, f"upstream-{self.dot}.log"), cpu)
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
    """The resolver under test, listening on UDP 127.0.0.1:port: dnsveil (a given binary), unbound
    or dnsdist (or NODELAY: dnsdist with the shim), forwarding over `transport` to the upstream
    (dnsdist) or, over plain UDP, to nsd."""

    def __init__(self, software, transport, binary, d, upstream, authority, threads, cpu):
        self.port = bench.free_port()
        log = os.path.join(d, f"{software}-{transport}-{self.port}.log")
        if software == "dnsveil":
            url = {"udp": lambda: f"udp://127.0.0.1:{authority.port}",
                   "dot": lambda: f"tls://127.0.0.1:{upstream.dot}",
                   "doh": lambda: f"https://127.0.0.1:{upstream.doh}/dns-query"}[transport]()
            cmd = [binary, "run", "--listen", f"127.0.0.1:{self.port}", "--upstream", url,
                   "--threads", str(threads), "--cache-size", "300000", "--hosts", "", "--log-level", "warn"]
            cmd += bench.dnssec_off(binary)
            if transport != "udp":
                cmd += ["--ca-file", CA]
        elif software == "unbound" and transport == "udp":
            conf = bench.write_unbound_conf(d, self.port, threads, f"127.0.0.1@{authority.port}",
                                            server_extra="  so-reuseport: yes\n")
            cmd = ["unbound", "-d", "-c", conf]
        elif software == "unbound" and transport == "dot":
            conf = bench.write_unbound_conf(
                d, self.port, threads, f"127.0.0.1@{upstream.dot}#{CERT_NAME}",
                server_extra=f"  so-reuseport: yes\n  tls-cert-bundle: \"{CA}\"\n",
                forward_extra="  forward-tls-upstream: yes\n")
            cmd = ["unbound", "-d", "-c", conf]
        elif software in ("dnsdist", NODELAY) and transport == "doh":
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
            raise ValueError(f"{software} over {transport}")
        env = {"LD_PRELOAD": NODELAY_SHIM["so"]} if software == NODELAY else None
        self.d = Daemon(cmd, log, cpu, env)
        bench.wait_answer(self.port, name=f"www.{ZONE}")

    def stop(self):
        self.d.stop()


def names_file(d, prefix, count):
    path = os.path.join(d, f"{prefix}.txt")
    with open(path, "w") as f:
        for i in range(count):
            f.write(f"{prefix}-{i}.{ZONE} A\n")
    return path


class Rig:
    """What a run needs besides the resolver: nsd (for the whole benchmark), the layout's CPUs."""

    def __init__(self, d, layout, cap):
        self.d = d
        self.resolver_cpu = RESOLVER_CPU
        self.rig_cpu = RIG_CPU if layout == "split" else RESOLVER_CPU
        self.cap_share = cap / 100 if cap else None
        self.cap = CpuCap(f"dnsveil-bench-{os.getpid()}") if cap else None
        self.authority = Authority(d, self.rig_cpu)

    def stop(self):
        self.authority.stop()
        if self.cap:
            self.cap.remove()


def timed_run(rig, resolver, others, run):
    """Runs `run` and returns its dnsperf result with the CPU seconds the resolver and `others` (a
    function returning the upstream's and nsd's CPU seconds) spent meanwhile, the wall time, how
    busy each CPU was (bench.loaded) and the share of CPU 0 that went neither to the resolver nor
    to the rig: other processes on this machine, disturbing "alone on its core"."""
    c0, u0, t0 = resolver.d.cpu(), others(), time.monotonic()
    res, load = bench.loaded(run)
    c1, u1, t1 = resolver.d.cpu(), others(), time.monotonic()
    wall = max(1e-9, t1 - t0)
    rig_there = (u1 - u0) / wall if rig.rig_cpu == RESOLVER_CPU else 0.0
    strangers = max(0.0, load[RESOLVER_CPU]["busy"] - (c1 - c0) / wall - rig_there)
    return res, {"cpu": c1 - c0, "up_cpu": u1 - u0, "wall": wall, "load": load, "cpu0_others": strangers}


def measure(kind, software, binary, transport, rig, args, threads):
    """One resolver, started fresh (with a fresh upstream): fixed rates, saturation, burst."""
    d, authority = rig.d, rig.authority
    upstream = Upstream(d, authority.port, rig.rig_cpu) if transport != "udp" else None
    try:
        up_port = None if upstream is None else (upstream.doh if transport == "doh" else upstream.dot)
        before = upstream.frontend(up_port) if upstream else None  # after the upstream's own probes

        def others():
            return authority.cpu() + (upstream.d.cpu() if upstream else 0.0)

        r = Resolver(software, transport, binary, d, upstream, authority, threads, rig.resolver_cpu)
        if rig.cap:
            rig.cap.join(r.d.pid)
        try:
            tag = f"{kind}-{transport}-{r.port}"
            rates = {}
            for rate in args.rates:
                lat, t = timed_run(rig, r, others, lambda: bench.dnsperf(
                    r.port, names_file(d, f"l{rate}-{tag}", rate * args.latency_seconds), "udp", runs=1,
                    qps=rate, verbose=True, clients=4, outstanding=100))
                done = max(1, lat.get("completed", 0))
                rates[rate] = {
                    "qps": lat.get("qps", 0.0),
                    "p50_ms": bench.pct(lat["latencies"], 0.50) * 1e3,
                    "p99_ms": bench.pct(lat["latencies"], 0.99) * 1e3,
                    "lost": lat.get("lost", 0),
                    "cpu_us": t["cpu"] / done * 1e6,
                    "cpu1_busy": t["load"][RIG_CPU]["busy"],
                    "cpu0_others": t["cpu0_others"],
                }
            if rig.cap:
                rig.cap.limit(rig.cap_share)
            try:
                run, t = timed_run(rig, r, others, lambda: bench.dnsperf(
                    r.port, names_file(d, f"t{tag}", args.names), "udp", seconds=args.seconds, runs=1,
                    clients=4, outstanding=100))
            finally:
                if rig.cap:
                    rig.cap.limit(None)
            # A burst past 100 outstanding: does the resolver queue, or refuse (SERVFAIL)?
            burst = bench.dnsperf(r.port, names_file(d, f"b{tag}", 20_000), "udp", seconds=args.seconds,
                                  runs=1, clients=4, outstanding=200, strict=False)
            after = upstream.frontend(up_port) if upstream else None
        finally:
            r.stop()
    finally:
        if upstream:
            upstream.stop()
    done = max(1, run.get("completed", 0))
    return {
        "qps": run.get("qps", 0.0),
        "completed": run.get("completed", 0),
        "lost": run.get("lost", 0),
        "noerror": run.get("rcodes", {}).get("NOERROR", 0) / done * 100,
        "cpu_us": t["cpu"] / done * 1e6,
        "up_cpu_us": t["up_cpu"] / done * 1e6,
        "resolver_share": t["cpu"] / max(1e-9, t["wall"]),
        "cap": rig.cap_share,
        "cpu0_busy": t["load"][RESOLVER_CPU]["busy"],
        "cpu1_busy": t["load"][RIG_CPU]["busy"],
        "cpu0_others": t["cpu0_others"],
        "steal": max(c["steal"] for c in t["load"]),
        "rates": rates,
        "burst_noerror": burst.get("rcodes", {}).get("NOERROR", 0) / max(1, burst.get("completed", 0)) * 100,
        "burst_lost": burst.get("lost", 0),
        "handshakes": after["handshakes"] - before["handshakes"] if upstream else None,
        "resumed": after["resumed"] - before["resumed"] if upstream else None,
        "max_conns": after["max_conns"] if upstream else None,
    }


def measure_rig(transport, rig, args):
    """The rig alone, no resolver: dnsperf straight to the upstream's DoT frontend (dnsperf speaking
    TLS itself) or to nsd (UDP), at each fixed rate, with fresh unique names. Its latency
    is the floor under every resolver's: the upstream's and nsd's work, dnsperf's, and the hops
    between them. A resolver adds its own work, one more hop each way and, in the split layout,
    the crossing to CPU 0 and back (dnsperf then does plain UDP, and the TLS client is the
    resolver)."""
    d, authority = rig.d, rig.authority
    upstream = Upstream(d, authority.port, rig.rig_cpu) if transport == "dot" else None
    try:
        port = upstream.dot if upstream else authority.port
        tag = f"rig-{transport}-{port}"
        rates = {}
        for rate in args.rates:
            lat = bench.dnsperf(port, names_file(d, f"l{rate}-{tag}", rate * args.latency_seconds), transport,
                                runs=1, qps=rate, verbose=True, clients=4, outstanding=100)
            rates[rate] = {
                "qps": lat.get("qps", 0.0),
                "p50_ms": bench.pct(lat["latencies"], 0.50) * 1e3,
                "p99_ms": bench.pct(lat["latencies"], 0.99) * 1e3,
                "lost": lat.get("lost", 0),
            }
    finally:
        if upstream:
            upstream.stop()
    out = {"rates": rates}
    if rig.rig_cpu != rig.resolver_cpu:
        # The crossing: a responder with next to no work (nsd) on the resolver's CPU, asked over
        # UDP by dnsperf on the rig's. Its p50 above nsd's on the rig's CPU is what one round
        # trip to CPU 0 and back costs here; a resolver makes two (its client's and its upstream's).
        hop = Authority(tempfile.mkdtemp(prefix="hop-", dir=d), rig.resolver_cpu)
        try:
            for rate in args.rates:
                lat = bench.dnsperf(hop.port, names_file(d, f"c{rate}-{tag}", rate * args.latency_seconds), "udp",
                                    runs=1, qps=rate, verbose=True, clients=4, outstanding=100)
                near = bench.dnsperf(authority.port, names_file(d, f"n{rate}-{tag}", rate * args.latency_seconds),
                                     "udp", runs=1, qps=rate, verbose=True, clients=4, outstanding=100)
                rates[rate]["crossing_ms"] = (bench.pct(lat["latencies"], 0.50)
                                              - bench.pct(near["latencies"], 0.50)) * 1e3
        finally:
            hop.stop()
    return out


def bound(r):
    """What limited a saturation run's throughput, from how busy each CPU was. CPU 1 holds the rig
    (dnsperf, and in the split layout the upstream and nsd), or anything else this machine runs."""
    if r["cpu1_busy"] > SATURATED:
        return f"rig-bound: CPU 1 {r['cpu1_busy']:.0%} busy"
    if r.get("cap") and r["resolver_share"] > SATURATED * r["cap"]:
        return f"resolver-bound: {r['resolver_share']:.0%} of CPU 0, capped at {r['cap']:.0%}"
    if r["resolver_share"] > SATURATED:
        return f"resolver-bound: {r['resolver_share']:.0%} of CPU 0"
    if r["cpu0_busy"] > SATURATED:
        return f"CPU 0 saturated, {r['resolver_share']:.0%} of it the resolver's"
    return "no CPU saturated"


def intruded(r):
    """A note when other processes of this machine took more than INTRUDERS of CPU 0."""
    return f"; others took {r['cpu0_others']:.0%} of CPU 0" if r["cpu0_others"] > INTRUDERS else ""


def rig_bound(r):
    return r["cpu1_busy"] > SATURATED


# Counted over every round (the worst round is reported); everything else numeric is a median.
WORST = {"lost", "burst_lost", "handshakes", "resumed", "max_conns"}


def combine(rs):
    """One resolver's figures over its rounds: medians (the worst round for WORST)."""
    def merge(dicts):
        out = {}
        for k, v in dicts[0].items():
            vals = [x[k] for x in dicts]
            if isinstance(v, dict):
                out[k] = merge(vals)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = max(vals) if k in WORST else statistics.median(vals)
            else:
                out[k] = v
        return out
    out = merge(rs)
    out["rounds"] = len(rs)
    out["rig_bound_rounds"] = sum(rig_bound(r) for r in rs if "cpu1_busy" in r)
    return out


def ratio(x, y):
    return x / y if y else float("nan")


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def write_report(args, kinds, label, runs, results, extra):
    """kinds: per transport the kinds measured (reference first); runs: (transport, kind) -> the
    rounds' figures; results: (transport, kind) -> their medians; extra: figures of the runs with
    more dnsveil worker threads."""
    rates = args.rates
    base = "baseline" in label
    lines = [
        "## Cache-miss path: plain UDP and encrypted upstreams",
        "",
        "Every query a new name (wildcard zone in nsd), so every answer takes the miss path: over plain UDP straight",
        f"to nsd; over DoT and DoH through dnsdist {dnsdist_version()} terminating them (test certificates) in front of nsd,",
        "restarted fresh for each resolver, with up to 1000 cached backend connections to nsd. Resolvers: "
        + ", ".join(dict.fromkeys(label[k] for ks in kinds.values() for k in ks)) + f"; unbound {bench.unbound_version()};",
        f"{args.threads} worker thread(s) each. Loopback only.",
        ("Layout: the resolver under test alone on CPU 0; the upstream, nsd and dnsperf (the rig) on CPU 1."
         if args.layout == "split" else
         "Layout: resolver, upstream and nsd on CPU 0, dnsperf on CPU 1 (the rig's CPU competes with the resolver's)."),
        f"Latency: fresh unique names at {', '.join(map(str, rates))} q/s offered for {args.latency_seconds} s each, p50/p99 of",
        "dnsperf's per-query latencies (4 clients, at most 100 outstanding).",
        f"Throughput at saturation: one pass over {args.names:,} unique names at 100 outstanding, at most {args.seconds} s.",
        "CPU: the resolver's own user+system ticks (/proc/PID/stat, 10 ms each) per answered query, over the same run",
        "(the upstream's and nsd's likewise, together). CPU busy: /proc/stat, idle and iowait excluded, steal counted",
        f"as busy. A saturation run during which CPU 1 was more than {SATURATED:.0%} busy is rig-bound: its queries/s",
        "measure the rig, not the resolver, and its CPU per query is that of a resolver not fully loaded.",
    ] + ([
        f"Cap (`--cap {args.cap}`): in its saturation run each resolver was held to {args.cap}% of CPU 0 by a cgroup's",
        f"CPU quota ({CAP_QUOTA_US / 1000:g} ms per {CAP_QUOTA_US / 10 / args.cap:g} ms), so that it, not the rig, limits the run;"
        f" it counts as the bottleneck when it used over {SATURATED:.0%} of that share.",
    ] if args.cap else []) + [
        "CPU 0 taken by others: busy, but neither with the resolver" + (" nor with the upstream and nsd" if args.layout == "shared" else "")
        + f": other processes of this machine; above {INTRUDERS:.0%} a run's figures say so.",
        "Burst: 20,000 more unique names at 200 outstanding; the share answered NOERROR (the rest SERVFAIL or lost).",
        "Handshakes: TLS sessions (new + resumed) the upstream's frontend accepted from the resolver over its whole",
        "life; connections: the most it held at once.",
        f"Resolvers take turns in {args.rounds} round(s), the order rotating each round; each figure is the median",
        "of its rounds (losses, handshakes and connections: the worst round); ratios per round are within one round.",
        f"Commit {bench.revision()}"
        + (f", baseline {label['baseline']} (`--baseline {args.baseline}`)" if base else "")
        + f", {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Reproduce:",
        "`" + reproduce(args) + "`.",
        "",
        "Throughput at saturation (medians):",
        "",
        "| upstream | resolver | queries/s | bound (rounds rig-bound) | lost | NOERROR % | CPU µs/q | upstream+nsd CPU µs/q "
        "| resolver's share of CPU 0 | CPU 0 busy | CPU 1 busy | NOERROR % at 200 outstanding | handshakes (resumed) | max connections |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for transport, ks in kinds.items():
        for k in ks:
            r = results[(transport, k)]
            hs = "–" if r["handshakes"] is None else f"{r['handshakes']} ({r['resumed']})"
            lines.append(
                f"| {TRANSPORTS[transport]['name']} | {label[k]} | {r['qps']:.0f} | {bound(r)}{intruded(r)} "
                f"({r['rig_bound_rounds']}/{r['rounds']}) | {r['lost']} | {r['noerror']:.1f} | {r['cpu_us']:.1f} | "
                f"{r['up_cpu_us']:.1f} | {r['resolver_share']:.0%} | {r['cpu0_busy']:.0%} | {r['cpu1_busy']:.0%} | "
                f"{r['burst_noerror']:.1f} | {hs} | {fmt(r['max_conns'], 0) if r['max_conns'] is not None else '–'} |")
    lines += ["", "Latency at fixed offered rates (medians; \"reached\": the rate dnsperf achieved):", "",
              "| upstream | resolver | offered q/s | reached q/s | p50 ms | p99 ms | lost | CPU µs/q | CPU 1 busy "
              "| CPU 0 taken by others |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for transport, ks in kinds.items():
        for k in ks:
            for rate in rates:
                x = results[(transport, k)]["rates"][rate]
                short = "" if x["qps"] >= RATE_REACHED * rate else " (dnsperf fell short: the rig)"
                lines.append(f"| {TRANSPORTS[transport]['name']} | {label[k]} | {rate} | {x['qps']:.0f}{short} | "
                             f"{x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['lost']} | {x['cpu_us']:.1f} | {x['cpu1_busy']:.0%} | "
                             f"{x['cpu0_others']:.0%} |")

    for transport in (t for t in kinds if t in RIG_ALONE):
        for rate in rates:
            x = results[(transport, RIG)]["rates"][rate]
            short = "" if x["qps"] >= RATE_REACHED * rate else " (dnsperf fell short)"
            lines.append(f"| {TRANSPORTS[transport]['name']} | rig alone (no resolver) | {rate} | {x['qps']:.0f}{short} | "
                         f"{x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['lost']} | – | – | – |")

    def per_round(transport, num, den, get):
        return [ratio(get(a), get(b)) for a, b in zip(runs[(transport, num)], runs[(transport, den)])]

    def cpu(r):
        return r["cpu_us"]

    def at(rate, key):
        return lambda r: r["rates"][rate][key]

    lines += ["", "Above the floor (the rig alone: dnsperf straight to the upstream's DoT frontend, or to nsd "
              "over UDP; medians of the rounds' p50s). What a resolver adds to it is its own work, one more hop each "
              "way, and the crossing to CPU 0 and back; a p50 goal of 0.8x the reference can only be met if "
              "dnsveil's part is at most 0.8x the reference's part minus 0.2x the floor:", ""]
    for transport, ks in ((t, ks) for t, ks in kinds.items() if t in RIG_ALONE):
        name = TRANSPORTS[transport]["name"]
        for rate in rates:
            rig_here = results[(transport, RIG)]["rates"][rate]
            floor = rig_here["p50_ms"]
            crossing = rig_here.get("crossing_ms")
            if crossing is not None:
                ref = TRANSPORTS[transport]["reference"]
                least = floor + 2 * crossing
                target = TRANSPORTS[transport]["p50_goal"] and TRANSPORTS[transport]["p50_goal"] * \
                    results[(transport, ref)]["rates"][rate]["p50_ms"]
                lines.append(
                    f"- {name} at {rate} q/s: one round trip to CPU 0 and back costs {crossing:.3f} ms here (dnsperf to an "
                    f"nsd on CPU 0, less dnsperf to the nsd on CPU 1: a responder with next to no work); a resolver "
                    f"makes two, so a resolver on CPU 0 that did no work at all would answer in about the floor plus "
                    f"two crossings, {least:.2f} ms" + (f"; the p50 goal ({TRANSPORTS[transport]['p50_goal']}x {label[ref]}'s) "
                                        f"is {target:.2f} ms" + (", below that: not reachable in this layout"
                                                                 if target < least else "") if target else ""))
            parts = []
            for k in ks:
                p50 = results[(transport, k)]["rates"][rate]["p50_ms"]
                parts.append(f"{label[k]} {p50:.2f} ms = floor + {p50 - floor:.2f} ms ({ratio(p50, floor):.2f}x the floor)")
            ref = TRANSPORTS[transport]["reference"]
            above = [results[(transport, k)]["rates"][rate]["p50_ms"] - floor for k in ("dnsveil", ref)]
            parts.append(f"dnsveil's part / {label[ref]}'s: {ratio(above[0], above[1]):.2f}x")
            lines.append(f"- {name} at {rate} q/s: floor {floor:.2f} ms; " + "; ".join(parts))

    lines += ["", "Ratios (medians; per round in brackets):", ""]
    for transport, ks in kinds.items():
        name, ref = TRANSPORTS[transport]["name"], TRANSPORTS[transport]["reference"]
        for den in [ref] + ([NODELAY] if NODELAY in ks else []) + (["baseline"] if base else []):
            a, b = results[(transport, "dnsveil")], results[(transport, den)]
            rigged = a["rig_bound_rounds"] or b["rig_bound_rounds"]
            parts = [f"CPU per query at saturation {ratio(cpu(a), cpu(b)):.2f}x "
                     f"({', '.join(f'{x:.2f}' for x in per_round(transport, 'dnsveil', den, cpu))})"]
            for rate in rates:
                parts.append(f"at {rate} q/s: p50 {ratio(a['rates'][rate]['p50_ms'], b['rates'][rate]['p50_ms']):.2f}x "
                             f"({', '.join(f'{x:.2f}' for x in per_round(transport, 'dnsveil', den, at(rate, 'p50_ms')))}), "
                             f"p99 {ratio(a['rates'][rate]['p99_ms'], b['rates'][rate]['p99_ms']):.2f}x, "
                             f"CPU per query {ratio(a['rates'][rate]['cpu_us'], b['rates'][rate]['cpu_us']):.2f}x")
            parts.append(f"queries/s {ratio(a['qps'], b['qps']):.2f}x"
                         + (" (rig-bound in some rounds: this ratio measures the rig, not the resolvers)" if rigged else ""))
            lines.append(f"- {name}, dnsveil / {label[den]}: " + "; ".join(parts))
        if transport != "udp":
            a = results[(transport, "dnsveil")]
            lines.append(f"- {name}, dnsveil's handshakes {a['handshakes']} vs {a['max_conns']} pooled connection(s) "
                         "(goal: handshakes ≤ connections)")
    for (transport, n), r in extra.items():
        one = results[(transport, "dnsveil")]
        lines.append(f"- dnsveil with {n} worker threads over {TRANSPORTS[transport]['name']} (one run, all threads on "
                     f"CPU 0): {r['qps']:.0f} q/s, {ratio(r['qps'], one['qps']):.2f}x the 1-thread median, "
                     f"{r['cpu_us']:.1f} µs/q, {bound(r)}")

    goals = []
    for transport, spec in TRANSPORTS.items():
        name, ref = spec["name"], spec["reference"]
        here = transport in kinds

        def goal(text, den, get, limit):
            ok = here and (den != "baseline" or base)
            goals.append((text, ratio(get(results[(transport, "dnsveil")]), get(results[(transport, den)])) if ok else None,
                          "<=", limit, per_round(transport, "dnsveil", den, get) if ok else [],
                          cpu_caveat(transport, den) if ok and get is cpu else None))

        def cpu_caveat(transport, den):
            # CPU per query at saturation compares resolvers only when each was what limited its run
            # (above SATURATED of CPU 0): in a rig-bound round, or one paced by dnsperf's window of
            # outstanding queries, the resolver idles between wake-ups and its CPU per query is
            # that of a lighter load, which depends on how many queries each wake-up finds.
            a, b = results[(transport, "dnsveil")], results[(transport, den)]
            if a["rig_bound_rounds"] or b["rig_bound_rounds"]:
                return "rig-bound rounds; see the fixed-rate CPU per query above"
            light = [r for r in (a, b) if r["resolver_share"] < SATURATED * (r.get("cap") or 1.0)]
            if light:
                capped = f" (capped at {light[0]['cap']:.0%})" if light[0].get("cap") else ""
                return (f"a resolver used {min(r['resolver_share'] for r in light):.0%} of CPU 0{capped} (not the "
                        "bottleneck); see the fixed-rate CPU per query above")
            return None
        if spec["cpu_goal"]:
            goal(f"{name} miss, CPU per query ≤ {spec['cpu_goal']}x {ref}'s", ref, cpu, spec["cpu_goal"])
            if NODELAY in kinds.get(transport, []):
                # Stock dnsdist's outgoing DoH is paced by Nagle's algorithm (see NODELAY): dnsperf's
                # window of 100 outstanding queries cannot load it, so its saturation run never has
                # a verdict. The same dnsdist with TCP_NODELAY can be loaded.
                goal(f"{name} miss, CPU per query ≤ {spec['cpu_goal']}x {label[NODELAY]}'s", NODELAY, cpu,
                     spec["cpu_goal"])
        goal(f"{name} miss, CPU per query ≤ {BASELINE_CPU_GOAL}x the baseline's (20% lower)", "baseline", cpu,
             BASELINE_CPU_GOAL)
        if spec["p50_goal"]:
            if GOAL_RATE in rates:
                goal(f"{name} miss, p50 at {GOAL_RATE} q/s ≤ {spec['p50_goal']}x {ref}'s", ref,
                     at(GOAL_RATE, "p50_ms"), spec["p50_goal"])
            else:
                goals.append((f"{name} miss, p50 at {GOAL_RATE} q/s (not in --rates)", None, "<=", 0, []))
    lines += ["", "Goals of issue 13 for the miss path (dnsveil / the named resolver; CPU per query from the "
              "saturation runs; the cached path's goals are in bench.py's section):", ""]
    lines += bench.goal_rows(goals)

    lines += ["", "Every round:", "",
              "| round | upstream | resolver | queries/s | bound | CPU µs/q | CPU 1 busy | "
              + " | ".join(f"p50 / p99 ms at {rate} | CPU µs/q at {rate}" for rate in rates) + " |",
              "|---:|---|---|---:|---|---:|---:|" + "---:|---:|" * len(rates)]
    for transport, ks in kinds.items():
        for rnd in range(args.rounds):
            for k in ks:
                r = runs[(transport, k)][rnd]
                lines.append(f"| {rnd + 1} | {TRANSPORTS[transport]['name']} | {label[k]} | {r['qps']:.0f} | "
                             f"{bound(r)}{intruded(r)} | {r['cpu_us']:.1f} | {r['cpu1_busy']:.0%} | "
                             + " | ".join(f"{r['rates'][x]['p50_ms']:.2f} / {r['rates'][x]['p99_ms']:.2f} | "
                                          f"{r['rates'][x]['cpu_us']:.1f}" for x in rates) + " |")
    bench.write_section(args.out, SECTION, lines)
    print("\n".join(lines))


def reproduce(args):
    cmd = (f"python3 benches/bench_upstream.py --layout {args.layout} --threads {args.threads} "
           f"--seconds {args.seconds} --names {args.names} --rates {','.join(map(str, args.rates))} "
           f"--latency-seconds {args.latency_seconds} --rounds {args.rounds}")
    if args.only:
        cmd += f" --only {args.only}"
    if args.baseline:
        cmd += f" --baseline {args.baseline}"
    if args.extra_dnsveil_threads:
        cmd += f" --extra-dnsveil-threads {args.extra_dnsveil_threads}"
    if args.dnsdist_nodelay:
        cmd += " --dnsdist-nodelay"
    if args.cap:
        cmd += f" --cap {args.cap}"
    return cmd


def dnsdist_version():
    return subprocess.run(["dnsdist", "--version"], capture_output=True, text=True).stdout.split()[1]


def rate_list(text):
    rates = [int(x) for x in text.split(",") if x.strip()]
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("a comma-separated list of positive rates")
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", choices=["split", "shared"], default="split",
                    help="split: resolver alone on CPU 0, upstream, nsd and dnsperf on CPU 1; "
                         "shared: resolver, upstream and nsd on CPU 0, dnsperf on CPU 1")
    ap.add_argument("--only", choices=list(TRANSPORTS), help="run one comparison only")
    bench.add_baseline_arg(ap)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=10, help="at most this long per saturation and burst run")
    ap.add_argument("--names", type=int, default=100_000, help="unique names per saturation run")
    ap.add_argument("--rates", type=rate_list, default=[500, 1000],
                    help="offered rates of the latency runs, comma-separated (default 500,1000)")
    ap.add_argument("--latency-seconds", type=int, default=10, help="length of each fixed-rate run")
    ap.add_argument("--extra-dnsveil-threads", type=int, default=0,
                    help="also run dnsveil with this many worker threads (once per transport)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of turns; figures are medians")
    ap.add_argument("--dnsdist-nodelay", action="store_true",
                    help="over DoH, also run dnsdist with TCP_NODELAY forced on its connections (a preload "
                         "shim built with cc): a reference without the Nagle batching of its outgoing DoH")
    ap.add_argument("--cap", type=int, default=0, metavar="PCT",
                    help="hold each resolver to PCT%% of CPU 0 (a cgroup quota) in its saturation run, so that "
                         "it, not the rig, limits that run (needs root; 0: no cap)")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if len(os.sched_getaffinity(0)) < 2 or RIG_CPU not in os.sched_getaffinity(0):
        sys.exit("needs CPUs 0 and 1")
    builds = bench.setup(args, ["nsd", "unbound", "dnsdist", "dnsperf", "kdig", "taskset"])
    label = {"unbound": "unbound", "dnsdist": "dnsdist", **{k: v[0] for k, v in builds.items()}}
    kinds = {t: [TRANSPORTS[t]["reference"]] + list(builds) for t in TRANSPORTS if args.only in (None, t)}
    if args.dnsdist_nodelay and "doh" in kinds:
        kinds["doh"].insert(1, NODELAY)
        label[NODELAY] = "dnsdist (TCP_NODELAY)"
    per_run = len(args.rates) * args.latency_seconds + 2 * args.seconds + 4  # + starting resolver and upstream
    rig_run = 3 * len(args.rates) * args.latency_seconds + 4  # the rig alone and the crossing, per transport and round
    total = (per_run * sum(len(ks) for ks in kinds.values())
             + rig_run * sum(t in RIG_ALONE for t in kinds)) * args.rounds
    print(f"at most about {per_run} s per resolver run, {total / 60:.0f} min in all", flush=True)

    def software(kind):
        return "dnsveil" if kind in builds else kind

    d = tempfile.mkdtemp(prefix="dnsveil-bench-upstream-")
    if NODELAY in kinds.get("doh", []):
        NODELAY_SHIM["so"] = os.path.join(d, "nodelay.so")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", NODELAY_SHIM["so"],
                        os.path.join(ROOT, "benches", "nodelay.c"), "-ldl"], check=True)
    rig = Rig(d, args.layout, args.cap)
    runs, results, extra = {}, {}, {}
    try:
        for transport, ks in kinds.items():
            # Turns in rounds, medians: this shared VM's speed drifts by tens of percent within
            # minutes, and a single run of each would compare two different machines.
            for rnd in range(args.rounds):
                floor = measure_rig(transport, rig, args) if transport in RIG_ALONE else None
                if floor:
                    runs.setdefault((transport, RIG), []).append(floor)
                    print(f"round {rnd + 1} {TRANSPORTS[transport]['name']} rig alone: "
                          + "; ".join(f"at {rate} q/s p50 {x['p50_ms']:.2f} ms p99 {x['p99_ms']:.2f} ms"
                                      + (f", crossing {x['crossing_ms']:.3f} ms" if "crossing_ms" in x else "")
                                      for rate, x in floor["rates"].items()), flush=True)
                for k in bench.round_order(ks, rnd):
                    r = measure(k, software(k), builds.get(k, (None, None))[1], transport, rig, args, args.threads)
                    runs.setdefault((transport, k), []).append(r)
                    print(f"round {rnd + 1} {TRANSPORTS[transport]['name']} {label[k]}: {r['qps']:.0f} q/s "
                          f"({bound(r)}{intruded(r)}), {r['cpu_us']:.1f} µs/q; "
                          + "; ".join(f"at {rate} q/s p50 {x['p50_ms']:.2f} ms p99 {x['p99_ms']:.2f} ms "
                                      f"{x['cpu_us']:.1f} µs/q" + ("" if x["qps"] >= RATE_REACHED * rate else
                                                                   f" (dnsperf reached only {x['qps']:.0f} q/s)")
                                      for rate, x in r["rates"].items()), flush=True)
            for k in ks + ([RIG] if transport in RIG_ALONE else []):
                results[(transport, k)] = combine(runs[(transport, k)])
            if args.extra_dnsveil_threads:
                extra[(transport, args.extra_dnsveil_threads)] = measure(
                    "dnsveil", "dnsveil", builds["dnsveil"][1], transport, rig, args, args.extra_dnsveil_threads)
    finally:
        rig.stop()
        shutil.rmtree(d, ignore_errors=True)
    write_report(args, kinds, label, runs, results, extra)


if __name__ == "__main__":
    main()
