//! The screened fast path: an entry is judged by the screen in front of the cache (the blocker)
//! once per screen generation, and an entry that fails has no effect beyond its failure.

use std::cell::Cell;

use super::*;
use crate::handler::{Screen, Screened};

/// A screen that counts how often it is asked, with a generation and a verdict the test sets.
struct Counting {
    generation: Cell<u32>,
    pass: Cell<bool>,
    asked: Cell<usize>,
}

impl Counting {
    fn new(generation: u32, pass: bool) -> Counting {
        Counting {
            generation: Cell::new(generation),
            pass: Cell::new(pass),
            asked: Cell::new(0),
        }
    }
}

impl Screen for Counting {
    fn generation(&self) -> u32 {
        self.generation.get()
    }

    fn passes(&self, _query: &QueryView<'_>, answer: &[u8]) -> bool {
        assert!(!answer.is_empty(), "the screen judges the rendered answer");
        self.asked.set(self.asked.get() + 1);
        self.pass.get()
    }
}

fn screened(c: &Cache, raw: &[u8], screen: &Counting) -> (Option<Screened>, Vec<u8>) {
    let view = QueryView::parse(raw).unwrap();
    let mut out = Vec::new();
    let r = c.fast_path(&view, 512, &mut out, Some(screen));
    (r, out)
}

#[tokio::test(start_paused = true)]
async fn an_entry_is_judged_once_per_generation() {
    let c = default_cache();
    let k = key("www.example.com", RType::A, false, false);
    c.insert_wire(&k, &a_response("www.example.com", 60))
        .unwrap();
    let q = query("www.example.com", RType::A, 7);
    let s = Counting::new(5, true);
    for _ in 0..3 {
        let (r, out) = screened(&c, &q, &s);
        assert_eq!(r, Some(Screened::Passed(Origin::Cache)));
        assert_eq!(Header::parse(&out).unwrap().id, 7);
    }
    assert_eq!(s.asked.get(), 1, "stamped after the first check");
    assert_eq!(c.stats().hits, 3);

    // A new generation (a list reload): judged again, once.
    s.generation.set(6);
    for _ in 0..3 {
        assert_eq!(
            screened(&c, &q, &s).0,
            Some(Screened::Passed(Origin::Cache))
        );
    }
    assert_eq!(s.asked.get(), 2);

    // A new entry for the key (a refresh) starts unchecked.
    c.insert_wire(&k, &a_response("www.example.com", 60))
        .unwrap();
    assert!(screened(&c, &q, &s).0.is_some());
    assert!(screened(&c, &q, &s).0.is_some());
    assert_eq!(s.asked.get(), 3);

    // The unscreened fast path neither asks nor stamps.
    assert!(fast(&c, &q, 512).is_some());
    assert_eq!(s.asked.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_entry_is_judged_every_time_and_has_no_effect() {
    let c = Arc::new(default_cache());
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(100, &mode);
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    ch.handle(&request(msg_query("hot.example", RType::A)))
        .await
        .unwrap();
    let q = query("hot.example", RType::A, 1);
    let s = Counting::new(9, true);
    assert!(screened(&c, &q, &s).0.is_some());
    let hits = c.stats().hits;

    // In the prefetch window of a popular entry, but failing a new generation: the answer is
    // left for the screening stage, nothing is counted and nothing is asked upstream.
    advance(Duration::from_secs(91)).await;
    s.generation.set(10);
    s.pass.set(false);
    for i in 1..=3 {
        let (r, out) = screened(&c, &q, &s);
        assert_eq!(r, Some(Screened::Failed(Origin::Cache)));
        assert_eq!(ttls(&out)[0].2, 9, "the cached answer is in out");
        assert_eq!(s.asked.get(), 1 + i, "never stamped");
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(c.stats().hits, hits);
    assert_eq!(up.calls(), 1, "no prefetch for a failing entry");

    // The same entry passing: counted, and its prefetch goes out.
    s.pass.set(true);
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::Cache))
    );
    until(|| up.calls() == 2).await;
    assert_eq!(c.stats().hits, hits + 1);
    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stale_entry_that_fails_is_not_refreshed() {
    let c = Arc::new(cache(CacheConfig {
        client_timeout: Duration::ZERO,
        ..CacheConfig::default()
    }));
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(60, &mode);
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    ch.handle(&request(msg_query("www.example.com", RType::A)))
        .await
        .unwrap();
    advance(gone_after(60)).await;
    let q = query("www.example.com", RType::A, 3);
    // Stale data would be answered at once and refreshed behind, but it fails the screen: no
    // refresh goes upstream for it.
    let s = Counting::new(1, false);
    for _ in 0..3 {
        assert_eq!(
            screened(&c, &q, &s).0,
            Some(Screened::Failed(Origin::StaleCache))
        );
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(up.calls(), 1);
    s.pass.set(true);
    assert_eq!(
        screened(&c, &q, &s).0,
        Some(Screened::Passed(Origin::StaleCache))
    );
    until(|| up.calls() == 2).await;
    shutdown.cancel();
    refresher.await.unwrap();
}
