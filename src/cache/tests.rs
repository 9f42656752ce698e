//! Cache behaviour, tested against hand-built response bytes (so that it does not depend on the
//! typed record codec) and through the `Handler` interface.
//!
//! Tests whose name starts with `codec_` go through `Message::encode`/`parse` with records; they
//! check first that the record data codec round-trips and return early while it is a stub.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::advance;

use super::*;
use crate::handler::{Chain, Protocol};
use crate::wire::edns::{ede, EdnsOption};
use crate::wire::scan::{self, Section};
use crate::wire::{
    Class, Edns, Header, MessageBuilder, Name, RData, RType, Rcode, Record, Soa, HEADER_LEN,
};

// ---------------------------------------------------------------- helpers

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
    c.answer_fast(&view, max_len, &mut out).then_some(out)
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
        client: "127.0.0.1:5353".parse().unwrap(),
        protocol: Protocol::Udp,
    }
}

fn msg_query(qname: &str, qtype: RType) -> Message {
    let mut q = Message::query(name(qname), qtype);
    q.header.id = 7;
    q
}

/// True once the typed record codec (being built on another branch) round-trips records.
fn codec_ready() -> bool {
    let mut m = Message::response_to(&msg_query("a.example", RType::A));
    m.answers.push(Record::new(
        name("a.example"),
        60,
        RData::A("192.0.2.1".parse().unwrap()),
    ));
    m.encode()
        .ok()
        .and_then(|w| Message::parse(&w).ok())
        .is_some_and(|back| back.answers == m.answers)
}

/// A next handler that counts its calls and answers once a permit is released.
struct Upstream {
    calls: AtomicUsize,
    gate: Semaphore,
    answer: Box<dyn Fn(&Request) -> HandlerResult + Send + Sync>,
}

impl Upstream {
    fn new(answer: impl Fn(&Request) -> HandlerResult + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Upstream {
            calls: AtomicUsize::new(0),
            gate: Semaphore::new(Semaphore::MAX_PERMITS),
            answer: Box::new(answer),
        })
    }

    fn gated(answer: impl Fn(&Request) -> HandlerResult + Send + Sync + 'static) -> Arc<Self> {
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
            let _permit = self.gate.acquire().await.expect("gate open");
            (self.answer)(req)
        })
    }

    fn name(&self) -> &'static str {
        "test-upstream"
    }
}

fn refused(req: &Request) -> HandlerResult {
    let mut m = Message::response_to(&req.query);
    m.set_rcode(Rcode::REFUSED);
    Ok(m)
}

fn chain(c: &Arc<Cache>, up: &Arc<Upstream>) -> Arc<Chain> {
    Arc::new(Chain::new(vec![c.clone(), up.clone()]))
}

// ---------------------------------------------------------------- hits, TTLs, expiry

#[tokio::test(start_paused = true)]
async fn hit_after_miss_and_ttls_count_down() {
    let c = default_cache();
    let q = query("www.example.com", RType::A, 1);
    assert!(fast(&c, &q, 512).is_none());
    let wire = response(
        "www.example.com",
        RType::A,
        Rcode::NOERROR,
        &[
            rr("www.example.com", 300, Data::A([192, 0, 2, 1])),
            rr("www.example.com", 200, Data::A([192, 0, 2, 2])),
        ],
        &[],
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    assert_eq!(c.len(), 1);

    let t = |out: &[u8]| ttls(out).iter().map(|r| r.2).collect::<Vec<_>>();
    let out = fast(&c, &q, 512).expect("hit");
    assert_eq!(t(&out), [300, 200]);
    advance(Duration::from_secs(10)).await;
    assert_eq!(t(&fast(&c, &q, 512).unwrap()), [290, 190]);
    // Whole seconds only: 10.9 s is still 10.
    advance(Duration::from_millis(900)).await;
    assert_eq!(t(&fast(&c, &q, 512).unwrap()), [290, 190]);
    advance(Duration::from_millis(100)).await;
    assert_eq!(t(&fast(&c, &q, 512).unwrap()), [289, 189]);

    let s = c.stats();
    assert_eq!((s.hits, s.inserts, s.entries), (4, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn entry_expires_with_its_smallest_ttl() {
    let c = default_cache();
    let q = query("www.example.com", RType::A, 1);
    let wire = response(
        "www.example.com",
        RType::A,
        Rcode::NOERROR,
        &[
            rr("www.example.com", 300, Data::A([192, 0, 2, 1])),
            rr("www.example.com", 100, Data::A([192, 0, 2, 2])),
        ],
        &[],
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    advance(Duration::from_millis(99_999)).await;
    let last = fast(&c, &q, 512).expect("still live");
    assert_eq!(ttls(&last)[1].2, 1);
    assert_eq!(ttls(&last)[0].2, 201);
    advance(Duration::from_millis(1)).await;
    assert!(fast(&c, &q, 512).is_none());
    // The expired entry was reclaimed by the lookup.
    assert_eq!(c.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn ttls_are_clamped() {
    let c = cache(CacheConfig {
        min_ttl: 60,
        max_ttl: 1000,
        ..CacheConfig::default()
    });
    let q = query("www.example.com", RType::A, 1);
    let wire = response(
        "www.example.com",
        RType::A,
        Rcode::NOERROR,
        &[
            rr("www.example.com", 10, Data::A([192, 0, 2, 1])),
            rr("www.example.com", 5000, Data::A([192, 0, 2, 2])),
            // RFC 2181 section 8: the top bit set means zero, raised to min_ttl.
            rr("www.example.com", 0x8000_0000, Data::A([192, 0, 2, 3])),
        ],
        &[],
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    let got: Vec<u32> = ttls(&fast(&c, &q, 512).unwrap())
        .iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(got, [60, 1000, 60]);

    // max_ttl wins over a larger min_ttl.
    let c = cache(CacheConfig {
        min_ttl: 500,
        max_ttl: 100,
        ..CacheConfig::default()
    });
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 10),
    )
    .unwrap();
    assert_eq!(ttls(&fast(&c, &q, 512).unwrap())[0].2, 100);
}

// ---------------------------------------------------------------- negative and SERVFAIL

#[tokio::test(start_paused = true)]
async fn nxdomain_is_cached_for_the_soa_minimum() {
    let c = cache(CacheConfig {
        min_ttl: 1000, // does not raise negative answers
        ..CacheConfig::default()
    });
    let wire = response(
        "nope.example.com",
        RType::A,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 3600, Data::Soa { minimum: 300 })],
    );
    c.insert_wire(&key("nope.example.com", RType::A, false, false), &wire)
        .unwrap();
    let q = query("nope.example.com", RType::A, 9);
    let out = fast(&c, &q, 512).unwrap();
    assert_eq!(
        Header::parse(&out).unwrap().rcode_low,
        Rcode::NXDOMAIN.low()
    );
    assert_eq!(ttls(&out), [(Section::Authority, RType::SOA, 300)]);
    advance(Duration::from_secs(300)).await;
    assert!(fast(&c, &q, 512).is_none());

    // The SOA's own TTL when it is the smaller; negative_max_ttl caps both.
    let c = default_cache();
    let wire = response(
        "nope.example.com",
        RType::A,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 30, Data::Soa { minimum: 300 })],
    );
    c.insert_wire(&key("nope.example.com", RType::A, false, false), &wire)
        .unwrap();
    assert_eq!(ttls(&fast(&c, &q, 512).unwrap())[0].2, 30);
    let c = cache(CacheConfig {
        negative_max_ttl: 20,
        ..CacheConfig::default()
    });
    c.insert_wire(&key("nope.example.com", RType::A, false, false), &wire)
        .unwrap();
    assert_eq!(ttls(&fast(&c, &q, 512).unwrap())[0].2, 20);
}

#[tokio::test(start_paused = true)]
async fn nodata_is_cached_and_needs_an_soa() {
    let c = default_cache();
    let k = key("www.example.com", RType::AAAA, false, false);
    let q = query("www.example.com", RType::AAAA, 3);
    // NODATA after a CNAME: the answer holds no AAAA.
    let wire = response(
        "www.example.com",
        RType::AAAA,
        Rcode::NOERROR,
        &[rr("www.example.com", 600, Data::Cname("web.example.com"))],
        &[rr("example.com", 3600, Data::Soa { minimum: 120 })],
    );
    c.insert_wire(&k, &wire).unwrap();
    let out = fast(&c, &q, 512).unwrap();
    assert_eq!(
        ttls(&out),
        [
            (Section::Answer, RType::CNAME, 600),
            (Section::Authority, RType::SOA, 120)
        ]
    );
    advance(Duration::from_secs(120)).await;
    assert!(fast(&c, &q, 512).is_none());

    // Without an SOA, neither NODATA nor NXDOMAIN is cached.
    let bare = response("www.example.com", RType::AAAA, Rcode::NOERROR, &[], &[]);
    assert_eq!(
        c.insert_wire(&k, &bare),
        Err(Uncacheable::NegativeWithoutSoa)
    );
    let bare = response("www.example.com", RType::AAAA, Rcode::NXDOMAIN, &[], &[]);
    assert_eq!(
        c.insert_wire(&k, &bare),
        Err(Uncacheable::NegativeWithoutSoa)
    );
    // An SOA MINIMUM of zero means "do not cache".
    let zero = response(
        "www.example.com",
        RType::AAAA,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 3600, Data::Soa { minimum: 0 })],
    );
    assert_eq!(c.insert_wire(&k, &zero), Err(Uncacheable::ZeroTtl));
}

/// An OPT record carrying one Extended DNS Error.
fn opt_with_ede(info: u16, text: &str) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0];
    o.extend_from_slice(&((6 + text.len()) as u16).to_be_bytes());
    o.extend_from_slice(&15u16.to_be_bytes());
    o.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
    o.extend_from_slice(&info.to_be_bytes());
    o.extend_from_slice(text.as_bytes());
    o
}

#[tokio::test(start_paused = true)]
async fn servfail_is_cached_briefly_with_its_extended_error() {
    let c = cache(CacheConfig {
        servfail_ttl: 5,
        ..CacheConfig::default()
    });
    let h = Header {
        rcode_low: Rcode::SERVFAIL.low(),
        ..Header::default()
    };
    let opt = opt_with_ede(ede::NETWORK_ERROR, "upstream timed out");
    let wire = response_with(
        h,
        "www.example.com",
        RType::A,
        &[rr("www.example.com", 300, Data::A([192, 0, 2, 1]))],
        &[],
        Some(&opt),
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();

    // An EDNS client gets the SERVFAIL, no records, and the EDE in our OPT.
    let q = query_with("www.example.com", RType::A, 5, edns(false), false);
    let out = fast(&c, &q, 1232).unwrap();
    let hdr = Header::parse(&out).unwrap();
    assert_eq!(hdr.rcode_low, Rcode::SERVFAIL.low());
    assert_eq!((hdr.ancount, hdr.nscount, hdr.arcount), (0, 0, 1));
    let m = Message::parse(&out).unwrap();
    assert_eq!(
        m.edns.unwrap().options,
        [EdnsOption::ExtendedError {
            info_code: ede::NETWORK_ERROR,
            extra_text: "upstream timed out".into()
        }]
    );
    // A client without EDNS gets a plain SERVFAIL.
    let plain = fast(&c, &query("www.example.com", RType::A, 5), 512).unwrap();
    assert_eq!(Header::parse(&plain).unwrap().arcount, 0);
    assert_eq!(plain.len(), HEADER_LEN + 17 + 4);

    advance(Duration::from_secs(5)).await;
    assert!(fast(&c, &q, 1232).is_none());
}

#[tokio::test(start_paused = true)]
async fn chain_failure_is_cached_as_servfail() {
    let c = Arc::new(default_cache());
    let up = Upstream::new(|_| Err(HandlerError::Upstream("all upstreams timed out".into())));
    let ch = chain(&c, &up);
    let req = request(msg_query("down.example", RType::A));
    assert_eq!(
        ch.handle(&req).await,
        Err(HandlerError::Upstream("all upstreams timed out".into()))
    );
    let cached = ch.handle(&req).await.unwrap();
    assert_eq!(up.calls(), 1);
    assert_eq!(cached.rcode(), Rcode::SERVFAIL);
    assert_eq!(cached.header.id, 7);
    assert_eq!(
        cached.edns.unwrap().options,
        [EdnsOption::ExtendedError {
            info_code: ede::NETWORK_ERROR,
            extra_text: "all upstreams timed out".into()
        }]
    );
    advance(Duration::from_secs(DEFAULT_SERVFAIL_TTL as u64)).await;
    assert!(ch.handle(&req).await.is_err());
    assert_eq!(up.calls(), 2);

    // Other failures are not cached.
    let c = Arc::new(default_cache());
    let up = Upstream::new(|_| Err(HandlerError::Refused("policy".into())));
    let ch = chain(&c, &up);
    assert!(ch.handle(&req).await.is_err());
    assert!(ch.handle(&req).await.is_err());
    assert_eq!(up.calls(), 2);
    assert!(c.is_empty());
}

#[tokio::test(start_paused = true)]
async fn uncacheable_responses_are_not_stored() {
    let c = default_cache();
    let k = key("www.example.com", RType::A, false, false);
    let truncated = response_with(
        Header {
            truncated: true,
            ..Header::default()
        },
        "www.example.com",
        RType::A,
        &[],
        &[],
        None,
    );
    assert_eq!(c.insert_wire(&k, &truncated), Err(Uncacheable::Truncated));
    let refused = response("www.example.com", RType::A, Rcode::REFUSED, &[], &[]);
    assert_eq!(
        c.insert_wire(&k, &refused),
        Err(Uncacheable::Rcode(Rcode::REFUSED))
    );
    assert_eq!(
        c.insert_wire(&k, &a_response("www.example.com", 0)),
        Err(Uncacheable::ZeroTtl)
    );
    assert_eq!(
        c.insert_wire(&k, &a_response("other.example.com", 60)),
        Err(Uncacheable::QuestionMismatch)
    );
    // An extended RCODE (BADVERS: upper bits in OPT) is not NOERROR.
    let mut opt = vec![0, 0, 41, 0x04, 0xD0, 1, 0, 0, 0, 0, 0];
    let badvers = response_with(
        Header::default(),
        "www.example.com",
        RType::A,
        &[],
        &[],
        Some(&opt),
    );
    assert_eq!(
        c.insert_wire(&k, &badvers),
        Err(Uncacheable::Rcode(Rcode::BADVERS))
    );
    opt[5] = 0;
    let ch = Key::new(name("x.").as_wire(), RType::A, Class::CH, false, false).unwrap();
    assert_eq!(
        c.insert_wire(&ch, &a_response("x.", 60)),
        Err(Uncacheable::Question)
    );
    let huge: Vec<Rr> = (0..5000)
        .map(|i| {
            rr(
                "www.example.com",
                60,
                Data::A([10, 0, (i >> 8) as u8, i as u8]),
            )
        })
        .collect();
    let huge = response("www.example.com", RType::A, Rcode::NOERROR, &huge, &[]);
    assert!(huge.len() > policy::MAX_STORED_LEN);
    assert_eq!(c.insert_wire(&k, &huge), Err(Uncacheable::TooLarge));
    let any = key("www.example.com", RType::ANY, false, false);
    assert_eq!(
        c.insert_wire(&any, &a_response("www.example.com", 60)),
        Err(Uncacheable::Question)
    );
    assert!(c.is_empty());
}

// ---------------------------------------------------------------- key and fast-path bytes

#[tokio::test(start_paused = true)]
async fn key_separates_do_cd_and_type_and_ignores_case() {
    let c = default_cache();
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("WWW.Example.com", 60),
    )
    .unwrap();
    let mixed = query("wWw.ExAmPlE.cOm", RType::A, 1);
    let out = fast(&c, &mixed, 512).expect("case-insensitive hit");
    // The question echoes the client's spelling.
    assert_eq!(
        &out[HEADER_LEN..HEADER_LEN + 17],
        &mixed[HEADER_LEN..HEADER_LEN + 17]
    );
    assert!(fast(&c, &query("www.example.com", RType::AAAA, 1), 512).is_none());
    assert!(fast(
        &c,
        &query_with("www.example.com", RType::A, 1, edns(true), false),
        512
    )
    .is_none());
    assert!(fast(
        &c,
        &query_with("www.example.com", RType::A, 1, edns(false), false),
        512
    )
    .is_some());
    assert!(fast(
        &c,
        &query_with("www.example.com", RType::A, 1, None, true),
        512
    )
    .is_none());
}

#[tokio::test(start_paused = true)]
async fn fast_path_output_is_byte_exact() {
    let c = default_cache();
    let upstream = a_response("www.example.com", 300);
    c.insert_wire(&key("www.example.com", RType::A, true, false), &upstream)
        .unwrap();
    advance(Duration::from_secs(10)).await;
    let q = query_with("WWW.example.COM", RType::A, 0xBEEF, edns(true), false);
    let out = fast(&c, &q, 4096).unwrap();

    let mut expected = upstream.clone();
    expected[0..2].copy_from_slice(&0xBEEFu16.to_be_bytes());
    expected[2] = 0x81; // QR, RD (AA cleared)
    expected[3] = 0x80; // RA
    expected[10..12].copy_from_slice(&1u16.to_be_bytes()); // ARCOUNT: our OPT
    expected[HEADER_LEN..HEADER_LEN + 17].copy_from_slice(&q[HEADER_LEN..HEADER_LEN + 17]);
    let ttl_at = scan::records(&upstream).unwrap()[0].ttl_offset;
    expected[ttl_at..ttl_at + 4].copy_from_slice(&290u32.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
    assert_eq!(out, expected);

    // Without EDNS: no OPT, ARCOUNT 0, RD as the client sent it.
    let mut plain_q = query("www.example.com", RType::A, 2);
    plain_q[2] &= !0x01; // RD=0
    let c2 = default_cache();
    c2.insert_wire(&key("www.example.com", RType::A, false, false), &upstream)
        .unwrap();
    let out = fast(&c2, &plain_q, 512).unwrap();
    assert_eq!(out.len(), upstream.len());
    let h = Header::parse(&out).unwrap();
    assert!(!h.recursion_desired && !h.authoritative && h.response && h.recursion_available);
    assert_eq!((h.id, h.arcount), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn too_long_answers_are_truncated() {
    let c = default_cache();
    let answers: Vec<Rr> = (0..40)
        .map(|i| rr("big.example.com", 60, Data::A([192, 0, 2, i])))
        .collect();
    let wire = response("big.example.com", RType::A, Rcode::NOERROR, &answers, &[]);
    assert!(wire.len() > 512);
    c.insert_wire(&key("big.example.com", RType::A, false, false), &wire)
        .unwrap();

    let q = query("big.example.com", RType::A, 77);
    let out = fast(&c, &q, 512).unwrap();
    let h = Header::parse(&out).unwrap();
    assert!(h.truncated);
    assert_eq!(
        (h.id, h.qdcount, h.ancount, h.nscount, h.arcount),
        (77, 1, 0, 0, 0)
    );
    assert_eq!(&out[HEADER_LEN..], &q[HEADER_LEN..]);

    let qe = query_with("big.example.com", RType::A, 78, edns(false), false);
    let out = fast(&c, &qe, 512).unwrap();
    let h = Header::parse(&out).unwrap();
    assert!(h.truncated);
    assert_eq!(h.arcount, 1);
    assert_eq!(out.len(), HEADER_LEN + 17 + 4 + 11);
    // With room it is whole.
    let whole = fast(&c, &qe, 4096).unwrap();
    assert_eq!(whole.len(), wire.len() + 11);
    assert!(!Header::parse(&whole).unwrap().truncated);
}

#[tokio::test(start_paused = true)]
async fn fast_path_declines_what_it_does_not_handle() {
    let c = default_cache();
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 60),
    )
    .unwrap();
    let with = |opt: EdnsOption| {
        let mut e = edns(false).unwrap();
        e.options.push(opt);
        query_with("www.example.com", RType::A, 1, Some(e), false)
    };
    // A cookie does not change the answer.
    let cookie = with(EdnsOption::Cookie {
        client: [1; 8],
        server: Box::new([]),
    });
    assert!(fast(&c, &cookie, 512).is_some());
    // Client Subnet might.
    let ecs = with(EdnsOption::ClientSubnet(crate::wire::ClientSubnet {
        family: 1,
        source_prefix: 24,
        scope_prefix: 0,
        address: Box::new([192, 0, 2]),
    }));
    assert!(fast(&c, &ecs, 512).is_none());
    // EDNS version 1 needs BADVERS from the slow path.
    let v1 = query_with(
        "www.example.com",
        RType::A,
        1,
        Some(Edns {
            version: 1,
            ..Edns::default()
        }),
        false,
    );
    assert!(fast(&c, &v1, 512).is_none());
    // Other opcodes.
    let mut notify = query("www.example.com", RType::A, 1);
    notify[2] |= 4 << 3;
    assert!(fast(&c, &notify, 512).is_none());
    // AD only for clients that asked for it.
    let mut ad = query("www.example.com", RType::A, 1);
    ad[3] |= 0x20;
    assert!(fast(&c, &ad, 512).is_some());
}

#[tokio::test(start_paused = true)]
async fn ad_bit_is_shown_only_to_clients_that_ask() {
    let c = default_cache();
    let wire = response_with(
        Header {
            authentic_data: true,
            recursion_available: true,
            ..Header::default()
        },
        "www.example.com",
        RType::A,
        &[rr("www.example.com", 60, Data::A([192, 0, 2, 1]))],
        &[],
        None,
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    let plain = query("www.example.com", RType::A, 1);
    assert!(
        !Header::parse(&fast(&c, &plain, 512).unwrap())
            .unwrap()
            .authentic_data
    );
    let mut ad = plain.clone();
    ad[3] |= 0x20;
    assert!(
        Header::parse(&fast(&c, &ad, 512).unwrap())
            .unwrap()
            .authentic_data
    );
}

// ---------------------------------------------------------------- eviction

#[tokio::test(start_paused = true)]
async fn eviction_bounds_the_size_and_counts() {
    let c = cache(CacheConfig {
        capacity: 100,
        shards: 1,
        ..CacheConfig::default()
    });
    let hot = key("hot.example", RType::A, false, false);
    c.insert_wire(&hot, &a_response("hot.example", 600))
        .unwrap();
    let hot_q = query("hot.example", RType::A, 1);
    for i in 0..1000 {
        let n = format!("n{i}.example");
        c.insert_wire(&key(&n, RType::A, false, false), &a_response(&n, 600))
            .unwrap();
        // A name asked for keeps its place (CLOCK second chance).
        assert!(fast(&c, &hot_q, 512).is_some(), "hot entry evicted at {i}");
    }
    let s = c.stats();
    assert_eq!(s.entries, 100);
    assert_eq!(s.inserts, 1001);
    assert_eq!(s.evictions, 901);

    // Sharded: the total stays within capacity.
    let c = cache(CacheConfig {
        capacity: 1000,
        ..CacheConfig::default()
    });
    for i in 0..5000 {
        let n = format!("n{i}.example");
        c.insert_wire(&key(&n, RType::A, false, false), &a_response(&n, 600))
            .unwrap();
    }
    assert!(c.len() <= 1000, "{} entries", c.len());
    assert!(c.len() >= 900, "{} entries", c.len());
    assert_eq!(c.stats().evictions, 5000 - c.len() as u64);
}

#[test]
fn shard_count_is_a_power_of_two() {
    let n = |capacity, shards| {
        CacheConfig {
            capacity,
            shards,
            ..CacheConfig::default()
        }
        .shard_count()
    };
    assert_eq!(n(100_000, 0), 64);
    assert_eq!(n(1000, 0), 8);
    assert_eq!(n(10, 0), 1);
    assert_eq!(n(0, 0), 1);
    assert_eq!(n(1000, 3), 4);
    assert_eq!(n(1000, 1 << 20), MAX_SHARDS);
}

// ---------------------------------------------------------------- coalescing

#[tokio::test(start_paused = true)]
async fn identical_misses_are_coalesced() {
    let c = Arc::new(default_cache());
    let up = Upstream::gated(refused);
    let ch = chain(&c, &up);
    let mut tasks = Vec::new();
    for id in 0..50u16 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut q = msg_query("slow.example", RType::A);
            q.header.id = id;
            ch.handle(&request(q)).await
        }));
    }
    // Wait until one leader is upstream and 49 followers wait for it.
    while up.calls() < 1 || c.stats().coalesced < 49 {
        tokio::task::yield_now().await;
    }
    up.gate.add_permits(1);
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().rcode(), Rcode::REFUSED);
    }
    assert_eq!(up.calls(), 1);
    let s = c.stats();
    assert_eq!((s.misses, s.coalesced), (1, 49));
    // A different question is a different flight.
    up.gate.add_permits(1);
    ch.handle(&request(msg_query("other.example", RType::A)))
        .await
        .unwrap();
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let c = Arc::new(default_cache());
    let up = Upstream::gated(refused);
    let ch = chain(&c, &up);
    let spawn = |ch: Arc<Chain>| {
        tokio::spawn(async move { ch.handle(&request(msg_query("x.example", RType::A))).await })
    };
    let leader = spawn(ch.clone());
    while up.calls() < 1 {
        tokio::task::yield_now().await;
    }
    let follower = spawn(ch.clone());
    while c.stats().coalesced < 1 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // The follower retries and becomes the leader.
    while up.calls() < 2 {
        tokio::task::yield_now().await;
    }
    up.gate.add_permits(1);
    assert_eq!(follower.await.unwrap().unwrap().rcode(), Rcode::REFUSED);
    assert_eq!(c.stats().misses, 2);
    assert!(lock(&c.shards[0]).inflight.is_empty());
}

// ---------------------------------------------------------------- through Message (needs the codec)

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

#[tokio::test(start_paused = true)]
async fn codec_handle_caches_and_counts_down() {
    if !codec_ready() {
        eprintln!("skipped: the record data codec is still a stub on this branch");
        return;
    }
    let c = Arc::new(default_cache());
    let up = Upstream::new(|req| Ok(a_answer(req, 300)));
    let ch = chain(&c, &up);
    let first = ch
        .handle(&request(msg_query("Www.Example.com", RType::A)))
        .await
        .unwrap();
    assert_eq!(first.answers[0].ttl, 300);
    assert!(!first.header.authoritative);
    advance(Duration::from_secs(42)).await;
    let second = ch
        .handle(&request(msg_query("wWW.example.COM", RType::A)))
        .await
        .unwrap();
    assert_eq!(up.calls(), 1);
    assert_eq!(second.answers[0].ttl, 258);
    assert_eq!(
        second.answers[0].data,
        RData::A("192.0.2.7".parse().unwrap())
    );
    assert_eq!(
        second.questions[0].name.as_wire(),
        name("wWW.example.COM").as_wire()
    );
    // The fast path serves the same entry.
    let out = fast(&c, &query("www.example.com", RType::A, 3), 512).unwrap();
    assert_eq!(Message::parse(&out).unwrap().answers, second.answers);
}

#[tokio::test(start_paused = true)]
async fn codec_negative_answer_from_message() {
    if !codec_ready() {
        eprintln!("skipped: the record data codec is still a stub on this branch");
        return;
    }
    let c = Arc::new(default_cache());
    let up = Upstream::new(|req| {
        let mut m = Message::response_to(&req.query);
        m.set_rcode(Rcode::NXDOMAIN);
        m.authority.push(Record::new(
            name("example.com"),
            3600,
            RData::Soa(Soa {
                mname: name("ns.example.com"),
                rname: name("hostmaster.example.com"),
                serial: 1,
                refresh: 7200,
                retry: 3600,
                expire: 1209600,
                minimum: 60,
            }),
        ));
        Ok(m)
    });
    let ch = chain(&c, &up);
    let req = request(msg_query("gone.example.com", RType::A));
    let first = ch.handle(&req).await.unwrap();
    assert_eq!(first.authority[0].ttl, 60);
    advance(Duration::from_secs(59)).await;
    let cached = ch.handle(&req).await.unwrap();
    assert_eq!(cached.rcode(), Rcode::NXDOMAIN);
    assert_eq!(cached.authority[0].ttl, 1);
    assert_eq!(up.calls(), 1);
    advance(Duration::from_secs(1)).await;
    ch.handle(&req).await.unwrap();
    assert_eq!(up.calls(), 2);
}

// ---------------------------------------------------------------- memory

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Run alone: `cargo test --lib cache::tests::memory_per_entry -- --ignored --nocapture`.
#[test]
#[ignore = "measures process RSS; run alone"]
fn memory_per_entry() {
    const N: usize = 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // Headroom: capacity is split evenly over the shards and hashing does not fill them evenly.
    let c = cache(CacheConfig {
        capacity: N + N / 8,
        ..CacheConfig::default()
    });
    // Names like those of a real cache: www.host123456.example.com, A, one record.
    let mut wire = a_response("www.host000000.example.com", 3600);
    let label_at = HEADER_LEN + 4;
    let before = rss_bytes();
    for i in 0..N {
        let digits = format!("{i:06}");
        wire[label_at + 4..label_at + 10].copy_from_slice(digits.as_bytes());
        let qname = &wire[HEADER_LEN..HEADER_LEN + 28];
        let k = Key::new(qname, RType::A, Class::IN, false, false).unwrap();
        c.insert_wire(&k, &wire).unwrap();
    }
    let after = rss_bytes();
    assert_eq!(c.len(), N);
    let per_entry = (after - before) as f64 / N as f64;
    println!(
        "{N} entries of {} response octets: RSS grew {} MiB, {per_entry:.0} bytes per entry",
        wire.len(),
        (after - before) >> 20
    );
    assert!(per_entry < 250.0, "{per_entry} bytes per entry");
}

#[test]
fn cache_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cache>();
}
