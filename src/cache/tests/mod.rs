//! Cache behaviour, tested against hand-built response bytes and through the `Handler` interface,
//! one module per concern. This module holds what they share: building responses and queries,
//! a scripted upstream handler, and upstreams that switch between answering and failing.
#![allow(clippy::unwrap_used)]

mod cache_file;
mod coalescing;
mod eviction;
mod fast_path;
mod memory;
mod message;
mod negative;
mod own;
mod prefetch;
mod screen;
mod stale;
mod ttl;
mod verdict;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::advance;
use tokio_util::sync::CancellationToken;

use super::key::Key;
use super::policy::Uncacheable;
use super::*;
use crate::handler::{
    Answer, BusyReason, Chain, HandlerError, Origin, Protocol, RefusalReason, Verdict,
};
use crate::wire::edns::{ede, EdnsOption};
use crate::wire::scan::{self, Section};
use crate::wire::{
    Class, Edns, Header, Message, MessageBuilder, Name, RData, RType, Rcode, Record, Soa,
    HEADER_LEN,
};

/// How long after its storing an entry with a TTL of `ttl` is gone, in these tests: the cache counts
/// TTLs in whole seconds of its clock and answers an entry through its last second, with TTL 0
/// (see `entry::expires_ms`); time starts paused at the beginning of a second, so that last second
/// is a whole one.
fn gone_after(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl) + 1)
}

enum Data {
    A([u8; 4]),
    Cname(&'static str),
    Soa { minimum: u32 },
}

struct Rr {
    name: &'static str,
    ttl: u32,
    data: Data,
}

fn rr(name: &'static str, ttl: u32, data: Data) -> Rr {
    Rr { name, ttl, data }
}

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn write_rr(b: &mut MessageBuilder, r: &Rr) {
    b.put_name(&name(r.name), true);
    let rtype = match r.data {
        Data::A(_) => RType::A,
        Data::Cname(_) => RType::CNAME,
        Data::Soa { .. } => RType::SOA,
    };
    b.put_u16(rtype.0);
    b.put_u16(Class::IN.0);
    b.put_u32(r.ttl);
    let len_at = b.len();
    b.put_u16(0);
    match &r.data {
        Data::A(a) => b.put_bytes(a),
        Data::Cname(t) => b.put_name(&name(t), true),
        Data::Soa { minimum } => {
            b.put_name(&name("ns.example.com"), true);
            b.put_name(&name("hostmaster.example.com"), true);
            for v in [2024010101, 7200, 3600, 1209600, *minimum] {
                b.put_u32(v);
            }
        }
    }
    let len = b.len() - len_at - 2;
    b.patch_u16(len_at, len as u16);
}

/// An encoded response with the given sections, as an upstream would send it.
fn response_with(
    header: Header,
    qname: &str,
    qtype: RType,
    answers: &[Rr],
    authority: &[Rr],
    opt: Option<&[u8]>,
) -> Vec<u8> {
    let mut h = header;
    h.response = true;
    h.qdcount = 1;
    h.ancount = answers.len() as u16;
    h.nscount = authority.len() as u16;
    h.arcount = u16::from(opt.is_some());
    let mut b = MessageBuilder::new();
    b.put_bytes(&h.to_bytes());
    b.put_name(&name(qname), true);
    b.put_u16(qtype.0);
    b.put_u16(Class::IN.0);
    for r in answers.iter().chain(authority) {
        write_rr(&mut b, r);
    }
    if let Some(opt) = opt {
        b.put_bytes(opt);
    }
    b.finish()
}

fn response(qname: &str, qtype: RType, rcode: Rcode, answers: &[Rr], authority: &[Rr]) -> Vec<u8> {
    let h = Header {
        id: 0x4242,
        authoritative: true,
        recursion_desired: true,
        recursion_available: true,
        rcode_low: rcode.low(),
        ..Header::default()
    };
    response_with(h, qname, qtype, answers, authority, None)
}

fn a_response(qname: &str, ttl: u32) -> Vec<u8> {
    response(
        qname,
        RType::A,
        Rcode::NOERROR,
        &[rr("www.example.com", ttl, Data::A([192, 0, 2, 1]))],
        &[],
    )
}

/// An RRSIG over `owner`'s A records (what an upstream adds for a DO query).
fn rrsig_over_a(owner: Name) -> Record {
    Record::new(
        owner,
        300,
        RData::Rrsig(crate::wire::Rrsig {
            type_covered: RType::A,
            algorithm: 13,
            labels: 3,
            original_ttl: 300,
            expiration: 2,
            inception: 1,
            key_tag: 7,
            signer_name: name("example.com"),
            signature: vec![1; 64].into_boxed_slice(),
        }),
    )
}

fn key(qname: &str, qtype: RType, dnssec_ok: bool, cd: bool) -> Key {
    Key::new(name(qname).as_wire(), qtype, Class::IN, dnssec_ok, cd).unwrap()
}

fn cache(cfg: CacheConfig) -> Cache {
    Cache::new(cfg)
}

fn default_cache() -> Cache {
    cache(CacheConfig::default())
}

/// A client query on the wire.
fn query_with(qname: &str, qtype: RType, id: u16, edns: Option<Edns>, cd: bool) -> Vec<u8> {
    let mut q = Message::query(name(qname), qtype);
    q.header.id = id;
    q.header.checking_disabled = cd;
    q.edns = edns;
    q.encode().unwrap()
}

fn query(qname: &str, qtype: RType, id: u16) -> Vec<u8> {
    query_with(qname, qtype, id, None, false)
}

fn edns(dnssec_ok: bool) -> Option<Edns> {
    Some(Edns {
        dnssec_ok,
        udp_payload: 4096,
        ..Edns::default()
    })
}

/// The fast path's answer to `raw`, if it had one.
fn fast(c: &Cache, raw: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let view = QueryView::parse(raw).unwrap();
    let mut out = Vec::new();
    c.answer_fast(&view, max_len, &mut out).map(|_| out)
}

/// TTLs of a response's records, in order, with their sections.
fn ttls(wire: &[u8]) -> Vec<(Section, RType, u32)> {
    scan::records(wire)
        .unwrap()
        .into_iter()
        .map(|s| (s.section, s.rtype, s.ttl))
        .collect()
}

fn request(m: Message) -> Request {
    Request {
        query: m,
        client: Some("127.0.0.1:5353".parse().unwrap()),
        protocol: Protocol::Udp,
    }
}

fn msg_query(qname: &str, qtype: RType) -> Message {
    let mut q = Message::query(name(qname), qtype);
    q.header.id = 7;
    q
}

/// What a failing fake upstream reports.
fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "all upstreams timed out")
}

/// A next handler that counts its calls and answers once a permit is released.
struct Upstream {
    calls: AtomicUsize,
    gate: Semaphore,
    answer: Box<dyn Fn(&Request) -> UpResult + Send + Sync>,
}

/// What a test upstream answers: a message (sent up as an [`Answer`]) or an error.
type UpResult = Result<Message, HandlerError>;

impl Upstream {
    fn new(answer: impl Fn(&Request) -> UpResult + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Upstream {
            calls: AtomicUsize::new(0),
            gate: Semaphore::new(Semaphore::MAX_PERMITS),
            answer: Box::new(answer),
        })
    }

    fn gated(answer: impl Fn(&Request) -> UpResult + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Upstream {
            calls: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            answer: Box::new(answer),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Handler for Upstream {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            // Each permit lets one call through.
            self.gate.acquire().await.expect("gate open").forget();
            (self.answer)(req).map(|m| {
                Answer::from_message(&m, Origin::Upstream, Verdict::Unchecked).expect("encodes")
            })
        })
    }

    fn name(&self) -> &'static str {
        "test-upstream"
    }
}

fn refused(req: &Request) -> UpResult {
    let mut m = Message::response_to(&req.query);
    m.set_rcode(Rcode::REFUSED);
    Ok(m)
}

fn chain(c: &Arc<Cache>, up: &Arc<Upstream>) -> Arc<Chain> {
    Arc::new(Chain::new(vec![c.clone(), up.clone()]))
}

fn a_answer(req: &Request, ttl: u32) -> Message {
    let mut m = Message::response_to(&req.query);
    m.header.authoritative = true;
    m.answers.push(Record::new(
        req.query.questions[0].name.clone(),
        ttl,
        RData::A("192.0.2.7".parse().unwrap()),
    ));
    m
}

// Upstreams that switch between answering and failing, for serve-stale and prefetch.

/// What a [`switchable`] upstream does.
const ANSWER: u8 = 0;
const FAIL: u8 = 1;
const SERVFAIL: u8 = 2;

/// An upstream that answers A 192.0.2.7 with `ttl`, fails, or answers SERVFAIL, as `mode` says.
fn switchable(ttl: u32, mode: &Arc<AtomicU8>) -> Arc<Upstream> {
    let mode = mode.clone();
    Upstream::new(move |req| match mode.load(Ordering::SeqCst) {
        ANSWER => Ok(a_answer(req, ttl)),
        FAIL => Err(HandlerError::upstream(timed_out())),
        _ => {
            let mut m = Message::response_to(&req.query);
            m.set_rcode(Rcode::SERVFAIL);
            Ok(m)
        }
    })
}

/// The Extended DNS Errors of a response.
fn edes(m: &Message) -> Vec<u16> {
    m.edns
        .iter()
        .flat_map(|e| e.extended_errors())
        .map(|(code, _)| code)
        .collect()
}

/// Asserts `m` is the stale form of the 192.0.2.7 answer: TTL `ttl`, EDE 3.
fn assert_stale(m: &Message, ttl: u32) {
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::A("192.0.2.7".parse().unwrap()));
    assert_eq!(m.answers[0].ttl, ttl);
    assert_eq!(edes(m), [ede::STALE_ANSWER]);
}

/// Runs spawned tasks until `done` holds (paused time: only tasks that are ready make progress).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never held");
}
