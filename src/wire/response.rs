//! The response writer: every answer a client gets is written here, once, from stored or received
//! bytes.
//!
//! ```text
//!   Source (flags, counts, records after the question, EDNS options, TTL fields)
//!     + Client (ID, question spelling, RD, CD, AD wish, EDNS: DO and our payload)
//!     + limit --write--> header | client's question | records (cut by `fit`) | OPT
//! ```
//!
//! A [`Source`] is a response without its ID, question and OPT record: what the cache stores of an
//! answer, and what [`Source::from_message`] finds in an upstream's. The records are copied as they
//! are: the client's name has the same length as the stored one (it differs in case at most, RFC
//! 4343), so every compression pointer into the question, and every TTL offset, stays valid.
//!
//! The response contract, for every path:
//! - our ID is the client's; QR=1, the opcode as stored, AA=0 (we relay, RFC 1035 section 4.1.1),
//!   TC as [`fit`](super::fit) decides, RD and CD echoed (RFC 4035 section 3.2.2), RA as we offer
//!   it to the client, the RCODE as stored (SERVFAIL for an extended one to a client without
//!   EDNS), AD as the source allows and only for a client that set AD or DO (RFC 6840 section
//!   5.8);
//! - the question as the client spelled it (0x20 clients);
//! - TTLs patched as [`Ttls`] says: counted down, or all set to a stale answer's TTL;
//! - an OPT record only for a client that sent one: our payload size, version 0, DO echoed, and
//!   the source's options (Extended DNS Errors), written by [`opt_head`].

use super::edns::{opt_head, DO_BIT, OPT_FIXED_LEN};
use super::fit::{Fit, Layout};
use super::header::HEADER_LEN;
use super::scan::{self, Section};
use super::types::RType;

/// A response to write, without ID, question and OPT record.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// Header octets 2 and 3: flags and RCODE.
    pub flags: [u8; 2],
    /// ANCOUNT, NSCOUNT and ARCOUNT (without the OPT record) of `records`.
    pub counts: [u16; 3],
    /// The question's name as stored (its length must equal the client's).
    pub qname: &'a [u8],
    /// The question's TYPE and CLASS; None for a response without a question (an error to a
    /// query without one), whose `qname` is empty.
    pub type_and_class: Option<[u8; 4]>,
    /// The records after the question, OPT removed, as encoded in a message whose question was
    /// `qname` at offset 12.
    pub records: &'a [u8],
    /// EDNS option octets (code, length, data) to send to EDNS clients.
    pub options: &'a [u8],
    /// Where the TTL fields are, as offsets from the start of the message.
    pub ttl_offsets: TtlOffsets<'a>,
    /// Whether AD may be shown (to a client that asks).
    pub ad_allowed: bool,
    /// The upper eight bits of the RCODE (RFC 6891 section 6.1.3), from the OPT record.
    pub ext_rcode: u8,
}

/// Where a source's TTL fields are.
#[derive(Clone, Copy, Debug)]
pub enum TtlOffsets<'a> {
    /// None to patch.
    None,
    /// Little-endian u16 offsets from the start of the message, two octets each.
    Packed(&'a [u8]),
}

/// How a written answer's TTLs are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttls {
    /// As stored, less this many seconds.
    Less(u32),
    /// Every TTL set to this value (a stale answer, RFC 8767 section 4).
    All(u32),
}

/// The client-specific parts of a response.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    pub id: u16,
    /// RA: whether we offer this client recursion (all but those refused by the allow-list).
    pub recursion_available: bool,
    /// The question name exactly as the client sent it (uncompressed wire form).
    pub qname: &'a [u8],
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// True when the query had AD or DO set: only then may the response carry AD (RFC 6840
    /// section 5.8).
    pub wants_ad: bool,
    /// `Some(DO)` when the client sent EDNS: the response then gets our OPT record.
    pub edns: Option<bool>,
    /// The UDP payload size our OPT record advertises.
    pub payload: u16,
}

impl<'a> Source<'a> {
    /// The source of a complete response `msg` (a checked one: this only walks it). Its OPT
    /// record, if any, must be its last record; its Extended DNS Error options are kept, others
    /// dropped. None if the message does not walk, has more than one question or an OPT
    /// elsewhere.
    /// `options` receives the kept option octets (the returned source borrows them).
    pub fn from_message(msg: &'a [u8], options: &'a mut Vec<u8>) -> Option<Source<'a>> {
        let header = super::Header::parse(msg).ok()?;
        if header.qdcount > 1 {
            return None;
        }
        let question_end = scan::questions_end(msg).ok()?;
        let qname_end = if header.qdcount == 1 {
            question_end - 4
        } else {
            question_end
        };
        // One walk (no allocation): the last record may be the OPT record, no other may be.
        let mut last = None;
        let mut opts = 0;
        for span in scan::Records::new(msg).ok()? {
            let span = span.ok()?;
            opts += usize::from(span.rtype == RType::OPT);
            last = Some(span);
        }
        let mut records_end = msg.len();
        let mut arcount = header.arcount;
        let mut ext_rcode = 0;
        options.clear();
        if let Some(opt) =
            last.filter(|s| s.rtype == RType::OPT && s.section == Section::Additional)
        {
            records_end = opt.start;
            arcount -= 1;
            ext_rcode = (opt.ttl >> 24) as u8;
            opts -= 1;
            super::edns::extended_error_options(&msg[opt.rdata.clone()], options);
        }
        if opts > 0 {
            return None;
        }
        Some(Source {
            flags: [msg[2], msg[3]],
            counts: [header.ancount, header.nscount, arcount],
            qname: &msg[HEADER_LEN..qname_end],
            type_and_class: msg[qname_end..question_end].try_into().ok(),
            records: &msg[question_end..records_end],
            options,
            ttl_offsets: TtlOffsets::None,
            ad_allowed: msg[3] & 0x20 != 0,
            ext_rcode,
        })
    }

    /// Octets of the question as written.
    fn question_len(&self) -> usize {
        self.type_and_class.map_or(0, |_| self.qname.len() + 4)
    }

    /// The [`Layout`] of this source written with `opt` octets of OPT record; None if the records
    /// do not walk (never for a source built from checked bytes: the check only keeps a damaged
    /// one from reading past its end).
    fn layout(&self, opt: usize) -> Option<Layout> {
        let [ancount, nscount, arcount] = self.counts;
        let records = self.records;
        let authority_at = walk(records, usize::from(ancount), |_| true)?;
        let additional_at =
            authority_at + walk(&records[authority_at..], usize::from(nscount), |_| true)?;
        Some(Layout {
            head: HEADER_LEN + self.question_len(),
            answer: authority_at,
            authority: additional_at - authority_at,
            additional: records.len() - additional_at,
            opt,
            ancount,
            nscount,
            arcount,
            authority_ns_only: walk(&records[authority_at..], usize::from(nscount), |t| {
                t == RType::NS
            })
            .is_some(),
        })
    }
}

/// Writes `src` for `client` into `out` (appended), within `limit` octets: cut by
/// [`Layout::fit`] if it must be, TTLs as `ttls` says, `extra_options` after the source's options.
/// Returns false (with `out` unchanged) if not even the truncated form fits or the client's name
/// differs in length from the stored one.
pub fn write(
    src: &Source<'_>,
    client: &Client<'_>,
    ttls: Ttls,
    extra_options: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> bool {
    if client.qname.len() != src.qname.len() {
        return false;
    }
    let options_len = src.options.len() + extra_options.len();
    let opt = if client.edns.is_some() {
        OPT_FIXED_LEN + options_len
    } else {
        0
    };
    let head = HEADER_LEN + src.question_len();
    let (fit, kept, [an, ns, ar]) = if head + src.records.len() + opt <= limit {
        (Fit::Whole, src.records.len(), src.counts)
    } else {
        let Some(layout) = src.layout(opt) else {
            return false;
        };
        let Some(fit) = layout.fit(limit) else {
            return false;
        };
        let (kept, counts) = layout.kept(fit);
        (fit, kept, counts)
    };
    let body = &src.records[..kept];
    let base = out.len();
    out.reserve(head + kept + opt);
    out.extend_from_slice(&client.id.to_be_bytes());
    let mut f0 = 0x80 | (src.flags[0] & 0x78); // QR, opcode as stored (QUERY)
    if fit == Fit::Truncated {
        f0 |= 0x02;
    }
    if client.recursion_desired {
        f0 |= 0x01;
    }
    // RA as offered to the client; Z clear; AD only where allowed and wanted; CD echoed; RCODE
    // as stored.
    let mut f1 = src.flags[1] & 0x0F;
    if client.recursion_available {
        f1 |= 0x80;
    }
    if src.ad_allowed && client.wants_ad {
        f1 |= 0x20;
    }
    if client.checking_disabled {
        f1 |= 0x10;
    }
    if src.ext_rcode != 0 && client.edns.is_none() {
        // An extended RCODE cannot be expressed without an OPT record.
        f1 = (f1 & 0xF0) | 2;
    }
    out.push(f0);
    out.push(f1);
    let extra = u16::from(client.edns.is_some());
    let qd = u16::from(src.type_and_class.is_some());
    for n in [qd, an, ns, ar.saturating_add(extra)] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    if let Some(type_and_class) = src.type_and_class {
        out.extend_from_slice(client.qname);
        out.extend_from_slice(&type_and_class);
    }
    out.extend_from_slice(body);
    // Where the written records end, counted from the start of the message (TTL offsets are).
    let records_end = head + body.len();
    if let TtlOffsets::Packed(offsets) = src.ttl_offsets {
        for pair in offsets.chunks_exact(2) {
            let offset = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
            if offset < head || offset + 4 > records_end {
                continue; // in the records left out
            }
            let at = base + offset;
            let ttl = match ttls {
                Ttls::Less(elapsed) => {
                    u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]])
                        .saturating_sub(elapsed)
                }
                Ttls::All(ttl) => ttl,
            };
            out[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
        }
    }
    if let Some(dnssec_ok) = client.edns {
        let flags = if dnssec_ok { DO_BIT } else { 0 };
        out.extend_from_slice(&opt_head(
            client.payload,
            src.ext_rcode,
            0,
            flags,
            options_len as u16,
        ));
        out.extend_from_slice(src.options);
        out.extend_from_slice(extra_options);
    }
    true
}

/// The record types that go only to a client that set DO, unless it asked for that type (RFC
/// 4035 section 3.2.1; DS and DNSKEY in any section but the answer to a question for them).
fn dnssec_only(rtype: RType) -> bool {
    matches!(
        rtype,
        RType::RRSIG | RType::NSEC | RType::NSEC3 | RType::DS | RType::DNSKEY
    )
}

/// Whether a record of type `rtype` is DNSSEC data that a client without DO did not ask for with
/// `qtype`.
pub fn unasked_dnssec(qtype: RType, rtype: RType) -> bool {
    dnssec_only(rtype) && !dnssec_only(qtype) && qtype != RType::ANY
}

/// Whether the complete response `msg` holds DNSSEC records a client without DO did not ask for
/// with `qtype` ([`unasked_dnssec`]; a walk, no allocation). False for a message that does not
/// walk.
pub fn has_unasked_dnssec(msg: &[u8], qtype: RType) -> bool {
    if dnssec_only(qtype) || qtype == RType::ANY {
        return false;
    }
    let Ok(walk) = scan::Records::new(msg) else {
        return false;
    };
    for span in walk {
        match span {
            Ok(span) if unasked_dnssec(qtype, span.rtype) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// `msg` without the DNSSEC records a client without DO did not ask for with its question's
/// type ([`has_unasked_dnssec`]): parsed, filtered and encoded again (records after a removed one
/// may point into it, so the bytes cannot simply be cut).
pub fn without_unasked_dnssec(msg: &[u8]) -> Result<Vec<u8>, super::WireError> {
    parsed_without_unasked_dnssec(&super::Message::parse(msg)?)
}

/// [`without_unasked_dnssec`] of a message already parsed: only the records kept are copied.
pub fn parsed_without_unasked_dnssec(m: &super::Message) -> Result<Vec<u8>, super::WireError> {
    let qtype = m.question().map_or(RType::ANY, |q| q.qtype);
    let keep = |rs: &[super::Record]| -> Vec<super::Record> {
        rs.iter()
            .filter(|r| r.rtype() == qtype || !dnssec_only(r.rtype()))
            .cloned()
            .collect()
    };
    super::Message {
        header: m.header,
        questions: m.questions.clone(),
        answers: keep(&m.answers),
        authority: keep(&m.authority),
        additional: keep(&m.additional),
        edns: m.edns.clone(),
    }
    .encode()
}

/// Walks the first `count` records of `records` (names skipped, never followed) and returns where
/// they end, or None if they do not walk or `keep` refuses a record's type.
fn walk(records: &[u8], count: usize, keep: impl Fn(RType) -> bool) -> Option<usize> {
    let mut pos = 0;
    for _ in 0..count {
        pos = scan::skip_name(records, pos).ok()?;
        let fixed = records.get(pos..pos + 10)?;
        if !keep(RType(u16::from_be_bytes([fixed[0], fixed[1]]))) {
            return None;
        }
        pos += 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    }
    (pos <= records.len()).then_some(pos)
}
