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
