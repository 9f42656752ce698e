//! The attack shapes of the hardening review, replayed on loopback against the real binary: clients
//! that never read their TCP answers, one client flooding the in-flight budget with queries that
//! never get an answer, and one client holding every TCP connection with slow queries. Each test
//! also runs a quiet client beside the attacker and requires it to keep its answers.
//!
//! The upstream is nsd for names that answer and a "black hole" UDP socket for names that never
//! do: the test reads the queries that reach the black hole, which tells it when the attack is in
//! flight (a readiness signal, not a sleep), and never answers them.

mod harness;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use harness::{query_bytes, tcp_exchange, tcp_exchange_from, udp_exchange, Dnsveil, Nsd};

use dnsveil::wire::{Message, RType, Rcode};

/// TXT strings of 255 octets in the big answer: about 59 KB, as in the review's run.
const BIG_STRINGS: usize = 230;

fn zone() -> String {
    let chunk = "x".repeat(255);
    let big: Vec<String> = (0..BIG_STRINGS).map(|_| format!("\"{chunk}\"")).collect();
    format!(
        "$ORIGIN attack.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 900 604800 60\n@ IN NS ns1\n\
         ns1 IN A 127.0.0.1\nbig IN TXT {}\n*.fresh IN A 192.0.2.7\n",
        big.join(" ")
    )
}

/// A UDP socket that takes queries and never answers them.
struct BlackHole {
    sock: UdpSocket,
}

impl BlackHole {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind black hole");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        BlackHole { sock }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    /// Waits until `n` queries have arrived (or `limit` passed); returns how many did.
    fn wait_for(&self, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        let mut seen = 0;
        while seen < n && Instant::now() < deadline {
            if self.sock.recv_from(&mut buf).is_ok() {
                seen += 1;
            }
        }
        seen
    }
}

/// dnsveil forwarding `attack.test` to nsd and `dead.test` to the black hole.
/// dnsveil forwarding `attack.test` to `nsd` and `dead.test` to the black hole. The attackers here
/// all come from 127.0.0.1: the per-client connection cap is raised to the total so that the
/// server-wide defences, not that cap, are what these tests exercise (tests/router.rs tests it).
fn start(dir: &std::path::Path, nsd: &Nsd, hole: &BlackHole) -> Dnsveil {
    let config = format!(
        "[server]\nmax_tcp_connections_per_client = 256\n\n[[forward]]\ndomains = [\"dead.test\"]\nupstreams = [\"udp://{}\"]\n",
        hole.addr()
    );
    Dnsveil::forwarding(dir, nsd.addr, &config, &[])
}

/// The process's resident memory now and at its peak, in KiB (`/proc/PID/status`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// How long the quiet client waits for each answer: a stub's first retry interval. nsd answers on
/// loopback in well under a millisecond, so a query not answered by then was dropped.
const QUIET_WAIT: Duration = Duration::from_millis(400);

/// A quiet client from `from`: `n` queries for names nsd answers, each new, over UDP (or TCP,
/// one connection each); returns how many got a NOERROR answer within [`QUIET_WAIT`] (over UDP,
/// within two tries of that long each, as a stub retries).
fn quiet_client(server: SocketAddr, from: &str, n: usize, tcp: bool, tag: &str) -> usize {
    let sock = UdpSocket::bind((from, 0)).expect("bind quiet client");
    sock.set_read_timeout(Some(QUIET_WAIT)).expect("timeout");
    let mut answered = 0;
    for i in 0..n {
        let q = query_bytes(&format!("q{i}-{tag}.fresh.attack.test"), RType::A, i as u16);
        let resp = if tcp {
            tcp_exchange_from(from.parse().ok(), server, &q, QUIET_WAIT)
        } else {
            // As a stub resolver does: one retry after `QUIET_WAIT` (the second copy of the query
            // is answered from the cache or joins the first one's flight). Only the answer to
            // this query counts: a late answer to an earlier one is skipped.
            (0..2).find_map(|_| {
                sock.send_to(&q, server).ok()?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let (len, _) = sock.recv_from(&mut buf).ok()?;
                    if Message::parse(&buf[..len]).is_ok_and(|m| m.header.id == i as u16) {
                        break Some(buf[..len].to_vec());
                    }
                }
            })
        };
        if resp.is_some_and(|r| Message::parse(&r).is_ok_and(|m| m.rcode() == Rcode::NOERROR)) {
            answered += 1;
        }
    }
    answered
}

/// Sends `n` queries for distinct names under dead.test from one address, 250 at a time, each
/// batch once most of the previous one reached the black hole; returns how many reached it.
fn flood(server: SocketAddr, hole: &BlackHole, n: u32, tag: &str) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind flood");
    let mut arrived = 0;
    for start in (0..n).step_by(250) {
        for i in start..(start + 250).min(n) {
            let q = query_bytes(&format!("{tag}{i}.dead.test"), RType::A, i as u16);
            let _ = sock.send_to(&q, server);
        }
        let got = hole.wait_for(200, Duration::from_millis(500));
        arrived += got;
        if got < 200 {
            break; // dnsveil forwards no more: its budget is full
        }
    }
    arrived + hole.wait_for(usize::MAX, Duration::from_millis(300))
}

fn framed(query: &[u8]) -> Vec<u8> {
    let mut f = (query.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(query);
    f
}

/// 256 connections, each with a 2 KiB receive buffer, send 300 queries for a cached 59 KB answer
/// and never read. Without a cap on what a connection may have queued for writing, every answer
/// to everything sent was held in memory (1.9 GB from 2.3 MB sent in the review's run).
#[test]
fn tcp_clients_that_never_read_cannot_make_the_server_hold_their_answers() {
    let nsd = Nsd::start(&[("attack.test", zone())]);
    let hole = BlackHole::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let dv = start(dir.path(), &nsd, &hole);
    let big = query_bytes("big.attack.test", RType::TXT, 7);
    let warm = tcp_exchange(dv.tcp_addr(), &big).expect("big answer over TCP");
    assert!(
        warm.len() > 55_000,
        "the big answer is {} octets",
        warm.len()
    );
    let pid = dv.child.0.id();
    let (idle, _) = memory_kib(pid);

    let attackers = non_readers(dv.tcp_addr(), &big, 256);
    let udp_ok = quiet_client(dv.udp_addr(), "127.0.0.2", 200, false, "udp1");
    let tcp_ok = quiet_client(dv.tcp_addr(), "127.0.0.2", 50, true, "tcp1");
    let (now, peak) = memory_kib(pid);
    drop(attackers);
    let grew_mib = peak.saturating_sub(idle) / 1024;
    assert!(
        grew_mib <= 64,
        "peak resident memory grew by {grew_mib} MiB (idle {idle} KiB, peak {peak} KiB, now {now} KiB)"
    );
    assert!(udp_ok >= 198, "quiet UDP client: {udp_ok}/200 answered");
    assert!(tcp_ok >= 49, "quiet TCP client: {tcp_ok}/50 answered");
}

/// Opens `n` connections with a 2 KiB receive buffer that each ask 300 times for `query` and never
/// read.
fn non_readers(server: SocketAddr, query: &[u8], n: usize) -> Vec<TcpStream> {
    let mut burst = Vec::new();
    for _ in 0..300 {
        burst.extend_from_slice(&framed(query));
    }
    (0..n)
        .map(|_| {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            sock.set_recv_buffer_size(2048).expect("rcvbuf");
            sock.connect(&server.into()).expect("connect");
            let mut s: TcpStream = sock.into();
            s.write_all(&burst).expect("send the burst");
            s
        })
        .collect()
}

/// One client sends 5,000 queries for names whose upstream never answers, as fast as it can. The
/// in-flight budget is shared fairly, so another client's uncached queries are still answered.
#[test]
fn one_client_flooding_dead_names_does_not_starve_the_others() {
    let nsd = Nsd::start(&[("attack.test", zone())]);
    let hole = BlackHole::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let dv = start(dir.path(), &nsd, &hole);
    // Paced by what reaches the black hole, so the kernel's receive buffer does not drop the
    // flood before dnsveil sees it: 5,000 queries in flight within about a second.
    let arrived = flood(dv.udp_addr(), &hole, 5000, "n");
    assert!(
        arrived >= 4000,
        "only {arrived} flood queries reached the upstream"
    );
    let ok = quiet_client(dv.udp_addr(), "127.0.0.2", 200, false, "flood");
    assert!(
        ok >= 198,
        "quiet client: {ok}/200 answered during the flood"
    );
    assert!(
        !dv.log().contains("Too many open files"),
        "ran out of descriptors:\n{}",
        dv.log()
    );
}

/// One client opens every TCP connection the server allows and keeps a slow query in flight on
/// each, so none is idle. Another client's connection still gets in and is answered: the client
/// holding the most gives one up.
#[test]
fn one_client_holding_every_tcp_connection_busy_does_not_lock_others_out() {
    let nsd = Nsd::start(&[("attack.test", zone())]);
    let hole = BlackHole::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nmax_tcp_connections = 32\n\n[[forward]]\ndomains = [\"dead.test\"]\nupstreams = [\"udp://{}\"]\n",
        hole.addr()
    );
    let dv = Dnsveil::forwarding(dir.path(), nsd.addr, &config, &[]);
    let mut held = Vec::new();
    for i in 0..32u16 {
        let mut s = TcpStream::connect(dv.tcp_addr()).expect("connect");
        let q = query_bytes(&format!("c{i}.dead.test"), RType::A, i);
        s.write_all(&framed(&q)).expect("send");
        held.push(s);
    }
    // Every connection is busy once its query has reached the black hole.
    let arrived = hole.wait_for(32, Duration::from_secs(5));
    assert_eq!(arrived, 32, "queries in flight");
    let ok = quiet_client(dv.tcp_addr(), "127.0.0.2", 10, true, "busy");
    assert!(ok >= 10, "quiet TCP client: {ok}/10 answered");
    drop(held);
}

/// With an open-file limit of 1,024 (soft and hard), the in-flight budget is sized to fit, so a
/// flood of queries that each hold an upstream socket runs into the budget, not into "Too many
/// open files", and the server keeps answering.
#[test]
fn a_low_descriptor_limit_sizes_the_budgets() {
    let prlimit = harness::require_tool("prlimit", "util-linux");
    let nsd = Nsd::start(&[("attack.test", zone())]);
    let hole = BlackHole::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dnsveil.toml");
    std::fs::write(
        &conf,
        format!(
            "[[forward]]\ndomains = [\"dead.test\"]\nupstreams = [\"udp://{}\"]\n",
            hole.addr()
        ),
    )
    .expect("config");
    let upstream = format!("udp://{}", nsd.addr);
    let dv = Dnsveil::start_wrapped(
        &[prlimit.to_str().expect("path"), "--nofile=1024:1024", "--"],
        &[
            "--config",
            conf.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--hosts",
            "",
        ],
    );
    assert!(
        dv.log().contains("open-file limit is too low"),
        "the lowered caps are logged:\n{}",
        dv.log()
    );
    let arrived = flood(dv.udp_addr(), &hole, 3000, "f");
    assert!(
        arrived >= 500,
        "only {arrived} flood queries reached the upstream"
    );
    let ok = quiet_client(dv.udp_addr(), "127.0.0.2", 100, false, "nofile");
    assert!(ok >= 99, "quiet client: {ok}/100 answered");
    let again = udp_exchange(
        dv.udp_addr(),
        &query_bytes("after.fresh.attack.test", RType::A, 9),
    );
    assert!(again.is_some(), "still answering");
    assert!(
        !dv.log().contains("Too many open files"),
        "ran out of descriptors:\n{}",
        dv.log()
    );
}
