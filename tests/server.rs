//! The listeners in-process, over real loopback UDP and TCP sockets, with scripted handlers.
//!
//! Answers are checked as bytes against what `Message::encode` makes of the expected message, which
//! pins down every octet, record data included; where only the header matters, through
//! `Header::parse`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dnsveil::handler::{
    Answer, BoxFuture, Chain, Handler, HandlerError, HandlerResult, Next, Origin, Protocol,
    Request, Verdict,
};
use dnsveil::server::{Acl, Server, ServerConfig, ServerError};
use dnsveil::wire::edns::{code, ede};
use dnsveil::wire::{
    Edns, EdnsOption, Header, Message, Opcode, QueryView, RData, RType, Rcode, Record,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest any test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test listens for an answer that must not come.
const SILENCE: Duration = Duration::from_millis(300);
const BIG_ANSWERS: u8 = 60;

/// Head of the chain: answers `fast.test` from its fast path with header + question, AA set (and,
/// being a test, without bothering to echo EDNS).
#[derive(Default)]
struct Canned {
    hits: AtomicUsize,
}

impl Handler for Canned {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        next.run(req)
    }

    fn answer_fast(&self, q: &QueryView<'_>, max_len: usize, out: &mut Vec<u8>) -> Option<Origin> {
        if !q.qname.eq_ignore_ascii_case(b"\x04fast\x04test\x00") {
            return None;
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        out.extend_from_slice(canned_answer(q.raw).as_slice());
        assert!(out.len() <= max_len);
        Some(Origin::Cache)
    }

    fn name(&self) -> &'static str {
        "canned"
    }
}

/// What the fast path sends for `query` (header and question, QR, AA and RA set, no other section).
fn canned_answer(query: &[u8]) -> Vec<u8> {
    let view = QueryView::parse(query).unwrap();
    let mut out = query[..view.question_end].to_vec();
    out[2] = (out[2] | 0x80 | 0x04) & !0x02;
    out[3] = 0x80;
    out[6..12].fill(0);
    out
}

/// The rest of the chain, scripted by query name.
#[derive(Default)]
struct Script {
    calls: AtomicUsize,
    /// `first.test` waits for this.
    gate: Notify,
    /// `hang.test` waits for this, after signalling `entered`.
    release: Notify,
    entered: Notify,
}

impl Handler for Script {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let q = &req.query;
            let name = q.questions[0].name.to_string().to_ascii_lowercase();
            let message = match name.as_str() {
                "first.test." => {
                    self.gate.notified().await;
                    Ok(Message::response_to(q))
                }
                "hang.test." => {
                    self.entered.notify_one();
                    self.release.notified().await;
                    Ok(Message::response_to(q))
                }
                "big.test." => Ok(big_answer(q)),
                "fail.test." => Err(HandlerError::upstream(std::io::Error::other("boom"))),
                _ => {
                    // Sloppy on purpose: the server must fix ID, case, flags and EDNS.
                    let mut m = Message::default();
                    m.questions.push(q.questions[0].clone());
                    m.questions[0].name = q.questions[0].name.to_lowercase();
                    m.edns = Some(Edns {
                        udp_payload: 512,
                        options: vec![EdnsOption::Padding(8)],
                        ..Edns::default()
                    });
                    m.set_rcode(Rcode::NXDOMAIN);
                    Ok(m)
                }
            };
            message.map(|m| {
                Answer::from_message(&m, Origin::Upstream, Verdict::Unchecked).expect("encodes")
            })
        })
    }

    fn name(&self) -> &'static str {
        "script"
    }
}

fn big_answer(q: &Message) -> Message {
    let mut m = Message::response_to(q);
    for i in 0..BIG_ANSWERS {
        m.answers.push(Record::new(
            q.questions[0].name.clone(),
            300,
            RData::A([192, 0, 2, i].into()),
        ));
    }
    m
}

struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
    canned: Arc<Canned>,
    script: Arc<Script>,
}

fn test_config() -> ServerConfig {
    ServerConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        udp_sockets_per_addr: 2,
        ..ServerConfig::default()
    }
}

async fn start(cfg: ServerConfig) -> Running {
    start_with_grace(cfg, Duration::from_secs(5)).await
}

async fn start_with_grace(cfg: ServerConfig, grace: Duration) -> Running {
    let canned = Arc::new(Canned::default());
    let script = Arc::new(Script::default());
    let chain = Chain::new(vec![canned.clone(), script.clone()]);
    let server = Server::bind(cfg, Arc::new(chain)).await.unwrap();
    let addrs = server.local_addrs();
    let find = |p| addrs.iter().find(|(proto, _)| *proto == p).unwrap().1;
    let (udp, tcp) = (find(Protocol::Udp), find(Protocol::Tcp));
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run_with_grace(stop.clone(), grace));
    Running {
        udp,
        tcp,
        stop,
        task,
        canned,
        script,
    }
}

fn query(name: &str, id: u16, edns: Option<u16>) -> Message {
    let mut q = Message::query(name.parse().unwrap(), RType::A);
    q.header.id = id;
    q.edns = edns.map(|payload| Edns {
        udp_payload: payload,
        ..Edns::default()
    });
    q
}

fn wire(m: &Message) -> Vec<u8> {
    m.encode().unwrap()
}

async fn udp_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn udp_recv(sock: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(wait, sock.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(n);
    Some(buf)
}

async fn udp_exchange(server: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let sock = udp_client().await;
    sock.send_to(msg, server).await.unwrap();
    udp_recv(&sock, PATIENCE).await.expect("no UDP answer")
}

async fn tcp_connect(server: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(server).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

/// The next frame, or None when the server closed the connection.
async fn tcp_read(s: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.ok()?;
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut msg).await.ok()?;
        Some(msg)
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("TCP read neither answered nor closed")
}

async fn tcp_exchange(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(&framed(msg)).await.unwrap();
    tcp_read(s)
        .await
        .expect("connection closed instead of answering")
}

/// True once the server has closed `s` (EOF or reset), within the patience bound.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(PATIENCE, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn rcode_of(resp: &[u8]) -> Rcode {
    Message::parse(resp).unwrap().rcode()
}

#[tokio::test]
async fn answers_follow_the_response_contract_over_udp_and_tcp() {
    let srv = start(test_config()).await;
    let mut q = query("WwW.ExAmple.TEST", 0x1234, Some(4096));
    q.header.checking_disabled = true;
    q.edns.as_mut().unwrap().dnssec_ok = true;
    q.edns.as_mut().unwrap().options.push(EdnsOption::Cookie {
        client: [1; 8],
        server: Box::new([]),
    });
    let mut expected = Message::response_to(&q);
    expected.set_rcode(Rcode::NXDOMAIN);
    let expected = wire(&expected);

    let resp = udp_exchange(srv.udp, &wire(&q)).await;
    assert_eq!(resp, expected);
    let parsed = Message::parse(&resp).unwrap();
    assert_eq!(
        parsed.questions[0].name.as_wire(),
        q.questions[0].name.as_wire()
    );
    assert_eq!(parsed.edns.as_ref().unwrap().udp_payload, 1232);
    assert!(parsed.edns.unwrap().dnssec_ok);

    let mut tcp = tcp_connect(srv.tcp).await;
    assert_eq!(tcp_exchange(&mut tcp, &wire(&q)).await, expected);
    assert_eq!(srv.script.calls.load(Ordering::SeqCst), 2);
    assert_eq!(srv.canned.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fast_path_answers_without_the_rest_of_the_chain() {
    let srv = start(test_config()).await;
    let q = wire(&query("FAST.test", 7, None));
    assert_eq!(udp_exchange(srv.udp, &q).await, canned_answer(&q));
    let mut tcp = tcp_connect(srv.tcp).await;
    assert_eq!(tcp_exchange(&mut tcp, &q).await, canned_answer(&q));
    assert_eq!(srv.canned.hits.load(Ordering::SeqCst), 2);
    assert_eq!(srv.script.calls.load(Ordering::SeqCst), 0);

    // The same name with EDNS version 1 must not reach the fast path.
    let mut v1 = query("fast.test", 8, Some(1232));
    v1.edns.as_mut().unwrap().version = 1;
    assert_eq!(
        rcode_of(&udp_exchange(srv.udp, &wire(&v1)).await),
        Rcode::BADVERS
    );
    assert_eq!(srv.canned.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn udp_truncates_an_answer_that_does_not_fit() {
    let srv = start(test_config()).await;
    let plain = query("big.test", 1, None);
    let resp = udp_exchange(srv.udp, &wire(&plain)).await;
    assert!(resp.len() <= 512);
    let h = Header::parse(&resp).unwrap();
    assert!(h.truncated && h.response);
    assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (1, 0, 0, 0));
    assert_eq!(resp[12..], wire(&plain)[12..], "the question is echoed");
    assert!(wire(&big_answer(&plain)).len() > 512, "test premise");

    let with_edns = query("big.test", 2, Some(4096));
    let expected = wire(&big_answer(&with_edns));
    assert!(
        expected.len() > 512 && expected.len() <= 1232,
        "test premise"
    );
    let resp = udp_exchange(srv.udp, &wire(&with_edns)).await;
    assert!(!Header::parse(&resp).unwrap().truncated);
    assert_eq!(Header::parse(&resp).unwrap().ancount, BIG_ANSWERS as u16);
    assert_eq!(resp, expected);

    // TCP never truncates.
    let mut tcp = tcp_connect(srv.tcp).await;
    assert_eq!(
        tcp_exchange(&mut tcp, &wire(&plain)).await,
        wire(&big_answer(&plain))
    );
}

#[tokio::test]
async fn malformed_udp_input_gets_formerr_or_silence() {
    let srv = start(test_config()).await;
    let sock = udp_client().await;
    // Too short for a header, a response and an oversized datagram: all dropped. Then a real query:
    // its answer must be the first thing that comes back (same socket pair, so the same server
    // socket, in order).
    sock.send_to(&[1, 2, 3, 4, 5], srv.udp).await.unwrap();
    let mut response = wire(&query("x.test", 0x5555, None));
    response[2] |= 0x80;
    sock.send_to(&response, srv.udp).await.unwrap();
    // Larger than any real query (the server reads 4096 octets): dropped, not answered from a
    // cut copy.
    let mut huge = wire(&query("x.test", 0x7777, None));
    huge.resize(5000, 0);
    sock.send_to(&huge, srv.udp).await.unwrap();
    sock.send_to(&wire(&query("x.test", 0x6666, None)), srv.udp)
        .await
        .unwrap();
    let first = udp_recv(&sock, PATIENCE).await.unwrap();
    assert_eq!(Header::parse(&first).unwrap().id, 0x6666);
    assert!(udp_recv(&sock, SILENCE).await.is_none());

    // A readable header with garbage after it: FORMERR, ID and RD echoed, no question.
    let garbage = [
        0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF,
    ];
    let resp = Message::parse(&udp_exchange(srv.udp, &garbage).await).unwrap();
    assert_eq!(resp.rcode(), Rcode::FORMERR);
    assert_eq!(resp.header.id, 0xABCD);
    assert!(resp.header.recursion_desired && resp.header.response);
    assert!(resp.questions.is_empty());

    // A readable question followed by junk: FORMERR echoing the question.
    let mut trailing = wire(&query("Junk.Test", 0x1111, None));
    trailing.extend_from_slice(&[1, 2, 3]);
    let resp = Message::parse(&udp_exchange(srv.udp, &trailing).await).unwrap();
    assert_eq!(resp.rcode(), Rcode::FORMERR);
    assert_eq!(resp.questions[0].name.to_string(), "Junk.Test.");

    // Two questions: FORMERR.
    let mut two = query("a.test", 3, None);
    two.questions.push(two.questions[0].clone());
    assert_eq!(
        rcode_of(&udp_exchange(srv.udp, &wire(&two)).await),
        Rcode::FORMERR
    );

    // Still serving.
    let ok = udp_exchange(srv.udp, &wire(&query("after.test", 9, None))).await;
    assert_eq!(rcode_of(&ok), Rcode::NXDOMAIN);
    assert_eq!(srv.script.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn other_opcodes_get_notimp_and_new_edns_versions_badvers() {
    let srv = start(test_config()).await;
    let mut notify = query("zone.test", 4, None);
    notify.header.opcode = Opcode::NOTIFY;
    let resp = Message::parse(&udp_exchange(srv.udp, &wire(&notify)).await).unwrap();
    assert_eq!(resp.rcode(), Rcode::NOTIMP);
    assert_eq!(resp.header.opcode, Opcode::NOTIFY);

    let mut v1 = query("a.test", 5, Some(1232));
    v1.edns.as_mut().unwrap().version = 1;
    let resp = Message::parse(&udp_exchange(srv.udp, &wire(&v1)).await).unwrap();
    assert_eq!(resp.rcode(), Rcode::BADVERS);
    assert_eq!(resp.edns.as_ref().unwrap().version, 0);
    assert_eq!(resp.header.id, 5);

    let mut tcp = tcp_connect(srv.tcp).await;
    let resp = tcp_exchange(&mut tcp, &wire(&notify)).await;
    assert_eq!(rcode_of(&resp), Rcode::NOTIMP);
    assert_eq!(srv.script.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn handler_errors_become_servfail_with_extended_error() {
    let srv = start(test_config()).await;
    let resp = udp_exchange(srv.udp, &wire(&query("fail.test", 6, Some(1232)))).await;
    let resp = Message::parse(&resp).unwrap();
    assert_eq!(resp.rcode(), Rcode::SERVFAIL);
    assert_eq!(
        resp.edns.unwrap().option(code::EXTENDED_ERROR),
        Some(&EdnsOption::ExtendedError {
            info_code: ede::NETWORK_ERROR,
            extra_text: "boom".into()
        })
    );
}

#[tokio::test]
async fn clients_outside_the_allow_list_are_refused() {
    let srv = start(ServerConfig {
        acl: Acl::new(vec!["10.0.0.0/8".parse().unwrap()]),
        ..test_config()
    })
    .await;
    for name in ["fast.test", "other.test"] {
        let q = wire(&query(name, 10, None));
        let resp = Message::parse(&udp_exchange(srv.udp, &q).await).unwrap();
        assert_eq!(resp.rcode(), Rcode::REFUSED);
        assert_eq!(resp.header.id, 10);
        let mut tcp = tcp_connect(srv.tcp).await;
        assert_eq!(rcode_of(&tcp_exchange(&mut tcp, &q).await), Rcode::REFUSED);
    }
    let resp = udp_exchange(srv.udp, &wire(&query("a.test", 11, Some(1232)))).await;
    let edns = Message::parse(&resp).unwrap().edns.unwrap();
    assert!(edns.option(code::EXTENDED_ERROR).is_some());
    assert_eq!(srv.canned.hits.load(Ordering::SeqCst), 0);
    assert_eq!(srv.script.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tcp_tolerates_split_and_joined_frames() {
    let srv = start(test_config()).await;
    let mut tcp = tcp_connect(srv.tcp).await;
    let q = wire(&query("split.test", 12, None));
    for byte in framed(&q) {
        tcp.write_all(&[byte]).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    let resp = tcp_read(&mut tcp).await.unwrap();
    assert_eq!(Header::parse(&resp).unwrap().id, 12);

    // Two queries in one write, one fast and one slow, and a third split across writes.
    let fast = wire(&query("fast.test", 13, None));
    let slow = wire(&query("slow.test", 14, None));
    let third = framed(&wire(&query("third.test", 15, None)));
    let mut joined = framed(&fast);
    joined.extend_from_slice(&framed(&slow));
    joined.extend_from_slice(&third[..5]);
    tcp.write_all(&joined).await.unwrap();
    let mut ids = vec![];
    for _ in 0..2 {
        ids.push(
            Header::parse(&tcp_read(&mut tcp).await.unwrap())
                .unwrap()
                .id,
        );
    }
    tcp.write_all(&third[5..]).await.unwrap();
    ids.push(
        Header::parse(&tcp_read(&mut tcp).await.unwrap())
            .unwrap()
            .id,
    );
    ids[..2].sort_unstable();
    assert_eq!(ids, [13, 14, 15]);
}

#[tokio::test]
async fn tcp_bad_frames_close_the_connection_but_formerr_does_not() {
    let srv = start(test_config()).await;
    let mut tcp = tcp_connect(srv.tcp).await;
    let garbage = [0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xFF];
    let resp = tcp_exchange(&mut tcp, &garbage).await;
    assert_eq!(rcode_of(&resp), Rcode::FORMERR);
    // A response as a query: ignored, the connection stays.
    let mut response = wire(&query("x.test", 1, None));
    response[2] |= 0x80;
    tcp.write_all(&framed(&response)).await.unwrap();
    let resp = tcp_exchange(&mut tcp, &wire(&query("still.test", 2, None))).await;
    assert_eq!(Header::parse(&resp).unwrap().id, 2);

    for bad in [vec![0u8, 0], vec![0, 5, 1, 2, 3, 4, 5], vec![0xFF, 0xFF]] {
        let mut tcp = tcp_connect(srv.tcp).await;
        tcp.write_all(&bad).await.unwrap();
        assert!(closed_by_server(&mut tcp).await, "frame {bad:?}");
    }
}

#[tokio::test]
async fn tcp_pipelined_queries_are_answered_out_of_order() {
    let srv = start(test_config()).await;
    let mut tcp = tcp_connect(srv.tcp).await;
    let mut both = framed(&wire(&query("first.test", 1, None)));
    both.extend_from_slice(&framed(&wire(&query("second.test", 2, None))));
    tcp.write_all(&both).await.unwrap();
    let a = tcp_read(&mut tcp).await.unwrap();
    assert_eq!(Header::parse(&a).unwrap().id, 2, "second answered first");
    srv.script.gate.notify_one();
    let b = tcp_read(&mut tcp).await.unwrap();
    assert_eq!(Header::parse(&b).unwrap().id, 1);
}

#[tokio::test]
async fn tcp_pipeline_cap_holds_further_queries_back() {
    let srv = start(ServerConfig {
        max_tcp_pipeline: 1,
        ..test_config()
    })
    .await;
    let mut tcp = tcp_connect(srv.tcp).await;
    let mut both = framed(&wire(&query("first.test", 1, None)));
    both.extend_from_slice(&framed(&wire(&query("second.test", 2, None))));
    tcp.write_all(&both).await.unwrap();
    srv.script.gate.notify_one();
    // With one query in flight at a time, the answers come in order.
    let a = tcp_read(&mut tcp).await.unwrap();
    assert_eq!(Header::parse(&a).unwrap().id, 1);
    let b = tcp_read(&mut tcp).await.unwrap();
    assert_eq!(Header::parse(&b).unwrap().id, 2);
}

#[tokio::test(start_paused = true)]
async fn idle_tcp_connections_are_closed_but_busy_ones_are_not() {
    let srv = start(ServerConfig {
        tcp_idle_timeout: Duration::from_millis(200),
        ..test_config()
    })
    .await;
    let started = tokio::time::Instant::now();
    let mut idle = tcp_connect(srv.tcp).await;
    assert!(closed_by_server(&mut idle).await);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // A query in flight keeps the connection open past the idle timeout.
    let mut busy = tcp_connect(srv.tcp).await;
    busy.write_all(&framed(&wire(&query("hang.test", 3, None))))
        .await
        .unwrap();
    srv.script.entered.notified().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    srv.script.release.notify_one();
    let resp = tcp_read(&mut busy).await.unwrap();
    assert_eq!(Header::parse(&resp).unwrap().id, 3);
    let answered = tokio::time::Instant::now();
    assert!(closed_by_server(&mut busy).await);
    assert!(answered.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_idle_connection_is_closed() {
    let srv = start(ServerConfig {
        max_tcp_connections: 2,
        ..test_config()
    })
    .await;
    let q = |id| wire(&query("cap.test", id, None));
    let mut a = tcp_connect(srv.tcp).await;
    tcp_exchange(&mut a, &q(1)).await;
    let mut b = tcp_connect(srv.tcp).await;
    tcp_exchange(&mut b, &q(2)).await;
    let mut c = tcp_connect(srv.tcp).await;
    tcp_exchange(&mut c, &q(3)).await;
    assert!(closed_by_server(&mut a).await, "a was idle longest");
    tcp_exchange(&mut b, &q(4)).await;
    tcp_exchange(&mut c, &q(5)).await;
}

#[tokio::test]
async fn at_the_connection_cap_with_none_idle_the_new_connection_is_closed() {
    let srv = start(ServerConfig {
        max_tcp_connections: 1,
        ..test_config()
    })
    .await;
    let mut busy = tcp_connect(srv.tcp).await;
    busy.write_all(&framed(&wire(&query("hang.test", 1, None))))
        .await
        .unwrap();
    srv.script.entered.notified().await;
    let mut late = tcp_connect(srv.tcp).await;
    let _ = late
        .write_all(&framed(&wire(&query("late.test", 2, None))))
        .await;
    assert!(closed_by_server(&mut late).await);
    srv.script.release.notify_one();
    let resp = tcp_read(&mut busy).await.unwrap();
    assert_eq!(Header::parse(&resp).unwrap().id, 1);
    // The slot is free again once the busy connection is idle and evictable.
    let mut next = tcp_connect(srv.tcp).await;
    tcp_exchange(&mut next, &wire(&query("next.test", 3, None))).await;
}

#[tokio::test]
async fn shutdown_stops_listening_and_finishes_queries_in_flight() {
    let srv = start(test_config()).await;
    let mut tcp = tcp_connect(srv.tcp).await;
    tcp.write_all(&framed(&wire(&query("hang.test", 21, None))))
        .await
        .unwrap();
    srv.script.entered.notified().await;
    let udp_client = udp_client().await;
    udp_client
        .send_to(&wire(&query("hang.test", 22, None)), srv.udp)
        .await
        .unwrap();
    srv.script.entered.notified().await;

    srv.stop.cancel();
    assert!(!srv.task.is_finished());
    srv.script.release.notify_one();
    srv.script.release.notify_one();
    let resp = tcp_read(&mut tcp).await.unwrap();
    assert_eq!(Header::parse(&resp).unwrap().id, 21);
    let resp = udp_recv(&udp_client, PATIENCE).await.unwrap();
    assert_eq!(Header::parse(&resp).unwrap().id, 22);
    tokio::time::timeout(PATIENCE, srv.task)
        .await
        .expect("run did not return")
        .unwrap();
    assert!(closed_by_server(&mut tcp).await);
    assert!(TcpStream::connect(srv.tcp).await.is_err());
    udp_client
        .send_to(&wire(&query("late.test", 23, None)), srv.udp)
        .await
        .unwrap();
    assert!(udp_recv(&udp_client, SILENCE).await.is_none());
}

#[tokio::test]
async fn shutdown_abandons_work_after_the_grace_period() {
    let srv = start_with_grace(test_config(), Duration::from_millis(100)).await;
    let mut tcp = tcp_connect(srv.tcp).await;
    tcp.write_all(&framed(&wire(&query("hang.test", 1, None))))
        .await
        .unwrap();
    srv.script.entered.notified().await;
    srv.stop.cancel();
    tokio::time::timeout(PATIENCE, srv.task)
        .await
        .expect("run did not return after the grace period")
        .unwrap();
    assert!(closed_by_server(&mut tcp).await);
}

#[tokio::test]
async fn port_zero_gives_udp_and_tcp_the_same_port_per_address() {
    let mut listen: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    // Some containers have no IPv6 loopback; test it where it exists.
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        listen.push("[::1]:0".parse().unwrap());
    }
    let cfg = ServerConfig {
        listen: listen.clone(),
        udp_sockets_per_addr: 4,
        ..ServerConfig::default()
    };
    let chain = Arc::new(Chain::new(vec![Arc::new(Script::default())]));
    let server = Server::bind(cfg, chain).await.unwrap();
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 2 * listen.len());
    for pair in addrs.chunks(2) {
        assert_eq!(pair[0].0, Protocol::Udp);
        assert_eq!(pair[1].0, Protocol::Tcp);
        assert_eq!(pair[0].1, pair[1].1);
        assert_ne!(pair[0].1.port(), 0);
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    for (proto, addr) in addrs {
        let q = wire(&query("any.test", 42, None));
        let resp = match proto {
            Protocol::Udp => {
                let sock = UdpSocket::bind(SocketAddr::new(addr.ip(), 0))
                    .await
                    .unwrap();
                sock.send_to(&q, addr).await.unwrap();
                udp_recv(&sock, PATIENCE).await.unwrap()
            }
            Protocol::Tcp => tcp_exchange(&mut tcp_connect(addr).await, &q).await,
        };
        assert_eq!(rcode_of(&resp), Rcode::NXDOMAIN);
    }
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn binding_a_taken_port_fails_with_a_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = ServerConfig {
        listen: vec![addr],
        ..test_config()
    };
    let err = Server::bind(cfg, Arc::new(Chain::default()))
        .await
        .unwrap_err();
    match &err {
        ServerError::Bind { addr: a, proto, .. } => {
            assert_eq!((*a, *proto), (addr, Protocol::Tcp));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(&addr.to_string()));
    let none = ServerConfig {
        listen: vec![],
        ..test_config()
    };
    assert!(matches!(
        Server::bind(none, Arc::new(Chain::default())).await,
        Err(ServerError::NoListenAddress)
    ));
}

/// Captures formatted log output.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // No .await while the lock is held (this is synchronous code).
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The log output of this whole test binary from the first call on, at the default level (info).
/// A global subscriber, because per-thread ones race with other tests over tracing's per-callsite
/// interest cache.
fn global_logs() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuf::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

#[tokio::test]
async fn logs_listening_lines_and_queries_only_when_asked() {
    let logs = global_logs();
    for log_queries in [false, true] {
        let srv = start(ServerConfig {
            log_queries,
            ..test_config()
        })
        .await;
        // Names no other test uses (the log is shared by the whole binary).
        let slow = format!("secret-{log_queries}.test");
        udp_exchange(srv.udp, &wire(&query(&slow, 1, None))).await;
        let q = wire(&query("fast.test", 2, None));
        udp_exchange(srv.udp, &q).await;
        srv.stop.cancel();
        srv.task.await.unwrap();
        let text = logs.text();
        let udp_line = format!("listening on udp {}\n", srv.udp);
        let tcp_line = format!("listening on tcp {}\n", srv.tcp);
        assert_eq!(text.matches(&udp_line).count(), 1, "{text}");
        assert_eq!(text.matches(&tcp_line).count(), 1, "{text}");
        assert_eq!(text.contains(&slow), log_queries, "{text}");
        // Fast-path queries are logged only when asked, too (and only this test asks).
        assert_eq!(text.contains("qname=fast.test"), log_queries, "{text}");
    }
}

#[tokio::test]
async fn udp_over_the_inflight_cap_is_dropped() {
    let srv = start(ServerConfig {
        max_udp_inflight: 1,
        udp_sockets_per_addr: 1,
        ..test_config()
    })
    .await;
    let sock = udp_client().await;
    sock.send_to(&wire(&query("hang.test", 1, None)), srv.udp)
        .await
        .unwrap();
    srv.script.entered.notified().await;
    // Over the cap: dropped. The fast path needs no permit and still answers.
    sock.send_to(&wire(&query("over.test", 2, None)), srv.udp)
        .await
        .unwrap();
    let fast = wire(&query("fast.test", 3, None));
    sock.send_to(&fast, srv.udp).await.unwrap();
    let resp = udp_recv(&sock, PATIENCE).await.unwrap();
    assert_eq!(resp, canned_answer(&fast));
    srv.script.release.notify_one();
    let resp = udp_recv(&sock, PATIENCE).await.unwrap();
    assert_eq!(Header::parse(&resp).unwrap().id, 1);
    assert!(
        udp_recv(&sock, SILENCE).await.is_none(),
        "query 2 was dropped"
    );
    assert_eq!(srv.script.calls.load(Ordering::SeqCst), 1);
    // With the permit back, slow queries are served again.
    let resp = udp_exchange(srv.udp, &wire(&query("again.test", 4, None))).await;
    assert_eq!(Header::parse(&resp).unwrap().id, 4);
}

/// Panics anywhere in this binary since the hook was installed (tokio catches task panics, so a
/// panicking listener would otherwise go unnoticed).
fn panic_count() -> &'static AtomicUsize {
    static PANICS: OnceLock<&'static AtomicUsize> = OnceLock::new();
    PANICS.get_or_init(|| {
        let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            count.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
        count
    })
}

/// Valid queries with random damage, and pure noise.
fn hostile_packets(seed: u64, n: usize) -> Vec<Vec<u8>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut q = query("www.example.test", 1, Some(1232));
    q.edns.as_mut().unwrap().options.push(EdnsOption::Cookie {
        client: [3; 8],
        server: Box::new([4; 8]),
    });
    let base = wire(&q);
    (0..n)
        .map(|i| match i % 4 {
            0 => (0..rng.gen_range(0..600)).map(|_| rng.gen()).collect(),
            1 => base[..rng.gen_range(0..base.len())].to_vec(),
            _ => {
                let mut p = base.clone();
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..p.len());
                    p[at] = rng.gen();
                }
                p[2] &= 0x7F; // keep QR clear so that most reach the parser
                if rng.gen_bool(0.2) {
                    p.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u8>()));
                }
                p
            }
        })
        .collect()
}

#[tokio::test]
async fn hostile_input_never_stops_the_server() {
    let panics = panic_count().load(Ordering::SeqCst);
    let srv = start(test_config()).await;
    let sock = udp_client().await;
    for (i, p) in hostile_packets(0x5EED, 3000).iter().enumerate() {
        sock.send_to(p, srv.udp).await.unwrap();
        if i % 50 == 0 {
            // Drain answers now and then so the client's receive buffer never fills.
            while udp_recv(&sock, Duration::ZERO).await.is_some() {}
            tokio::task::yield_now().await;
        }
    }
    let mut tcp = tcp_connect(srv.tcp).await;
    for p in hostile_packets(0xF00D, 1000) {
        if p.len() < 12 {
            continue; // would close the connection, by design
        }
        tcp.write_all(&framed(&p)).await.unwrap();
    }
    // The same client socket and connection still get answers.
    sock.send_to(&wire(&query("after.test", 0xAAAA, None)), srv.udp)
        .await
        .unwrap();
    loop {
        let resp = udp_recv(&sock, PATIENCE)
            .await
            .expect("server stopped answering UDP");
        if Header::parse(&resp).is_ok_and(|h| h.id == 0xAAAA) {
            break;
        }
    }
    tcp.write_all(&framed(&wire(&query("after.test", 0xBBBB, None))))
        .await
        .unwrap();
    loop {
        let resp = tcp_read(&mut tcp)
            .await
            .expect("server closed the connection");
        if Header::parse(&resp).is_ok_and(|h| h.id == 0xBBBB) {
            break;
        }
    }
    assert_eq!(
        panic_count().load(Ordering::SeqCst),
        panics,
        "something panicked"
    );
}
