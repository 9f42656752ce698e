//! A screen's own answers (the blocker's blocked answers) stored in the cache: answered on the
//! screened fast path under their generation only, never on the slow path, never stale,
//! prefetched or saved, not counted as hits, and bounded in number.

use std::cell::Cell;

use super::*;
use crate::handler::{Screen, Screened};

/// A screen that blocks every name (NXDOMAIN with an Extended DNS Error, `ttl` seconds) and
/// counts how often it is asked for its own answer.
struct Blocking {
    generation: Cell<u32>,
    blocks: Cell<bool>,
    /// How often an answer was judged.
    judged: Cell<usize>,
    /// Answer A 0.0.0.0 (NOERROR) instead of NXDOMAIN.
    null: Cell<bool>,
    ttl: u32,
    asked: Cell<usize>,
}

impl Blocking {
    fn new(generation: u32, ttl: u32) -> Blocking {
        Blocking {
            generation: Cell::new(generation),
            blocks: Cell::new(true),
            judged: Cell::new(0),
            null: Cell::new(false),
            ttl,
            asked: Cell::new(0),
        }
    }
}

impl Screen for Blocking {
    fn generation(&self) -> u32 {
        self.generation.get()
    }

    fn passes(&self, _query: &QueryView<'_>, _answer: &[u8]) -> bool {
        self.judged.set(self.judged.get() + 1);
        !self.blocks.get()
    }

    fn own_answer(&self, query: &QueryView<'_>, _failed: &[u8], out: &mut Vec<u8>) -> Option<u32> {
        self.asked.set(self.asked.get() + 1);
        if !self.blocks.get() {
            return None;
        }
        let q = Message::parse(query.raw).unwrap();
        let mut m = Message::response_to(&q);
        m.header.id = 0;
        if self.null.get() {
            let owner = q.questions[0].name.clone();
            m.answers
                .push(Record::new(owner, self.ttl, RData::A([0, 0, 0, 0].into())));
        } else {
            m.set_rcode(Rcode::NXDOMAIN);
        }
        let mut e = Edns::default();
        e.add_extended_error(ede::BLOCKED, "blocked: by test");
        m.edns = Some(e);
        out.clear();
        out.extend_from_slice(&m.encode().unwrap());
        Some(self.ttl)
    }
}

fn screened(c: &Cache, raw: &[u8], screen: &dyn Screen) -> (Option<Screened>, Vec<u8>) {
    let view = QueryView::parse(raw).unwrap();
    let mut out = Vec::new();
    let r = c.fast_path(&view, 512, &mut out, Some(screen));
    (r, out)
}

fn blocked_text(wire: &[u8]) -> Option<String> {
    let m = Message::parse(wire).unwrap();
    let e = m.edns?;
    let (code, text) = e.extended_errors().next()?;
    assert_eq!(code, ede::BLOCKED);
    Some(text.to_string())
}

#[tokio::test(start_paused = true)]
async fn an_own_answer_is_stored_and_then_answered_as_a_hit() {
    let c = default_cache();
    let s = Blocking::new(3, 10);
    let q = query_with("Ads.Example", RType::A, 41, edns(false), false);
    let (r, out) = screened(&c, &q, &s);
    assert_eq!(r, Some(Screened::Passed(Origin::Local)));
    assert_eq!(s.asked.get(), 1);
    assert_eq!(c.len(), 1);
    let m = Message::parse(&out).unwrap();
    assert_eq!((m.header.id, m.rcode()), (41, Rcode::NXDOMAIN));
    assert_eq!(blocked_text(&out).as_deref(), Some("blocked: by test"));

    // The next asks are hits on the stored answer: the screen is not asked again, and the
    // client's ID, spelling and EDNS come from the one response writer.
    for (id, spelling, with_edns) in [(7, "ADS.example", true), (8, "ads.EXAMPLE", false)] {
        let raw = query_with(
            spelling,
            RType::A,
            id,
            with_edns.then(|| edns(false)).flatten(),
            false,
        );
        let (r, out) = screened(&c, &raw, &s);
        assert_eq!(r, Some(Screened::Passed(Origin::Local)));
        let m = Message::parse(&out).unwrap();
        assert_eq!((m.header.id, m.rcode()), (id, Rcode::NXDOMAIN));
        assert_eq!(m.questions[0].name.to_string(), format!("{spelling}."));
        assert!(m.header.recursion_available && !m.header.authoritative);
        if with_edns {
            assert_eq!(blocked_text(&out).as_deref(), Some("blocked: by test"));
        } else {
            assert!(
                m.edns.is_none(),
                "no OPT, so no Extended DNS Error, without EDNS"
            );
        }
    }
    assert_eq!(s.asked.get(), 1);
    // Not cache hits (the metrics count them as local answers from the origin), not inserts.
    let st = c.stats();
    assert_eq!((st.hits, st.misses, st.inserts), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_own_answer_of_another_generation_is_never_served() {
    let c = default_cache();
    let s = Blocking::new(3, 10);
    let q = query("ads.example", RType::A, 1);
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::Local))
    );

    // A reload that no longer blocks the name: the stored answer is not served; the screen is
    // asked, has none, and the query goes on to the slow path.
    s.generation.set(4);
    s.blocks.set(false);
    assert_eq!(screened(&c, &q, &s).0, Some(Screened::Missed));
    assert_eq!(s.asked.get(), 2);
    // Not without a screen either (the blocker gone from the chain), nor on the slow path.
    assert!(fast(&c, &q, 512).is_none());

    // A reload that blocks it again: the screen's new answer replaces the old one.
    s.generation.set(5);
    s.blocks.set(true);
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::Local))
    );
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::Local))
    );
    assert_eq!(s.asked.get(), 3);
    assert_eq!(c.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_slow_path_never_answers_an_own_answer() {
    let c = Arc::new(default_cache());
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(100, &mode);
    let ch = chain(&c, &up);
    let s = Blocking::new(3, 10);
    let q = query("www.example.com", RType::A, 1);
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::Local))
    );
    // The slow path of the same generation even: it goes upstream (the blocker in front answers
    // blocked names itself; a name that reaches the cache is one it no longer blocks).
    let a = ch
        .handle(&request(msg_query("www.example.com", RType::A)))
        .await
        .unwrap();
    assert_eq!(a.message().unwrap().rcode(), Rcode::NOERROR);
    assert_eq!(up.calls(), 1);
    // And its answer replaced the stored own answer.
    s.blocks.set(false);
    s.generation.set(4);
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::Cache))
    );
}

#[tokio::test(start_paused = true)]
async fn own_answers_count_down_and_renew_without_stale_prefetch_or_file() {
    let c = Arc::new(default_cache());
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(100, &mode);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    let s = Blocking::new(3, 10);
    s.null.set(true);
    let q = query_with("ads.example", RType::A, 1, edns(false), false);
    let (r, out) = screened(&c, &q, &s);
    assert_eq!(r, Some(Screened::Passed(Origin::Local)));
    assert_eq!(ttls(&out)[0], (Section::Answer, RType::A, 10));
    // Asked all through its life, in the last tenth of it too: never prefetched; its TTL counts
    // down.
    for t in 1..=9 {
        advance(Duration::from_secs(1)).await;
        let (r, out) = screened(&c, &q, &s);
        assert_eq!(r, Some(Screened::Passed(Origin::Local)));
        assert_eq!(ttls(&out)[0].2, 10 - t);
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(up.calls(), 0, "no prefetch, no refresh");
    assert_eq!(s.asked.get(), 1);
    // Never written to the cache file.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(c.save(&dir.path().join("cache")).unwrap(), 0);
    // At the end of its lifetime, exactly: not answered stale (serve-stale is on by default,
    // which would answer it with the stale TTL), but renewed: the screen's answer under the same
    // generation is the same, so its TTL starts again at the screen's.
    advance(Duration::from_secs(1)).await;
    let (r, out) = screened(&c, &q, &s);
    assert_eq!(r, Some(Screened::Passed(Origin::Local)));
    assert_eq!(ttls(&out)[0].2, 10);
    assert_eq!(c.stats().stale, 0);
    advance(Duration::from_secs(3)).await;
    assert_eq!(ttls(&screened(&c, &q, &s).1)[0].2, 7);
    assert_eq!(s.asked.get(), 1);
    // Under a new generation it is asked for again.
    s.generation.set(4);
    assert_eq!(ttls(&screened(&c, &q, &s).1)[0].2, 10);
    assert_eq!(s.asked.get(), 2);
    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_own_answers_takes_at_most_a_quarter_of_the_cache() {
    let c = cache(CacheConfig {
        capacity: 64,
        shards: 1,
        ..CacheConfig::default()
    });
    let kept: Vec<String> = (0..40).map(|i| format!("n{i}.example")).collect();
    for n in &kept {
        let wire = response(
            n,
            RType::A,
            Rcode::NOERROR,
            &[rr("www.example.com", 300, Data::A([192, 0, 2, 1]))],
            &[],
        );
        c.insert_wire(&key(n, RType::A, false, false), &wire)
            .unwrap();
    }
    let s = Blocking::new(3, 10);
    for i in 0..1000 {
        let q = query(&format!("ad{i}.example"), RType::A, 1);
        // Every one answered, stored or not.
        assert_eq!(
            screened(&c, &q, &s).0,
            Some(Screened::Passed(Origin::Local))
        );
    }
    let own = c.shards.iter().map(|p| lock(p).own_len()).sum::<usize>();
    assert_eq!(own, 64 / 4);
    assert_eq!(c.len(), 40 + 16, "the other entries stay");
    for n in &kept {
        assert!(fast(&c, &query(n, RType::A, 1), 512).is_some(), "{n} kept");
    }

    // After a reload the share is not held by answers of the old generation: new ones take
    // their place, and the other entries still stay.
    s.generation.set(4);
    // (Each store looks at a few slots for an old one: a name may need a second ask.)
    for _ in 0..4 {
        for i in 0..16 {
            let q = query(&format!("new{i}.example"), RType::A, 1);
            assert_eq!(
                screened(&c, &q, &s).0,
                Some(Screened::Passed(Origin::Local))
            );
        }
    }
    let asked = s.asked.get();
    for i in 0..16 {
        let q = query(&format!("new{i}.example"), RType::A, 1);
        assert_eq!(
            screened(&c, &q, &s).0,
            Some(Screened::Passed(Origin::Local))
        );
    }
    assert_eq!(s.asked.get(), asked, "all 16 stored");
    assert_eq!(c.len(), 40 + 16);
}

#[tokio::test(start_paused = true)]
async fn a_cached_answer_that_fails_is_replaced_by_the_own_answer() {
    let c = default_cache();
    let k = key("www.example.com", RType::A, false, false);
    c.insert_wire(&k, &a_response("www.example.com", 300))
        .unwrap();
    // Blocked since it was stored (a reload): judged once, failed, replaced by the screen's own
    // answer; the next asks are hits on that, judged no more.
    let s = Blocking::new(3, 10);
    let q = query("www.example.com", RType::A, 5);
    for _ in 0..4 {
        let (r, out) = screened(&c, &q, &s);
        assert_eq!(r, Some(Screened::Passed(Origin::Local)));
        assert_eq!(Message::parse(&out).unwrap().rcode(), Rcode::NXDOMAIN);
    }
    assert_eq!((s.judged.get(), s.asked.get()), (1, 1));
    assert_eq!(c.len(), 1);
}
