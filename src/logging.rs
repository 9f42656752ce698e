//! Rate limits for log lines that the network can drive.
//!
//! A line logged per failed query lets any client, or one broken upstream, write megabytes of log
//! a minute and bury the lines that matter. Per-query detail belongs at `debug`; the lines left at
//! `info` and above that something outside can repeat at will (a breaker that a client can make
//! flap, a connection that keeps failing, a panic a crafted query can trigger) go through a
//! [`LogLimiter`]: at most `lines` per `interval` are let through, the rest are counted, and the
//! next line let through carries that count as a `suppressed` field.
//!
//! [`log_limited!`] logs through a given limiter (one per key: the pool keeps one per upstream) or,
//! without one, through a limiter of its own per call site (a `static`).
//!
//! The check sits on the query path, so it takes no lock: one atomic word holds the current window
//! and the lines let through in it, updated by compare-and-swap; the suppressed count is a second
//! atomic. Time is [`tokio::time::Instant`], so tests can pause it.
//!
//! Limitations: windows are fixed, so up to twice `lines` may pass around a window boundary;
//! suppressed lines are reported only when a later line is let through (a burst that simply stops
//! is counted but never reported); a limiter measures its windows from its first use, so a
//! per-call-site `static` used from several runtimes with paused clocks (tests) may see time stand
//! still: tests that count lines should own their limiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// Lines a limiter lets through per interval unless told otherwise.
pub const DEFAULT_LINES: u32 = 10;
/// The interval of a limiter unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Bits of the state word that count the lines let through in the current window.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Lets at most `lines` log lines through per `interval` and counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    lines: u32,
    interval: Duration,
    /// The instant windows are counted from: the first check.
    epoch: OnceLock<Instant>,
    /// `window << COUNT_BITS | lines let through in it`, the window counted from `epoch` (its
    /// upper bits wrap, which only ever starts a new window early).
    state: AtomicU64,
    /// Lines refused since the last one let through.
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter letting `lines` (at least 1) through per `interval` (at least 1 ms).
    pub const fn new(lines: u32, interval: Duration) -> Self {
        let max = COUNT_MASK as u32;
        let lines = if lines == 0 {
            1
        } else if lines > max {
            max
        } else {
            lines
        };
        let interval = if interval.as_millis() == 0 {
            Duration::from_millis(1)
        } else {
            interval
        };
        LogLimiter {
            lines,
            interval,
            epoch: OnceLock::new(),
            state: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// May a line be logged now? `Some(n)`: yes, and `n` lines were suppressed before it (to be
    /// reported with it); `None`: no, and it is counted.
    #[must_use]
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let epoch = *self.epoch.get_or_init(|| now);
        let elapsed = now.saturating_duration_since(epoch).as_nanos();
        let window = (elapsed / self.interval.as_nanos()) as u64;
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (current, used) = (state >> COUNT_BITS, state & COUNT_MASK);
            let used = if current == window & (u64::MAX >> COUNT_BITS) {
                used
            } else {
                0
            };
            if used >= u64::from(self.lines) {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let next = (window << COUNT_BITS) | (used + 1);
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(seen) => state = seen,
            }
        }
    }
}

impl Default for LogLimiter {
    /// [`DEFAULT_LINES`] per [`DEFAULT_INTERVAL`].
    fn default() -> Self {
        LogLimiter::new(DEFAULT_LINES, DEFAULT_INTERVAL)
    }
}

/// Logs a `tracing` event if a [`LogLimiter`] lets it through, with a `suppressed` field when
/// lines were suppressed before it:
///
/// - `log_limited!(limit: &limiter, Level::WARN, field = value, "message")` uses `limiter`;
/// - `log_limited!(Level::WARN, field = value, "message")` uses a limiter of this call site's own
///   ([`DEFAULT_LINES`] per [`DEFAULT_INTERVAL`]).
macro_rules! log_limited {
    (limit: $limit:expr, $level:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $crate::logging::LogLimiter::admit($limit) {
            if suppressed == 0 {
                ::tracing::event!($level, $($arg)+);
            } else {
                ::tracing::event!($level, suppressed, $($arg)+);
            }
        }
    };
    ($level:expr, $($arg:tt)+) => {{
        static LIMIT: $crate::logging::LogLimiter = $crate::logging::LogLimiter::new(
            $crate::logging::DEFAULT_LINES,
            $crate::logging::DEFAULT_INTERVAL,
        );
        $crate::logging::log_limited!(limit: &LIMIT, $level, $($arg)+);
    }};
}
pub(crate) use log_limited;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lets_n_lines_through_per_interval_and_reports_the_rest_on_resumption() {
        let limit = LogLimiter::new(3, Duration::from_secs(10));
        let admitted: Vec<Option<u64>> = (0..1000).map(|_| limit.admit()).collect();
        assert_eq!(admitted[..3], [Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));

        // Still within the interval: suppressed, and counted.
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(limit.admit(), None);
        // The next interval: the first line carries the count, the next ones start afresh.
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(limit.admit(), Some(998));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);

        // A quiet interval in between changes nothing: windows are counted, not waited for.
        tokio::time::advance(Duration::from_secs(35)).await;
        assert_eq!(limit.admit(), Some(1));
        assert_eq!(limit.admit(), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_settings_are_clamped_to_something_that_logs() {
        let limit = LogLimiter::new(0, Duration::ZERO);
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(limit.admit(), Some(1));
    }

    #[test]
    fn concurrent_callers_let_exactly_n_through_in_one_window() {
        let limit = std::sync::Arc::new(LogLimiter::new(50, Duration::from_secs(3600)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| limit.admit().is_some()).count())
            })
            .collect();
        let through: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(through, 50);
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 40_000 - 50);
    }

    /// The macro compiles with and without a limiter, and a suppressed count becomes a field.
    #[tokio::test(start_paused = true)]
    async fn the_macro_logs_through_the_limiter() {
        let limit = LogLimiter::new(1, Duration::from_secs(1));
        for _ in 0..3 {
            log_limited!(limit: &limit, tracing::Level::WARN, n = 1, "line");
            log_limited!(tracing::Level::DEBUG, "line");
        }
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        log_limited!(limit: &limit, tracing::Level::WARN, n = 1, "line");
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 0);
    }
}
