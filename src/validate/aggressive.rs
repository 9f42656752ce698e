//! Aggressive use of validated NSEC records (RFC 8198): a name that falls in a range a secure
//! denial already proved empty is answered NXDOMAIN (or NODATA) here, without asking upstream.
//!
//! ```text
//!   secure NXDOMAIN/NODATA from zone Z --remember--> Z: SOA + NSEC records (with RRSIGs), by TTL
//!   query qname/qtype --closest zone with NSECs--> the NSEC matching or covering qname
//!        (+ the one covering the wildcard at the closest encloser) --aggressive_denial-->
//!        a synthesised NXDOMAIN/NODATA, Secure, with those records as its proof
//! ```
//!
//! Why NSEC only: an NSEC range is checked with name comparisons; an NSEC3 range needs the
//! question's hash (and its ancestors'), iterated SHA-1 per name, which is the cost aggressive use
//! is meant to save. unbound's `aggressive-nsec` makes the same choice.
//!
//! The records come from answers the validator judged secure, so they are authentic; a
//! synthesised answer carries them (and their RRSIGs) so a validating client can check it too.
//! Bounds: [`MAX_ZONES`] zones and [`MAX_NSEC_PER_ZONE`] NSEC records per zone, each kept no longer
//! than its TTL (capped by its signature, as the judge capped it); the oldest go first.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::dnssec::denial::{self, cached_fact, CachedFact, Denial, HashBudget};
use crate::wire::{Message, Name, QueryFlags, Question, RData, RType, Rcode, Record};

/// The most zones whose NSEC records are kept.
pub const MAX_ZONES: usize = 1024;
/// The most NSEC records kept per zone.
pub const MAX_NSEC_PER_ZONE: usize = 256;

/// An RRset of one record (an NSEC or the SOA) with its RRSIGs, and when it expires.
#[derive(Clone, Debug)]
struct Kept {
    record: Record,
    sigs: Vec<Record>,
    expires_ms: u64,
}

impl Kept {
    fn remaining_s(&self, now_ms: u64) -> u32 {
        (self.expires_ms.saturating_sub(now_ms) / 1000) as u32
    }
}

#[derive(Default)]
struct ZoneRecords {
    soa: Option<Kept>,
    nsecs: Vec<Kept>,
}

/// Validated NSEC records by zone.
#[derive(Default)]
pub struct NsecCache {
    zones: Mutex<HashMap<Name, ZoneRecords>>,
}

impl NsecCache {
    /// Keeps the SOA and NSEC records of `msg`'s authority section that belong to `zone`: `msg` is a
    /// denial the validator judged secure. `ttl_of` gives each RRset's TTL after validation's
    /// caps.
    pub fn remember(
        &self,
        zone: &Name,
        msg: &Message,
        now_ms: u64,
        ttl_of: impl Fn(&Record) -> u32,
    ) {
        let sigs_of = |r: &Record| -> Vec<Record> {
            msg.authority
                .iter()
                .filter(|s| {
                    s.name == r.name
                        && matches!(&s.data, RData::Rrsig(sig) if sig.type_covered == r.rtype())
                })
                .cloned()
                .collect()
        };
        let keep = |r: &Record| Kept {
            record: r.clone(),
            sigs: sigs_of(r),
            expires_ms: now_ms + u64::from(ttl_of(r)) * 1000,
        };
        let mut zones = lock(&self.zones);
        if !zones.contains_key(zone) && zones.len() >= MAX_ZONES {
            zones.retain(|_, z| z.nsecs.iter().any(|k| k.expires_ms > now_ms));
            if zones.len() >= MAX_ZONES {
                let victim = zones.keys().next().cloned();
                if let Some(v) = victim {
                    zones.remove(&v);
                }
            }
        }
        let entry = zones.entry(zone.clone()).or_default();
        for r in &msg.authority {
            if !r.name.is_subdomain_of(zone) {
                continue;
            }
            match r.rtype() {
                RType::SOA if r.name == *zone => entry.soa = Some(keep(r)),
                RType::NSEC => {
                    entry
                        .nsecs
                        .retain(|k| k.record.name != r.name && k.expires_ms > now_ms);
                    if entry.nsecs.len() >= MAX_NSEC_PER_ZONE {
                        // The one that expires first goes.
                        if let Some(i) =
                            (0..entry.nsecs.len()).min_by_key(|&i| entry.nsecs[i].expires_ms)
                        {
                            entry.nsecs.swap_remove(i);
                        }
                    }
                    entry.nsecs.push(keep(r));
                }
                _ => {}
            }
        }
    }

    /// A secure denial of `question` from the kept records, as a response to a query with
    /// `flags`, or `None` when they do not prove one.
    pub fn answer(&self, question: &Question, flags: QueryFlags, now_ms: u64) -> Option<Message> {
        let zones = lock(&self.zones);
        let (zone, records) = closest(&zones, &question.name)?;
        let soa = records.soa.as_ref().filter(|s| s.expires_ms > now_ms)?;
        let live = || records.nsecs.iter().filter(|k| k.expires_ms > now_ms);
        let fact = |k: &Kept, name: &Name| {
            cached_fact(
                zone,
                &k.record,
                name,
                question.qtype,
                &mut HashBudget::with_limit(0),
            )
            .unwrap_or(CachedFact::Unknown)
        };
        let (first, fact1) = live().find_map(|k| match fact(k, &question.name) {
            CachedFact::Unknown => None,
            f => Some((k, f)),
        })?;
        let mut proof = vec![first];
        if let CachedFact::NameAbsent { wildcard: Some(w) } = fact1 {
            let second = live().find(|k| !matches!(fact(k, &w), CachedFact::Unknown))?;
            if !std::ptr::eq(second, first) {
                proof.push(second);
            }
        }
        let records: Vec<Record> = proof.iter().map(|k| k.record.clone()).collect();
        let denial = denial::aggressive_denial(
            zone,
            &records,
            &question.name,
            question.qtype,
            &mut HashBudget::with_limit(0),
        )?;
        // RFC 8198 section 5.4: no longer than the SOA's negative TTL or any record used.
        let ttl = proof
            .iter()
            .map(|k| k.remaining_s(now_ms))
            .chain([soa.remaining_s(now_ms), soa_minimum(&soa.record)])
            .min()
            .unwrap_or(0);
        if ttl == 0 {
            return None;
        }
        let mut m = Message::outgoing(question, flags, 0, crate::wire::edns::DEFAULT_PAYLOAD);
        m.header.response = true;
        m.header.recursion_available = true;
        m.set_rcode(match denial {
            Denial::NxDomain => Rcode::NXDOMAIN,
            _ => Rcode::NOERROR,
        });
        for k in std::iter::once(soa).chain(proof) {
            for r in std::iter::once(&k.record).chain(&k.sigs) {
                let mut r = r.clone();
                r.ttl = ttl;
                m.authority.push(r);
            }
        }
        Some(m)
    }

    /// Number of NSEC records kept, over all zones.
    pub fn len(&self) -> usize {
        lock(&self.zones).values().map(|z| z.nsecs.len()).sum()
    }

    /// True when no NSEC record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The zone with kept records closest above `name`.
fn closest<'a>(
    zones: &'a HashMap<Name, ZoneRecords>,
    name: &Name,
) -> Option<(&'a Name, &'a ZoneRecords)> {
    let mut cur = Some(name.clone());
    while let Some(n) = cur {
        if let Some((zone, records)) = zones.get_key_value(&n) {
            return Some((zone, records));
        }
        cur = n.parent();
    }
    None
}

fn soa_minimum(soa: &Record) -> u32 {
    match &soa.data {
        RData::Soa(s) => s.minimum.min(soa.ttl),
        _ => 0,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
