//! Prefetch: which entries are refreshed before they expire, refreshes sharing flights with client
//! misses, and queued refreshes at shutdown.

use super::*;

/// A SERVFAIL entry is not prefetched: its lifetime is the retry back-off (RFC 2308 section 7.1).
#[tokio::test(start_paused = true)]
async fn a_servfail_entry_is_not_prefetched() {
    let c = Arc::new(cache(CacheConfig {
        servfail_ttl: 20,
        ..CacheConfig::default()
    }));
    let mode = Arc::new(AtomicU8::new(FAIL));
    let up = switchable(100, &mode);
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    let down = request(msg_query("down.example", RType::A));
    assert!(ch.handle(&down).await.is_err());
    let q = query("down.example", RType::A, 1);
    assert!(fast(&c, &q, 512).is_some());
    // Where a data entry's prefetch window would be open (18.5 s of 20: a TTL of 1 left), the
    // entry is still answered, and its hits ask for no refresh.
    advance(Duration::from_millis(18_500)).await;
    assert!(fast(&c, &q, 512).is_some());
    assert!(fast(&c, &q, 512).is_some());
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(up.calls(), 1);
    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn popular_entries_are_prefetched_before_they_expire() {
    let c = Arc::new(default_cache());
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(100, &mode);
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    for n in ["hot.example", "once.example"] {
        ch.handle(&request(msg_query(n, RType::A))).await.unwrap();
    }
    let hot = query("hot.example", RType::A, 1);
    let once = query("once.example", RType::A, 1);
    let ttl = |q: &[u8]| ttls(&fast(&c, q, 512).unwrap())[0].2;
    advance(Duration::from_secs(10)).await;
    assert!(fast(&c, &hot, 512).is_some());
    // Not yet in the last tenth: no prefetch.
    advance(Duration::from_secs(79)).await;
    assert_eq!(ttl(&hot), 11);
    tokio::task::yield_now().await;
    assert_eq!(up.calls(), 2);
    // In the last tenth (10 s of 100 left). Each entry has been asked for twice now (the miss that
    // fetched it counts), so each is refreshed, once however often it is hit.
    advance(Duration::from_secs(1)).await;
    assert_eq!(ttl(&once), 10);
    for _ in 0..5 {
        assert_eq!(ttl(&hot), 10);
    }
    until(|| c.stats().refreshes == 2 && c.stats().inserts == 4).await;
    assert_eq!(up.calls(), 4);
    // The refreshed entries (stored at 90 s, for 100 s) take over the asks of the entries they
    // replace: popularity belongs to the name, so one hit in the next window refreshes them again
    // (as unbound's prefetch does). "hot" is hit there, "once" is not asked for again.
    advance(Duration::from_secs(91)).await;
    assert_eq!(ttl(&hot), 9);
    until(|| c.stats().inserts == 5).await;
    assert_eq!(up.calls(), 5);
    // Past the refreshed entries' expiry: "hot" counts down from its second refresh, "once",
    // never asked for in its window, has expired (kept only for serve-stale).
    advance(gone_after(9)).await;
    assert_eq!(ttl(&hot), 90);
    assert!(fast(&c, &once, 512).is_none(), "expired, not refreshed");
    assert_eq!(up.calls(), 5);

    mode.store(ANSWER, Ordering::SeqCst);
    shutdown.cancel();
    refresher.await.unwrap();

    // With prefetch off nothing is refreshed.
    let c = Arc::new(cache(CacheConfig {
        prefetch: false,
        ..CacheConfig::default()
    }));
    let up = switchable(100, &mode);
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    ch.handle(&request(msg_query("hot.example", RType::A)))
        .await
        .unwrap();
    assert!(fast(&c, &hot, 512).is_some());
    advance(Duration::from_secs(95)).await;
    assert!(fast(&c, &hot, 512).is_some());
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(up.calls(), 1);
    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_prefetch_and_client_misses_share_one_upstream_query() {
    let c = Arc::new(cache(CacheConfig {
        serve_stale: false,
        ..CacheConfig::default()
    }));
    let up = Upstream::gated(|req| Ok(a_answer(req, 100)));
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    up.gate.add_permits(1);
    let req = request(msg_query("hot.example", RType::A));
    ch.handle(&req).await.unwrap().message().unwrap();
    let hot = query("hot.example", RType::A, 1);
    assert!(fast(&c, &hot, 512).is_some());
    advance(Duration::from_secs(95)).await;
    assert!(fast(&c, &hot, 512).is_some());
    // The prefetch is upstream (and held there); the entry then expires.
    until(|| up.calls() == 2).await;
    advance(Duration::from_secs(6)).await;
    assert!(fast(&c, &hot, 512).is_none());
    // Client misses join the prefetch instead of asking again.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (ch, req) = (ch.clone(), req.clone());
        tasks.push(tokio::spawn(async move { ch.handle(&req).await }));
    }
    until(|| c.stats().coalesced == 3).await;
    up.gate.add_permits(1);
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap().message().unwrap().answers.len(),
            1
        );
    }
    assert_eq!(up.calls(), 2);
    let s = c.stats();
    assert_eq!((s.refreshes, s.misses, s.coalesced), (1, 1, 3));
    // And a refresh queued while a client leads does not ask again either.
    shutdown.cancel();
    refresher.await.unwrap();
    assert!(lock(&c.shards[0]).inflight.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_flights_of_queued_refreshes() {
    let c = Arc::new(cache(CacheConfig {
        shards: 1,
        ..CacheConfig::default()
    }));
    let up = Upstream::gated(|req| Ok(a_answer(req, 60)));
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    up.gate.add_permits(1);
    let req = request(msg_query("www.example.com", RType::A));
    ch.handle(&req).await.unwrap().message().unwrap();
    advance(gone_after(60)).await;
    let waiting = {
        let (ch, req) = (ch.clone(), req.clone());
        tokio::spawn(async move { ch.handle(&req).await })
    };
    until(|| up.calls() == 2).await;
    shutdown.cancel();
    refresher.await.unwrap();
    // The refresh was cancelled: its flight is gone and the waiting query got the stale answer.
    assert!(lock(&c.shards[0]).inflight.is_empty());
    assert_stale(
        &waiting.await.unwrap().unwrap().message().unwrap(),
        DEFAULT_STALE_ANSWER_TTL,
    );
}
