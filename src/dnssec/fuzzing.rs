//! Bodies of the DNSSEC fuzz targets in `fuzz/` (`dnssec_records`, `trust_anchors`), kept in the
//! library so that `cargo test` (tests/fuzz_smoke.rs) runs them on stable Rust too. The property
//! is the one every parser and checker of hostile input owes: no panic and bounded work, whatever
//! the records claim (the budgets cap the signature checks and NSEC3 hashes).

use std::path::Path;

use super::denial::{self, HashBudget};
use super::{match_ds, verify_dnskey_rrset, verify_rrset, Budget, TrustAnchors};
use crate::wire::{Message, Name, RType, Record};

/// A moment inside most test signatures' windows (2030-01-01).
const NOW: u32 = 1_893_456_000;

/// `dnssec_records`: whatever a response holds, the denial proofs, the cached-fact checks and the
/// signature checks (against the DNSKEY and DS records it brings itself) return without panicking.
pub fn records(data: &[u8]) {
    let Ok(m) = Message::parse(data) else {
        return;
    };
    let Some(q) = m.question() else {
        return;
    };
    let zone = q.name.parent().unwrap_or_else(Name::root);
    let mut hashes = HashBudget::new();
    let auth = &m.authority;
    let _ = denial::prove_nxdomain(&zone, auth, &q.name, &mut hashes);
    let _ = denial::prove_nodata(&zone, auth, &q.name, q.qtype, &mut hashes);
    let _ = denial::prove_insecure_delegation(&zone, auth, &q.name, &mut hashes);
    for labels in 0..=q.name.label_count().min(8) as u8 {
        let _ = denial::prove_wildcard_answer(&zone, auth, &q.name, labels, &mut hashes);
    }
    for r in auth.iter().take(16) {
        let _ = denial::cached_fact(&zone, r, &q.name, q.qtype, &mut hashes);
    }
    let _ = denial::aggressive_denial(&zone, auth, &q.name, q.qtype, &mut hashes);
    if let Some((salt, iterations)) = auth.iter().find_map(|r| denial::nsec3_params(&zone, r)) {
        if iterations <= denial::MAX_NSEC3_ITERATIONS {
            let h = denial::nsec3_hash(&q.name, salt, iterations);
            let _ = denial::nsec3_relevant(&zone, auth, &[h]);
        }
    }

    let all: Vec<Record> = m
        .answers
        .iter()
        .chain(auth)
        .chain(&m.additional)
        .cloned()
        .collect();
    let of_type =
        |t: RType| -> Vec<Record> { all.iter().filter(|r| r.rtype() == t).cloned().collect() };
    let (keys, ds) = (of_type(RType::DNSKEY), of_type(RType::DS));
    let mut budget = Budget::new(16);
    let _ = match_ds(&ds, &keys);
    let _ = verify_dnskey_rrset(&keys, &all, &ds, NOW, &mut budget);
    for r in m
        .answers
        .iter()
        .filter(|r| r.rtype() != RType::RRSIG)
        .take(8)
    {
        let set: Vec<Record> = all
            .iter()
            .filter(|x| x.name == r.name && x.rtype() == r.rtype())
            .cloned()
            .collect();
        let _ = verify_rrset(&set, &all, &keys, NOW, &mut budget);
    }
}

/// `trust_anchors`: the anchor-file parser never panics, and what it accepts can be looked up.
pub fn anchors(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = TrustAnchors::parse(text, Path::new("fuzz")) {
        for z in a.iter() {
            assert!(
                a.closest(z.zone()).is_some(),
                "an accepted anchor is found again"
            );
        }
    }
}
