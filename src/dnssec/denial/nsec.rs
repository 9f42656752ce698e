//! NSEC proofs (RFC 4034 section 4, RFC 4035 section 5.4, RFC 6840 sections 4.1, 4.3 and 4.4):
//! plain names in canonical order, no hashing.

use super::{
    before, common_ancestor, hides_descendants, insecure_delegation_at, nodata_at, strictly_below,
    wildcard_of, CachedFact, Contradiction, Denial, DenialError, Missing, WildcardExpansion,
};
use crate::wire::{Name, RData, RType, Record, TypeBitmap};

/// One NSEC record of the zone.
pub(super) struct NsecRef<'a> {
    owner: &'a Name,
    next: &'a Name,
    types: &'a TypeBitmap,
}

impl<'a> NsecRef<'a> {
    /// `record` as an NSEC of `zone`, or `None` for another type or an owner outside the zone.
    pub(super) fn new(zone: &Name, record: &'a Record) -> Option<Self> {
        let RData::Nsec { next, types } = &record.data else {
            return None;
        };
        if !record.name.is_subdomain_of(zone) {
            return None;
        }
        Some(NsecRef {
            owner: &record.name,
            next,
            types,
        })
    }

    /// The record is at `name` (RFC 4035 section 5.4: its bitmap lists the types there).
    fn matches(&self, name: &Name) -> bool {
        self.owner == name
    }

    /// [`nsec_covers`] for this record.
    pub(super) fn covers(&self, zone: &Name, name: &Name) -> bool {
        nsec_covers(zone, self.owner, self.next, name)
    }

    /// Covers `name` and may speak for it: not a record at a delegation or DNAME above it,
    /// whose zone does not hold the names below (RFC 6840 section 4.1).
    fn denies(&self, zone: &Name, name: &Name) -> bool {
        self.covers(zone, name)
            && !(strictly_below(name, self.owner) && hides_descendants(self.types))
    }

    /// For a record covering `name`: the next name lies below it, so `name` exists as an empty
    /// non-terminal (RFC 4592 section 2.2.2).
    fn shows_empty_non_terminal(&self, name: &Name) -> bool {
        strictly_below(self.next, name)
    }

    /// The closest encloser of a `name` this record covers: the longest ancestor it shares with
    /// the owner or the next name, both of which exist (RFC 4592 section 3.3.1).
    fn closest_encloser(&self, zone: &Name, name: &Name) -> Name {
        let a = common_ancestor(name, self.owner);
        let b = common_ancestor(name, self.next);
        let ce = if a.label_count() >= b.label_count() {
            a
        } else {
            b
        };
        if ce.is_subdomain_of(zone) {
            ce
        } else {
            zone.clone()
        }
    }
}

/// True when an NSEC of `zone` at `owner` whose next name is `next` covers `name`: `name` is in
/// the zone and sorts strictly between the two in canonical order (RFC 4034 sections 4.1.1 and
/// 6.1). The zone's last NSEC names the apex as next and covers every name of the zone after its
/// owner; a record whose next name sorts before its owner but is not the apex covers nothing.
/// Whether the record may speak for the name (RFC 6840 section 4.1) is the proofs' concern.
pub fn nsec_covers(zone: &Name, owner: &Name, next: &Name, name: &Name) -> bool {
    if !name.is_subdomain_of(zone) || !before(owner, name) {
        return false;
    }
    if before(owner, next) {
        before(name, next)
    } else {
        next == zone
    }
}

/// The NSEC records of one answer.
pub(super) struct NsecSet<'a> {
    zone: &'a Name,
    records: Vec<NsecRef<'a>>,
}

impl<'a> NsecSet<'a> {
    pub(super) fn new(zone: &'a Name, records: &'a [Record]) -> Self {
        NsecSet {
            zone,
            records: records
                .iter()
                .filter_map(|r| NsecRef::new(zone, r))
                .collect(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn matching(&self, name: &Name) -> Option<&NsecRef<'a>> {
        self.records.iter().find(|n| n.matches(name))
    }

    fn denying(&self, name: &Name) -> Option<&NsecRef<'a>> {
        self.records.iter().find(|n| n.denies(self.zone, name))
    }
}

/// RFC 4035 section 5.4: an NSEC covers the name, and one shows that the wildcard at the
/// closest encloser does not exist.
pub(super) fn nxdomain(set: &NsecSet<'_>, qname: &Name) -> Result<Denial, DenialError> {
    if set.matching(qname).is_some() {
        return Err(DenialError::Contradicted(Contradiction::NameExists));
    }
    let cover = set
        .denying(qname)
        .ok_or(DenialError::Missing(Missing::NameCover))?;
    if cover.shows_empty_non_terminal(qname) {
        return Err(DenialError::Contradicted(Contradiction::NameExists));
    }
    let wildcard = wildcard_of(&cover.closest_encloser(set.zone, qname))
        .ok_or(DenialError::Missing(Missing::WildcardCover))?;
    if set.matching(&wildcard).is_some() {
        return Err(DenialError::Contradicted(Contradiction::WildcardExists));
    }
    if set.denying(&wildcard).is_none() {
        return Err(DenialError::Missing(Missing::WildcardCover));
    }
    Ok(Denial::NxDomain)
}

/// RFC 4035 section 5.4: an NSEC at the name without the type (or one showing the name is an
/// empty non-terminal), or an NSEC covering the name and one at the wildcard of its closest
/// encloser without the type.
pub(super) fn nodata(set: &NsecSet<'_>, qname: &Name, qtype: RType) -> Result<Denial, DenialError> {
    if let Some(m) = set.matching(qname) {
        return nodata_at(m.types, qname, qtype);
    }
    let cover = set
        .denying(qname)
        .ok_or(DenialError::Missing(Missing::Match))?;
    if cover.shows_empty_non_terminal(qname) {
        return Ok(Denial::NoData);
    }
    let wildcard = wildcard_of(&cover.closest_encloser(set.zone, qname))
        .ok_or(DenialError::Missing(Missing::WildcardMatch))?;
    let w = set
        .matching(&wildcard)
        .ok_or(DenialError::Missing(Missing::WildcardMatch))?;
    nodata_at(w.types, &wildcard, qtype)?;
    Ok(Denial::WildcardNoData)
}

/// RFC 4035 section 5.3.4: an NSEC shows that the next closer name does not exist, so the
/// wildcard was the right source.
pub(super) fn wildcard_answer(
    set: &NsecSet<'_>,
    expansion: &WildcardExpansion,
) -> Result<Denial, DenialError> {
    let nc = &expansion.next_closer;
    if set.matching(nc).is_some() {
        return Err(DenialError::Contradicted(Contradiction::NameExists));
    }
    let cover = set
        .denying(nc)
        .ok_or(DenialError::Missing(Missing::NextCloserCover))?;
    if cover.shows_empty_non_terminal(nc) {
        return Err(DenialError::Contradicted(Contradiction::NameExists));
    }
    Ok(Denial::WildcardAnswer)
}

/// RFC 4035 section 5.2, RFC 6840 section 4.4: the NSEC at the delegation has NS, no DS, no SOA.
pub(super) fn insecure_delegation(
    set: &NsecSet<'_>,
    delegation: &Name,
) -> Result<Denial, DenialError> {
    let m = set
        .matching(delegation)
        .ok_or(DenialError::Missing(Missing::Match))?;
    insecure_delegation_at(m.types)
}

/// What one NSEC says about `qname` on its own (RFC 8198 section 5.1).
pub(super) fn cached_fact(n: &NsecRef<'_>, zone: &Name, qname: &Name, qtype: RType) -> CachedFact {
    if n.matches(qname) {
        return match nodata_at(n.types, qname, qtype) {
            Ok(_) => CachedFact::NoData,
            Err(_) => CachedFact::Unknown,
        };
    }
    if !n.denies(zone, qname) {
        return CachedFact::Unknown;
    }
    if n.shows_empty_non_terminal(qname) {
        return CachedFact::NoData;
    }
    match wildcard_of(&n.closest_encloser(zone, qname)) {
        Some(wildcard) => CachedFact::NameAbsent {
            wildcard: Some(wildcard),
        },
        // Cannot happen (the wildcard is no longer than the name), and proves nothing if it did.
        None => CachedFact::Unknown,
    }
}
