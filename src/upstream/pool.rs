//! The upstream pool: which upstream a query goes to, what happens when it fails, and how a failing
//! upstream is rested and let back in.
//!
//! ```text
//!   query --plan (strategy, health)--> [u2, u0, u1] --attempt u2--> answer? --yes--> client
//!                                                      |  timeout / error / SERVFAIL / REFUSED
//!                                                      +--> attempt u0 (sequential), or
//!                                                           u0 already racing u2 (parallel: hedged)
//!   every attempt outcome --> Health of that upstream (smoothed latency, circuit breaker)
//! ```
//!
//! **Strategies** ([`Strategy`]):
//! - `Fastest`: the upstream with the lowest smoothed round-trip time (an EWMA with weight 1/4, as
//!   RFC 6298 smooths TCP's RTT with 1/8; an upstream never measured counts as fastest, so every
//!   upstream is measured once). One query in [`PoolConfig::explore_every`] goes to another
//!   upstream first (round robin), and an upstream whose estimate is older than
//!   [`PoolConfig::stale_after`] is asked by the next query, so an upstream that got faster or came
//!   back is found again.
//! - `Ordered`: the first usable upstream in configured order; the next after a failure. Once the
//!   first one's breaker closes again, queries go back to it (fail-back).
//! - `Parallel` (hedged requests, as in "The Tail at Scale", Dean and Barroso 2013): the same order
//!   as `Fastest`; if the first has not answered within 1.5 times its smoothed RTT (at least
//!   [`HEDGE_MIN`], at most half the query's time budget), the next is asked as well. The first
//!   good answer wins and the other attempt is dropped (cancelled). At most [`MAX_PARALLEL`]
//!   attempts run at once.
//!
//! **Retries**: an attempt that times out, fails in transport, answers garbage or answers SERVFAIL
//! or REFUSED is followed at once by an attempt on the next upstream of the plan. Attempts are
//! bounded in number ([`PoolConfig::max_attempts`]) and in total time ([`PoolConfig::timeout`],
//! the time budget of one client query). In the sequential strategies an attempt is abandoned after
//! four smoothed RTTs (at least [`ATTEMPT_MIN`], at most half the budget; the last attempt gets all
//! that is left), so one stalled upstream cannot eat the whole budget.
//!
//! **Circuit breaker**: after [`BreakerConfig::failures`] consecutive failures an upstream rests
//! (1 s, doubling after each failed probe up to 60 s by default). A resting upstream is left out of
//! plans unless every upstream rests. When its rest is over, one query (the probe) may use it; a
//! good answer closes the breaker, a failure sends it back to rest for twice as long. Only the
//! probe's failure does: every attempt carries a [`Ticket`] with the breaker's epoch (a counter
//! bumped at each state change) from when it started, and a failure whose epoch is out of date
//! (a straggler: a query already in flight when the upstream stalled, timing out one by one after
//! the breaker opened) tells nothing the breaker has not acted on, so it changes nothing. Nor do
//! failures of attempts made while it rests because every upstream rests. SERVFAIL
//! does not count as a failure (the name may be broken, not the server) and neither does our own
//! in-flight limit ([`UpstreamError::Overloaded`]); REFUSED does (a server that refuses us is no
//! use to us), except for a question of another class than IN (CH, HS), which many servers refuse
//! whatever they think of us.
//!
//! **Logging**: the breaker's state changes are logged (opened with its cause: `warn`; a failed
//! probe and a recovery: `info`), each upstream through its own [`LogLimiter`], since a client
//! that knows which names an upstream refuses can make it flap. A failed attempt is `debug` only:
//! a client drives those one per query.
//!
//! **Fail closed**: when every attempt fails, the caller gets the last SERVFAIL/REFUSED answer if
//! there was one, else the last error, which the forwarder turns into SERVFAIL with an Extended DNS
//! Error (RFC 8914). The pool only ever uses the upstreams it was built with: there is no fallback
//! to any other server or transport.
//!
//! **Network changes**: [`UpstreamGroup::reset`] drops every transport's connections and forgets
//! all health (latencies and breakers measured on the old network say nothing about the new one).
//!
//! Limitations: health is per pool, so an upstream configured in two forwarding rules is measured
//! twice; exploration is deterministic (every n-th query), not random; a hedged loser's time is
//! only used as a lower bound on its latency.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tracing::{debug, Level};

use super::{BadConfig, Reply, Upstream, UpstreamError};
use crate::handler::BoxFuture;
use crate::logging::{log_limited, LogLimiter};
use crate::wire::{Class, QueryFlags, Question, Rcode};

/// Most attempts one query may make, however many upstreams are configured.
pub const MAX_ATTEMPTS: usize = 8;
/// Most attempts in flight at once for one query in the parallel strategy.
pub const MAX_PARALLEL: usize = 2;
/// Shortest hedging delay.
pub const HEDGE_MIN: Duration = Duration::from_millis(10);
/// Shortest time a sequential attempt is given before the next upstream is asked.
pub const ATTEMPT_MIN: Duration = Duration::from_millis(500);
/// The hedging delay assumed for an upstream never measured.
const UNKNOWN_HEDGE: Duration = Duration::from_millis(200);

/// How the pool picks an upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Lowest smoothed latency, with occasional exploration of the others.
    #[default]
    Fastest,
    /// The first usable upstream in configured order.
    Ordered,
    /// Like `Fastest`, plus a hedged second attempt when the first is slower than usual.
    Parallel,
}

/// Circuit-breaker settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failures: u32,
    /// The first rest.
    pub first_rest: Duration,
    /// The longest rest; each failed probe doubles the rest up to this.
    pub max_rest: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            first_rest: Duration::from_secs(1),
            max_rest: Duration::from_secs(60),
        }
    }
}

/// Pool settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    pub strategy: Strategy,
    /// Time budget of one client query across all attempts.
    pub timeout: Duration,
    /// Attempts per query; 0 means one per upstream. Clamped to 1..=[`MAX_ATTEMPTS`]. More
    /// attempts than upstreams ask the plan's upstreams again, in order.
    pub max_attempts: usize,
    pub breaker: BreakerConfig,
    /// `Fastest`/`Parallel`: one query in this many asks another upstream first; 0 never does.
    pub explore_every: u32,
    /// `Fastest`/`Parallel`: an upstream not measured for this long is asked by the next query.
    pub stale_after: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            strategy: Strategy::default(),
            timeout: Duration::from_secs(3),
            max_attempts: 0,
            breaker: BreakerConfig::default(),
            explore_every: 20,
            stale_after: Duration::from_secs(60),
        }
    }
}

/// The state of an upstream's circuit breaker, as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// In normal use.
    Closed,
    /// Resting until `until`; after that one probe query may use it.
    Resting { until: Instant },
    /// A probe query is on its way.
    Probing,
}

/// A snapshot of one upstream's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHealth {
    pub url: String,
    /// Smoothed round-trip time (failures count as the whole time budget); `None` until the first
    /// attempt ends.
    pub srtt: Option<Duration>,
    pub consecutive_failures: u32,
    pub breaker: BreakerState,
}

/// A set of upstreams used together for the same names.
pub struct UpstreamGroup {
    members: Vec<Member>,
    config: PoolConfig,
    /// Queries started, for exploration.
    queries: AtomicU64,
}

impl UpstreamGroup {
    /// A group of at least one upstream with the default settings, tried in order
    /// ([`Strategy::Ordered`]).
    pub fn new(upstreams: Vec<Upstream>) -> Result<Self, UpstreamError> {
        Self::with_config(
            upstreams,
            PoolConfig {
                strategy: Strategy::Ordered,
                ..PoolConfig::default()
            },
        )
    }

    /// A group of at least one upstream with these settings.
    pub fn with_config(
        upstreams: Vec<Upstream>,
        config: PoolConfig,
    ) -> Result<Self, UpstreamError> {
        if upstreams.is_empty() {
            return Err(UpstreamError::Config(BadConfig::EmptyGroup));
        }
        let mut group = UpstreamGroup {
            members: upstreams
                .into_iter()
                .map(|upstream| Member {
                    upstream,
                    health: Mutex::new(Health::default()),
                    log_limit: LogLimiter::default(),
                })
                .collect(),
            config: PoolConfig {
                breaker: BreakerConfig {
                    failures: config.breaker.failures.max(1),
                    first_rest: config.breaker.first_rest,
                    max_rest: config.breaker.max_rest.max(config.breaker.first_rest),
                },
                ..config
            },
            queries: AtomicU64::new(0),
        };
        let n = group.config.max_attempts;
        group = group.with_max_attempts(n);
        Ok(group)
    }

    /// Sets the attempts per query (0 = one per upstream; clamped to 1..=[`MAX_ATTEMPTS`]).
    pub fn with_max_attempts(mut self, n: usize) -> Self {
        let n = if n == 0 { self.members.len() } else { n };
        self.config.max_attempts = n.clamp(1, MAX_ATTEMPTS);
        self
    }

    /// The settings in use.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The upstreams' URLs, in configured order.
    pub fn urls(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.upstream.url()).collect()
    }

    /// The upstreams, in configured order (for their counters).
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.members.iter().map(|m| &m.upstream)
    }

    /// The health of each upstream, in configured order.
    pub fn health(&self) -> Vec<UpstreamHealth> {
        self.members
            .iter()
            .map(|m| {
                let h = m.health();
                UpstreamHealth {
                    url: m.upstream.url().to_string(),
                    srtt: h.srtt,
                    consecutive_failures: h.failures,
                    breaker: match h.breaker {
                        Breaker::Closed => BreakerState::Closed,
                        Breaker::Open { until, .. } => BreakerState::Resting { until },
                        Breaker::Probing { .. } => BreakerState::Probing,
                    },
                }
            })
            .collect()
    }

    /// After a network change: drops every upstream's connections and forgets what was measured.
    pub fn reset(&self) {
        for m in &self.members {
            m.upstream.reset();
            let mut health = m.health_mut();
            // Attempts still running report to a breaker that no longer exists.
            *health = Health {
                epoch: health.epoch.wrapping_add(1),
                ..Health::default()
            };
        }
    }

    /// Answers `q` through the pool. Returns the first answer that is neither SERVFAIL nor
    /// REFUSED; if every attempt fails, the last SERVFAIL/REFUSED answer if there was one (so the
    /// client sees what the upstream said), else the last error. Never takes longer than the
    /// configured timeout.
    pub async fn query(
        &self,
        question: &Question,
        flags: QueryFlags,
    ) -> Result<Reply, UpstreamError> {
        let start = Instant::now();
        let (plan, forced) = self.plan(start, false);
        let mut run = Run {
            group: self,
            question,
            flags,
            deadline: start + self.config.timeout,
            plan,
            next: 0,
            forced,
            launched: 0,
            inflight: Vec::new(),
            hedge_at: None,
            last_answer: None,
            last_error: None,
        };
        run.drive().await
    }

    /// The order in which this query will try the upstreams: usable ones by strategy, or, when
    /// every upstream rests (or `forced`), all of them, soonest rested first. The flag says which:
    /// true means the breakers are to be ignored.
    fn plan(&self, now: Instant, forced: bool) -> (Vec<usize>, bool) {
        let health: Vec<Health> = self.members.iter().map(Member::health).collect();
        // Room for the whole plan, which `cycle` then writes in place.
        let room = health.len().max(self.config.max_attempts);
        let mut usable: Vec<usize> = Vec::with_capacity(room);
        usable.extend(
            (0..health.len()).filter(|&i| !forced && health[i].usable(now, self.config.timeout)),
        );
        if usable.is_empty() {
            usable.extend(0..health.len());
            let mut all = usable;
            all.sort_by_key(|&i| health[i].rested_at());
            return (self.cycle(all), true);
        }
        if self.config.strategy != Strategy::Ordered {
            // Unmeasured first (so every upstream gets measured), then fastest; ties keep order.
            usable.sort_by_key(|&i| health[i].srtt.unwrap_or(Duration::ZERO));
            let n = self.queries.fetch_add(1, Ordering::Relaxed);
            // The first upstream is about to be measured anyway; look for a stale one behind it.
            let stale = usable.iter().skip(1).position(|&i| {
                health[i]
                    .checked
                    .is_some_and(|t| now.duration_since(t) > self.config.stale_after)
            });
            let every = u64::from(self.config.explore_every);
            let explore = match stale {
                Some(pos) => Some(pos + 1),
                None if every > 0 && usable.len() > 1 && n % every == every - 1 => {
                    Some(1 + (n / every) as usize % (usable.len() - 1))
                }
                None => None,
            };
            if let Some(pos) = explore {
                let i = usable.remove(pos);
                usable.insert(0, i);
                self.members[i].health_mut().checked = Some(now);
                debug!(upstream = self.members[i].upstream.url(), "exploring");
            }
        }
        (self.cycle(usable), false)
    }

    /// `order` repeated or cut to the configured number of attempts (in place: no allocation when
    /// it has the room).
    fn cycle(&self, mut order: Vec<usize>) -> Vec<usize> {
        let (n, want) = (order.len(), self.config.max_attempts);
        if n == 0 || n >= want {
            order.truncate(want);
            return order;
        }
        for k in n..want {
            order.push(order[k % n]);
        }
        order
    }

    /// How long a sequential attempt on member `i` may take before the next upstream is asked.
    fn attempt_timeout(&self, i: usize) -> Duration {
        let half = self.config.timeout / 2;
        match self.members[i].health().srtt {
            Some(srtt) => (srtt * 4).max(ATTEMPT_MIN).min(half),
            None => half,
        }
    }

    /// How long a parallel attempt on member `i` runs alone before the next is started too.
    fn hedge_delay(&self, i: usize) -> Duration {
        let typical = self.members[i]
            .health()
            .srtt
            .map_or(UNKNOWN_HEDGE, |s| s * 3 / 2);
        typical.max(HEDGE_MIN).min(self.config.timeout / 2)
    }
}

/// An upstream and what the pool knows about it.
struct Member {
    upstream: Upstream,
    /// A std Mutex: held only to read or update a few fields, never across an `.await`.
    health: Mutex<Health>,
    /// For the breaker's state changes, which a client can drive.
    log_limit: LogLimiter,
}

impl Member {
    fn health(&self) -> Health {
        self.health_mut().clone()
    }

    fn health_mut(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Breaker {
    Closed,
    /// Resting until `until`; `rest` is the length of this rest (doubled after a failed probe).
    Open {
        until: Instant,
        rest: Duration,
    },
    /// One probe query is on its way since `since`.
    Probing {
        since: Instant,
        rest: Duration,
    },
}

/// What an attempt knows of the breaker it started under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticket {
    /// [`Health::epoch`] when the attempt started.
    epoch: u64,
    /// The attempt is the probe of a rested upstream.
    probe: bool,
}

/// What a failure did to the breaker, to be logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// Too many failures in a row: the upstream rests for `rest`.
    Opened { failures: u32, rest: Duration },
    /// The probe failed: the upstream rests again, for `rest`.
    ProbeFailed { rest: Duration },
}

#[derive(Clone, Debug)]
struct Health {
    srtt: Option<Duration>,
    /// When an attempt last ended (answer or failure) or the upstream was put first to explore.
    checked: Option<Instant>,
    failures: u32,
    breaker: Breaker,
    /// Bumped at each change of `breaker`: an attempt's failure moves the breaker only if its
    /// [`Ticket`] is of the current epoch.
    epoch: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            srtt: None,
            checked: None,
            failures: 0,
            breaker: Breaker::Closed,
            epoch: 0,
        }
    }
}

impl Health {
    /// May a plan include this upstream? Closed, rested, or a probe that was lost long ago.
    fn usable(&self, now: Instant, timeout: Duration) -> bool {
        match self.breaker {
            Breaker::Closed => true,
            Breaker::Open { until, .. } => until <= now,
            Breaker::Probing { since, .. } => now.duration_since(since) > timeout,
        }
    }

    /// When the rest ends (now for a usable upstream), to order resting upstreams.
    fn rested_at(&self) -> Option<Instant> {
        match self.breaker {
            Breaker::Closed => None,
            Breaker::Open { until, .. } => Some(until),
            Breaker::Probing { since, .. } => Some(since),
        }
    }

    /// Moves the breaker to `to`, starting a new epoch.
    fn set_breaker(&mut self, to: Breaker) {
        self.breaker = to;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// An attempt starts: its ticket, or `None` if it must not (the upstream rests, or another
    /// query's probe is on its way), unless `forced`. A rested upstream's first attempt becomes
    /// the probe, and so does the next one after a probe lost for longer than `timeout`.
    fn begin(&mut self, now: Instant, timeout: Duration, forced: bool) -> Option<Ticket> {
        let probe = match self.breaker {
            Breaker::Closed => false,
            Breaker::Open { until, rest } if until <= now => {
                self.set_breaker(Breaker::Probing { since: now, rest });
                true
            }
            Breaker::Probing { since, rest } if now.duration_since(since) > timeout => {
                self.set_breaker(Breaker::Probing { since: now, rest });
                true
            }
            Breaker::Open { .. } | Breaker::Probing { .. } if forced => false,
            Breaker::Open { .. } | Breaker::Probing { .. } => return None,
        };
        Some(Ticket {
            epoch: self.epoch,
            probe,
        })
    }

    /// The upstream answered (any rcode but REFUSED) after `rtt`. Returns true if this closed
    /// the breaker.
    fn answered(&mut self, rtt: Duration, now: Instant) -> bool {
        let reopened = self.breaker != Breaker::Closed;
        self.srtt = match self.srtt {
            // A recovered upstream starts afresh: its old estimate holds the failure penalties.
            Some(s) if self.failures == 0 && !reopened => Some(s - s / 4 + rtt / 4),
            _ => Some(rtt),
        };
        self.checked = Some(now);
        self.failures = 0;
        if reopened {
            self.set_breaker(Breaker::Closed);
        }
        reopened
    }

    /// The attempt with `ticket` failed. `penalty` is folded into the latency estimate. Returns
    /// what this did to the breaker: it opens after `cfg.failures` failures in a row, and a failed
    /// probe doubles the rest. A failure from an earlier epoch (the breaker has changed since the
    /// attempt started) changes nothing: the breaker has already acted on what it says.
    fn failed(
        &mut self,
        ticket: Ticket,
        penalty: Duration,
        now: Instant,
        cfg: &BreakerConfig,
    ) -> Option<Change> {
        if ticket.epoch != self.epoch {
            return None;
        }
        self.srtt = Some(match self.srtt {
            Some(s) => s - s / 4 + penalty / 4,
            None => penalty,
        });
        self.checked = Some(now);
        self.failures = self.failures.saturating_add(1);
        let (rest, change) = match self.breaker {
            Breaker::Closed if self.failures >= cfg.failures => (
                cfg.first_rest,
                Change::Opened {
                    failures: self.failures,
                    rest: cfg.first_rest,
                },
            ),
            Breaker::Probing { rest, .. } if ticket.probe => {
                let rest = (rest * 2).min(cfg.max_rest);
                (rest, Change::ProbeFailed { rest })
            }
            // Not enough failures yet; or an attempt made while the upstream rests because every
            // upstream rests, which is no probe.
            Breaker::Closed | Breaker::Open { .. } | Breaker::Probing { .. } => return None,
        };
        self.set_breaker(Breaker::Open {
            until: now + rest,
            rest,
        });
        Some(change)
    }

    /// The attempt with `ticket` was dropped without an outcome after `elapsed` (a hedged loser,
    /// or the query was cancelled): the upstream is at least that slow, and if it was the probe,
    /// another may be sent.
    fn abandoned(&mut self, ticket: Ticket, elapsed: Duration, now: Instant) {
        if let Some(s) = self.srtt.filter(|&s| elapsed > s) {
            self.srtt = Some(s - s / 4 + elapsed / 4);
        }
        match self.breaker {
            Breaker::Probing { rest, .. } if ticket.probe && ticket.epoch == self.epoch => {
                self.set_breaker(Breaker::Open { until: now, rest });
            }
            _ => {}
        }
    }
}

/// One attempt in flight.
struct Attempt<'a> {
    member: usize,
    ticket: Ticket,
    started: Instant,
    /// Abandoned (as a failure) at this instant.
    give_up_at: Instant,
    fut: BoxFuture<'a, Result<Reply, UpstreamError>>,
}

/// What woke the query loop.
// A value of one loop turn on the stack: boxing the answer would allocate per answer for nothing.
#[allow(clippy::large_enum_variant)]
enum Event {
    Done(usize, Result<Reply, UpstreamError>),
    Timer,
}

/// The state of one query going through the pool.
struct Run<'a> {
    group: &'a UpstreamGroup,
    question: &'a Question,
    flags: QueryFlags,
    deadline: Instant,
    plan: Vec<usize>,
    /// Index of the next plan entry to try.
    next: usize,
    /// Whether the plan is the forced one (tried after a plan whose upstreams all refused).
    forced: bool,
    launched: usize,
    inflight: Vec<Attempt<'a>>,
    /// Parallel strategy: when to start the next attempt beside the running ones.
    hedge_at: Option<Instant>,
    last_answer: Option<Reply>,
    last_error: Option<UpstreamError>,
}

impl<'a> Run<'a> {
    async fn drive(&mut self) -> Result<Reply, UpstreamError> {
        let parallel = self.group.config.strategy == Strategy::Parallel;
        loop {
            if self.inflight.is_empty() && !self.launch_next() {
                break;
            }
            let wake = self
                .inflight
                .iter()
                .map(|a| a.give_up_at)
                .chain(self.hedge_at)
                .fold(self.deadline, Instant::min);
            let event = {
                let any = std::future::poll_fn(|cx| poll_any(&mut self.inflight, cx));
                tokio::select! {
                    biased;
                    (i, r) = any => Event::Done(i, r),
                    () = sleep_until(wake) => Event::Timer,
                }
            };
            let now = Instant::now();
            match event {
                Event::Done(i, result) => {
                    let attempt = self.inflight.swap_remove(i);
                    if let Some(answer) = self.settle(&attempt, result, now) {
                        self.abandon_all(now);
                        return Ok(answer);
                    }
                    if parallel && self.hedge_at.is_none() && self.inflight.len() < MAX_PARALLEL {
                        self.launch_next();
                    }
                }
                Event::Timer if now >= self.deadline => {
                    let timeout = self.group.config.timeout;
                    for attempt in std::mem::take(&mut self.inflight) {
                        self.fail(&attempt, UpstreamError::Timeout(timeout), now);
                    }
                    break;
                }
                Event::Timer => {
                    let mut k = 0;
                    while k < self.inflight.len() {
                        if self.inflight[k].give_up_at <= now {
                            let attempt = self.inflight.swap_remove(k);
                            let took = now.duration_since(attempt.started);
                            self.fail(&attempt, UpstreamError::Timeout(took), now);
                        } else {
                            k += 1;
                        }
                    }
                    let hedge_due = self.hedge_at.is_some_and(|t| t <= now);
                    if hedge_due {
                        self.hedge_at = None;
                    }
                    // Sequential: the loop starts the next attempt once none is left running.
                    // Parallel: a free slot is filled when a hedge is due, or at once when an
                    // attempt was given up and no hedge is pending.
                    if parallel
                        && (hedge_due || self.hedge_at.is_none())
                        && self.inflight.len() < MAX_PARALLEL
                    {
                        self.launch_next();
                    }
                }
            }
        }
        match (self.last_answer.take(), self.last_error.take()) {
            (Some(answer), _) => Ok(answer),
            (None, Some(e)) => Err(e),
            (None, None) => Err(UpstreamError::Timeout(self.group.config.timeout)),
        }
    }

    /// Starts the next attempt of the plan that may start. Returns false when none is left (or
    /// the time is up).
    fn launch_next(&mut self) -> bool {
        let group = self.group;
        let cfg = &group.config;
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            if self.next >= self.plan.len() {
                // Everything planned refused to start (other queries' probes are out): try again
                // ignoring the breakers rather than fail without asking anyone.
                if self.launched > 0 || self.forced {
                    return false;
                }
                (self.plan, self.forced) = group.plan(now, true);
                self.next = 0;
            }
            let i = self.plan[self.next];
            self.next += 1;
            let ticket = group.members[i]
                .health_mut()
                .begin(now, cfg.timeout, self.forced);
            let Some(ticket) = ticket else {
                continue;
            };
            let last = self.next >= self.plan.len();
            let give_up_at = if last {
                self.deadline
            } else {
                (now + group.attempt_timeout(i)).min(self.deadline)
            };
            if cfg.strategy == Strategy::Parallel && !last {
                self.hedge_at = Some((now + group.hedge_delay(i)).min(self.deadline));
            }
            debug!(upstream = group.members[i].upstream.url(), "asking");
            self.inflight.push(Attempt {
                member: i,
                ticket,
                started: now,
                give_up_at,
                // Bounded by `give_up_at` (the loop's timer), so no timer of its own.
                fut: Box::pin(
                    group.members[i]
                        .upstream
                        .ask_attempt(self.question, self.flags),
                ),
            });
            self.launched += 1;
            return true;
        }
    }

    /// Records an attempt's outcome; returns the answer if it is the one to give the client.
    fn settle(
        &mut self,
        attempt: &Attempt<'_>,
        result: Result<Reply, UpstreamError>,
        now: Instant,
    ) -> Option<Reply> {
        let member = &self.group.members[attempt.member];
        let url = member.upstream.url();
        let rtt = now.duration_since(attempt.started);
        match result {
            Ok(answer) if answer.rcode() == Rcode::REFUSED => {
                // A refusal of an IN query says the server will not serve us. For another class
                // (CH, HS: many servers refuse them all) it says nothing of the server, and counting
                // it would let any client rest an upstream by asking such questions.
                let class_in = self.question.qclass == Class::IN;
                if class_in {
                    self.fail(attempt, UpstreamError::Refused, now);
                } else {
                    debug!(
                        upstream = url,
                        "REFUSED a non-IN question; trying the next upstream"
                    );
                    // Neither a failure nor a good answer; a probe it was may be sent again.
                    member.health_mut().abandoned(attempt.ticket, rtt, now);
                }
                self.last_answer = Some(answer);
                None
            }
            Ok(answer) => {
                if member.health_mut().answered(rtt, now) {
                    log_limited!(
                        limit: &member.log_limit,
                        Level::INFO,
                        upstream = url,
                        "upstream answers again; circuit breaker closed, back in use"
                    );
                }
                if answer.rcode() == Rcode::SERVFAIL {
                    debug!(upstream = url, "SERVFAIL; trying the next upstream");
                    self.last_answer = Some(answer);
                    return None;
                }
                Some(answer)
            }
            Err(UpstreamError::Overloaded) => {
                debug!(upstream = url, "overloaded; trying the next upstream");
                member.health_mut().abandoned(attempt.ticket, rtt, now);
                self.last_error = Some(UpstreamError::Overloaded);
                None
            }
            Err(e) => {
                self.fail(attempt, e, now);
                None
            }
        }
    }

    /// Records a failed attempt.
    fn fail(&mut self, attempt: &Attempt<'_>, e: UpstreamError, now: Instant) {
        let group = self.group;
        let member = &group.members[attempt.member];
        let url = member.upstream.url();
        // One line per failed attempt, which clients drive: debug only. What it does to the
        // breaker is logged below, at most once per state change.
        debug!(upstream = url, error = %e, "upstream attempt failed");
        let change = member.health_mut().failed(
            attempt.ticket,
            group.config.timeout,
            now,
            &group.config.breaker,
        );
        match change {
            Some(Change::Opened { failures, rest }) => log_limited!(
                limit: &member.log_limit,
                Level::WARN,
                upstream = url,
                error = %e,
                failures,
                rest_ms = rest.as_millis() as u64,
                "upstream failing; circuit breaker open, resting it"
            ),
            Some(Change::ProbeFailed { rest }) => log_limited!(
                limit: &member.log_limit,
                Level::INFO,
                upstream = url,
                error = %e,
                rest_ms = rest.as_millis() as u64,
                "upstream probe failed; resting it again"
            ),
            None => {}
        }
        self.last_error = Some(e);
    }

    /// Drops every attempt still running (the answer is in).
    fn abandon_all(&mut self, now: Instant) {
        for attempt in self.inflight.drain(..) {
            self.group.members[attempt.member].health_mut().abandoned(
                attempt.ticket,
                now.duration_since(attempt.started),
                now,
            );
        }
    }
}

impl Drop for Run<'_> {
    /// A query dropped mid-way (the client went away, the server shut down) leaves no probe
    /// marked as on its way.
    fn drop(&mut self) {
        if !self.inflight.is_empty() {
            self.abandon_all(Instant::now());
        }
    }
}

/// Polls every attempt; the first one ready gives its index and result. With at most
/// [`MAX_ATTEMPTS`] attempts, polling them all on each wake-up costs nothing worth a scheduler.
fn poll_any(
    inflight: &mut [Attempt<'_>],
    cx: &mut Context<'_>,
) -> Poll<(usize, Result<Reply, UpstreamError>)> {
    for (i, attempt) in inflight.iter_mut().enumerate() {
        if let Poll::Ready(r) = Pin::new(&mut attempt.fut).poll(cx) {
            return Poll::Ready((i, r));
        }
    }
    Poll::Pending
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests;
