//! Every numeric setting as a named knob with a default and an allowed range.
//!
//! One table of constants serves three readers: the spec conversion (defaults and range checks), the
//! command line (clap range checks for `--threads` and `--cache-size`) and the README test, which
//! checks that the documentation states each knob's default.
//!
//! A value outside its range is an error, not a silent clamp: a config that says `max_udp_payload =
//! 100000` is a mistake the operator wants to hear about, and the error says what range is accepted.

/// A numeric setting: its key path in the file, default and inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knob {
    /// The key path in the config file, e.g. `server.threads`.
    pub key: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    /// The unit, for messages and docs ("seconds", "entries", ...).
    pub unit: &'static str,
}

impl Knob {
    /// The value of an optional file setting: the default when absent, an error when out of range.
    pub fn resolve(&self, value: Option<i64>) -> Result<u64, String> {
        let Some(v) = value else {
            return Ok(self.default);
        };
        match u64::try_from(v) {
            Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
            _ => Err(self.range_message(v)),
        }
    }

    /// Checks a value given on the command line.
    pub fn check(&self, v: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(self.range_message(v))
        }
    }

    fn range_message<T: std::fmt::Display>(&self, v: T) -> String {
        format!(
            "{v} is out of range (expected {} to {} {}, default {})",
            self.min, self.max, self.unit, self.default
        )
    }
}

macro_rules! knob {
    ($name:ident, $key:literal, $default:expr, $min:expr, $max:expr, $unit:literal, $doc:literal) => {
        #[doc = $doc]
        pub const $name: Knob = Knob {
            key: $key,
            default: $default,
            min: $min,
            max: $max,
            unit: $unit,
        };
    };
}

knob!(
    THREADS,
    "server.threads",
    0,
    0,
    1024,
    "threads",
    "Tokio worker threads; 0 means one per CPU core."
);

/// The worker threads for a [`THREADS`] setting: the setting itself, or for 0 one per CPU core
/// (1 when the count is unknown). The runtime and the server's UDP sockets per address both follow
/// it. A leaf like the rest of this file, so the server may use it without knowing the config.
pub fn worker_threads(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}
knob!(
    TCP_IDLE_TIMEOUT_SECS,
    "server.tcp_idle_timeout_secs",
    10,
    1,
    3600,
    "seconds",
    "How long an idle client TCP connection is kept open (RFC 7766 section 6.2.3)."
);
knob!(
    MAX_TCP_CONNECTIONS,
    "server.max_tcp_connections",
    256,
    1,
    65536,
    "connections",
    "Concurrent client TCP connections; the oldest is closed when the cap is reached."
);
knob!(
    MAX_TCP_CONNECTIONS_PER_CLIENT,
    "server.max_tcp_connections_per_client",
    64,
    1,
    65536,
    "connections",
    "Concurrent client TCP connections from one address (IPv6: one /64); more are closed at once."
);
knob!(
    RATE_LIMIT,
    "server.rate_limit",
    0,
    0,
    1_000_000,
    "queries per second",
    "UDP queries per second each client network may send; 0 turns rate limiting off."
);
knob!(
    RATE_LIMIT_BURST,
    "server.rate_limit_burst",
    0,
    0,
    1_000_000,
    "queries",
    "Queries a quiet client may send at once before its rate applies; 0 = the same as rate_limit."
);
knob!(
    RATE_LIMIT_SLIP,
    "server.rate_limit_slip",
    2,
    0,
    10,
    "queries",
    "Every n-th rate-limited UDP query gets an empty TC=1 answer (the client retries over TCP), \
     the others none; 0 drops them all (BIND's slip)."
);
knob!(
    RATE_LIMIT_IPV4_PREFIX,
    "server.rate_limit_ipv4_prefix",
    32,
    8,
    32,
    "bits",
    "IPv4 clients share a rate-limit bucket per network of this prefix length (32: per address)."
);
knob!(
    RATE_LIMIT_IPV6_PREFIX,
    "server.rate_limit_ipv6_prefix",
    56,
    16,
    128,
    "bits",
    "IPv6 clients share a rate-limit bucket per network of this prefix length (56: a home's usual \
     delegation)."
);
knob!(
    RATE_LIMIT_CLIENTS,
    "server.rate_limit_clients",
    16_384,
    16,
    10_000_000,
    "client networks",
    "Most client networks the rate limiter tracks at once (its memory bound)."
);
knob!(
    QUERY_TIMEOUT_SECS,
    "server.query_timeout_secs",
    15,
    1,
    300,
    "seconds",
    "A query not answered after this long is abandoned (SERVFAIL over TCP, silence over UDP): \
     the safety net above upstream.timeout_ms."
);
knob!(
    MAX_TCP_PIPELINE,
    "server.max_tcp_pipeline",
    32,
    1,
    1024,
    "queries",
    "Queries answered concurrently on one client TCP connection (RFC 7766 section 6.2.1.1)."
);
knob!(
    MAX_UDP_INFLIGHT,
    "server.max_udp_inflight",
    4096,
    1,
    1_000_000,
    "queries",
    "Queries waiting for an upstream at once, UDP and TCP together, shared fairly between \
     clients; more are dropped (UDP) or answered SERVFAIL (TCP)."
);
knob!(
    MAX_UDP_PAYLOAD,
    "server.max_udp_payload",
    1232,
    512,
    4096,
    "bytes",
    "Largest UDP response we send, whatever the client's EDNS size (DNS flag day 2020: 1232)."
);
knob!(
    CACHE_SIZE,
    "cache.size",
    100_000,
    0,
    100_000_000,
    "entries",
    "Cache capacity in entries; 0 disables the cache."
);
knob!(
    MIN_TTL,
    "cache.min_ttl",
    0,
    0,
    86_400,
    "seconds",
    "Cached answers are kept at least this long (never above `cache.max_ttl`)."
);
knob!(
    MAX_TTL,
    "cache.max_ttl",
    86_400,
    1,
    604_800,
    "seconds",
    "Cached answers are kept at most this long."
);
knob!(
    NEGATIVE_MAX_TTL,
    "cache.negative_max_ttl",
    3600,
    0,
    86_400,
    "seconds",
    "Cap on how long NXDOMAIN/NODATA is cached (RFC 2308 section 5: more than a day is problematic)."
);
knob!(
    SERVFAIL_TTL,
    "cache.servfail_ttl",
    5,
    0,
    300,
    "seconds",
    "How long a SERVFAIL is cached (RFC 2308 section 7.1: at most five minutes)."
);
knob!(
    STALE_MAX_AGE,
    "cache.stale_max_age",
    86_400,
    1,
    604_800,
    "seconds",
    "How long past its expiry an answer may be served stale (RFC 8767 section 5 suggests 1-3 days)."
);
knob!(
    STALE_ANSWER_TTL,
    "cache.stale_answer_ttl",
    30,
    1,
    300,
    "seconds",
    "TTL of a stale answer, and how long a failed refresh waits before the next (RFC 8767: 30)."
);
knob!(
    CLIENT_TIMEOUT_MS,
    "cache.client_timeout_ms",
    1800,
    0,
    60_000,
    "milliseconds",
    "How long a query for stale data waits for its refresh before the stale answer (RFC 8767: 1.8 s)."
);
knob!(
    SAVE_INTERVAL_SECS,
    "cache.save_interval_secs",
    300,
    0,
    86_400,
    "seconds",
    "How often the cache file is rewritten while running; 0 = only at shutdown."
);
knob!(
    HOSTS_TTL,
    "hosts.ttl",
    0,
    0,
    86_400,
    "seconds",
    "TTL of answers made from the hosts file."
);
knob!(
    DHCP_TTL,
    "dhcp.ttl",
    0,
    0,
    86_400,
    "seconds",
    "TTL of answers made from the DHCP lease file."
);
knob!(
    UPSTREAM_TIMEOUT_MS,
    "upstream.timeout_ms",
    3000,
    100,
    60_000,
    "milliseconds",
    "Time budget of one client query across all upstream attempts."
);

knob!(
    QUERY_PORT,
    "resolver.query_port",
    53,
    1,
    65_535,
    "port",
    "Port of the authoritative servers asked in recursive mode (a test hierarchy uses a high one)."
);
knob!(
    BLOCK_TTL,
    "block.ttl",
    10,
    0,
    86400,
    "seconds",
    "TTL of blocked answers."
);
knob!(
    BLOCK_REFRESH_SECS,
    "block.refresh_secs",
    86400,
    60,
    2_592_000,
    "seconds",
    "How often block lists are reloaded and list URLs fetched again."
);

/// Every knob, for documentation checks.
pub const ALL: &[Knob] = &[
    THREADS,
    TCP_IDLE_TIMEOUT_SECS,
    MAX_TCP_CONNECTIONS,
    MAX_TCP_CONNECTIONS_PER_CLIENT,
    RATE_LIMIT,
    RATE_LIMIT_BURST,
    RATE_LIMIT_SLIP,
    RATE_LIMIT_IPV4_PREFIX,
    RATE_LIMIT_IPV6_PREFIX,
    RATE_LIMIT_CLIENTS,
    QUERY_TIMEOUT_SECS,
    MAX_TCP_PIPELINE,
    MAX_UDP_INFLIGHT,
    MAX_UDP_PAYLOAD,
    CACHE_SIZE,
    MIN_TTL,
    MAX_TTL,
    NEGATIVE_MAX_TTL,
    SERVFAIL_TTL,
    STALE_MAX_AGE,
    STALE_ANSWER_TTL,
    CLIENT_TIMEOUT_MS,
    SAVE_INTERVAL_SECS,
    HOSTS_TTL,
    DHCP_TTL,
    UPSTREAM_TIMEOUT_MS,
    QUERY_PORT,
    BLOCK_TTL,
    BLOCK_REFRESH_SECS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_lie_in_their_ranges() {
        for k in ALL {
            assert!(k.min <= k.default && k.default <= k.max, "{}", k.key);
            assert_eq!(k.resolve(None), Ok(k.default));
        }
    }

    #[test]
    fn out_of_range_is_an_error_naming_the_range() {
        assert_eq!(MAX_UDP_PAYLOAD.resolve(Some(1400)), Ok(1400));
        let e = MAX_UDP_PAYLOAD.resolve(Some(100_000)).unwrap_err();
        assert!(e.contains("expected 512 to 4096 bytes"), "{e}");
        assert!(THREADS.resolve(Some(-1)).is_err());
        assert!(CACHE_SIZE.check(0).is_ok());
        assert!(UPSTREAM_TIMEOUT_MS.check(99).is_err());
    }

    #[test]
    fn zero_threads_means_one_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads(0), cores);
        assert_eq!(worker_threads(3), 3);
    }
}
