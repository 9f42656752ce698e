//! Unit tests of the validating stage's pure parts; the stage as a whole is tested end to end
//! against zones signed by ldns-signzone and served by nsd (tests/dnssec.rs).
#![allow(clippy::unwrap_used)]

use super::judge::{synthesising_dname, Judged};
use super::rrsets::group;
use super::*;
use crate::handler::Origin;
use crate::wire::{parse_record_line, Record};

fn rec(line: &str) -> Record {
    parse_record_line(line, 3600).unwrap()
}

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

#[test]
fn finish_caps_ttls_by_what_verified_and_attaches_the_insecure_ede() {
    let q = Message::query(name("www.example.com"), RType::A);
    let mut m = Message::response_to(&q);
    m.answers.push(rec("www.example.com. 3600 IN A 192.0.2.1"));
    m.answers.push(rec(
        "www.example.com. 3600 IN RRSIG A 13 3 3600 20300101000000 20200101000000 1 example.com. AAAA",
    ));
    m.answers
        .push(rec("other.example.com. 3600 IN A 192.0.2.2"));
    let answer = Answer::from_message(&m, Origin::Upstream, Verdict::Unchecked).unwrap();
    let judged = Judged {
        verdict: Verdict::Insecure,
        ede: Some(ede::UNSUPPORTED_DNSKEY_ALGORITHM),
        caps: vec![(name("www.example.com"), RType::A, 100)],
        denial_zone: None,
    };
    let out = finish(answer, m, judged).unwrap();
    assert_eq!(out.verdict(), &Verdict::Insecure);
    let msg = out.message().unwrap();
    assert_eq!(msg.answers[0].ttl, 100, "the RRset is capped");
    assert_eq!(msg.answers[1].ttl, 100, "so is its RRSIG");
    assert_eq!(msg.answers[2].ttl, 3600, "another RRset is not");
    let edes: Vec<u16> = msg
        .edns
        .unwrap()
        .extended_errors()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(edes, [ede::UNSUPPORTED_DNSKEY_ALGORITHM]);
}

#[test]
fn finish_keeps_the_bytes_when_nothing_changes() {
    let q = Message::query(name("www.example.com"), RType::A);
    let mut m = Message::response_to(&q);
    m.answers.push(rec("www.example.com. 60 IN A 192.0.2.1"));
    let answer = Answer::from_message(&m, Origin::Upstream, Verdict::Unchecked).unwrap();
    let wire = answer.wire().to_vec();
    let judged = Judged {
        verdict: Verdict::Secure,
        ede: None,
        caps: vec![(name("www.example.com"), RType::A, 100)],
        denial_zone: None,
    };
    let out = finish(answer, m, judged).unwrap();
    assert_eq!(out.wire(), &wire[..]);
    assert_eq!(out.verdict(), &Verdict::Secure);
}

#[test]
fn an_unsigned_cname_is_accepted_only_as_its_dnames_substitution() {
    let answers = group(&[
        rec("a.example. 300 IN DNAME b.example."),
        rec("x.y.a.example. 300 IN CNAME x.y.b.example."),
        rec("z.a.example. 300 IN CNAME elsewhere.example."),
    ]);
    let synthesised = answers
        .iter()
        .find(|s| s.owner() == &name("x.y.a.example"))
        .unwrap();
    let dname = synthesising_dname(&answers, synthesised, &name("x.y.b.example")).unwrap();
    assert_eq!(dname.rtype(), RType::DNAME);
    let other = answers
        .iter()
        .find(|s| s.owner() == &name("z.a.example"))
        .unwrap();
    assert!(synthesising_dname(&answers, other, &name("elsewhere.example")).is_none());
}

#[test]
fn rrsets_group_records_and_their_signatures() {
    let sets = group(&[
        rec("a.example. 300 IN A 192.0.2.1"),
        rec("a.example. 300 IN RRSIG A 13 2 300 20300101000000 20200101000000 1 example. AAAA"),
        rec("a.example. 300 IN A 192.0.2.2"),
        rec("b.example. 300 IN RRSIG A 13 2 300 20300101000000 20200101000000 1 example. AAAA"),
    ]);
    assert_eq!(
        sets.len(),
        1,
        "an RRSIG over nothing present makes no RRset"
    );
    assert_eq!(sets[0].rrset.len(), 2);
    assert_eq!(sets[0].sigs.len(), 1);
    assert_eq!(sets[0].signer(), Some(&name("example")));
}

#[test]
fn negative_trust_anchors_cover_their_subdomains() {
    let v = Validator::new(
        TrustAnchors::iana_root(),
        vec![name("lan"), name("corp.example")],
        Chain::new(Vec::new()),
        WallClock::system(),
    );
    assert!(v.is_insecure_domain(&name("router.lan")));
    assert!(v.is_insecure_domain(&name("LAN")));
    assert!(v.is_insecure_domain(&name("git.corp.example")));
    assert!(!v.is_insecure_domain(&name("plan")));
    assert!(!v.is_insecure_domain(&name("example")));
}

#[tokio::test]
async fn a_query_past_its_lookup_cap_is_bogus_without_asking() {
    let lookups = Chain::new(Vec::new());
    let mut work = Work {
        lookups: &lookups,
        now: 0,
        now_ms: 0,
        budget: Budget::per_query(),
        hashes: HashBudget::new(),
        fetches: MAX_FETCHES_PER_QUERY - 1,
    };
    // The last lookup allowed reaches the (empty) chain.
    let last = work.fetch(&name("example.com"), RType::DS).await;
    assert!(matches!(last, Err(HandlerError::Unanswered)), "{last:?}");
    // The next one is refused before asking: bogus, EDE 6.
    let over = work.fetch(&name("example.com"), RType::DNSKEY).await;
    let Err(HandlerError::Bogus(b)) = over else {
        panic!("{over:?}")
    };
    assert_eq!(b.reason.ede(), ede::DNSSEC_BOGUS);
    assert_eq!(work.fetches, MAX_FETCHES_PER_QUERY);
}

#[test]
fn the_nsec_cache_keeps_at_most_its_bound_per_zone() {
    let cache = NsecCache::default();
    let zone = name("example");
    let q = Message::query(name("x.example"), RType::A);
    let mut m = Message::response_to(&q);
    for i in 0..MAX_NSEC_PER_ZONE + 50 {
        m.authority.push(rec(&format!(
            "n{i:04}.example. 300 IN NSEC n{:04}.example. A RRSIG NSEC",
            i + 1
        )));
    }
    cache.remember(&zone, &m, 0, |r| r.ttl);
    assert_eq!(cache.len(), MAX_NSEC_PER_ZONE);
}
