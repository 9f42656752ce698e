#!/usr/bin/env python3
"""Resident memory after caching 100,000 distinct names, for several dnsveil binaries taking turns.

bench.py measures this once per server and run, and one fill of one binary moves by about 0.5 MiB
between runs: as much as the differences worth finding. This script fills each binary in turn,
`--rounds` times, with bench.py's fill (its nsd, names and dnsperf settings; the server pinned to
CPU 0 with one worker thread), and prints each binary's RSS after every fill. With
--malloc-stats it also attaches gdb after each fill and has the process print glibc's
`malloc_stats()` (bytes each arena took from the system, and bytes in use), which tells live data
from free space left between allocations.

Usage: python3 benches/mem_fill.py [--rounds 3] [--names 100000] [--malloc-stats] BINARY...
Needs: nsd, dnsperf, taskset; gdb for --malloc-stats.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def malloc_stats(pid, err_path):
    """Has process `pid` print malloc_stats() to its stderr (the file at `err_path`); returns the lines."""
    with open(err_path) as f:
        f.seek(0, os.SEEK_END)
        start = f.tell()
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"], capture_output=True,
                   check=False)
    deadline = time.time() + 5
    while time.time() < deadline:
        with open(err_path) as f:
            f.seek(start)
            text = f.read()
        if "max mmap bytes" in text:
            break
        time.sleep(0.1)
    return [line.strip() for line in text.splitlines() if "Arena" in line or "bytes" in line]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--malloc-stats", action="store_true")
    args = ap.parse_args()
    for tool in ["nsd", "dnsperf", "taskset"] + (["gdb"] if args.malloc_stats else []):
        bench.need(tool)
    d = tempfile.mkdtemp(prefix="mem-fill-")
    distinct = os.path.join(d, "distinct.txt")
    with open(distinct, "w") as f:
        for i in range(args.names):
            f.write(f"n{i}.bench.test A\n")
    nsd = bench.Nsd(d)
    rss = {b: [] for b in args.binaries}
    try:
        for rnd in range(args.rounds):
            for b in args.binaries:
                err_path = os.path.join(d, f"stderr-{rnd}-{os.path.basename(b)}")
                with open(err_path, "w") as err:
                    port = bench.free_port()
                    cmd = ["taskset", "-c", "0", b, "run", "--listen", f"127.0.0.1:{port}", "--upstream",
                           f"udp://127.0.0.1:{nsd.port}", "--threads", "1", "--cache-size", "300000",
                           "--hosts", "/dev/null"] + bench.dnssec_off(b)
                    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
                    try:
                        bench.wait_answer(port)
                        r = bench.dnsperf(port, distinct, "udp", runs=1, clients=4, outstanding=200)
                        after = bench.rss_kib(p.pid) / 1024
                        rss[b].append(after)
                        print(f"round {rnd + 1} {b}: {after:.1f} MiB after {r.get('completed', 0)} answers", flush=True)
                        if args.malloc_stats:
                            for line in malloc_stats(p.pid, err_path):
                                print("   ", line)
                    finally:
                        p.terminate()
                        p.wait()
    finally:
        nsd.stop()
    for b, values in rss.items():
        print(f"{b}: " + ", ".join(f"{v:.1f}" for v in sorted(values)) + " MiB")


if __name__ == "__main__":
    main()
