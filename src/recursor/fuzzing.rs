//! The body of the `referral` fuzz target: any packet, parsed, judged as the response of a zone's
//! server ([`super::step::classify`]). Whatever it holds, judging it must not panic, a referral
//! must point strictly below the zone and at or above the question, its glue must lie inside the
//! delegated zone, and an answer must keep nothing outside the zone.

use super::step::{classify, Step, MAX_GLUE};
use crate::wire::{Message, Name, Question, RType};

/// Runs one input.
pub fn referral(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let asked = match msg.question() {
        Some(q) => q.clone(),
        None => Question::new(Name::root(), RType::A),
    };
    // The zone: the question's parent (or the root), as if a parent's server were asked.
    let zone = asked.name.parent().unwrap_or_else(Name::root);
    match classify(msg, &zone, &asked) {
        Step::Referral(r) => {
            assert!(r.zone.is_subdomain_of(&zone) && r.zone.label_count() > zone.label_count());
            assert!(asked.name.is_subdomain_of(&r.zone));
            assert!(r.glue.len() <= MAX_GLUE);
            assert!(r.glue.iter().all(|(n, _)| n.is_subdomain_of(&r.zone)));
        }
        Step::Answer(m) => {
            assert!(m.answers.iter().all(|r| r.name.is_subdomain_of(&zone)));
            assert!(m.authority.iter().all(|r| r.name.is_subdomain_of(&zone)));
            assert!(m.additional.is_empty());
        }
        Step::Lame(_) | Step::Unusable(_) => {}
    }
}
