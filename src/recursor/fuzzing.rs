//! The bodies of the `referral` and `answer_case` fuzz targets.
//!
//! `referral`: any packet, parsed, judged as the response of a zone's server ([`super::step::classify`]). Whatever it holds, judging it must not panic, a referral
//! must point strictly below the zone and at or above the question, its glue must lie inside the
//! delegated zone, and an answer must keep nothing outside the zone.

use super::case;
use super::step::{classify, Step, MAX_GLUE};
use crate::upstream::plain::{question_match, QuestionMatch};
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

/// Runs one input of the `answer_case` fuzz target: any packet as the answer to a query for its
/// own question (or `www.example.`), in a random-looking case. Matching it ([`question_match`])
/// and writing the asked case back ([`case::restore_question`]) must not panic; the rewrite may
/// change nothing but the letter case of the question's octets, after which the answer matches
/// the asked query exactly whenever it matched the sent one ignoring case.
pub fn answer_case(data: &[u8]) {
    let mut answer = data.to_vec();
    let name = crate::upstream::plain::question_name_of(data)
        .unwrap_or_else(|| "www.example".parse().unwrap_or_else(|_| Name::root()));
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let asked = name.to_lowercase();
    let mut sent = asked.as_wire().to_vec();
    for (i, b) in sent.iter_mut().enumerate() {
        if i % 3 == 0 {
            b.make_ascii_uppercase();
        }
    }
    let Ok(sent) = Name::from_wire(&sent) else {
        return;
    };
    let query = |n: &Name| {
        let mut m = Message::query(n.clone(), RType::A);
        m.header.id = id;
        m.encode().ok()
    };
    let (Some(sent_q), Some(asked_q)) = (query(&sent), query(&asked)) else {
        return;
    };
    let before = question_match(&sent_q, data);
    if case::restore_question(&mut answer, &asked) {
        assert_eq!(answer.len(), data.len());
        assert!(answer.eq_ignore_ascii_case(data));
        if before != QuestionMatch::No {
            assert_eq!(question_match(&asked_q, &answer), QuestionMatch::Exact);
        }
    } else {
        assert_eq!(answer, data);
    }
}
