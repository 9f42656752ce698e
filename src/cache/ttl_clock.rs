//! The cache's TTL clock: the milliseconds that TTLs, holds and serve-stale windows count on.
//!
//! It is the monotonic `tokio::time::Instant` (so tests pause and advance it), read on every
//! lookup, and shifted twice:
//! - it starts at [`CLOCK_BASE_MS`], not at 0, so that an entry read from a cache file can be dated
//!   before the process started;
//! - its seconds, in which TTLs count down ([`Entry::expires_ms`]), can be moved onto the wall
//!   clock's second grid once ([`Cache::with_wall_clock_seconds`]), as unbound's `time()` seconds
//!   are.
//!
//! How it relates to the wall clock ([`crate::clock`], [`WallClock`]): that one is the time of
//! day, which can jump; this one only counts. The cache reads the wall clock once to place this
//! clock's seconds (here) and once per save or load to date and age the entries of its file
//! (`super::persist`), never per query; TTLs count on this clock only, so a stepped wall clock
//! neither expires nor revives entries.
//!
//! [`WallClock`]: crate::clock::WallClock
//! [`Entry::expires_ms`]: super::entry::Entry::expires_ms

use tokio::time::Instant;

use super::Cache;

/// The cache's clock starts here (ms) rather than at 0, so that an entry read from a cache file can
/// be dated before the process started (about 795 days: more than any TTL plus stale age). Entries
/// store the clock in 48 bits, which leaves thousands of years of uptime. A whole number of
/// seconds, so the clock's seconds (in which TTLs count, [`Entry::expires_ms`]) begin in step with
/// the cache's start, which keeps tests with paused time exact; the server then moves them onto
/// the wall clock's ([`Cache::with_wall_clock_seconds`]).
///
/// [`Entry::expires_ms`]: super::entry::Entry::expires_ms
const CLOCK_BASE_MS: u64 = (1 << 36) / 1000 * 1000;

/// Milliseconds on the cache's clock: [`CLOCK_BASE_MS`], plus a phase, plus the time since the
/// cache was made.
#[derive(Clone, Copy, Debug)]
pub(super) struct TtlClock {
    epoch: Instant,
    /// Added so that the clock's seconds tick with the wall clock's (see
    /// [`Cache::with_wall_clock_seconds`]); 0 until then.
    phase_ms: u64,
}

impl TtlClock {
    /// A clock that reads [`CLOCK_BASE_MS`] now, its seconds beginning now.
    pub(super) fn start() -> TtlClock {
        TtlClock {
            epoch: Instant::now(),
            phase_ms: 0,
        }
    }

    /// Milliseconds on the clock now.
    pub(super) fn now_ms(&self) -> u64 {
        CLOCK_BASE_MS + self.phase_ms + self.epoch.elapsed().as_millis() as u64
    }

    /// Moves the clock's second boundaries to where those of the wall-clock time `wall_unix_ms`
    /// fall.
    fn align_seconds(&mut self, wall_unix_ms: u64) {
        let wall_ms = wall_unix_ms % 1000;
        // The clock reads a whole number of seconds (CLOCK_BASE_MS) plus the time since `epoch`;
        // the phase makes its position in the second the wall clock's.
        let elapsed = self.epoch.elapsed().as_millis() as u64 % 1000;
        self.phase_ms = (wall_ms + 1000 - elapsed) % 1000;
    }
}

impl Cache {
    /// Moves the clock's second boundaries onto the wall clock's, as `time()` seconds are in
    /// unbound: TTLs then count down, and prefetch windows open, when the wall clock's second
    /// turns, not at an offset set by when this process started. Every cache on a machine (and a
    /// cache file's wall-clock times) then shares one second grid; without it, which queries
    /// fall into a one-second prefetch window depends on the process's start, the same for a
    /// whole run. Call before any entry is stored. The wall clock is the cache's
    /// ([`Cache::with_clock`]), read once here: the grid stays where it was put if the wall clock
    /// is stepped later. [`Cache::new`] leaves the phase at 0, so that tests with paused time see
    /// seconds begin with the cache.
    pub fn with_wall_clock_seconds(mut self) -> Cache {
        self.clock.align_seconds(self.wall_clock.unix_ms());
        self
    }

    /// Milliseconds on the cache's clock (see [`CLOCK_BASE_MS`]).
    pub(super) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
