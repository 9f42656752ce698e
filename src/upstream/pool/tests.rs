//! Pool behaviour against scripted fake transports, in paused time: every delay is exact, so the
//! tests assert on elapsed time as well as on who was asked.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::*;
use crate::forward::Forwarder;
use crate::handler::{Chain, HandlerError, Protocol, Request};
use crate::upstream::Transport;
use crate::wire::edns::ede;
use crate::wire::{Message, Name, RType};

/// What a fake upstream does with the next queries.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Answer with this rcode after this delay.
    Answer(Duration, Rcode),
    /// Fail with a connection error after this delay.
    Fail(Duration),
    /// Never answer.
    Stall,
}

fn ok(ms: u64) -> Act {
    Act::Answer(Duration::from_millis(ms), Rcode::NOERROR)
}

struct Fake {
    url: String,
    act: Mutex<Act>,
    calls: AtomicUsize,
    /// Exchanges dropped before they finished.
    cancelled: Arc<AtomicUsize>,
    resets: AtomicUsize,
}

impl Fake {
    fn new(name: &str, act: Act) -> Arc<Fake> {
        Arc::new(Fake {
            url: format!("fake://{name}"),
            act: Mutex::new(act),
            calls: AtomicUsize::new(0),
            cancelled: Arc::new(AtomicUsize::new(0)),
            resets: AtomicUsize::new(0),
        })
    }

    fn set(&self, act: Act) {
        *self.act.lock().unwrap() = act;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Where a failing fake says it was refused.
const REFUSING: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    53,
);

/// Counts a cancellation when dropped before `done` is set.
struct CancelGuard {
    counter: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Transport for Fake {
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let act = *self.act.lock().unwrap();
        let guard = CancelGuard {
            counter: self.cancelled.clone(),
            done: false,
        };
        Box::pin(async move {
            // Moved in whole (not just the field), so dropping the future drops the guard.
            let mut guard = guard;
            let result = match act {
                Act::Answer(delay, rcode) => {
                    tokio::time::sleep(delay).await;
                    let q = Message::parse(query).unwrap();
                    let mut r = Message::response_to(&q);
                    r.set_rcode(rcode);
                    Ok(r.encode().unwrap())
                }
                Act::Fail(delay) => {
                    tokio::time::sleep(delay).await;
                    Err(UpstreamError::connect(
                        REFUSING,
                        std::io::ErrorKind::ConnectionRefused.into(),
                    ))
                }
                Act::Stall => std::future::pending().await,
            };
            guard.done = true;
            result
        })
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn reset(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
}

fn config(strategy: Strategy) -> PoolConfig {
    PoolConfig {
        strategy,
        timeout: Duration::from_secs(3),
        explore_every: 0,
        ..PoolConfig::default()
    }
}

fn pool(config: PoolConfig, fakes: &[&Arc<Fake>]) -> UpstreamGroup {
    let upstreams = fakes
        .iter()
        .map(|f| Upstream::new((*f).clone(), Duration::from_secs(30)))
        .collect();
    UpstreamGroup::with_config(upstreams, config).unwrap()
}

fn query() -> Message {
    Message::query("example.com".parse::<Name>().unwrap(), RType::A)
}

/// Asks the pool `q`'s question as a forwarder does.
async fn send(g: &UpstreamGroup, q: &Message) -> Result<Reply, UpstreamError> {
    g.query(&q.questions[0], crate::upstream::forwarding_flags(q))
        .await
}

/// Runs one query; returns its result and how long it took.
async fn ask(g: &UpstreamGroup) -> (Result<Reply, UpstreamError>, Duration) {
    let start = Instant::now();
    let r = send(g, &query()).await;
    (r, start.elapsed())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn fastest_prefers_the_quicker_upstream_after_warm_up_and_explores() {
    let slow = Fake::new("slow", ok(100));
    let fast = Fake::new("fast", ok(10));
    let g = pool(
        PoolConfig {
            explore_every: 10,
            ..config(Strategy::Fastest)
        },
        &[&slow, &fast],
    );
    // Warm-up: neither is measured, so configured order: the slow one first, then the unmeasured
    // fast one.
    let (r, took) = ask(&g).await;
    assert_eq!(r.unwrap().rcode(), Rcode::NOERROR);
    assert_eq!(took, ms(100));
    let (_, took) = ask(&g).await;
    assert_eq!(took, ms(10));
    assert_eq!((slow.calls(), fast.calls()), (1, 1));
    // 38 more queries (40 in all): every tenth explores the slow one.
    for _ in 2..40 {
        let (r, _) = ask(&g).await;
        assert!(r.is_ok());
    }
    assert_eq!(slow.calls(), 1 + 4, "queries 10, 20, 30 and 40 explore");
    assert_eq!(fast.calls(), 35);
    let h = g.health();
    assert_eq!(h[0].srtt, Some(ms(100)));
    assert_eq!(h[1].srtt, Some(ms(10)));
}

#[tokio::test(start_paused = true)]
async fn fastest_moves_away_from_a_failing_upstream_and_rediscovers_it() {
    let a = Fake::new("a", ok(10));
    let b = Fake::new("b", ok(50));
    let g = pool(config(Strategy::Fastest), &[&a, &b]);
    ask(&g).await.0.unwrap();
    ask(&g).await.0.unwrap();
    ask(&g).await.0.unwrap();
    assert_eq!((a.calls(), b.calls()), (2, 1), "a is the fastest");

    // a fails: the query is retried on b at once, and b is preferred from now on.
    a.set(Act::Fail(Duration::ZERO));
    let (r, took) = ask(&g).await;
    assert_eq!(r.unwrap().rcode(), Rcode::NOERROR);
    assert_eq!(took, ms(50));
    for _ in 0..5 {
        ask(&g).await.0.unwrap();
    }
    assert_eq!((a.calls(), b.calls()), (3, 7));

    // a recovers; once its estimate is stale the next query asks it, and it wins again.
    a.set(ok(10));
    tokio::time::advance(Duration::from_secs(61)).await;
    let (_, took) = ask(&g).await;
    assert_eq!(took, ms(10));
    assert_eq!((a.calls(), b.calls()), (4, 7));
    // b's estimate is just as old: the next query refreshes it, then a is first again.
    assert_eq!(ask(&g).await.1, ms(50));
    assert_eq!(ask(&g).await.1, ms(10));
    assert_eq!((a.calls(), b.calls()), (5, 8));
    assert_eq!(
        g.health()[0].srtt,
        Some(ms(10)),
        "recovery forgets the penalty"
    );
}

#[tokio::test(start_paused = true)]
async fn ordered_fails_over_and_fails_back_once_the_breaker_closes() {
    let first = Fake::new("first", ok(5));
    let second = Fake::new("second", ok(5));
    let g = pool(config(Strategy::Ordered), &[&first, &second]);
    ask(&g).await.0.unwrap();
    assert_eq!((first.calls(), second.calls()), (1, 0));

    first.set(Act::Fail(ms(1)));
    for _ in 0..3 {
        let (r, took) = ask(&g).await;
        assert!(r.is_ok());
        assert_eq!(took, ms(6), "failover is immediate after a transport error");
    }
    assert_eq!((first.calls(), second.calls()), (4, 3));
    assert!(matches!(
        g.health()[0].breaker,
        BreakerState::Resting { .. }
    ));
    // Resting: skipped, even once it works again.
    first.set(ok(5));
    ask(&g).await.0.unwrap();
    assert_eq!((first.calls(), second.calls()), (4, 4));
    // After the rest, one probe; it succeeds, the breaker closes and queries fail back.
    tokio::time::advance(Duration::from_secs(1)).await;
    ask(&g).await.0.unwrap();
    assert_eq!((first.calls(), second.calls()), (5, 4));
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
    assert_eq!(g.health()[0].consecutive_failures, 0);
    ask(&g).await.0.unwrap();
    assert_eq!((first.calls(), second.calls()), (6, 4));
}

#[tokio::test(start_paused = true)]
async fn breaker_rests_doubles_on_failed_probes_and_allows_one_probe_at_a_time() {
    let bad = Fake::new("bad", Act::Fail(Duration::ZERO));
    let good = Fake::new("good", ok(5));
    let g = pool(config(Strategy::Ordered), &[&bad, &good]);
    for _ in 0..3 {
        ask(&g).await.0.unwrap();
    }
    // The rest starts when `bad` fails, 5 ms before the query ends (`good` answers).
    let rest_until = |g: &UpstreamGroup| match g.health()[0].breaker {
        BreakerState::Resting { until } => until.duration_since(Instant::now()) + ms(5),
        other => panic!("not resting: {other:?}"),
    };
    assert_eq!(g.health()[0].consecutive_failures, 3);
    assert_eq!(rest_until(&g), Duration::from_secs(1));

    // Each failed probe doubles the rest: 2 s, 4 s, ... up to 60 s.
    let mut expected = Duration::from_secs(1);
    for _ in 0..8 {
        tokio::time::advance(expected).await;
        let before = bad.calls();
        ask(&g).await.0.unwrap();
        assert_eq!(bad.calls(), before + 1, "one probe after the rest");
        expected = (expected * 2).min(Duration::from_secs(60));
        assert_eq!(rest_until(&g), expected);
        // Still resting: skipped.
        ask(&g).await.0.unwrap();
        assert_eq!(bad.calls(), before + 1);
    }
    assert_eq!(expected, Duration::from_secs(60));

    // Rested again, and now slow but working: of two concurrent queries only one probes.
    bad.set(ok(500));
    tokio::time::advance(expected).await;
    let before = (bad.calls(), good.calls());
    let (r1, r2) = tokio::join!(ask(&g), ask(&g));
    assert_eq!(r1.1, ms(500), "the probe waits for the slow answer");
    assert_eq!(
        r2.1,
        ms(5),
        "the other query skips the upstream being probed"
    );
    assert!(r1.0.is_ok() && r2.0.is_ok());
    assert_eq!((bad.calls(), good.calls()), (before.0 + 1, before.1 + 1));
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn when_every_upstream_rests_they_are_still_asked() {
    let only = Fake::new("only", Act::Fail(Duration::ZERO));
    let g = pool(config(Strategy::Ordered), &[&only]);
    for _ in 0..5 {
        assert!(matches!(
            ask(&g).await.0,
            Err(UpstreamError::Connect { addr: REFUSING, .. })
        ));
    }
    assert_eq!(only.calls(), 5, "a lone resting upstream is still tried");
    only.set(ok(1));
    assert!(ask(&g).await.0.is_ok());
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn parallel_hedges_after_the_typical_latency_and_cancels_the_loser() {
    let a = Fake::new("a", ok(100));
    let b = Fake::new("b", ok(100));
    let g = pool(config(Strategy::Parallel), &[&a, &b]);
    // Warm-up measures both at 100 ms; neither query hedges (unmeasured hedge delay is 200 ms).
    assert_eq!(ask(&g).await.1, ms(100));
    assert_eq!(ask(&g).await.1, ms(100));
    assert_eq!((a.calls(), b.calls()), (1, 1));

    // a is first (tie, configured order) and now slow: after 1.5 x 100 ms b is asked too, and
    // answers 100 ms later; a's attempt is cancelled.
    a.set(ok(1000));
    let (r, took) = ask(&g).await;
    assert_eq!(r.unwrap().rcode(), Rcode::NOERROR);
    assert_eq!(took, ms(250));
    assert_eq!((a.calls(), b.calls()), (2, 2));
    assert_eq!(a.cancelled(), 1);
    assert_eq!(b.cancelled(), 0);

    // b is now the faster (a's estimate grew by the time it was seen taking): b first, and it
    // answers before its hedge delay, so a is not asked.
    assert_eq!(ask(&g).await.1, ms(100));
    assert_eq!((a.calls(), b.calls()), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn parallel_retries_at_once_after_a_failure() {
    let a = Fake::new("a", Act::Fail(ms(3)));
    let b = Fake::new("b", ok(20));
    let g = pool(config(Strategy::Parallel), &[&a, &b]);
    let (r, took) = ask(&g).await;
    assert!(r.is_ok());
    assert_eq!(took, ms(23));
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn total_time_is_bounded_by_the_timeout() {
    for strategy in [Strategy::Ordered, Strategy::Fastest, Strategy::Parallel] {
        let fakes: Vec<Arc<Fake>> = (0..4)
            .map(|i| Fake::new(&format!("s{i}"), Act::Stall))
            .collect();
        let refs: Vec<&Arc<Fake>> = fakes.iter().collect();
        let g = pool(config(strategy), &refs);
        let (r, took) = ask(&g).await;
        assert!(matches!(r, Err(UpstreamError::Timeout(_))), "{strategy:?}");
        assert_eq!(took, Duration::from_secs(3), "{strategy:?}");
        let calls: usize = fakes.iter().map(|f| f.calls()).sum();
        let cancelled: usize = fakes.iter().map(|f| f.cancelled()).sum();
        assert_eq!(calls, cancelled, "{strategy:?}: nothing left running");
        match strategy {
            // An unmeasured upstream gets half the budget, the next one the rest.
            Strategy::Ordered | Strategy::Fastest => assert_eq!(calls, 2, "{strategy:?}"),
            // Hedged at 200 ms, at most two in flight: s0 and s1 until they are given up on
            // (1.5 s and 1.7 s), then s2 and s3.
            Strategy::Parallel => assert_eq!(calls, 4, "{strategy:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_measured_stall_is_abandoned_early_for_the_next_upstream() {
    let a = Fake::new("a", ok(20));
    let b = Fake::new("b", ok(30));
    let g = pool(config(Strategy::Ordered), &[&a, &b]);
    ask(&g).await.0.unwrap();
    a.set(Act::Stall);
    // a's attempt is given max(4 x 20 ms, 500 ms), then b answers.
    let (r, took) = ask(&g).await;
    assert!(r.is_ok());
    assert_eq!(took, ATTEMPT_MIN + ms(30));
    assert_eq!(a.cancelled(), 1);
}

#[tokio::test(start_paused = true)]
async fn servfail_and_refused_fail_over_and_the_last_answer_is_kept() {
    let sf = Fake::new("sf", Act::Answer(ms(1), Rcode::SERVFAIL));
    let good = Fake::new("good", ok(1));
    let g = pool(config(Strategy::Ordered), &[&sf, &good]);
    for _ in 0..5 {
        assert_eq!(ask(&g).await.0.unwrap().rcode(), Rcode::NOERROR);
    }
    assert_eq!((sf.calls(), good.calls()), (5, 5));
    assert_eq!(
        g.health()[0].breaker,
        BreakerState::Closed,
        "SERVFAIL is about the name, not the server"
    );

    let refused = Fake::new("refused", Act::Answer(ms(1), Rcode::REFUSED));
    let sf = Fake::new("sf", Act::Answer(ms(1), Rcode::SERVFAIL));
    let g = pool(config(Strategy::Ordered), &[&sf, &refused]);
    assert_eq!(ask(&g).await.0.unwrap().rcode(), Rcode::REFUSED);
    for _ in 0..2 {
        ask(&g).await.0.unwrap();
    }
    assert!(
        matches!(g.health()[1].breaker, BreakerState::Resting { .. }),
        "a server that refuses us counts as failing"
    );

    // A refused HS (or CH) question says nothing of the server: any number of them leave it in
    // use, and the refusal still comes back.
    let refused = Fake::new("refused", Act::Answer(ms(1), Rcode::REFUSED));
    let g = pool(config(Strategy::Ordered), &[&refused]);
    let mut hs = query();
    hs.questions[0].qclass = crate::wire::Class::HS;
    for _ in 0..10 {
        assert_eq!(send(&g, &hs).await.unwrap().rcode(), Rcode::REFUSED);
    }
    assert_eq!(refused.calls(), 10);
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);

    // Such a refusal as the probe of a resting upstream leaves it ready for the next probe, not
    // stuck probing until the timeout.
    let flaky = Fake::new("flaky", Act::Fail(Duration::ZERO));
    let good = Fake::new("good", ok(5));
    let g = pool(config(Strategy::Ordered), &[&flaky, &good]);
    for _ in 0..3 {
        ask(&g).await.0.unwrap();
    }
    assert!(matches!(
        g.health()[0].breaker,
        BreakerState::Resting { .. }
    ));
    tokio::time::advance(Duration::from_secs(1)).await;
    flaky.set(Act::Answer(ms(1), Rcode::REFUSED));
    send(&g, &hs).await.unwrap();
    assert_eq!(flaky.calls(), 4, "the HS question was the probe");
    assert_ne!(g.health()[0].breaker, BreakerState::Probing);
    // The next question probes again, succeeds, and closes the breaker.
    flaky.set(ok(1));
    ask(&g).await.0.unwrap();
    assert_eq!(flaky.calls(), 5);
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded() {
    let fakes: Vec<Arc<Fake>> = (0..12)
        .map(|i| Fake::new(&format!("s{i}"), Act::Fail(Duration::ZERO)))
        .collect();
    let refs: Vec<&Arc<Fake>> = fakes.iter().collect();
    let g = pool(config(Strategy::Ordered), &refs);
    assert!(ask(&g).await.0.is_err());
    let calls: usize = fakes.iter().map(|f| f.calls()).sum();
    assert_eq!(calls, MAX_ATTEMPTS);

    // More attempts than upstreams ask them again.
    let one = Fake::new("one", Act::Fail(Duration::ZERO));
    let g = pool(config(Strategy::Ordered), &[&one]).with_max_attempts(3);
    assert!(ask(&g).await.0.is_err());
    assert_eq!(one.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn all_failing_becomes_servfail_with_a_network_error_ede() {
    let a = Fake::new("a", Act::Fail(Duration::ZERO));
    let b = Fake::new("b", Act::Fail(Duration::ZERO));
    let g = Arc::new(pool(config(Strategy::Fastest), &[&a, &b]));
    let chain = Chain::new(vec![Arc::new(Forwarder::new(Vec::new(), Some(g)))]);
    let req = Request {
        query: query(),
        client: Some("127.0.0.1:5000".parse().unwrap()),
        protocol: Protocol::Udp,
    };
    let err = chain.handle(&req).await.unwrap_err();
    assert!(matches!(err, HandlerError::Upstream(_)), "{err:?}");
    assert_eq!(err.rcode(), Rcode::SERVFAIL);
    let (code, text) = err.extended_error().unwrap();
    assert_eq!(code, ede::NETWORK_ERROR);
    // The last failure, as the upstream layer wrote it: the address and the I/O error.
    assert_eq!(text, "connection failed: 192.0.2.1:53: connection refused");
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn reset_resets_transports_and_forgets_health() {
    let a = Fake::new("a", Act::Fail(Duration::ZERO));
    let b = Fake::new("b", ok(5));
    let g = pool(config(Strategy::Ordered), &[&a, &b]);
    for _ in 0..3 {
        ask(&g).await.0.unwrap();
    }
    assert!(matches!(
        g.health()[0].breaker,
        BreakerState::Resting { .. }
    ));
    g.reset();
    assert_eq!(
        (
            a.resets.load(Ordering::SeqCst),
            b.resets.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    let h = g.health();
    assert_eq!(h[0].breaker, BreakerState::Closed);
    assert_eq!((h[0].srtt, h[1].srtt), (None, None));
    a.set(ok(5));
    ask(&g).await.0.unwrap();
    assert_eq!(a.calls(), 4, "asked again right after the reset");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_query_releases_its_probe() {
    let a = Fake::new("a", Act::Fail(Duration::ZERO));
    let b = Fake::new("b", ok(5));
    let g = pool(config(Strategy::Ordered), &[&a, &b]);
    for _ in 0..3 {
        ask(&g).await.0.unwrap();
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    a.set(Act::Stall);
    // The client gives up while the probe is out.
    assert!(tokio::time::timeout(ms(100), send(&g, &query()))
        .await
        .is_err());
    assert_eq!(a.cancelled(), 1);
    assert!(matches!(
        g.health()[0].breaker,
        BreakerState::Resting { .. }
    ));
    a.set(ok(5));
    ask(&g).await.0.unwrap();
    assert_eq!(a.calls(), 5, "the next query probes again");
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
}

/// When the upstream is resting: the instant its rest ends.
fn rest_ends(g: &UpstreamGroup, i: usize) -> Instant {
    match g.health()[i].breaker {
        BreakerState::Resting { until } => until,
        other => panic!("upstream {i} is not resting: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn straggling_failures_do_not_extend_the_rest() {
    let primary = Fake::new("primary", ok(5));
    let backup = Fake::new("backup", ok(5));
    let g = Arc::new(pool(config(Strategy::Ordered), &[&primary, &backup]));
    ask(&g).await.0.unwrap();
    // The primary stalls while 23 queries arrive 1 ms apart: each gives it 500 ms (4 x 5 ms, at
    // least ATTEMPT_MIN), so their failures land 1 ms apart too. The third opens the breaker;
    // the 20 after it are stragglers, started long before it opened.
    primary.set(Act::Stall);
    let t0 = Instant::now();
    let mut queries = tokio::task::JoinSet::new();
    for i in 0..23 {
        let g = g.clone();
        queries.spawn(async move {
            tokio::time::sleep(ms(i)).await;
            ask(&g).await
        });
    }
    while let Some(done) = queries.join_next().await {
        let (r, took) = done.unwrap();
        assert!(r.is_ok());
        assert_eq!(took, ATTEMPT_MIN + ms(5), "failed over to the backup");
    }
    assert_eq!(primary.calls(), 1 + 23);
    assert_eq!(
        rest_ends(&g, 0).duration_since(t0),
        ms(502) + Duration::from_secs(1),
        "the rest is 1 s from the third failure, whatever straggles in after it"
    );

    // Rested: the next query probes the primary, which answers again.
    primary.set(ok(5));
    tokio::time::sleep_until(t0 + ms(1502)).await;
    ask(&g).await.0.unwrap();
    assert_eq!(
        primary.calls(),
        1 + 23 + 1,
        "the primary is probed after 1 s"
    );
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn only_a_failed_probe_doubles_the_rest() {
    // A lone upstream is asked even while it rests (there is no one else); those failures are
    // not probes and leave the rest as it is.
    let only = Fake::new("only", Act::Fail(Duration::ZERO));
    let g = pool(config(Strategy::Ordered), &[&only]);
    for _ in 0..3 {
        assert!(ask(&g).await.0.is_err());
    }
    let opened = Instant::now();
    assert_eq!(
        rest_ends(&g, 0).duration_since(opened),
        Duration::from_secs(1)
    );
    for _ in 0..20 {
        assert!(ask(&g).await.0.is_err());
    }
    assert_eq!(only.calls(), 23, "a lone resting upstream is still asked");
    assert_eq!(
        rest_ends(&g, 0).duration_since(opened),
        Duration::from_secs(1),
        "failures while resting are not probes"
    );

    // The rest is over: of two concurrent queries the first is the probe, the other is asked
    // only because nothing else is left. Both fail; only the probe's failure doubles the rest.
    tokio::time::sleep_until(opened + Duration::from_secs(1)).await;
    only.set(Act::Fail(ms(10)));
    let (r1, r2) = tokio::join!(ask(&g), ask(&g));
    assert!(r1.0.is_err() && r2.0.is_err());
    let probed = Instant::now();
    assert_eq!(only.calls(), 25);
    assert_eq!(
        rest_ends(&g, 0).duration_since(probed),
        Duration::from_secs(2)
    );
    for _ in 0..20 {
        assert!(ask(&g).await.0.is_err());
    }
    assert_eq!(
        rest_ends(&g, 0).duration_since(probed),
        Duration::from_secs(2)
    );

    // A good probe closes the breaker, and the next run of failures rests it 1 s again.
    tokio::time::sleep_until(probed + Duration::from_secs(2)).await;
    only.set(ok(1));
    ask(&g).await.0.unwrap();
    assert_eq!(g.health()[0].breaker, BreakerState::Closed);
    only.set(Act::Fail(Duration::ZERO));
    for _ in 0..3 {
        assert!(ask(&g).await.0.is_err());
    }
    assert_eq!(
        rest_ends(&g, 0).duration_since(Instant::now()),
        Duration::from_secs(1)
    );
}

/// The events logged on this thread while the value lives, each as `LEVEL message field=value..`.
///
/// Events reach it through one global subscriber, installed once for the test process, that hands
/// each event to the capture of the thread it happens on. A per-test `set_default` subscriber is
/// not enough: tracing caches, per call site and process-wide, whether anyone listens, and a test
/// thread whose scoped subscriber comes and goes at the wrong moment can leave a call site marked
/// as unheard for another test running beside it.
struct Logs {
    lines: Arc<Mutex<Vec<(tracing::Level, String)>>>,
}

type Sink = Arc<Mutex<Vec<(tracing::Level, String)>>>;

thread_local! {
    static SINK: std::cell::RefCell<Option<Sink>> = const { std::cell::RefCell::new(None) };
}

impl Logs {
    /// Starts capturing. The tests using it run on a current-thread runtime, so every event of
    /// the pool is logged on this thread.
    fn capture() -> Logs {
        use tracing_subscriber::layer::SubscriberExt;
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Capture);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the unit tests");
        });
        let lines: Sink = Arc::default();
        SINK.with(|s| *s.borrow_mut() = Some(lines.clone()));
        Logs { lines }
    }

    /// The lines at `level` or more severe.
    fn at_least(&self, level: tracing::Level) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|(l, _)| *l <= level)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// How many lines at exactly `level` contain `text`.
    fn count(&self, level: tracing::Level, text: &str) -> usize {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|(l, line)| *l == level && line.contains(text))
            .count()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        SINK.with(|s| *s.borrow_mut() = None);
    }
}

struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0.push_str(&format!(" {value:?}"));
                } else {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
        }
        let Some(sink) = SINK.with(|s| s.borrow().clone()) else {
            return; // not a capturing test's thread
        };
        let level = *event.metadata().level();
        let mut line = Line(level.to_string());
        event.record(&mut line);
        sink.lock().unwrap().push((level, line.0));
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusing_upstream_logs_its_state_changes_not_every_query() {
    let logs = Logs::capture();
    let refused = Fake::new("refused", Act::Answer(ms(1), Rcode::REFUSED));
    let g = pool(config(Strategy::Ordered), &[&refused]);
    for _ in 0..2000 {
        assert_eq!(ask(&g).await.0.unwrap().rcode(), Rcode::REFUSED);
    }
    assert_eq!(refused.calls(), 2000);
    let loud = logs.at_least(tracing::Level::INFO);
    assert!(
        loud.len() <= 5,
        "{} lines at info and above for 2000 refused queries; the first: {:#?}",
        loud.len(),
        &loud[..loud.len().min(5)]
    );
    // The breaker opening is a warning naming the upstream and the cause; the failed probe at
    // 1 s (2 s of these queries, 1 ms each) is logged too.
    assert!(
        loud[0].starts_with("WARN")
            && loud[0].contains("fake://refused")
            && loud[0].contains("REFUSED")
            && loud[0].contains("rest_ms=1000"),
        "{loud:#?}"
    );
    assert!(
        loud.iter()
            .any(|l| l.contains("probe") && l.contains("rest_ms=2000")),
        "{loud:#?}"
    );
    // Every failed attempt is still there for whoever asks for debug.
    assert_eq!(
        logs.count(tracing::Level::DEBUG, "upstream attempt failed"),
        2000
    );
}

#[tokio::test(start_paused = true)]
async fn a_flapping_upstream_logs_its_state_changes_at_a_bounded_rate() {
    let logs = Logs::capture();
    let flaky = Fake::new("flaky", ok(1));
    let good = Fake::new("good", ok(1));
    let g = pool(config(Strategy::Ordered), &[&flaky, &good]);
    // A client that knows which names the first upstream refuses can open and close its breaker
    // about once a second: 600 state changes in these 5 minutes.
    let start = Instant::now();
    for _ in 0..300 {
        flaky.set(Act::Answer(ms(1), Rcode::REFUSED));
        for _ in 0..3 {
            ask(&g).await.0.unwrap();
        }
        assert!(matches!(
            g.health()[0].breaker,
            BreakerState::Resting { .. }
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        flaky.set(ok(1));
        ask(&g).await.0.unwrap();
        assert_eq!(g.health()[0].breaker, BreakerState::Closed);
    }
    let minutes = Instant::now().duration_since(start).as_secs() / 60;
    assert_eq!(minutes, 5);
    let loud = logs.at_least(tracing::Level::INFO);
    assert!(
        loud.len() <= 10 * (minutes as usize + 1),
        "{} lines at info and above; the first: {:#?}",
        loud.len(),
        &loud[..loud.len().min(5)]
    );
    assert!(
        loud.iter().any(|l| l.contains("suppressed=")),
        "the count of suppressed lines is reported: {loud:#?}"
    );
}
