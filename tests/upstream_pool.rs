//! The real `dnsveil run` binary forwarding over encrypted upstreams (in-process DoT and DoH
//! servers with the committed test PKI), queried with dig over UDP; failover between upstreams;
//! fail-closed behaviour; and the plain TCP transport's connection reuse. All on loopback.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

mod harness;
mod support;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dnsveil::upstream::plain::{PlainOptions, TcpTransport};
use dnsveil::upstream::Transport;
use dnsveil::wire::{Message, Name, RType, Rcode};
use harness::{dig, free_port, Dnsveil};
use support::tls::{answer, doh_server, dot_server, DohMode, DotMode, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn ca_file() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs/test/ca.pem")
        .display()
        .to_string()
}

/// A multi-threaded runtime for the in-process servers while the test thread runs processes.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `dnsveil run` on a free loopback port with these upstream flags, no hosts file.
fn dnsveil(upstream_args: &[&str]) -> Dnsveil {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--hosts",
        "",
        "--log-level",
        "debug",
    ];
    args.extend_from_slice(upstream_args);
    Dnsveil::start(&args)
}

/// The `status:` of dig's header line.
fn status(dig_output: &str) -> &str {
    dig_output
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{dig_output}"))
}

#[test]
fn forwards_over_dot_end_to_end() {
    let rt = runtime();
    let pki = Pki::committed();
    let server = rt.block_on(dot_server(&pki.good, DotMode::Answer));
    let url = format!("tls://127.0.0.1:{}", server.addr.port());
    let dv = dnsveil(&["--upstream", &url, "--ca-file", &ca_file()]);

    let out = dig(dv.udp_addr(), &["example.com", "A"]);
    assert_eq!(status(&out), "NOERROR", "{out}\n{}", dv.log());
    let out = dig(dv.udp_addr(), &["nx.example.com", "AAAA"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert_eq!(server.queries(), 2);
    // Both queries went over one TLS connection.
    assert_eq!(server.handshakes(), 1);
    let log = dv.log();
    assert!(log.contains("upstream pool"), "{log}");
    assert!(log.contains("strategy=\"fastest\""), "{log}");
}

#[test]
fn forwards_over_doh_end_to_end_with_a_bootstrapped_host_name() {
    let rt = runtime();
    let pki = Pki::committed();
    let server = rt.block_on(doh_server(&pki.good, DohMode::Answer));
    let url = format!("https://dns.test:{}/dns-query", server.server.addr.port());
    let dv = dnsveil(&[
        "--upstream",
        &url,
        "--ca-file",
        &ca_file(),
        "--bootstrap",
        "127.0.0.1",
        "--strategy",
        "parallel",
    ]);
    let out = dig(dv.udp_addr(), &["www.example.net", "TXT"]);
    assert_eq!(status(&out), "NOERROR", "{out}\n{}", dv.log());
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    assert!(dv.log().contains("strategy=\"parallel\""), "{}", dv.log());
}

#[test]
fn ordered_strategy_fails_over_to_the_next_encrypted_upstream() {
    let rt = runtime();
    let pki = Pki::committed();
    let stalled = rt.block_on(dot_server(&pki.good, DotMode::Stall));
    let good = rt.block_on(dot_server(&pki.good, DotMode::Answer));
    let dv = dnsveil(&[
        "--upstream",
        &format!("tls://127.0.0.1:{}", stalled.addr.port()),
        "--upstream",
        &format!("tls://127.0.0.1:{}", good.addr.port()),
        "--ca-file",
        &ca_file(),
        "--strategy",
        "ordered",
    ]);
    // The first upstream never answers: after its share of the 3 s budget the second is asked.
    let out = dig(dv.udp_addr(), &["+time=6", "example.com", "A"]);
    assert_eq!(status(&out), "NOERROR", "{out}\n{}", dv.log());
    assert_eq!((stalled.queries(), good.queries()), (1, 1));
    assert!(dv.log().contains("strategy=\"ordered\""));
}

#[test]
fn every_upstream_failing_is_servfail_with_an_extended_error_never_plaintext() {
    // Nothing listens on TCP at this port; a UDP socket on the same port would catch any
    // plaintext retry to the same address.
    let port = free_port();
    let plain_trap = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    plain_trap.set_nonblocking(true).unwrap();
    let url = format!("tls://127.0.0.1:{port}");
    let dv = dnsveil(&["--upstream", &url, "--ca-file", &ca_file()]);

    let out = dig(dv.udp_addr(), &["example.com", "A"]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    // The README's "Fail closed" example, word for word: the failure's cause and where.
    let ede = format!(
        "; EDE: 23 (Network Error): (connection failed: 127.0.0.1:{port}: Connection refused (os error 111))"
    );
    assert!(out.contains(&ede), "{out}");
    let out = dig(dv.tcp_addr(), &["+tcp", "example.org", "AAAA"]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(out.contains("EDE: 23"), "{out}");

    let mut buf = [0u8; 512];
    assert!(
        plain_trap.recv_from(&mut buf).is_err(),
        "a query was sent in plaintext"
    );
}

/// A TCP DNS server that answers one query per connection and then closes it; counts
/// connections.
async fn one_shot_tcp_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if stream.read_exact(&mut q).await.is_err() {
                    return;
                }
                let a = answer(&q).unwrap();
                let mut out = (a.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&a);
                let _ = stream.write_all(&out).await;
                // Closing here leaves the client a pooled connection that is dead.
            });
        }
    });
    (addr, accepted)
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::query(name.parse::<Name>().unwrap(), RType::A);
    m.header.id = id;
    m.encode().unwrap()
}

#[tokio::test]
async fn plain_tcp_retries_a_dead_pooled_connection_at_once_and_reset_drops_the_pool() {
    let (addr, accepted) = one_shot_tcp_server().await;
    let timeout = Duration::from_secs(5);
    let t = TcpTransport::new(
        addr,
        PlainOptions {
            timeout,
            reuse_udp: false,
        },
    );
    for (i, name) in ["one.example", "two.example", "three.example"]
        .iter()
        .enumerate()
    {
        let start = tokio::time::Instant::now();
        let raw = t.exchange(&query(name, i as u16)).await.unwrap();
        assert_eq!(Message::parse(&raw).unwrap().rcode(), Rcode::NOERROR);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the dead pooled connection cost a wait"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), i + 1);
    }

    // reset() closes idle connections: the next query opens a new one.
    assert_eq!(t.idle_connections(), 1);
    t.reset();
    assert_eq!(t.idle_connections(), 0);
}
