#!/usr/bin/env python3
"""Attack replay: the shapes of the hardening review, from loopback, against the release binary.

For each shape a fresh dnsveil (1 worker thread) forwards `attack.test` to a local nsd, `dead.test`
to a UDP socket that never answers and `refused.test` to one that answers REFUSED. While the attack
runs, a quiet client on another loopback address (127.0.0.2) asks for new names nsd answers: 100
UDP queries a second and 5 TCP queries a second (a new connection each), each given 500 ms. The
report gives, per shape, the resident memory at idle and its peak during the attack (VmHWM), the
quiet client's answer rate, and the bytes dnsveil logged. Goals (issue 12): peak at most 64 MiB above
idle, and at least 99% of the quiet client's queries answered, under every shape.

Shapes (every loop bounded in count and time; loopback only):
  tcp-nonreader  256 connections with a 2 KiB receive buffer, each sending 300 queries for a cached
                 59 KB TXT answer and never reading, held 5 s.
  tcp-bigframe   256 connections each sending one complete 16 KiB frame, then 1,000 queries for the
                 59 KB answer, never reading, held 5 s.
  udp-dead-flood 5,000 queries for names the upstream never answers, from one address in 0.7 s.
  tcp-busy       256 connections (the cap) from one address, each holding a query for a dead name.
  tcp-idle       2,000 connections that send nothing (slowloris), held 5 s.
  udp-malformed  50,000 random datagrams.
  refused-logs   20,000 queries whose upstream answers REFUSED, in about 5 s (log volume).

Results go to BENCHMARKS.md between this script's markers.

Usage: python3 benches/bench_attack.py [--shapes a,b] [--no-build] [--out BENCHMARKS.md]
Needs: nsd, taskset (Debian: nsd util-linux).
"""
import argparse
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (shared helpers: free_port, setup, write_section)

ROOT = bench.ROOT
QUIET_UDP_QPS = 100
QUIET_TCP_QPS = 5
QUIET_WAIT = 0.5
BIG_STRINGS = 230


def query(name, qtype=1, qid=None):
    qid = random.getrandbits(16) if qid is None else qid
    head = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    body = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return head + body + struct.pack(">HH", qtype, 1)


def framed(msg):
    return struct.pack(">H", len(msg)) + msg


def rcode(resp):
    return resp[3] & 0x0F if len(resp) >= 4 else None


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_nsd(d):
    """nsd serving attack.test: a 59 KB TXT answer and a wildcard for new names."""
    chunk = "x" * 255
    big = " ".join(f'"{chunk}"' for _ in range(BIG_STRINGS))
    text = ("$ORIGIN attack.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 60\n"
            f"@ IN NS ns1\nns1 IN A 127.0.0.1\nbig IN TXT {big}\n*.fresh IN A 192.0.2.7\n")
    return bench.Nsd(d, zone="attack.test", text=text, probe="ns1.attack.test")


class FakeUpstream:
    """A UDP upstream that drops everything (`refused=False`) or answers REFUSED."""

    def __init__(self, refused):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.refused = refused
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop:
            try:
                d, a = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            if self.refused and len(d) >= 12:
                r = bytearray(d)
                r[2] |= 0x80
                r[3] = (r[3] & 0xF0) | 5
                self.sock.sendto(bytes(r), a)

    @property
    def addr(self):
        return "%s:%d" % self.sock.getsockname()


class Dnsveil:
    def __init__(self, d, nsd, dead, refused):
        self.port = bench.free_port()
        conf = os.path.join(d, "dnsveil.toml")
        with open(conf, "w") as f:
            f.write(f'[server]\nthreads = 1\n\n[[forward]]\ndomains = ["dead.test"]\nupstreams = ["udp://{dead.addr}"]\n\n'
                    f'[[forward]]\ndomains = ["refused.test"]\nupstreams = ["udp://{refused.addr}"]\n')
        self.log_path = os.path.join(d, "dnsveil.log")
        self.log = open(self.log_path, "wb")
        binary = bench.dnsveil_binary()
        self.p = subprocess.Popen(
            ["taskset", "-c", "0", binary, "run", "--config", conf, "--listen", f"127.0.0.1:{self.port}",
             "--upstream", f"udp://127.0.0.1:{nsd.port}", "--hosts", ""] + bench.dnssec_off(binary),
            stdout=subprocess.DEVNULL, stderr=self.log, env=dict(os.environ, NO_COLOR="1"))
        bench.wait_answer(self.port, "ns1.attack.test")

    def log_bytes(self):
        self.log.flush()
        return os.path.getsize(self.log_path)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


class Quiet:
    """The quiet client: new names nsd answers, over UDP and TCP, from 127.0.0.2."""

    def __init__(self, port, tag):
        self.port, self.tag = port, tag
        self.sent = self.answered = 0
        self.tcp_sent = self.tcp_answered = 0
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.udp, daemon=True),
                        threading.Thread(target=self.tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def udp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", 0))
        s.settimeout(QUIET_WAIT)
        i = 0
        while not self.done.is_set():
            start = time.time()
            qid = i & 0xFFFF
            s.sendto(query(f"u{i}-{self.tag}.fresh.attack.test", qid=qid), ("127.0.0.1", self.port))
            self.sent += 1
            deadline = start + QUIET_WAIT
            while time.time() < deadline:
                try:
                    s.settimeout(max(0.001, deadline - time.time()))
                    d, _ = s.recvfrom(4096)
                except (socket.timeout, OSError):
                    break
                if d[:2] == struct.pack(">H", qid):
                    if rcode(d) == 0:
                        self.answered += 1
                    break
            i += 1
            time.sleep(max(0.0, start + 1.0 / QUIET_UDP_QPS - time.time()))

    def tcp(self):
        i = 0
        while not self.done.is_set():
            start = time.time()
            self.sent += 1
            self.tcp_sent += 1
            try:
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.bind(("127.0.0.2", 0))
                c.settimeout(QUIET_WAIT)
                c.connect(("127.0.0.1", self.port))
                c.sendall(framed(query(f"t{i}-{self.tag}.fresh.attack.test")))
                buf = b""
                while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                if len(buf) >= 14 and rcode(buf[2:]) == 0:
                    self.answered += 1
                    self.tcp_answered += 1
                c.close()
            except OSError:
                pass
            i += 1
            time.sleep(max(0.0, start + 1.0 / QUIET_TCP_QPS - time.time()))

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join()


def connect(port, rcvbuf=None):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.settimeout(2)
    c.connect(("127.0.0.1", port))
    return c


def send_quietly(c, data):
    """Sends what the kernel takes without blocking on a peer that stopped reading."""
    c.setblocking(False)
    try:
        c.send(data)
    except OSError:
        pass


def shape_tcp_nonreader(port, hold):
    burst = framed(query("big.attack.test", 16)) * 300
    conns = [connect(port, 2048) for _ in range(256)]
    for c in conns:
        send_quietly(c, burst)
    time.sleep(hold)
    return conns


def shape_tcp_bigframe(port, hold):
    big = query("big.attack.test", 16)
    frame = struct.pack(">H", 16384) + big + b"\0" * (16384 - len(big))
    burst = frame + framed(big) * 1000
    conns = [connect(port, 2048) for _ in range(256)]
    for c in conns:
        send_quietly(c, burst)
    time.sleep(hold)
    return conns


def shape_udp_dead_flood(port, hold):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for batch in range(20):
        for i in range(250):
            s.sendto(query(f"n{batch * 250 + i}.dead.test"), ("127.0.0.1", port))
        time.sleep(0.035)
    time.sleep(hold)
    return [s]


def shape_tcp_busy(port, hold):
    conns = []
    for i in range(256):
        c = connect(port)
        c.sendall(framed(query(f"c{i}.dead.test")))
        conns.append(c)
    time.sleep(hold)
    return conns


def shape_tcp_idle(port, hold):
    conns = []
    for _ in range(2000):
        try:
            conns.append(connect(port))
        except OSError:
            pass
    time.sleep(hold)
    return conns


def shape_udp_malformed(port, hold):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rnd = random.Random(12)
    end = time.time() + hold
    for i in range(50_000):
        n = rnd.randrange(0, 600)
        s.sendto(bytes(rnd.getrandbits(8) for _ in range(n)), ("127.0.0.1", port))
        if i % 500 == 0:
            time.sleep(max(0.0, (end - time.time()) / max(1, (50_000 - i) / 500)))
    return [s]


def shape_refused_logs(port, hold):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for batch in range(80):
        for i in range(250):
            s.sendto(query(f"r{batch * 250 + i}.refused.test"), ("127.0.0.1", port))
        time.sleep(hold / 80)
    return [s]


SHAPES = {
    "tcp-nonreader": shape_tcp_nonreader,
    "tcp-bigframe": shape_tcp_bigframe,
    "udp-dead-flood": shape_udp_dead_flood,
    "tcp-busy": shape_tcp_busy,
    "tcp-idle": shape_tcp_idle,
    "udp-malformed": shape_udp_malformed,
    "refused-logs": shape_refused_logs,
}


def run_shape(name, d, nsd):
    dead, refused = FakeUpstream(False), FakeUpstream(True)
    dv = Dnsveil(d, nsd, dead, refused)
    try:
        # Warm the cache with the big answer, then let the process settle.
        c = connect(dv.port)
        c.sendall(framed(query("big.attack.test", 16)))
        got = b""
        while len(got) < 2 or len(got) < 2 + struct.unpack(">H", got[:2])[0]:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        c.close()
        idle = status(dv.p.pid, "VmRSS")
        log_before = dv.log_bytes()
        quiet = Quiet(dv.port, name)
        held = SHAPES[name](dv.port, 5.0)
        quiet.stop()
        peak = status(dv.p.pid, "VmHWM")
        alive = dv.p.poll() is None
        for s in held:
            s.close()
        logged = dv.log_bytes() - log_before
        return dict(shape=name, idle=idle, peak=peak, sent=quiet.sent, answered=quiet.answered,
                    tcp_sent=quiet.tcp_sent, tcp_answered=quiet.tcp_answered, logged=logged, alive=alive)
    finally:
        dv.stop()
        dead.stop = refused.stop = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = ap.parse_args()
    bench.setup(args, ["nsd", "taskset"])
    shapes = [s for s in args.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"unknown shape {s}; known: {', '.join(SHAPES)}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        nsd = start_nsd(d)
        try:
            for s in shapes:
                r = run_shape(s, d, nsd)
                print(r, flush=True)
                rows.append(r)
        finally:
            nsd.stop()
    lines = ["## Attack replay", "",
             "The hardening review's attack shapes replayed from loopback against the release binary (1 worker",
             "thread, pinned to CPU 0), a fresh process per shape, while a quiet client on 127.0.0.2 asks for new",
             f"names: {QUIET_UDP_QPS} UDP and {QUIET_TCP_QPS} TCP queries a second, each given {int(QUIET_WAIT * 1000)} ms. "
             "Goals: peak resident memory at",
             "most 64 MiB above idle, and at least 99% of the quiet client's queries answered, under every shape.",
             f"Commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             f"Reproduce: `python3 benches/bench_attack.py`.", "",
             "| shape | RSS idle (MiB) | RSS peak (MiB) | above idle (MiB) | quiet answered | of which TCP | logged (KB) | goals |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        above = (r["peak"] - r["idle"]) / 1024
        rate = r["answered"] / max(1, r["sent"])
        met = above <= 64 and rate >= 0.99 and r["alive"]
        lines.append(f"| {r['shape']} | {r['idle'] / 1024:.1f} | {r['peak'] / 1024:.1f} | {above:.1f} | "
                     f"{r['answered']}/{r['sent']} ({100 * rate:.1f}%) | {r['tcp_answered']}/{r['tcp_sent']} | "
                     f"{r['logged'] / 1000:.1f} | "
                     f"{'met' if met else 'NOT MET'}{'' if r['alive'] else ' (process died)'} |")
    bench.write_section(args.out, "bench_attack.py", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
