//! The wall clock: the time of day, read through a handle so that tests can set and move it.
//!
//! A resolver keeps two kinds of time. Durations (TTLs counting down, timeouts, hold times) count
//! on the monotonic clock, `tokio::time::Instant`: it never jumps, and tests pause and advance it
//! (`tokio::time::pause`, `advance`). Moments of the calendar need the time of day, and read it
//! from a [`WallClock`]:
//!
//! - the cache file records when each entry was stored as wall-clock time, because the process
//!   that reads it back has a monotonic clock with another origin; reading it ages every entry by
//!   the wall-clock time that passed (`cache::persist`);
//! - the cache counts TTL seconds on the wall clock's second grid, as unbound does
//!   ([`Cache::with_wall_clock_seconds`](crate::cache::Cache::with_wall_clock_seconds));
//! - the DNSSEC validator will compare RRSIG inception and expiration times (RFC 4034 section
//!   3.1.5: 32-bit seconds since the epoch, compared in serial number arithmetic, RFC 1982) with it:
//!   it is to take the same handle, `unix_ms() / 1000` reduced modulo 2^32.
//!
//! Nothing reads the time of day any other way: the composition root (`app`) hands
//! [`WallClock::system`] to each user, and tests hand them a [`ManualClock`]'s
//! [`clock`](ManualClock::clock) instead.
//!
//! A manual clock stands still: it reads what the test set and moves only when the test calls
//! [`ManualClock::advance`] or [`ManualClock::set`], never with tokio's clock, paused or not. So a
//! test reads exact values with or without a runtime, moves both clocks when it means time to
//! pass, and moves only one to play a clock stepped while the process runs. Clones of a
//! [`ManualClock`] and every [`WallClock`] taken from it share one reading.
//!
//! Neither kind is on the cached path: the cache reads the wall clock once when it aligns its
//! seconds and once per save or load, not per query.
//!
//! Limitations:
//! - The wall clock can jump (an NTP step, an administrator, a clock set at boot or resume). TTLs
//!   do not follow it: they count on the monotonic clock. The cache's second grid is aligned once,
//!   so after a step its seconds turn up to a second apart from the wall clock's until the next
//!   start. A clock stepped between a save and the load that follows ages the file's entries by
//!   the step too: forward, they expire early (a miss, fetched again); backward, they are aged as
//!   if read the moment the file was saved (a TTL never counts up), and a file saved more than a
//!   few minutes in the clock's future is refused (see `cache::persist`). A validator
//!   judges signature windows by the clock as it reads: a clock far off makes good signatures
//!   look expired or not yet valid, as in every validator.
//! - The monotonic clock (`CLOCK_MONOTONIC` on Linux) stands still while the machine is
//!   suspended, and so do TTLs: after a resume, cached entries live on by the time it slept.
//! - A manual clock holds whole nanoseconds since the epoch in 64 bits (until the year 2554) and
//!   cannot read before the epoch: times outside that range are clamped to it. The system clock
//!   reads as `SystemTime::now`; `unix_ms` reads a time before the epoch as 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time of day, for everything that compares with it. Cheap to clone; clones read the same
/// clock.
#[derive(Clone, Debug)]
pub struct WallClock(Source);

#[derive(Clone, Debug)]
enum Source {
    /// `SystemTime::now`.
    System,
    /// A [`ManualClock`]'s reading.
    Manual(Arc<AtomicU64>),
}

impl WallClock {
    /// The operating system's clock: what production code uses.
    pub fn system() -> WallClock {
        WallClock(Source::System)
    }

    /// The time of day.
    pub fn now(&self) -> SystemTime {
        match &self.0 {
            Source::System => SystemTime::now(),
            Source::Manual(nanos) => {
                UNIX_EPOCH + Duration::from_nanos(nanos.load(Ordering::Relaxed))
            }
        }
    }

    /// Milliseconds since the Unix epoch (0 for a time before it).
    pub fn unix_ms(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A wall clock that tests set and move; hand its [`clock`](ManualClock::clock) to what is tested.
/// Clones move the same clock.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock that reads `start` until it is moved.
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(nanos_since_epoch(start))))
    }

    /// A clock that reads `ms` milliseconds after the Unix epoch until it is moved.
    pub fn at_unix_ms(ms: u64) -> ManualClock {
        ManualClock::new(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// A [`WallClock`] that reads this clock.
    pub fn clock(&self) -> WallClock {
        WallClock(Source::Manual(self.0.clone()))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update cannot fail: the closure always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `to`, forward or back (a step of the system clock).
    pub fn set(&self, to: SystemTime) {
        self.0.store(nanos_since_epoch(to), Ordering::Relaxed);
    }
}

/// `t` as nanoseconds since the epoch, clamped to what 64 bits hold and to the epoch.
fn nanos_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000_000;

    #[test]
    fn a_manual_clock_reads_what_the_test_set_and_moves_only_when_moved() {
        let hand = ManualClock::at_unix_ms(T + 700);
        let clock = hand.clock();
        let copy = clock.clone();
        assert_eq!(clock.unix_ms(), T + 700);
        assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_millis(T + 700));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.unix_ms(), T + 700, "stands still");

        hand.advance(Duration::from_millis(40_300));
        assert_eq!(clock.unix_ms(), T + 41_000);
        assert_eq!(copy.unix_ms(), T + 41_000, "clones share the reading");
        hand.clone().advance(Duration::from_nanos(1));
        assert_eq!(
            clock.now(),
            UNIX_EPOCH + Duration::from_millis(T + 41_000) + Duration::from_nanos(1)
        );

        // Stepped back, as a system clock may be.
        hand.set(UNIX_EPOCH + Duration::from_millis(T - 3_600_000));
        assert_eq!(copy.unix_ms(), T - 3_600_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_manual_clock_does_not_follow_tokios_paused_time() {
        let hand = ManualClock::at_unix_ms(T);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(hand.clock().unix_ms(), T);
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        let hand = ManualClock::new(UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(hand.clock().now(), UNIX_EPOCH);
        assert_eq!(hand.clock().unix_ms(), 0);
        hand.advance(Duration::MAX);
        assert_eq!(
            hand.clock().now(),
            UNIX_EPOCH + Duration::from_nanos(u64::MAX)
        );
        hand.set(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 1000));
        assert_eq!(
            hand.clock().now(),
            UNIX_EPOCH + Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        let before = SystemTime::now();
        let read = WallClock::system().now();
        let after = SystemTime::now();
        // The system clock may be stepped between the readings; a step back is not a failure.
        assert!(read >= before || after < before);
        assert!(read <= after || after < before);
        assert!(WallClock::system().unix_ms() > T / 2);
    }
}
