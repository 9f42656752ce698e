//! Identical concurrent misses share one upstream query; a cancelled leader hands over.

use super::*;

#[tokio::test(start_paused = true)]
async fn identical_misses_are_coalesced() {
    let c = Arc::new(default_cache());
    let up = Upstream::gated(refused);
    let ch = chain(&c, &up);
    let mut tasks = Vec::new();
    for id in 0..50u16 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut q = msg_query("slow.example", RType::A);
            q.header.id = id;
            ch.handle(&request(q)).await
        }));
    }
    // Wait until one leader is upstream and 49 followers wait for it.
    while up.calls() < 1 || c.stats().coalesced < 49 {
        tokio::task::yield_now().await;
    }
    up.gate.add_permits(1);
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().rcode(), Rcode::REFUSED);
    }
    assert_eq!(up.calls(), 1);
    let s = c.stats();
    assert_eq!((s.misses, s.coalesced), (1, 49));
    // A different question is a different flight.
    up.gate.add_permits(1);
    ch.handle(&request(msg_query("other.example", RType::A)))
        .await
        .unwrap();
    assert_eq!(up.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let c = Arc::new(default_cache());
    let up = Upstream::gated(refused);
    let ch = chain(&c, &up);
    let spawn = |ch: Arc<Chain>| {
        tokio::spawn(async move { ch.handle(&request(msg_query("x.example", RType::A))).await })
    };
    let leader = spawn(ch.clone());
    while up.calls() < 1 {
        tokio::task::yield_now().await;
    }
    let follower = spawn(ch.clone());
    while c.stats().coalesced < 1 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // The follower retries and becomes the leader.
    while up.calls() < 2 {
        tokio::task::yield_now().await;
    }
    up.gate.add_permits(1);
    assert_eq!(follower.await.unwrap().unwrap().rcode(), Rcode::REFUSED);
    assert_eq!(c.stats().misses, 2);
    assert!(lock(&c.shards[0]).inflight.is_empty());
}
