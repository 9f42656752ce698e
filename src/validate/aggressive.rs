//! Aggressive use of validated NSEC and NSEC3 records (RFC 8198): a name that falls in a range a
//! secure denial already proved empty is answered NXDOMAIN (or NODATA) here, without asking
//! upstream.
//!
//! ```text
//!   secure NXDOMAIN/NODATA from zone Z --remember--> Z: SOA + NSEC/NSEC3 records (+ RRSIGs), by TTL
//!   query qname/qtype --closest zone with records--> NSEC: the one matching or covering qname
//!        (+ the one covering the wildcard at the closest encloser); NSEC3: those matching or
//!        covering the hashes of qname, its ancestors and their wildcards --aggressive_denial-->
//!        a synthesised NXDOMAIN/NODATA, Secure, with those records as its proof
//! ```
//!
//! An NSEC range is checked with name comparisons; an NSEC3 range needs the hashes of the
//! question's name, its ancestors and their wildcards (iterated SHA-1), so NSEC3 aggressive use
//! stops at [`MAX_NSEC3_DEPTH`] labels below the zone and at the iterations cutoff. (unbound's
//! `aggressive-nsec` uses NSEC only.) Opt-out ranges prove nothing here (RFC 8198 section 5.2).
//!
//! The records come from answers the validator judged secure, so they are authentic; a
//! synthesised answer carries them (and their RRSIGs) so a validating client can check it too.
//! Bounds: [`MAX_ZONES`] zones and [`MAX_NSEC_PER_ZONE`] NSEC records per zone, each kept no longer
//! than its TTL (capped by its signature, as the judge capped it); the oldest go first.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::dnssec::denial::{
    self, cached_fact, CachedFact, Denial, HashBudget, MAX_NSEC3_ITERATIONS, MAX_NSEC3_RECORDS,
};
use crate::wire::{Message, Name, QueryFlags, Question, RData, RType, Rcode, Record};

/// The most zones whose NSEC records are kept.
pub const MAX_ZONES: usize = 1024;
/// The most NSEC or NSEC3 records kept per zone.
pub const MAX_NSEC_PER_ZONE: usize = 256;
/// The deepest a name may lie below an NSEC3 zone for an aggressive answer: each label costs two
/// hashes (the name and the wildcard below it).
pub const MAX_NSEC3_DEPTH: usize = 8;

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
                RType::NSEC | RType::NSEC3 => {
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
        let live: Vec<&Kept> = records
            .nsecs
            .iter()
            .filter(|k| k.expires_ms > now_ms)
            .collect();
        let proof = match live.first()?.record.rtype() {
            RType::NSEC3 => nsec3_proof(zone, &live, question)?,
            _ => nsec_proof(zone, &live, question)?,
        };
        let records: Vec<Record> = proof.iter().map(|k| k.record.clone()).collect();
        let denial = denial::aggressive_denial(
            zone,
            &records,
            &question.name,
            question.qtype,
            &mut HashBudget::new(),
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

/// The NSEC records that decide `question`: the one matching or covering its name and, for a
/// name that does not exist, the one covering the wildcard at its closest encloser.
fn nsec_proof<'a>(zone: &Name, live: &[&'a Kept], question: &Question) -> Option<Vec<&'a Kept>> {
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
    let (first, fact1) = live.iter().find_map(|k| match fact(k, &question.name) {
        CachedFact::Unknown => None,
        f => Some((*k, f)),
    })?;
    let mut proof = vec![first];
    if let CachedFact::NameAbsent { wildcard: Some(w) } = fact1 {
        let second = *live
            .iter()
            .find(|k| !matches!(fact(k, &w), CachedFact::Unknown))?;
        if !std::ptr::eq(second, first) {
            proof.push(second);
        }
    }
    Some(proof)
}

/// The NSEC3 records that can decide `question`: those matching or covering the hash of its name,
/// of an ancestor down to the zone (the closest encloser and next closer name are among them), or
/// of the wildcard below one of those. Costs at most [`MAX_NSEC3_DEPTH`] x 2 hashes, and none when
/// the zone's iterations are above [`MAX_NSEC3_ITERATIONS`] (those prove nothing).
fn nsec3_proof<'a>(zone: &Name, live: &[&'a Kept], question: &Question) -> Option<Vec<&'a Kept>> {
    let (salt, iterations) = denial::nsec3_params(zone, &live.first()?.record)?;
    let depth = question
        .name
        .label_count()
        .checked_sub(zone.label_count())?;
    if iterations > MAX_NSEC3_ITERATIONS || depth > MAX_NSEC3_DEPTH {
        return None;
    }
    let mut hashes = Vec::with_capacity(2 * depth + 1);
    for labels in zone.label_count()..=question.name.label_count() {
        let name = question.name.trim_to(labels);
        hashes.push(denial::nsec3_hash(&name, salt, iterations));
        if labels < question.name.label_count() {
            if let Ok(w) = name.prepend(b"*") {
                hashes.push(denial::nsec3_hash(&w, salt, iterations));
            }
        }
    }
    let records: Vec<Record> = live.iter().map(|k| k.record.clone()).collect();
    let relevant = denial::nsec3_relevant(zone, &records, &hashes);
    let proof: Vec<&Kept> = live
        .iter()
        .filter(|k| relevant.iter().any(|r| r.name == k.record.name))
        .copied()
        .collect();
    (!proof.is_empty() && proof.len() <= MAX_NSEC3_RECORDS).then_some(proof)
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
