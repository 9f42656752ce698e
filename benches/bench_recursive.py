#!/usr/bin/env python3
"""Recursive mode benchmark: dnsveil against unbound, both resolving from the root of one loopback
hierarchy, same run, same pinning (resolver on CPU 0, client on CPU 1).

The hierarchy (nsd, one instance per server address, all in a private network namespace so that
every server listens on port 53 like the real ones; unbound has no option for another port):
  .             127.0.0.2, 127.0.0.3
  test.         127.0.0.4, 127.0.0.5
  zN.test       ZONES zones over 8 leaf servers 127.0.0.10-17, each with two NS: one inside the zone
                with glue, one named in hostM.test (glueless for zN.test), and www, mail and
                alias (a CNAME to www of the next zone) records
  hostM.test    the name servers' own zones, on the same leaf servers
The resolver under test runs alone on CPU 0; the nsd servers, the client and dnsperf on CPU 1.
For each resolver, started fresh (cold caches, primed by a readiness query for ready.test):
  - cold: every name once, one at a time; latency p50/p99 (Python client), CPU per resolved name
    (the resolver's user+system time over the phase from the scheduler's
    accounting, /proc/PID/task/*/schedstat, divided by the names), and
    upstream queries per name (the sum of nsd's own query counters, `nsd-control stats_noreset`);
    --cold-rounds rounds, each resolver started fresh for each, taking turns (the order alternates);
    the CPU goal's ratio is the median of the rounds' ratios (a cold pass is a fraction of a second
    of CPU, so one pass moves with the machine by +-10%);
  - cold in a burst: the same, but every name sent by dnsperf with --burst queries outstanding (the
    shape of a page load or a household's morning rather than one name at a time: the resolver finds
    several datagrams per wake-up); CPU and upstream queries per name, same rounds;
  - warm: the same names again with dnsperf (all cached): queries per second, and latency p50/p99
    at a fixed rate of WARM_QPS; the servers take turns, WARM_ROUNDS rounds, medians reported.
dnsveil in forwarding mode (to the unbound instance, over plain UDP, with the same names cached) is
measured warm too, for the goal "warm answers as fast as in forwarding mode".
Goals (issue 15): upstream queries per cold name no more than unbound's; cold CPU per name at most
0.75x unbound's; warm answers as fast as in forwarding mode. Results go to BENCHMARKS.md, between
this script's markers.

Usage: python3 benches/bench_recursive.py [--zones 300] [--seconds 5] [--cold-rounds 5] [--burst 20] [--dnssec]
                                        [--out BENCHMARKS.md] [--no-build]
Needs: nsd (nsd-control), unbound, dnsperf, taskset, ip, unshare (Debian: nsd unbound dnsperf
util-linux iproute2); with --dnssec also ldns-keygen and ldns-signzone (Debian: ldnsutils).
"""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

WARM_QPS = 5000
WARM_ROUNDS = 3
RESOLVER_PORT = 5353
LEAF_SERVERS = 8


def query(name, qtype=1, qid=None):
    qid = qid if qid is not None else int.from_bytes(os.urandom(2), "big")
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\x00" + struct.pack(">HH", qtype, 1)


def ask(port, name, timeout=5.0, host="127.0.0.1", qtype=1, ad=False):
    """(rcode, answer count, seconds) of one query over UDP; with `ad`, (rcode, AD bit, seconds) of
    one that sets AD (RFC 6840: the client understands it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        q = query(name, qtype)
        if ad:
            q = q[:3] + bytes([q[3] | 0x20]) + q[4:]
        t0 = time.perf_counter()
        s.sendto(q, (host, port))
        while True:
            data, _ = s.recvfrom(65535)
            if data[:2] == q[:2]:
                break
        took = time.perf_counter() - t0
        return data[3] & 0x0F, bool(data[3] & 0x20) if ad else struct.unpack(">H", data[6:8])[0], took
    finally:
        s.close()


def zone_text(origin, body, ns="ns"):
    fqdn = "." if origin == "." else origin + "."
    return f"$ORIGIN {fqdn}\n$TTL 86400\n@ SOA {ns} hostmaster 1 3600 900 604800 3600\n{body}"


class NsdServer:
    """nsd on `ips`, port 53, with a control socket for its query counter."""

    def __init__(self, d, ips, zones):
        os.makedirs(d, exist_ok=True)
        self.conf = os.path.join(d, "nsd.conf")
        lines = ["server:"] + [f" ip-address: {ip}" for ip in ips] + [
            " port: 53", ' username: ""', ' chroot: ""', f' zonesdir: "{d}"', ' database: ""',
            f' pidfile: "{d}/nsd.pid"', f' xfrdfile: "{d}/xfrd"', f' zonelistfile: "{d}/zl"',
            f' logfile: "{d}/nsd.log"', " server-count: 1", " rrl-ratelimit: 0",
            " rrl-whitelist-ratelimit: 0", "remote-control:", " control-enable: yes",
            f" control-interface: {d}/ctl.sock"]
        for name, text in zones:
            fname = "root" if name == "." else name
            with open(os.path.join(d, f"{fname}.zone"), "w") as f:
                f.write(text)
            lines += ["zone:", f' name: "{name}"', f' zonefile: "{fname}.zone"']
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.p = subprocess.Popen(["nsd", "-d", "-c", self.conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.ip = ips[0]
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                self.queries()
                break
            except (subprocess.CalledProcessError, ValueError):
                time.sleep(0.05)
        else:
            raise RuntimeError(f"nsd on {ips} did not start")
        # Every zone must have loaded (a zone that did not is answered SERVFAIL).
        for name, _ in zones:
            rcode, _, _ = ask(53, name.strip(".") or ".", host=ips[0], qtype=6)
            if rcode != 0:
                raise RuntimeError(f"nsd on {ips}: zone {name} did not load (rcode {rcode})")

    def queries(self):
        out = subprocess.run(["nsd-control", "-c", self.conf, "stats_noreset"], capture_output=True,
                             text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("num.queries="):
                return int(line.split("=")[1])
        raise ValueError("no num.queries")

    def stop(self):
        self.p.terminate()
        self.p.wait()


class Signer:
    """`--dnssec`: signs each zone with a key of its own (ECDSA P-256, ldns-keygen and ldns-signzone,
    NSEC) and keeps each zone's DS for its parent; `signed` is the identity when off."""

    def __init__(self, d, on):
        self.d, self.on, self.ds = os.path.join(d, "keys"), on, {}
        os.makedirs(self.d, exist_ok=True)

    def signed(self, origin, text):
        if not self.on:
            return text
        fqdn = "." if origin == "." else origin + "."
        base = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", fqdn], cwd=self.d, check=True,
                              capture_output=True, text=True).stdout.strip()
        name = "root" if origin == "." else origin
        src, out = os.path.join(self.d, f"{name}.unsigned"), os.path.join(self.d, f"{name}.signed")
        with open(src, "w") as f:
            f.write(text)
        subprocess.run(["ldns-signzone", "-f", out, "-o", fqdn, src, base], cwd=self.d, check=True)
        with open(os.path.join(self.d, f"{base}.ds")) as f:
            self.ds[origin] = f.read().strip() + "\n"
        with open(out) as f:
            return f.read()

    def delegation(self, child):
        """The DS records of `child` for its parent's zone ("" when unsigned)."""
        return self.ds.get(child, "")

    def anchor(self):
        """The trust anchor file (the root's DS), or None when unsigned."""
        if not self.on:
            return None
        path = os.path.join(self.d, "anchor.txt")
        with open(path, "w") as f:
            f.write(self.ds["."])
        return path


def build_hierarchy(d, zones, dnssec=False):
    """Starts the servers; returns (servers, names, hints file, trust anchor file or None). With
    `dnssec`, every zone is signed and delegated with its DS, up to the root, whose DS is the anchor."""
    signer = Signer(d, dnssec)
    tld = ["@ NS ns1\n@ NS ns2\nns1 A 127.0.0.4\nns2 A 127.0.0.5\nready NS ns1.ready\n"
           "ready NS ns2.ready\nns1.ready A 127.0.0.10\nns2.ready A 127.0.0.11\n"]
    leaf = {i: [] for i in range(LEAF_SERVERS)}
    for m in range(LEAF_SERVERS):
        leaf[m].append((f"host{m}.test", signer.signed(f"host{m}.test", zone_text(
            f"host{m}.test", f"@ NS ns\nns A 127.0.0.{10 + m}\n"))))
        tld.append(f"host{m} NS ns.host{m}\nns.host{m} A 127.0.0.{10 + m}\n" + signer.delegation(f"host{m}.test"))
    leaf[0].append(("ready.test", signer.signed("ready.test", zone_text(
        "ready.test", "@ NS ns1\n@ NS ns2\nns1 A 127.0.0.10\nns2 A 127.0.0.11\nwww A 192.0.2.1\n", ns="ns1"))))
    leaf[1].append(("ready.test", leaf[0][-1][1]))
    tld[0] += signer.delegation("ready.test")
    names = []
    for n in range(zones):
        a, b = n % LEAF_SERVERS, (n + 1) % LEAF_SERVERS
        body = (f"@ NS ns1\n@ NS ns.host{b}.test.\nns1 A 127.0.0.{10 + a}\nwww A 192.0.2.{n % 250 + 1}\n"
                f"mail A 192.0.2.{n % 250 + 2}\nalias CNAME www.z{(n + 1) % zones}.test.\n")
        text = signer.signed(f"z{n}.test", zone_text(f"z{n}.test", body, ns="ns1"))
        tld.append(f"z{n} NS ns1.z{n}\nz{n} NS ns.host{b}.test.\nns1.z{n} A 127.0.0.{10 + a}\n"
                   + signer.delegation(f"z{n}.test"))
        leaf[a].append((f"z{n}.test", text))
        leaf[b].append((f"z{n}.test", text))
        names += [f"www.z{n}.test", f"mail.z{n}.test", f"alias.z{n}.test"]
    tld_text = signer.signed("test", zone_text("test", "".join(tld), ns="ns1"))
    root = signer.signed(".", zone_text(".", "@ NS a.roots.\n@ NS b.roots.\na.roots. A 127.0.0.2\n"
                                             "b.roots. A 127.0.0.3\ntest. NS ns1.test.\ntest. NS ns2.test.\n"
                                             "ns1.test. A 127.0.0.4\nns2.test. A 127.0.0.5\n"
                                        + signer.delegation("test"), ns="a.roots."))
    servers = [NsdServer(os.path.join(d, "root"), ["127.0.0.2", "127.0.0.3"], [(".", root)]),
               NsdServer(os.path.join(d, "tld"), ["127.0.0.4", "127.0.0.5"], [("test", tld_text)])]
    for m in range(LEAF_SERVERS):
        servers.append(NsdServer(os.path.join(d, f"leaf{m}"), [f"127.0.0.{10 + m}"], leaf[m]))
    hints = os.path.join(d, "root.hints")
    with open(hints, "w") as f:
        f.write(". 3600000 NS a.roots.\n. 3600000 NS b.roots.\na.roots. 3600000 A 127.0.0.2\n"
                "b.roots. 3600000 A 127.0.0.3\n")
    return servers, names, hints, signer.anchor()


def start_unbound(d, hints, anchor=None):
    conf = os.path.join(d, "unbound-rec.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
  interface: 127.0.0.1
  port: {RESOLVER_PORT}
  num-threads: 1
  do-ip6: no
  do-not-query-localhost: no
  root-hints: "{hints}"
  module-config: "{'validator iterator' if anchor else 'iterator'}"
  qname-minimisation: yes
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  local-zone: "test." nodefault
  msg-cache-size: 64m
  rrset-cache-size: 128m
  prefetch: no
{f'  trust-anchor-file: "{anchor}"' if anchor else ''}
remote-control:
  control-enable: no
""")
    p = subprocess.Popen(["taskset", "-c", "0", "unbound", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return p, RESOLVER_PORT


def start_dnsveil(binary, hints, extra, port=RESOLVER_PORT + 1, anchor=None):
    # Without --dnssec validation is off: unbound runs its iterator alone, and the hierarchy is
    # unsigned. With it both validate from the root's DS.
    dnssec = ["--dnssec", "validate", "--trust-anchor", anchor] if anchor else ["--dnssec", "off"]
    p = subprocess.Popen(["taskset", "-c", "0", binary, "run", "--listen", f"127.0.0.1:{port}",
                          "--hosts", "", "--threads", "1", "--log-level", "warn"] + dnssec + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, port


def measure_cold(pid, port, names, servers):
    q0 = sum(s.queries() for s in servers)
    # Exact CPU time: the phase takes a few tens of milliseconds of CPU, a few 10 ms ticks.
    c0 = bench.cpu_ns(pid)
    lat, bad = [], 0
    for name in names:
        rcode, ancount, took = ask(port, name)
        lat.append(took * 1000)
        if rcode != 0 or ancount == 0:
            bad += 1
    cpu = (bench.cpu_ns(pid) - c0) / 1e9
    q = sum(s.queries() for s in servers) - q0
    return {"p50": bench.pct(lat, 0.5), "p99": bench.pct(lat, 0.99), "cpu_us": cpu / len(names) * 1e6,
            "queries": q / len(names), "failed": bad}


def measure_burst(pid, port, datafile, count, servers, outstanding):
    """Every name of `datafile` once through dnsperf with `outstanding` queries in flight: CPU and
    upstream queries per name, names not answered NOERROR."""
    q0 = sum(s.queries() for s in servers)
    c0 = bench.cpu_ns(pid)
    r = bench.dnsperf(port, datafile, "udp", runs=1, clients=1, outstanding=outstanding, strict=False)
    cpu = (bench.cpu_ns(pid) - c0) / 1e9
    q = sum(s.queries() for s in servers) - q0
    return {"cpu_us": cpu / count * 1e6, "queries": q / count,
            "failed": count - r.get("rcodes", {}).get("NOERROR", 0)}


def measure_warm(port, datafile, seconds):
    thr = bench.dnsperf(port, datafile, "udp", seconds=seconds)
    lat = bench.dnsperf(port, datafile, "udp", seconds=seconds, qps=WARM_QPS, verbose=True, clients=1,
                        outstanding=10)
    return {"qps": thr.get("qps", 0.0), "p50": bench.pct(lat["latencies"], 0.5) * 1000,
            "p99": bench.pct(lat["latencies"], 0.99) * 1000}


def inside(args):
    # Everything but the resolver on CPU 1: this client, and the nsd servers it starts (they
    # inherit it); the resolvers are started on CPU 0 (taskset), alone there.
    os.sched_setaffinity(0, {1})
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    binary = args.binary
    d = tempfile.mkdtemp(prefix="bench-rec-")
    servers, names, hints, anchor = build_hierarchy(d, args.zones, args.dnssec)
    datafile = os.path.join(d, "names.txt")
    with open(datafile, "w") as f:
        f.write("".join(f"{n} A\n" for n in names))
    results = {"loadavg": open("/proc/loadavg").read().split()[0]}
    procs = []
    try:
        # Cold, one resolver at a time (each fresh, nothing else resolving meanwhile), in turns.
        start = {
            "unbound": lambda: start_unbound(d, hints, anchor),
            "dnsveil": lambda: start_dnsveil(binary, hints, ["--mode", "recursive", "--root-hints", hints,
                                                             "--query-port", "53"], anchor=anchor),
        }
        cold = {"unbound": [], "dnsveil": []}
        burst = {"unbound": [], "dnsveil": []}

        def fresh(kind):
            p, port = start[kind]()
            procs.append(p)
            bench.wait_answer(port, "www.ready.test")
            if anchor:
                # Validation must be what it claims: the readiness name's answer is secure.
                rcode, secure, _ = ask(port, "www.ready.test", ad=True)
                if rcode != 0 or not secure:
                    raise RuntimeError(f"{kind}: www.ready.test not validated (rcode {rcode}, AD {secure})")
            return p, port

        def stop(p):
            p.terminate()
            p.wait()
            procs.remove(p)

        for rnd in range(args.cold_rounds):
            for kind in bench.round_order(["unbound", "dnsveil"], rnd):
                p, port = fresh(kind)
                cold[kind].append(measure_cold(p.pid, port, names, servers))
                stop(p)
                if args.burst:
                    p, port = fresh(kind)
                    burst[kind].append(measure_burst(p.pid, port, datafile, len(names), servers, args.burst))
                    stop(p)
                print(rnd, kind, cold[kind][-1], burst[kind][-1] if args.burst else "", flush=True)
        # The resolvers the warm phase asks, their caches filled one name at a time.
        p, uport = fresh("unbound")
        for n in names:
            ask(uport, n)
        p, vport = fresh("dnsveil")
        for n in names:
            ask(vport, n)
        results["unbound"] = {"cold": cold["unbound"], "burst": burst["unbound"]}
        results["dnsveil"] = {"cold": cold["dnsveil"], "burst": burst["dnsveil"]}
        # dnsveil forwarding to the (warm) unbound, its cache filled with the same names.
        p, fport = start_dnsveil(binary, hints, ["--upstream", f"udp://127.0.0.1:{uport}"],
                                 port=RESOLVER_PORT + 2, anchor=anchor)
        procs.append(p)
        bench.wait_answer(fport, "www.ready.test")
        for n in names:
            ask(fport, n)
        results["forward"] = {}
        # Warm: the three in turn, WARM_ROUNDS times (the machine's load drifts), medians kept.
        rounds = {"unbound": [], "dnsveil": [], "forward": []}
        for _ in range(WARM_ROUNDS):
            for kind, port in (("unbound", uport), ("dnsveil", vport), ("forward", fport)):
                rounds[kind].append(measure_warm(port, datafile, args.seconds))
        for kind, runs in rounds.items():
            results[kind]["warm"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results[kind]["warm_rounds"] = [r["qps"] for r in runs]
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        for s in servers:
            s.stop()
    return results, len(names)


def report(results, count, args):
    u, v, fw = results["unbound"], results["dnsveil"], results["forward"]
    med = lambda runs, key: statistics.median(r[key] for r in runs) if runs else float("nan")
    each = lambda runs, key, fmt="{:.0f}": ", ".join(fmt.format(r[key]) for r in runs)
    per_round = lambda key, shape: [b[key] / max(a[key], 1e-9) for a, b in zip(u[shape], v[shape])]
    cpu_ratios, burst_ratios = per_round("cpu_us", "cold"), per_round("cpu_us", "burst")
    fails = lambda runs: sum(r["failed"] for r in runs)
    lines = [
        "## Recursive mode (benches/bench_recursive.py)" + (", validating (`--dnssec`)" if args.dnssec else ""),
        "",
        f"Revision {bench.revision()}, {time.strftime('%Y-%m-%d')}, unbound {bench.unbound_version()} "
        + ("(validator and iterator, QNAME minimisation on; every zone signed, ECDSA P-256 with NSEC, both "
           "resolvers validating from the root's DS, dnsveil's forwarding mode too), "
           if args.dnssec else "(iterator only, no validation, QNAME minimisation on), ")
        + f"{count} names ({args.zones} zones x www, "
        "mail, alias CNAME to the next zone), a loopback hierarchy of nsd servers in a private network "
        "namespace, resolvers on CPU 0, clients on CPU 1. Cold: "
        f"{len(u['cold'])} rounds, each resolver started fresh for each pass, taking turns; medians, "
        f"and each round's figure. Load average before the run: {results.get('loadavg', '?')}.",
        "",
        "| | unbound | dnsveil recursive | dnsveil forwarding |",
        "|---|---|---|---|",
        f"| cold latency p50 / p99 (ms), one name at a time | {med(u['cold'], 'p50'):.2f} / "
        f"{med(u['cold'], 'p99'):.2f} | {med(v['cold'], 'p50'):.2f} / {med(v['cold'], 'p99'):.2f} | |",
        f"| cold CPU per name (µs), one name at a time | {med(u['cold'], 'cpu_us'):.0f} "
        f"({each(u['cold'], 'cpu_us')}) | {med(v['cold'], 'cpu_us'):.0f} ({each(v['cold'], 'cpu_us')}) | |",
        f"| upstream queries per cold name | {med(u['cold'], 'queries'):.2f} | {med(v['cold'], 'queries'):.2f} | |",
        f"| cold names failed (all rounds) | {fails(u['cold'])} | {fails(v['cold'])} | |",
    ]
    if u["burst"]:
        lines += [
            f"| cold CPU per name (µs), {args.burst} outstanding | {med(u['burst'], 'cpu_us'):.0f} "
            f"({each(u['burst'], 'cpu_us')}) | {med(v['burst'], 'cpu_us'):.0f} ({each(v['burst'], 'cpu_us')}) | |",
            f"| upstream queries per cold name, {args.burst} outstanding | {med(u['burst'], 'queries'):.2f} | "
            f"{med(v['burst'], 'queries'):.2f} | |",
            f"| cold names failed, {args.burst} outstanding (all rounds) | {fails(u['burst'])} | "
            f"{fails(v['burst'])} | |",
        ]
    lines += [
        f"| warm queries/s (median of {WARM_ROUNDS}) | {u['warm']['qps']:.0f} | {v['warm']['qps']:.0f} | "
        f"{fw['warm']['qps']:.0f} |",
        f"| warm queries/s, each round | {', '.join(f'{x:.0f}' for x in u['warm_rounds'])} | "
        f"{', '.join(f'{x:.0f}' for x in v['warm_rounds'])} | {', '.join(f'{x:.0f}' for x in fw['warm_rounds'])} |",
        f"| warm latency p50 / p99 (ms) at {WARM_QPS}/s | {u['warm']['p50']:.3f} / {u['warm']['p99']:.3f} | "
        f"{v['warm']['p50']:.3f} / {v['warm']['p99']:.3f} | {fw['warm']['p50']:.3f} / {fw['warm']['p99']:.3f} |",
        "",
        "| goal | value | result |",
        "|---|---|---|",
    ]
    qratio = med(v["cold"], "queries") / max(med(u["cold"], "queries"), 1e-9)
    cratio = statistics.median(cpu_ratios)
    wratio = v["warm"]["qps"] / max(fw["warm"]["qps"], 1e-9)
    met = lambda ok: "met" if ok else "**not met**"
    rounds = lambda ratios: ", ".join(f"{x:.2f}" for x in ratios)
    lines += [
        f"| upstream queries per cold name <= unbound's | {qratio:.2f}x | {met(qratio <= 1.0)} |",
        f"| cold CPU per name <= 0.75x unbound's, one name at a time (median of the rounds' ratios: "
        f"{rounds(cpu_ratios)}) | {cratio:.2f}x | {met(cratio <= 0.75)} |",
    ]
    if burst_ratios:
        bratio = statistics.median(burst_ratios)
        bq = med(v["burst"], "queries") / max(med(u["burst"], "queries"), 1e-9)
        lines += [
            f"| cold CPU per name <= 0.75x unbound's, {args.burst} outstanding (rounds: {rounds(burst_ratios)}) "
            f"| {bratio:.2f}x | {met(bratio <= 0.75)} |",
            f"| upstream queries per cold name <= unbound's, {args.burst} outstanding | {bq:.2f}x | {met(bq <= 1.0)} |",
        ]
    lines += [
        f"| warm queries/s >= forwarding mode's (within 5%) | {wratio:.2f}x | {met(wratio >= 0.95)} |",
    ]
    print("\n".join(lines))
    bench.write_section(args.out, "bench_recursive dnssec" if args.dnssec else "bench_recursive", lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", type=int, default=300)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--cold-rounds", type=int, default=5, help="cold passes per resolver, each on a fresh start")
    ap.add_argument("--burst", type=int, default=20,
                    help="queries outstanding in the burst cold pass (0: no burst pass)")
    ap.add_argument("--dnssec", action="store_true",
                    help="sign every zone and have both resolvers validate (recursive mode's default)")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--binary", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        import json
        results, count = inside(args)
        with open(args.result, "w") as f:
            json.dump({"results": results, "count": count}, f)
        return
    builds = bench.setup(args, ["nsd", "nsd-control", "unbound", "dnsperf", "taskset", "ip", "unshare"]
                         + (["ldns-keygen", "ldns-signzone"] if args.dnssec else []))
    binary = builds["dnsveil"][1]
    import json
    with tempfile.NamedTemporaryFile(suffix=".json") as res:
        # A network namespace of our own: every server on port 53 of its loopback address, nothing
        # seen from outside.
        subprocess.run(["unshare", "--net", "--map-root-user", sys.executable, os.path.abspath(__file__),
                        "--inside", "--binary", binary, "--result", res.name, "--zones", str(args.zones),
                        "--seconds", str(args.seconds), "--cold-rounds", str(args.cold_rounds),
                        "--burst", str(args.burst)] + (["--dnssec"] if args.dnssec else []), check=True)
        with open(res.name) as f:
            data = json.load(f)
    report(data["results"], data["count"], args)


if __name__ == "__main__":
    main()
