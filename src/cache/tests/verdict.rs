//! A DNSSEC verdict is stored with its entry and given back on every hit, on the slow path as the
//! answer's verdict and on the fast path as the AD decision; and a client without DO never gets
//! DNSSEC records it did not ask for, from either path.

use super::*;
use crate::handler::{Answer, Bogus, BogusReason, Handler, Origin};

/// A stage that answers with a fixed verdict, and an RRSIG beside the A record.
struct Validated {
    verdict: Verdict,
    upstream_ad: bool,
    /// Whether the answer carries its parsed form (as the forwarder's and the validator's do).
    carry_parsed: bool,
}

impl Handler for Validated {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            let mut m = a_answer(req, 300);
            m.header.authentic_data = self.upstream_ad;
            let owner = m.questions[0].name.clone();
            m.answers.push(rrsig_over_a(owner));
            let answer = Answer::from_message(&m, Origin::Upstream, self.verdict.clone()).unwrap();
            Ok(if self.carry_parsed {
                answer.with_parsed(m)
            } else {
                answer
            })
        })
    }

    fn name(&self) -> &'static str {
        "validated"
    }
}

fn ad_of(wire: &[u8]) -> bool {
    Header::parse(wire).unwrap().authentic_data
}

#[tokio::test(start_paused = true)]
async fn a_verdict_survives_the_cache_on_both_paths() {
    let bogus = Verdict::Bogus(Bogus {
        reason: BogusReason::SignatureExpired,
        detail: "".into(),
    });
    for (verdict, upstream_ad, ad) in [
        (Verdict::Secure, false, true),
        (Verdict::Insecure, true, false),
        (Verdict::Indeterminate, true, false),
        (Verdict::Unchecked, true, true),
        (Verdict::Unchecked, false, false),
    ] {
        let c = Arc::new(default_cache());
        let stage: Arc<dyn Handler> = Arc::new(Validated {
            verdict: verdict.clone(),
            upstream_ad,
            carry_parsed: false,
        });
        let ch = Chain::new(vec![c.clone() as Arc<dyn Handler>, stage]);
        let mut q = msg_query("www.example.com", RType::A);
        q.edns = edns(true);
        let miss = ch.handle(&request(q.clone())).await.unwrap();
        assert_eq!(miss.verdict(), &verdict);
        assert_eq!(miss.origin(), Origin::Upstream);
        let hit = ch.handle(&request(q)).await.unwrap();
        assert_eq!(hit.verdict(), &verdict, "slow-path hit");
        assert_eq!(hit.origin(), Origin::Cache);
        let raw = query_with("www.example.com", RType::A, 9, edns(true), false);
        let out = fast(&c, &raw, 4096).unwrap();
        assert_eq!(ad_of(&out), ad, "fast-path hit, {verdict:?}");
    }
    // A bogus verdict keeps its reason (kept as the entry's Extended DNS Error).
    let c = Arc::new(default_cache());
    let k = key("b.example.com", RType::A, false, false);
    let mut entry = policy::servfail(
        &k,
        Some(bogus_ede()),
        b"",
        c.now_ms(),
        c.policy().limits.servfail_ttl,
    )
    .unwrap();
    entry.set_verdict(&bogus);
    assert_eq!(entry.verdict(), bogus);
}

fn bogus_ede() -> u16 {
    BogusReason::SignatureExpired.ede()
}

#[tokio::test(start_paused = true)]
async fn clients_without_do_get_no_dnssec_records_on_either_path() {
    // Both forms of the stored answer: bytes only, and bytes with their parsed form.
    for carry_parsed in [false, true] {
        let c = Arc::new(default_cache());
        let stage: Arc<dyn Handler> = Arc::new(Validated {
            verdict: Verdict::Unchecked,
            upstream_ad: false,
            carry_parsed,
        });
        let ch = Chain::new(vec![c.clone() as Arc<dyn Handler>, stage]);
        // DO=0: the stored entry for this key holds the A record only, and answers from it say
        // so (the response writer does not look again), on the miss and on a slow-path hit.
        let miss = ch
            .handle(&request(msg_query("www.example.com", RType::A)))
            .await
            .unwrap();
        let plain = miss.message().unwrap();
        assert_eq!(plain.answers.len(), 1);
        assert_eq!(plain.answers[0].rtype(), RType::A);
        assert!(miss.is_known_plain());
        let hit = ch
            .handle(&request(msg_query("www.example.com", RType::A)))
            .await
            .unwrap();
        assert_eq!((hit.origin(), hit.is_known_plain()), (Origin::Cache, true));
        let out = fast(&c, &query("www.example.com", RType::A, 3), 4096).unwrap();
        let hit = Message::parse(&out).unwrap();
        assert_eq!(hit.answers.len(), 1, "fast path");
        // DO=1: its own entry, with the RRSIG.
        let raw = query_with("www.example.com", RType::A, 4, edns(true), false);
        assert!(fast(&c, &raw, 4096).is_none(), "another key");
        let mut q = msg_query("www.example.com", RType::A);
        q.edns = edns(true);
        let signed = ch.handle(&request(q)).await.unwrap();
        assert!(!signed.is_known_plain());
        assert_eq!(signed.message().unwrap().answers.len(), 2);
        let out = fast(&c, &raw, 4096).unwrap();
        assert_eq!(Message::parse(&out).unwrap().answers.len(), 2);
    }
}

/// Every entry for clients without DO holds only what they get, whatever stores it (the leader
/// strips first; a cache file or any other caller is refused): answers rendered from such an entry
/// are passed on as known plain, unchecked.
#[test]
fn entries_for_clients_without_do_never_hold_dnssec_records_they_did_not_ask_for() {
    let signed = |qtype: RType| {
        let mut m = Message::parse(&a_response("www.example.com", 300)).unwrap();
        m.questions[0].qtype = qtype;
        m.answers.push(rrsig_over_a(m.questions[0].name.clone()));
        m.encode().unwrap()
    };
    let c = default_cache();
    assert_eq!(
        c.insert_wire(
            &key("www.example.com", RType::A, false, false),
            &signed(RType::A)
        ),
        Err(Uncacheable::UnaskedDnssec)
    );
    // Asked for with DO, or asked for by type: stored.
    assert_eq!(
        c.insert_wire(
            &key("www.example.com", RType::A, true, false),
            &signed(RType::A)
        ),
        Ok(())
    );
    assert_eq!(
        c.insert_wire(
            &key("www.example.com", RType::RRSIG, false, false),
            &signed(RType::RRSIG)
        ),
        Ok(())
    );
}
