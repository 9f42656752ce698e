//! The blocked answer, and finding a blocked name in an upstream answer's CNAME chain.
//!
//! ```text
//!   blocked query --> Source { NXDOMAIN | A 0.0.0.0 | AAAA :: | NODATA, EDE 15 "blocked: ..." }
//!                 --> wire::response::write (the one response writer) --> client
//!   answer bytes --> walk the answer section --> each CNAME's target --> Index::blocking
//! ```
//!
//! Both paths write through [`response::write`], the writer every other answer goes through, so a
//! blocked answer keeps the response contract (ID, the client's spelling of the name, RD and CD
//! echoed, RA, the OPT record only for an EDNS client). The fast path writes it straight into the
//! server's buffer without allocating (the Extended DNS Error's text is formatted on the stack);
//! the slow path writes the same bytes into an [`Answer`].
//!
//! The Extended DNS Error is 15, Blocked (RFC 8914 section 4.16), its text the rule's name, list
//! and line, e.g. `blocked: ads.example (list /etc/dnsveil/ads.txt, line 12)`, or for a CNAME
//! target `blocked: CNAME target tracker.example (list ...)`.

use crate::handler::{Answer, Origin, Verdict};
use crate::wire::edns::{code, ede};
use crate::wire::response::{self, Client, Source, TtlOffsets, Ttls};
use crate::wire::scan::{self, Section};
use crate::wire::{Class, Name, RType, Rcode, Reader};

use super::index::{Hit, Index};

/// How a blocked name is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnswerMode {
    /// NXDOMAIN: the name does not exist.
    #[default]
    NxDomain,
    /// The unspecified address: A 0.0.0.0, AAAA ::, NODATA for other types.
    Null,
}

/// Longest Extended DNS Error text written (a long URL as the list's name is cut).
const MAX_TEXT: usize = 300;

/// What a blocked response needs to know about its query.
pub(super) struct Query<'a> {
    pub id: u16,
    /// The question name as the client spelled it (wire form).
    pub qname: &'a [u8],
    pub qtype: RType,
    pub qclass: Class,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub wants_ad: bool,
    /// `Some(DO)` for an EDNS client.
    pub edns: Option<bool>,
}

/// Why the answer is blocked: the rule, and the CNAME target it matched, if any.
pub(super) struct Why<'a> {
    pub hit: Hit<'a>,
    pub cname: Option<&'a [u8]>,
}

/// Writes the blocked response to `q` into `out` (appended) within `limit` octets; false if it
/// cannot be written (only if not even a truncated form fits).
pub(super) fn write_blocked(
    q: &Query<'_>,
    why: &Why<'_>,
    mode: AnswerMode,
    ttl: u32,
    payload: u16,
    limit: usize,
    out: &mut Vec<u8>,
) -> bool {
    // EDE option: code, length, info-code, text. The text is copied in octet by octet (the
    // formatting machinery would cost more than the rest of the answer).
    let mut option = [0u8; 6 + MAX_TEXT];
    // A client without EDNS gets no OPT record, so no text to write.
    let text_len = if q.edns.is_none() {
        0
    } else {
        let mut text = Text {
            buf: &mut option[6..],
            len: 0,
        };
        text.put(b"blocked: ");
        if let Some(target) = why.cname {
            text.put(b"CNAME target ");
            text.name(target);
        } else {
            text.name(why.hit.name);
        }
        text.put(b" (list ");
        text.put(why.hit.list.as_bytes());
        text.put(b", line ");
        text.number(why.hit.line);
        text.put(b")");
        text.len
    };
    option[..2].copy_from_slice(&code::EXTENDED_ERROR.to_be_bytes());
    option[2..4].copy_from_slice(&((2 + text_len) as u16).to_be_bytes());
    option[4..6].copy_from_slice(&ede::BLOCKED.to_be_bytes());
    let options = if q.edns.is_some() {
        &option[..6 + text_len]
    } else {
        &[][..]
    };

    // At most one record: owner a pointer to the question name (offset 12), type, class, TTL,
    // RDLENGTH, and an address of at most 16 octets.
    let mut record = [0u8; 12 + 16];
    record[..2].copy_from_slice(&[0xC0, 12]);
    record[4..6].copy_from_slice(&Class::IN.0.to_be_bytes());
    record[6..10].copy_from_slice(&ttl.to_be_bytes());
    let (rcode, rdata): (Rcode, &[u8]) = match (mode, q.qtype) {
        (AnswerMode::NxDomain, _) => (Rcode::NXDOMAIN, &[]),
        (AnswerMode::Null, RType::A) => (Rcode::NOERROR, &[0; 4]),
        (AnswerMode::Null, RType::AAAA) => (Rcode::NOERROR, &[0; 16]),
        (AnswerMode::Null, _) => (Rcode::NOERROR, &[]),
    };
    let answers = u16::from(!rdata.is_empty());
    record[2..4].copy_from_slice(&q.qtype.0.to_be_bytes());
    record[10..12].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    record[12..12 + rdata.len()].copy_from_slice(rdata);
    let records = if answers == 1 {
        &record[..12 + rdata.len()]
    } else {
        &[][..]
    };

    let mut type_and_class = [0u8; 4];
    type_and_class[..2].copy_from_slice(&q.qtype.0.to_be_bytes());
    type_and_class[2..].copy_from_slice(&q.qclass.0.to_be_bytes());
    let src = Source {
        flags: [0x80, rcode.0 as u8 & 0x0F],
        counts: [answers, 0, 0],
        qname: q.qname,
        type_and_class: Some(type_and_class),
        records,
        options,
        ttl_offsets: TtlOffsets::None,
        ad_allowed: false,
        ext_rcode: 0,
    };
    let client = Client {
        id: q.id,
        recursion_available: true,
        qname: q.qname,
        recursion_desired: q.recursion_desired,
        checking_disabled: q.checking_disabled,
        wants_ad: q.wants_ad,
        edns: q.edns,
        payload,
    };
    response::write(&src, &client, Ttls::Less(0), &[], limit, out)
}

/// The blocked response as an [`Answer`] (slow path). It always carries an OPT record, so that
/// the Extended DNS Error reaches the server's writer, which keeps it for EDNS clients only.
pub(super) fn blocked_answer(
    q: &Query<'_>,
    why: &Why<'_>,
    mode: AnswerMode,
    ttl: u32,
    payload: u16,
) -> Option<Answer> {
    let with_opt = Query {
        edns: Some(q.edns.unwrap_or(false)),
        ..*q
    };
    let mut out = Vec::with_capacity(128);
    write_blocked(
        &with_opt,
        why,
        mode,
        ttl,
        payload,
        usize::from(u16::MAX),
        &mut out,
    )
    .then(|| Answer::checked(out, Origin::Local, Verdict::Unchecked))
}

/// The first CNAME target in the answer section of the response `msg` that `index` blocks, with
/// the rule (CNAME cloaking: a tracker behind a first-party name). None when there is none, or
/// when `msg` does not walk. Costs one walk of the answer section when it holds no CNAME.
pub(super) fn cloaked<'i>(index: &'i Index, msg: &[u8]) -> Option<(Hit<'i>, Name)> {
    let walk = scan::Records::new(msg).ok()?;
    for span in walk {
        let span = span.ok()?;
        if span.section != Section::Answer {
            break;
        }
        if span.rtype != RType::CNAME {
            continue;
        }
        let mut r = Reader::new(msg);
        r.take(span.rdata.start).ok()?;
        let target = Name::read(&mut r).ok()?;
        if let Some(hit) = index.blocking(target.as_wire()) {
            return Some((hit, target));
        }
    }
    None
}

/// A bounded text buffer: what does not fit is cut.
struct Text<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Text<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// A wire-form name as dotted text; octets outside printable ASCII (possible only in a CNAME
    /// target from upstream) are shown as `?`, so the text stays UTF-8.
    fn name(&mut self, wire: &[u8]) {
        let mut pos = 0;
        while let Some(&len) = wire.get(pos) {
            let Some(label) = wire.get(pos + 1..pos + 1 + usize::from(len)) else {
                break;
            };
            if len == 0 {
                break;
            }
            if pos > 0 {
                self.put(b".");
            }
            for &b in label {
                self.put(&[if b.is_ascii_graphic() { b } else { b'?' }]);
            }
            pos += 1 + usize::from(len);
        }
        if pos == 0 {
            self.put(b".");
        }
    }

    fn number(&mut self, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}
