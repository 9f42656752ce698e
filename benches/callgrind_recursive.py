#!/usr/bin/env python3
"""Instructions per name in recursive mode, counted by callgrind (they do not depend on the
machine's load, unlike the CPU times of bench_recursive.py): the same loopback hierarchy as
bench_recursive.py, in a private network namespace, with dnsveil run under
`valgrind --tool=callgrind`.

Phases (counters zeroed before and dumped after each with callgrind_control):
  cold      every name once, one at a time, on a fresh resolver (primed by www.ready.test)
  warm      the same names again (all cached), one at a time
  forward   dnsveil in forwarding mode (to unbound, warm), its cache filled with the names, then
            the same names again, one at a time: the warm fast path of forwarding mode
Prints instructions per name for each phase, and per function for the cold phase (top 25,
inclusive), so that before/after comparisons of one change need only two runs.

Usage: python3 benches/callgrind_recursive.py --binary target/release/dnsveil [--zones 100]
       [--keep DIR] [--no-forward] [--extra '--qname-case-randomization on']
Build the binary with symbols for the per-function view, e.g.
  CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release
Needs: valgrind, nsd (nsd-control), unbound (for the forward phase), unshare, ip.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import bench_recursive as br  # noqa: E402


def callgrind(d, tag, binary, args, port):
    out = os.path.join(d, f"callgrind.{tag}.out")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          binary, "run", "--listen", f"127.0.0.1:{port}", "--hosts", "",
                          "--threads", "1", "--log-level", "warn", "--dnssec", "off"] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    bench.wait_answer(port, "www.ready.test", timeout=60)
    return p, out


def control(pid, what):
    subprocess.run(["callgrind_control", what, str(pid)], check=True, capture_output=True)


def phase(pid, out, names, port, label):
    """Zeroes the counters, asks `names`, dumps; returns (instructions per name, dump file)."""
    control(pid, "-z")
    bad = 0
    for n in names:
        rcode, ancount, _ = br.ask(port, n, timeout=30)
        bad += rcode != 0 or ancount == 0
    before = set(os.listdir(os.path.dirname(out)))
    control(pid, "-d")
    deadline = time.time() + 30
    while True:
        new = sorted(set(os.listdir(os.path.dirname(out))) - before)
        dumps = [f for f in new if f.startswith(os.path.basename(out))]
        if dumps or time.time() > deadline:
            break
        time.sleep(0.1)
    dump = os.path.join(os.path.dirname(out), dumps[-1])
    with open(dump) as f:
        text = f.read()
    total = int(re.search(r"^summary:\s+(\d+)", text, re.M).group(1))
    print(f"{label}: {total / len(names):,.0f} instructions per name ({len(names)} names, "
          f"{bad} failed)")
    return total / len(names), dump


def top(dump, n=25):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", dump], capture_output=True,
                         text=True).stdout
    lines = [l for l in out.splitlines() if re.match(r"^\s*[\d,]+ \(", l)]
    print("\n".join(lines[:n]))


def inside(args):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    d = args.keep or tempfile.mkdtemp(prefix="cg-rec-")
    os.makedirs(d, exist_ok=True)
    servers, names, hints = br.build_hierarchy(d, args.zones)
    procs = []
    try:
        p, out = callgrind(d, "recursive", args.binary,
                           ["--mode", "recursive", "--root-hints", hints, "--query-port", "53"]
                           + args.extra.split(), br.RESOLVER_PORT + 1)
        procs.append(p)
        _, cold = phase(p.pid, out, names, br.RESOLVER_PORT + 1, "cold (recursive)")
        phase(p.pid, out, names, br.RESOLVER_PORT + 1, "warm (recursive)")
        top(cold)
        if args.unbound:
            # unbound's iterator under the same counter, as bench_recursive.py configures it.
            conf_p, uport = br.start_unbound(d, hints)
            conf_p.terminate()
            conf_p.wait()
            conf = os.path.join(d, "unbound-rec.conf")
            u = subprocess.Popen(["valgrind", "--tool=callgrind",
                                  f"--callgrind-out-file={d}/callgrind.unbound.out",
                                  "unbound", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd=d)
            procs.append(u)
            bench.wait_answer(uport, "www.ready.test", timeout=60)
            phase(u.pid, os.path.join(d, "callgrind.unbound.out"), names, uport, "cold (unbound)")
            phase(u.pid, os.path.join(d, "callgrind.unbound.out"), names, uport, "warm (unbound)")
        if not args.no_forward:
            u, uport = br.start_unbound(d, hints)
            procs.append(u)
            bench.wait_answer(uport, "www.ready.test")
            for n in names:
                br.ask(uport, n)
            p, out = callgrind(d, "forward", args.binary, ["--upstream", f"udp://127.0.0.1:{uport}"],
                               br.RESOLVER_PORT + 2)
            procs.append(p)
            for n in names:
                br.ask(br.RESOLVER_PORT + 2, n, timeout=30)
            phase(p.pid, out, names, br.RESOLVER_PORT + 2, "warm (forwarding)")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        for s in servers:
            s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--zones", type=int, default=100)
    ap.add_argument("--keep", help="directory for the zones and callgrind files")
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--unbound", action="store_true", help="count unbound's instructions too")
    ap.add_argument("--extra", default="", help="more flags for the recursive dnsveil, e.g. "
                    "'--qname-case-randomization on'")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        inside(args)
        return
    cmd = ["unshare", "--net", "--map-root-user", sys.executable, os.path.abspath(__file__),
           "--inside", "--binary", os.path.abspath(args.binary), "--zones", str(args.zones)]
    if args.keep:
        cmd += ["--keep", os.path.abspath(args.keep)]
    if args.no_forward:
        cmd.append("--no-forward")
    if args.unbound:
        cmd.append("--unbound")
    if args.extra:
        cmd += ["--extra=" + args.extra]
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
