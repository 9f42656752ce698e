//! The cache end to end, with the real binary and nsd on loopback: serve-stale while the upstream is
//! silent or gone (RFC 8767, EDE 3 from RFC 8914) and back to fresh data when it returns; warm
//! restarts from the cache file, and damaged cache files that must not stop the start.

mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use dnsveil::wire::edns::ede;
use dnsveil::wire::{Edns, Message, Name, RData, RType, Rcode};
use harness::*;

/// The client timeout dnsveil applies by default (RFC 8767 section 5).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(1800);
/// Slack for scheduling on a loaded test machine.
const SLACK: Duration = Duration::from_millis(700);
/// Pause between two polls of a condition (the query itself is the check).
const POLL: Duration = Duration::from_millis(100);

/// The usual test zone plus a name whose answer expires after one second.
fn zone() -> String {
    format!("{}stale 1 IN A 192.0.2.77\n", test_zone("example.test"))
}

/// Starts dnsveil forwarding to `upstream` with `[cache]` settings `cache_toml` and extra flags.
fn start(dir: &Path, upstream: SocketAddr, cache_toml: &str, extra: &[&str]) -> Dnsveil {
    Dnsveil::forwarding(dir, upstream, &format!("[cache]\n{cache_toml}\n"), extra)
}

/// Asks `name` A over UDP with EDNS (so that an Extended DNS Error can come back); the answer and
/// how long it took.
fn ask(server: SocketAddr, name: &str) -> (Message, Duration) {
    let mut q = Message::query(name.parse::<Name>().expect("name"), RType::A);
    q.header.id = 0x5151;
    q.edns = Some(Edns {
        udp_payload: 1232,
        ..Edns::default()
    });
    let started = Instant::now();
    let raw = udp_exchange(server, &q.encode().expect("encode")).expect("an answer");
    let took = started.elapsed();
    let m = Message::parse(&raw).expect("answer parses");
    assert_eq!(m.header.id, 0x5151);
    (m, took)
}

fn edes(m: &Message) -> Vec<u16> {
    m.edns
        .iter()
        .flat_map(|e| e.extended_errors())
        .map(|(code, _)| code)
        .collect()
}

fn is_stale(m: &Message) -> bool {
    edes(m) == [ede::STALE_ANSWER]
}

/// Asks until `done` holds for an answer and the time it took, at most `limit`; returns that answer
/// and its time.
fn ask_until(
    server: SocketAddr,
    name: &str,
    limit: Duration,
    done: impl Fn(&Message, Duration) -> bool,
) -> (Message, Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (m, took) = ask(server, name);
        if done(&m, took) {
            return (m, took);
        }
        assert!(
            Instant::now() < deadline,
            "condition never held; last: {m:?}"
        );
        std::thread::sleep(POLL);
    }
}

fn a_record(m: &Message) -> Option<std::net::IpAddr> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some((*a).into()),
        _ => None,
    })
}

#[test]
fn stale_answers_while_the_upstream_is_silent_or_gone_and_fresh_when_it_returns() {
    let nsd = Nsd::start(&[("example.test", zone())]);
    let dir = tempfile::tempdir().unwrap();
    // A short hold after a failed refresh, so that the test sees the upstream come back quickly.
    let dv = start(dir.path(), nsd.addr, "stale_answer_ttl = 2", &[]);
    let server = dv.udp_addr();
    let (fresh, _) = ask(server, "stale.example.test");
    assert_eq!(fresh.rcode(), Rcode::NOERROR);
    assert_eq!(fresh.answers[0].ttl, 1);
    assert!(edes(&fresh).is_empty());

    // The upstream goes silent. Once the answer has expired, a query waits for the refresh at most
    // the client timeout, then gets the old data with TTL 2 and EDE 3.
    nsd.pause();
    let (stale, took) = ask_until(
        server,
        "stale.example.test",
        Duration::from_secs(10),
        |m, _| m.rcode() != Rcode::NOERROR || is_stale(m),
    );
    assert!(is_stale(&stale), "{stale:?}");
    assert_eq!(stale.rcode(), Rcode::NOERROR);
    assert_eq!(a_record(&stale), Some([192, 0, 2, 77].into()));
    assert_eq!(stale.answers[0].ttl, 2);
    assert!(
        took + SLACK >= CLIENT_TIMEOUT && took <= CLIENT_TIMEOUT + SLACK,
        "first stale answer after {took:?}"
    );
    // Until the refresh has failed (the upstream timeout, 3 s) a query may wait for it, never
    // longer than the client timeout; then the name is answered stale at once for the hold.
    let (held, _) = ask_until(
        server,
        "stale.example.test",
        Duration::from_secs(10),
        |m, took| {
            assert!(is_stale(m), "{m:?}");
            assert!(took <= CLIENT_TIMEOUT + SLACK, "{took:?}");
            took < Duration::from_millis(300)
        },
    );
    assert_eq!(held.answers[0].ttl, 2);
    // dig shows the Extended DNS Error too.
    let out = dig(server, &["+edns", "stale.example.test", "A"]);
    assert!(out.contains("EDE: 3 (Stale Answer)"), "{out}");
    assert!(out.contains("192.0.2.77"), "{out}");
    // A name never asked before has nothing stale: SERVFAIL with its own EDE, not silence.
    let (miss, _) = ask(server, "www.example.test");
    assert_eq!(miss.rcode(), Rcode::SERVFAIL);

    // The upstream answers again: fresh data (TTL 1, no EDE) once the hold is over.
    nsd.resume();
    let (back, _) = ask_until(
        server,
        "stale.example.test",
        Duration::from_secs(20),
        |m, _| m.rcode() == Rcode::NOERROR && edes(m).is_empty(),
    );
    assert_eq!(back.answers[0].ttl, 1);
    assert_eq!(a_record(&back), Some([192, 0, 2, 77].into()));

    // The upstream is gone (its port closed): stale answers again, within the client timeout.
    drop(nsd);
    let (gone, took) = ask_until(
        server,
        "stale.example.test",
        Duration::from_secs(10),
        |m, _| {
            assert_eq!(m.rcode(), Rcode::NOERROR, "{m:?}");
            is_stale(m)
        },
    );
    assert_eq!(a_record(&gone), Some([192, 0, 2, 77].into()));
    assert!(took <= CLIENT_TIMEOUT + SLACK, "{took:?}");
}

#[test]
fn serve_stale_off_fails_like_before() {
    let nsd = Nsd::start(&[("example.test", zone())]);
    let dir = tempfile::tempdir().unwrap();
    let dv = start(dir.path(), nsd.addr, "", &["--serve-stale", "off"]);
    let server = dv.udp_addr();
    assert_eq!(ask(server, "stale.example.test").0.rcode(), Rcode::NOERROR);
    drop(nsd);
    let (failed, _) = ask_until(
        server,
        "stale.example.test",
        Duration::from_secs(10),
        |m, _| {
            assert!(!is_stale(m), "{m:?}");
            m.rcode() != Rcode::NOERROR
        },
    );
    assert_eq!(failed.rcode(), Rcode::SERVFAIL);
}

#[test]
fn the_cache_file_survives_a_restart_with_aged_ttls() {
    let nsd = Nsd::start(&[("example.test", zone())]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.bin");
    let file_arg = file.to_str().unwrap().to_string();
    let mut first = start(dir.path(), nsd.addr, "", &["--cache-file", &file_arg]);
    assert!(first.log().contains("no cache file yet"), "{}", first.log());
    let (www, _) = ask(first.udp_addr(), "www.example.test");
    assert_eq!(www.answers[0].ttl, 300);
    let (nx, _) = ask(first.udp_addr(), "nothing.example.test");
    assert_eq!(nx.rcode(), Rcode::NXDOMAIN);
    let asked = Instant::now();
    first.signal("TERM");
    assert_eq!(
        first.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        first.log()
    );
    assert!(first.log().contains("cache saved"), "{}", first.log());
    assert!(file.is_file());

    // The upstream is gone: the restarted resolver answers from the file alone, TTLs aged by the
    // time that passed, the negative answer included.
    drop(nsd);
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let second = start(dir.path(), dead, "", &["--cache-file", &file_arg]);
    assert!(second.log().contains("cache restored"), "{}", second.log());
    let (www, _) = ask(second.udp_addr(), "WWW.example.test");
    assert_eq!(www.rcode(), Rcode::NOERROR);
    assert!(edes(&www).is_empty());
    assert_eq!(a_record(&www), Some([192, 0, 2, 1].into()));
    let aged = asked.elapsed().as_secs() as u32;
    let ttl = www.answers[0].ttl;
    assert!(ttl < 300 || aged == 0, "TTL {ttl} after {aged} s");
    assert!(ttl + aged + 2 >= 300, "TTL {ttl} after {aged} s");
    let (nx, _) = ask(second.udp_addr(), "nothing.example.test");
    assert_eq!(nx.rcode(), Rcode::NXDOMAIN);
    drop(second);

    // Damaged files: a warning and a cold start, never a crash or a refusal to start.
    let good = std::fs::read(&file).unwrap();
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", vec![0x5a; 4096]),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let dv = start(dir.path(), dead, "", &["--cache-file", &file_arg]);
        let log = dv.log();
        assert!(log.contains("cache file ignored"), "{what}: {log}");
        let (m, _) = ask(dv.udp_addr(), "www.example.test");
        assert_eq!(m.rcode(), Rcode::SERVFAIL, "{what}");
    }
}

/// A FIFO at the cache-file path (found by an attack run: opening it for reading waited for a
/// writer forever, so nothing was bound and the first SIGTERM went unheeded) is ignored with a
/// warning: dnsveil binds, answers, exits promptly on SIGTERM, and leaves the FIFO in place rather
/// than saving over it.
#[test]
fn a_fifo_at_the_cache_file_path_neither_blocks_the_start_nor_the_shutdown() {
    use std::os::unix::fs::FileTypeExt;

    let nsd = Nsd::start(&[("example.test", zone())]);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cache.bin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo_arg = fifo.to_str().unwrap().to_string();
    // The harness fails the test if the listening lines do not come within its limit.
    let mut dv = start(dir.path(), nsd.addr, "", &["--cache-file", &fifo_arg]);
    let log = dv.log();
    assert!(log.contains("cache file ignored"), "{log}");
    assert!(log.contains("not a regular file"), "{log}");
    let (www, _) = ask(dv.udp_addr(), "www.example.test");
    assert_eq!(www.rcode(), Rcode::NOERROR);
    assert_eq!(a_record(&www), Some([192, 0, 2, 1].into()));

    dv.signal("TERM");
    assert_eq!(
        dv.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        dv.log()
    );
    assert!(dv.log().contains("cache not saved"), "{}", dv.log());
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
}
