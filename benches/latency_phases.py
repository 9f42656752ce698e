#!/usr/bin/env python3
"""Where a cache miss's latency goes, per query, in dnsveil and in unbound: the resolver's own work
against the kernel's sends, the upstream's round trip and the delivery around them.

bench_upstream.py measures the miss path's p50 at a fixed rate from outside (dnsperf). Its goal
for DoT is at most 0.8x unbound's p50 at 500 q/s. This script asks whether any resolver could meet
such a goal on this machine, by splitting one query's time inside the resolver with the kernel's
system-call tracepoints (`perf record -e syscalls:...`, exact timestamps, next to no cost to the
traced process). Same rig and layout as bench_upstream.py: the resolver alone on CPU 0; dnsdist
(the DoT upstream), nsd and dnsperf on CPU 1; unique names, so every query is a miss; at a low
fixed rate each query is handled alone, so the resolver's system calls between a query's arrival
and its answer belong to that query:

    arrival        the receive on the client socket that returns the query
    query work     from there to the upstream send: parsing, the cache's miss, the upstream query,
                   TLS encryption (user space, and any system call the resolver makes meanwhile)
    upstream send  the send system call itself: loopback delivery into the upstream (TCP or UDP
                   receive processing in the sender's context) and the wake-up of the upstream's CPU
    upstream wait  from its end to the resolver's wake-up with the answer ready: the upstream's
                   (and nsd's) work on CPU 1, the delivery back and the wake-up of CPU 0
    answer work    from that wake-up to the send to the client: reading the answer, TLS decryption,
                   checks, the cache, the response
    client send    the send system call to the client (delivery into dnsperf and its wake-up)
    outside        dnsperf's p50 less the resolver's median from arrival to the end of the client
                   send: delivery to the resolver and the wake-up of its CPU, dnsperf's own work

"Query work" and "answer work" are all the resolver could ever take off its latency: a resolver
doing no work at all would answer in about dnsperf's p50 less those two (the least p50 column).
When that is above 0.8x unbound's p50, the p50 goal cannot be met on this machine by any change to
dnsveil's user space.

Per round each resolver is started fresh (with a fresh upstream), warmed with a short run, then
traced during one run of `--seconds` at `--rate`; rounds alternate the order; figures are medians
of the rounds' medians. Results go to BENCHMARKS.md between this script's markers.

Usage: sudo python3 benches/latency_phases.py [--transport dot|udp] [--rate 500] [--seconds 5]
           [--rounds 3] [--out BENCHMARKS.md] [--no-build]
Needs: root (tracepoints), perf, nsd, unbound, dnsdist, dnsperf, kdig, taskset (Debian: linux-perf
nsd unbound dnsdist dnsperf knot-dnsutils util-linux).
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import bench_upstream as bu  # noqa: E402

SECTION = "latency_phases.py"
SYSCALLS = ("recvmmsg", "recvmsg", "recvfrom", "read", "readv", "sendmmsg", "sendmsg", "sendto", "write",
            "writev", "epoll_wait", "epoll_pwait")
RECV = {"recvmmsg", "recvmsg", "recvfrom", "read", "readv"}
SEND = {"sendmmsg", "sendmsg", "sendto", "write", "writev"}
WAIT = {"epoll_wait", "epoll_pwait"}
PHASES = ("query work", "upstream send", "upstream wait", "answer work", "client send", "in the resolver")
# The p50 goal of issue 13 over DoT: dnsveil's p50 at most this times unbound's.
P50_GOAL = 0.8


def client_fds(pid, port):
    """The resolver's descriptors of UDP sockets bound to `port` (its listening sockets)."""
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    fds = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m and m[1] in inodes:
            fds.add(int(fd))
    if not fds:
        raise RuntimeError(f"no socket of process {pid} bound to UDP port {port}")
    return fds


def events(data):
    """(time, tid, 'enter'|'exit', syscall, fd, return value) from a perf.data of SYSCALLS."""
    txt = subprocess.run(["perf", "script", "-i", data, "-F", "tid,time,event,trace"], capture_output=True,
                         text=True, check=True).stdout
    pending, out = {}, []
    for line in txt.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)", line)
        if not m:
            continue
        tid, t, kind, sc, rest = int(m[1]), float(m[2]), m[3], m[4], m[5]
        if kind == "enter":
            fd = re.search(r"(?:fd|epfd): 0x([0-9a-f]+)", rest)
            pending[tid] = int(fd[1], 16) if fd else None
            out.append((t, tid, kind, sc, pending[tid], None))
        else:
            ret = int(rest.split()[-1], 16)
            ret = ret - (1 << 64) if ret >= 1 << 63 else ret
            out.append((t, tid, kind, sc, pending.pop(tid, None), ret))
    return out


def phases(evs, clients):
    """Per query, the phases' durations (seconds), for queries handled alone from arrival to answer."""
    res = {p: [] for p in PHASES}
    cur = None
    for t, _tid, kind, sc, fd, ret in evs:
        if kind == "exit" and sc in RECV and fd in clients and ret > 0:
            cur = {"in": t}  # a query (an earlier one still open was not handled alone: dropped)
        elif cur is None:
            continue
        elif "s0" not in cur:
            if kind == "enter" and sc in SEND and fd not in clients:
                cur["s0"] = t
            elif kind == "enter" and sc in SEND:
                cur = None  # answered without the upstream (not a miss)
        elif "s1" not in cur:
            if kind == "exit" and sc in SEND and fd not in clients:
                cur["s1"] = t
        elif "r" not in cur:
            if kind == "exit" and ((sc in WAIT and ret > 0) or (sc in RECV and fd not in clients and ret > 0)):
                cur["r"] = t
        elif "o0" not in cur:
            if kind == "enter" and sc in SEND and fd in clients:
                cur["o0"] = t
        elif kind == "exit" and sc in SEND and fd in clients:
            c = cur
            for name, a, b in (("query work", c["in"], c["s0"]), ("upstream send", c["s0"], c["s1"]),
                               ("upstream wait", c["s1"], c["r"]), ("answer work", c["r"], c["o0"]),
                               ("client send", c["o0"], t), ("in the resolver", c["in"], t)):
                res[name].append(b - a)
            res.setdefault("own work", []).append((c["s0"] - c["in"]) + (c["o0"] - c["r"]))
            cur = None
    return res


def run_one(kind, binary, transport, rig, args):
    d, authority = rig.d, rig.authority
    upstream = bu.Upstream(d, authority.port, rig.rig_cpu) if transport == "dot" else None
    try:
        r = bu.Resolver(kind, transport, binary, d, upstream, authority, 1, rig.resolver_cpu)
        try:
            tag = f"{kind}-{transport}-{r.port}"
            bench.dnsperf(r.port, bu.names_file(d, f"w-{tag}", args.rate), "udp", runs=1, qps=args.rate,
                          verbose=True, clients=4, outstanding=100)
            clients = client_fds(r.d.pid, r.port)
            data = os.path.join(d, f"{tag}.data")
            ev = ",".join(f"syscalls:sys_{p}_{s}" for s in SYSCALLS for p in ("enter", "exit"))
            perf = subprocess.Popen(["perf", "record", "-q", "-o", data, "-e", ev, "-p", str(r.d.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # perf is ready once its output file has its header; then let it settle.
            bu.wait_until("perf record", lambda: os.path.exists(data) and os.path.getsize(data) > 0)
            lat = bench.dnsperf(r.port, bu.names_file(d, f"m-{tag}", args.rate * args.seconds), "udp", runs=1,
                                qps=args.rate, verbose=True, clients=4, outstanding=100)
            perf.send_signal(signal.SIGINT)
            perf.wait()
        finally:
            r.stop()
    finally:
        if upstream:
            upstream.stop()
    ph = phases(events(data), clients)
    sent = max(1, lat.get("completed", 0))
    out = {p: statistics.median(v) * 1e6 for p, v in ph.items() if v}
    out["p50"] = bench.pct(lat["latencies"], 0.50) * 1e6
    out["alone"] = len(ph["in the resolver"]) / sent
    out["outside"] = out["p50"] - out["in the resolver"]
    out["least"] = out["p50"] - out["own work"]
    return out


def report(args, runs, rev):
    kinds = ("dnsveil", "unbound")
    med = {k: {x: statistics.median(r[x] for r in runs[k]) for x in runs[k][0]} for k in kinds}
    name = {"dot": "DoT", "udp": "plain UDP"}[args.transport]
    lines = [
        f"## Where a miss's latency goes (`benches/latency_phases.py`), {name}, {args.rate} q/s",
        "",
        f"Commit {rev}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, unbound {bench.unbound_version()}, "
        f"{args.rounds} round(s) taking turns, {args.seconds} s traced per resolver and round. Layout of "
        "bench_upstream.py (resolver alone on CPU 0; upstream, nsd and dnsperf on CPU 1). Per query, from the "
        "resolver's system-call tracepoints; medians over the queries of a run, then over the rounds (µs). "
        "The phases are defined in the script's docstring. Reproduce: "
        f"`sudo python3 benches/latency_phases.py --transport {args.transport} --rate {args.rate} "
        f"--seconds {args.seconds} --rounds {args.rounds}`.",
        "",
        "| resolver | dnsperf p50 | outside the resolver | query work | upstream send | upstream wait | answer work "
        "| client send | in the resolver | own work (query + answer) | least p50 with no own work | queries traced alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in kinds:
        m = med[k]
        lines.append(f"| {k} | {m['p50']:.0f} | {m['outside']:.0f} | {m['query work']:.0f} | {m['upstream send']:.0f} "
                     f"| {m['upstream wait']:.0f} | {m['answer work']:.0f} | {m['client send']:.0f} "
                     f"| {m['in the resolver']:.0f} | {m['own work']:.0f} | {m['least']:.0f} | {m['alone']:.0%} |")
    lines += ["", "Each round (dnsveil / unbound):", ""]
    for i, (a, b) in enumerate(zip(runs["dnsveil"], runs["unbound"])):
        lines.append(f"- round {i + 1}: p50 {a['p50']:.0f} / {b['p50']:.0f} µs ({a['p50'] / b['p50']:.2f}x); own work "
                     f"{a['own work']:.0f} / {b['own work']:.0f} µs; least p50 with no own work {a['least']:.0f} µs = "
                     f"{a['least'] / b['p50']:.2f}x unbound's p50")
    goal = P50_GOAL * med["unbound"]["p50"]
    least = med["dnsveil"]["least"]
    lines += [
        "",
        f"- p50: dnsveil {med['dnsveil']['p50']:.0f} µs against unbound's {med['unbound']['p50']:.0f} "
        f"({med['dnsveil']['p50'] / med['unbound']['p50']:.2f}x); a goal of {P50_GOAL}x unbound's is {goal:.0f} µs.",
        f"- dnsveil's own work per miss is {med['dnsveil']['own work']:.0f} µs against unbound's "
        f"{med['unbound']['own work']:.0f} ({med['dnsveil']['own work'] / med['unbound']['own work']:.2f}x). Without any, "
        f"dnsveil would answer in about {least:.0f} µs, {least / med['unbound']['p50']:.2f}x unbound's p50: "
        + ("the goal is out of reach of any change to dnsveil's own work on this machine; what is left is the "
           "kernel's sends, the upstream's round trip and the deliveries and wake-ups around them."
           if least > goal else "within the goal's reach."),
    ]
    bench.write_section(args.out, f"{SECTION} {args.transport}", lines)
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["dot", "udp"], default="dot")
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "BENCHMARKS.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (perf's system-call tracepoints)")
    builds = bench.setup(args, ["perf", "nsd", "unbound", "dnsdist", "dnsperf", "kdig", "taskset"])
    rev = bench.revision()
    d = tempfile.mkdtemp(prefix="dnsveil-latency-phases-")
    rig = bu.Rig(d, "split", 0)
    runs = {"dnsveil": [], "unbound": []}
    try:
        for rnd in range(args.rounds):
            for k in bench.round_order(["dnsveil", "unbound"], rnd):
                r = run_one(k, builds["dnsveil"][1] if k == "dnsveil" else None, args.transport, rig, args)
                runs[k].append(r)
                print(f"round {rnd + 1} {k}: " + ", ".join(f"{x} {v:.0f}" for x, v in r.items() if x != "alone")
                      + f", alone {r['alone']:.0%}", flush=True)
    finally:
        rig.stop()
        shutil.rmtree(d, ignore_errors=True)
    report(args, runs, rev)


if __name__ == "__main__":
    main()
