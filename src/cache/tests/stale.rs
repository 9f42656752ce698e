//! Serve-stale (RFC 8767): stale answers when the upstream fails or is late, their limits, and
//! the wall-clock second grid.

use super::*;

#[tokio::test(start_paused = true)]
async fn stale_answers_while_the_upstream_fails_then_fresh_again() {
    let c = Arc::new(default_cache());
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(60, &mode);
    let ch = chain(&c, &up);
    let req = request(msg_query("www.example.com", RType::A));
    assert_eq!(
        ch.handle(&req).await.unwrap().message().unwrap().answers[0].ttl,
        60
    );
    advance(gone_after(60)).await;

    // Expired, upstream down: the query refreshes, the refresh fails, the answer is stale.
    mode.store(FAIL, Ordering::SeqCst);
    assert_stale(
        &ch.handle(&req).await.unwrap().message().unwrap(),
        DEFAULT_STALE_ANSWER_TTL,
    );
    assert_eq!(up.calls(), 2);
    // The failure holds the entry: answered stale at once, also on the fast path, without asking.
    assert_stale(
        &ch.handle(&req).await.unwrap().message().unwrap(),
        DEFAULT_STALE_ANSWER_TTL,
    );
    let q = query_with("www.example.com", RType::A, 9, edns(false), false);
    let out = Message::parse(&fast(&c, &q, 1232).expect("stale on the fast path")).unwrap();
    assert_stale(&out, DEFAULT_STALE_ANSWER_TTL);
    assert_eq!(out.header.id, 9);
    // A client without EDNS gets the data and TTL, without an OPT record to carry the EDE.
    let plain =
        Message::parse(&fast(&c, &query("www.example.com", RType::A, 9), 512).unwrap()).unwrap();
    assert!(plain.edns.is_none());
    assert_eq!(plain.answers[0].ttl, DEFAULT_STALE_ANSWER_TTL);
    assert_eq!(up.calls(), 2);
    let s = c.stats();
    assert_eq!(s.stale, 4);

    // After the hold the next query tries again; SERVFAIL from upstream counts as failure too.
    advance(Duration::from_secs(u64::from(DEFAULT_STALE_ANSWER_TTL))).await;
    assert!(
        fast(&c, &q, 1232).is_none(),
        "hold over: the slow path refreshes"
    );
    mode.store(SERVFAIL, Ordering::SeqCst);
    assert_stale(
        &ch.handle(&req).await.unwrap().message().unwrap(),
        DEFAULT_STALE_ANSWER_TTL,
    );
    assert_eq!(up.calls(), 3);

    // Saturated upstreams (our own in-flight cap) are covered too.
    let busy = Arc::new(default_cache());
    let up_busy = Upstream::new(|_| Err(HandlerError::Busy(BusyReason::Upstreams)));
    busy.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 60),
    )
    .unwrap();
    advance(gone_after(60)).await;
    let r = chain(&busy, &up_busy)
        .handle(&req)
        .await
        .unwrap()
        .message()
        .unwrap();
    assert_eq!(edes(&r), [ede::STALE_ANSWER]);
    assert_eq!(r.answers[0].ttl, DEFAULT_STALE_ANSWER_TTL);

    // Upstream back: after the hold, fresh data with its full TTL and no EDE.
    mode.store(ANSWER, Ordering::SeqCst);
    advance(Duration::from_secs(u64::from(DEFAULT_STALE_ANSWER_TTL))).await;
    let fresh = ch.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(fresh.answers[0].ttl, 60);
    assert!(edes(&fresh).is_empty());
    assert_eq!(up.calls(), 4);
    let out = Message::parse(&fast(&c, &q, 1232).unwrap()).unwrap();
    assert_eq!(out.answers[0].ttl, 60);
    assert!(edes(&out).is_empty());
}

#[tokio::test(start_paused = true)]
async fn stale_answer_when_the_upstream_is_late_and_the_refresh_goes_on() {
    let c = Arc::new(default_cache());
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(60, &mode);
    let ch = chain(&c, &up);
    let shutdown = CancellationToken::new();
    let refresher = c.spawn_refresher(Chain::new(vec![up.clone()]), shutdown.clone());
    let req = request(msg_query("www.example.com", RType::A));
    ch.handle(&req).await.unwrap().message().unwrap();
    advance(gone_after(60)).await;

    // The upstream now hangs (no permits): the query is answered stale at the client timeout.
    let slow = Upstream::gated(|req| Ok(a_answer(req, 120)));
    let c2 = Arc::new(default_cache());
    let ch2 = chain(&c2, &slow);
    slow.gate.add_permits(1);
    ch2.handle(&req).await.unwrap().message().unwrap();
    advance(Duration::from_secs(121)).await;
    let _r2 = c2.spawn_refresher(Chain::new(vec![slow.clone()]), shutdown.clone());
    let started = tokio::time::Instant::now();
    let stale = ch2.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(started.elapsed(), DEFAULT_CLIENT_TIMEOUT);
    assert_stale(&stale, DEFAULT_STALE_ANSWER_TTL);
    assert_eq!(slow.calls(), 2);
    // Another query while the refresh still runs joins it, and is stale at its own timeout.
    let started = tokio::time::Instant::now();
    assert_stale(
        &ch2.handle(&req).await.unwrap().message().unwrap(),
        DEFAULT_STALE_ANSWER_TTL,
    );
    assert_eq!(started.elapsed(), DEFAULT_CLIENT_TIMEOUT);
    assert_eq!(slow.calls(), 2, "one refresh for both");
    // The refresh outlived both queries: when the upstream answers, the entry is fresh.
    slow.gate.add_permits(1);
    let q = query("www.example.com", RType::A, 1);
    until(|| fast(&c2, &q, 512).is_some()).await;
    let out = Message::parse(&fast(&c2, &q, 512).unwrap()).unwrap();
    assert_eq!(out.answers[0].ttl, 120);
    assert_eq!(c2.stats().refreshes, 1);

    // A refresh that answers in time is what the query gets.
    advance(Duration::from_secs(1)).await;
    let fresh = ch.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(fresh.answers[0].ttl, 60);
    assert!(edes(&fresh).is_empty());
    assert_eq!(up.calls(), 2);
    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stale_data_has_limits() {
    // Past stale_max_age: the failure is the answer.
    let c = Arc::new(cache(CacheConfig {
        stale_max_age: 100,
        ..CacheConfig::default()
    }));
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let up = switchable(60, &mode);
    let ch = chain(&c, &up);
    let req = request(msg_query("www.example.com", RType::A));
    ch.handle(&req).await.unwrap().message().unwrap();
    mode.store(FAIL, Ordering::SeqCst);
    advance(gone_after(60) + Duration::from_secs(99)).await;
    assert_stale(
        &ch.handle(&req).await.unwrap().message().unwrap(),
        DEFAULT_STALE_ANSWER_TTL,
    );
    advance(Duration::from_secs(1)).await;
    assert!(ch.handle(&req).await.is_err());

    // Serve-stale off: an expired entry is a miss like any other.
    let c = Arc::new(cache(CacheConfig {
        serve_stale: false,
        ..CacheConfig::default()
    }));
    let ch = chain(&c, &up);
    mode.store(ANSWER, Ordering::SeqCst);
    ch.handle(&req).await.unwrap().message().unwrap();
    mode.store(FAIL, Ordering::SeqCst);
    advance(gone_after(60)).await;
    assert!(ch.handle(&req).await.is_err());

    // A SERVFAIL entry is never served stale, and a failure never replaces live data.
    let c = Arc::new(default_cache());
    let ch = chain(&c, &up);
    let other = request(msg_query("down.example", RType::A));
    assert!(ch.handle(&other).await.is_err());
    assert_eq!(
        ch.handle(&other).await.unwrap().message().unwrap().rcode(),
        Rcode::SERVFAIL
    );
    advance(gone_after(DEFAULT_SERVFAIL_TTL)).await;
    assert!(ch.handle(&other).await.is_err());
    let cached = c.stats();
    assert_eq!(cached.stale, 0);

    // Other chain errors (a policy refusal, no upstream) are not covered by serve-stale.
    let c = Arc::new(default_cache());
    mode.store(ANSWER, Ordering::SeqCst);
    let refusing = Arc::new(AtomicU8::new(0));
    let r2 = refusing.clone();
    let up2 = Upstream::new(move |req| match r2.load(Ordering::SeqCst) {
        0 => Ok(a_answer(req, 60)),
        _ => Err(HandlerError::Refused(RefusalReason::Policy)),
    });
    let ch = chain(&c, &up2);
    ch.handle(&req).await.unwrap().message().unwrap();
    refusing.store(1, Ordering::SeqCst);
    advance(gone_after(60)).await;
    assert!(matches!(
        ch.handle(&req).await,
        Err(HandlerError::Refused(RefusalReason::Policy))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_zero_client_timeout_answers_stale_at_once_and_refreshes_behind() {
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
    let q = query_with("www.example.com", RType::A, 3, edns(false), false);
    let out = Message::parse(&fast(&c, &q, 1232).expect("stale at once")).unwrap();
    assert_stale(&out, DEFAULT_STALE_ANSWER_TTL);
    // Asked once, however often it is hit before the refresh lands.
    assert!(fast(&c, &q, 1232).is_some());
    until(|| up.calls() == 2).await;
    until(|| {
        fast(&c, &q, 1232)
            .and_then(|o| Message::parse(&o).ok())
            .is_some_and(|m| m.answers[0].ttl == 60)
    })
    .await;
    assert_eq!(up.calls(), 2);
    shutdown.cancel();
    refresher.await.unwrap();
}
