//! What may be cached, for how long, and in what form.
//!
//! Works on the encoded response (never on typed record data), so the TTL fields it finds are the
//! ones a hit patches. The rules:
//!
//! - Positive answers (NOERROR with at least one answer record of the question's type): every TTL
//!   is first sanitised (RFC 2181 section 8: a TTL with the top bit set means 0), then clamped to
//!   `min_ttl..=max_ttl`. The entry lives as long as its smallest TTL.
//! - Negative answers (RFC 2308): NXDOMAIN, or NOERROR without an answer of the question's type
//!   (NODATA, possibly after a CNAME chain), need an SOA in the authority section. Its stored TTL
//!   becomes min(SOA TTL, SOA MINIMUM, `negative_max_ttl`) (RFC 2308 sections 3 and 5); that is not
//!   raised by `min_ttl`. A negative answer without an SOA is not cached at all (RFC 2308 section 5:
//!   "SHOULD NOT be cached").
//! - SERVFAIL (a response, or an upstream failure of the chain) is stored as a plain SERVFAIL
//!   carrying the upstream's Extended DNS Error, for `servfail_ttl` seconds, at most 300 (RFC 2308
//!   section 7.1). Its records, if any, are dropped.
//! - Never cached: TC=1, any other RCODE (extended ones included), a lifetime of 0, a question that
//!   does not match the key, a non-IN class, meta query types, an OPT that is not the last record,
//!   responses longer than 65535 - 512 octets (room for the OPT record a hit appends).
//! - Upstream EDNS options on positive and negative answers are not kept; a hit carries our own OPT.
//! - Serve-stale (RFC 8767): positive and negative answers may be answered stale once expired;
//!   a SERVFAIL never is. Data that failed DNSSEC validation must never become stale-eligible
//!   (there is no validator yet; see `stale_ok` where entries are built).
//!
//! The stored header is normalised: ID 0, QR=1, AA=0 (we are not the authority), RA=1, Z=0; AD and CD
//! are kept (AD is shown only to clients that ask, see `Entry::render`).

use thiserror::Error;

use crate::wire::builder::MAX_MESSAGE_LEN;
use crate::wire::scan::{self, Section};
use crate::wire::{edns, response, Class, Header, Opcode, RType, Rcode, WireError, HEADER_LEN};

use super::entry::{self, Entry, Parts};
use super::key::Key;

/// RFC 2308 section 7.1: server failures are cached for at most five minutes.
pub(crate) const MAX_SERVFAIL_TTL: u32 = 300;

/// Longest response stored: room is left for the OPT record a hit appends, so that a stored answer
/// always fits a TCP message whole.
pub(crate) const MAX_STORED_LEN: usize = MAX_MESSAGE_LEN - 512;

/// Longest Extended DNS Error text kept with a cached SERVFAIL.
const MAX_EDE_TEXT: usize = 200;
// The option (code, length, info-code, text) must fit an entry.
const _: () = assert!(4 + 2 + MAX_EDE_TEXT <= entry::MAX_OPTIONS_LEN);

/// The TTL limits from the configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
    pub servfail_ttl: u32,
}

/// Why a response was not stored (for debug logs and tests).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub(crate) enum Uncacheable {
    #[error("response does not parse: {0}")]
    Malformed(#[from] WireError),
    #[error("response too large to store")]
    TooLarge,
    #[error("truncated (TC=1)")]
    Truncated,
    #[error("not a standard query response")]
    NotQuery,
    #[error("question does not match the query")]
    QuestionMismatch,
    #[error("class or type is not cacheable")]
    Question,
    #[error("rcode {0} is not cached")]
    Rcode(Rcode),
    #[error("negative answer without SOA")]
    NegativeWithoutSoa,
    #[error("TTL is zero")]
    ZeroTtl,
    #[error("misplaced OPT record")]
    BadOpt,
    /// An entry for clients without DO holds only what they get: answers rendered from it are
    /// passed on as such, unchecked (`Answer::known_plain`).
    #[error("DNSSEC records that a client without DO did not ask for")]
    UnaskedDnssec,
    #[error("SERVFAIL caching is off")]
    ServfailOff,
    #[error("the chain failed in a way that is not cached")]
    ChainError,
    /// Our own data (hosts file, local records, special-use names) is looked up afresh each time,
    /// so that a reload that changes it is seen at once; it costs a table lookup.
    #[error("local data is not cached")]
    Local,
}

/// True for the questions a cache may hold at all.
pub(crate) fn cacheable_question(qtype: RType, qclass: Class) -> bool {
    qclass == Class::IN && !qtype.is_meta()
}

fn sanitize(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 {
        0
    } else {
        ttl
    }
}

/// A response checked against its key, its OPT record split off.
struct Parsed<'a> {
    header: Header,
    /// Where the question ends: the tail starts here.
    qend: usize,
    /// Where the tail ends (the OPT record, if any, starts).
    tail_end: usize,
    /// The records of the tail.
    spans: Vec<scan::RecordSpan>,
    arcount: u16,
    rcode: Rcode,
    /// The data of the OPT record's first Extended DNS Error option.
    ede: &'a [u8],
}

/// Checks that `wire` is a complete response to the question of `key` that may be stored, and
/// splits its OPT record off.
fn parse<'a>(key: &Key, wire: &'a [u8]) -> Result<Parsed<'a>, Uncacheable> {
    if wire.len() > MAX_STORED_LEN {
        return Err(Uncacheable::TooLarge);
    }
    let header = Header::parse(wire)?;
    if !header.response || header.opcode != Opcode::QUERY || header.qdcount != 1 {
        return Err(Uncacheable::NotQuery);
    }
    if header.truncated {
        return Err(Uncacheable::Truncated);
    }
    let qtype = key.qtype();
    let tc = key.type_and_class();
    if !cacheable_question(qtype, Class(u16::from_be_bytes([tc[2], tc[3]]))) {
        return Err(Uncacheable::Question);
    }
    let qend = scan::questions_end(wire)?;
    let name_end = qend - 4;
    if !wire[HEADER_LEN..name_end].eq_ignore_ascii_case(key.qname()) || wire[name_end..qend] != *tc
    {
        return Err(Uncacheable::QuestionMismatch);
    }
    let mut spans = scan::records(wire)?;
    if !key.dnssec_ok()
        && spans
            .iter()
            .any(|s| response::unasked_dnssec(qtype, s.rtype))
    {
        return Err(Uncacheable::UnaskedDnssec);
    }

    // The OPT record, if any, must be the last (our encoder writes it last); it carries the upper
    // RCODE bits and any Extended DNS Error. It is not stored: a hit appends our own.
    let mut tail_end = wire.len();
    let mut arcount = header.arcount;
    let mut ext_rcode = 0;
    let mut ede: &[u8] = &[];
    if let Some(i) = spans.iter().position(|s| s.rtype == RType::OPT) {
        let opt = &spans[i];
        if i + 1 != spans.len() || opt.section != Section::Additional {
            return Err(Uncacheable::BadOpt);
        }
        ext_rcode = wire[opt.ttl_offset];
        ede = first_ede(&wire[opt.rdata.clone()]);
        tail_end = opt.start;
        arcount -= 1;
        spans.pop();
    }
    Ok(Parsed {
        header,
        qend,
        tail_end,
        spans,
        arcount,
        rcode: Rcode::from_parts(header.rcode_low, ext_rcode),
        ede,
    })
}

/// The stored form of a response header: ID 0, QR=1, AA=0, RD=0, RA=1, Z=0, CD as in the key.
fn normalised(header: Header, key: &Key, arcount: u16) -> [u8; HEADER_LEN] {
    let mut h = header;
    h.id = 0;
    h.authoritative = false;
    h.recursion_desired = false;
    h.recursion_available = true;
    h.z = false;
    h.checking_disabled = key.checking_disabled();
    h.arcount = arcount;
    h.to_bytes()
}

/// Builds the entry for a screen's own answer to the question of `key` (a blocked name's,
/// [`crate::handler::Screen::own_answer`]): every TTL and the lifetime are `lifetime`, whatever
/// its records say; its Extended DNS Error is kept whole (an answer whose option does not fit an
/// entry is not stored, so that a stored answer says exactly what the screen would); it is never
/// answered stale, and so never written to the cache file either.
pub(crate) fn own(
    key: &Key,
    wire: &[u8],
    lifetime: u32,
    now_ms: u64,
) -> Result<Entry, Uncacheable> {
    let p = parse(key, wire)?;
    if lifetime == 0 {
        return Err(Uncacheable::ZeroTtl);
    }
    if p.rcode != Rcode::NOERROR && p.rcode != Rcode::NXDOMAIN {
        return Err(Uncacheable::Rcode(p.rcode));
    }
    let options = if p.ede.len() < 2 {
        Vec::new()
    } else {
        let mut o = Vec::with_capacity(4 + p.ede.len());
        o.extend_from_slice(&edns::code::EXTENDED_ERROR.to_be_bytes());
        o.extend_from_slice(&(p.ede.len() as u16).to_be_bytes());
        o.extend_from_slice(p.ede);
        o
    };
    if options.len() > entry::MAX_OPTIONS_LEN {
        return Err(Uncacheable::TooLarge);
    }
    let lifetime = lifetime.min(entry::MAX_LIFETIME);
    let ttls: Vec<(u16, u32)> = p
        .spans
        .iter()
        .map(|s| (s.ttl_offset as u16, lifetime))
        .collect();
    Ok(Entry::new(&Parts {
        key,
        inserted_ms: now_ms,
        lifetime,
        header: normalised(p.header, key, p.arcount),
        tail: &wire[p.qend..p.tail_end],
        ttls: &ttls,
        options: &options,
        stale_ok: false,
    }))
}

/// Builds the entry for `wire`, the complete encoded response to the question of `key`.
pub(crate) fn prepare(
    limits: &Limits,
    key: &Key,
    wire: &[u8],
    now_ms: u64,
) -> Result<Entry, Uncacheable> {
    let Parsed {
        header,
        qend,
        tail_end,
        spans,
        arcount,
        rcode,
        ede,
    } = parse(key, wire)?;
    let qtype = key.qtype();
    if rcode == Rcode::SERVFAIL {
        let (info, text) = match ede.len() {
            0 => (None, &[][..]),
            _ => (Some(u16::from_be_bytes([ede[0], ede[1]])), &ede[2..]),
        };
        return servfail(key, info, text, now_ms, limits.servfail_ttl);
    }
    if rcode != Rcode::NOERROR && rcode != Rcode::NXDOMAIN {
        return Err(Uncacheable::Rcode(rcode));
    }

    let negative = rcode == Rcode::NXDOMAIN
        || !spans
            .iter()
            .any(|s| s.section == Section::Answer && s.rtype == qtype);
    let mut ttls = Vec::with_capacity(spans.len());
    let mut negative_ttl = None;
    for s in &spans {
        let mut ttl = sanitize(s.ttl).max(limits.min_ttl).min(limits.max_ttl);
        if negative && s.section == Section::Authority && s.rtype == RType::SOA {
            // MNAME and RNAME take at least one octet each, then five 32-bit fields.
            let rdata = &wire[s.rdata.clone()];
            if rdata.len() < 22 {
                return Err(Uncacheable::NegativeWithoutSoa);
            }
            let m = &rdata[rdata.len() - 4..];
            let minimum = sanitize(u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
            ttl = sanitize(s.ttl).min(minimum).min(limits.negative_max_ttl);
            negative_ttl = Some(negative_ttl.map_or(ttl, |t: u32| t.min(ttl)));
        }
        ttls.push((s.ttl_offset as u16, ttl));
    }
    if negative && negative_ttl.is_none() {
        return Err(Uncacheable::NegativeWithoutSoa);
    }
    let lifetime = ttls.iter().map(|&(_, t)| t).min().unwrap_or(0);
    if lifetime == 0 {
        return Err(Uncacheable::ZeroTtl);
    }

    Ok(Entry::new(&Parts {
        key,
        inserted_ms: now_ms,
        lifetime,
        header: normalised(header, key, arcount),
        tail: &wire[qend..tail_end],
        ttls: &ttls,
        // The answer's Extended DNS Error (an insecure answer's "unsupported algorithm", say) is
        // part of what every hit says, as the miss said it.
        options: &ede_option(ede),
        // A bogus answer never gets here: the validator turns it into `HandlerError::Bogus`,
        // stored through `servfail` (never stale-eligible).
        stale_ok: true,
    }))
}

/// Builds a SERVFAIL entry that lives `lifetime` seconds (at most [`MAX_SERVFAIL_TTL`]), with an
/// Extended DNS Error when one is known.
pub(crate) fn servfail(
    key: &Key,
    info_code: Option<u16>,
    text: &[u8],
    now_ms: u64,
    lifetime: u32,
) -> Result<Entry, Uncacheable> {
    let lifetime = lifetime.min(MAX_SERVFAIL_TTL);
    if lifetime == 0 {
        return Err(Uncacheable::ServfailOff);
    }
    let mut options = Vec::new();
    if let Some(info) = info_code {
        let text = truncate_utf8(text, MAX_EDE_TEXT);
        options.extend_from_slice(&edns::code::EXTENDED_ERROR.to_be_bytes());
        options.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
        options.extend_from_slice(&info.to_be_bytes());
        options.extend_from_slice(text);
    }
    let h = Header {
        response: true,
        recursion_available: true,
        checking_disabled: key.checking_disabled(),
        rcode_low: Rcode::SERVFAIL.low(),
        qdcount: 1,
        ..Header::default()
    };
    Ok(Entry::new(&Parts {
        key,
        inserted_ms: now_ms,
        lifetime,
        header: h.to_bytes(),
        tail: &[],
        ttls: &[],
        options: &options,
        stale_ok: false,
    }))
}

/// An Extended DNS Error option (code, length, data) around `data`, or nothing for no data.
fn ede_option(data: &[u8]) -> Vec<u8> {
    if data.len() < 2 {
        return Vec::new();
    }
    let data = truncate_utf8(data, MAX_EDE_TEXT + 2);
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&edns::code::EXTENDED_ERROR.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The data (INFO-CODE, EXTRA-TEXT) of the first Extended DNS Error option in OPT RDATA.
fn first_ede(mut rdata: &[u8]) -> &[u8] {
    while rdata.len() >= 4 {
        let code = u16::from_be_bytes([rdata[0], rdata[1]]);
        let len = u16::from_be_bytes([rdata[2], rdata[3]]) as usize;
        let Some(data) = rdata.get(4..4 + len) else {
            return &[];
        };
        if code == edns::code::EXTENDED_ERROR && len >= 2 {
            return data;
        }
        rdata = &rdata[4 + len..];
    }
    &[]
}

/// At most `max` octets of `s`, cut at a UTF-8 character boundary when `s` is UTF-8.
fn truncate_utf8(s: &[u8], max: usize) -> &[u8] {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && (s[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &s[..end]
}
