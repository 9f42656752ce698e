//! What a stage returns: a response as checked wire bytes, where it came from, and what DNSSEC
//! validation said of it.
//!
//! ```text
//!   upstream bytes --check (parse once)--> Answer { wire, Upstream, verdict } --> cache (stores the
//!   bytes and the verdict) --> Answer { wire, Cache | StaleCache, verdict } --> response writer
//! ```
//!
//! The bytes travel as they arrived: a stage reads what it needs from them on demand (the header,
//! the RCODE) and only parses the whole message when it must look at records. The verdict travels
//! with them and is stored with a cached entry, so a hit says what the miss said.
//!
//! An answer's bytes are a complete message that has passed a parse or a walk of its records
//! ([`Answer::new`] checks, [`Answer::checked`] is for a caller that has just parsed them), so the
//! writer and the cache can rely on their structure.

use std::sync::Arc;

use bytes::Bytes;

use crate::wire::edns::ede;
use crate::wire::scan;
use crate::wire::{Header, Message, RType, Rcode, WireError};

/// A response on its way back up the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    wire: Bytes,
    origin: Origin,
    verdict: Verdict,
    /// The URL of the upstream that gave it, when one did just now (for the query log).
    upstream: Option<Arc<str>>,
    /// What the stage that made the bytes already knew of them.
    known: Known,
}

/// What an [`Answer`] may carry beside its bytes so that a later stage does not find it out again:
/// the parsed form (a stage that must look at records, like the validator or the cache stripping
/// DNSSEC records for a client without DO, does not parse the same bytes again: the forwarder
/// parsed them once, where they arrived), and whether the bytes are known to hold no DNSSEC
/// records that a client without DO did not ask for (the cache's entries for such clients were
/// stripped when stored, so the response writer need not walk them to look). It is only a cache
/// of what the bytes say, so it takes no part in comparisons.
#[derive(Clone, Default)]
struct Known {
    message: Option<Arc<Message>>,
    plain: bool,
}

impl PartialEq for Known {
    fn eq(&self, _: &Known) -> bool {
        true
    }
}

impl Eq for Known {}

impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parsed = if self.message.is_some() {
            "parsed"
        } else {
            "-"
        };
        let plain = if self.plain { ", plain" } else { "" };
        write!(f, "{parsed}{plain}")
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An upstream server, just now.
    Upstream,
    /// The cache, within its TTL.
    Cache,
    /// The cache, past its TTL (serve-stale, RFC 8767).
    StaleCache,
    /// Our own data: hosts file, local records, special-use names.
    Local,
}

/// What DNSSEC validation concluded about an answer (RFC 4035 section 4.3).
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A chain of trust from an anchor covers every RRset and denial.
    Secure,
    /// Proven unsigned: an insecure delegation lies between the anchor and the answer.
    Insecure,
    /// Validation failed: the answer must not reach a client that did not set CD.
    Bogus(Bogus),
    /// No anchor covers the name, or validation could not finish.
    Indeterminate,
    /// Not validated: validation is off, the client set CD, or the data is our own. Such an
    /// answer keeps the AD bit its upstream set, as a forwarder without a validator does.
    Unchecked,
}

/// How long a bogus answer (and a failed step of a chain of trust) is remembered, in seconds:
/// unbound's `val-bogus-ttl`. Long enough that clients retrying do not make the validator redo
/// the work, short enough that a repaired zone recovers soon.
pub const BOGUS_TTL: u32 = 60;

/// Why an answer is bogus, and the detail a client sees in its Extended DNS Error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bogus {
    pub reason: BogusReason,
    pub detail: Arc<str>,
}

/// The kinds of validation failure, each with its Extended DNS Error (RFC 8914).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BogusReason {
    /// Any other failure (EDE 6, DNSSEC Bogus).
    Other,
    /// EDE 7.
    SignatureExpired,
    /// EDE 8.
    SignatureNotYetValid,
    /// EDE 9.
    DnskeyMissing,
    /// EDE 10.
    RrsigsMissing,
    /// EDE 11.
    NoZoneKeyBit,
    /// EDE 12.
    NsecMissing,
}

impl BogusReason {
    /// The Extended DNS Error info-code for this reason.
    pub fn ede(self) -> u16 {
        match self {
            BogusReason::Other => ede::DNSSEC_BOGUS,
            BogusReason::SignatureExpired => ede::SIGNATURE_EXPIRED,
            BogusReason::SignatureNotYetValid => ede::SIGNATURE_NOT_YET_VALID,
            BogusReason::DnskeyMissing => ede::DNSKEY_MISSING,
            BogusReason::RrsigsMissing => ede::RRSIGS_MISSING,
            BogusReason::NoZoneKeyBit => ede::NO_ZONE_KEY_BIT_SET,
            BogusReason::NsecMissing => ede::NSEC_MISSING,
        }
    }

    /// The reason an Extended DNS Error info-code stands for (any other code: [`Self::Other`]).
    pub fn from_ede(code: u16) -> BogusReason {
        [
            BogusReason::SignatureExpired,
            BogusReason::SignatureNotYetValid,
            BogusReason::DnskeyMissing,
            BogusReason::RrsigsMissing,
            BogusReason::NoZoneKeyBit,
            BogusReason::NsecMissing,
        ]
        .into_iter()
        .find(|r| r.ede() == code)
        .unwrap_or(BogusReason::Other)
    }
}

/// [`Verdict::allows_ad`] for a verdict in its stored form ([`Verdict::kind_code`]): the cache's
/// fast path decides AD from it without building a verdict.
pub fn allows_ad(kind_code: u8, upstream_ad: bool) -> bool {
    match kind_code {
        1 => true,
        0 => upstream_ad,
        _ => false,
    }
}

impl Verdict {
    /// [`Verdict::kind_code`] of a bogus verdict.
    pub const BOGUS_CODE: u8 = 4;

    /// Whether a client that asks (AD or DO set) may see AD: for validated data, and for unchecked
    /// data whose upstream set it (`upstream_ad`).
    pub fn allows_ad(&self, upstream_ad: bool) -> bool {
        allows_ad(self.kind_code(), upstream_ad)
    }

    /// A small number for storing the verdict's kind (the cache keeps three bits); a bogus
    /// verdict's reason is kept as its Extended DNS Error.
    pub fn kind_code(&self) -> u8 {
        match self {
            Verdict::Unchecked => 0,
            Verdict::Secure => 1,
            Verdict::Insecure => 2,
            Verdict::Indeterminate => 3,
            Verdict::Bogus(_) => Verdict::BOGUS_CODE,
        }
    }

    /// The verdict stored as `code` ([`Self::kind_code`]), a bogus one with the reason of the
    /// Extended DNS Error `ede` stored beside it.
    pub fn from_kind_code(code: u8, ede: Option<u16>) -> Verdict {
        match code {
            1 => Verdict::Secure,
            2 => Verdict::Insecure,
            3 => Verdict::Indeterminate,
            4 => Verdict::Bogus(Bogus {
                reason: BogusReason::from_ede(ede.unwrap_or(ede::DNSSEC_BOGUS)),
                detail: Arc::from(""),
            }),
            _ => Verdict::Unchecked,
        }
    }
}

impl Answer {
    /// An answer from `wire` after checking that it is a complete message whose records walk.
    pub fn new(
        wire: impl Into<Bytes>,
        origin: Origin,
        verdict: Verdict,
    ) -> Result<Self, WireError> {
        let wire = wire.into();
        scan::records(&wire)?;
        Ok(Answer::checked(wire, origin, verdict))
    }

    /// An answer from bytes the caller has just parsed or built (not checked again).
    pub fn checked(wire: impl Into<Bytes>, origin: Origin, verdict: Verdict) -> Self {
        Answer {
            wire: wire.into(),
            origin,
            verdict,
            upstream: None,
            known: Known::default(),
        }
    }

    /// An answer encoded from `msg` (local data, tests).
    pub fn from_message(
        msg: &Message,
        origin: Origin,
        verdict: Verdict,
    ) -> Result<Self, WireError> {
        Ok(Answer::checked(msg.encode()?, origin, verdict))
    }

    /// The response's wire bytes.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The response's header.
    pub fn header(&self) -> Header {
        // A checked answer is a whole message, so at least a header long.
        Header::parse(&self.wire).unwrap_or_default()
    }

    /// The response code, extended by the OPT record's upper bits (RFC 6891 section 6.1.3).
    pub fn rcode(&self) -> Rcode {
        let low = self.header().rcode_low;
        let high = scan::Records::new(&self.wire)
            .ok()
            .and_then(|mut walk| {
                let opt = walk.find(|s| s.as_ref().map_or(true, |s| s.rtype == RType::OPT))?;
                Some(opt.ok()?.ttl >> 24)
            })
            .unwrap_or(0);
        Rcode(((high as u16) << 4) | u16::from(low))
    }

    /// Whether the response code is `rcode`: [`Answer::rcode`], but without walking the records to
    /// the OPT record when the header's low bits already differ (every answer of a miss goes
    /// through serve-stale's failure check).
    pub fn rcode_is(&self, rcode: Rcode) -> bool {
        self.header().rcode_low == rcode.low() && self.rcode() == rcode
    }

    /// The whole message, parsed (for a stage that must look at its records).
    pub fn message(&self) -> Result<Message, WireError> {
        match &self.known.message {
            Some(m) => Ok(Message::clone(m)),
            None => Message::parse(&self.wire),
        }
    }

    /// The parsed message this answer carries, if the stage that made it left one.
    pub fn parsed(&self) -> Option<&Message> {
        self.known.message.as_deref()
    }

    /// The whole message, parsed, taken out of the answer (no copy when it carried its parsed
    /// form and nothing else shares it).
    pub fn take_message(&mut self) -> Result<Message, WireError> {
        match self.known.message.take() {
            Some(m) => Ok(Arc::try_unwrap(m).unwrap_or_else(|m| Message::clone(&m))),
            None => Message::parse(&self.wire),
        }
    }

    /// This answer carrying `msg` as its parsed form. `msg` must be what the bytes parse to (the
    /// caller has just parsed them, or encoded them from it).
    pub fn with_parsed(mut self, msg: Message) -> Self {
        self.known.message = Some(Arc::new(msg));
        self
    }

    /// This answer, known to hold no DNSSEC records (RRSIG, NSEC, NSEC3, DNSKEY, DS) that a client
    /// without DO did not ask for: the caller wrote the bytes from what such a client gets.
    pub fn known_plain(mut self) -> Self {
        self.known.plain = true;
        self
    }

    /// Whether the answer is known to hold nothing a client without DO must not get (see
    /// [`Answer::known_plain`]); false says only that nobody looked.
    pub fn is_known_plain(&self) -> bool {
        self.known.plain
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The same answer (origin, verdict, upstream) in the wire form `wire`, which the caller has
    /// just written (not checked again).
    pub fn rewritten(&self, wire: impl Into<Bytes>) -> Self {
        Answer {
            wire: wire.into(),
            origin: self.origin,
            verdict: self.verdict.clone(),
            upstream: self.upstream.clone(),
            known: Known::default(),
        }
    }

    /// This answer, naming the upstream (its URL) that gave it.
    pub fn with_upstream(mut self, url: Arc<str>) -> Self {
        self.upstream = Some(url);
        self
    }

    /// The URL of the upstream that gave this answer just now, if one did.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The same bytes and origin with another verdict (the validator's).
    pub fn with_verdict(self, verdict: Verdict) -> Answer {
        Answer { verdict, ..self }
    }

    /// The bytes, shared (no copy).
    pub fn wire_bytes(&self) -> Bytes {
        self.wire.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;
    use crate::wire::{Edns, Name};

    #[test]
    fn reads_header_and_extended_rcode_from_the_bytes() {
        let mut m = Message::response_to(&Message::query(
            "a.example".parse::<Name>().unwrap(),
            RType::A,
        ));
        m.edns = Some(Edns::default());
        m.set_rcode(Rcode::BADVERS);
        let a = Answer::new(m.encode().unwrap(), Origin::Upstream, Verdict::Unchecked).unwrap();
        assert_eq!(a.rcode(), Rcode::BADVERS);
        assert!(a.header().response);
        assert_eq!(a.message().unwrap().questions, m.questions);
        assert!(Answer::new(vec![0u8; 5], Origin::Upstream, Verdict::Unchecked).is_err());
    }

    /// `rcode_is` agrees with `rcode`, also where the low bits match and the OPT's upper bits do
    /// not (BADTIME, 18, shares SERVFAIL's low bits 2).
    #[test]
    fn rcode_is_compares_the_extended_code() {
        let answer = |rcode: Rcode, edns: bool| {
            let mut m = Message::response_to(&Message::query(
                "r.example".parse::<Name>().unwrap(),
                RType::A,
            ));
            m.edns = edns.then(Edns::default);
            m.set_rcode(rcode);
            Answer::new(m.encode().unwrap(), Origin::Upstream, Verdict::Unchecked).unwrap()
        };
        let badtime = Rcode(18);
        assert_eq!(badtime.low(), Rcode::SERVFAIL.low());
        for (a, is) in [
            (answer(Rcode::SERVFAIL, true), Rcode::SERVFAIL),
            (answer(Rcode::SERVFAIL, false), Rcode::SERVFAIL),
            (answer(badtime, true), badtime),
            (answer(Rcode::NOERROR, true), Rcode::NOERROR),
        ] {
            assert!(a.rcode_is(is), "{:?}", a.rcode());
            for other in [Rcode::SERVFAIL, badtime, Rcode::NOERROR, Rcode::BADVERS] {
                assert_eq!(a.rcode_is(other), a.rcode() == other);
            }
        }
        assert!(!answer(badtime, true).rcode_is(Rcode::SERVFAIL));
    }

    /// The parsed form travels with the bytes through the stages that keep them (verdict,
    /// upstream) and is dropped with bytes that are rewritten; comparisons ignore it.
    #[test]
    fn the_parsed_form_goes_only_where_the_bytes_go() {
        let wire = Message::response_to(&Message::query(
            "p.example".parse::<Name>().unwrap(),
            RType::A,
        ))
        .encode()
        .unwrap();
        let m = Message::parse(&wire).unwrap();
        let plain = Answer::checked(wire.clone(), Origin::Upstream, Verdict::Unchecked);
        let carried = plain.clone().with_parsed(m.clone());
        assert_eq!(carried, plain);
        assert!(plain.parsed().is_none());
        let mut kept = carried
            .clone()
            .with_verdict(Verdict::Secure)
            .with_upstream(Arc::from("udp://192.0.2.1"));
        assert_eq!(kept.parsed(), Some(&m));
        assert_eq!(kept.take_message().unwrap(), m);
        assert!(kept.parsed().is_none(), "taken");
        assert_eq!(
            kept.take_message().unwrap(),
            m,
            "parsed again from the bytes"
        );
        assert!(carried.rewritten(wire).parsed().is_none());
    }

    #[test]
    fn verdicts_survive_their_stored_form() {
        let bogus = Verdict::Bogus(Bogus {
            reason: BogusReason::SignatureExpired,
            detail: Arc::from(""),
        });
        for v in [
            Verdict::Secure,
            Verdict::Insecure,
            Verdict::Indeterminate,
            Verdict::Unchecked,
            bogus.clone(),
        ] {
            let ede = match &v {
                Verdict::Bogus(b) => Some(b.reason.ede()),
                _ => None,
            };
            assert_eq!(Verdict::from_kind_code(v.kind_code(), ede), v);
        }
        assert!(Verdict::Secure.allows_ad(false));
        assert!(Verdict::Unchecked.allows_ad(true) && !Verdict::Unchecked.allows_ad(false));
        assert!(!Verdict::Insecure.allows_ad(true) && !bogus.allows_ad(true));
    }
}
