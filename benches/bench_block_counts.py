#!/usr/bin/env python3
"""Blocking, counted (issue 17): what a cached answer and a blocked answer cost in instructions and
in data-cache misses, with and without a 1,000,000-name block list, under valgrind's callgrind.

bench_block.py times CPU per query, which the other load of a shared machine disturbs by more than
the 5% its goal allows. This script counts instead: dnsveil runs under
`valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no` (loading the list is not
instrumented), the cache is filled and every entry hit once, and the counters are zeroed
(`callgrind_control -z`) before each query set sent by dnsperf (one query outstanding), dumped
after it (`callgrind_control -d`) and divided by the answers dnsperf counted.
Columns: instructions (Ir), L1 data misses (D1mr + D1mw) and last-level data misses (DLmr + DLmw)
per query. The simulated last level is the core's own L2 by default (`--ll`, 2 MiB here): the L3
is shared with every other process and the kernel, which at a moderate query rate evict what a
query left in it, so a miss in the private caches is what a cold line costs.

Same list, names and queries as bench_block.py (its `generate`): 10,000 cached names
(n<i>.bench.test, forwarded to a local nsd), 10,000 blocked names from the list. Both sets are asked
before either is counted, and each count follows an uncounted pass over its own set (see `main`).

Usage: python3 benches/bench_block_counts.py [--baseline REV] [--names 1000000] [--passes 2]
                                           [--ll 2097152,16,64] [--out BENCHMARKS.md]
                                           [--outstanding 1] [--no-build]
Results go to BENCHMARKS.md between this script's markers.
Needs: valgrind, nsd, dnsperf, taskset (Debian: valgrind nsd dnsperf util-linux).
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import bench_block  # noqa: E402


# Queries outstanding while counting (--outstanding): 1 by default.
OUTSTANDING = [1]


def send(port, datafile, passes):
    """dnsperf through `datafile` `passes` times. With one query outstanding (the default) every
    query arrives alone, so each wake-up of the server answers exactly one and the counts per query
    do not depend on how queries bunch (as the fixed-rate runs of bench_block.py intend); with more
    (`--outstanding`, e.g. 100 as at saturation) the server answers batches and the counts are
    those of the batched path."""
    n = OUTSTANDING[0]
    return bench.dnsperf(port, datafile, "udp", runs=passes, strict=False, clients=1 if n == 1 else 4,
                         outstanding=n)


class Counted:
    """dnsveil under callgrind, instrumentation off until `count` switches it on."""

    def __init__(self, label, binary, d, upstream, extra, ll):
        self.label, self.d = label, d
        self.port = bench.free_port()
        self.out = os.path.join(d, f"callgrind.{label.replace(' ', '_').replace('+', '_')}")
        cmd = ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--cache-sim=yes", f"--LL={ll}",
               "--instr-atstart=no", f"--callgrind-out-file={self.out}.%p"] + \
            bench_block.dnsveil_cmd(binary, self.port, upstream, extra)
        self.log = open(os.path.join(d, f"{label.replace(' ', '_')}.log"), "w")
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        bench.wait_answer(self.port, timeout=900)
        # Instrumented from here on (loading the list is not); each count zeroes the counters.
        subprocess.run(["callgrind_control", "-i", "on", str(self.p.pid)], check=True, capture_output=True)

    def count(self, datafile, passes):
        """Counters per answer over `passes` runs through `datafile` (see `send`)."""
        for f in glob.glob(f"{self.out}.{self.p.pid}*"):
            os.remove(f)
        subprocess.run(["callgrind_control", "-z", str(self.p.pid)], check=True, capture_output=True)
        r = send(self.port, datafile, passes)
        subprocess.run(["callgrind_control", "-d", str(self.p.pid)], check=True, capture_output=True)
        totals = {}
        deadline = time.time() + 60
        while not totals and time.time() < deadline:
            for f in glob.glob(f"{self.out}.{self.p.pid}*"):
                events, values = None, None
                for line in open(f):
                    if line.startswith("events:"):
                        events = line.split()[1:]
                    elif line.startswith(("summary:", "totals:")):
                        values = [int(v) for v in line.split()[1:]]
                if events and values:
                    for e, v in zip(events, values):
                        totals[e] = totals.get(e, 0) + v
            if not totals:
                time.sleep(0.5)
        done = max(1, r.get("completed", 1))
        per = lambda *keys: sum(totals.get(k, 0) for k in keys) / done
        return {"answers": done, "rcodes": r.get("rcodes", {}), "Ir": per("Ir"),
                "D1": per("D1mr", "D1mw"), "LL": per("DLmr", "DLmw")}

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


def section(rows, args, blocked_count, revision):
    """BENCHMARKS.md's section for `rows` of (server, queries, counts)."""
    ratio = {}
    for name, what, r in rows:
        ratio.setdefault(name.replace(" + list", ""), {})[(what, name.endswith(" + list"))] = r
    lines = [
        "## Blocking, counted (`benches/bench_block_counts.py`)",
        "",
        f"Revision {revision}, {time.strftime('%Y-%m-%d')}; dnsveil under callgrind (cache simulation, "
        f"last level {args.ll}: the core's own L2), {args.names:,} generated names as in bench_block.py; "
        f"{args.passes} counted passes over {bench_block.CACHED_NAMES:,} cached names and over {blocked_count:,} "
        f"blocked names, {'one query at a time' if OUTSTANDING[0] == 1 else f'{OUTSTANDING[0]} queries outstanding'}, both sets asked before either is counted and each count after "
        f"an uncounted pass over its own set. Counts per "
        f"answer, user space only (the kernel's share of a query is the same in every row); they do not "
        f"depend on the machine's load.",
        "",
        "| server | queries | answers | instructions/q | D1 misses/q | LL misses/q |",
        "|---|---|---|---|---|---|",
    ]
    for name, what, r in rows:
        codes = ", ".join(f"{k} {v}" for k, v in r["rcodes"].items())
        lines.append(f"| {name} | {what} | {codes} | {r['Ir']:,.0f} | {r['D1']:.1f} | {r['LL']:.2f} |")
    # Instructions as a ratio; misses as a difference per query (a few misses against a fraction of
    # one make ratios that mean nothing).
    lines += ["", "| build | cached, with list against without: instructions; D1, LL misses/q | blocked against "
              "cached (with list): instructions; D1, LL misses/q |", "|---|---|---|"]
    for label, m in ratio.items():
        plain, listed, blocked_r = m.get(("cached", False)), m.get(("cached", True)), m.get(("blocked", True))
        if not (plain and listed and blocked_r):
            continue
        q = lambda a, b: f"{a['Ir'] / b['Ir']:.3f}x; {a['D1'] - b['D1']:+.1f}, {a['LL'] - b['LL']:+.2f}"
        lines.append(f"| {label} | {q(listed, plain)} | {q(blocked_r, listed)} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--passes", type=int, default=2, help="runs through each query file that are counted")
    ap.add_argument("--ll", default="2097152,16,64", help="simulated last-level cache: size,ways,line")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "BENCHMARKS.md"))
    ap.add_argument("--outstanding", type=int, default=1,
                    help="queries in flight while counting (1: one at a time; 100: batches as at saturation)")
    ap.add_argument("--no-build", action="store_true")
    bench.add_baseline_arg(ap)
    args = ap.parse_args()
    OUTSTANDING[0] = max(1, args.outstanding)
    builds = bench.setup(args, ["valgrind", "callgrind_control", "nsd", "dnsperf", "taskset"])
    d = tempfile.mkdtemp(prefix="bench-block-counts-")
    listfile = os.path.join(d, "blocklist.txt")
    sample, _ = bench_block.generate(listfile, args.names)
    cached = os.path.join(d, "cached.txt")
    with open(cached, "w") as f:
        f.writelines(f"n{i}.bench.test A\n" for i in range(bench_block.CACHED_NAMES))
    blocked = os.path.join(d, "blocked.txt")
    with open(blocked, "w") as f:
        f.writelines(f"{n} A\n" for n in sample)
    nsd = bench.Nsd(d)
    rows = []
    try:
        for key in ["baseline", "dnsveil"]:
            if key not in builds:
                continue
            label, binary = builds[key]
            for listed in [False, True]:
                name = f"{label}{' + list' if listed else ''}"
                s = Counted(name, binary, d, nsd.port, ["--blocklist", listfile] if listed else [], args.ll)
                try:
                    # Fill the cache, then hit every entry once (a screened entry is checked and
                    # stamped on its first hit); ask every blocked name once (a build that stores
                    # blocked answers in the cache stores them here): none of that is counted.
                    # Both sets are in the cache before either is counted, so that each count
                    # runs with the same entries held; each count follows an uncounted pass over
                    # its own set, so that each starts from the same state of the data caches
                    # (20,000 entries do not all fit the simulated 2 MiB last level: whichever
                    # set was asked last is partly in it).
                    send(s.port, cached, 2)
                    kinds = [("cached", cached)] + ([("blocked", blocked)] if listed else [])
                    for what, datafile in kinds[1:]:
                        send(s.port, datafile, 1)
                    for what, datafile in kinds:
                        send(s.port, datafile, 1)
                        r = s.count(datafile, args.passes)
                        print(name, what, r, flush=True)
                        rows.append((name, what, r))
                finally:
                    s.stop()
    finally:
        nsd.stop()
        os.system(f"rm -rf {d}")
    lines = section(rows, args, len(sample), bench.revision())
    print("\n".join(lines))
    bench.write_section(args.out, "bench_block_counts.py", lines)

if __name__ == "__main__":
    main()
