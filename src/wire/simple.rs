//! Simple answers, checked on the wire: the common shape of an upstream's answer that the full
//! parse and [`super::scrub`] would accept and leave exactly as it is.
//!
//! ```text
//!   upstream bytes --simple::check--> Some(rcode): checked; scrubbing would change nothing
//!                                 \-> None: anything else; the caller parses (Message::parse,
//!                                     the question check, scrub) as before
//! ```
//!
//! Most answers a forwarder relays are the data asked for and nothing else: the question echoed,
//! A or AAAA records at the question name, perhaps the zone's SOA or NS in the authority section,
//! an OPT record. Parsing such an answer into a [`super::Message`] (a heap allocation per name and
//! record), scrubbing it and finding that nothing goes took more work than anything else on a
//! cache miss. This module decides on the bytes, with nothing allocated, that an answer is of that
//! shape, applying the rules of the parser and of scrubbing that the shape touches:
//!
//! - the header: QR set, the ID and opcode of the query, one question, RCODE NOERROR or NXDOMAIN
//!   with no extended RCODE bits (any other answer loses its records in scrubbing);
//! - the question: the query's name (ASCII case ignored, RFC 4343), type and class, its name not
//!   compressed;
//! - answer section: only records at the question name, of its type and class, the type being A or
//!   AAAA with RDATA of 4 or 16 octets (no CNAME, DNAME or RRSIG: no chain to walk, no signature
//!   to match);
//! - authority section: only SOA and NS records of the question's class whose owner is the
//!   question name or an ancestor of it (scrubbing keeps exactly those), their RDATA read as the
//!   parser reads it (names, compressed or not, with its pointer rules; SOA's five numbers), and
//!   nothing after it;
//! - additional section: A and AAAA records (of the question's class, RDATA of 4 or 16 octets)
//!   owned by the target of one of those NS records, which scrubbing keeps as their glue (at most
//!   [`MAX_NS`] NS records), and at most one OPT record, owned by the root, whose options frame as
//!   the parser requires; nothing else;
//! - the records walk to the end of the message and nothing trails them.
//!
//! Anything else is not an error here: it is left to the full path, which decides as before. So
//! this is a shortcut that must never accept what the full path would reject or change; the tests
//! check both on the same messages.
//!
//! Limitations: CNAME chains, DNSSEC records, MX/SRV targets' addresses and other record types take
//! the full path.

use std::ops::Range;

use super::edns;
use super::header::{Header, HEADER_LEN};
use super::message::Question;
use super::name::{read_equals, wire_is_subdomain, NameBuf};
use super::reader::Reader;
use super::scan::{Records, Section};
use super::types::{Class, Opcode, RType, Rcode};

/// Most NS records in the authority section of a simple answer (a zone has a handful; more go
/// the full path).
const MAX_NS: usize = 8;

/// Checks that `raw` answers the query with ID `id`, opcode `opcode` and question `question`, and
/// is of the simple shape (see the module docs). Returns its response code, or `None` when the
/// full path must decide (a mismatch, a malformed message, or simply another shape).
pub fn check(raw: &[u8], id: u16, opcode: Opcode, question: &Question) -> Option<Rcode> {
    let header = Header::parse(raw).ok()?;
    if !header.response || header.id != id || header.opcode != opcode || header.qdcount != 1 {
        return None;
    }
    if !matches!(header.rcode_low, 0 | 3) {
        return None;
    }
    let qtype = question.qtype;
    if question.qclass != Class::IN || !matches!(qtype, RType::A | RType::AAAA) {
        return None;
    }
    // The question, uncompressed, as the query asked it.
    let qname = question.name.as_wire();
    let echoed = raw.get(HEADER_LEN..HEADER_LEN + qname.len() + 4)?;
    let (name, rest) = echoed.split_at(qname.len());
    if !name.eq_ignore_ascii_case(qname)
        || rest[..2] != qtype.0.to_be_bytes()
        || rest[2..] != question.qclass.0.to_be_bytes()
    {
        return None;
    }
    let mut opt_seen = false;
    // The targets of the authority section's NS records, for their glue.
    let mut targets: [Option<NameBuf>; MAX_NS] = Default::default();
    let mut ns_count = 0;
    for span in Records::new(raw).ok()? {
        let span = span.ok()?;
        let mut owner_at = Reader::new(raw);
        owner_at.seek(span.start).ok()?;
        // The owner is read (as the parser would) only where the section needs it, and compared
        // in place where it must equal a known name.
        let owner_is = |name: &[u8]| read_equals(&mut owner_at.clone(), name).ok();
        let owner = || read_name(&mut owner_at.clone());
        let in_question = points_into_question(raw, span.start, qname);
        let rdata = raw.get(span.rdata.clone())?;
        let fits = match (span.section, span.rtype) {
            (Section::Answer, t) if t == qtype => {
                span.class == question.qclass
                    && rdata.len() == if t == RType::A { 4 } else { 16 }
                    && match in_question {
                        Some(k) => k == 0,
                        None => owner_is(qname)?,
                    }
            }
            (Section::Authority, RType::NS | RType::SOA) => {
                // An owner that points into the question's name is that name or an ancestor.
                let fits = span.class == question.qclass
                    && (in_question.is_some() || wire_is_subdomain(qname, owner()?.as_wire()));
                match names_then(raw, &span.rdata, span.rtype) {
                    Some(target) if fits && span.rtype == RType::NS => {
                        let slot = targets.get_mut(ns_count)?;
                        *slot = Some(target);
                        ns_count += 1;
                        true
                    }
                    Some(_) => fits,
                    None => false,
                }
            }
            (Section::Additional, RType::A | RType::AAAA) => {
                // Glue: an address of a kept NS record's target.
                let len = if span.rtype == RType::A { 4 } else { 16 };
                span.class == question.qclass && rdata.len() == len && {
                    let owner = owner()?;
                    targets[..ns_count]
                        .iter()
                        .flatten()
                        .any(|t| t.as_wire().eq_ignore_ascii_case(owner.as_wire()))
                }
            }
            (Section::Additional, RType::OPT) if !opt_seen => {
                opt_seen = true;
                // The OPT record's TTL holds the extended RCODE in its top octet.
                span.ttl >> 24 == 0 && owner_is(&[0])? && options_frame(raw, &span.rdata)
            }
            _ => false,
        };
        if !fits {
            return None;
        }
    }
    Some(Rcode(u16::from(header.rcode_low)))
}

/// For an owner name that is a single compression pointer into the question's name (how servers
/// write nearly every owner), where in that name it points: the owner is `qname[k..]`. That is
/// what the parser would read there (a pointer backwards, past the header, to a label of a name
/// already checked), so the owner needs no reading. `None` for any other owner.
fn points_into_question(raw: &[u8], start: usize, qname: &[u8]) -> Option<usize> {
    let &[hi, lo] = raw.get(start..start + 2)? else {
        return None;
    };
    if hi & 0xC0 != 0xC0 {
        return None;
    }
    let k = ((usize::from(hi & 0x3F) << 8) | usize::from(lo)).checked_sub(HEADER_LEN)?;
    // On one of the name's label boundaries (its root label included).
    let mut pos = 0;
    while pos < k {
        pos += 1 + usize::from(*qname.get(pos)?);
    }
    (pos == k && k < qname.len()).then_some(k)
}

/// NS or SOA RDATA as the parser reads it (a sub-reader over the RDATA, names following pointers
/// anywhere before): its name(s), then for SOA five 32-bit numbers, filling the RDATA exactly.
/// Returns the first name (an NS record's target).
fn names_then(raw: &[u8], rdata: &Range<usize>, rtype: RType) -> Option<NameBuf> {
    let mut r = Reader::new(raw);
    r.seek(rdata.start).ok()?;
    let mut rd = r.sub(rdata.len()).ok()?;
    let first = read_name(&mut rd)?;
    if rtype == RType::SOA {
        read_name(&mut rd)?;
        rd.take(20).ok()?;
    }
    rd.is_empty().then_some(first)
}

/// A name read as the parser reads it, onto the stack.
fn read_name(r: &mut Reader<'_>) -> Option<NameBuf> {
    let mut name = NameBuf::new();
    name.read_from(r).ok()?;
    Some(name)
}

/// Whether an OPT record's options frame as the parser requires.
fn options_frame(raw: &[u8], rdata: &Range<usize>) -> bool {
    raw.get(rdata.clone())
        .is_some_and(|data| edns::check_options(data).is_ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests;
