//! What goes back to the client: sorting incoming packets, fixing up the chain's answers, and the
//! error responses (FORMERR, NOTIMP, REFUSED, BADVERS) the listener sends on its own.
//!
//! Pure functions over wire types, shared by the UDP and TCP listeners; no sockets, no tasks.
//!
//! - A packet shorter than a header, or with QR=1, is dropped (RFC 1035 section 4.1.1; answering a
//!   response invites reflection loops).
//! - A non-QUERY opcode gets NOTIMP. The opcode is checked on the header, before the full parse, so
//!   that an UPDATE or NOTIFY (whose records we may not understand) still gets NOTIMP, not FORMERR.
//! - A message that does not parse gets FORMERR echoing ID, opcode, RD, CD and the question when it
//!   can be read; a message whose header cannot be read is dropped.
//! - QDCOUNT other than 1 gets FORMERR; an EDNS version above 0 gets BADVERS with an OPT record of
//!   version 0 (RFC 6891 section 6.1.3).
//! - Zone transfers (AXFR, IXFR), OPT as a question, and the classes no query can use (0, NONE) get
//!   REFUSED with EDE "Not Supported": a forwarder serves no zones.
//! - Every response from the chain is fixed up per the contract in `handler`: ID, the client's
//!   question (its spelling: case is echoed, RFC 4343), QR=1, RA=1, RD and CD copied (RFC 4035
//!   section 3.2.2), and EDNS normalised: none if the client sent none, otherwise our OPT (our payload
//!   size, version 0, DO echoed) carrying only the handler's Extended DNS Error options (RFC 8914).
//! - UDP responses are limited to the client's EDNS payload size (at least 512, at most ours) or 512
//!   without EDNS (RFC 6891 section 6.2.5); an answer that does not fit loses its additional
//!   records first, then (if its answer section has records) an authority section of NS records
//!   only, and if it still does not fit is sent with TC=1 and only the question and OPT (RFC 2181
//!   section 9), so the client retries over TCP. TCP allows 65535.
//!
//! Limitations: an extended RCODE (above 15) cannot be expressed to a client without EDNS and is sent
//! as SERVFAIL; OPT options other than EDE (cookies, padding) are not echoed.

use crate::handler::{Answer, HandlerResult, Protocol};
use crate::wire::edns::ede;
use crate::wire::response::{self, Client, Source, Ttls};
use crate::wire::{
    Class, Edns, Header, Message, Name, Opcode, Question, RType, Rcode, Reader, HEADER_LEN,
};

/// Largest response over TCP (the 16-bit length prefix, RFC 7766 section 8).
pub(super) const TCP_LIMIT: usize = 65535;
/// Smallest UDP payload every client accepts (RFC 1035 section 4.2.1).
pub(super) const MIN_UDP: usize = 512;

/// What to do with an incoming packet that did not take the fast path.
#[derive(Debug)]
pub(super) enum Prepared {
    /// Say nothing.
    Drop,
    /// Send these bytes (an error response built here).
    Reply(Vec<u8>),
    /// A well-formed query for the chain.
    Query(Message),
}

/// The largest UDP response for a client that advertised `client_payload` (None without EDNS).
pub(super) fn udp_limit(client_payload: Option<u16>, ours: u16) -> usize {
    match client_payload {
        None => MIN_UDP,
        Some(p) => (p as usize).clamp(MIN_UDP, (ours as usize).max(MIN_UDP)),
    }
}

/// The response size limit for `query` arriving over `protocol`.
pub(super) fn limit_for(query: &Message, protocol: Protocol, ours: u16) -> usize {
    match protocol {
        Protocol::Tcp => TCP_LIMIT,
        Protocol::Udp => udp_limit(query.edns.as_ref().map(|e| e.udp_payload), ours),
    }
}

/// Sorts a packet (at least a header long or not) into drop, an immediate error reply, or a query.
pub(super) fn prepare(pkt: &[u8], protocol: Protocol, ours: u16) -> Prepared {
    let Ok(header) = Header::parse(pkt) else {
        return Prepared::Drop;
    };
    if header.response {
        return Prepared::Drop;
    }
    if header.opcode != Opcode::QUERY {
        return reply(reject(pkt, Rcode::NOTIMP, None, protocol, ours));
    }
    let query = match Message::parse(pkt) {
        Ok(q) => q,
        Err(_) => return reply(error_bytes(pkt, Rcode::FORMERR)),
    };
    if query.questions.len() != 1 {
        return reply(encode_error(&query, Rcode::FORMERR, None, protocol, ours));
    }
    if query.edns.as_ref().is_some_and(|e| e.version > 0) {
        return reply(encode_error(&query, Rcode::BADVERS, None, protocol, ours));
    }
    if not_for_a_forwarder(&query.questions[0]) {
        let why = Some((ede::NOT_SUPPORTED, String::new()));
        return reply(encode_error(&query, Rcode::REFUSED, why, protocol, ours));
    }
    Prepared::Query(query)
}

/// Questions refused here rather than forwarded: zone transfers (AXFR, IXFR), which are between
/// authoritative servers and which a stub forwarder has no zones for (unbound refuses them too),
/// OPT, a pseudo-record that exists only in the message carrying it (RFC 6891 section 6.1.1), and
/// the classes no query can use (0 is reserved, NONE belongs to UPDATE, RFC 2136 and RFC 6895).
/// Forwarded, they only earn an upstream's refusal.
fn not_for_a_forwarder(q: &Question) -> bool {
    matches!(q.qtype, RType::AXFR | RType::IXFR | RType::OPT)
        || q.qclass == Class::NONE
        || q.qclass == Class(0)
}

/// REFUSED for a client outside the allow-list (with EDE "Prohibited" when it sent EDNS; RA clear:
/// recursion is not available to this client). Returns None when the header cannot be read or the
/// packet is a response.
pub(super) fn refused(pkt: &[u8], protocol: Protocol, ours: u16) -> Option<Vec<u8>> {
    let header = Header::parse(pkt).ok()?;
    if header.response {
        return None;
    }
    match Message::parse(pkt) {
        Ok(query) => {
            let why = Some((ede::PROHIBITED, String::new()));
            let limit = limit_for(&query, protocol, ours);
            error_response(&query, Rcode::REFUSED, why, false, limit, ours)
        }
        Err(_) => error_bytes(pkt, Rcode::REFUSED),
    }
}

/// The client's response to `query` for the chain's outcome, within `limit`: written once, by
/// [`response::write`], from the answer's bytes (see the module docs for the contract), or an
/// error response. None only if not even a truncated response fits.
pub(super) fn respond(
    query: &Message,
    outcome: &HandlerResult,
    limit: usize,
    ours: u16,
) -> Option<Vec<u8>> {
    match outcome {
        Ok(answer) => write_answer(query, answer, limit, ours).or_else(|| {
            tracing::debug!("answer could not be written; sending SERVFAIL");
            let why = Some((ede::OTHER, "answer could not be encoded".into()));
            error_response(query, Rcode::SERVFAIL, why, true, limit, ours)
        }),
        Err(e) => error_response(query, e.rcode(), e.extended_error(), true, limit, ours),
    }
}

/// Writes `answer` for the client of `query`: DNSSEC records it did not ask for left out when it
/// did not set DO, AD as the answer's verdict allows.
fn write_answer(query: &Message, answer: &Answer, limit: usize, ours: u16) -> Option<Vec<u8>> {
    let question = query.question()?;
    let client = client_of(query, true, ours);
    let stripped;
    let mut wire = answer.wire();
    if client.edns != Some(true)
        && !answer.is_known_plain()
        && response::has_unasked_dnssec(wire, question.qtype)
    {
        stripped = response::without_unasked_dnssec(wire).ok()?;
        wire = &stripped;
    }
    let mut options = Vec::new();
    let normalised;
    let mut src = match Source::from_message(wire, &mut options) {
        Some(src) => src,
        None => {
            // An OPT record that is not the last record: once through the codec, which puts it
            // last.
            normalised = Message::parse(wire).ok()?.encode().ok()?;
            Source::from_message(&normalised, &mut options)?
        }
    };
    src.ad_allowed = answer.verdict().allows_ad(src.ad_allowed);
    let mut out = Vec::new();
    response::write(&src, &client, Ttls::Less(0), &[], limit, &mut out).then_some(out)
}

/// The client-specific parts of the response to `query`.
fn client_of(query: &Message, recursion_available: bool, ours: u16) -> Client<'_> {
    Client {
        id: query.header.id,
        recursion_available,
        qname: query
            .questions
            .first()
            .map_or(&[0][..], |q| q.name.as_wire()),
        recursion_desired: query.header.recursion_desired,
        checking_disabled: query.header.checking_disabled,
        wants_ad: query.header.authentic_data || query.edns.as_ref().is_some_and(|e| e.dnssec_ok),
        edns: query.edns.as_ref().map(|e| e.dnssec_ok),
        payload: ours.max(MIN_UDP as u16),
    }
}

/// An empty response to `query` with this code, RA as given and, for EDNS clients, this Extended
/// DNS Error; written like any answer.
pub(super) fn error_response(
    query: &Message,
    rcode: Rcode,
    ede: Option<(u16, String)>,
    recursion_available: bool,
    limit: usize,
    ours: u16,
) -> Option<Vec<u8>> {
    let mut m = Message {
        header: Header {
            response: true,
            opcode: query.header.opcode,
            ..Header::default()
        },
        // The first question at most (a FORMERR for several echoes one).
        questions: query.questions.iter().take(1).cloned().collect(),
        ..Message::default()
    };
    m.set_rcode(rcode);
    if let Some((info, text)) = ede {
        m.edns
            .get_or_insert_with(Edns::default)
            .add_extended_error(info, text);
    }
    let wire = m.encode().ok()?;
    let mut options = Vec::new();
    let src = Source::from_message(&wire, &mut options)?;
    let mut out = Vec::new();
    let client = client_of(query, recursion_available, ours);
    response::write(&src, &client, Ttls::Less(0), &[], limit, &mut out).then_some(out)
}

/// A header-level error response for a packet that could not (or need not) be parsed: ID, opcode,
/// RD and CD echoed, QR=1, RA=1 (except on REFUSED: recursion is not available to that client), no
/// OPT. The first question is echoed when it can be read and the response stays no larger than the
/// packet (no amplification). None when the header cannot be read.
pub(super) fn error_bytes(pkt: &[u8], rcode: Rcode) -> Option<Vec<u8>> {
    header_reply(pkt, rcode, false)
}

/// The answer to a rate-limited query that "slips" through ([`super::ratelimit`]): NOERROR, TC=1,
/// no records and no OPT, the question echoed as in [`error_bytes`], so never larger than the
/// query. A real client retries over TCP; a spoofed victim receives no more than was sent.
pub(super) fn slip(pkt: &[u8]) -> Option<Vec<u8>> {
    header_reply(pkt, Rcode::NOERROR, true)
}

fn header_reply(pkt: &[u8], rcode: Rcode, truncated: bool) -> Option<Vec<u8>> {
    let h = Header::parse(pkt).ok()?;
    let question = if h.qdcount > 0 {
        read_first_question(pkt)
            .filter(|(name, _, _)| HEADER_LEN + name.wire_len() + 4 <= pkt.len())
    } else {
        None
    };
    let header = Header {
        id: h.id,
        response: true,
        opcode: h.opcode,
        recursion_desired: h.recursion_desired,
        checking_disabled: h.checking_disabled,
        recursion_available: rcode != Rcode::REFUSED,
        truncated,
        rcode_low: rcode.low(),
        qdcount: u16::from(question.is_some()),
        ..Header::default()
    };
    let mut out = Vec::with_capacity(HEADER_LEN + 260);
    out.extend_from_slice(&header.to_bytes());
    if let Some((name, qtype, qclass)) = question {
        out.extend_from_slice(name.as_wire());
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&qclass.to_be_bytes());
    }
    Some(out)
}

fn read_first_question(pkt: &[u8]) -> Option<(Name, u16, u16)> {
    let mut r = Reader::new(pkt);
    r.take(HEADER_LEN).ok()?;
    let name = Name::read(&mut r).ok()?;
    Some((name, r.u16().ok()?, r.u16().ok()?))
}

/// An error response for a packet with a readable header: built from the parsed message when it
/// parses (so EDNS clients get OPT and EDE), else at the header level.
fn reject(
    pkt: &[u8],
    rcode: Rcode,
    ede: Option<(u16, String)>,
    protocol: Protocol,
    ours: u16,
) -> Option<Vec<u8>> {
    match Message::parse(pkt) {
        Ok(query) => encode_error(&query, rcode, ede, protocol, ours),
        Err(_) => error_bytes(pkt, rcode),
    }
}

fn encode_error(
    query: &Message,
    rcode: Rcode,
    ede: Option<(u16, String)>,
    protocol: Protocol,
    ours: u16,
) -> Option<Vec<u8>> {
    let limit = limit_for(query, protocol, ours);
    error_response(query, rcode, ede, true, limit, ours)
}

fn reply(bytes: Option<Vec<u8>>) -> Prepared {
    bytes.map_or(Prepared::Drop, Prepared::Reply)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;
    use crate::handler::{HandlerError, Origin, RefusalReason, Verdict};
    use crate::wire::{EdnsOption, RType, Record};

    const OURS: u16 = 1232;

    fn query(name: &str, edns: Option<Edns>) -> Message {
        let mut q = Message::query(name.parse().unwrap(), RType::A);
        q.header.id = 0xBEEF;
        q.header.checking_disabled = true;
        q.edns = edns;
        q
    }

    fn client_edns(payload: u16, dnssec_ok: bool) -> Edns {
        Edns {
            udp_payload: payload,
            dnssec_ok,
            options: vec![EdnsOption::Cookie {
                client: [7; 8],
                server: Box::new([]),
            }],
            ..Edns::default()
        }
    }

    fn prepared_reply(p: Prepared) -> Message {
        match p {
            Prepared::Reply(bytes) => Message::parse(&bytes).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn limits_follow_the_client_payload() {
        assert_eq!(udp_limit(None, OURS), 512);
        assert_eq!(udp_limit(Some(100), OURS), 512);
        assert_eq!(udp_limit(Some(1000), OURS), 1000);
        assert_eq!(udp_limit(Some(4096), OURS), 1232);
        assert_eq!(udp_limit(Some(4096), 100), 512);
        let q = query("a.test", None);
        assert_eq!(limit_for(&q, Protocol::Tcp, OURS), 65535);
        assert_eq!(limit_for(&q, Protocol::Udp, OURS), 512);
    }

    fn answer(m: &Message) -> HandlerResult {
        Ok(Answer::from_message(m, Origin::Upstream, Verdict::Unchecked).unwrap())
    }

    fn respond_parsed(q: &Message, outcome: &HandlerResult, limit: usize) -> Message {
        Message::parse(&respond(q, outcome, limit, OURS).unwrap()).unwrap()
    }

    #[test]
    fn responses_follow_the_contract() {
        let q = query("WwW.ExAmple.TEST", Some(client_edns(4096, true)));
        let mut resp = Message::query("www.example.test".parse().unwrap(), RType::A);
        resp.header.id = 1;
        resp.header.response = true;
        resp.header.recursion_desired = false;
        resp.header.authoritative = true;
        resp.answers.push(Record::new(
            "www.example.test".parse().unwrap(),
            60,
            crate::wire::RData::A([192, 0, 2, 1].into()),
        ));
        let mut up = Edns {
            udp_payload: 512,
            version: 0,
            ..Edns::default()
        };
        up.options.push(EdnsOption::Padding(10));
        up.add_extended_error(ede::STALE_ANSWER, "stale");
        resp.edns = Some(up);
        resp.set_rcode(Rcode::NXDOMAIN);

        let out = respond_parsed(&q, &answer(&resp), TCP_LIMIT);
        assert_eq!(out.header.id, 0xBEEF);
        assert!(out.header.response && out.header.recursion_available);
        assert!(out.header.recursion_desired && out.header.checking_disabled);
        assert!(!out.header.authoritative, "we relay: AA clear");
        assert_eq!(
            out.questions[0].name.as_wire(),
            q.questions[0].name.as_wire()
        );
        assert_eq!(out.answers.len(), 1);
        assert_eq!(out.rcode(), Rcode::NXDOMAIN);
        let e = out.edns.unwrap();
        assert_eq!((e.udp_payload, e.version, e.dnssec_ok), (1232, 0, true));
        assert_eq!(
            e.options,
            vec![EdnsOption::ExtendedError {
                info_code: ede::STALE_ANSWER,
                extra_text: "stale".into()
            }]
        );
    }

    #[test]
    fn clients_without_edns_get_no_opt_and_no_extended_rcode() {
        let q = query("a.test", None);
        let mut resp = Message::response_to(&q);
        resp.edns = Some(Edns::default());
        resp.set_rcode(Rcode::BADCOOKIE);
        let out = respond_parsed(&q, &answer(&resp), TCP_LIMIT);
        assert!(out.edns.is_none());
        assert_eq!(out.rcode(), Rcode::SERVFAIL, "extended rcode needs EDNS");
        let with = query("a.test", Some(client_edns(1232, false)));
        let out = respond_parsed(&with, &answer(&resp), TCP_LIMIT);
        assert_eq!(out.rcode(), Rcode::BADCOOKIE);
    }

    #[test]
    fn ad_follows_the_verdict_and_the_clients_wish() {
        let q = query("a.test", Some(client_edns(1232, true)));
        let mut resp = Message::response_to(&q);
        resp.header.authentic_data = true;
        let wire = resp.encode().unwrap();
        let ad = |verdict: Verdict, q: &Message| {
            let a = Ok(Answer::checked(wire.clone(), Origin::Upstream, verdict));
            respond_parsed(q, &a, TCP_LIMIT).header.authentic_data
        };
        assert!(
            ad(Verdict::Unchecked, &q),
            "an unchecked answer keeps its upstream's AD"
        );
        assert!(ad(Verdict::Secure, &q));
        assert!(!ad(Verdict::Insecure, &q));
        assert!(!ad(Verdict::Indeterminate, &q));
        assert!(
            !ad(Verdict::Secure, &query("a.test", None)),
            "not asked for"
        );
    }

    #[test]
    fn dnssec_records_go_only_to_clients_that_set_do() {
        use crate::wire::{RData, Rrsig};
        let name: crate::wire::Name = "s.test".parse().unwrap();
        let mut resp = Message::response_to(&query("s.test", None));
        resp.answers.push(Record::new(
            name.clone(),
            60,
            RData::A([192, 0, 2, 9].into()),
        ));
        resp.answers.push(Record::new(
            name.clone(),
            60,
            RData::Rrsig(Rrsig {
                type_covered: RType::A,
                algorithm: 13,
                labels: 2,
                original_ttl: 60,
                expiration: 2,
                inception: 1,
                key_tag: 7,
                signer_name: "test".parse().unwrap(),
                signature: vec![1; 64].into_boxed_slice(),
            }),
        ));
        for (client, kept) in [
            (None, 1),
            (Some(client_edns(1232, false)), 1),
            (Some(client_edns(1232, true)), 2),
        ] {
            let q = query("s.test", client);
            let out = respond_parsed(&q, &answer(&resp), TCP_LIMIT);
            assert_eq!(out.answers.len(), kept, "{:?}", q.edns);
        }
        // A client asking for the RRSIGs themselves gets them.
        let mut rrsig_q = query("s.test", None);
        rrsig_q.questions[0].qtype = RType::RRSIG;
        resp.questions[0].qtype = RType::RRSIG;
        let out = respond_parsed(&rrsig_q, &answer(&resp), TCP_LIMIT);
        assert_eq!(out.answers.len(), 2);
    }

    #[test]
    fn handler_errors_become_rcode_and_ede() {
        let q = query("a.test", Some(client_edns(1232, false)));
        let timed_out = HandlerError::upstream(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
        let out = respond_parsed(&q, &Err(timed_out), 512);
        assert_eq!(out.rcode(), Rcode::SERVFAIL);
        assert_eq!(
            out.edns.unwrap().extended_errors().next(),
            Some((ede::NETWORK_ERROR, "timed out"))
        );
        let plain = respond_parsed(
            &query("a.test", None),
            &Err(HandlerError::Refused(RefusalReason::Policy)),
            512,
        );
        assert_eq!(plain.rcode(), Rcode::REFUSED);
        assert!(plain.edns.is_none());
    }

    #[test]
    fn prepare_sorts_packets() {
        let q = query("a.test", Some(client_edns(1232, false)));
        let wire = q.encode().unwrap();
        assert!(matches!(prepare(&wire, Protocol::Udp, OURS),
            Prepared::Query(m) if m.questions == q.questions && m.edns == q.edns));
        assert!(matches!(
            prepare(&wire[..11], Protocol::Udp, OURS),
            Prepared::Drop
        ));

        let mut response = wire.clone();
        response[2] |= 0x80;
        assert!(matches!(
            prepare(&response, Protocol::Udp, OURS),
            Prepared::Drop
        ));

        let mut notify = q.clone();
        notify.header.opcode = Opcode::NOTIFY;
        let r = prepared_reply(prepare(&notify.encode().unwrap(), Protocol::Udp, OURS));
        assert_eq!(r.rcode(), Rcode::NOTIMP);
        assert_eq!(r.header.opcode, Opcode::NOTIFY);
        assert_eq!(r.header.id, 0xBEEF);

        let mut two = q.clone();
        two.questions.push(two.questions[0].clone());
        let r = prepared_reply(prepare(&two.encode().unwrap(), Protocol::Udp, OURS));
        assert_eq!(r.rcode(), Rcode::FORMERR);

        let mut v1 = q.clone();
        v1.edns.as_mut().unwrap().version = 1;
        let r = prepared_reply(prepare(&v1.encode().unwrap(), Protocol::Udp, OURS));
        assert_eq!(r.rcode(), Rcode::BADVERS);
        let e = r.edns.unwrap();
        assert_eq!((e.version, e.ext_rcode), (0, 1));

        // Zone transfers and the classes no query uses are refused here, not forwarded.
        for (qtype, qclass) in [
            (RType::AXFR, Class::IN),
            (RType::IXFR, Class::IN),
            (RType::OPT, Class::IN),
            (RType::A, Class::NONE),
            (RType::A, Class(0)),
        ] {
            let mut odd = q.clone();
            odd.questions[0].qtype = qtype;
            odd.questions[0].qclass = qclass;
            let r = prepared_reply(prepare(&odd.encode().unwrap(), Protocol::Tcp, OURS));
            assert_eq!(r.rcode(), Rcode::REFUSED, "{qtype} {qclass}");
            assert_eq!(r.questions, odd.questions);
            let ede = r
                .edns
                .unwrap()
                .extended_errors()
                .next()
                .map(|(info, _)| info);
            assert_eq!(ede, Some(ede::NOT_SUPPORTED));
        }
        for qclass in [Class::IN, Class::CH, Class::ANY] {
            let mut fine = q.clone();
            fine.questions[0].qclass = qclass;
            assert!(matches!(
                prepare(&fine.encode().unwrap(), Protocol::Udp, OURS),
                Prepared::Query(_)
            ));
        }
    }

    #[test]
    fn formerr_echoes_what_it_can() {
        let q = query("Mixed.Case.test", None);
        let mut wire = q.encode().unwrap();
        wire.extend_from_slice(b"junk");
        let r = prepared_reply(prepare(&wire, Protocol::Udp, OURS));
        assert_eq!(r.rcode(), Rcode::FORMERR);
        assert_eq!(r.header.id, 0xBEEF);
        assert!(r.header.recursion_desired && r.header.checking_disabled && r.header.response);
        assert_eq!(r.questions[0].name.to_string(), "Mixed.Case.test.");

        // An unreadable question: header only.
        let mut bad = wire[..HEADER_LEN].to_vec();
        bad.extend_from_slice(&[0x40, 1, 2]);
        let r = Message::parse(&error_bytes(&bad, Rcode::FORMERR).unwrap()).unwrap();
        assert!(r.questions.is_empty());
        assert_eq!(r.header.qdcount, 0);
        assert!(error_bytes(&bad[..5], Rcode::FORMERR).is_none());
    }

    #[test]
    fn error_bytes_never_amplify() {
        // A question that is a pointer into the header would expand to more octets than were
        // sent. NSCOUNT and ARCOUNT spell the name "ab." at offset 8; the question points at it.
        // Such a pointer does not read (no name starts in the header), and no question is echoed.
        let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 2, b'a', b'b', 0];
        pkt.extend_from_slice(&[0xC0, 8, 0, 1, 0, 1]);
        assert!(read_first_question(&pkt).is_none());
        let out = error_bytes(&pkt, Rcode::FORMERR).unwrap();
        assert!(out.len() <= pkt.len());
        assert_eq!(Header::parse(&out).unwrap().qdcount, 0);
    }

    #[test]
    fn refused_carries_prohibited_for_edns_clients() {
        let q = query("a.test", Some(client_edns(1232, false)));
        let r =
            Message::parse(&refused(&q.encode().unwrap(), Protocol::Udp, OURS).unwrap()).unwrap();
        assert_eq!(r.rcode(), Rcode::REFUSED);
        assert!(r.edns.unwrap().extended_errors().next().is_some());
        let plain = query("a.test", None).encode().unwrap();
        let r = Message::parse(&refused(&plain, Protocol::Udp, OURS).unwrap()).unwrap();
        assert_eq!(r.rcode(), Rcode::REFUSED);
        assert!(!r.header.recursion_available);
        let mut resp = plain.clone();
        resp[2] |= 0x80;
        assert!(refused(&resp, Protocol::Udp, OURS).is_none());
    }

    #[test]
    fn oversized_answers_truncate_within_the_limit() {
        let q = query("big.test", None);
        let mut resp = Message::response_to(&q);
        for i in 0..100u8 {
            resp.answers.push(Record::new(
                "big.test".parse().unwrap(),
                60,
                crate::wire::RData::A([10, 0, 0, i].into()),
            ));
        }
        let out = respond(&q, &answer(&resp), 512, OURS).unwrap();
        assert!(out.len() <= 512);
        let h = Header::parse(&out).unwrap();
        assert!(h.truncated);
        assert_eq!((h.qdcount, h.ancount), (1, 0));
        let full = respond(&q, &answer(&resp), TCP_LIMIT, OURS).unwrap();
        assert!(!Header::parse(&full).unwrap().truncated);
        assert_eq!(full, resp.encode().unwrap());
    }
}
