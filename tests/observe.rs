//! Asking a running instance (issue 16): the Prometheus endpoint's values after known traffic,
//! the control socket's commands and permissions, and the query log's format. The real binary,
//! a recording fake upstream, loopback only.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod harness;

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dnsveil::wire::{Message, RType, Rcode};
use harness::*;

fn ask(server: SocketAddr, name: &str, qtype: RType) -> Message {
    let raw = udp_exchange(server, &query_bytes(name, qtype, 0x6161)).expect("an answer");
    Message::parse(&raw).expect("answer parses")
}

/// `dnsveil ARGS` (a control command); its exit success, stdout and stderr.
fn dnsveil(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(args)
        .output()
        .expect("run dnsveil");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn metrics_count_known_traffic() {
    let up = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let dv = Dnsveil::forwarding(dir.path(), up.addr, "", &["--metrics", "127.0.0.1:0"]);
    let metrics = dv.logged_addr("metrics endpoint listening");
    // One miss, then two fast-path hits; a local answer; one TCP query (a hit too).
    for _ in 0..3 {
        assert_eq!(
            ask(dv.udp_addr(), "www.example.com", RType::A).rcode(),
            Rcode::NOERROR
        );
    }
    assert_eq!(
        ask(dv.udp_addr(), "printer", RType::AAAA).rcode(),
        Rcode::NXDOMAIN
    );
    let raw = tcp_exchange(dv.tcp_addr(), &query_bytes("www.example.com", RType::A, 7)).unwrap();
    assert_eq!(Message::parse(&raw).unwrap().rcode(), Rcode::NOERROR);

    let response = http_get(metrics, "/metrics");
    let (head, text) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let q = |labels: &str| sample(text, &format!("dnsveil_queries_total{{{labels}}}"));
    assert_eq!(q("protocol=\"udp\",type=\"A\",rcode=\"NOERROR\""), 3.0);
    assert_eq!(q("protocol=\"udp\",type=\"AAAA\",rcode=\"NXDOMAIN\""), 1.0);
    assert_eq!(q("protocol=\"tcp\",type=\"A\",rcode=\"NOERROR\""), 1.0);
    let a = |source: &str| {
        sample(
            text,
            &format!("dnsveil_answers_total{{source=\"{source}\"}}"),
        )
    };
    assert_eq!(
        (a("cache"), a("upstream"), a("local"), a("stale")),
        (3.0, 1.0, 1.0, 0.0)
    );
    // The local answer went through the cache too (a miss that asked the stages after it).
    assert_eq!(sample(text, "dnsveil_cache_misses_total"), 2.0);
    assert_eq!(sample(text, "dnsveil_cache_hits_total"), 3.0);
    assert_eq!(sample(text, "dnsveil_cache_entries"), 1.0);
    let who = format!("pool=\"default\",upstream=\"udp://{}\"", up.addr);
    assert_eq!(
        sample(text, &format!("dnsveil_upstream_queries_total{{{who}}}")),
        1.0
    );
    assert_eq!(
        sample(text, &format!("dnsveil_upstream_errors_total{{{who}}}")),
        0.0
    );
    assert_eq!(
        sample(
            text,
            &format!("dnsveil_upstream_latency_seconds_count{{{who}}}")
        ),
        1.0
    );
    assert_eq!(sample(text, &format!("dnsveil_upstream_up{{{who}}}")), 1.0);
    assert_eq!(up.seen(), ["www.example.com"]);
    // Anything but /metrics is not found; a request that never ends its head is cut off.
    assert!(http_get(metrics, "/nope").starts_with("HTTP/1.1 404"));
    assert!(http_get(metrics, "/").starts_with("HTTP/1.1 200"));
}

#[test]
fn control_socket_commands_and_permissions() {
    let up = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let dv = Dnsveil::forwarding(dir.path(), up.addr, "", &[]);
    assert!(dv.wait_logged("control socket listening", Duration::from_secs(10)));
    let sock = dv.control_socket();
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let path = sock.to_str().unwrap();

    ask(dv.udp_addr(), "a.example.com", RType::A);
    ask(dv.udp_addr(), "b.example.com", RType::A);
    ask(dv.udp_addr(), "a.example.com", RType::A);
    let (ok, out, err) = dnsveil(&["stats", "--control-socket", path]);
    assert!(ok, "{err}");
    assert!(out.contains("queries: 3\n"), "{out}");
    assert!(
        out.contains("answers by source: cache 1, stale 0, local 0, upstream 2"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "upstream udp://{} (default): closed, 2 queries, 0 errors",
            up.addr
        )),
        "{out}"
    );

    // flush NAME drops that name only: it is asked upstream again, the other is not.
    let (ok, out, _) = dnsveil(&["flush", "a.example.com", "--control-socket", path]);
    assert!(ok);
    assert_eq!(out, "flushed 1 entries\n");
    ask(dv.udp_addr(), "a.example.com", RType::A);
    ask(dv.udp_addr(), "b.example.com", RType::A);
    assert_eq!(
        up.seen(),
        ["a.example.com", "b.example.com", "a.example.com"]
    );
    // flush empties the cache.
    let (ok, out, _) = dnsveil(&["flush", "--control-socket", path]);
    assert!(ok);
    assert_eq!(out, "flushed 2 entries\n");

    // reload answers when it is over (tests/reload.rs has the refused case).
    let (ok, out, err) = dnsveil(&["reload", "--control-socket", path]);
    assert!(ok, "{err}");
    assert_eq!(out, "configuration reloaded\n");
    // The line was written before the reply, but the harness reads dnsveil's log on a thread of its
    // own, which may not have it yet.
    assert!(
        dv.wait_logged("asked_by=\"control socket\"", Duration::from_secs(10)),
        "{}",
        dv.log()
    );

    // Bad commands are errors with exit status 1.
    let (ok, _, err) = dnsveil(&["flush", "bad..name", "--control-socket", path]);
    assert!(!ok && err.contains("bad..name"), "{err}");
    let (ok, _, err) = dnsveil(&["stats", "--control-socket", "/nonexistent/dnsveil.sock"]);
    assert!(!ok && err.contains("is dnsveil running"), "{err}");
}

#[test]
fn a_live_control_socket_is_never_taken_over_and_a_stale_one_is() {
    let up = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    let p = path.to_str().unwrap();
    // A stale socket (nothing listens) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let first = Dnsveil::forwarding(dir.path(), up.addr, "", &["--control-socket", p]);
    assert!(first.wait_logged("control socket listening", Duration::from_secs(10)));
    assert!(dnsveil(&["stats", "--control-socket", p]).0);
    // A second instance asked for the same path stops before serving, saying why.
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["run", "--listen", "127.0.0.1:0", "--hosts", ""])
        .args([
            "--upstream",
            &format!("udp://{}", up.addr),
            "--control-socket",
            p,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another dnsveil is serving its control socket"),
        "{err}"
    );
    assert!(
        dnsveil(&["stats", "--control-socket", p]).0,
        "the first one still answers"
    );
    // At shutdown the socket file goes.
    first.signal("TERM");
    let mut first = first;
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!Path::new(&path).exists());
}

#[test]
fn the_query_log_file_has_one_documented_line_per_query() {
    let up = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries.log");
    let conf = format!("[log]\nqueries_file = {:?}\n", log.to_str().unwrap());
    let dv = Dnsveil::forwarding(dir.path(), up.addr, &conf, &[]);
    ask(dv.udp_addr(), "www.example.com", RType::A);
    ask(dv.udp_addr(), "www.example.com", RType::A);
    ask(dv.udp_addr(), "printer.local", RType::A);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 3 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines {
        assert_eq!(l.len(), 9, "{l:?}");
        assert!(l[0].ends_with('Z') && l[0].contains('T'), "{l:?}");
        assert!(l[1].starts_with("127.0.0.1:"), "{l:?}");
        assert!(l[8].ends_with("ms"), "{l:?}");
    }
    let upstream = format!("udp://{}", up.addr);
    assert_eq!(
        lines[0][2..8],
        [
            "udp",
            "www.example.com.",
            "A",
            "NOERROR",
            "upstream",
            upstream.as_str()
        ]
    );
    assert_eq!(
        lines[1][2..8],
        ["udp", "www.example.com.", "A", "NOERROR", "cache", "-"]
    );
    assert_eq!(
        lines[2][2..8],
        ["udp", "printer.local.", "A", "NXDOMAIN", "local", "-"]
    );
    // Nothing of it in the process's own log.
    assert!(!dv.log().contains("www.example.com"), "{}", dv.log());
}

#[test]
fn log_queries_writes_one_line_per_query_at_the_default_level() {
    let up = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let dv = Dnsveil::forwarding(dir.path(), up.addr, "", &["--log-queries"]);
    ask(dv.udp_addr(), "www.example.com", RType::A);
    ask(dv.udp_addr(), "www.example.com", RType::A);
    assert!(
        dv.wait_logged("source=\"cache\"", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    let log = dv.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("www.example.com"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    for field in [
        "client=127.0.0.1:",
        "proto=\"udp\"",
        "qtype=A",
        "rcode=NOERROR",
        "source=\"upstream\"",
        "duration=",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
    assert!(
        lines[0].contains(&format!("upstream=\"udp://{}\"", up.addr)),
        "{}",
        lines[0]
    );
}

#[test]
fn the_status_line_shows_queries_hit_ratio_and_upstream_health() {
    use std::os::unix::net::UnixDatagram;
    let up = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let next = || {
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let upstream = format!("udp://{}", up.addr);
    let dv = Dnsveil::start_cmd(
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--hosts",
            "",
        ],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    assert!(next().starts_with("READY=1\n"));
    // One miss, then two hits.
    for _ in 0..3 {
        ask(dv.udp_addr(), "www.example.com", RType::A);
    }
    dv.signal("HUP");
    assert!(next().starts_with("RELOADING=1\n"));
    let ready = next();
    assert!(
        ready.starts_with(
            "READY=1\nSTATUS=3 queries, cache hit ratio 66.7%, upstreams 1/1 up; serving on "
        ),
        "{ready}"
    );
}
