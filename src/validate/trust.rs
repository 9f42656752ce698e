//! The chain of trust: from a trust anchor down to the zone that signed an answer, one zone cut at
//! a time, with what each step established kept for its TTL.
//!
//! ```text
//!   anchor zone --DNSKEY, checked against the anchor--> keys of the anchor zone
//!     for each name n between the anchor and the target, one label at a time:
//!       DS n --signed by the zone above, verified-->     DNSKEY n checked against it: Cut(keys of n)
//!            \--NODATA proven by the zone above-------> NotCut (n is inside the zone above)
//!            \--no DS, NS bit (or opt-out) proven-----> Insecure: stop, everything below is unsigned
//!            \--NXDOMAIN proven------------------------> Nonexistent: stop, the zone above holds it
//!            \--anything that fails to verify----------> Bogus: stop
//! ```
//!
//! Why one label at a time, from the top: a forwarder does not see zone cuts, and an unsigned
//! answer does not say which zone it comes from. Asking DS for each name on the way down is the
//! one method that finds every cut and proves where signing stops (RFC 4035 section 5.2, the way
//! unbound proves an answer insecure). For a signed answer the walk stops at the zone named by
//! the RRSIG's signer field, so a name deep below its zone costs nothing extra.
//!
//! Each step is remembered per name ([`Step`]) until the TTL of the records that proved it
//! (bogus steps for [`BOGUS_TTL`]), so a zone's DS and DNSKEY are asked once per TTL, not once
//! per name; concurrent queries needing the same step wait for one lookup ([`Flights`]). The
//! table holds at most [`MAX_STEPS`] names; past that, expired steps go first, then arbitrary
//! ones (a step is cheap to redo).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::rrsets::{self, Signed};
use super::{FetchError, Work};
use crate::dnssec::denial::{self, Denial, Proven};
use crate::dnssec::{verify_dnskey_rrset, verify_rrset, TrustAnchors, VerifyError, ZoneAnchor};
use crate::handler::{Bogus, BogusReason, HandlerError, Verdict, BOGUS_TTL};
use crate::wire::{Message, Name, RType, Rcode};

/// The longest a step is kept, in seconds, whatever its records' TTLs say.
pub const MAX_STEP_TTL: u32 = 86_400;

/// The most names whose steps are remembered.
pub const MAX_STEPS: usize = 16_384;

/// The keys of a zone whose DNSKEY RRset has been authenticated.
#[derive(Debug)]
pub struct ZoneKeys {
    pub zone: Name,
    pub keys: Vec<crate::wire::Record>,
}

/// What is known about the zone holding a name.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The zone is signed and these are its authentic keys.
    Secure(Arc<ZoneKeys>),
    /// Signing stops above the name (an insecure delegation, a negative trust anchor, algorithms
    /// we do not validate); the Extended DNS Error explaining it, if one does.
    Insecure(Option<u16>),
    /// The chain of trust is broken.
    Bogus(Bogus),
    /// No trust anchor covers the name.
    Indeterminate,
}

/// What the lookups at one name established.
#[derive(Clone, Debug)]
enum Step {
    /// A zone cut with a secure zone below it.
    Cut(Arc<ZoneKeys>),
    /// The name is inside the zone above it.
    NotCut,
    /// The name does not exist; nothing below it does either.
    Nonexistent,
    Insecure(Option<u16>),
    Bogus(Bogus),
}

/// Steps being worked out, so that concurrent walks share one lookup per name.
type Flights = Mutex<HashMap<Name, Arc<OnceCell<Result<(Step, u32), HandlerError>>>>>;

/// The trust anchors, the remembered steps and the lookups in flight.
pub struct TrustCache {
    anchors: TrustAnchors,
    steps: Mutex<HashMap<Name, (Step, u64)>>,
    flights: Flights,
}

impl TrustCache {
    pub fn new(anchors: TrustAnchors) -> TrustCache {
        TrustCache {
            anchors,
            steps: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// Forgets every remembered step (a reload of the anchors, tests).
    pub fn clear(&self) {
        lock(&self.steps).clear();
    }

    /// Number of names with a remembered step.
    pub fn len(&self) -> usize {
        lock(&self.steps).len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trust of the zone that holds `target`: walks from the closest anchor down to `target`
    /// and stops early where signing stops or the name ends; [`Trust::Indeterminate`] for a name
    /// no anchor covers.
    pub(super) async fn walk(
        &self,
        target: &Name,
        work: &mut Work<'_>,
    ) -> Result<Trust, HandlerError> {
        let Some(anchor) = self.anchors.closest(target) else {
            return Ok(Trust::Indeterminate);
        };
        let top = anchor.zone().clone();
        let mut keys = match self.anchor_step(anchor, work).await? {
            Step::Cut(k) => k,
            other => return Ok(trust_of(other)),
        };
        let depth = target.label_count();
        for labels in top.label_count() + 1..=depth {
            let name = target.trim_to(labels);
            match self.step(&name, &keys, work).await? {
                Step::Cut(k) => keys = k,
                Step::NotCut => {}
                Step::Nonexistent => break,
                other => return Ok(trust_of(other)),
            }
        }
        Ok(Trust::Secure(keys))
    }

    /// The anchor zone's keys, from its DNSKEY RRset checked against the anchor.
    async fn anchor_step(
        &self,
        anchor: &ZoneAnchor,
        work: &mut Work<'_>,
    ) -> Result<Step, HandlerError> {
        let zone = anchor.zone().clone();
        let now_ms = work.now_ms;
        let fut = async {
            let msg = work.fetch(&zone, RType::DNSKEY).await?;
            let sets = rrsets::group(&msg.answers);
            let Some(dnskeys) = rrsets::find(&sets, &zone, RType::DNSKEY) else {
                return Ok(bogus(
                    BogusReason::DnskeyMissing,
                    format!("no DNSKEY for {zone}"),
                ));
            };
            let checked =
                anchor.verify_dnskeys(&dnskeys.rrset, &dnskeys.sigs, work.now, &mut work.budget);
            Ok(match checked {
                Ok(v) => (cut(&zone, dnskeys), v.ttl),
                Err(e) => failed(&e),
            })
        };
        self.remembered(&zone, now_ms, fut).await
    }

    /// The step at `name`, below the secure zone `above`.
    async fn step(
        &self,
        name: &Name,
        above: &Arc<ZoneKeys>,
        work: &mut Work<'_>,
    ) -> Result<Step, HandlerError> {
        let now_ms = work.now_ms;
        let fut = async {
            let msg = work.fetch(name, RType::DS).await?;
            let sets = rrsets::group(&msg.answers);
            if let Some(ds) = rrsets::find(&sets, name, RType::DS) {
                return delegation(name, ds, above, work).await;
            }
            if let Some(cname) = rrsets::find(&sets, name, RType::CNAME) {
                // An alias is no zone cut (RFC 2181 section 10.1: nothing else lives at its name).
                return Ok(
                    match verify_rrset(
                        &cname.rrset,
                        &cname.sigs,
                        &above.keys,
                        work.now,
                        &mut work.budget,
                    ) {
                        Ok(v) => (Step::NotCut, v.ttl),
                        Err(e) => failed(&e),
                    },
                );
            }
            no_ds(name, &msg, above, work)
        };
        self.remembered(name, now_ms, fut).await
    }

    /// The remembered step for `name`, or `compute`'s, shared with concurrent callers and then
    /// remembered.
    async fn remembered(
        &self,
        name: &Name,
        now_ms: u64,
        compute: impl std::future::Future<Output = Result<(Step, u32), HandlerError>>,
    ) -> Result<Step, HandlerError> {
        if let Some((step, expires)) = lock(&self.steps).get(name) {
            if *expires > now_ms {
                return Ok(step.clone());
            }
        }
        let cell = lock(&self.flights)
            .entry(name.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let result = cell.get_or_init(|| compute).await.clone();
        {
            let mut flights = lock(&self.flights);
            if flights.get(name).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                flights.remove(name);
            }
        }
        let (step, ttl) = result?;
        let ttl = match step {
            Step::Bogus(_) => BOGUS_TTL,
            _ => ttl.min(MAX_STEP_TTL),
        };
        if ttl > 0 {
            self.remember(name, step.clone(), now_ms + u64::from(ttl) * 1000, now_ms);
        }
        Ok(step)
    }

    fn remember(&self, name: &Name, step: Step, expires: u64, now_ms: u64) {
        let mut steps = lock(&self.steps);
        if steps.len() >= MAX_STEPS && !steps.contains_key(name) {
            steps.retain(|_, (_, e)| *e > now_ms);
            if steps.len() >= MAX_STEPS {
                let drop: Vec<Name> = steps.keys().take(MAX_STEPS / 8).cloned().collect();
                for n in drop {
                    steps.remove(&n);
                }
            }
        }
        steps.insert(name.clone(), (step, expires));
    }
}

/// A DS RRset at `name`, signed by the zone above: verify it, then the child's DNSKEY RRset
/// against it.
async fn delegation(
    name: &Name,
    ds: &Signed,
    above: &ZoneKeys,
    work: &mut Work<'_>,
) -> Result<(Step, u32), HandlerError> {
    let ds_ttl = match verify_rrset(&ds.rrset, &ds.sigs, &above.keys, work.now, &mut work.budget) {
        Ok(v) => v.ttl,
        Err(e) => return Ok(failed(&e)),
    };
    let msg = work.fetch(name, RType::DNSKEY).await?;
    let sets = rrsets::group(&msg.answers);
    let Some(dnskeys) = rrsets::find(&sets, name, RType::DNSKEY) else {
        return Ok(bogus(
            BogusReason::DnskeyMissing,
            format!("no DNSKEY for {name}"),
        ));
    };
    Ok(
        match verify_dnskey_rrset(
            &dnskeys.rrset,
            &dnskeys.sigs,
            &ds.rrset,
            work.now,
            &mut work.budget,
        ) {
            Ok(v) => (cut(name, dnskeys), v.ttl.min(ds_ttl)),
            Err(e) => failed(&e),
        },
    )
}

/// No DS at `name`: the zone above must prove why (RFC 4035 section 5.2).
fn no_ds(
    name: &Name,
    msg: &Message,
    above: &ZoneKeys,
    work: &mut Work<'_>,
) -> Result<(Step, u32), HandlerError> {
    let rcode = msg.rcode();
    if rcode != Rcode::NOERROR && rcode != Rcode::NXDOMAIN {
        return Err(HandlerError::upstream(FetchError::Rcode {
            name: name.clone(),
            rtype: RType::DS,
            rcode,
        }));
    }
    let (records, ttl) = match verified_denial(msg, above, work) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Ok(bogus(
                BogusReason::NsecMissing,
                format!("no NSEC or NSEC3 proving that {name} has no DS"),
            ))
        }
        Err(e) => return Ok(failed(&e)),
    };
    let zone = &above.zone;
    let proven = if rcode == Rcode::NXDOMAIN {
        denial::prove_nxdomain(zone, &records, name, &mut work.hashes)
    } else {
        denial::prove_nodata(zone, &records, name, RType::DS, &mut work.hashes)
    };
    Ok(match proven {
        Ok(Proven::Secure(Denial::InsecureDelegation)) => (Step::Insecure(None), ttl),
        Ok(Proven::Secure(Denial::NxDomain)) => (Step::Nonexistent, ttl),
        Ok(Proven::Secure(_)) => (Step::NotCut, ttl),
        Ok(Proven::Insecure(why)) => (Step::Insecure(why.ede()), ttl),
        Err(e) => bogus(e.reason(), format!("DS denial for {name}: {e}")),
    })
}

/// The NSEC and NSEC3 records of `msg`'s authority section signed by `zone`, each RRset verified
/// with the zone's keys, and the lowest TTL among them; `None` when there are none. Records
/// signed by another zone (a proof for another link of a chain) or unsigned are left out: a
/// proof that needs them then finds them missing.
pub(super) fn verified_denial(
    msg: &Message,
    zone: &ZoneKeys,
    work: &mut Work<'_>,
) -> Result<Option<(Vec<crate::wire::Record>, u32)>, VerifyError> {
    let sets = rrsets::group(&msg.authority);
    let mut records = Vec::new();
    let mut ttl = u32::MAX;
    for set in sets.iter().filter(|s| rrsets::is_denial(s.rtype())) {
        if !set.owner().is_subdomain_of(&zone.zone) || set.signer() != Some(&zone.zone) {
            continue;
        }
        let v = verify_rrset(
            &set.rrset,
            &set.sigs,
            &zone.keys,
            work.now,
            &mut work.budget,
        )?;
        ttl = ttl.min(v.ttl);
        records.extend(set.rrset.iter().cloned());
    }
    Ok((!records.is_empty()).then_some((records, ttl)))
}

fn cut(zone: &Name, dnskeys: &Signed) -> Step {
    Step::Cut(Arc::new(ZoneKeys {
        zone: zone.clone(),
        keys: dnskeys.rrset.clone(),
    }))
}

/// The step a verification failure stands for: insecure for algorithms or digests we do not
/// validate, bogus otherwise.
fn failed(e: &VerifyError) -> (Step, u32) {
    match e.verdict() {
        Verdict::Bogus(b) => (Step::Bogus(b), BOGUS_TTL),
        _ => (Step::Insecure(Some(e.ede())), MAX_STEP_TTL),
    }
}

fn bogus(reason: BogusReason, detail: String) -> (Step, u32) {
    (
        Step::Bogus(Bogus {
            reason,
            detail: Arc::from(detail),
        }),
        BOGUS_TTL,
    )
}

fn trust_of(step: Step) -> Trust {
    match step {
        Step::Cut(k) => Trust::Secure(k),
        Step::Insecure(e) => Trust::Insecure(e),
        Step::Bogus(b) => Trust::Bogus(b),
        // Not reached for the anchor step; a name that does not exist below an anchor is held by
        // the anchor zone, which `walk` returns instead.
        Step::NotCut | Step::Nonexistent => Trust::Indeterminate,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_table_stays_within_its_bound() {
        let cache = TrustCache::new(TrustAnchors::iana_root());
        for i in 0..MAX_STEPS + 100 {
            let name: Name = format!("n{i}.example")
                .parse()
                .unwrap_or_else(|_| Name::root());
            cache.remember(&name, Step::NotCut, 10_000, 0);
        }
        assert!(cache.len() <= MAX_STEPS, "{}", cache.len());
        assert!(
            cache.len() > MAX_STEPS / 2,
            "evicts an eighth at a time, not all"
        );
    }
}
