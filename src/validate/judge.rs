//! Judging one response: every RRset on the way from the question to the answer is verified with
//! the keys of the zone that signed it, and a denial is proven by the NSEC or NSEC3 records of
//! the zone that holds the name (RFC 4035 section 5.3 and 5.4).
//!
//! ```text
//!   question --CNAME/DNAME links, each verified--> last name --its RRset, verified--> Secure
//!                                                           \--no RRset: NXDOMAIN or NODATA
//!                                                              proven by NSEC/NSEC3--> Secure
//!   every check also yields Insecure (proven unsigned), Bogus(reason) or Indeterminate
//!   (no anchor); the response's verdict is the worst of them
//! ```
//!
//! A chain may pass from a secure zone to an insecure one (each link is judged on its own zone's
//! status, so the answer is then Insecure); it never passes from insecure to "secure" as a whole.
//! A CNAME synthesised from a DNAME carries no signature (RFC 6672 section 5.1): it is accepted
//! when the DNAME that makes it verifies and its target is exactly the substitution.
//!
//! What is verified also caps the TTLs: each verified RRset's TTL becomes at most its RRSIG's
//! original TTL and the time left before the signature expires (RFC 4035 section 5.3.3).
//!
//! Not judged: NS records in the authority section of a positive answer and the additional
//! section. They are hints for a resolver, not answers; a validating stub must not rely on them
//! (RFC 4035 section 4.9.1), and unbound passes them unvalidated too (`val-clean-additional`
//! drops them from secure answers; we keep them, without vouching for them).

use std::sync::Arc;

use super::rrsets::{self, Signed};
use super::trust::{verified_denial, Trust, TrustCache, ZoneKeys};
use super::Work;
use crate::dnssec::denial::{self, Proven};
use crate::dnssec::verify_rrset;
use crate::handler::{Bogus, BogusReason, HandlerError, Verdict};
use crate::wire::scrub::MAX_CNAME_CHAIN;
use crate::wire::{Message, Name, Question, RData, RType, Rcode};

/// The outcome for a response: its verdict, the Extended DNS Error to attach to an answer that is
/// still given (insecure for an unsupported algorithm, digest or NSEC3 iterations value), and the
/// TTL caps of the RRsets that verified.
#[derive(Debug)]
pub struct Judged {
    pub verdict: Verdict,
    pub ede: Option<u16>,
    pub caps: Vec<(Name, RType, u32)>,
    /// The zone whose NSEC or NSEC3 records proved the answer's denial, when one was proven
    /// secure.
    pub denial_zone: Option<Name>,
}

/// Folds the verdicts of the parts of one response into the response's.
struct Tally {
    judged: Judged,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            judged: Judged {
                verdict: Verdict::Secure,
                ede: None,
                caps: Vec::new(),
                denial_zone: None,
            },
        }
    }

    /// Worse verdicts win: bogus, then indeterminate, then insecure, then secure.
    fn add(&mut self, verdict: Verdict, ede: Option<u16>) {
        let rank = |v: &Verdict| match v {
            Verdict::Secure | Verdict::Unchecked => 0,
            Verdict::Insecure => 1,
            Verdict::Indeterminate => 2,
            Verdict::Bogus(_) => 3,
        };
        if rank(&verdict) > rank(&self.judged.verdict) {
            self.judged.verdict = verdict;
        }
        if self.judged.ede.is_none() {
            self.judged.ede = ede;
        }
    }

    fn bogus(&mut self, reason: BogusReason, detail: impl Into<String>) {
        let detail: String = detail.into();
        self.add(
            Verdict::Bogus(Bogus {
                reason,
                detail: Arc::from(detail),
            }),
            None,
        );
    }

    fn is_bogus(&self) -> bool {
        matches!(self.judged.verdict, Verdict::Bogus(_))
    }
}

/// Judges `msg`, the response to `question`.
pub(super) async fn judge(
    trust: &TrustCache,
    question: &Question,
    msg: &Message,
    work: &mut Work<'_>,
) -> Result<Judged, HandlerError> {
    let mut tally = Tally::new();
    let rcode = msg.rcode();
    if rcode != Rcode::NOERROR && rcode != Rcode::NXDOMAIN {
        tally.add(Verdict::Indeterminate, None);
        return Ok(tally.judged);
    }
    let answers = rrsets::group(&msg.answers);
    let qtype = question.qtype;
    let mut current = question.name.clone();
    for _ in 0..=MAX_CNAME_CHAIN + 1 {
        if tally.is_bogus() {
            return Ok(tally.judged);
        }
        if qtype != RType::CNAME {
            if let Some(cname) = rrsets::find(&answers, &current, RType::CNAME) {
                let RData::Cname(target) = &cname.rrset[0].data else {
                    break;
                };
                let target = target.clone();
                match synthesising_dname(&answers, cname, &target) {
                    Some(dname) => rrset(trust, dname, msg, &mut tally, work).await?,
                    None => rrset(trust, cname, msg, &mut tally, work).await?,
                }
                current = target;
                continue;
            }
        }
        let data: Vec<&Signed> = answers
            .iter()
            .filter(|s| s.owner() == &current && (qtype == RType::ANY || s.rtype() == qtype))
            .collect();
        if data.is_empty() {
            denial_of(trust, &current, qtype, msg, &mut tally, work).await?;
        } else {
            for set in data {
                rrset(trust, set, msg, &mut tally, work).await?;
            }
        }
        return Ok(tally.judged);
    }
    // The scrubber refuses longer chains before they get here.
    tally.bogus(BogusReason::Other, "CNAME chain too long to validate");
    Ok(tally.judged)
}

/// The DNAME an unsigned CNAME was synthesised from: a DNAME in the answer at a proper ancestor
/// of the CNAME's owner whose substitution gives exactly the CNAME's target (RFC 6672 section
/// 2.2).
pub(super) fn synthesising_dname<'a>(
    answers: &'a [Signed],
    cname: &Signed,
    target: &Name,
) -> Option<&'a Signed> {
    if !cname.sigs.is_empty() {
        return None;
    }
    let owner = cname.owner();
    answers.iter().find(|s| {
        if s.rtype() != RType::DNAME || s.owner().label_count() >= owner.label_count() {
            return false;
        }
        let RData::Dname(to) = &s.rrset[0].data else {
            return false;
        };
        owner.is_subdomain_of(s.owner())
            && substitute(owner, s.owner(), to).as_ref() == Some(target)
    })
}

/// `name` with its suffix `from` replaced by `to`.
fn substitute(name: &Name, from: &Name, to: &Name) -> Option<Name> {
    let keep = name.label_count() - from.label_count();
    let labels: Vec<&[u8]> = name.labels().take(keep).chain(to.labels()).collect();
    Name::from_labels(labels).ok()
}

/// Judges one RRset of the answer.
async fn rrset(
    trust: &TrustCache,
    set: &Signed,
    msg: &Message,
    tally: &mut Tally,
    work: &mut Work<'_>,
) -> Result<(), HandlerError> {
    let owner = set.owner().clone();
    let rtype = set.rtype();
    let Some(signer) = set.signer().cloned() else {
        // Unsigned: fine only where signing has stopped above the owner.
        match trust.walk(&owner, work).await? {
            Trust::Secure(keys) => tally.bogus(
                BogusReason::RrsigsMissing,
                format!("no RRSIG over {owner} {rtype} in signed zone {}", keys.zone),
            ),
            other => add_trust(tally, other),
        }
        return Ok(());
    };
    let what = format!("{owner} {rtype}");
    let Some(keys) = signer_keys(trust, &signer, &what, tally, work).await? else {
        return Ok(());
    };
    let verified = match verify_rrset(
        &set.rrset,
        &set.sigs,
        &keys.keys,
        work.now,
        &mut work.budget,
    ) {
        Ok(v) => v,
        Err(e) => {
            tally.add(e.verdict(), Some(e.ede()).filter(|_| e.is_insecure()));
            return Ok(());
        }
    };
    tally.judged.caps.push((owner.clone(), rtype, verified.ttl));
    if let Some(wildcard) = &verified.wildcard {
        // A wildcard expansion: the name closer to the question must be proven absent (RFC 4035
        // section 5.3.4), with the signer's own NSEC or NSEC3 records.
        let labels = wildcard.closest_encloser.label_count() as u8;
        match verified_denial(msg, &keys, work) {
            Ok(Some((records, ttl))) => {
                let proven = denial::prove_wildcard_answer(
                    &keys.zone,
                    &records,
                    &owner,
                    labels,
                    &mut work.hashes,
                );
                add_proven(tally, proven, &owner);
                cap_denial(tally, msg, &keys.zone, ttl);
            }
            Ok(None) => tally.bogus(
                BogusReason::NsecMissing,
                format!("wildcard answer for {owner} without a proof that no closer name exists"),
            ),
            Err(e) => tally.add(e.verdict(), None),
        }
    }
    Ok(())
}

/// Judges a denial: no `qtype` at `name` (NODATA) or no `name` at all (NXDOMAIN).
async fn denial_of(
    trust: &TrustCache,
    name: &Name,
    qtype: RType,
    msg: &Message,
    tally: &mut Tally,
    work: &mut Work<'_>,
) -> Result<(), HandlerError> {
    let authority = rrsets::group(&msg.authority);
    // The deepest zone above the name that signed denial records: a chain through several zones
    // may bring the proofs of each (a wildcard's from one zone, the final denial from another).
    let signer = authority
        .iter()
        .filter(|s| rrsets::is_denial(s.rtype()) || s.rtype() == RType::SOA)
        .filter_map(|s| s.signer().filter(|z| name.is_subdomain_of(z)))
        .max_by_key(|z| z.label_count())
        .cloned();
    let Some(zone) = signer else {
        match trust.walk(name, work).await? {
            Trust::Secure(keys) => tally.bogus(
                BogusReason::NsecMissing,
                format!(
                    "denial of {name} {qtype} without signed NSEC or NSEC3 from zone {}",
                    keys.zone
                ),
            ),
            other => add_trust(tally, other),
        }
        return Ok(());
    };
    let what = format!("the denial of {name}");
    let Some(keys) = signer_keys(trust, &zone, &what, tally, work).await? else {
        return Ok(());
    };
    if let Some(soa) = rrsets::find(&authority, &zone, RType::SOA) {
        match verify_rrset(
            &soa.rrset,
            &soa.sigs,
            &keys.keys,
            work.now,
            &mut work.budget,
        ) {
            Ok(v) => tally.judged.caps.push((zone.clone(), RType::SOA, v.ttl)),
            Err(e) => {
                tally.add(e.verdict(), None);
                return Ok(());
            }
        }
    }
    let (records, ttl) = match verified_denial(msg, &keys, work) {
        Ok(Some(found)) => found,
        Ok(None) => {
            tally.bogus(
                BogusReason::NsecMissing,
                format!("denial of {name} {qtype} without NSEC or NSEC3 records"),
            );
            return Ok(());
        }
        Err(e) => {
            tally.add(e.verdict(), None);
            return Ok(());
        }
    };
    let proven = if msg.rcode() == Rcode::NXDOMAIN {
        denial::prove_nxdomain(&zone, &records, name, &mut work.hashes)
    } else {
        denial::prove_nodata(&zone, &records, name, qtype, &mut work.hashes)
    };
    if matches!(proven, Ok(Proven::Secure(_))) {
        tally.judged.denial_zone = Some(zone.clone());
    }
    add_proven(tally, proven, name);
    cap_denial(tally, msg, &zone, ttl);
    Ok(())
}

/// The keys of `signer`, the zone whose RRSIGs sign `what`, when it is secure; otherwise the
/// verdict its trust gives (insecure, bogus, indeterminate) goes into `tally` and the answer is
/// `None`. A signer that is not itself a zone apex is bogus: its signatures cannot be checked
/// against any zone's keys.
async fn signer_keys(
    trust: &TrustCache,
    signer: &Name,
    what: &str,
    tally: &mut Tally,
    work: &mut Work<'_>,
) -> Result<Option<Arc<ZoneKeys>>, HandlerError> {
    let keys = match trust.walk(signer, work).await? {
        Trust::Secure(keys) => keys,
        other => {
            add_trust(tally, other);
            return Ok(None);
        }
    };
    if keys.zone != *signer {
        tally.bogus(
            BogusReason::Other,
            format!(
                "{what} is signed by {signer}, which is not a zone (the zone is {})",
                keys.zone
            ),
        );
        return Ok(None);
    }
    Ok(Some(keys))
}

/// Records the TTL cap of a verified denial on each NSEC and NSEC3 RRset of `zone`.
fn cap_denial(tally: &mut Tally, msg: &Message, zone: &Name, ttl: u32) {
    for r in &msg.authority {
        if rrsets::is_denial(r.rtype()) && r.name.is_subdomain_of(zone) {
            tally.judged.caps.push((r.name.clone(), r.rtype(), ttl));
        }
    }
}

fn add_proven(tally: &mut Tally, proven: Result<Proven, denial::DenialError>, name: &Name) {
    match proven {
        Ok(Proven::Secure(_)) => tally.add(Verdict::Secure, None),
        Ok(Proven::Insecure(why)) => tally.add(Verdict::Insecure, why.ede()),
        Err(e) => tally.bogus(e.reason(), format!("{name}: {e}")),
    }
}

fn add_trust(tally: &mut Tally, trust: Trust) {
    match trust {
        Trust::Secure(_) => tally.add(Verdict::Secure, None),
        Trust::Insecure(ede) => tally.add(Verdict::Insecure, ede),
        Trust::Bogus(b) => tally.add(Verdict::Bogus(b), None),
        Trust::Indeterminate => tally.add(Verdict::Indeterminate, None),
    }
}
