//! One response from an authoritative server, judged: an answer, a referral, or a lame server.
//!
//! ```text
//!   response to (zone's server, question)
//!     rcode not NOERROR/NXDOMAIN ---------------------------------> Lame(Rcode)
//!     no answer, NS in authority, no SOA:
//!        cut strictly inside the zone, at or above the question --> Referral (NS names + glue)
//!        anything else (upward, sideways, DS child side) ----------> Lame(BadReferral)
//!     AA=0 -------------------------------------------------------> Lame(NotAuthoritative)
//!     AA=1 --bailiwick: only records inside the zone--> scrub --> Answer   (or Unusable: loop)
//! ```
//!
//! Bailiwick (RFC 7626 threat model; unbound's `iter_scrub.c`): a server is believed only about
//! names inside the zone we asked it for. Records outside it in an answer (a CNAME target's data
//! from another zone the same server happens to host, an A record for another domain) are dropped,
//! so the chain continues with a query to the zone that owns them. Glue is taken only for name
//! server names inside the delegated zone itself: any other address must come from the zone that
//! owns the name. Then [`scrub`] keeps the records that answer the question (the CNAME/DNAME chain
//! with its RRSIGs, the SOA and NSEC/NSEC3 records of a denial) and refuses loops.
//!
//! Pure: no I/O, so the fuzz target ([`crate::recursor::fuzzing`]) runs it on any parsed packet.

use std::net::IpAddr;

use crate::wire::scrub::{scrub, ScrubError};
use crate::wire::{Message, Name, Question, RData, RType, Rcode, Record};

/// Most glue addresses taken from one referral.
pub const MAX_GLUE: usize = 64;

/// What a response says.
#[derive(Clone, Debug)]
pub enum Step {
    /// Authoritative data for the question (positive, NODATA or NXDOMAIN), inside the zone only.
    Answer(Message),
    /// The zone is delegated further down.
    Referral(Referral),
    /// The server is no use for this zone.
    Lame(Lame),
    /// Well formed, but its chain loops or runs too long.
    Unusable(ScrubError),
}

/// A delegation to a child zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referral {
    pub zone: Name,
    pub ns: Vec<Name>,
    /// Addresses of NS names inside `zone`.
    pub glue: Vec<(Name, IpAddr)>,
    /// The NS RRset's TTL.
    pub ttl: u32,
    /// The cut's DS RRset and the RRSIGs over it, as a parent's server sends them with a referral
    /// to a signed zone when DO is set (RFC 4035 section 3.1.4): the parent's answer to the
    /// validator's DS question for the cut, so that question costs no query of its own. Empty
    /// unless both are there, in the question's class (what a DS answer's scrub would keep):
    /// without them the DS is asked for as before.
    pub ds: Vec<Record>,
}

/// Why a server is lame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lame {
    Rcode(Rcode),
    NotAuthoritative,
    BadReferral,
}

/// Judges `msg`, the response of a server of `zone` to `asked`.
pub fn classify(mut msg: Message, zone: &Name, asked: &Question) -> Step {
    let rcode = msg.rcode();
    if !matches!(rcode, Rcode::NOERROR | Rcode::NXDOMAIN) {
        return Step::Lame(Lame::Rcode(rcode));
    }
    let has_soa = msg.authority.iter().any(|r| r.rtype() == RType::SOA);
    let ns_owner = msg
        .authority
        .iter()
        .find(|r| r.rtype() == RType::NS)
        .map(|r| r.name.clone());
    if rcode == Rcode::NOERROR && msg.answers.is_empty() && !has_soa {
        if let Some(cut) = ns_owner {
            return referral(&msg, cut, zone, asked);
        }
    }
    if !msg.header.authoritative {
        return Step::Lame(Lame::NotAuthoritative);
    }
    msg.answers.retain(|r| r.name.is_subdomain_of(zone));
    msg.authority.retain(|r| r.name.is_subdomain_of(zone));
    msg.additional.clear();
    match scrub(&mut msg, asked) {
        Ok(_) => Step::Answer(msg),
        Err(e) => Step::Unusable(e),
    }
}

fn referral(msg: &Message, cut: Name, zone: &Name, asked: &Question) -> Step {
    let downward = cut.is_subdomain_of(zone)
        && cut.label_count() > zone.label_count()
        && asked.name.is_subdomain_of(&cut);
    // DS lives on the parent's side of the cut: a referral to the child for it is no answer.
    let child_side_ds = asked.qtype == RType::DS && cut.eq_ignore_case(&asked.name);
    if !downward || child_side_ds {
        return Step::Lame(Lame::BadReferral);
    }
    let mut ns: Vec<Name> = Vec::new();
    let mut ttl = u32::MAX;
    for r in &msg.authority {
        if let RData::Ns(target) = &r.data {
            if r.name.eq_ignore_case(&cut) && !ns.iter().any(|n| n.eq_ignore_case(target)) {
                ns.push(target.clone());
                ttl = ttl.min(r.ttl);
            }
        }
    }
    let mut glue = Vec::new();
    for r in &msg.additional {
        let ip = match r.data {
            RData::A(a) => IpAddr::V4(a),
            RData::Aaaa(a) => IpAddr::V6(a),
            _ => continue,
        };
        if glue.len() < MAX_GLUE
            && r.name.is_subdomain_of(&cut)
            && ns.iter().any(|n| n.eq_ignore_case(&r.name))
        {
            glue.push((r.name.clone(), ip));
        }
    }
    let mut ds: Vec<Record> = msg
        .authority
        .iter()
        .filter(|r| {
            r.name.eq_ignore_case(&cut)
                && r.class == asked.qclass
                && match &r.data {
                    RData::Rrsig(sig) => sig.type_covered == RType::DS,
                    _ => r.rtype() == RType::DS,
                }
        })
        .cloned()
        .collect();
    let has = |t: RType| ds.iter().any(|r| r.rtype() == t);
    if !(has(RType::DS) && has(RType::RRSIG)) {
        ds.clear();
    }
    Step::Referral(Referral {
        zone: cut,
        ns,
        glue,
        ttl,
        ds,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{parse_record_line, Record};

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }
    fn rec(line: &str) -> Record {
        parse_record_line(line, 300).unwrap()
    }
    fn response(q: &Question, aa: bool, an: &[&str], ns: &[&str], ar: &[&str]) -> Message {
        let mut m = Message::response_to(&Message::query(q.name.clone(), q.qtype));
        m.header.authoritative = aa;
        m.answers = an.iter().map(|l| rec(l)).collect();
        m.authority = ns.iter().map(|l| rec(l)).collect();
        m.additional = ar.iter().map(|l| rec(l)).collect();
        m
    }

    #[test]
    fn a_referral_keeps_only_in_bailiwick_glue() {
        let q = Question::new(n("www.example.test"), RType::A);
        let m = response(
            &q,
            false,
            &[],
            &[
                "example.test NS ns1.example.test",
                "example.test NS ns.other.test",
            ],
            &[
                "ns1.example.test A 192.0.2.1",
                "ns.other.test A 6.6.6.6",
                "evil. A 6.6.6.6",
            ],
        );
        let Step::Referral(r) = classify(m, &n("test"), &q) else {
            panic!()
        };
        assert_eq!(r.zone, n("example.test"));
        assert_eq!(r.ns, vec![n("ns1.example.test"), n("ns.other.test")]);
        assert_eq!(
            r.glue,
            vec![(n("ns1.example.test"), "192.0.2.1".parse().unwrap())]
        );
        assert_eq!(r.ttl, 300);
    }

    #[test]
    fn a_referral_carries_the_cuts_ds_and_its_signatures_only() {
        let q = Question::new(n("www.example.test"), RType::A);
        let sig = |covered: &str, owner: &str| {
            format!("{owner} RRSIG {covered} 13 2 300 20300101000000 20200101000000 1 test. AAAA")
        };
        let m = response(
            &q,
            false,
            &[],
            &[
                "example.test NS ns1.example.test",
                "example.test DS 1 13 2 0000000000000000000000000000000000000000000000000000000000000000",
                &sig("DS", "example.test"),
                &sig("NSEC", "example.test"),
                "other.test DS 2 13 2 0000000000000000000000000000000000000000000000000000000000000000",
                &sig("DS", "other.test"),
            ],
            &["ns1.example.test A 192.0.2.1"],
        );
        let Step::Referral(r) = classify(m, &n("test"), &q) else {
            panic!()
        };
        let kept: Vec<String> =
            r.ds.iter()
                .map(|x| format!("{} {}", x.name, x.rtype()))
                .collect();
        assert_eq!(kept, ["example.test. DS", "example.test. RRSIG"]);

        // A DS without its signature, or a signature without its DS, or either in another class,
        // is not kept: the validator then asks the parent for the DS as before.
        let ds = "example.test DS 1 13 2 0000000000000000000000000000000000000000000000000000000000000000";
        let covering = sig("DS", "example.test");
        let referral_with = |authority: &[&str], chaos: bool| {
            let mut lines = vec!["example.test NS ns1.example.test"];
            lines.extend_from_slice(authority);
            let mut m = response(&q, false, &[], &lines, &[]);
            if chaos {
                for r in m.authority.iter_mut().skip(1) {
                    r.class = crate::wire::Class::CH;
                }
            }
            match classify(m, &n("test"), &q) {
                Step::Referral(r) => r.ds,
                other => panic!("{other:?}"),
            }
        };
        assert!(referral_with(&[ds], false).is_empty());
        assert!(referral_with(&[&covering], false).is_empty());
        assert!(referral_with(&[ds, &covering], true).is_empty());
        assert_eq!(referral_with(&[ds, &covering], false).len(), 2);
    }

    #[test]
    fn upward_and_sideways_referrals_are_lame() {
        let q = Question::new(n("www.example.test"), RType::A);
        for cut in [".", "test", "other.test", "www.example.test.deeper"] {
            let line = format!("{cut} NS ns.somewhere.");
            let m = response(&q, false, &[], &[&line], &[]);
            assert!(
                matches!(classify(m, &n("test"), &q), Step::Lame(Lame::BadReferral)),
                "{cut}"
            );
        }
        let ds = Question::new(n("example.test"), RType::DS);
        let m = response(&ds, false, &[], &["example.test NS ns.example.test"], &[]);
        assert!(matches!(
            classify(m, &n("test"), &ds),
            Step::Lame(Lame::BadReferral)
        ));
    }

    #[test]
    fn answers_need_authority_and_lose_what_lies_outside_the_zone() {
        let q = Question::new(n("www.evil.test"), RType::A);
        let m = response(
            &q,
            true,
            &[
                "www.evil.test CNAME www.example.test",
                "www.example.test A 6.6.6.6",
            ],
            &["example.test NS ns.evil.test"],
            &["ns.evil.test A 6.6.6.6"],
        );
        let Step::Answer(a) = classify(m.clone(), &n("evil.test"), &q) else {
            panic!()
        };
        assert_eq!(a.answers, vec![rec("www.evil.test CNAME www.example.test")]);
        assert!(a.authority.is_empty() && a.additional.is_empty());
        let mut not_aa = m.clone();
        not_aa.header.authoritative = false;
        assert!(matches!(
            classify(not_aa, &n("evil.test"), &q),
            Step::Lame(Lame::NotAuthoritative)
        ));
        let mut refused = m;
        refused.set_rcode(Rcode::REFUSED);
        assert!(matches!(
            classify(refused, &n("evil.test"), &q),
            Step::Lame(Lame::Rcode(Rcode::REFUSED))
        ));
    }

    #[test]
    fn a_loop_inside_one_answer_is_unusable() {
        let q = Question::new(n("a.loop.test"), RType::A);
        let m = response(
            &q,
            true,
            &[
                "a.loop.test CNAME b.loop.test",
                "b.loop.test CNAME a.loop.test",
            ],
            &[],
            &[],
        );
        assert!(matches!(
            classify(m, &n("loop.test"), &q),
            Step::Unusable(ScrubError::Loop(_))
        ));
    }

    #[test]
    fn negative_answers_keep_their_soa() {
        let q = Question::new(n("none.example.test"), RType::A);
        let mut m = response(
            &q,
            true,
            &[],
            &["example.test SOA ns1.example.test. h.example.test. 1 2 3 4 60"],
            &[],
        );
        m.set_rcode(Rcode::NXDOMAIN);
        let Step::Answer(a) = classify(m, &n("example.test"), &q) else {
            panic!()
        };
        assert_eq!(a.rcode(), Rcode::NXDOMAIN);
        assert_eq!(a.authority.len(), 1);
    }
}
