//! Bodies of the fuzz targets in `fuzz/`, kept in the library so that `cargo test`
//! (tests/fuzz_smoke.rs) runs them on stable Rust too. Each function panics exactly when the
//! property it checks is broken; input that merely fails to parse is fine.

use super::message::Message;
use super::query::QueryView;
use super::scan;
use super::scrub::{scrub, Scrubbed};
use super::zone::parse_record_line;

/// `message`: parsing never panics; whatever parses encodes, and the encoding parses back to an
/// equal message (names compare case-insensitively, as everywhere). Scrubbing it
/// ([`super::scrub`]) is idempotent.
pub fn message(data: &[u8]) {
    let Ok(first) = Message::parse(data) else {
        return;
    };
    let encoded = match first.encode() {
        Ok(e) => e,
        // A parsed message can grow on re-encoding only by losing compression; anything else is a
        // bug.
        Err(super::WireError::MessageTooLarge) => return,
        Err(e) => panic!("parsed message does not encode: {e}\n{first:?}"),
    };
    let second = match Message::parse(&encoded) {
        Ok(m) => m,
        Err(e) => panic!("re-encoded message does not parse: {e}\n{first:?}\n{encoded:02x?}"),
    };
    assert_eq!(first, second, "message changed across encode/parse");
    respond(&encoded, &first);
    // Encoding is deterministic, so a second round gives the very same octets.
    assert_eq!(
        second.encode().ok(),
        Some(encoded),
        "encoding is not stable"
    );
    // Scrubbing it as an upstream answer never panics, leaves a refused answer as it was, and has
    // nothing left to do on a scrubbed one.
    if let Some(q) = first.question() {
        let mut once = first.clone();
        match scrub(&mut once, q) {
            Ok(_) => {
                let mut twice = once.clone();
                assert_eq!(scrub(&mut twice, q), Ok(Scrubbed::default()), "{once:?}");
                assert_eq!(twice, once, "scrubbing twice changed the answer");
            }
            Err(_) => assert_eq!(once, first, "a refused answer was changed"),
        }
    }
}

/// Part of `message`: the response writer ([`super::response`]) takes `encoded` (the codec's
/// form of `m`, OPT last) as an answer and writes, within any limit, a message that parses, fits
/// the limit and asks the same question; a DO=0 client's copy has no unasked DNSSEC records left.
fn respond(encoded: &[u8], m: &Message) {
    use super::response::{self, Client, Source, Ttls};
    if let Some(qtype) = m.question().map(|q| q.qtype) {
        if response::has_unasked_dnssec(encoded, qtype) {
            let stripped = response::without_unasked_dnssec(encoded);
            if let Ok(s) = stripped {
                assert!(
                    !response::has_unasked_dnssec(&s, qtype),
                    "stripping left some"
                );
            }
        }
    }
    let mut options = Vec::new();
    let Some(src) = Source::from_message(encoded, &mut options) else {
        assert!(
            m.questions.len() > 1,
            "the codec's form of a message must be a source"
        );
        return;
    };
    let qname = m.questions.first().map_or(&[][..], |q| q.name.as_wire());
    for (limit, edns) in [
        (12, None),
        (512, None),
        (512, Some(true)),
        (65535, Some(false)),
    ] {
        let client = Client {
            id: 1,
            recursion_available: true,
            qname,
            recursion_desired: true,
            checking_disabled: false,
            wants_ad: true,
            edns,
            payload: 1232,
        };
        let mut out = Vec::new();
        if !response::write(&src, &client, Ttls::Less(1), &[], limit, &mut out) {
            continue;
        }
        assert!(
            out.len() <= limit,
            "wrote {} octets for a limit of {limit}",
            out.len()
        );
        let back = Message::parse(&out)
            .unwrap_or_else(|e| panic!("written response does not parse: {e}\n{out:02x?}"));
        assert_eq!(back.questions, m.questions, "question changed");
        assert_eq!(
            back.edns.is_some(),
            edns.is_some(),
            "OPT record for the client"
        );
    }
}

/// `query_view`: the fast-path reader and the record scanner never panic, and when the fast path
/// accepts a query, the full parser either fails or agrees on the question.
pub fn query_view(data: &[u8]) {
    if let Ok(spans) = scan::records(data) {
        for s in &spans {
            assert!(s.rdata.end <= data.len() && s.ttl_offset + 4 <= data.len());
            let ttl = &data[s.ttl_offset..s.ttl_offset + 4];
            assert_eq!(u32::from_be_bytes([ttl[0], ttl[1], ttl[2], ttl[3]]), s.ttl);
        }
        if let Ok(m) = Message::parse(data) {
            let opt = usize::from(m.edns.is_some());
            assert_eq!(
                spans.len(),
                m.answers.len() + m.authority.len() + m.additional.len() + opt
            );
        }
    }
    let _ = scan::questions_end(data);
    let Ok(view) = QueryView::parse(data) else {
        return;
    };
    assert!(view.question_end <= data.len());
    if let Ok(m) = Message::parse(data) {
        let q = m
            .question()
            .expect("QueryView accepted a message without a question");
        assert_eq!(q.name.as_wire(), view.qname, "qname differs");
        assert_eq!(q.qtype, view.qtype, "qtype differs");
        assert_eq!(q.qclass, view.qclass, "qclass differs");
        assert_eq!(m.header, view.header);
        match (&m.edns, &view.edns) {
            (None, None) => {}
            (Some(e), Some(v)) => {
                assert_eq!(e.udp_payload, v.udp_payload);
                assert_eq!(e.version, v.version);
                assert_eq!(e.dnssec_ok, v.dnssec_ok);
                assert_eq!(!e.options.is_empty(), v.has_options);
            }
            (a, b) => panic!("EDNS disagrees: {a:?} vs {b:?}"),
        }
    }
}

/// `simple_answer`: the check of an answer's simple shape ([`super::simple`]) never panics, and
/// what it accepts as the answer to the question the bytes carry (with their own ID and opcode),
/// the full path accepts too: it parses, asks that question, has the same RCODE, and scrubbing
/// leaves it as it is.
pub fn simple_answer(data: &[u8]) {
    use super::header::{Header, HEADER_LEN};
    use super::message::Question;
    use super::name::Name;
    use super::reader::Reader;
    use super::types::{Class, RType};

    let asked = || -> Option<(Header, Question)> {
        let header = Header::parse(data).ok()?;
        let mut r = Reader::new(data);
        r.take(HEADER_LEN).ok()?;
        let name = Name::read(&mut r).ok()?;
        let qtype = RType(r.u16().ok()?);
        let qclass = Class(r.u16().ok()?);
        Some((
            header,
            Question {
                name,
                qtype,
                qclass,
            },
        ))
    };
    let Some((header, q)) = asked() else {
        let q = Question::new(Name::root(), RType::A);
        assert!(super::simple::check(data, 0, super::types::Opcode::QUERY, &q).is_none());
        return;
    };
    let Some(rcode) = super::simple::check(data, header.id, header.opcode, &q) else {
        return;
    };
    let m = Message::parse(data)
        .unwrap_or_else(|e| panic!("simple accepted what does not parse: {e}\n{data:02x?}"));
    assert!(m.header.response, "not a response");
    assert_eq!(m.questions, vec![q.clone()], "question");
    assert_eq!(m.rcode(), rcode, "rcode");
    let mut scrubbed = m.clone();
    assert_eq!(
        scrub(&mut scrubbed, &q),
        Ok(Scrubbed::default()),
        "scrubbing would change a simple answer: {m:?}"
    );
    assert_eq!(scrubbed, m);
}

/// `zone_line`: the zone-line parser never panics, and a record it accepts prints as text that
/// parses back to the same record.
pub fn zone_line(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rec) = parse_record_line(line, 3600) else {
        return;
    };
    let shown = rec.to_string();
    match parse_record_line(&shown, 0) {
        Ok(back) => {
            assert_eq!(rec, back, "{line:?} printed as {shown:?}");
            // Same case too: the text form must not lose it.
            assert_eq!(rec.name.as_wire(), back.name.as_wire());
        }
        Err(e) => panic!("{line:?} printed as {shown:?}, which does not parse: {e}"),
    }
}
