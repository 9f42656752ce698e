//! Prefetch: refreshing a popular entry in the background before it expires, so that its askers
//! keep hitting.
//!
//! A hit while the TTL an entry answers with is at most a tenth of the stored one (in whole
//! seconds: unbound's `prefetch: yes` window) on a popular entry queues a refresh, once per entry.
//! The seconds are the wall clock's, as unbound's are ([`Cache::with_wall_clock_seconds`]): for a
//! TTL under 10 s the window is one second, and which queries fall into it should not depend on
//! when the process happened to start.
//! Popular: asked for at least twice, this hit and the client miss that fetched it included.
//! Popularity belongs to the name, so a refreshed entry takes over the asks of the one it replaces
//! and one hit in each later window keeps it refreshed; a name nobody asks for in its window is
//! not refreshed on and on. Popularity is two bits of the entry's flag octet, counted under the
//! lock the hit already holds.
//!
//! Refreshes are run by one refresher task ([`Cache::spawn_refresher`], [`super::refresh`]) that
//! owns the handlers after the cache, so a refresh needs no client: it joins the same `inflight`
//! flights as client misses (one upstream query per key at a time), its result replaces the entry,
//! and clients keep hitting the old entry meanwhile. The fast path only sends a job into a bounded
//! channel (`try_reserve`; a full queue drops the prefetch, load shedding); at most
//! `refresh::MAX_IN_FLIGHT` refreshes run at once. Serve-stale queues its background refreshes the
//! same way ([`Cache::request_refresh`]).
//!
//! Limitations: popularity is a count of asks (carried over refreshes), not a rate.

use super::entry::StoredMut;
use super::key::Key;
use super::refresh;
use super::Cache;

/// Prefetch window: the TTL left is at most 1/N of the stored one (in whole seconds).
const PREFETCH_WINDOW_DIVISOR: u64 = 10;
/// Asks (hits, the client miss that fetched the entry, and those its predecessor had) an entry must
/// have had before the one in its prefetch window to be prefetched.
const PREFETCH_MIN_ASKS: u8 = 1;

impl Cache {
    /// A live hit on `entry` (either path): counts it toward popularity, marks it referenced for the
    /// CLOCK hand, and queues its prefetch when due. Under the shard lock; allocates nothing.
    pub(super) fn on_live_hit(&self, entry: &mut StoredMut<'_>, key: &Key, hash: u64, now_ms: u64) {
        if self.hit_wants_prefetch(entry, now_ms) {
            self.request_refresh(entry, key, hash);
        }
    }

    /// Notes a live hit on `entry`; true when it should be prefetched now: prefetch is on, the entry
    /// holds data (a SERVFAIL's lifetime is its retry back-off, RFC 2308 section 7.1), it is
    /// popular (asked for at least twice, this hit and the client miss that fetched it included; a
    /// refreshed entry carries its predecessor's asks), no prefetch was asked for it yet, it is not
    /// held after a failure, and the TTL it answers with is at most a tenth of the stored one. Runs
    /// under the shard lock, allocates nothing.
    fn hit_wants_prefetch(&self, entry: &mut StoredMut<'_>, now_ms: u64) -> bool {
        let before = entry.note_hit();
        if !self.policy().prefetch
            || before < PREFETCH_MIN_ASKS
            || !entry.stale_ok()
            || entry.prefetch_requested()
            || entry.is_held(now_ms)
        {
            return false;
        }
        // In whole seconds, as the client sees it: the TTL it is answered with is at most a
        // tenth of the stored one (a lifetime under 10 s: its last second, where the TTL reads 0).
        entry.ttl_left_s(now_ms) * PREFETCH_WINDOW_DIVISOR <= u64::from(entry.lifetime())
    }

    /// Queues a background refresh of `key` and marks `entry` so that it is asked for once. False
    /// when there is no refresher or its queue is full (the refresh is dropped: load shedding).
    /// Runs under the shard lock; sending into the bounded channel does not wait.
    pub(super) fn request_refresh(&self, entry: &mut StoredMut<'_>, key: &Key, hash: u64) -> bool {
        let Some(tx) = self.refresher.get() else {
            return false;
        };
        let Ok(permit) = tx.try_reserve() else {
            return false;
        };
        entry.set_prefetch_requested();
        permit.send(refresh::Job {
            key: key.clone(),
            hash,
            claimed: false,
        });
        true
    }
}
