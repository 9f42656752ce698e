#!/usr/bin/env python3
"""System calls, context switches and CPU time per cold name in recursive mode, dnsveil
against unbound: the kernel's share of a cold resolution, which callgrind_recursive.py does not
see (it counts user space only) and bench_recursive.py's CPU times include.

Same loopback hierarchy and pinning as bench_recursive.py (resolver on CPU 0), in a private
network namespace. Each round starts each resolver fresh (primed by www.ready.test) twice and
asks every name once, one at a time:
  counted   `perf stat -p PID`: the raw_syscalls and syscalls:sys_enter_* tracepoints (system
            calls per name, by call; unlike strace they barely slow the process, so an answer is
            as likely to be waiting at the first read as without them), context switches, page
            faults, and on-CPU time (inflated by the tracing);
  untraced  CPU time from the scheduler's own accounting (/proc/PID/task/*/schedstat), context
            switches per thread (voluntary and involuntary) and the user/system split in clock
            ticks (rough unless --zones is large).
The counts do not depend on the machine's load (except where timing decides whether a read finds
its answer); the CPU times do: compare them only from a quiet machine, with the resolvers taking
turns (--baseline, --unbound, --rounds). This VM has no hardware counters, so kernel instructions
cannot be counted. Only the resolver's process is counted (nsd's work is the same for both: the
same queries to the same servers).

Usage: sudo python3 benches/kernel_recursive.py --binary target/release/dnsveil [--zones 100]
       [--unbound] [--baseline OTHER_BINARY] [--rounds 3] [--extra '--qname-case-randomization on']
Needs: root (perf tracepoints), perf (Debian: linux-perf), nsd, unbound, unshare, ip.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import bench_recursive as br  # noqa: E402


def dnsveil(d, binary, hints, extra, port):
    p = subprocess.Popen(["taskset", "-c", "0", binary, "run", "--listen", f"127.0.0.1:{port}", "--hosts", "",
                          "--threads", "1", "--log-level", "warn", "--dnssec", "off",
                          "--mode", "recursive", "--root-hints", hints, "--query-port", "53"]
                         + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    bench.wait_answer(port, "www.ready.test", timeout=30)
    return p


def unbound(d, hints):
    p, port = br.start_unbound(d, hints)
    bench.wait_answer(port, "www.ready.test", timeout=30)
    return p, port


def cold(names, port):
    bad = 0
    for n in names:
        rcode, ancount, _ = br.ask(port, n, timeout=30)
        bad += rcode != 0 or ancount == 0
    return bad


def user_system_ticks(pid):
    """(user, system) clock ticks of a process and its threads, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def switches(pid):
    """Per thread name: (voluntary, involuntary) context switches so far."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except (FileNotFoundError, ProcessLookupError):
            continue
        v, i = out.get(st["Name"].strip(), (0, 0))
        out[st["Name"].strip()] = (v + int(st["voluntary_ctxt_switches"]),
                                   i + int(st["nonvoluntary_ctxt_switches"]))
    return out


def with_schedstat(pid, names, port, label):
    sw0 = switches(pid)
    before, (u0, s0) = bench.cpu_ns(pid), user_system_ticks(pid)
    bad = cold(names, port)
    cpu = (bench.cpu_ns(pid) - before) / len(names) / 1000
    u1, s1 = user_system_ticks(pid)
    sw1 = switches(pid)
    per = ", ".join(f"{t} {(v - sw0.get(t, (0, 0))[0]) / len(names):.2f}+"
                    f"{(i - sw0.get(t, (0, 0))[1]) / len(names):.2f}"
                    for t, (v, i) in sorted(sw1.items()) if v + i > sum(sw0.get(t, (0, 0))))
    print(f"{label}: context switches per cold name by thread (voluntary+involuntary): {per}")
    # Ticks are 10 ms and charged to whoever runs when one fires: the split is rough unless the
    # phase is long (--zones 600 or more).
    share = (u1 - u0) / max(u1 - u0 + s1 - s0, 1)
    print(f"{label}: {cpu:.1f} us on CPU per cold name, untraced ({bad} failed); user share "
          f"{share:.0%} ({u1 - u0} user, {s1 - s0} system ticks)")
    return cpu


SYSCALLS = ["socket", "bind", "connect", "ioctl", "fcntl", "setsockopt", "getsockname", "sendto",
            "recvfrom", "recvmmsg", "sendmmsg", "epoll_ctl", "epoll_wait", "close", "getrandom",
            "futex", "write", "read"]


def with_perf(pid, names, port, label):
    """Counts the phase with `perf stat -p`: tracepoints (system calls), context switches and the
    process's user and system time."""
    out = f"/tmp/perf-{pid}.txt"
    events = ["raw_syscalls:sys_enter", "context-switches", "task-clock", "page-faults", "cpu-migrations"] + [
        f"syscalls:sys_enter_{s}" for s in SYSCALLS]
    p = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-e", ",".join(events),
                          "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # perf has no readiness signal: a query made before it is attached would only be missed.
    # Counting starts before the first name is asked once this has passed.
    time.sleep(1.0)
    bad = cold(names, port)
    p.send_signal(signal.SIGINT)
    p.wait()
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and re.match(r"^[\d.]+$", parts[0]):
                # task-clock is in milliseconds; keep it in microseconds.
                scale = 1000 if parts[2].startswith("task-clock") else 1
                counts[parts[2].removesuffix(":u")] = float(parts[0]) * scale
    n = len(names)
    calls = counts.get("raw_syscalls:sys_enter", 0) / n
    per = ", ".join(f"{s} {counts.get('syscalls:sys_enter_' + s, 0) / n:.2f}" for s in SYSCALLS
                    if counts.get("syscalls:sys_enter_" + s, 0))
    print(f"{label}: {calls:.2f} system calls per cold name ({bad} failed): {per}")
    switches, cpu = counts.get("context-switches", 0) / n, counts.get("task-clock", 0) / n
    print(f"{label}: {switches:.2f} context switches, {counts.get('page-faults', 0) / n:.2f} page "
          f"faults, {counts.get('cpu-migrations', 0) / n:.2f} migrations, {cpu:.1f} us on CPU (user "
          f"+ system; moves with the machine's load) per cold name")
    return calls, switches, cpu


def inside(args):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    d = tempfile.mkdtemp(prefix="kern-rec-")
    servers, names, hints = br.build_hierarchy(d, args.zones)
    runs = [("dnsveil", args.binary)]
    if args.baseline:
        runs.append(("baseline", args.baseline))
    results = {}
    try:
        for _ in range(args.rounds):
            # The resolvers take turns, so that a change in the machine's load hits all alike.
            for label, binary in runs:
                r = []
                for count in (with_perf, with_schedstat):
                    p = dnsveil(d, binary, hints, args.extra.split(), br.RESOLVER_PORT + 1)
                    try:
                        r.append(count(p.pid, names, br.RESOLVER_PORT + 1, label))
                    finally:
                        p.terminate()
                        p.wait()
                results.setdefault(label, []).append(r[0] + (r[1],))
            if args.unbound:
                r = []
                for count in (with_perf, with_schedstat):
                    u, port = unbound(d, hints)
                    try:
                        r.append(count(u.pid, names, port, "unbound"))
                    finally:
                        u.terminate()
                        u.wait()
                results.setdefault("unbound", []).append(r[0] + (r[1],))
    finally:
        for s in servers:
            s.stop()
    print("medians per cold name (system calls, context switches, us on CPU traced by perf, "
          "us on CPU untraced):")
    for label, rs in results.items():
        med = [statistics.median(r[i] for r in rs) for i in range(4)]
        print(f"  {label}: {med[0]:.2f}, {med[1]:.2f}, {med[2]:.1f}, {med[3]:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--zones", type=int, default=100)
    ap.add_argument("--unbound", action="store_true")
    ap.add_argument("--baseline", help="another dnsveil binary (e.g. main's), run in turn with it")
    ap.add_argument("--extra", default="")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        inside(args)
        return
    # perf's tracepoints are not open to a user namespace's root: run as root, without one.
    if os.geteuid() != 0:
        sys.exit("kernel_recursive.py: run as root (perf tracepoints), e.g. with sudo")
    cmd = ["unshare", "--net", sys.executable, os.path.abspath(__file__),
           "--inside", "--binary", os.path.abspath(args.binary), "--zones", str(args.zones),
           "--rounds", str(args.rounds)]
    if args.unbound:
        cmd.append("--unbound")
    if args.baseline:
        cmd += ["--baseline", os.path.abspath(args.baseline)]
    if args.extra:
        cmd += ["--extra", args.extra]
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
