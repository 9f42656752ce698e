#!/usr/bin/env python3
"""DNSSEC validation benchmark: dnsveil validating against unbound validating, both as forwarders
to the same non-validating upstream (nsd, authoritative for a signed hierarchy), same run.

    dnsperf --udp--> resolver under test (validating, CPU 0) --UDP--> nsd (CPU 1)
                     trust anchor: the DS of `test.`          test. + zones z0.test ... (signed)

The hierarchy is made at run time with ldns-keygen and ldns-signzone: `test.` (the anchor) and
`--zones` child zones, each signed with ECDSA P-256 and NSEC and holding `--names` A records.
Every name is asked once ("cold": the resolver validates it, and the first name of each zone also
costs the zone's DS and DNSKEY), then the same names again ("warm": answered from the cache with
the verdict stored there). For each resolver, started fresh, the script reports:
  - cold: queries/s at saturation (one pass, 100 outstanding), CPU per name from the resolver's own
    ticks (/proc/PID/stat), and upstream queries per name (nsd's own counter, `nsd-control stats`),
    which shows whether DS and DNSKEY are fetched once per zone or once per name;
  - warm: queries/s and CPU per answer;
  - for dnsveil also with `--dnssec off` (the same names, unvalidated), so the warm cost of the
    verdict shows as a ratio.
Resolvers take turns in `--rounds` rounds; the medians go to BENCHMARKS.md, into this script's
section. Goals (issue 14): warm validated CPU within 5% of unvalidated; cold validated throughput
at least 1.5x unbound's; upstream queries per cold name no more than unbound's.

When the rig (dnsperf and nsd on CPU 1) is saturated, the cold queries/s measure the rig, not the
resolver; the report gives each CPU's load so that can be read off, and CPU per name is the
resolver's own either way.

Usage: python3 benches/bench_dnssec.py [--zones 20] [--names 1000] [--rounds 3] [--threads 1] [--warm-seconds 5]
           [--warmup-rounds 1]
           [--out BENCHMARKS.md] [--no-build]
Needs: nsd (nsd-control), unbound, dnsperf, ldns-keygen, ldns-signzone, taskset.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


# Offered queries/s of the fixed-rate warm phase: well below what dnsperf sustains on its CPU.
WARM_RATE = 20000


def keygen(d, zone):
    return subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", f"{zone}."], cwd=d, check=True,
                          capture_output=True, text=True).stdout.strip()


def apex(zone):
    return (f"$TTL 86400\n{zone}. IN SOA ns.{zone}. admin.{zone}. 1 3600 900 604800 3600\n"
            f"{zone}. IN NS ns.{zone}.\nns.{zone}. IN A 127.0.0.1\n")


def sign(d, zone, text):
    base = keygen(d, zone)
    src = os.path.join(d, f"{zone}.unsigned")
    out = os.path.join(d, f"{zone}.zone")
    with open(src, "w") as f:
        f.write(text)
    subprocess.run(["ldns-signzone", "-f", out, "-o", f"{zone}.", src, base], cwd=d, check=True)
    with open(os.path.join(d, f"{base}.ds")) as f:
        return f.read()


def hierarchy(d, zones, names):
    """Signs the zones, writes nsd's config (control over a unix socket) and the anchor file;
    returns (nsd config path, anchor path, names file)."""
    parent = apex("test")
    listed = []
    for i in range(zones):
        zone = f"z{i}.test"
        body = "".join(f"n{j}.{zone}. IN A 192.0.2.{j % 250 + 1}\n" for j in range(names))
        parent += f"{zone}. IN NS ns.{zone}.\nns.{zone}. IN A 127.0.0.1\n" + sign(d, zone, apex(zone) + body)
        listed += [f"n{j}.{zone} A" for j in range(names)]
    ds = sign(d, "test", parent)
    anchor = os.path.join(d, "anchor.txt")
    with open(anchor, "w") as f:
        f.write(ds)
    # Interleave zones so that the cold pass meets a new zone early and often, as real traffic does.
    listed.sort(key=lambda line: (int(line.split(".")[0][1:]), line))
    names_file = os.path.join(d, "names.txt")
    with open(names_file, "w") as f:
        f.write("\n".join(listed) + "\n")
    port = bench.free_port()
    conf = os.path.join(d, "nsd.conf")
    with open(conf, "w") as f:
        f.write(f"server:\n ip-address: 127.0.0.1\n port: {port}\n username: \"\"\n chroot: \"\"\n"
                f" zonesdir: \"{d}\"\n database: \"\"\n pidfile: \"{d}/nsd.pid\"\n xfrdfile: \"{d}/xfrd\"\n"
                f" zonelistfile: \"{d}/zl\"\n logfile: \"{d}/nsd.log\"\n server-count: 1\n"
                " rrl-ratelimit: 0\n rrl-whitelist-ratelimit: 0\n"
                f"remote-control:\n control-enable: yes\n control-interface: {d}/nsd.ctl\n")
        for zone in ["test"] + [f"z{i}.test" for i in range(zones)]:
            f.write(f"zone:\n name: {zone}\n zonefile: {zone}.zone\n")
    return conf, port, anchor, names_file


class Nsd:
    def __init__(self, conf, port):
        self.conf = conf
        self.port = port
        self.p = subprocess.Popen(["taskset", "-c", "1", "nsd", "-d", "-c", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_answer(port, "ns.test")

    def queries(self):
        out = subprocess.run(["nsd-control", "-c", self.conf, "stats_noreset"], capture_output=True, text=True,
                             check=True).stdout
        return next(int(l.split("=")[1]) for l in out.splitlines() if l.startswith("num.queries="))

    def stop(self):
        self.p.terminate()
        self.p.wait()


class Resolver:
    """dnsveil (validating or not) or unbound (validator + iterator), forwarding `test.` to nsd."""

    def __init__(self, kind, d, nsd_port, anchor, threads, binary):
        self.kind = kind
        self.port = bench.free_port()
        if kind.startswith("dnsveil"):
            mode = "off" if kind.endswith("off") else "validate"
            cmd = [binary, "run", "--listen", f"127.0.0.1:{self.port}", "--upstream", f"udp://127.0.0.1:{nsd_port}",
                   "--threads", str(threads), "--cache-size", "300000", "--hosts", "", "--cache-file", "",
                   "--dnssec", mode, "--trust-anchor", anchor, "--prefetch", "off"]
        else:
            # The same caching forwarder setup as every benchmark's unbound, with the validator
            # module and the anchor; prefetch off, as for dnsveil.
            conf = bench.write_unbound_conf(d, self.port, threads, f"127.0.0.1@{nsd_port}",
                                            modules="validator iterator",
                                            server_extra=f'  trust-anchor-file: "{anchor}"\n'
                                                         "  key-cache-size: 64m\n  prefetch: no\n")
            cmd = ["unbound", "-d", "-c", conf]
        self.p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_answer(self.port, "ns.test")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def one(kind, d, nsd, anchor, names_file, count, threads, binary, warm_seconds):
    r = Resolver(kind, d, nsd.port, anchor, threads, binary)
    try:
        out = {}
        for phase in ("cold", "warm", "warm_rate"):
            q0, c0 = nsd.queries(), bench.cpu_seconds(r.p.pid)
            # Cold: every name once. Warm: the same names over and over for `warm_seconds`, enough
            # answers for the CPU ticks (10 ms each) to mean something; at saturation, and at a
            # fixed offered rate (`WARM_RATE`), where every resolver sees the same arrival pattern
            # (at saturation dnsperf is the bottleneck, so a resolver's CPU per answer there
            # depends on how many queries each wake-up finds).
            run = {
                "cold": lambda: bench.dnsperf(r.port, names_file, "udp", runs=1),
                "warm": lambda: bench.dnsperf(r.port, names_file, "udp", seconds=warm_seconds),
                "warm_rate": lambda: bench.dnsperf(r.port, names_file, "udp", seconds=warm_seconds,
                                                   qps=WARM_RATE),
            }[phase]
            res, load = bench.loaded(run)
            q1, c1 = nsd.queries(), bench.cpu_seconds(r.p.pid)
            done = max(1, res.get("completed", 0))
            out[phase] = {"qps": res.get("qps", 0.0), "cpu_us": (c1 - c0) / done * 1e6,
                          "upstream_per_name": (q1 - q0) / count, "completed": res.get("completed", 0),
                          "cpu0": load[0]["busy"], "cpu1": load[1]["busy"] if len(load) > 1 else float("nan")}
            print(kind, phase, out[phase], flush=True)
        return out
    finally:
        r.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--names", type=int, default=1000, help="names per zone")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warm-seconds", type=int, default=5)
    ap.add_argument("--warmup-rounds", type=int, choices=[0, 1], default=1,
                    help="run every resolver once first and discard the figures")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    builds = bench.setup(args, ["nsd", "nsd-control", "unbound", "dnsperf", "ldns-keygen", "ldns-signzone",
                                "taskset"])
    binary = builds["dnsveil"][1]
    kinds = ["dnsveil", "unbound", "dnsveil-off"]
    with tempfile.TemporaryDirectory() as d:
        conf, port, anchor, names_file = hierarchy(d, args.zones, args.names)
        count = args.zones * args.names
        nsd = Nsd(conf, port)
        results = {k: [] for k in kinds}
        try:
            # One round first whose figures are thrown away: in two runs of three rounds the first
            # resolver of the first round (dnsveil, right after the zones were signed) spent 25-30%
            # more CPU per cold name than in its later rounds.
            for kind in kinds[:args.warmup_rounds and len(kinds)]:
                one(kind, d, nsd, anchor, names_file, count, args.threads, binary, args.warm_seconds)
            for rnd in range(args.rounds):
                for kind in bench.round_order(kinds, rnd):
                    results[kind].append(one(kind, d, nsd, anchor, names_file, count, args.threads, binary,
                                               args.warm_seconds))
        finally:
            nsd.stop()

    def med(kind, phase, key):
        return statistics.median(r[phase][key] for r in results[kind])

    rows = ["| resolver | cold q/s | cold CPU/name (us) | upstream queries/name | warm q/s | warm CPU/answer (us) "
            f"| warm CPU/answer at {WARM_RATE:,} q/s (us) | CPU0 / CPU1 busy (cold) | CPU0 / CPU1 busy (warm) |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for kind in kinds:
        rows.append(f"| {kind} | {med(kind, 'cold', 'qps'):,.0f} | {med(kind, 'cold', 'cpu_us'):.1f} | "
                    f"{med(kind, 'cold', 'upstream_per_name'):.3f} | {med(kind, 'warm', 'qps'):,.0f} | "
                    f"{med(kind, 'warm', 'cpu_us'):.2f} | {med(kind, 'warm_rate', 'cpu_us'):.2f} | "
                    f"{med(kind, 'cold', 'cpu0'):.0%} / {med(kind, 'cold', 'cpu1'):.0%} | "
                    f"{med(kind, 'warm', 'cpu0'):.0%} / {med(kind, 'warm', 'cpu1'):.0%} |")

    def per_round(num, den, phase, key):
        return [a[phase][key] / b[phase][key] for a, b in zip(results[num], results[den]) if b[phase][key]]

    goals = [
        (f"warm validated CPU per answer vs unvalidated at {WARM_RATE:,} q/s (<= 1.05x)",
         statistics.median(per_round("dnsveil", "dnsveil-off", "warm_rate", "cpu_us")), "<=", 1.05,
         per_round("dnsveil", "dnsveil-off", "warm_rate", "cpu_us")),
        ("warm validated CPU per answer vs unvalidated at saturation (<= 1.05x; rig-bound when CPU 1 is "
         "saturated)",
         statistics.median(per_round("dnsveil", "dnsveil-off", "warm", "cpu_us")), "<=", 1.05,
         per_round("dnsveil", "dnsveil-off", "warm", "cpu_us")),
        ("cold validated q/s vs unbound (>= 1.5x)",
         statistics.median(per_round("dnsveil", "unbound", "cold", "qps")), ">=", 1.5,
         per_round("dnsveil", "unbound", "cold", "qps")),
        ("cold CPU per name vs unbound (lower is better; for reference)",
         statistics.median(per_round("dnsveil", "unbound", "cold", "cpu_us")), "<=", 1e9,
         per_round("dnsveil", "unbound", "cold", "cpu_us")),
        ("upstream queries per cold name vs unbound (<= 1.0x)",
         statistics.median(per_round("dnsveil", "unbound", "cold", "upstream_per_name")), "<=", 1.0,
         per_round("dnsveil", "unbound", "cold", "upstream_per_name")),
    ]
    lines = ["## DNSSEC validation: dnsveil vs unbound, both validating forwarders",
             "",
             f"`python3 benches/bench_dnssec.py --zones {args.zones} --names {args.names} --rounds {args.rounds}` "
             f"at {bench.revision()}; {bench.unbound_version()}; {args.zones} signed zones (ECDSA P-256, NSEC) "
             f"under the anchor `test.`, {count} names, each asked once cold, then all of them again and again "
             f"for {args.warm_seconds} s warm, at saturation and at {WARM_RATE:,} q/s offered; resolver alone on "
             "CPU 0 with one thread, dnsperf and nsd on CPU 1. Medians of the rounds. `dnsveil-off` is the "
             "same binary with `--dnssec off`.",
             "", *rows, "", *bench.goal_rows(goals), "",
             "Cold throughput is the rig's when CPU 1 is fully busy (dnsperf and nsd share it); CPU per name "
             "is each resolver's own ticks either way."]
    bench.write_section(args.out, "bench_dnssec", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
