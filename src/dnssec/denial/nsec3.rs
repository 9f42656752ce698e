//! NSEC3 proofs (RFC 5155 sections 5 and 8, erratum 3441; RFC 9276): names are hashed with the
//! zone's salt and iterations and compared with the hashed owner names of the records.

use ring::digest;

use super::{
    hides_descendants, insecure_delegation_at, nodata_at, wildcard_of, CachedFact, Contradiction,
    Denial, DenialError, HashBudget, Insecure, Missing, Proven, Settled, WildcardExpansion,
    MAX_NSEC3_ITERATIONS, MAX_NSEC3_RECORDS,
};
use crate::wire::zone::base32hex_decode;
use crate::wire::{Name, Nsec3, RData, RType, Record, TypeBitmap};

/// Hash algorithm 1, SHA-1 (RFC 5155 section 11): the only one registered.
pub const NSEC3_SHA1: u8 = 1;

/// Length of a SHA-1 hashed owner name.
pub const NSEC3_HASH_LEN: usize = 20;

/// A hashed owner name.
pub type Nsec3Hash = [u8; NSEC3_HASH_LEN];

/// The Opt-Out flag (RFC 5155 section 3.1.2.1); every other bit of the Flags field is undefined.
const FLAG_OPT_OUT: u8 = 0x01;

/// The NSEC3 hash of `name` (RFC 5155 section 5): SHA-1 over the canonical (lower-case) wire form
/// and the salt, then `iterations` more times over the previous digest and the salt.
///
/// This costs `iterations + 1` SHA-1 runs and takes no budget: proofs call it through their
/// [`HashBudget`]; call it directly only with iterations you have bounded.
pub fn nsec3_hash(name: &Name, salt: &[u8], iterations: u16) -> Nsec3Hash {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    // Length octets are at most 63, so lower-casing touches only the letters (RFC 4034 6.2).
    let lower: Vec<u8> = name.as_wire().iter().map(u8::to_ascii_lowercase).collect();
    ctx.update(&lower);
    ctx.update(salt);
    let mut d = ctx.finish();
    for _ in 0..iterations {
        let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(d.as_ref());
        ctx.update(salt);
        d = ctx.finish();
    }
    let mut out = [0u8; NSEC3_HASH_LEN];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

/// True when an NSEC3 whose owner hashes to `owner` and whose next hashed owner is `next` covers
/// the hash `h`: it sorts strictly between them, and the chain's last record wraps around to the
/// first (RFC 5155 sections 3.1.7 and 8.3), so a chain of one record covers every other hash.
pub fn nsec3_covers(owner: &Nsec3Hash, next: &Nsec3Hash, h: &Nsec3Hash) -> bool {
    if owner < next {
        owner < h && h < next
    } else {
        h > owner || h < next
    }
}

/// The hash parameters (salt, iterations) of `record` when it is a usable NSEC3 of `zone`.
pub fn nsec3_params<'a>(zone: &Name, record: &'a Record) -> Option<(&'a [u8], u16)> {
    Nsec3Ref::new(zone, record).map(|n| (&n.data.salt[..], n.data.iterations))
}

/// The usable NSEC3 records of `zone` among `records` that match or cover one of `hashes` (the
/// ones a proof about those names can use), in the order given.
pub fn nsec3_relevant<'a>(
    zone: &Name,
    records: &'a [Record],
    hashes: &[Nsec3Hash],
) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| {
            Nsec3Ref::new(zone, r)
                .is_some_and(|n| hashes.iter().any(|h| n.matches(h) || n.covers(h)))
        })
        .collect()
}

/// One usable NSEC3 record of the zone.
pub(super) struct Nsec3Ref<'a> {
    owner_hash: Nsec3Hash,
    next_hash: Nsec3Hash,
    data: &'a Nsec3,
}

impl<'a> Nsec3Ref<'a> {
    /// `record` as a usable NSEC3 of `zone`: hash algorithm SHA-1 (others are ignored, RFC 5155
    /// section 8.1), flags 0 or 1 (others are ignored, section 8.2), owner a base32hex hash
    /// label directly below the zone, hashes of SHA-1's length. `None` otherwise.
    pub(super) fn new(zone: &Name, record: &'a Record) -> Option<Self> {
        let RData::Nsec3(data) = &record.data else {
            return None;
        };
        if data.hash_algorithm != NSEC3_SHA1 || data.flags & !FLAG_OPT_OUT != 0 {
            return None;
        }
        if record.name.parent().as_ref() != Some(zone) {
            return None;
        }
        let label = record.name.labels().next()?;
        let owner = base32hex_decode(std::str::from_utf8(label).ok()?)?;
        Some(Nsec3Ref {
            owner_hash: owner.as_slice().try_into().ok()?,
            next_hash: data.next_hashed_owner.as_ref().try_into().ok()?,
            data,
        })
    }

    /// The record is at the name hashed to `h`.
    pub(super) fn matches(&self, h: &Nsec3Hash) -> bool {
        self.owner_hash == *h
    }

    /// [`nsec3_covers`] for this record.
    pub(super) fn covers(&self, h: &Nsec3Hash) -> bool {
        nsec3_covers(&self.owner_hash, &self.next_hash, h)
    }

    fn opt_out(&self) -> bool {
        self.data.flags & FLAG_OPT_OUT != 0
    }

    fn types(&self) -> &'a TypeBitmap {
        &self.data.types
    }
}

/// The usable NSEC3 records of one answer (at most [`MAX_NSEC3_RECORDS`]), all with the same
/// parameters.
pub(super) struct Nsec3Set<'a> {
    zone: &'a Name,
    records: Vec<Nsec3Ref<'a>>,
    salt: &'a [u8],
    iterations: u16,
}

impl<'a> Nsec3Set<'a> {
    /// The usable records, or the outcome they settle before any proof: insecure when one has
    /// more than [`MAX_NSEC3_ITERATIONS`] (RFC 9276 section 3.2), bogus when their parameters
    /// differ (RFC 5155 section 8.2).
    pub(super) fn new(zone: &'a Name, records: &'a [Record]) -> Result<Self, Settled> {
        let records: Vec<Nsec3Ref<'a>> = records
            .iter()
            .filter_map(|r| Nsec3Ref::new(zone, r))
            .take(MAX_NSEC3_RECORDS)
            .collect();
        if let Some(iterations) = records.iter().map(|n| n.data.iterations).max() {
            if iterations > MAX_NSEC3_ITERATIONS {
                return Err(Ok(Proven::Insecure(Insecure::Nsec3Iterations {
                    iterations,
                })));
            }
        }
        let (salt, iterations) = match records.first() {
            Some(n) => (&n.data.salt[..], n.data.iterations),
            None => (&[][..], 0),
        };
        if records
            .iter()
            .any(|n| n.data.iterations != iterations || n.data.salt[..] != *salt)
        {
            return Err(Err(DenialError::MixedNsec3Parameters));
        }
        Ok(Nsec3Set {
            zone,
            records,
            salt,
            iterations,
        })
    }

    fn matching(&self, h: &Nsec3Hash) -> Option<&Nsec3Ref<'a>> {
        self.records.iter().find(|n| n.matches(h))
    }

    fn covering(&self, h: &Nsec3Hash) -> Option<&Nsec3Ref<'a>> {
        self.records.iter().find(|n| n.covers(h))
    }

    fn hasher<'b>(&self, budget: &'b mut HashBudget) -> Hasher<'a, 'b> {
        Hasher {
            salt: self.salt,
            iterations: self.iterations,
            budget,
            memo: Vec::new(),
        }
    }
}

/// Hashes names with the set's parameters, each name once per proof, each hash paid from the
/// query's budget.
struct Hasher<'a, 'b> {
    salt: &'a [u8],
    iterations: u16,
    budget: &'b mut HashBudget,
    memo: Vec<(Name, Nsec3Hash)>,
}

impl Hasher<'_, '_> {
    fn hash(&mut self, name: &Name) -> Result<Nsec3Hash, DenialError> {
        if let Some((_, h)) = self.memo.iter().find(|(n, _)| n == name) {
            return Ok(*h);
        }
        self.budget.spend()?;
        let h = nsec3_hash(name, self.salt, self.iterations);
        self.memo.push((name.clone(), h));
        Ok(h)
    }
}

/// A closest encloser proof (RFC 5155 section 8.3): the closest encloser, matched by a record,
/// and the record covering the next closer name.
struct ClosestEncloser<'r, 'a> {
    name: Name,
    next_closer_cover: &'r Nsec3Ref<'a>,
}

/// Finds the longest ancestor of `qname` that a record matches, hashing `qname` and then its
/// ancestors up to the zone apex, and the record covering the name one label below it.
/// `qname` itself matching is a contradiction (the name exists); a closest encloser at a
/// delegation or DNAME cannot speak for the names below it (RFC 6840 section 4.1).
fn closest_encloser<'r, 'a>(
    set: &'r Nsec3Set<'a>,
    hasher: &mut Hasher<'_, '_>,
    qname: &Name,
) -> Result<ClosestEncloser<'r, 'a>, DenialError> {
    let apex_labels = set.zone.label_count();
    let mut next_closer: Option<Nsec3Hash> = None;
    let mut candidate = qname.clone();
    loop {
        let h = hasher.hash(&candidate)?;
        if let Some(m) = set.matching(&h) {
            let Some(nc) = next_closer else {
                return Err(DenialError::Contradicted(Contradiction::NameExists));
            };
            if hides_descendants(m.types()) {
                return Err(DenialError::Contradicted(Contradiction::Delegation));
            }
            let next_closer_cover = set
                .covering(&nc)
                .ok_or(DenialError::Missing(Missing::NextCloserCover))?;
            return Ok(ClosestEncloser {
                name: candidate,
                next_closer_cover,
            });
        }
        if candidate.label_count() <= apex_labels {
            return Err(DenialError::Missing(Missing::ClosestEncloser));
        }
        next_closer = Some(h);
        candidate = match candidate.parent() {
            Some(p) => p,
            None => return Err(DenialError::Missing(Missing::ClosestEncloser)),
        };
    }
}

/// Secure, unless an opt-out record covers the next closer name (RFC 5155 section 9.2).
fn unless_opt_out(ce: &ClosestEncloser<'_, '_>, denial: Denial) -> Proven {
    if ce.next_closer_cover.opt_out() {
        Proven::Insecure(Insecure::OptOut)
    } else {
        Proven::Secure(denial)
    }
}

/// RFC 5155 section 8.4: a closest encloser proof and a record covering the wildcard at the
/// closest encloser.
pub(super) fn nxdomain(
    set: &Nsec3Set<'_>,
    qname: &Name,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    let mut hasher = set.hasher(budget);
    let ce = closest_encloser(set, &mut hasher, qname)?;
    let wildcard = wildcard_of(&ce.name).ok_or(DenialError::Missing(Missing::WildcardCover))?;
    let hw = hasher.hash(&wildcard)?;
    if set.matching(&hw).is_some() {
        return Err(DenialError::Contradicted(Contradiction::WildcardExists));
    }
    if set.covering(&hw).is_none() {
        return Err(DenialError::Missing(Missing::WildcardCover));
    }
    Ok(unless_opt_out(&ce, Denial::NxDomain))
}

/// RFC 5155 sections 8.5 to 8.7 with erratum 3441: a record matching the name without the type
/// (section 8.5; for DS, 8.6 with the parent-side rules of RFC 6840 section 4.4); else a closest
/// encloser proof and a record matching the wildcard at the closest encloser without the type
/// (8.7); else a closest encloser proof whose next closer name is covered by an opt-out record
/// (8.6 and the erratum: an insecure delegation or an empty non-terminal made by one may be
/// there), which makes the answer insecure.
pub(super) fn nodata(
    set: &Nsec3Set<'_>,
    qname: &Name,
    qtype: RType,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    let mut hasher = set.hasher(budget);
    let h = hasher.hash(qname)?;
    if let Some(m) = set.matching(&h) {
        return nodata_at(m.types(), qname, qtype).map(Proven::Secure);
    }
    let ce = closest_encloser(set, &mut hasher, qname)?;
    if let Some(wildcard) = wildcard_of(&ce.name) {
        let hw = hasher.hash(&wildcard)?;
        if let Some(w) = set.matching(&hw) {
            nodata_at(w.types(), &wildcard, qtype)?;
            return Ok(unless_opt_out(&ce, Denial::WildcardNoData));
        }
    }
    if ce.next_closer_cover.opt_out() {
        return Ok(Proven::Insecure(Insecure::OptOut));
    }
    Err(DenialError::Missing(Missing::WildcardMatch))
}

/// RFC 5155 section 8.8: a record covers the next closer name (the wildcard's RRSIG shows the
/// closest encloser).
pub(super) fn wildcard_answer(
    set: &Nsec3Set<'_>,
    expansion: &WildcardExpansion,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    let mut hasher = set.hasher(budget);
    let h = hasher.hash(&expansion.next_closer)?;
    if set.matching(&h).is_some() {
        return Err(DenialError::Contradicted(Contradiction::NameExists));
    }
    let cover = set
        .covering(&h)
        .ok_or(DenialError::Missing(Missing::NextCloserCover))?;
    Ok(if cover.opt_out() {
        Proven::Insecure(Insecure::OptOut)
    } else {
        Proven::Secure(Denial::WildcardAnswer)
    })
}

/// RFC 5155 section 8.9: a record matching the delegation with NS and without DS and SOA (RFC
/// 6840 section 4.4), or a closest encloser proof whose next closer name is covered by an opt-out
/// record (insecure).
pub(super) fn insecure_delegation(
    set: &Nsec3Set<'_>,
    delegation: &Name,
    budget: &mut HashBudget,
) -> Result<Proven, DenialError> {
    let mut hasher = set.hasher(budget);
    let h = hasher.hash(delegation)?;
    if let Some(m) = set.matching(&h) {
        return insecure_delegation_at(m.types()).map(Proven::Secure);
    }
    let ce = closest_encloser(set, &mut hasher, delegation)?;
    if ce.next_closer_cover.opt_out() {
        return Ok(Proven::Insecure(Insecure::OptOut));
    }
    Err(DenialError::Missing(Missing::Match))
}

/// What one NSEC3 says about `qname` on its own (RFC 8198 section 5.2): a match without the type
/// is NODATA; a cover without opt-out shows the name absent, though not which wildcard to check.
pub(super) fn cached_fact(
    n: &Nsec3Ref<'_>,
    qname: &Name,
    qtype: RType,
    budget: &mut HashBudget,
) -> Result<CachedFact, DenialError> {
    if n.data.iterations > MAX_NSEC3_ITERATIONS {
        return Ok(CachedFact::Unknown);
    }
    budget.spend()?;
    let h = nsec3_hash(qname, &n.data.salt, n.data.iterations);
    if n.matches(&h) {
        return Ok(match nodata_at(n.types(), qname, qtype) {
            Ok(_) => CachedFact::NoData,
            Err(_) => CachedFact::Unknown,
        });
    }
    if n.covers(&h) && !n.opt_out() {
        return Ok(CachedFact::NameAbsent { wildcard: None });
    }
    Ok(CachedFact::Unknown)
}
