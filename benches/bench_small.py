#!/usr/bin/env python3
"""Small-machine budget (issue 17): what dnsveil needs on a home router.

Measures, on loopback only (dnsveil forwards to a local nsd):
  - the release binary's size as built (the release profile strips it) and after `strip`, if the
    tool is there (it should change nothing);
  - resident memory (VmRSS) once idle, with the default configuration (the embedded default's
    knobs: one worker per core, a 100,000-entry cache) and with one worker thread (`--threads 1`,
    a router's single core);
  - resident memory with the cache full: 100,000 distinct names asked once (dnsperf), then idle.
DNSSEC validation is off (`--dnssec off`): nsd's zone here is unsigned and has no way to prove it
(no root), so validating would fill the cache with 100,000 SERVFAILs instead of answers.
Goals: binary under 8 MiB, idle under 8 MiB. Where memory goes is broken down from
/proc/PID/smaps (heap, thread stacks, the binary's own pages) for the default configuration.
Then the cached path's CPU per answer (dnsperf over 1,000 cached names, dnsveil pinned to CPU 0 with
one worker, dnsperf on CPU 1, as bench.py does; rounds alternate, figures are medians): with rate
limiting off and on (`--rate-limit 1000000`: every query is checked, none is limited), and, with
`--compare BINARY`, against another build (e.g. this tree built with the previous release profile).
Results go to BENCHMARKS.md, between this script's markers (see bench.write_section).

Usage: python3 benches/bench_small.py [--out BENCHMARKS.md] [--no-build] [--settle 2] [--idle-starts 3] [--rounds 5]
                                      [--seconds 5] [--compare BINARY [--compare-label TEXT]]
Needs: nsd, dnsperf, taskset (Debian: nsd dnsperf util-linux).
"""
import argparse
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared helpers: nsd, dnsperf, readiness, RSS)

MIB = 1024 * 1024
GOAL_BINARY = 8 * MIB
GOAL_IDLE_KIB = 8 * 1024


def start(binary, nsd_port, extra):
    """dnsveil with the embedded default config, on a free loopback port, forwarding to nsd with
    validation off and no hosts file; nsd_port None: the embedded default as shipped (its own
    encrypted upstreams, DNSSEC validation, /etc/hosts; only the cache file moved to a temporary
    folder), whose upstreams are never asked: the one query sent is `localhost`, answered locally."""
    port = bench.free_port()
    cmd = [binary, "run", "--listen", f"127.0.0.1:{port}"]
    if nsd_port is not None:
        cmd += ["--upstream", f"udp://127.0.0.1:{nsd_port}", "--hosts", "/dev/null", "--dnssec", "off"]
    else:
        cmd += ["--cache-file", os.path.join(tempfile.mkdtemp(prefix="dnsveil-small-cache-"), "cache.bin")]
    p = subprocess.Popen(cmd + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_answer(port, name="localhost" if nsd_port is None else "www.bench.test")
    return p, port


def idle_kib(binary, nsd_port, extra, starts, settle):
    """Median resident KiB of `starts` fresh starts, each read `settle` s after it answered; and
    the last process, still running."""
    # Idle memory moves by a few hundred KiB between starts (how many of the binary's and the C
    # library's file pages the kernel maps around each fault): the median of a few fresh starts.
    idles = []
    p = port = None
    for start_no in range(starts):
        evict(binary)
        p, port = start(binary, nsd_port, extra)
        time.sleep(settle)
        idles.append(bench.rss_kib(p.pid))
        if start_no + 1 < starts:
            stop(p)
    return statistics.median(idles), idles, p, port


def evict(binary):
    """Drops the binary's pages from the page cache, so each start reads it as a boot does.

    How much of the binary a process has resident depends on how its pages got into the page
    cache: the kernel maps a whole large folio on a fault, and a file just written by the linker or
    by `cp` is cached in other folio sizes than one read from disk by readahead (0.3-0.4 MiB apart
    on this machine for the same binary). Evicting it first measures the state a router is in after
    it boots, the same for every build. No process may be running the binary (its mapped pages stay)."""
    fd = os.open(binary, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()


def breakdown(pid):
    """Resident KiB by kind of mapping: heap (anonymous, incl. the allocator's arenas), thread
    stacks, the binary's own file pages, shared libraries, other."""
    out = {"anonymous": 0, "stack": 0, "binary": 0, "libraries": 0}
    kind = None
    exe = os.path.realpath(f"/proc/{pid}/exe")
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split()
                path = parts[5] if len(parts) > 5 else ""
                if path == exe:
                    kind = "binary"
                elif path.startswith("["):
                    kind = "stack" if path.startswith("[stack") else "anonymous"
                elif path:
                    kind = "libraries"
                else:
                    kind = "anonymous"
            elif first == "Rss:" and kind:
                out[kind] += int(line.split()[1])
    return out


class Pinned:
    """dnsveil on CPU 0 with one worker, as bench.Server runs it, with extra flags."""

    def __init__(self, binary, nsd_port, extra):
        self.port = bench.free_port()
        cmd = [binary, "run", "--listen", f"127.0.0.1:{self.port}", "--upstream", f"udp://127.0.0.1:{nsd_port}",
               "--threads", "1", "--hosts", "/dev/null", "--dnssec", "off"] + extra
        self.p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        bench.wait_answer(self.port)

    def stop(self):
        stop(self.p)


def cpu_per_answer(kinds, nsd_port, hot, rounds, seconds):
    """Median CPU microseconds per cached answer and queries/s of each (label, binary, flags)."""
    servers = {label: Pinned(binary, nsd_port, extra) for label, binary, extra in kinds}
    got = {label: [] for label in servers}
    try:
        for rnd in range(rounds):
            order = list(servers)
            if rnd % 2:
                order.reverse()
            for label in order:
                r = bench.measure(servers[label], hot, "udp", seconds)
                got[label].append(r)
                print(f"round {rnd + 1}", label, r, flush=True)
    finally:
        for s in servers.values():
            s.stop()
    return {label: (statistics.median(r["cpu_us"] for r in rs), statistics.median(r["qps"] for r in rs),
                    [round(r["cpu_us"], 2) for r in rs])
            for label, rs in got.items()}


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before reading memory")
    ap.add_argument("--idle-starts", type=int, default=3, help="fresh starts whose idle memory is the median")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--compare", metavar="BINARY", help="another dnsveil build to compare the cached path with")
    ap.add_argument("--compare-label", default="previous release profile")
    args = ap.parse_args()
    builds = bench.setup(args, ["nsd", "dnsperf", "taskset"])
    binary = builds["dnsveil"][1]
    size = os.path.getsize(binary)
    stripped = None
    if shutil.which("strip"):
        copy = tempfile.mktemp(prefix="dnsveil-stripped-")
        shutil.copy2(binary, copy)
        subprocess.run(["strip", copy], check=True)
        stripped = os.path.getsize(copy)
        os.unlink(copy)
    print("binary", size, "stripped", stripped, flush=True)

    d = tempfile.mkdtemp(prefix="dnsveil-small-")
    names = os.path.join(d, "distinct.txt")
    with open(names, "w") as f:
        for i in range(100_000):
            f.write(f"n{i}.bench.test A\n")
    nsd = bench.Nsd(d)
    hot = os.path.join(d, "hot.txt")
    with open(hot, "w") as f:
        for i in range(1000):
            f.write(f"h{i}.bench.test A\n")
    rows = []
    detail = None
    cpu = {}
    try:
        for label, extra in [("default config (one worker per core)", []),
                             ("--threads 1", ["--threads", "1"])]:
            idle, idles, p, port = idle_kib(binary, nsd.port, extra, args.idle_starts, args.settle)
            try:
                if detail is None:
                    detail = (breakdown(p.pid), threads(p.pid))
                r = bench.dnsperf(port, names, "udp", runs=1, clients=4, outstanding=200)
                time.sleep(args.settle)
                full = bench.rss_kib(p.pid)
                rows.append((label, idle, idles, full, r.get("completed", 0), threads(p.pid)))
                print(label, "idle", idle, idles, "full", full, r.get("completed"), flush=True)
            finally:
                stop(p)
        # The embedded default as it is, with its encrypted upstreams (their TLS set up, none
        # asked); no cache fill, since nothing here may leave the machine.
        # Read later too: its blocking-pool thread (the cache file's load) goes after 10 s, and
        # its periodic work (file watchers, the resume check) touches more code meanwhile.
        own_settle = max(args.settle, 15.0)
        own, own_idles, p, _ = idle_kib(binary, None, [], args.idle_starts, own_settle)
        own_threads = threads(p.pid)
        stop(p)
        print("embedded default idle", own, own_idles, flush=True)
        rows.append((f"embedded default as shipped (DoT/DoH upstreams, none asked; validation on; "
                     f"/etc/hosts), read {own_settle:g} s after start", own, own_idles, None, 0, own_threads))
        kinds = [("this build", binary, []), ("this build, --rate-limit 1000000", binary, ["--rate-limit", "1000000"])]
        if args.compare:
            kinds.append((args.compare_label, args.compare, []))
        cpu = cpu_per_answer(kinds, nsd.port, hot, args.rounds, args.seconds)
    finally:
        nsd.stop()
        shutil.rmtree(d, ignore_errors=True)

    cores = os.cpu_count()
    lines = [
        "## Small-machine budget (benches/bench_small.py)",
        "",
        f"Revision {bench.revision()}, {cores} CPU cores, release profile from Cargo.toml, `--dnssec off` (an",
        "unsigned local zone). Resident memory",
        f"(VmRSS) read {args.settle:g} s after start (idle; the median of {args.idle_starts} fresh starts) and {args.settle:g} s after 100,000 distinct names",
        "were asked once (the default cache holds 100,000 entries). Before each start the binary is",
        "dropped from the page cache, so it is read from disk as after a boot (how many of its pages a",
        "process maps depends on the folios the page cache holds them in).",
        "",
        "| | Measured | Goal | |",
        "|---|---|---|---|",
        f"| release binary (stripped by the profile) | {size / MIB:.2f} MiB | < 8 MiB | "
        f"{'met' if size < GOAL_BINARY else '**not met**'} |",
    ]
    if stripped is not None:
        lines.append(f"| after `strip` | {stripped / MIB:.2f} MiB | | |")
    for label, idle, idles, full, completed, nthreads in rows:
        starts = ", ".join(f"{k / 1024:.2f}" for k in idles)
        lines.append(f"| idle, {label} ({nthreads} threads) | {idle / 1024:.1f} MiB (starts: {starts}) | < 8 MiB | "
                     f"{'met' if idle < GOAL_IDLE_KIB else '**not met**'} |")
        if full is not None:
            lines.append(f"| 100,000 names cached ({completed} answered), {label} | {full / 1024:.1f} MiB | | |")
    if detail:
        parts, nthreads = detail
        lines += [
            "",
            f"Idle, default config ({nthreads} threads), resident KiB by mapping: "
            + ", ".join(f"{k} {v}" for k, v in parts.items()) + ". "
            f"What dnsveil allocates (anonymous memory: heap, buffers, tables, thread stacks) is "
            f"{parts['anonymous'] + parts['stack']} KiB of it; the rest is file pages of the binary's code "
            "and of the C library, mapped as the process starts (clean pages, shared with other "
            "processes or dropped under memory pressure). So idle memory follows the binary's size, "
            "not the thread count or the cache's capacity (the cache allocates as it fills: about "
            f"{(rows[0][3] - rows[0][1]) * 1024 // 100_000 if rows else 0} bytes per cached name here).",
        ]
    if cpu:
        base = cpu["this build"][0]
        lines += [
            "",
            f"Cached path, UDP, 1,000 names, one worker on CPU 0, dnsperf on CPU 1; medians of {args.rounds} "
            f"alternating rounds of {args.seconds} s (per-round figures in brackets):",
            "",
            "| Build | CPU per answer | vs this build | queries/s |",
            "|---|---|---|---|",
        ]
        for label, (us, qps, per) in cpu.items():
            lines.append(f"| {label} | {us:.2f} µs {per} | {us / base:.3f}x | {qps:,.0f} |")
    print("\n".join(lines))
    bench.write_section(args.out, "bench_small.py", lines)


if __name__ == "__main__":
    main()
