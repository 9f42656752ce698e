//! Verifying RRSIGs: one signature with one key, an RRset with a zone's DNSKEY set, and a DNSKEY
//! set with the DS records (or trust anchor) that vouch for it.
//!
//! ```text
//!   RRset + its RRSIGs + the zone's DNSKEY RRset + now + &mut Budget
//!     --verify_rrset--> Ok(VerifiedRrset { ttl, signer, wildcard, .. }) | Err(VerifyError)
//!   DNSKEY RRset + its RRSIGs + the parent's DS RRset
//!     --verify_dnskey_rrset--> the same, signed by a key a DS record names
//! ```
//!
//! Each RRSIG goes through the checks of RFC 4035 section 5.3.1, cheapest first, and only one
//! that passes them all costs a signature verification:
//!
//! 1. the RRSIG's owner and class are the RRset's, its type covered the RRset's type;
//! 2. its labels field is at most the owner's label count, not counting a leading `*` (RFC 4034
//!    section 3.1.3); fewer means the RRset was expanded from a wildcard (RFC 4035 section
//!    5.3.2): the result says so, with the closest encloser and next closer name, and the caller
//!    must then prove that the next closer name does not exist (RFC 4035 section 5.3.4, RFC 5155
//!    section 8.8) before calling the answer secure;
//! 3. the owner is at or below the signer's name, and the signer's name is the zone of the keys;
//! 4. the algorithm is one we validate ([`Algorithm::validated`]); RRSIGs by other algorithms are
//!    skipped, as if absent;
//! 5. a key of the zone has the RRSIG's key tag and algorithm, protocol 3 and the zone key bit,
//!    and is not revoked;
//! 6. inception <= now <= expiration in RFC 1982 serial arithmetic (RFC 4034 section 3.1.5),
//!    widened by [`CLOCK_SKEW`] on both sides;
//! 7. the signature verifies over [`signed_data`] (RFC 4034 section 3.1.8.1, canonical form and
//!    order of section 6) with that key.
//!
//! One RRSIG that passes is enough (RFC 4035 section 5.3.3; RFC 6840 section 5.11: any
//! algorithm that validates will do). When none passes, the error is the one from the RRSIG that
//! got furthest through the list (a bad signature says more than a missing key, an expired
//! signature more than an RRSIG of another type), so the client's Extended DNS Error names the
//! real problem.
//!
//! The TTL the caller may cache the RRset for is the smallest of the records' TTLs, the RRSIG's
//! TTL and Original TTL, and the seconds left until the signature expires (RFC 4035 section
//! 5.3.3).
//!
//! Limits against KeyTrap (CVE-2023-50387), each a constant below:
//! - [`MAX_RRSIGS_PER_RRSET`]: RRSIGs tried per RRset (an RRSIG is tried once it reaches step 7);
//! - [`MAX_KEYS_PER_TAG`]: keys tried per RRSIG (keys with its tag and algorithm);
//! - [`MAX_VERIFICATIONS_PER_QUERY`]: signature verifications per client query, counted by the
//!   [`Budget`] the caller passes by `&mut` to every call of one query. Past it the result is
//!   [`VerifyError::BudgetExhausted`]: bogus (EDE 6), to be cached as bogus, not retried.
//!
//! So one RRset costs at most 8 x 2 = 16 verifications, and one query at most 128.
//!
//! Results map to verdicts one way: [`VerifyError::reason`] gives the [`BogusReason`] (and so the
//! Extended DNS Error) of each failure; [`VerifyError::UnsupportedAlgorithm`] and
//! [`VerifyError::UnsupportedDigest`] are not failures but "insecure" (RFC 4035 section 5.2).
//!
//! Limitations: the caller proves wildcard expansions (with NSEC/NSEC3, `denial`) and chooses
//! the zone's DNSKEY set; RRSIGs are tried in the order given, so a message that puts more than
//! [`MAX_RRSIGS_PER_RRSET`] bad but plausible RRSIGs before the good one is bogus (only an
//! on-path attacker can do that, and it could drop the answer anyway); the clock skew is a fixed
//! five minutes, where unbound scales it with the validity period.

use std::sync::Arc;

use thiserror::Error;

use super::algorithm::{verify_signature, Algorithm, CryptoError};
use super::key::{match_ds, Dnskey, DsMatch, MAX_KEYS_PER_TAG};
use super::memo::{verification, VerifiedSignatures};
use crate::handler::answer::{Bogus, BogusReason, Verdict};
use crate::wire::edns::ede;
use crate::wire::{signed_data, Name, RData, RType, Record, Rrsig, WireError};

/// The most RRSIGs tried per RRset (KeyTrap): unbound's `MAX_VALIDATE_RRSIGS`. A zone in an
/// algorithm rollover signs with two or three algorithms; eight leaves room to spare.
pub const MAX_RRSIGS_PER_RRSET: usize = 8;

/// The most signature verifications for one client query (KeyTrap). unbound checks at most 8
/// RRSIGs at a time and suspends a query at most 16 times (`MAX_VALIDATE_AT_ONCE`,
/// `MAX_VALIDATION_SUSPENDS`), so about 128; we count exactly and stop at the same number. A
/// cold query through root, TLD and zone needs about ten (three DNSKEY RRsets, two DS RRsets, the
/// answer, a denial or two); long CNAME chains across signed zones need more. At ring's cost
/// per verification (`dnssec_verify_cost`, BENCHMARKS.md) the cap bounds the signature work of
/// one query to about 4 ms of one core if every signature is RSA-2048, 10 ms if ECDSA P-256, and
/// 100 ms if ECDSA P-384, which ring verifies ten times slower than P-256.
pub const MAX_VERIFICATIONS_PER_QUERY: u32 = 128;

/// How far the validator's clock may be off, in seconds: a signature is accepted from this long
/// before its inception until this long after its expiration. Five minutes: a clock kept by NTP
/// is far closer, one set by hand rarely further. (unbound scales its skew with the validity
/// period, a tenth of it, between `val-sig-skew-min` and `val-sig-skew-max`.)
pub const CLOCK_SKEW: u32 = 300;

/// The signature verifications one client query may still do. Created per query
/// ([`Budget::per_query`]) and passed by `&mut` to every verification of that query. With
/// [`Budget::remembering`] it also carries the validator's set of signatures verified before
/// ([`super::memo`]): one found there passes without a public-key operation and without being
/// counted.
#[derive(Clone, Debug)]
pub struct Budget {
    limit: u32,
    used: u32,
    memo: Option<Arc<VerifiedSignatures>>,
}

impl PartialEq for Budget {
    fn eq(&self, other: &Self) -> bool {
        (self.limit, self.used) == (other.limit, other.used)
    }
}

impl Eq for Budget {}

impl Budget {
    /// A budget of [`MAX_VERIFICATIONS_PER_QUERY`].
    pub fn per_query() -> Budget {
        Budget::new(MAX_VERIFICATIONS_PER_QUERY)
    }

    /// A budget of `limit` verifications.
    pub fn new(limit: u32) -> Budget {
        Budget {
            limit,
            used: 0,
            memo: None,
        }
    }

    /// A budget of [`MAX_VERIFICATIONS_PER_QUERY`] that consults and fills `memo`.
    pub fn remembering(memo: Arc<VerifiedSignatures>) -> Budget {
        Budget {
            memo: Some(memo),
            ..Budget::per_query()
        }
    }

    /// Verifications done so far.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Verifications left.
    pub fn remaining(&self) -> u32 {
        self.limit - self.used
    }

    /// True when no verification is left.
    pub fn is_exhausted(&self) -> bool {
        self.used >= self.limit
    }

    /// Takes one verification, or fails when none is left.
    fn spend(&mut self) -> Result<(), VerifyError> {
        if self.is_exhausted() {
            return Err(VerifyError::BudgetExhausted { limit: self.limit });
        }
        self.used += 1;
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::per_query()
    }
}

/// An RRset whose signature verified.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRrset {
    /// How long the RRset may be cached, in seconds (see the module docs).
    pub ttl: u32,
    /// The zone that signed it.
    pub signer: Name,
    /// The key tag of the key whose signature verified.
    pub key_tag: u16,
    /// That key's algorithm.
    pub algorithm: Algorithm,
    /// `Some` when the RRset was synthesised from a wildcard: the answer is secure only with a
    /// proof that the next closer name does not exist.
    pub wildcard: Option<WildcardExpansion>,
}

/// Where a wildcard-expanded RRset came from (RFC 4035 section 5.3.4, RFC 5155 section 7.2.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WildcardExpansion {
    /// The closest encloser: the owner cut to the RRSIG's labels count. The wildcard was
    /// `*.closest_encloser`.
    pub closest_encloser: Name,
    /// The owner cut to one label more than the closest encloser: the name whose non-existence
    /// must be proven.
    pub next_closer: Name,
}

impl WildcardExpansion {
    /// The wildcard name the RRset was expanded from.
    pub fn source(&self) -> Result<Name, WireError> {
        self.closest_encloser.prepend(b"*")
    }
}

/// How an RRSIG and an RRset (or the DNSKEY it names) fail to fit together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// No records, or records of more than one RRset (owner, class, type).
    #[error("not one RRset")]
    NotOneRrset,
    /// The RRSIG's owner or class is not the RRset's.
    #[error("the RRSIG's owner or class is not the RRset's")]
    Owner,
    /// The RRSIG's labels field exceeds the owner's label count.
    #[error("labels field {labels} exceeds the owner's {owner} labels")]
    Labels { labels: u8, owner: usize },
    /// The owner is not at or below the signer's name.
    #[error("owner is outside the signer's zone")]
    OwnerOutsideSigner,
    /// The signer's name is not the zone of the keys.
    #[error("signer is not the zone of the keys")]
    Signer,
    /// The inception is after the expiration.
    #[error("inception {inception} is after expiration {expiration}")]
    Window { inception: u32, expiration: u32 },
}

/// Why an RRset did not verify: a bogus reason, or "unsupported" (insecure).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No RRSIG covers the RRset (EDE 10).
    #[error("no RRSIG covers {owner} {rtype}")]
    NoSignatures { owner: Name, rtype: RType },
    /// RRSIGs exist, but none by an algorithm we validate, while the zone has keys of one
    /// (EDE 10: the signature that should be there is missing).
    #[error("no RRSIG over {owner} {rtype} by an algorithm the zone's keys use")]
    NoUsableSignature { owner: Name, rtype: RType },
    /// An RRSIG does not fit the RRset or the zone (EDE 6).
    #[error("RRSIG does not fit: {0}")]
    Mismatch(Mismatch),
    /// No key of the zone has the RRSIG's key tag and algorithm, or no key matches the DS
    /// records (EDE 9).
    #[error("no DNSKEY of {zone} with key tag {key_tag} and algorithm {algorithm}")]
    NoMatchingKey {
        zone: Name,
        key_tag: u16,
        algorithm: u8,
    },
    /// No key of the zone matches its DS records (EDE 9).
    #[error("no DNSKEY of {zone} matches its DS records")]
    NoKeyForDs { zone: Name },
    /// The matching key lacks the zone key bit (EDE 11).
    #[error("DNSKEY {key_tag} of {zone} is not a zone key")]
    NoZoneKeyBit { zone: Name, key_tag: u16 },
    /// The signature expired (EDE 7).
    #[error("signature expired at {expiration} (now {now})")]
    Expired { expiration: u32, now: u32 },
    /// The signature is not valid yet (EDE 8).
    #[error("signature not valid before {inception} (now {now})")]
    NotYetValid { inception: u32, now: u32 },
    /// The signature does not verify with the key (EDE 6).
    #[error("signature by DNSKEY {key_tag} does not verify: {cause}")]
    BadSignature { key_tag: u16, cause: CryptoError },
    /// The signed data could not be built (EDE 6).
    #[error("cannot build the signed data: {0}")]
    Encoding(WireError),
    /// The query's verification budget is spent (EDE 6).
    #[error("more than {limit} signature verifications for one query")]
    BudgetExhausted { limit: u32 },
    /// The zone uses no algorithm we validate: insecure (EDE 1 with the answer).
    #[error("no DNSSEC algorithm we validate: treated as unsigned")]
    UnsupportedAlgorithm,
    /// The zone's DS records use no digest type we compute: insecure (EDE 2 with the answer).
    #[error("no DS digest type we compute: treated as unsigned")]
    UnsupportedDigest,
}

impl VerifyError {
    /// The reason the RRset is bogus, or `None` when the error means insecure.
    pub fn reason(&self) -> Option<BogusReason> {
        Some(match self {
            VerifyError::NoSignatures { .. } | VerifyError::NoUsableSignature { .. } => {
                BogusReason::RrsigsMissing
            }
            VerifyError::NoMatchingKey { .. } | VerifyError::NoKeyForDs { .. } => {
                BogusReason::DnskeyMissing
            }
            VerifyError::NoZoneKeyBit { .. } => BogusReason::NoZoneKeyBit,
            VerifyError::Expired { .. } => BogusReason::SignatureExpired,
            VerifyError::NotYetValid { .. } => BogusReason::SignatureNotYetValid,
            VerifyError::Mismatch(_)
            | VerifyError::BadSignature { .. }
            | VerifyError::Encoding(_)
            | VerifyError::BudgetExhausted { .. } => BogusReason::Other,
            VerifyError::UnsupportedAlgorithm | VerifyError::UnsupportedDigest => return None,
        })
    }

    /// True when the error means "insecure", not "bogus".
    pub fn is_insecure(&self) -> bool {
        self.reason().is_none()
    }

    /// The Extended DNS Error to attach: the bogus reason's, or for an insecure answer the
    /// "unsupported" code that explains why it is not secure (RFC 8914 codes 1 and 2).
    pub fn ede(&self) -> u16 {
        match (self, self.reason()) {
            (_, Some(reason)) => reason.ede(),
            (VerifyError::UnsupportedDigest, None) => ede::UNSUPPORTED_DS_DIGEST_TYPE,
            (_, None) => ede::UNSUPPORTED_DNSKEY_ALGORITHM,
        }
    }

    /// The verdict this error stands for: [`Verdict::Insecure`] or a [`Verdict::Bogus`] whose
    /// detail is this error's text.
    pub fn verdict(&self) -> Verdict {
        match self.reason() {
            None => Verdict::Insecure,
            Some(reason) => Verdict::Bogus(Bogus {
                reason,
                detail: Arc::from(self.to_string()),
            }),
        }
    }

    /// How far through the checks of the module docs the RRSIG got; the error of the RRSIG that
    /// got furthest is the one reported.
    fn stage(&self) -> u8 {
        match self {
            VerifyError::NoSignatures { .. }
            | VerifyError::NoUsableSignature { .. }
            | VerifyError::UnsupportedAlgorithm
            | VerifyError::UnsupportedDigest => 0,
            VerifyError::Mismatch(_) => 1,
            VerifyError::NoMatchingKey { .. } | VerifyError::NoKeyForDs { .. } => 2,
            VerifyError::NoZoneKeyBit { .. } => 3,
            VerifyError::Expired { .. } | VerifyError::NotYetValid { .. } => 4,
            VerifyError::Encoding(_) | VerifyError::BadSignature { .. } => 5,
            VerifyError::BudgetExhausted { .. } => 6,
        }
    }
}

/// Verifies `rrset` with one of its `rrsigs` (RRSIG records; those covering other types are
/// ignored) and a key of `dnskeys`, the zone's DNSKEY RRset, already authenticated by the caller.
/// The zone is the owner of the first DNSKEY record; records of other owners or types are
/// ignored.
pub fn verify_rrset(
    rrset: &[Record],
    rrsigs: &[Record],
    dnskeys: &[Record],
    now: u32,
    budget: &mut Budget,
) -> Result<VerifiedRrset, VerifyError> {
    let keys: Vec<&Record> = dnskeys.iter().collect();
    verify_with_keys(rrset, rrsigs, &keys, now, budget)
}

/// Verifies `rrset` with one RRSIG and one DNSKEY record: the checks of [`verify_rrset`] for a
/// single pair (no limit on RRSIGs applies).
pub fn verify_rrsig(
    rrset: &[Record],
    rrsig: &Record,
    dnskey: &Record,
    now: u32,
    budget: &mut Budget,
) -> Result<VerifiedRrset, VerifyError> {
    verify_with_keys(rrset, std::slice::from_ref(rrsig), &[dnskey], now, budget)
}

/// Verifies a zone's DNSKEY RRset with the DS RRset from its parent (already authenticated by
/// the caller), RFC 4035 section 5.2: the DNSKEY RRset must be signed by a key a usable DS
/// record matches. On success the whole DNSKEY RRset is authenticated and can verify the zone's
/// other RRsets.
pub fn verify_dnskey_rrset(
    dnskeys: &[Record],
    rrsigs: &[Record],
    ds_set: &[Record],
    now: u32,
    budget: &mut Budget,
) -> Result<VerifiedRrset, VerifyError> {
    match match_ds(ds_set, dnskeys) {
        DsMatch::Keys(keys) => verify_with_keys(dnskeys, rrsigs, &keys, now, budget),
        DsMatch::UnsupportedAlgorithm => Err(VerifyError::UnsupportedAlgorithm),
        DsMatch::UnsupportedDigest => Err(VerifyError::UnsupportedDigest),
        DsMatch::NoMatch => Err(VerifyError::NoKeyForDs {
            zone: ds_set
                .first()
                .or(dnskeys.first())
                .map_or_else(Name::root, |r| r.name.clone()),
        }),
    }
}

/// True when `a` comes before `b` in RFC 1982 serial arithmetic on 32 bits (RFC 4034 section
/// 3.1.5). Values exactly 2^31 apart are unordered: neither is before the other.
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// The shared core: `keys` are the DNSKEY records that may verify (the zone's whole set, or the
/// ones a DS record or anchor names); the zone is the first DNSKEY's owner.
pub(super) fn verify_with_keys(
    rrset: &[Record],
    rrsigs: &[Record],
    keys: &[&Record],
    now: u32,
    budget: &mut Budget,
) -> Result<VerifiedRrset, VerifyError> {
    let Some(first) = rrset.first() else {
        return Err(VerifyError::Mismatch(Mismatch::NotOneRrset));
    };
    let rtype = first.rtype();
    if rrset
        .iter()
        .any(|r| r.name != first.name || r.class != first.class || r.rtype() != rtype)
    {
        return Err(VerifyError::Mismatch(Mismatch::NotOneRrset));
    }
    let covering: Vec<(&Record, &Rrsig)> = rrsigs
        .iter()
        .filter_map(|r| match &r.data {
            RData::Rrsig(sig) if sig.type_covered == rtype => Some((r, sig)),
            _ => None,
        })
        .collect();
    if covering.is_empty() {
        return Err(VerifyError::NoSignatures {
            owner: first.name.clone(),
            rtype,
        });
    }
    let zone = keys
        .iter()
        .find(|k| k.rtype() == RType::DNSKEY)
        .map(|k| &k.name);
    let mut best: Option<VerifyError> = None;
    let mut tried = 0;
    for (record, sig) in covering {
        if tried == MAX_RRSIGS_PER_RRSET {
            break;
        }
        let err = match try_rrsig(rrset, record, sig, zone, keys, now, budget, &mut tried) {
            Ok(verified) => return Ok(verified),
            Err(e @ VerifyError::BudgetExhausted { .. }) => return Err(e),
            Err(e) => e,
        };
        match &best {
            Some(b) if b.stage() >= err.stage() => {}
            _ => best = Some(err),
        }
    }
    match best {
        // Every RRSIG was by an algorithm we do not validate.
        Some(VerifyError::UnsupportedAlgorithm) | None => {
            if keys
                .iter()
                .filter_map(|k| Dnskey::from_record(k))
                .any(|k| k.is_usable() && Algorithm::validated(k.algorithm).is_some())
            {
                Err(VerifyError::NoUsableSignature {
                    owner: first.name.clone(),
                    rtype,
                })
            } else {
                Err(VerifyError::UnsupportedAlgorithm)
            }
        }
        Some(e) => Err(e),
    }
}

/// Runs the checks of the module docs for one RRSIG; `tried` counts the RRSIGs that reached the
/// signature check.
#[allow(clippy::too_many_arguments)]
fn try_rrsig(
    rrset: &[Record],
    record: &Record,
    sig: &Rrsig,
    zone: Option<&Name>,
    keys: &[&Record],
    now: u32,
    budget: &mut Budget,
    tried: &mut usize,
) -> Result<VerifiedRrset, VerifyError> {
    let mismatch = |m| Err(VerifyError::Mismatch(m));
    let first = &rrset[0];
    let owner = &first.name;
    if record.name != *owner || record.class != first.class {
        return mismatch(Mismatch::Owner);
    }
    let owner_labels = owner.label_count() - usize::from(owner.is_wildcard());
    if usize::from(sig.labels) > owner_labels {
        return mismatch(Mismatch::Labels {
            labels: sig.labels,
            owner: owner_labels,
        });
    }
    if !owner.is_subdomain_of(&sig.signer_name) {
        return mismatch(Mismatch::OwnerOutsideSigner);
    }
    let Some(zone) = zone else {
        return Err(VerifyError::NoMatchingKey {
            zone: sig.signer_name.clone(),
            key_tag: sig.key_tag,
            algorithm: sig.algorithm,
        });
    };
    if sig.signer_name != *zone {
        return mismatch(Mismatch::Signer);
    }
    let Some(algorithm) = Algorithm::validated(sig.algorithm) else {
        return Err(VerifyError::UnsupportedAlgorithm);
    };
    let same_tag: Vec<Dnskey<'_>> = keys
        .iter()
        .filter(|k| k.name == *zone && k.class == first.class)
        .filter_map(|k| Dnskey::from_record(k))
        .filter(|k| k.algorithm == sig.algorithm && k.key_tag() == sig.key_tag)
        .collect();
    let no_key = || VerifyError::NoMatchingKey {
        zone: zone.clone(),
        key_tag: sig.key_tag,
        algorithm: sig.algorithm,
    };
    if same_tag.is_empty() {
        return Err(no_key());
    }
    let candidates: Vec<Dnskey<'_>> = same_tag
        .iter()
        .filter(|k| k.is_usable())
        .take(MAX_KEYS_PER_TAG)
        .copied()
        .collect();
    if candidates.is_empty() {
        return Err(if same_tag.iter().any(|k| !k.is_zone_key()) {
            VerifyError::NoZoneKeyBit {
                zone: zone.clone(),
                key_tag: sig.key_tag,
            }
        } else {
            no_key()
        });
    }
    if serial_lt(sig.expiration, sig.inception) {
        return mismatch(Mismatch::Window {
            inception: sig.inception,
            expiration: sig.expiration,
        });
    }
    if serial_lt(now.wrapping_add(CLOCK_SKEW), sig.inception) {
        return Err(VerifyError::NotYetValid {
            inception: sig.inception,
            now,
        });
    }
    if serial_lt(sig.expiration, now.wrapping_sub(CLOCK_SKEW)) {
        return Err(VerifyError::Expired {
            expiration: sig.expiration,
            now,
        });
    }
    *tried += 1;
    let data = signed_data(sig, rrset).map_err(VerifyError::Encoding)?;
    let mut last = None;
    let verified = || VerifiedRrset {
        ttl: rrset_ttl(rrset, record, sig, now),
        signer: zone.clone(),
        key_tag: sig.key_tag,
        algorithm,
        wildcard: wildcard(owner, sig.labels, owner_labels),
    };
    let memo = budget.memo.clone();
    for key in candidates {
        let seen = memo.as_ref().map(|m| {
            (
                m,
                verification(sig.algorithm, key.public_key, &data, &sig.signature),
            )
        });
        if seen.as_ref().is_some_and(|(m, v)| m.contains(v)) {
            return Ok(verified());
        }
        budget.spend()?;
        match verify_signature(algorithm, key.public_key, &data, &sig.signature) {
            Ok(()) => {
                if let Some((m, v)) = seen {
                    m.insert(v);
                }
                return Ok(verified());
            }
            Err(cause) => last = Some(cause),
        }
    }
    Err(VerifyError::BadSignature {
        key_tag: sig.key_tag,
        cause: last.unwrap_or(CryptoError::BadSignature),
    })
}

/// The TTL of a verified RRset (RFC 4035 section 5.3.3).
fn rrset_ttl(rrset: &[Record], rrsig: &Record, sig: &Rrsig, now: u32) -> u32 {
    let left = if serial_lt(now, sig.expiration) {
        sig.expiration.wrapping_sub(now)
    } else {
        0
    };
    rrset
        .iter()
        .map(|r| r.ttl)
        .chain([rrsig.ttl, sig.original_ttl, left])
        .min()
        .unwrap_or(0)
}

fn wildcard(owner: &Name, labels: u8, owner_labels: usize) -> Option<WildcardExpansion> {
    let labels = usize::from(labels);
    (labels < owner_labels).then(|| WildcardExpansion {
        closest_encloser: owner.trim_to(labels),
        next_closer: owner.trim_to(labels + 1),
    })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
