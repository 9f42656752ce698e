//! Counters and histograms that any layer may record into; reading them is for `observe`.
//!
//! ```text
//!   server (every answer sent) --QueryCounters::record(proto, qtype, rcode, source)--> shards
//!   upstream (every exchange)  --UpstreamCounters::record(result, elapsed)----------> atomics
//!   observe::Snapshot <--sum of the shards, loads-- (metrics endpoint, control socket, STATUS=)
//! ```
//!
//! Why sharded: the cached fast path answers a query in well under a microsecond on the thread
//! that received it. One shared `AtomicU64` per counter would bounce its cache line between every
//! receive thread on every query; instead each thread adds to its own shard (a thread picks one
//! the first time it records, round robin) with a relaxed `fetch_add` on a line no other thread
//! writes, and a reader sums the shards. A query is one addition: the four labels index one cell,
//! and the per-label totals (queries by type, answers by source) are sums at read time.
//!
//! Nothing here allocates or locks after construction; labels outside the tracked sets fall into
//! an "other" cell, so a hostile packet cannot grow anything.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::handler::{Origin, Protocol};
use crate::wire::{RType, Rcode};

/// Shards of the query counters: threads beyond this many share shards (still correct).
const SHARDS: usize = 16;

/// Query types counted under their own name; everything else is "other".
pub const QTYPES: [RType; 14] = [
    RType::A,
    RType::AAAA,
    RType::PTR,
    RType::HTTPS,
    RType::SVCB,
    RType::CNAME,
    RType::MX,
    RType::TXT,
    RType::SRV,
    RType::NS,
    RType::SOA,
    RType::DS,
    RType::DNSKEY,
    RType::ANY,
];
/// Response codes counted under their own name; everything else is "other".
pub const RCODES: [Rcode; 6] = [
    Rcode::NOERROR,
    Rcode::FORMERR,
    Rcode::SERVFAIL,
    Rcode::NXDOMAIN,
    Rcode::NOTIMP,
    Rcode::REFUSED,
];
/// Where a response came from: [`Origin`]'s four, and `None` for a response no stage answered
/// (an error, a refusal, a malformed query).
pub const SOURCES: [Source; 5] = [
    Source::Cache,
    Source::Stale,
    Source::Local,
    Source::Upstream,
    Source::None,
];
/// The two listener protocols.
pub const PROTOCOLS: [Protocol; 2] = [Protocol::Udp, Protocol::Tcp];

const NT: usize = QTYPES.len() + 1;
const NR: usize = RCODES.len() + 1;
const NS: usize = SOURCES.len();
const CELLS: usize = PROTOCOLS.len() * NT * NR * NS;

/// The source label of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Stale,
    Local,
    Upstream,
    /// No stage answered: an error response, a refusal, a malformed query.
    None,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Stale => "stale",
            Source::Local => "local",
            Source::Upstream => "upstream",
            Source::None => "none",
        }
    }
}

impl From<Origin> for Source {
    fn from(o: Origin) -> Source {
        match o {
            Origin::Cache => Source::Cache,
            Origin::StaleCache => Source::Stale,
            Origin::Local => Source::Local,
            Origin::Upstream => Source::Upstream,
        }
    }
}

/// One shard: a whole number of cache lines, so that two shards never share one.
#[repr(align(128))]
struct Shard {
    cells: [AtomicU64; CELLS],
}

/// Responses sent, by protocol, query type, response code and source.
pub struct QueryCounters {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for QueryCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryCounters")
    }
}

impl Default for QueryCounters {
    fn default() -> Self {
        QueryCounters::new()
    }
}

/// The next shard a thread will take.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, picked at its first record.
    static MY_SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl QueryCounters {
    /// All zero.
    pub fn new() -> Self {
        QueryCounters {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    cells: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
        }
    }

    /// Counts one response sent.
    #[inline]
    pub fn record(&self, protocol: Protocol, qtype: RType, rcode: Rcode, source: Source) {
        let cell = index(protocol, qtype, rcode, source);
        let shard = MY_SHARD.with(|s| *s);
        self.shards[shard].cells[cell].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a response whose wire bytes are `response` (its RCODE is read from the header).
    #[inline]
    pub fn record_wire(&self, protocol: Protocol, qtype: RType, response: &[u8], source: Source) {
        let rcode = response
            .get(3)
            .map_or(Rcode::SERVFAIL, |b| Rcode(u16::from(b & 0x0f)));
        self.record(protocol, qtype, rcode, source);
    }

    /// The sum over the shards, one count per label combination with a count above zero.
    pub fn snapshot(&self) -> Vec<QueryCount> {
        let mut out = Vec::new();
        for (pi, &protocol) in PROTOCOLS.iter().enumerate() {
            for ti in 0..NT {
                for ri in 0..NR {
                    for (si, &source) in SOURCES.iter().enumerate() {
                        let cell = ((pi * NT + ti) * NR + ri) * NS + si;
                        let count: u64 = self
                            .shards
                            .iter()
                            .map(|s| s.cells[cell].load(Ordering::Relaxed))
                            .sum();
                        if count > 0 {
                            out.push(QueryCount {
                                protocol,
                                qtype: QTYPES.get(ti).copied(),
                                rcode: RCODES.get(ri).copied(),
                                source,
                                count,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// One cell of [`QueryCounters::snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryCount {
    pub protocol: Protocol,
    /// `None`: a type not in [`QTYPES`].
    pub qtype: Option<RType>,
    /// `None`: a code not in [`RCODES`].
    pub rcode: Option<Rcode>,
    pub source: Source,
    pub count: u64,
}

#[inline]
fn index(protocol: Protocol, qtype: RType, rcode: Rcode, source: Source) -> usize {
    let p = match protocol {
        Protocol::Udp => 0,
        Protocol::Tcp => 1,
    };
    let t = QTYPES.iter().position(|&t| t == qtype).unwrap_or(NT - 1);
    let r = RCODES.iter().position(|&r| r == rcode).unwrap_or(NR - 1);
    let s = source as usize;
    ((p * NT + t) * NR + r) * NS + s
}

/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus `le`); a last bucket
/// (`+Inf`) takes the rest.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram of durations with [`LATENCY_BOUNDS`] buckets (not cumulative in memory; the
/// snapshot is).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_us: AtomicU64,
}

/// A histogram read out: cumulative counts per bound (the last is `+Inf`, the total), and the
/// sum of the observations.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<u64>,
    pub sum: Duration,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The cumulative buckets and the sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum: Duration::from_micros(self.sum_us.load(Ordering::Relaxed)),
        }
    }
}

/// What one upstream did: exchanges, failures and their latency.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    queries: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// [`UpstreamCounters`] read out.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamCounts {
    /// Exchanges started and ended (answer or failure).
    pub queries: u64,
    /// Of those, failures (timeouts, connection errors, unusable answers).
    pub errors: u64,
    /// Time from sending to an answer, for answered exchanges only.
    pub latency: HistogramSnapshot,
}

impl UpstreamCounters {
    /// Records an exchange that ended after `elapsed`, answered or not.
    pub fn record(&self, ok: bool, elapsed: Duration) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.latency.observe(elapsed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> UpstreamCounts {
        UpstreamCounts {
            queries: self.queries.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn every_label_combination_has_its_own_cell() {
        let mut seen = std::collections::HashSet::new();
        for p in PROTOCOLS {
            for t in QTYPES.iter().copied().chain([RType(999)]) {
                for r in RCODES.iter().copied().chain([Rcode(9)]) {
                    for s in SOURCES {
                        let i = index(p, t, r, s);
                        assert!(i < CELLS);
                        assert!(seen.insert(i), "{p:?} {t} {r} {s:?}");
                    }
                }
            }
        }
        assert_eq!(seen.len(), CELLS);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = std::sync::Arc::new(QueryCounters::new());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.record(Protocol::Udp, RType::A, Rcode::NOERROR, Source::Cache);
                    }
                    c.record(Protocol::Tcp, RType(999), Rcode(9), Source::None);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = c.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(
            snap[0],
            QueryCount {
                protocol: Protocol::Udp,
                qtype: Some(RType::A),
                rcode: Some(Rcode::NOERROR),
                source: Source::Cache,
                count: 20_000
            }
        );
        assert_eq!(
            (snap[1].qtype, snap[1].rcode, snap[1].count),
            (None, None, 20)
        );
        // The RCODE of a response's wire form is read from its header.
        let mut resp = [0u8; 12];
        resp[3] = 0x83; // RA=1, NXDOMAIN
        c.record_wire(Protocol::Udp, RType::AAAA, &resp, Source::Local);
        assert!(c.snapshot().iter().any(|q| q.rcode == Some(Rcode::NXDOMAIN)
            && q.source == Source::Local
            && q.count == 1));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), LATENCY_BOUNDS.len() + 1);
        assert_eq!(s.cumulative[0], 1); // <= 1 ms
        assert_eq!(s.cumulative[4], 1); // <= 25 ms
        assert_eq!(s.cumulative[5], 2); // <= 50 ms
        assert_eq!(s.cumulative[11], 2); // <= 5 s
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum, Duration::from_micros(10_030_500));
    }
}
