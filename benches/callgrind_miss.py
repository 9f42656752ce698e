#!/usr/bin/env python3
"""Instructions per lone cache miss in forwarding mode, counted by callgrind (they do not depend on
the machine's load, unlike the CPU times and latencies of bench_upstream.py and latency_phases.py).

The rig of bench_upstream.py (nsd serving a wildcard zone; for DoT, dnsdist in front of it); dnsveil
runs under `valgrind --tool=callgrind --instr-atstart=no` with one worker thread. After a warm-up,
instrumentation is switched on for one dnsperf run of unique names at a low fixed rate (each query
handled alone: the case the p50 goals of issue 13 are about), then off, and the counters dumped.
Prints user-space instructions per answered query (all threads, everything the process did during
the run), and with --top N the N costliest functions, inclusive. With --cached the measured run asks
again for names the warm-up cached: instructions per cached answer over UDP (the slow path and the
fast path's user-space share alike, which bench.py's CPU times bury under the kernel's).

Usage: python3 benches/callgrind_miss.py --binary target/release/dnsveil [--transport udp|dot]
           [--queries 2000] [--rate 200] [--top 40] [--cached]
Build the binary with symbols for the per-function view, e.g.
  CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release
Needs: valgrind, nsd, dnsperf, dnsdist (for DoT), taskset.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import bench_upstream as bu  # noqa: E402


def control(pid, *what):
    subprocess.run(["callgrind_control", *what, str(pid)], check=True, capture_output=True)


def total(dump):
    """The PROGRAM TOTALS line of a callgrind dump, as an integer."""
    txt = subprocess.run(["callgrind_annotate", dump], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", txt, re.M)
    if not m:
        sys.exit(f"no totals in {dump}")
    return int(m[1].replace(",", ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--transport", choices=("udp", "dot"), default="udp")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--cached", action="store_true", help="measure hits on names cached by the warm-up")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "nsd", "dnsperf", "taskset") + (
            ("dnsdist",) if args.transport == "dot" else ()):
        bench.need(tool)
    d = tempfile.mkdtemp(prefix="cg-miss-")
    rig = bu.Rig(d, "split", 0)
    upstream = bu.Upstream(d, rig.authority.port, rig.rig_cpu) if args.transport == "dot" else None
    port = bench.free_port()
    if upstream:
        url, extra = f"tls://127.0.0.1:{upstream.dot}", ["--ca-file", bu.CA]
    else:
        url, extra = f"udp://127.0.0.1:{rig.authority.port}", []
    out = os.path.join(d, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", args.binary,
           "run", "--listen", f"127.0.0.1:{port}", "--upstream", url, "--threads", "1", "--cache-size", "300000",
           "--hosts", "", "--log-level", "warn", "--dnssec", "off"] + extra
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    try:
        bench.wait_answer(port, timeout=60)
        warm = bu.names_file(d, "warm", 300)
        bench.dnsperf(port, warm, "udp", runs=1, qps=args.rate, clients=1, outstanding=10)
        control(p.pid, "-i", "on")
        if args.cached:
            r = bench.dnsperf(port, warm, "udp", runs=max(1, args.queries // 300), qps=args.rate, clients=1,
                              outstanding=10)
        else:
            r = bench.dnsperf(port, bu.names_file(d, "miss", args.queries), "udp", runs=1, qps=args.rate,
                              clients=1, outstanding=10)
        control(p.pid, "-i", "off")
        control(p.pid, "-d")
    finally:
        p.terminate()
        p.wait()
        if upstream:
            upstream.stop()
        rig.stop()
    dumps = sorted(f for f in os.listdir(d) if f.startswith("callgrind.out.") and not f.endswith(".out"))
    dump = os.path.join(d, dumps[0]) if dumps else out
    answered = max(1, r.get("completed", 0))
    what = "cached answer" if args.cached else "miss"
    print(f"{args.transport}: {answered} queries answered, {total(dump) / answered:,.0f} instructions per {what} "
          f"({dump})")
    if args.top:
        txt = subprocess.run(["callgrind_annotate", "--inclusive=yes", dump], capture_output=True, text=True,
                             check=True).stdout
        rows = [line for line in txt.splitlines() if re.match(r"^\s*[\d,]+ \(", line)]
        for line in rows[1:args.top + 1]:
            print(line[:200])


if __name__ == "__main__":
    main()
