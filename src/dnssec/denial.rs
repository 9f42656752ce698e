//! Authenticated denial of existence: what verified NSEC and NSEC3 records prove about a question.
//!
//! ```text
//!   zone (the records' signer) + verified NSEC/NSEC3 records + question
//!     --> NSEC if the zone's records include any, else NSEC3 (only usable ones, at most
//!         MAX_NSEC3_RECORDS; iterations above MAX_NSEC3_ITERATIONS: insecure, EDE 27)
//!     --> prove_nxdomain | prove_nodata | prove_wildcard_answer | prove_insecure_delegation
//!     --> Ok(Proven::Secure(Denial))    the claim holds
//!         Ok(Proven::Insecure(..))      opt-out or unsupported iterations: answer without AD
//!         Err(DenialError)              bogus: SERVFAIL with the EDE of DenialError::reason
//!   cache (RFC 8198) --> cached_fact (one record) | aggressive_denial (a zone's cached records)
//! ```
//!
//! Why: a validator that checks signatures but not what the signed NSEC/NSEC3 records say would
//! accept a replayed or unrelated denial as proof that a name does not exist. The rules are those
//! of RFC 4035 section 5.4 (NSEC), RFC 5155 section 8 (NSEC3, with erratum 3441 for no-data
//! responses in opt-out zones) and RFC 6840 section 4 (section 4.1: records at a delegation or
//! DNAME say nothing about the names below it; 4.3: a no-data proof also denies CNAME; 4.4: a
//! DS denial or insecure delegation needs the NS bit and no DS or SOA bit, so it comes from the
//! parent side of the zone cut).
//!
//! Precondition, for every function here: each NSEC and NSEC3 record passed in has been verified
//! by the caller (an RRSIG by a key of `zone`, valid now, signer name `zone`, and not a wildcard
//! expansion: its labels field counts every label of the owner but a leading `*`). Records of other
//! types, and NSEC/NSEC3 records whose owner is not in `zone`, are ignored. Nothing here checks a
//! signature or does I/O; functions return typed outcomes that callers must use (`#[must_use]`).
//!
//! Limits (each a named constant, against CVE-2023-50868 and RFC 9276):
//! - [`MAX_NSEC3_ITERATIONS`] (50, as bind, Knot Resolver and PowerDNS): NSEC3 records above it are
//!   not hashed and make the answer insecure with EDE 27 (RFC 9276 section 3.2). It is the only
//!   cutoff: RFC 9276 section 4 asks that the point where answers turn insecure be the point where
//!   they would turn SERVFAIL, so no higher cap turns them bogus.
//! - [`MAX_NSEC3_RECORDS`] usable NSEC3 records are looked at per answer; the rest are ignored.
//! - [`MAX_NSEC3_HASHES_PER_QUERY`] name hashes per client query, counted by a [`HashBudget`] the
//!   caller passes by `&mut` to every proof of that query; when it runs out, the proof ends as
//!   bogus ([`DenialError::HashBudgetExhausted`]), never as a retry.
//!
//! Choices where the RFCs allow several: NSEC3 records with an unknown hash algorithm or flags
//! other than 0 and 1 are ignored (RFC 5155 sections 8.1 and 8.2), so a response holding only
//! those is bogus; NSEC3 records with different parameters in one answer make it bogus (allowed by
//! RFC 5155 section 8.2; a signer uses one chain at a time); an NXDOMAIN, no-data, wildcard no-data
//! or wildcard answer whose next closer name is covered by an opt-out NSEC3 is insecure, not
//! secure (RFC 5155 section 9.2 on the AD bit: an unsigned delegation may hide in an opt-out span,
//! so nothing below it is proven).
//!
//! NSEC3PARAM records play no part: RFC 5155 section 4 makes them the authoritative server's,
//! and a validator takes the parameters from the NSEC3 records themselves.
//!
//! Limitations: no DNAME logic beyond RFC 6840 section 4.1 (a DNAME answer's synthesized CNAME is
//! the caller's); NSEC3 hash algorithm 1 (SHA-1) only, the only one registered; a response mixing
//! NSEC and NSEC3 for one zone is judged on its NSEC records alone; NSEC records are not capped in
//! number (they cost comparisons, no hashing, and each one reaching here cost the caller a
//! signature check, which its own per-query cap bounds); the hash budget counts names hashed, not
//! SHA-1 runs, which the iterations cutoff bounds at 51 per name; the cache helpers never
//! synthesize wildcard answers (RFC 8198 section 5.3 allows it) and leave TTLs to the cache.

mod nsec;
mod nsec3;

use std::cmp::Ordering;

use thiserror::Error;

use crate::handler::answer::BogusReason;
use crate::wire::edns::ede;
use crate::wire::{Name, RType, Record, TypeBitmap};

pub use nsec::nsec_covers;
pub use nsec3::{
    nsec3_covers, nsec3_hash, nsec3_params, nsec3_relevant, Nsec3Hash, NSEC3_HASH_LEN, NSEC3_SHA1,
};

/// NSEC3 iterations above which an answer is insecure with EDE 27 and nothing is hashed (RFC 9276
/// section 3.2; the value bind, Knot Resolver and PowerDNS use). The one cutoff: see the module
/// docs for why no higher cap makes answers bogus.
pub const MAX_NSEC3_ITERATIONS: u16 = 50;

/// Usable NSEC3 records (known algorithm and flags, owner directly below the zone) considered per
/// answer; later ones are ignored. A proof needs at most three, and an answer with a CNAME chain a
/// few more; 16 leaves room while bounding the comparisons per hash.
pub const MAX_NSEC3_RECORDS: usize = 16;

/// Names hashed per client query across all its NSEC3 proofs (CVE-2023-50868). One closest
/// encloser proof of the longest possible name (127 labels below the root) and its wildcard fits:
/// 128 hashes of at most `MAX_NSEC3_ITERATIONS + 1` SHA-1 runs each, about 6,500 SHA-1 blocks.
pub const MAX_NSEC3_HASHES_PER_QUERY: u32 = 128;

/// What verified denial records establish.
#[must_use = "a denial proof decides the verdict"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proven {
    /// The claim is proven: the denial (or wildcard answer) is secure.
    Secure(Denial),
    /// The records are authentic but cannot prove the claim for a reason that makes the answer
    /// insecure rather than bogus: answer it, without AD.
    Insecure(Insecure),
}

/// A secure denial, or a wildcard answer shown to be the right one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The name does not exist and no wildcard could have made it (RFC 4035 section 5.4, RFC
    /// 5155 section 8.4).
    NxDomain,
    /// The name exists (possibly as an empty non-terminal) and has neither the type nor a CNAME
    /// (RFC 5155 section 8.5, RFC 6840 section 4.3). For a DS question: no DS, and no zone cut.
    NoData,
    /// The name does not exist; the wildcard at its closest encloser exists and has neither the
    /// type nor a CNAME (RFC 5155 section 8.7).
    WildcardNoData,
    /// A wildcard answer is the right one: no name closer to the question exists (RFC 4035
    /// section 5.3.4, RFC 5155 section 8.8).
    WildcardAnswer,
    /// A zone cut without DS: the delegation is proven insecure (the child is unsigned), from the
    /// parent side (RFC 4035 section 5.2, RFC 6840 section 4.4). Also the answer to a DS question
    /// at a delegation: the DS does not exist.
    InsecureDelegation,
}

/// Why authentic denial records make an answer insecure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insecure {
    /// An opt-out NSEC3 covers the next closer name: an unsigned delegation may exist there, so
    /// nothing below it can be proven (RFC 5155 sections 6, 8.9 and 9.2).
    OptOut,
    /// NSEC3 iterations above [`MAX_NSEC3_ITERATIONS`] (RFC 9276 section 3.2): EDE 27.
    Nsec3Iterations {
        /// The highest iterations value among the answer's NSEC3 records.
        iterations: u16,
    },
}

impl Insecure {
    /// The Extended DNS Error (RFC 8914) the answer carries, if any.
    pub fn ede(self) -> Option<u16> {
        match self {
            Insecure::OptOut => None,
            Insecure::Nsec3Iterations { .. } => Some(ede::UNSUPPORTED_NSEC3_ITERATIONS_VALUE),
        }
    }
}

/// Why denial records do not prove a claim: the answer is bogus.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DenialError {
    /// A record the proof needs is absent (EDE 12, NSEC Missing).
    #[error("no NSEC/NSEC3 record {0}")]
    Missing(Missing),
    /// The records prove something the answer denies.
    #[error("the denial records contradict the answer: {0}")]
    Contradicted(Contradiction),
    /// The question's name is not in the zone that signed the records.
    #[error("{name} is not in zone {zone}")]
    OutsideZone { name: Name, zone: Name },
    /// An RRSIG labels field that cannot belong to a wildcard expansion of the name in the zone.
    #[error("RRSIG labels {labels} cannot expand a wildcard of zone {zone} to {name}")]
    BadWildcardLabels { name: Name, labels: u8, zone: Name },
    /// NSEC3 records with different hash parameters (RFC 5155 section 8.2 allows calling it bogus).
    #[error("NSEC3 records with different algorithm, iterations or salt")]
    MixedNsec3Parameters,
    /// The query's NSEC3 hash budget ([`MAX_NSEC3_HASHES_PER_QUERY`]) is spent (CVE-2023-50868).
    #[error("NSEC3 hash budget of the query spent")]
    HashBudgetExhausted,
}

impl DenialError {
    /// The bogus reason, and so the Extended DNS Error, a client sees.
    pub fn reason(&self) -> BogusReason {
        match self {
            DenialError::Missing(_) => BogusReason::NsecMissing,
            DenialError::Contradicted(_)
            | DenialError::OutsideZone { .. }
            | DenialError::BadWildcardLabels { .. }
            | DenialError::MixedNsec3Parameters
            | DenialError::HashBudgetExhausted => BogusReason::Other,
        }
    }
}

/// The record a proof lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Missing {
    /// One matching the name (no-data, DS denial, insecure delegation).
    #[error("matches the name")]
    Match,
    /// One covering the name (NSEC name error).
    #[error("covers the name")]
    NameCover,
    /// An NSEC3 matching an ancestor of the name, its closest encloser (RFC 5155 section 8.3).
    #[error("matches a closest encloser")]
    ClosestEncloser,
    /// One covering the next closer name (RFC 5155 section 8.3, RFC 4035 section 5.3.4).
    #[error("covers the next closer name")]
    NextCloserCover,
    /// One covering the wildcard at the closest encloser (no wildcard could have answered).
    #[error("covers the wildcard at the closest encloser")]
    WildcardCover,
    /// One matching the wildcard at the closest encloser (wildcard no-data).
    #[error("matches the name or the wildcard at its closest encloser")]
    WildcardMatch,
}

/// What the records show that the answer denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Contradiction {
    /// The name exists (a record matches it, or it is an empty non-terminal).
    #[error("the name exists")]
    NameExists,
    /// The type's bit is set at the name.
    #[error("the type exists at the name")]
    TypeExists,
    /// The CNAME bit is set at the name (RFC 6840 section 4.3).
    #[error("a CNAME exists at the name")]
    CnameExists,
    /// The wildcard at the closest encloser exists, so it should have answered.
    #[error("the wildcard at the closest encloser exists")]
    WildcardExists,
    /// The name is at or below a delegation (NS without SOA) or below a DNAME, where the zone's
    /// records say nothing but DS (RFC 6840 section 4.1).
    #[error("the name is at or below a delegation or DNAME")]
    Delegation,
    /// An insecure delegation was claimed where there is no NS bit (RFC 6840 section 4.4).
    #[error("no delegation (NS bit clear)")]
    NotDelegation,
    /// An insecure delegation was claimed where the DS bit is set.
    #[error("the delegation has DS")]
    DsExists,
    /// A DS denial from the child's apex (SOA bit set): only the parent can deny DS (RFC 6840
    /// section 4.4).
    #[error("DS denied by the child zone")]
    ChildSide,
}

/// The NSEC3 hashes a client query may still compute ([`MAX_NSEC3_HASHES_PER_QUERY`]).
///
/// Make one per client query and pass it by `&mut` to every proof of that query, CNAME links and
/// DS lookups included, so the total is bounded however the answer is built.
#[derive(Debug)]
pub struct HashBudget {
    remaining: u32,
}

impl HashBudget {
    /// A full budget of [`MAX_NSEC3_HASHES_PER_QUERY`].
    pub fn new() -> Self {
        HashBudget::with_limit(MAX_NSEC3_HASHES_PER_QUERY)
    }

    /// A budget of `hashes` (tests; a caller sharing one query's budget among stages).
    pub fn with_limit(hashes: u32) -> Self {
        HashBudget { remaining: hashes }
    }

    /// Hashes left.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Takes one hash from the budget, or says it is spent.
    fn spend(&mut self) -> Result<(), DenialError> {
        self.remaining = self
            .remaining
            .checked_sub(1)
            .ok_or(DenialError::HashBudgetExhausted)?;
        Ok(())
    }
}

impl Default for HashBudget {
    fn default() -> Self {
        HashBudget::new()
    }
}

/// Proves that `qname` does not exist (an NXDOMAIN answer): RFC 4035 section 5.4 with NSEC, RFC
/// 5155 section 8.4 with NSEC3.
pub fn prove_nxdomain(
    zone: &Name,
    records: &[Record],
    qname: &Name,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    in_zone(zone, qname)?;
    match Evidence::new(zone, records) {
        Evidence::Nsec(set) => nsec::nxdomain(&set, qname).map(Proven::Secure),
        Evidence::Nsec3(Ok(set)) => nsec3::nxdomain(&set, qname, budget),
        Evidence::Nsec3(Err(settled)) => settled,
    }
}

/// Proves that `qname` has no `qtype` records (a NOERROR answer without them): the name exists
/// without the type and without a CNAME, or the wildcard that would answer it does. A DS question
/// follows the parent-side rules of RFC 6840 section 4.4 and may end in
/// [`Denial::InsecureDelegation`]. RFC 4035 section 5.4 with NSEC; RFC 5155 sections 8.5 to 8.7
/// (with erratum 3441) with NSEC3.
pub fn prove_nodata(
    zone: &Name,
    records: &[Record],
    qname: &Name,
    qtype: RType,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    in_zone(zone, qname)?;
    match Evidence::new(zone, records) {
        Evidence::Nsec(set) => nsec::nodata(&set, qname, qtype).map(Proven::Secure),
        Evidence::Nsec3(Ok(set)) => nsec3::nodata(&set, qname, qtype, budget),
        Evidence::Nsec3(Err(settled)) => settled,
    }
}

/// Proves that a wildcard answer for `qname` is the right one: no name closer to `qname` than the
/// wildcard's parent exists. `rrsig_labels` is the labels field of the answer's verified RRSIG,
/// which names the wildcard (`*.` and the last `rrsig_labels` labels of `qname`, RFC 4035 section
/// 5.3.4). RFC 5155 section 8.8 with NSEC3. A question for the wildcard's own name is not an
/// expansion and needs no records.
pub fn prove_wildcard_answer(
    zone: &Name,
    records: &[Record],
    qname: &Name,
    rrsig_labels: u8,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    in_zone(zone, qname)?;
    let Some(expansion) = WildcardExpansion::new(zone, qname, rrsig_labels)? else {
        return Ok(Proven::Secure(Denial::WildcardAnswer));
    };
    match Evidence::new(zone, records) {
        Evidence::Nsec(set) => nsec::wildcard_answer(&set, &expansion).map(Proven::Secure),
        Evidence::Nsec3(Ok(set)) => nsec3::wildcard_answer(&set, &expansion, budget),
        Evidence::Nsec3(Err(settled)) => settled,
    }
}

/// Proves that the delegation at `delegation` (a referral's NS owner) is insecure: the record
/// matching it has NS and neither DS nor SOA (RFC 4035 section 5.2, RFC 6840 section 4.4), or, with
/// NSEC3, an opt-out record covers it (RFC 5155 section 8.9: the result is then
/// [`Insecure::OptOut`]).
pub fn prove_insecure_delegation(
    zone: &Name,
    records: &[Record],
    delegation: &Name,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    in_zone(zone, delegation)?;
    match Evidence::new(zone, records) {
        Evidence::Nsec(set) => nsec::insecure_delegation(&set, delegation).map(Proven::Secure),
        Evidence::Nsec3(Ok(set)) => nsec3::insecure_delegation(&set, delegation, budget),
        Evidence::Nsec3(Err(settled)) => settled,
    }
}

/// What one verified NSEC or NSEC3 record says about a name on its own, for aggressive use of a
/// validated cache (RFC 8198 section 5).
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CachedFact {
    /// The name has neither the type nor a CNAME: a NODATA answer (for DS, also at a
    /// delegation). An empty non-terminal shown by an NSEC's next name counts.
    NoData,
    /// The name does not exist. An NXDOMAIN also needs the wildcard at the closest encloser
    /// shown absent: for NSEC, `wildcard` is that name (ask again with it: `NameAbsent` completes
    /// the NXDOMAIN, `NoData` makes it a wildcard NODATA, anything else means asking upstream);
    /// one NSEC3 record cannot show the closest encloser, so `wildcard` is `None` and the caller
    /// needs [`aggressive_denial`] over the zone's cached records.
    NameAbsent { wildcard: Option<Name> },
    /// Nothing usable: the name or type exists, the record is an opt-out NSEC3 or has too many
    /// iterations, or it neither matches nor covers the name.
    Unknown,
}

/// What `record`, a verified NSEC or NSEC3 of `zone` held in the cache, proves about `qname` and
/// `qtype` on its own (RFC 8198 section 5): an NSEC covering a name or an NSEC3 without opt-out
/// covering its hash shows that the name does not exist; a matching record whose bitmap lacks the
/// type and CNAME shows NODATA. Fails only when the hash budget is spent.
pub fn cached_fact(
    zone: &Name,
    record: &Record,
    qname: &Name,
    qtype: RType,
    budget: &mut HashBudget,
) -> Result<CachedFact, DenialError> {
    if !qname.is_subdomain_of(zone) {
        return Ok(CachedFact::Unknown);
    }
    if let Some(n) = nsec::NsecRef::new(zone, record) {
        return Ok(nsec::cached_fact(&n, zone, qname, qtype));
    }
    match nsec3::Nsec3Ref::new(zone, record) {
        Some(n) => nsec3::cached_fact(&n, qname, qtype, budget),
        None => Ok(CachedFact::Unknown),
    }
}

/// A secure NXDOMAIN or NODATA for `qname`/`qtype` from a zone's cached, verified NSEC or NSEC3
/// records (RFC 8198 section 5), or `None` when they prove neither securely (opt-out spans and
/// high iterations prove nothing here; the query goes upstream). The records are judged by the
/// same rules as an upstream answer's ([`prove_nodata`], then [`prove_nxdomain`]): `NoData`,
/// `WildcardNoData` and (for DS) `InsecureDelegation` are NOERROR answers, `NxDomain` is NXDOMAIN.
///
/// The records are scanned linearly: pass the few a range lookup around the name finds (the NSEC
/// or NSEC3 covering or matching it, its ancestors and their wildcards), not a whole zone.
#[must_use]
pub fn aggressive_denial(
    zone: &Name,
    records: &[Record],
    qname: &Name,
    qtype: RType,
    budget: &mut HashBudget,
) -> Option<Denial> {
    if let Ok(Proven::Secure(d)) = prove_nodata(zone, records, qname, qtype, budget) {
        return Some(d);
    }
    match prove_nxdomain(zone, records, qname, budget) {
        Ok(Proven::Secure(d)) => Some(d),
        _ => None,
    }
}

/// Fails unless `name` is `zone` or below it.
fn in_zone(zone: &Name, name: &Name) -> Result<(), DenialError> {
    if name.is_subdomain_of(zone) {
        Ok(())
    } else {
        Err(DenialError::OutsideZone {
            name: name.clone(),
            zone: zone.clone(),
        })
    }
}

/// The usable denial records of one answer: NSEC if the zone's records include any, else NSEC3.
enum Evidence<'a> {
    Nsec(nsec::NsecSet<'a>),
    /// `Err` when the NSEC3 records settle the matter before any proof: too many iterations
    /// ([`Insecure`]) or mixed parameters ([`DenialError`]).
    Nsec3(Result<nsec3::Nsec3Set<'a>, Settled>),
}

/// An outcome reached before any proof ran.
type Settled = Result<Proven, DenialError>;

impl<'a> Evidence<'a> {
    fn new(zone: &'a Name, records: &'a [Record]) -> Self {
        let nsecs = nsec::NsecSet::new(zone, records);
        if nsecs.is_empty() {
            Evidence::Nsec3(nsec3::Nsec3Set::new(zone, records))
        } else {
            Evidence::Nsec(nsecs)
        }
    }
}

/// A wildcard expansion named by an RRSIG labels field: the closest encloser is the last
/// `labels` labels of the name, the next closer name one label more.
struct WildcardExpansion {
    next_closer: Name,
}

impl WildcardExpansion {
    /// `None` when `qname` is the wildcard's own name (no expansion happened).
    fn new(zone: &Name, qname: &Name, labels: u8) -> Result<Option<Self>, DenialError> {
        let bad = || DenialError::BadWildcardLabels {
            name: qname.clone(),
            labels,
            zone: zone.clone(),
        };
        let count = qname.label_count();
        let labels = usize::from(labels);
        if qname.is_wildcard() && labels + 1 == count {
            return Ok(None);
        }
        if labels >= count || labels < zone.label_count() {
            return Err(bad());
        }
        Ok(Some(WildcardExpansion {
            next_closer: qname.trim_to(labels + 1),
        }))
    }
}

/// Checks a record matching the question's name (or the wildcard standing for it) for a no-data
/// proof: neither the type nor CNAME (RFC 6840 section 4.3); for DS, from the parent side (RFC
/// 6840 section 4.4); for other types, not at a delegation, where the parent's records say nothing
/// but DS (RFC 6840 section 4.1).
fn nodata_at(types: &TypeBitmap, name: &Name, qtype: RType) -> Result<Denial, DenialError> {
    if types.contains(qtype) {
        return Err(DenialError::Contradicted(Contradiction::TypeExists));
    }
    if types.contains(RType::CNAME) {
        return Err(DenialError::Contradicted(Contradiction::CnameExists));
    }
    if qtype == RType::DS {
        // The root has no parent: its DS denial can only come from its own apex.
        if types.contains(RType::SOA) && !name.is_root() {
            return Err(DenialError::Contradicted(Contradiction::ChildSide));
        }
        return Ok(if types.contains(RType::NS) {
            Denial::InsecureDelegation
        } else {
            Denial::NoData
        });
    }
    if is_delegation(types) {
        return Err(DenialError::Contradicted(Contradiction::Delegation));
    }
    Ok(Denial::NoData)
}

/// Checks a record matching a delegation's name for an insecure-delegation proof (RFC 6840
/// section 4.4).
fn insecure_delegation_at(types: &TypeBitmap) -> Result<Denial, DenialError> {
    let fail = |c| Err(DenialError::Contradicted(c));
    if !types.contains(RType::NS) {
        return fail(Contradiction::NotDelegation);
    }
    if types.contains(RType::DS) {
        return fail(Contradiction::DsExists);
    }
    if types.contains(RType::SOA) {
        return fail(Contradiction::ChildSide);
    }
    Ok(Denial::InsecureDelegation)
}

/// NS without SOA: the parent side of a zone cut.
fn is_delegation(types: &TypeBitmap) -> bool {
    types.contains(RType::NS) && !types.contains(RType::SOA)
}

/// True when a record with `types` says nothing about names below its owner: it sits at a
/// delegation or a DNAME (RFC 6840 section 4.1).
fn hides_descendants(types: &TypeBitmap) -> bool {
    is_delegation(types) || types.contains(RType::DNAME)
}

/// True when `name` lies strictly below `ancestor`.
fn strictly_below(name: &Name, ancestor: &Name) -> bool {
    name.label_count() > ancestor.label_count() && name.is_subdomain_of(ancestor)
}

/// The longest name that is `a` or an ancestor of it and also `b` or an ancestor of `b`.
fn common_ancestor(a: &Name, b: &Name) -> Name {
    let (la, lb): (Vec<&[u8]>, Vec<&[u8]>) = (a.labels().collect(), b.labels().collect());
    let shared = la
        .iter()
        .rev()
        .zip(lb.iter().rev())
        .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
        .count();
    a.trim_to(shared)
}

/// `*.` + `name`, or `None` when that would be too long to exist.
fn wildcard_of(name: &Name) -> Option<Name> {
    name.prepend(b"*").ok()
}

/// Canonical order (RFC 4034 section 6.1), spelled for the comparisons of this module.
fn before(a: &Name, b: &Name) -> bool {
    a.canonical_cmp(b) == Ordering::Less
}

#[cfg(test)]
mod tests;
