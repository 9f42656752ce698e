//! RRsets and their signatures picked out of a message section: the unit every DNSSEC check works
//! on (RFC 4034 section 3: an RRSIG covers one RRset, the records of one owner, class and type).

use crate::wire::{Name, RData, RType, Record};

/// One RRset of a section and the RRSIGs over it, in the order the section lists them.
#[derive(Clone, Debug)]
pub(super) struct Signed {
    pub rrset: Vec<Record>,
    pub sigs: Vec<Record>,
}

impl Signed {
    /// The RRset's owner.
    pub fn owner(&self) -> &Name {
        &self.rrset[0].name
    }

    /// The RRset's type.
    pub fn rtype(&self) -> RType {
        self.rrset[0].rtype()
    }

    /// The signer named by the first RRSIG whose signer is the owner or an ancestor of it (the
    /// only signers that can vouch for the owner, RFC 4035 section 5.3.1).
    pub fn signer(&self) -> Option<&Name> {
        self.sigs.iter().find_map(|r| match &r.data {
            RData::Rrsig(s) if self.owner().is_subdomain_of(&s.signer_name) => Some(&s.signer_name),
            _ => None,
        })
    }
}

/// The RRsets of `section` (RRSIGs grouped under the RRset they cover; an RRSIG covering nothing
/// present is left out), in order of first appearance.
pub(super) fn group(section: &[Record]) -> Vec<Signed> {
    let mut out: Vec<Signed> = Vec::new();
    for r in section.iter().filter(|r| r.rtype() != RType::RRSIG) {
        match out
            .iter_mut()
            .find(|s| s.rtype() == r.rtype() && s.owner() == &r.name && s.rrset[0].class == r.class)
        {
            Some(s) => s.rrset.push(r.clone()),
            None => out.push(Signed {
                rrset: vec![r.clone()],
                sigs: Vec::new(),
            }),
        }
    }
    for r in section {
        if let RData::Rrsig(sig) = &r.data {
            if let Some(s) = out
                .iter_mut()
                .find(|s| s.rtype() == sig.type_covered && s.owner() == &r.name)
            {
                s.sigs.push(r.clone());
            }
        }
    }
    out
}

/// The RRset of `rtype` owned by `name`, if the section has one.
pub(super) fn find<'a>(sets: &'a [Signed], name: &Name, rtype: RType) -> Option<&'a Signed> {
    sets.iter()
        .find(|s| s.rtype() == rtype && s.owner() == name)
}

/// True for the types that carry denial proofs.
pub(super) fn is_denial(rtype: RType) -> bool {
    rtype == RType::NSEC || rtype == RType::NSEC3
}
