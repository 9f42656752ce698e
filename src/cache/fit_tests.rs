//! The cache's fast path and the codec cut an answer that does not fit alike, byte for byte, and
//! write the same OPT record: both follow [`crate::wire::fit`] and [`crate::wire::edns::opt_head`].

use super::key::Key;
use super::{Cache, CacheConfig};
use crate::handler::Handler;
use crate::wire::edns::Edns;
use crate::wire::{Message, Name, QueryView, RData, RType, Record, Soa};

const PAYLOAD: u16 = 1400;

fn name(s: &str) -> Name {
    s.parse().expect("name")
}

/// An answer with records in all three sections: MX records, the zone's NS set, glue.
fn positive() -> Message {
    let owner = name("mx.example.com");
    let mut m = Message::response_to(&Message::query(owner.clone(), RType::MX));
    m.header.recursion_available = true;
    for i in 0..6u8 {
        let host = name(&format!("mail{i}.example.com"));
        m.answers.push(Record::new(
            owner.clone(),
            300,
            RData::Mx {
                preference: u16::from(i),
                exchange: host.clone(),
            },
        ));
        m.additional
            .push(Record::new(host, 300, RData::A([192, 0, 2, i].into())));
    }
    for i in 0..3 {
        m.authority.push(Record::new(
            name("example.com"),
            300,
            RData::Ns(name(&format!("ns{i}.a-long-name-server.example.net"))),
        ));
    }
    m
}

/// A negative answer: its SOA may not be cut. (Its TTL is the SOA MINIMUM already, which the cache
/// would otherwise lower it to, RFC 2308 section 5.)
fn negative() -> Message {
    let q = name("gone.example.com");
    let mut m = Message::response_to(&Message::query(q, RType::A));
    m.set_rcode(crate::wire::Rcode::NXDOMAIN);
    m.authority.push(Record::new(
        name("example.com"),
        60,
        RData::Soa(Soa {
            mname: name("ns0.example.com"),
            rname: name("hostmaster.example.com"),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 60,
        }),
    ));
    m
}

/// What the codec writes for a client asking `stored`'s question with ID 7, RD set and `edns`
/// (None when not even the truncated form fits `limit`).
fn codec(stored: &Message, edns: Option<bool>, limit: usize) -> Option<Vec<u8>> {
    let mut m = stored.clone();
    m.header.id = 7;
    m.header.recursion_desired = true;
    m.header.authoritative = false;
    m.edns = edns.map(|dnssec_ok| Edns {
        udp_payload: PAYLOAD,
        dnssec_ok,
        ..Edns::default()
    });
    m.encode_limited(limit).ok()
}

fn query_bytes(stored: &Message, edns: Option<bool>) -> Vec<u8> {
    let q = &stored.questions[0];
    let mut m = Message::query(q.name.clone(), q.qtype);
    m.header.id = 7;
    m.edns = edns.map(|dnssec_ok| Edns {
        udp_payload: 4096,
        dnssec_ok,
        ..Edns::default()
    });
    m.encode().expect("query")
}

#[tokio::test(start_paused = true)]
async fn the_fast_path_and_the_codec_cut_and_write_opt_alike() {
    let cache = Cache::new(CacheConfig {
        edns_payload: PAYLOAD,
        ..CacheConfig::default()
    });
    for stored in [positive(), negative()] {
        let wire = stored.encode().expect("encode");
        let q = &stored.questions[0];
        for edns in [None, Some(false), Some(true)] {
            let dnssec_ok = edns.unwrap_or(false);
            let key = Key::new(q.name.as_wire(), q.qtype, q.qclass, dnssec_ok, false).expect("key");
            cache.insert_wire(&key, &wire).expect("stored");
            let raw = query_bytes(&stored, edns);
            let view = QueryView::parse(&raw).expect("view");
            let full = codec(&stored, edns, 65535).expect("whole").len();
            let mut cuts = std::collections::BTreeSet::new();
            for limit in 12..=full + 8 {
                let mut out = Vec::new();
                let hit = cache.answer_fast(&view, limit, &mut out).is_some();
                let expected = codec(&stored, edns, limit);
                assert_eq!(
                    hit.then_some(&out),
                    expected.as_ref(),
                    "limit {limit}, edns {edns:?}"
                );
                cuts.insert(out.len());
            }
            assert!(cuts.len() >= 2, "some limits cut: {cuts:?}");
        }
    }
}
