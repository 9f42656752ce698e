use super::*;
use crate::wire::edns::{Edns, EdnsOption};
use crate::wire::message::{Message, Record};
use crate::wire::name::Name;
use crate::wire::rdata::{RData, Soa};
use crate::wire::scrub::{scrub, Scrubbed};
use std::net::{Ipv4Addr, Ipv6Addr};

const ID: u16 = 0x4d2;

fn n(s: &str) -> Name {
    s.parse().unwrap()
}

fn question(name: &str, qtype: RType) -> Question {
    Question::new(n(name), qtype)
}

fn a(name: &str, last: u8) -> Record {
    Record::new(n(name), 300, RData::A(Ipv4Addr::new(192, 0, 2, last)))
}

fn ns(owner: &str, target: &str) -> Record {
    Record::new(n(owner), 3600, RData::Ns(n(target)))
}

fn soa(owner: &str) -> Record {
    Record::new(
        n(owner),
        3600,
        RData::Soa(Soa {
            mname: n("ns1.example.com"),
            rname: n("hostmaster.example.com"),
            serial: 1,
            refresh: 3600,
            retry: 900,
            expire: 604_800,
            minimum: 300,
        }),
    )
}

/// The answer nsd gives the benchmark: the A record, the zone's NS, an OPT record.
fn answer_to(q: &Question) -> Message {
    let mut m = Message::default();
    m.header.id = ID;
    m.header.response = true;
    m.header.recursion_desired = true;
    m.header.recursion_available = true;
    m.questions.push(q.clone());
    m.answers.push(a(&q.name.to_string(), 1));
    m.authority.push(ns("example.com", "ns1.example.com"));
    m.edns = Some(Edns::default());
    m
}

fn check_of(wire: &[u8], q: &Question) -> Option<Rcode> {
    check(wire, ID, Opcode::QUERY, q)
}

/// What the full path makes of `wire` as an answer to `q`: parsed, the same ID, opcode and
/// question, and after scrubbing the same message (`None` if the parse or the checks fail).
fn full_path(wire: &[u8], q: &Question) -> Option<(Rcode, Scrubbed)> {
    let m = Message::parse(wire).ok()?;
    if !m.header.response
        || m.header.id != ID
        || m.header.opcode != Opcode::QUERY
        || m.questions != vec![q.clone()]
    {
        return None;
    }
    let mut scrubbed = m.clone();
    let what = scrub(&mut scrubbed, q).ok()?;
    Some((m.rcode(), what))
}

/// The property the module promises: whatever the shortcut accepts, the full path accepts with the
/// same RCODE and scrubbing changes nothing.
fn agrees(wire: &[u8], q: &Question) -> Option<Rcode> {
    let simple = check_of(wire, q);
    if let Some(rcode) = simple {
        let (full, scrubbed) =
            full_path(wire, q).expect("simple accepted what the full path refuses");
        assert_eq!(full, rcode);
        assert_eq!(
            scrubbed,
            Scrubbed::default(),
            "scrubbing would change a simple answer"
        );
    }
    simple
}

#[test]
fn the_common_answer_is_simple() {
    let q = question("www.example.com", RType::A);
    assert_eq!(
        agrees(&answer_to(&q).encode().unwrap(), &q),
        Some(Rcode::NOERROR)
    );
    // No authority, no OPT; or an SOA at the zone; AAAA.
    let mut bare = answer_to(&q);
    bare.authority.clear();
    bare.edns = None;
    assert_eq!(agrees(&bare.encode().unwrap(), &q), Some(Rcode::NOERROR));
    let q6 = question("www.example.com", RType::AAAA);
    let mut six = answer_to(&q6);
    six.answers = vec![Record::new(
        n("www.example.com"),
        60,
        RData::Aaaa(Ipv6Addr::LOCALHOST),
    )];
    six.authority = vec![soa("example.com")];
    assert_eq!(agrees(&six.encode().unwrap(), &q6), Some(Rcode::NOERROR));
}

#[test]
fn glue_of_the_zones_ns_is_simple() {
    let q = question("www.example.com", RType::A);
    let mut m = answer_to(&q);
    m.authority.push(ns("example.com", "NS2.example.com"));
    m.additional = vec![
        a("ns1.example.com", 53),
        Record::new(n("ns2.EXAMPLE.com"), 60, RData::Aaaa(Ipv6Addr::LOCALHOST)),
    ];
    assert_eq!(agrees(&m.encode().unwrap(), &q), Some(Rcode::NOERROR));
}

/// nsd's answer to the benchmark's query, as it came off the wire: the A record, the zone's NS,
/// the NS target's address and an OPT record.
#[test]
fn nsds_answer_is_simple() {
    let wire = include_bytes!("../../../fuzz/seeds/simple_answer/nsd_glue.bin");
    let q = question("m-1.bench.test", RType::A);
    assert_eq!(check(wire, 0x1234, Opcode::QUERY, &q), Some(Rcode::NOERROR));
}

#[test]
fn nxdomain_with_the_zones_soa_is_simple() {
    let q = question("nope.example.com", RType::A);
    let mut m = answer_to(&q);
    m.set_rcode(Rcode::NXDOMAIN);
    m.answers.clear();
    m.authority = vec![soa("example.com")];
    assert_eq!(agrees(&m.encode().unwrap(), &q), Some(Rcode::NXDOMAIN));
}

#[test]
fn case_and_compression_do_not_matter() {
    let q = question("www.example.com", RType::A);
    let mut m = answer_to(&q);
    m.questions = vec![question("WwW.ExAmple.COM", RType::A)];
    m.answers = vec![a("www.EXAMPLE.com", 1), a("WWW.example.com", 2)];
    let wire = m.encode().unwrap();
    // The codec compresses the owners into pointers at the question.
    assert!(wire.len() < 150);
    assert_eq!(agrees(&wire, &q), Some(Rcode::NOERROR));
}

/// Owners written as one pointer into the question's name are taken without reading them, but
/// only at a label boundary: every pointer into the question agrees with the full path.
#[test]
fn owners_pointing_into_the_question() {
    let q = question("www.example.com", RType::A);
    let good = answer_to(&q).encode().unwrap();
    // The answer record's owner is the first pointer after the question (12 + 17 + 4 = 33).
    assert_eq!(&good[33..35], &[0xC0, 12]);
    let mut accepted = Vec::new();
    for target in 0..40u8 {
        let mut w = good.clone();
        w[34] = target;
        if agrees(&w, &q).is_some() {
            accepted.push(target);
        }
    }
    assert_eq!(
        accepted,
        vec![12],
        "only the whole question name is the answer's owner"
    );
    // The NS record's owner (example.com, a pointer to 16) may point at any ancestor.
    let ns_at = 33 + 16;
    assert_eq!(&good[ns_at..ns_at + 2], &[0xC0, 16]);
    let mut accepted = Vec::new();
    for target in 0..40u8 {
        let mut w = good.clone();
        w[ns_at + 1] = target;
        if agrees(&w, &q).is_some() {
            accepted.push(target);
        }
    }
    // The name, example.com, com and the root are its ancestors-or-self; a pointer into the
    // middle of a label is not one (later targets read other names, root ones among them, which
    // the full path agrees on).
    for ancestor in [12, 16, 24, 28] {
        assert!(accepted.contains(&ancestor), "{ancestor}: {accepted:?}");
    }
    for inside in [13, 14, 15, 17, 20, 23, 25, 27] {
        assert!(!accepted.contains(&inside), "{inside}: {accepted:?}");
    }
}

#[test]
fn padding_in_the_opt_record_is_fine() {
    let q = question("www.example.com", RType::A);
    let mut m = answer_to(&q);
    m.edns = Some(Edns {
        options: vec![EdnsOption::Padding(40)],
        ..Edns::default()
    });
    assert_eq!(agrees(&m.encode().unwrap(), &q), Some(Rcode::NOERROR));
}

/// Every way out of the shape goes to the full path, whatever that then decides.
#[test]
fn anything_else_takes_the_full_path() {
    let q = question("www.example.com", RType::A);
    let base = answer_to(&q);
    let mut cases: Vec<(&str, Message)> = Vec::new();
    let mut m = base.clone();
    m.header.id = ID + 1;
    cases.push(("another ID", m));
    let mut m = base.clone();
    m.header.response = false;
    cases.push(("not a response", m));
    let mut m = base.clone();
    m.questions = vec![question("www.example.org", RType::A)];
    cases.push(("another question", m));
    let mut m = base.clone();
    m.questions = vec![question("www.example.com", RType::AAAA)];
    cases.push(("another type asked", m));
    let mut m = base.clone();
    m.questions.clear();
    cases.push(("no question", m));
    let mut m = base.clone();
    m.set_rcode(Rcode::SERVFAIL);
    cases.push(("SERVFAIL", m));
    let mut m = base.clone();
    m.set_rcode(Rcode::BADVERS);
    cases.push(("an extended RCODE", m));
    let mut m = base.clone();
    m.answers = vec![
        Record::new(
            n("www.example.com"),
            300,
            RData::Cname(n("cdn.example.net")),
        ),
        a("cdn.example.net", 1),
    ];
    cases.push(("a CNAME chain", m));
    let mut m = base.clone();
    m.answers.push(a("evil.example.org", 6));
    cases.push(("a record at another name", m));
    let mut m = base.clone();
    m.answers.push(Record::new(
        n("www.example.com"),
        300,
        RData::Txt(vec![b"x".to_vec().into()]),
    ));
    cases.push(("another type in the answer", m));
    let mut m = base.clone();
    m.answers[0].class = Class::CH;
    cases.push(("another class", m));
    let mut m = base.clone();
    m.authority = vec![ns("example.org", "ns1.example.org")];
    cases.push(("NS of another zone", m));
    let mut m = base.clone();
    m.authority = vec![ns("sub.www.example.com", "ns1.example.com")];
    cases.push(("NS below the name", m));
    let mut m = base.clone();
    m.additional.push(a("ns2.example.com", 53));
    cases.push(("glue of no NS here", m));
    let mut m = base.clone();
    m.additional.push(Record::new(
        n("ns1.example.com"),
        60,
        RData::Txt(vec![b"x".to_vec().into()]),
    ));
    cases.push(("other data at the NS target", m));
    let mut m = base.clone();
    m.authority = (0..9)
        .map(|i| ns("example.com", &format!("ns{i}.example.com")))
        .collect();
    cases.push(("more NS than MAX_NS", m));
    for (why, m) in cases {
        let wire = m.encode().unwrap();
        assert_eq!(agrees(&wire, &q), None, "{why}");
    }
    // Another question type than A or AAAA, or class.
    let mx = question("example.com", RType::MX);
    let mut m = answer_to(&mx);
    m.answers.clear();
    assert_eq!(agrees(&m.encode().unwrap(), &mx), None, "MX");
}

#[test]
fn malformed_answers_take_the_full_path() {
    let q = question("www.example.com", RType::A);
    let good = answer_to(&q).encode().unwrap();
    // Trailing octets.
    let mut w = good.clone();
    w.push(0);
    assert_eq!(agrees(&w, &q), None, "trailing data");
    // Cut short anywhere.
    for len in 0..good.len() {
        assert_eq!(agrees(&good[..len], &q), None, "cut at {len}");
    }
    // Every single octet changed to every value: nothing the full path refuses is accepted.
    for i in 0..good.len() {
        for v in [0u8, 1, 3, 4, 5, 0x3f, 0x40, 0x80, 0xc0, 0xc1, 0xff] {
            let mut w = good.clone();
            w[i] = v;
            let _ = agrees(&w, &q);
        }
    }
    // A record with five octets of data, which the parser refuses.
    let answer = good.len() - 11 - 18 - 4;
    assert_eq!(&good[answer - 2..answer], &[0, 4]);
    let mut w = good[..answer].to_vec();
    w[answer - 1] = 5;
    w.extend_from_slice(&[192, 0, 2, 1, 9]);
    w.extend_from_slice(&good[answer + 4..]);
    assert!(Message::parse(&w).is_err());
    assert_eq!(agrees(&w, &q), None, "A with 5 octets");
}

#[test]
fn two_opt_records_take_the_full_path() {
    let q = question("www.example.com", RType::A);
    let mut wire = answer_to(&q).encode().unwrap();
    let opt = wire[wire.len() - 11..].to_vec();
    wire.extend_from_slice(&opt);
    wire[11] += 1; // ARCOUNT
    assert!(Message::parse(&wire).is_err());
    assert_eq!(agrees(&wire, &q), None);
}
