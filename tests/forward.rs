//! Plain upstreams, upstream groups and forwarding rules against fake DNS servers on 127.0.0.1.
//!
//! Each fake server is a tokio socket in the test answering with canned replies and reporting what
//! it received, so the tests can check both what the client accepts and what goes on the wire.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use dnsveil::forward::Forwarder;
use dnsveil::handler::{Chain, HandlerError, Protocol, Request};
use dnsveil::upstream::plain::{PlainOptions, TcpTransport, UdpTransport};
use dnsveil::upstream::{
    build_transport, forwarding_flags, Reply, Transport, Upstream, UpstreamError, UpstreamGroup,
    UpstreamSpec, UpstreamUrl,
};
use dnsveil::wire::{ClientSubnet, Edns, EdnsOption, Message, Name, RData, RType, Rcode, Record};

/// What a fake server sends back for one query: zero or more raw messages, in order.
type Replies = Arc<dyn Fn(&Message) -> Vec<Vec<u8>> + Send + Sync>;

/// A query a fake server received, and from where.
struct Seen {
    query: Message,
    from: SocketAddr,
}

/// A fake UDP server on 127.0.0.1 (a fresh port unless `port` is given).
async fn fake_udp(port: u16, replies: Replies) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let sock = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::parse(&buf[..n]) else {
                continue;
            };
            // Recorded before replying, so a test that got the answer can read it at once.
            let out = replies(&query);
            let _ = tx.send(Seen { query, from });
            for reply in out {
                let _ = sock.send_to(&reply, from).await;
            }
        }
    });
    (addr, rx)
}

/// A fake TCP server; returns its address, the queries it saw and a count of accepted connections.
async fn fake_tcp(
    listener: TcpListener,
    replies: Replies,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>, Arc<AtomicUsize>) {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, from)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let replies = Arc::clone(&replies);
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let Ok(query) = Message::parse(&body) else {
                        return;
                    };
                    let out = replies(&query);
                    let _ = tx.send(Seen { query, from });
                    for reply in out {
                        let mut frame = (reply.len() as u16).to_be_bytes().to_vec();
                        frame.extend_from_slice(&reply);
                        if stream.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, rx, accepted)
}

/// A UDP server and a TCP server on the same port.
async fn fake_udp_and_tcp(
    udp: Replies,
    tcp: Replies,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Seen>,
    mpsc::UnboundedReceiver<Seen>,
) {
    for _ in 0..20 {
        let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = probe.local_addr().unwrap().port();
        let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await else {
            continue;
        };
        drop(probe);
        let (addr, udp_rx) = fake_udp(port, udp.clone()).await;
        let (_, tcp_rx, _) = fake_tcp(listener, tcp.clone()).await;
        return (addr, udp_rx, tcp_rx);
    }
    panic!("no port free for both UDP and TCP");
}

/// A reply built from the query by `f`.
fn reply(f: impl Fn(&Message) -> Message + Send + Sync + 'static) -> Replies {
    Arc::new(move |q| vec![f(q).encode().unwrap()])
}

/// An empty response with this rcode.
fn rcode_reply(rcode: Rcode) -> Replies {
    reply(move |q| {
        let mut m = Message::response_to(q);
        m.set_rcode(rcode);
        m
    })
}

/// A server that never answers.
fn silent() -> Replies {
    Arc::new(|_| Vec::new())
}

fn a_records(q: &Message, n: u8) -> Message {
    let mut m = Message::response_to(q);
    let name = q.questions[0].name.clone();
    for i in 1..=n {
        m.answers.push(Record::new(
            name.clone(),
            300,
            RData::A([192, 0, 2, i].into()),
        ));
    }
    m
}

fn opts(ms: u64) -> PlainOptions {
    PlainOptions {
        timeout: Duration::from_millis(ms),
        ..PlainOptions::default()
    }
}

fn udp_upstream(addr: SocketAddr, ms: u64) -> Upstream {
    let t = build_transport(&UpstreamSpec::new(UpstreamUrl::Udp(addr), opts(ms).timeout)).unwrap();
    Upstream::new(t, Duration::from_millis(ms + 500))
}

fn group(upstreams: Vec<Upstream>) -> Arc<UpstreamGroup> {
    Arc::new(UpstreamGroup::new(upstreams).unwrap())
}

fn query(name: &str, qtype: RType) -> Message {
    let mut q = Message::query(name.parse::<Name>().unwrap(), qtype);
    q.header.id = 4321;
    q
}

/// Asks a pool `q`'s question as the forwarder does.
async fn ask(g: &UpstreamGroup, q: &Message) -> Result<Reply, UpstreamError> {
    g.query(&q.questions[0], forwarding_flags(q)).await
}

fn request(q: Message) -> Request {
    Request {
        query: q,
        client: Some("127.0.0.1:40000".parse().unwrap()),
        protocol: Protocol::Udp,
    }
}

#[tokio::test]
async fn udp_round_trip_without_records() {
    let (addr, mut seen) = fake_udp(0, rcode_reply(Rcode::NXDOMAIN)).await;
    let up = udp_upstream(addr, 2000);
    let answer = up.query(&query("nope.example", RType::A)).await.unwrap();
    assert_eq!(answer.rcode(), Rcode::NXDOMAIN);
    assert!(answer.header.response);
    let sent = seen.recv().await.unwrap().query;
    assert_eq!(answer.header.id, sent.header.id);
    assert_eq!(sent.questions, query("nope.example", RType::A).questions);
    assert!(sent.header.recursion_desired);
}

#[tokio::test]
async fn udp_round_trip_with_records() {
    let (addr, _seen) = fake_udp(0, reply(|q| a_records(q, 2))).await;
    let up = udp_upstream(addr, 2000);
    let answer = up.query(&query("www.example", RType::A)).await.unwrap();
    assert_eq!(answer.answers.len(), 2);
    assert_eq!(answer.answers[1].data, RData::A([192, 0, 2, 2].into()));
}

#[tokio::test]
async fn ids_vary_per_query_and_source_ports_per_socket() {
    let (addr, mut seen) = fake_udp(0, rcode_reply(Rcode::NXDOMAIN)).await;
    // A forwarder's upstream: a new random ID per query; its socket is reused (see `plain`).
    let up = udp_upstream(addr, 2000);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..16 {
        up.query(&query("a.example", RType::A)).await.unwrap();
        ids.insert(seen.recv().await.unwrap().query.header.id);
    }
    // A transport without reuse (the recursor's): a new socket, so a new random port, per query.
    let fresh = Upstream::new(
        Arc::new(UdpTransport::new(addr, opts(2000))),
        Duration::from_millis(2500),
    );
    let mut ports = std::collections::HashSet::new();
    for _ in 0..16 {
        fresh.query(&query("a.example", RType::A)).await.unwrap();
        let s = seen.recv().await.unwrap();
        ids.insert(s.query.header.id);
        ports.insert(s.from.port());
    }
    // Draws from 2^16 IDs and from the ephemeral port range: colliding down to a handful would
    // mean the ID or port is not random.
    assert!(ids.len() >= 28, "IDs {ids:?}");
    assert!(ports.len() >= 12, "ports {ports:?}");
}

#[tokio::test]
async fn spoofed_datagrams_are_ignored_until_the_real_answer() {
    // Wrong ID (REFUSED), then wrong question (SERVFAIL), then the real answer (NXDOMAIN).
    let replies: Replies = Arc::new(|q: &Message| {
        let mut wrong_id = Message::response_to(q);
        wrong_id.header.id = q.header.id.wrapping_add(1);
        wrong_id.set_rcode(Rcode::REFUSED);
        let mut wrong_q = Message::response_to(q);
        wrong_q.questions[0].name = "evil.example".parse().unwrap();
        wrong_q.set_rcode(Rcode::SERVFAIL);
        let mut right = Message::response_to(q);
        right.set_rcode(Rcode::NXDOMAIN);
        vec![
            wrong_id.encode().unwrap(),
            b"\x00garbage".to_vec(),
            wrong_q.encode().unwrap(),
            right.encode().unwrap(),
        ]
    });
    let (addr, _seen) = fake_udp(0, replies).await;
    let up = udp_upstream(addr, 2000);
    let answer = up.query(&query("victim.example", RType::A)).await.unwrap();
    assert_eq!(answer.rcode(), Rcode::NXDOMAIN);
}

#[tokio::test]
async fn a_reply_with_the_wrong_question_alone_times_out() {
    let replies = reply(|q| {
        let mut m = Message::response_to(q);
        m.questions[0].qtype = RType::AAAA;
        m
    });
    let (addr, _seen) = fake_udp(0, replies).await;
    let t = UdpTransport::new(addr, opts(300));
    let wire = query("victim.example", RType::A).encode().unwrap();
    let r = t.exchange(&wire).await;
    assert!(
        matches!(r, Err(UpstreamError::Timeout(d)) if d == Duration::from_millis(300)),
        "{r:?}"
    );
}

#[tokio::test]
async fn question_case_differences_are_accepted() {
    let replies = reply(|q| {
        let mut m = Message::response_to(q);
        m.questions[0].name = "MiXeD.ExAmPlE".parse().unwrap();
        m.set_rcode(Rcode::NXDOMAIN);
        m
    });
    let (addr, _seen) = fake_udp(0, replies).await;
    let answer = udp_upstream(addr, 2000)
        .query(&query("mixed.example", RType::A))
        .await
        .unwrap();
    assert_eq!(answer.rcode(), Rcode::NXDOMAIN);
}

#[tokio::test]
async fn truncated_udp_answer_is_retried_over_tcp() {
    let udp = reply(|q| {
        let mut m = Message::response_to(q);
        m.header.truncated = true;
        m
    });
    let (addr, mut udp_seen, mut tcp_seen) =
        fake_udp_and_tcp(udp, rcode_reply(Rcode::NXDOMAIN)).await;
    let answer = udp_upstream(addr, 2000)
        .query(&query("big.example", RType::TXT))
        .await
        .unwrap();
    assert!(!answer.header.truncated);
    assert_eq!(answer.rcode(), Rcode::NXDOMAIN);
    let over_udp = udp_seen.recv().await.unwrap().query;
    let over_tcp = tcp_seen.recv().await.unwrap().query;
    assert_eq!(over_udp, over_tcp, "the same query is retried");
}

#[tokio::test]
async fn truncated_udp_answer_with_records_is_completed_over_tcp() {
    let udp = reply(|q| {
        let mut m = Message::response_to(q);
        m.header.truncated = true;
        m
    });
    let (addr, _u, _t) = fake_udp_and_tcp(udp, reply(|q| a_records(q, 100))).await;
    let answer = udp_upstream(addr, 2000)
        .query(&query("big.example", RType::A))
        .await
        .unwrap();
    assert!(!answer.header.truncated);
    assert_eq!(answer.answers.len(), 100);
}

/// A datagram larger than any answer to our advertised EDNS payload (1232) could be, here one of
/// more than 4096 octets without TC, fills the receive buffer: it may have been cut, so the
/// exchange is asked again over TCP rather than trusted.
#[tokio::test]
async fn oversize_udp_answer_is_retried_over_tcp() {
    let udp = reply(|q| a_records(q, 255));
    assert!(
        a_records(&query("big.example", RType::A), 255)
            .encode()
            .unwrap()
            .len()
            > 4096
    );
    let (addr, mut udp_seen, mut tcp_seen) =
        fake_udp_and_tcp(udp, reply(|q| a_records(q, 3))).await;
    let answer = udp_upstream(addr, 2000)
        .query(&query("big.example", RType::A))
        .await
        .unwrap();
    assert_eq!(
        answer.answers.len(),
        3,
        "the TCP answer, not the oversize datagram"
    );
    let over_udp = udp_seen.recv().await.unwrap().query;
    let over_tcp = tcp_seen.recv().await.unwrap().query;
    assert_eq!(over_udp, over_tcp, "the same query is retried");
}

/// Answers larger than the payload we advertise but short of the receive buffer are taken as
/// they come (lenient, as before): only a datagram that fills the buffer goes to TCP.
#[tokio::test]
async fn large_udp_answer_below_the_buffer_is_accepted() {
    let big = a_records(&query("big.example", RType::A), 200)
        .encode()
        .unwrap()
        .len();
    assert!((1233..4096).contains(&big), "{big} octets");
    let (addr, _udp_seen, mut tcp_seen) =
        fake_udp_and_tcp(reply(|q| a_records(q, 200)), reply(|q| a_records(q, 3))).await;
    let answer = udp_upstream(addr, 2000)
        .query(&query("big.example", RType::A))
        .await
        .unwrap();
    assert_eq!(answer.answers.len(), 200, "the UDP answer");
    assert!(tcp_seen.try_recv().is_err(), "nothing asked over TCP");
}

#[tokio::test]
async fn timeouts_are_bounded() {
    let (addr, _seen) = fake_udp(0, silent()).await;
    let started = std::time::Instant::now();
    let t = UdpTransport::new(addr, opts(300));
    let wire = query("slow.example", RType::A).encode().unwrap();
    let r = t.exchange(&wire).await;
    assert!(
        matches!(r, Err(UpstreamError::Timeout(d)) if d == Duration::from_millis(300)),
        "{r:?}"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // The Upstream's own timeout holds even over a transport with a long one.
    let slow: Arc<dyn Transport> = Arc::new(UdpTransport::new(addr, opts(30_000)));
    let up = Upstream::new(slow, Duration::from_millis(200));
    let started = std::time::Instant::now();
    let r = up.query(&query("slow.example", RType::A)).await;
    assert!(
        matches!(r, Err(UpstreamError::Timeout(d)) if d == Duration::from_millis(200)),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn client_options_never_reach_the_upstream() {
    let (addr, mut seen) = fake_udp(0, rcode_reply(Rcode::NXDOMAIN)).await;
    let mut q = query("private.example", RType::A);
    q.header.checking_disabled = true;
    q.edns = Some(Edns {
        udp_payload: 4096,
        dnssec_ok: true,
        options: vec![
            EdnsOption::ClientSubnet(ClientSubnet {
                family: 1,
                source_prefix: 24,
                scope_prefix: 0,
                address: Box::new([198, 51, 100]),
            }),
            EdnsOption::Cookie {
                client: [1, 2, 3, 4, 5, 6, 7, 8],
                server: Box::new([]),
            },
            EdnsOption::Padding(16),
        ],
        ..Edns::default()
    });
    udp_upstream(addr, 2000).query(&q).await.unwrap();
    let sent = seen.recv().await.unwrap().query;
    let edns = sent.edns.expect("we always send EDNS");
    assert!(edns.options.is_empty(), "{:?}", edns.options);
    assert!(edns.dnssec_ok);
    assert_eq!(edns.udp_payload, 1232);
    assert!(sent.header.checking_disabled);
}

#[tokio::test]
async fn tcp_round_trip_reuses_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, mut seen, accepted) = fake_tcp(listener, rcode_reply(Rcode::NXDOMAIN)).await;
    let t = build_transport(&UpstreamSpec::new(
        UpstreamUrl::Tcp(addr),
        opts(2000).timeout,
    ))
    .unwrap();
    let up = Upstream::new(t, Duration::from_secs(3));
    for name in ["one.example", "two.example", "three.example"] {
        let answer = up.query(&query(name, RType::A)).await.unwrap();
        assert_eq!(answer.rcode(), Rcode::NXDOMAIN);
        assert_eq!(
            seen.recv().await.unwrap().query.questions[0].name,
            name.parse::<Name>().unwrap()
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tcp_answer_with_the_wrong_id_is_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replies = reply(|q| {
        let mut m = Message::response_to(q);
        m.header.id ^= 0x5555;
        m
    });
    let (addr, _seen, _) = fake_tcp(listener, replies).await;
    let t = TcpTransport::new(addr, opts(2000));
    let wire = query("x.example", RType::A).encode().unwrap();
    assert!(matches!(
        t.exchange(&wire).await,
        Err(UpstreamError::BadAnswer(_))
    ));
}

#[tokio::test]
async fn tcp_connect_failure_is_reported() {
    // Bind and drop a listener to find a port that is very likely closed.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let t = TcpTransport::new(server, opts(2000));
    let wire = query("x.example", RType::A).encode().unwrap();
    let e = t.exchange(&wire).await.unwrap_err();
    assert!(
        matches!(&e, UpstreamError::Connect { addr, .. } if *addr == server),
        "{e:?}"
    );
    // The text a client gets as the Extended DNS Error (README, "Fail closed").
    assert_eq!(
        e.to_string(),
        format!("connection failed: {server}: Connection refused (os error 111)")
    );
}

#[tokio::test]
async fn group_fails_over_on_timeout_and_servfail() {
    let (silent_addr, mut silent_seen) = fake_udp(0, silent()).await;
    let (servfail_addr, mut servfail_seen) = fake_udp(0, rcode_reply(Rcode::SERVFAIL)).await;
    let (good_addr, mut good_seen) = fake_udp(0, rcode_reply(Rcode::NXDOMAIN)).await;

    let g = group(vec![
        udp_upstream(silent_addr, 300),
        udp_upstream(servfail_addr, 300),
        udp_upstream(good_addr, 300),
    ]);
    let answer = ask(&g, &query("x.example", RType::A)).await.unwrap();
    assert_eq!(answer.rcode(), Rcode::NXDOMAIN);
    assert!(silent_seen.recv().await.is_some());
    assert!(servfail_seen.recv().await.is_some());
    assert!(good_seen.recv().await.is_some());
}

#[tokio::test]
async fn group_returns_the_last_failure_and_bounds_attempts() {
    let (a, mut a_seen) = fake_udp(0, rcode_reply(Rcode::REFUSED)).await;
    let (b, _) = fake_udp(0, rcode_reply(Rcode::SERVFAIL)).await;
    let g = group(vec![udp_upstream(a, 300), udp_upstream(b, 300)]);
    let answer = ask(&g, &query("x.example", RType::A)).await.unwrap();
    assert_eq!(answer.rcode(), Rcode::SERVFAIL);

    // Only errors: the last error comes back.
    let (s1, mut s1_seen) = fake_udp(0, silent()).await;
    let (s2, mut s2_seen) = fake_udp(0, silent()).await;
    let (s3, mut s3_seen) = fake_udp(0, silent()).await;
    let g = UpstreamGroup::new(vec![
        udp_upstream(s1, 200),
        udp_upstream(s2, 200),
        udp_upstream(s3, 200),
    ])
    .unwrap()
    .with_max_attempts(2);
    assert!(matches!(
        ask(&g, &query("x.example", RType::A)).await,
        Err(UpstreamError::Timeout(_))
    ));
    assert!(s1_seen.recv().await.is_some());
    assert!(s2_seen.recv().await.is_some());
    assert!(
        s3_seen.try_recv().is_err(),
        "third upstream must not be tried"
    );
    assert!(a_seen.try_recv().is_ok());
}

#[tokio::test]
async fn forwarding_rules_route_by_longest_suffix() {
    // Each server answers with its own rcode, so each answer says who gave it.
    let (router, mut router_seen) = fake_udp(0, rcode_reply(Rcode::NXDOMAIN)).await;
    let (special, mut special_seen) = fake_udp(0, rcode_reply(Rcode::NOTIMP)).await;
    let (default, mut default_seen) = fake_udp(0, rcode_reply(Rcode::YXDOMAIN)).await;
    let router_g = group(vec![udp_upstream(router, 2000)]);
    let special_g = group(vec![udp_upstream(special, 2000)]);
    let fwd = Forwarder::new(
        vec![
            ("lan".parse().unwrap(), router_g),
            ("vpn.LAN".parse().unwrap(), special_g),
        ],
        Some(group(vec![udp_upstream(default, 2000)])),
    );
    let chain = Chain::new(vec![Arc::new(fwd)]);
    let ask = |name: &str| request(query(name, RType::A));

    let cases = [
        ("router.lan", Rcode::NXDOMAIN),
        ("LAN", Rcode::NXDOMAIN),
        ("git.vpn.lan", Rcode::NOTIMP),
        ("vpn.lan", Rcode::NOTIMP),
        ("plan", Rcode::YXDOMAIN),
        ("example.com", Rcode::YXDOMAIN),
    ];
    for (name, want) in cases {
        let answer = chain.handle(&ask(name)).await.unwrap();
        assert_eq!(answer.rcode(), want, "{name}");
    }
    let names = |rx: &mut mpsc::UnboundedReceiver<Seen>| {
        let mut v = Vec::new();
        while let Ok(s) = rx.try_recv() {
            v.push(s.query.questions[0].name.to_string());
        }
        v
    };
    assert_eq!(names(&mut router_seen), ["router.lan.", "LAN."]);
    assert_eq!(names(&mut special_seen), ["git.vpn.lan.", "vpn.lan."]);
    assert_eq!(names(&mut default_seen), ["plan.", "example.com."]);
}

#[tokio::test]
async fn unmatched_names_without_default_pass_on_and_failures_map() {
    let (silent_addr, _) = fake_udp(0, silent()).await;
    let fwd = Forwarder::new(
        vec![(
            "lan".parse().unwrap(),
            group(vec![udp_upstream(silent_addr, 200)]),
        )],
        None,
    );
    let chain = Chain::new(vec![Arc::new(fwd)]);
    assert!(matches!(
        chain.handle(&request(query("example.com", RType::A))).await,
        Err(HandlerError::Unanswered)
    ));
    assert!(matches!(
        chain.handle(&request(query("nas.lan", RType::A))).await,
        Err(HandlerError::Upstream(_))
    ));
}
