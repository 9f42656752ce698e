//! A [`Snapshot`] in the Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE`
//! once per metric, then one sample per line.
//!
//! Metrics (all prefixed `dnsveil_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `queries_total` | counter | `protocol` (udp, tcp), `type` (A, AAAA, ..., other), `rcode` (NOERROR, ..., other) |
//! | `answers_total` | counter | `source` (cache, stale, local, upstream, none) |
//! | `cache_entries` | gauge | |
//! | `cache_hits_total`, `cache_stale_hits_total`, `cache_misses_total`, `cache_coalesced_total`, `cache_evictions_total`, `cache_prefetches_total` | counter | |
//! | `upstream_queries_total`, `upstream_errors_total` | counter | `pool`, `upstream` |
//! | `upstream_latency_seconds` | histogram | `pool`, `upstream` |
//! | `upstream_up` | gauge (1 closed, 0 open or probing) | `pool`, `upstream` |
//! | `upstream_breaker_state` | gauge (1 for the current state) | `pool`, `upstream`, `state` |
//! | `upstream_handshakes_total`, `upstream_connect_failures_total` | counter | `pool`, `upstream` (encrypted transports only) |
//! | `rate_limited_total` | counter | `action` (slip: answered TC=1, drop) (with a rate limit only) |
//! | `rate_limit_evictions_total` | counter | (with a rate limit only) |
//! | `uptime_seconds` | gauge | |

use std::fmt::Write as _;

use super::Snapshot;
use crate::handler::Protocol;
use crate::metrics::{Source, LATENCY_BOUNDS, SOURCES};

/// The Content-Type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `s` as a label value: backslash, double quote and newline escaped.
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP dnsveil_{name} {help}");
    let _ = writeln!(out, "# TYPE dnsveil_{name} {kind}");
}

/// The whole exposition.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        "queries_total",
        "counter",
        "Responses sent, by listener protocol, query type and response code.",
    );
    // Cells differing only in source are summed.
    let mut rows: Vec<(Protocol, String, String, u64)> = Vec::new();
    for q in &s.queries {
        let t = q.qtype.map_or("other".to_string(), |t| t.to_string());
        let r = q.rcode.map_or("other".to_string(), |r| r.to_string());
        match rows
            .iter_mut()
            .find(|(p, rt, rr, _)| *p == q.protocol && *rt == t && *rr == r)
        {
            Some(row) => row.3 += q.count,
            None => rows.push((q.protocol, t, r, q.count)),
        }
    }
    for (p, t, r, n) in rows {
        let p = match p {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        let _ = writeln!(
            out,
            "dnsveil_queries_total{{protocol=\"{p}\",type=\"{t}\",rcode=\"{r}\"}} {n}"
        );
    }
    header(
        &mut out,
        "answers_total",
        "counter",
        "Responses sent, by where the answer came from (none: an error response).",
    );
    for src in SOURCES {
        let _ = writeln!(
            out,
            "dnsveil_answers_total{{source=\"{}\"}} {}",
            src.as_str(),
            s.answers_from(src)
        );
    }
    debug_assert!(SOURCES.contains(&Source::None));
    if let Some(c) = &s.cache {
        header(
            &mut out,
            "cache_entries",
            "gauge",
            "Entries held by the cache.",
        );
        let _ = writeln!(out, "dnsveil_cache_entries {}", c.entries);
        for (name, help, v) in [
            (
                "cache_hits_total",
                "Lookups answered from the cache, stale ones included.",
                c.hits,
            ),
            (
                "cache_stale_hits_total",
                "Lookups answered from expired data (RFC 8767).",
                c.stale,
            ),
            (
                "cache_misses_total",
                "Lookups that asked the rest of the chain.",
                c.misses,
            ),
            (
                "cache_coalesced_total",
                "Lookups that waited for an identical miss already in flight.",
                c.coalesced,
            ),
            (
                "cache_evictions_total",
                "Live entries dropped to make room.",
                c.evictions,
            ),
            (
                "cache_prefetches_total",
                "Background refreshes: prefetches before expiry and refreshes of stale data.",
                c.refreshes,
            ),
        ] {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "dnsveil_{name} {v}");
        }
    }
    if let Some(r) = &s.rate_limited {
        header(
            &mut out,
            "rate_limited_total",
            "counter",
            "UDP queries over their client network's rate: answered with TC=1 (slip) or dropped.",
        );
        let _ = writeln!(
            out,
            "dnsveil_rate_limited_total{{action=\"slip\"}} {}",
            r.slipped
        );
        let _ = writeln!(
            out,
            "dnsveil_rate_limited_total{{action=\"drop\"}} {}",
            r.dropped
        );
        header(
            &mut out,
            "rate_limit_evictions_total",
            "counter",
            "Client networks the rate limiter forgot early because its table was full.",
        );
        let _ = writeln!(out, "dnsveil_rate_limit_evictions_total {}", r.evicted);
    }
    let who = |u: &super::UpstreamSnapshot| {
        format!(
            "pool=\"{}\",upstream=\"{}\"",
            label(&u.pool),
            label(&u.health.url)
        )
    };
    header(
        &mut out,
        "upstream_queries_total",
        "counter",
        "Exchanges with the upstream that ended (answered or failed).",
    );
    for u in &s.upstreams {
        let _ = writeln!(
            out,
            "dnsveil_upstream_queries_total{{{}}} {}",
            who(u),
            u.counts.queries
        );
    }
    header(
        &mut out,
        "upstream_errors_total",
        "counter",
        "Exchanges with the upstream that failed (timeout, connection, unusable answer).",
    );
    for u in &s.upstreams {
        let _ = writeln!(
            out,
            "dnsveil_upstream_errors_total{{{}}} {}",
            who(u),
            u.counts.errors
        );
    }
    header(
        &mut out,
        "upstream_latency_seconds",
        "histogram",
        "Time from sending a query to the upstream's answer.",
    );
    for u in &s.upstreams {
        let l = &u.counts.latency;
        let w = who(u);
        for (bound, n) in LATENCY_BOUNDS.iter().zip(&l.cumulative) {
            let _ = writeln!(
                out,
                "dnsveil_upstream_latency_seconds_bucket{{{w},le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "dnsveil_upstream_latency_seconds_bucket{{{w},le=\"+Inf\"}} {}",
            l.count()
        );
        let _ = writeln!(
            out,
            "dnsveil_upstream_latency_seconds_sum{{{w}}} {}",
            l.sum.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "dnsveil_upstream_latency_seconds_count{{{w}}} {}",
            l.count()
        );
    }
    header(
        &mut out,
        "upstream_up",
        "gauge",
        "1 while the upstream's circuit breaker is closed (in use), 0 while it rests or is probed.",
    );
    for u in &s.upstreams {
        let _ = writeln!(
            out,
            "dnsveil_upstream_up{{{}}} {}",
            who(u),
            u8::from(u.is_up())
        );
    }
    header(
        &mut out,
        "upstream_breaker_state",
        "gauge",
        "The circuit breaker's state: 1 for the current one (closed, open, probing).",
    );
    for u in &s.upstreams {
        for state in ["closed", "open", "probing"] {
            let _ = writeln!(
                out,
                "dnsveil_upstream_breaker_state{{{},state=\"{state}\"}} {}",
                who(u),
                u8::from(u.breaker() == state)
            );
        }
    }
    header(
        &mut out,
        "upstream_handshakes_total",
        "counter",
        "Completed TLS handshakes (full and resumed) of encrypted upstreams.",
    );
    for u in &s.upstreams {
        if let Some(t) = &u.transport {
            let _ = writeln!(
                out,
                "dnsveil_upstream_handshakes_total{{{}}} {}",
                who(u),
                t.handshakes
            );
        }
    }
    header(
        &mut out,
        "upstream_connect_failures_total",
        "counter",
        "Failed connection attempts (TCP or TLS) of encrypted upstreams.",
    );
    for u in &s.upstreams {
        if let Some(t) = &u.transport {
            let _ = writeln!(
                out,
                "dnsveil_upstream_connect_failures_total{{{}}} {}",
                who(u),
                t.connect_failures
            );
        }
    }
    header(&mut out, "uptime_seconds", "gauge", "Seconds since start.");
    let _ = writeln!(out, "dnsveil_uptime_seconds {}", s.uptime.as_secs_f64());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::CacheStats;
    use crate::metrics::{HistogramSnapshot, QueryCount, UpstreamCounts};
    use crate::observe::UpstreamSnapshot;
    use crate::upstream::pool::{BreakerState, UpstreamHealth};
    use crate::wire::{RType, Rcode};

    #[test]
    fn every_sample_is_well_formed_and_sums_are_right() {
        let q = |protocol, qtype, rcode, source, count| QueryCount {
            protocol,
            qtype,
            rcode,
            source,
            count,
        };
        let snap = Snapshot {
            uptime: Duration::from_secs(5),
            queries: vec![
                q(
                    Protocol::Udp,
                    Some(RType::A),
                    Some(Rcode::NOERROR),
                    Source::Cache,
                    3,
                ),
                q(
                    Protocol::Udp,
                    Some(RType::A),
                    Some(Rcode::NOERROR),
                    Source::Upstream,
                    2,
                ),
                q(Protocol::Tcp, None, None, Source::None, 1),
            ],
            cache: Some(CacheStats {
                hits: 3,
                misses: 2,
                entries: 2,
                ..CacheStats::default()
            }),
            upstreams: vec![UpstreamSnapshot {
                pool: "default".into(),
                health: UpstreamHealth {
                    url: "udp://127.0.0.1:53\"x".into(),
                    srtt: None,
                    consecutive_failures: 0,
                    breaker: BreakerState::Probing,
                },
                counts: UpstreamCounts {
                    queries: 2,
                    errors: 0,
                    latency: HistogramSnapshot {
                        cumulative: vec![1; LATENCY_BOUNDS.len() + 1],
                        sum: Duration::from_millis(1),
                    },
                },
                transport: None,
            }],
            rate_limited: Some(super::super::RateLimited {
                slipped: 7,
                dropped: 6,
                evicted: 0,
            }),
        };
        let text = render(&snap);
        assert!(text.contains("dnsveil_rate_limited_total{action=\"slip\"} 7\n"));
        assert!(text.contains("dnsveil_rate_limited_total{action=\"drop\"} 6\n"));
        assert!(text.contains("dnsveil_rate_limit_evictions_total 0\n"));
        assert!(text
            .contains("dnsveil_queries_total{protocol=\"udp\",type=\"A\",rcode=\"NOERROR\"} 5\n"));
        assert!(text.contains(
            "dnsveil_queries_total{protocol=\"tcp\",type=\"other\",rcode=\"other\"} 1\n"
        ));
        assert!(text.contains("dnsveil_answers_total{source=\"cache\"} 3\n"));
        assert!(text.contains("dnsveil_answers_total{source=\"upstream\"} 2\n"));
        assert!(text.contains("dnsveil_cache_hits_total 3\n"));
        let who = "pool=\"default\",upstream=\"udp://127.0.0.1:53\\\"x\"";
        assert!(text.contains(&format!("dnsveil_upstream_up{{{who}}} 0\n")));
        assert!(text.contains(&format!(
            "dnsveil_upstream_breaker_state{{{who},state=\"probing\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "dnsveil_upstream_latency_seconds_bucket{{{who},le=\"+Inf\"}} 1\n"
        )));
        // Every line is a comment or `name{labels} value` with a number for a value, and every
        // metric has its HELP and TYPE before its samples.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| typed.contains(*b))
                .unwrap_or(name);
            assert!(typed.contains(base), "{line}");
        }
    }
}
