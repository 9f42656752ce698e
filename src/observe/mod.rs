//! Asking a running instance how it is doing: one [`Snapshot`] of every counter, shown three
//! ways.
//!
//! ```text
//!   metrics::QueryCounters (server) --+
//!   Cache::stats (cache)             --+--> Sources::snapshot --> Snapshot --> prometheus::render (GET /metrics)
//!   UpstreamGroup health + counters  --+                                  --> Snapshot::human   (dnsveil stats)
//!                                                                         --> Snapshot::status  (sd_notify STATUS=)
//! ```
//!
//! Why here and not in `metrics`: reading the cache and the upstream pools means knowing them,
//! and `metrics` must stay importable by everything (including those two). This module sits
//! beside `app`, above the layers it reads.
//!
//! Reading costs a pass over the query counter shards and the cache shards' counters (a lock
//! each, briefly, as `Cache::stats` does): fine for a scrape every few seconds, not meant for
//! every query.

pub mod http;
pub mod prometheus;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cache::{Cache, CacheStats};
use crate::metrics::{QueryCount, QueryCounters, Source, UpstreamCounts};
use crate::server::ratelimit::RateLimitCounters;
use crate::upstream::pool::{BreakerState, UpstreamHealth};
use crate::upstream::{TransportStats, UpstreamGroup};

/// What a snapshot is read from.
#[derive(Clone)]
pub struct Sources {
    pub queries: Arc<QueryCounters>,
    pub cache: Option<Arc<Cache>>,
    /// Each upstream pool with its name (`default`, or a forwarding rule's first domain).
    pub pools: Vec<(String, Arc<UpstreamGroup>)>,
    pub started: Instant,
    /// The UDP rate limiter's counts, when limiting is on.
    pub rate_limit: Option<Arc<RateLimitCounters>>,
}

/// What the rate limiter did, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimited {
    /// Limited queries answered with an empty TC=1 response.
    pub slipped: u64,
    /// Limited queries dropped.
    pub dropped: u64,
    /// Client networks forgotten early because the table was full.
    pub evicted: u64,
}

/// Every counter at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub uptime: Duration,
    pub queries: Vec<QueryCount>,
    pub cache: Option<CacheStats>,
    pub upstreams: Vec<UpstreamSnapshot>,
    pub rate_limited: Option<RateLimited>,
}

/// One upstream at one moment.
#[derive(Clone, Debug)]
pub struct UpstreamSnapshot {
    pub pool: String,
    pub health: UpstreamHealth,
    pub counts: UpstreamCounts,
    /// For an encrypted transport: handshakes and connection failures.
    pub transport: Option<TransportStats>,
}

impl UpstreamSnapshot {
    /// The breaker's state as a word: `closed` (in use), `open` (resting), `probing`.
    pub fn breaker(&self) -> &'static str {
        match self.health.breaker {
            BreakerState::Closed => "closed",
            BreakerState::Resting { .. } => "open",
            BreakerState::Probing => "probing",
        }
    }

    /// True when the upstream is in use (its breaker is closed).
    pub fn is_up(&self) -> bool {
        matches!(self.health.breaker, BreakerState::Closed)
    }
}

impl Sources {
    /// Reads every counter now.
    pub fn snapshot(&self) -> Snapshot {
        let mut upstreams = Vec::new();
        for (pool, group) in &self.pools {
            for (upstream, health) in group.upstreams().zip(group.health()) {
                upstreams.push(UpstreamSnapshot {
                    pool: pool.clone(),
                    health,
                    counts: upstream.counts(),
                    transport: upstream.transport_stats(),
                });
            }
        }
        Snapshot {
            uptime: self.started.elapsed(),
            queries: self.queries.snapshot(),
            cache: self.cache.as_ref().map(|c| c.stats()),
            upstreams,
            rate_limited: self.rate_limit.as_ref().map(|r| RateLimited {
                slipped: r.slipped(),
                dropped: r.dropped(),
                evicted: r.evicted(),
            }),
        }
    }
}

impl Snapshot {
    /// Responses sent in all.
    pub fn total_queries(&self) -> u64 {
        self.queries.iter().map(|q| q.count).sum()
    }

    /// Responses sent from `source`.
    pub fn answers_from(&self, source: Source) -> u64 {
        self.queries
            .iter()
            .filter(|q| q.source == source)
            .map(|q| q.count)
            .sum()
    }

    /// The sd_notify STATUS= text: queries, cache hit ratio, upstream health.
    pub fn status(&self) -> String {
        let up = self.upstreams.iter().filter(|u| u.is_up()).count();
        let mut s = format!("{} queries", self.total_queries());
        if let Some(c) = &self.cache {
            let _ = write!(s, ", cache hit ratio {:.1}%", c.hit_ratio() * 100.0);
        }
        let _ = write!(s, ", upstreams {up}/{} up", self.upstreams.len());
        s
    }

    /// The figures as `dnsveil stats` prints them.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "uptime: {}s", self.uptime.as_secs());
        let _ = writeln!(s, "queries: {}", self.total_queries());
        let sources = [
            Source::Cache,
            Source::Stale,
            Source::Local,
            Source::Upstream,
            Source::None,
        ];
        let by_source: Vec<String> = sources
            .iter()
            .map(|&src| format!("{} {}", src.as_str(), self.answers_from(src)))
            .collect();
        let _ = writeln!(s, "answers by source: {}", by_source.join(", "));
        let mut by_rcode: Vec<(String, u64)> = Vec::new();
        for q in &self.queries {
            let name = q.rcode.map_or("other".to_string(), |r| r.to_string());
            match by_rcode.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += q.count,
                None => by_rcode.push((name, q.count)),
            }
        }
        let rcodes: Vec<String> = by_rcode.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let _ = writeln!(s, "responses by rcode: {}", rcodes.join(", "));
        match &self.cache {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "cache: {} entries, {} hits ({} stale), {} misses, hit ratio {:.1}%, {} \
                     evictions, {} prefetches and refreshes",
                    c.entries,
                    c.hits,
                    c.stale,
                    c.misses,
                    c.hit_ratio() * 100.0,
                    c.evictions,
                    c.refreshes
                );
            }
            None => {
                let _ = writeln!(s, "cache: off");
            }
        }
        if let Some(r) = &self.rate_limited {
            let _ = writeln!(
                s,
                "rate limit: {} slipped (TC=1), {} dropped, {} clients evicted",
                r.slipped, r.dropped, r.evicted
            );
        }
        for u in &self.upstreams {
            let latency = &u.counts.latency;
            let mean = if latency.count() > 0 {
                format!(
                    "{:.1}ms",
                    latency.sum.as_secs_f64() * 1000.0 / latency.count() as f64
                )
            } else {
                "-".into()
            };
            let _ = write!(
                s,
                "upstream {} ({}): {}, {} queries, {} errors, mean latency {mean}",
                u.health.url,
                u.pool,
                u.breaker(),
                u.counts.queries,
                u.counts.errors
            );
            if let Some(t) = &u.transport {
                let _ = write!(s, ", {} handshakes ({} resumed)", t.handshakes, t.resumed);
            }
            s.push('\n');
        }
        s
    }
}
