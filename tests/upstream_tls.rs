//! DoT and DoH transports against in-process TLS servers on loopback: answers, connection reuse,
//! pipelining, certificate failures, and servers that die, stall or answer garbage.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dnsveil::upstream::doh::{DohMethod, DohOptions, DohTransport};
use dnsveil::upstream::dot::{DotOptions, DotTransport};
use dnsveil::upstream::tls::TlsOptions;
use dnsveil::upstream::{ConnectCause, Transport, UpstreamError, UpstreamUrl};
use dnsveil::wire::{Message, Name, RType, Rcode};
use support::tls::{doh_server, dot_server, dot_server_on, DohMode, DotMode, Pki, ServerCert};
use tokio::time::Instant;

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::query(name.parse::<Name>().expect("name"), RType::A);
    m.header.id = id;
    m.encode().expect("encode")
}

/// Checks that `response` answers `query`: same ID and question, QR set; returns its rcode.
fn check_answer(query: &[u8], response: &[u8]) -> Rcode {
    let q = Message::parse(query).expect("query parses");
    let r = Message::parse(response).expect("response parses");
    assert_eq!(r.header.id, q.header.id, "ID restored");
    assert!(r.header.response, "QR set");
    assert_eq!(r.questions, q.questions, "same question");
    r.rcode()
}

fn tls_opts(pki: &Pki, name: &str) -> TlsOptions {
    let mut t = TlsOptions::new(name);
    t.extra_ca_pem = Some(pki.ca_file.clone());
    t
}

fn fast_dot() -> DotOptions {
    DotOptions {
        timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_millis(1500),
        ..DotOptions::default()
    }
}

fn dot(addr: SocketAddr, tls: TlsOptions, opts: DotOptions) -> DotTransport {
    let url: UpstreamUrl = format!("tls://dns.test:{}", addr.port())
        .parse()
        .expect("url");
    DotTransport::new(&url, vec![addr], tls, opts).expect("transport")
}

fn doh(addr: SocketAddr, tls: TlsOptions, opts: DohOptions) -> DohTransport {
    let url: UpstreamUrl = format!("https://dns.test:{}/dns-query", addr.port())
        .parse()
        .expect("url");
    DohTransport::new(&url, vec![addr], tls, opts).expect("transport")
}

fn fast_doh() -> DohOptions {
    DohOptions {
        timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_millis(1500),
        ..DohOptions::default()
    }
}

async fn dot_result(cert: &ServerCert, tls: TlsOptions) -> Result<Vec<u8>, UpstreamError> {
    let server = dot_server(cert, DotMode::Answer).await;
    let t = dot(server.addr, tls, fast_dot());
    t.exchange(&query("example.com", 1)).await
}

fn assert_tls_error(result: Result<Vec<u8>, UpstreamError>, needle: &str) {
    match result {
        Err(UpstreamError::Tls { error, .. }) => {
            let msg = error.to_string();
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
        }
        other => panic!("expected a TLS error mentioning {needle:?}, got {other:?}"),
    }
}

/// Runs `n` queries at once for distinct names, all with the SAME caller ID, and checks each
/// answer belongs to its own query.
async fn concurrent(t: Arc<dyn Transport>, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                let name = if i % 3 == 0 {
                    format!("nx.q{i}.example")
                } else {
                    format!("q{i}.example")
                };
                let q = query(&name, 0x0707);
                let r = t.exchange(&q).await.expect("answer");
                let rcode = check_answer(&q, &r);
                let want = if i % 3 == 0 {
                    Rcode::NXDOMAIN
                } else {
                    Rcode::NOERROR
                };
                assert_eq!(rcode, want, "{name}");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

// ---- DoT ----

#[tokio::test]
async fn dot_answers_with_padded_query_and_restored_id() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Answer).await;
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot());
    let q = query("example.com", 0xBEEF);
    let r = t.exchange(&q).await.expect("answer");
    assert_eq!(check_answer(&q, &r), Rcode::NOERROR);
    let q = query("nx.example.com", 0x0001);
    let r = t.exchange(&q).await.expect("answer");
    assert_eq!(check_answer(&q, &r), Rcode::NXDOMAIN);
    // RFC 8467: the server saw queries padded to 128 octets.
    let lengths = server.counts.query_lengths.lock().unwrap().clone();
    assert_eq!(lengths, vec![128, 128]);
    assert_eq!(server.accepted(), 1);
    assert_eq!(t.handshakes(), 1);
}

#[tokio::test]
async fn dot_pipelines_many_queries_on_one_connection() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Answer).await;
    let t = Arc::new(dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot()));
    concurrent(t.clone(), 100).await;
    concurrent(t.clone(), 100).await;
    assert_eq!(server.queries(), 200);
    assert_eq!(server.accepted(), 1, "one connection for everything");
    assert_eq!(server.handshakes(), 1);
    assert_eq!(t.handshakes(), 1);
}

/// A multi-thread runtime with `workers` worker threads (test servers, concurrent clients).
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A current-thread runtime: while a test blocks it, none of its tasks runs, so whatever must
/// happen in an exchange's own poll is seen to.
fn blocking_client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// On an open connection the exchange writes its query itself, in its first poll (or at the end
/// of the batch it was started in): nothing waits for another task (the driver, a writer) to run. The client's runtime is a current-thread one
/// that the test blocks, so a query handed to any task of it would never leave.
#[test]
fn dot_writes_on_an_open_connection_in_the_exchanges_first_poll() {
    let server_rt = runtime(1);
    let pki = Pki::generate();
    let server = server_rt.block_on(dot_server(&pki.good, DotMode::Answer));
    let client_rt = blocking_client_runtime();
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot());
    client_rt.block_on(async {
        let q = query("example.com", 1);
        check_answer(&q, &t.exchange(&q).await.expect("first answer"));
        let q = query("example.org", 2);
        let mut exchange = t.exchange(&q);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(exchange.as_mut().poll(&mut cx).is_pending());
        // This thread runs no other task of the client's runtime until the server has the query.
        let (arrived, wait) = std::sync::mpsc::channel();
        let counts = server.counts.clone();
        server_rt.spawn(async move {
            counts.wait_queries(2).await;
            let _ = arrived.send(());
        });
        assert!(
            wait.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the query did not leave in the exchange's first poll"
        );
        check_answer(&q, &exchange.await.expect("second answer"));

        // Inside a batch (a UDP receive batch) the write waits for the batch's end, and is
        // made then, on this thread, by the batch itself.
        let q = query("example.net", 3);
        let mut exchange = t.exchange(&q);
        let batch = dnsveil::batch::Batch::begin();
        assert!(exchange.as_mut().poll(&mut cx).is_pending());
        drop(batch);
        let (arrived, wait) = std::sync::mpsc::channel();
        let counts = server.counts.clone();
        server_rt.spawn(async move {
            counts.wait_queries(3).await;
            let _ = arrived.send(());
        });
        assert!(
            wait.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the batch's end did not write the query"
        );
        check_answer(&q, &exchange.await.expect("third answer"));
    });
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn dot_matches_out_of_order_answers() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Reverse(20)).await;
    let t = Arc::new(dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot()));
    concurrent(t, 20).await;
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn dot_refuses_wrong_hostname() {
    let pki = Pki::generate();
    let result = dot_result(&pki.good, tls_opts(&pki, "other.test")).await;
    assert_tls_error(result, "not valid for name");
}

#[tokio::test]
async fn dot_refuses_unknown_ca() {
    let pki = Pki::generate();
    let result = dot_result(&pki.unknown_ca, tls_opts(&pki, "dns.test")).await;
    assert_tls_error(result, "UnknownIssuer");
    // Without the extra CA even the good certificate is unknown: webpki-roots do not trust it.
    let result = dot_result(&pki.good, TlsOptions::new("dns.test")).await;
    assert_tls_error(result, "UnknownIssuer");
}

#[tokio::test]
async fn dot_refuses_expired_certificate() {
    let pki = Pki::generate();
    let result = dot_result(&pki.expired, tls_opts(&pki, "dns.test")).await;
    assert_tls_error(result, "certificate expired");
}

#[tokio::test]
async fn dot_spki_pins() {
    let pki = Pki::generate();
    let mut tls = tls_opts(&pki, "dns.test");
    tls.spki_pins = vec![[0x55; 32], pki.good.pin()];
    let q = query("example.com", 1);
    let r = dot_result(&pki.good, tls.clone())
        .await
        .expect("pin matches");
    check_answer(&q, &r);

    tls.spki_pins = vec![pki.unknown_ca.pin()];
    let result = dot_result(&pki.good, tls).await;
    assert_tls_error(result, "SPKI pin mismatch");
}

#[tokio::test]
async fn dot_verifies_ip_address_upstreams_against_ip_sans() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Answer).await;
    let url: UpstreamUrl = format!("tls://127.0.0.1:{}", server.addr.port())
        .parse()
        .unwrap();
    // No bootstrap address: the IP in the URL is where to connect.
    let t = DotTransport::new(&url, vec![], tls_opts(&pki, "127.0.0.1"), fast_dot()).unwrap();
    let q = query("example.com", 9);
    check_answer(&q, &t.exchange(&q).await.expect("IP SAN matches"));

    let server = dot_server(&pki.name_only, DotMode::Answer).await;
    let url: UpstreamUrl = format!("tls://127.0.0.1:{}", server.addr.port())
        .parse()
        .unwrap();
    let t = DotTransport::new(&url, vec![], tls_opts(&pki, "127.0.0.1"), fast_dot()).unwrap();
    assert_tls_error(t.exchange(&q).await, "not valid for name");
}

#[tokio::test]
async fn dot_verifies_ipv6_literal_upstreams() {
    let pki = Pki::generate();
    let ip = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let server = dot_server_on(ip, &pki.good, DotMode::Answer).await;
    let url: UpstreamUrl = format!("tls://[::1]:{}", server.addr.port())
        .parse()
        .unwrap();
    let t = DotTransport::new(&url, vec![], tls_opts(&pki, "::1"), fast_dot()).unwrap();
    let q = query("example.com", 9);
    check_answer(&q, &t.exchange(&q).await.expect("IPv6 SAN matches"));
    // The same server under the IPv4 literal's name is refused.
    let t = dot(server.addr, tls_opts(&pki, "127.0.0.2"), fast_dot());
    assert_tls_error(t.exchange(&q).await, "not valid for name");
}

#[tokio::test]
async fn dot_retries_on_a_fresh_connection_when_the_server_closes_mid_stream() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::CloseFirst).await;
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot());
    let q = query("example.com", 0x4242);
    let started = Instant::now();
    let r = t.exchange(&q).await.expect("retried and answered");
    check_answer(&q, &r);
    // The retry was immediate, not after a timeout.
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.queries(), 2);
    let stats = t.stats();
    assert_eq!((stats.retried, stats.dropped, stats.handshakes), (1, 1, 2));
}

#[tokio::test]
async fn dot_stalled_server_times_out_within_the_bound() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Stall).await;
    let timeout = Duration::from_millis(300);
    let opts = DotOptions {
        timeout,
        ..fast_dot()
    };
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), opts);
    let started = Instant::now();
    let result = t.exchange(&query("example.com", 1)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(UpstreamError::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn dot_drops_a_stalled_connection_and_recovers_on_a_fresh_one() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::StallFirst).await;
    let timeout = Duration::from_millis(300);
    let opts = DotOptions {
        timeout,
        ..fast_dot()
    };
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), opts);
    let result = t.exchange(&query("example.com", 1)).await;
    assert!(
        matches!(result, Err(UpstreamError::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    let q = query("example.org", 2);
    let r = t.exchange(&q).await.expect("fresh connection answers");
    check_answer(&q, &r);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn dot_reset_moves_waiting_queries_to_a_fresh_connection() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::StallFirst).await;
    let t = Arc::new(dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot()));
    let q = query("example.com", 0x0101);
    let waiting = {
        let (t, q) = (t.clone(), q.clone());
        tokio::spawn(async move { t.exchange(&q).await })
    };
    server.counts.wait_queries(1).await;
    let started = Instant::now();
    t.reset(); // as after a network change
    let r = waiting
        .await
        .unwrap()
        .expect("answered on the fresh connection");
    check_answer(&q, &r);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "no timeout waited"
    );
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn dot_garbage_answer_is_an_error() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Garbage).await;
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), fast_dot());
    let result = t.exchange(&query("example.com", 1)).await;
    assert!(
        matches!(result, Err(UpstreamError::BadAnswer(_))),
        "{result:?}"
    );
    // Tried once more on a fresh connection, then gave up.
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn dot_queues_queries_beyond_the_in_flight_cap() {
    let pki = Pki::generate();
    // Answers only once two queries are on the connection. With a cap of 2, the third and fourth
    // queries wait in line for a slot instead of failing as overloaded (as they did before the
    // queue), and are answered as the second pair. The queue's timing is tested on `admit` itself.
    let server = dot_server(&pki.good, DotMode::Reverse(2)).await;
    let opts = DotOptions {
        max_inflight: 2,
        ..fast_dot()
    };
    let t = Arc::new(dot(server.addr, tls_opts(&pki, "dns.test"), opts));
    let tasks: Vec<_> = (0..4u16)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move { (i, t.exchange(&query("example.com", i)).await) })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        let answer = result.unwrap_or_else(|e| panic!("query {i} waited for a slot and got {e}"));
        assert_eq!(u16::from_be_bytes([answer[0], answer[1]]), i);
    }
    assert_eq!(server.counts.queries.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn dot_closes_idle_connections_and_resumes_the_session() {
    let pki = Pki::generate();
    let server = dot_server(&pki.good, DotMode::Answer).await;
    let opts = DotOptions {
        idle_timeout: Duration::from_millis(150),
        ..fast_dot()
    };
    let t = dot(server.addr, tls_opts(&pki, "dns.test"), opts);
    let q = query("example.com", 1);
    check_answer(&q, &t.exchange(&q).await.unwrap());
    server.counts.wait_closed(1).await;
    check_answer(&q, &t.exchange(&q).await.unwrap());
    assert_eq!(server.accepted(), 2);
    let stats = t.stats();
    assert_eq!((stats.handshakes, stats.resumed), (2, 1), "{stats:?}");
    assert_eq!(stats.dropped, 0, "an idle close is not a failure");
}

#[tokio::test]
async fn dot_connect_failure_backs_off_without_new_attempts() {
    // A port that was just free: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let pki = Pki::generate();
    let t = dot(addr, tls_opts(&pki, "dns.test"), fast_dot());
    let first = t.exchange(&query("example.com", 1)).await;
    let second = t.exchange(&query("example.com", 2)).await;
    match (&first, &second) {
        (
            Err(UpstreamError::Connect {
                addr: at,
                cause: ConnectCause::Io(e1),
            }),
            Err(UpstreamError::Connect {
                cause: ConnectCause::Io(e2),
                ..
            }),
        ) => {
            assert_eq!(*at, addr);
            assert_eq!(e1.kind(), std::io::ErrorKind::ConnectionRefused);
            assert!(
                Arc::ptr_eq(e1, e2),
                "fails fast with the same error while backing off"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.stats().connect_failures, 1);
}

#[tokio::test]
async fn committed_test_pki_works() {
    let pki = Pki::committed();
    let q = query("example.com", 1);
    let r = dot_result(&pki.good, tls_opts(&pki, "dns.test"))
        .await
        .expect("committed cert works");
    check_answer(&q, &r);
    let r = dot_result(&pki.good, tls_opts(&pki, "127.0.0.1")).await;
    check_answer(&q, &r.expect("IP SAN in committed cert"));
    assert_tls_error(
        dot_result(&pki.expired, tls_opts(&pki, "dns.test")).await,
        "certificate expired",
    );
    assert_tls_error(
        dot_result(&pki.unknown_ca, tls_opts(&pki, "dns.test")).await,
        "UnknownIssuer",
    );
}

// ---- DoH ----

/// Like DoT: on an open connection the request's frames leave in the exchange's first poll (on a
/// UDP receive thread, with no runtime worker woken), or at the end of its receive batch.
#[test]
fn doh_writes_on_an_open_connection_in_the_exchanges_first_poll() {
    let server_rt = runtime(1);
    let pki = Pki::generate();
    let s = server_rt.block_on(doh_server(&pki.good, DohMode::Answer));
    let client_rt = blocking_client_runtime();
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh());
    client_rt.block_on(async {
        let q = query("example.com", 1);
        check_answer(&q, &t.exchange(&q).await.expect("first answer"));
        for (n, batched) in [(2, false), (3, true)] {
            let q = query("example.org", n);
            let mut exchange = t.exchange(&q);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let batch = batched.then(dnsveil::batch::Batch::begin);
            assert!(exchange.as_mut().poll(&mut cx).is_pending());
            drop(batch);
            // This thread runs no other task of the client's runtime until the server has it.
            let (arrived, wait) = std::sync::mpsc::channel();
            let counts = s.server.counts.clone();
            server_rt.spawn(async move {
                counts.wait_queries(n as usize).await;
                let _ = arrived.send(());
            });
            assert!(
                wait.recv_timeout(Duration::from_secs(5)).is_ok(),
                "request {n} (batched: {batched}) did not leave in the exchange's first poll"
            );
            check_answer(&q, &exchange.await.expect("answer"));
        }
    });
    assert_eq!(s.server.accepted(), 1);
}

/// Many threads drive one connection at once: receive-thread-like threads that start queries in
/// batches (the write at each batch's end) and runtime workers that start them one by one. A wake
/// lost between the threads that drive the connection and its task would leave answers unread
/// and exchanges timing out.
#[test]
fn doh_loses_no_wake_when_many_threads_drive_the_connection() {
    let server_rt = runtime(2);
    let pki = Pki::generate();
    let s = server_rt.block_on(doh_server(&pki.good, DohMode::Answer));
    let client_rt = runtime(3);
    let t = Arc::new(doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh()));
    const THREADS: usize = 3;
    const BATCHES: usize = 40;
    const BATCH: usize = 8;
    let batched: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (t, handle) = (t.clone(), client_rt.handle().clone());
            std::thread::spawn(move || {
                let _runtime = handle.enter();
                let mut tasks = Vec::new();
                for batch in 0..BATCHES {
                    let open = dnsveil::batch::Batch::begin();
                    let mut started = Vec::new();
                    for i in 0..BATCH {
                        let t = t.clone();
                        let q = query(&format!("b{thread}-{batch}-{i}.example"), 7);
                        let mut exchange = Box::pin(async move {
                            let r = t.exchange(&q).await.expect("answer");
                            check_answer(&q, &r);
                        });
                        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                        if std::future::Future::poll(exchange.as_mut(), &mut cx).is_pending() {
                            started.push(exchange);
                        }
                    }
                    drop(open);
                    tasks.extend(started.into_iter().map(|e| handle.spawn(e)));
                }
                tasks
            })
        })
        .collect();
    client_rt.block_on(async {
        concurrent(t.clone(), 300).await;
        for thread in batched {
            for task in thread.join().unwrap() {
                task.await.expect("a batched exchange");
            }
        }
    });
    assert_eq!(s.server.queries(), 300 + THREADS * BATCHES * BATCH);
    assert_eq!(s.server.accepted(), 1, "one connection for everything");
}

#[tokio::test]
async fn doh_post_answers() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::Answer).await;
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh());
    let q = query("example.com", 0x1234);
    let r = t.exchange(&q).await.expect("answer");
    assert_eq!(check_answer(&q, &r), Rcode::NOERROR);
    let q = query("nx.example.com", 0x2345);
    assert_eq!(
        check_answer(&q, &t.exchange(&q).await.unwrap()),
        Rcode::NXDOMAIN
    );
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/dns-query");
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/dns-message")
    );
    assert_eq!(seen[0].accept.as_deref(), Some("application/dns-message"));
    assert_eq!(seen[0].id, Some(0x1234));
    let lengths = s.server.counts.query_lengths.lock().unwrap().clone();
    assert_eq!(lengths, vec![128, 128], "padded (RFC 8467)");
}

#[tokio::test]
async fn doh_get_sends_id_zero_and_restores_the_callers() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::Answer).await;
    let opts = DohOptions {
        method: DohMethod::Get,
        ..fast_doh()
    };
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), opts);
    let q = query("example.com", 0x7777);
    let r = t.exchange(&q).await.expect("answer");
    assert_eq!(check_answer(&q, &r), Rcode::NOERROR);
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].id, Some(0));
    assert_eq!(seen[0].accept.as_deref(), Some("application/dns-message"));
}

#[tokio::test]
async fn doh_multiplexes_many_queries_on_one_connection() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::Answer).await;
    let t = Arc::new(doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh()));
    concurrent(t.clone(), 100).await;
    concurrent(t.clone(), 100).await;
    assert_eq!(s.server.queries(), 200);
    assert_eq!(s.server.accepted(), 1, "one connection for everything");
    assert_eq!(t.handshakes(), 1);
}

#[tokio::test]
async fn doh_rejects_non_200_wrong_type_and_oversize() {
    let pki = Pki::generate();
    for (mode, needle) in [
        (DohMode::Status(503), "503"),
        (DohMode::Status(404), "404"),
        (DohMode::ContentType("text/html"), "content type"),
        (DohMode::Oversize, "70000 octets exceeds"),
        (DohMode::OversizeChunked, "body exceeds"),
    ] {
        let s = doh_server(&pki.good, mode).await;
        let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh());
        match t.exchange(&query("example.com", 1)).await {
            Err(UpstreamError::Http(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{mode:?}: {msg}")
            }
            other => panic!("{mode:?}: expected an HTTP error, got {other:?}"),
        }
        assert_eq!(
            s.server.accepted(),
            1,
            "{mode:?}: an answer error is not retried"
        );
    }
}

#[tokio::test]
async fn doh_closes_idle_connections_and_resumes_the_session() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::Answer).await;
    let opts = DohOptions {
        idle_timeout: Duration::from_millis(150),
        ..fast_doh()
    };
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), opts);
    let q = query("example.com", 1);
    check_answer(&q, &t.exchange(&q).await.unwrap());
    s.server.counts.wait_closed(1).await;
    check_answer(&q, &t.exchange(&q).await.unwrap());
    assert_eq!(s.server.accepted(), 2);
    let stats = t.stats();
    assert_eq!((stats.handshakes, stats.resumed), (2, 1), "{stats:?}");
    assert_eq!(
        stats.retried, 0,
        "the closed connection was noticed before use"
    );
}

#[tokio::test]
async fn doh_content_type_parameters_are_accepted() {
    let pki = Pki::generate();
    let s = doh_server(
        &pki.good,
        DohMode::ContentType("Application/DNS-Message; x=1"),
    )
    .await;
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh());
    let q = query("example.com", 5);
    check_answer(&q, &t.exchange(&q).await.expect("answer"));
}

#[tokio::test]
async fn doh_retries_on_a_fresh_connection_when_the_server_dies_mid_stream() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::CloseFirst).await;
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh());
    let q = query("example.com", 0x5151);
    let started = Instant::now();
    let r = t.exchange(&q).await.expect("retried and answered");
    check_answer(&q, &r);
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(s.server.accepted(), 2);
    assert_eq!(t.stats().retried, 1);
}

#[tokio::test]
async fn doh_stalled_server_times_out_and_the_connection_is_replaced() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::Stall).await;
    let timeout = Duration::from_millis(300);
    let opts = DohOptions {
        timeout,
        ..fast_doh()
    };
    let t = doh(s.server.addr, tls_opts(&pki, "dns.test"), opts);
    let started = Instant::now();
    let result = t.exchange(&query("example.com", 1)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(UpstreamError::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(500),
        "{elapsed:?}"
    );
    // The silent connection was dropped: the next query opens another.
    let _ = t.exchange(&query("example.com", 2)).await;
    assert_eq!(s.server.accepted(), 2);
}

#[tokio::test]
async fn doh_reset_moves_open_requests_to_a_fresh_connection() {
    let pki = Pki::generate();
    let s = doh_server(&pki.good, DohMode::StallFirst).await;
    let t = Arc::new(doh(s.server.addr, tls_opts(&pki, "dns.test"), fast_doh()));
    let q = query("example.com", 0x0202);
    let waiting = {
        let (t, q) = (t.clone(), q.clone());
        tokio::spawn(async move { t.exchange(&q).await })
    };
    s.server.counts.wait_queries(1).await;
    let started = Instant::now();
    t.reset();
    let r = waiting
        .await
        .unwrap()
        .expect("answered on the fresh connection");
    check_answer(&q, &r);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "no timeout waited"
    );
    assert_eq!(s.server.accepted(), 2);
}

#[tokio::test]
async fn doh_certificate_failures_are_refused() {
    let pki = Pki::generate();
    let cases = [
        (
            &pki.good,
            tls_opts(&pki, "other.test"),
            "not valid for name",
        ),
        (&pki.unknown_ca, tls_opts(&pki, "dns.test"), "UnknownIssuer"),
        (
            &pki.expired,
            tls_opts(&pki, "dns.test"),
            "certificate expired",
        ),
        (
            &pki.good,
            TlsOptions {
                spki_pins: vec![[1; 32]],
                ..tls_opts(&pki, "dns.test")
            },
            "SPKI pin mismatch",
        ),
    ];
    for (cert, tls, needle) in cases {
        let s = doh_server(cert, DohMode::Answer).await;
        let t = doh(s.server.addr, tls, fast_doh());
        assert_tls_error(t.exchange(&query("example.com", 1)).await, needle);
        assert_eq!(s.server.queries(), 0, "{needle}: nothing sent");
    }
    // And a matching pin passes.
    let s = doh_server(&pki.good, DohMode::Answer).await;
    let tls = TlsOptions {
        spki_pins: vec![pki.good.pin()],
        ..tls_opts(&pki, "dns.test")
    };
    let t = doh(s.server.addr, tls, fast_doh());
    let q = query("example.com", 1);
    check_answer(&q, &t.exchange(&q).await.expect("pin matches"));
}
