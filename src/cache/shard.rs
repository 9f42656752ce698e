//! One shard of the cache: a slab of entries ([`super::slab`]), an index from key hash to slot, a
//! CLOCK hand, the misses in flight and the shard's counters. Everything here runs under the
//! shard's mutex, so it is plain single-threaded code.
//!
//! The index maps the full 64-bit keyed hash (SipHash with a per-process random key, so peers cannot
//! aim collisions) to a slot number; the slot's entry holds the key, which every lookup compares.
//! Two keys with the same 64-bit hash share a slot: the later insert replaces the earlier one, which
//! is only a lost cache entry. Eviction is CLOCK (second chance): the hand sweeps the slab, takes an
//! expired entry at once (stale data kept for serve-stale included: RFC 8767 section 6 asks that
//! it go before live data), gives a referenced one a second chance (clearing its bit), and evicts
//! the first unreferenced one. New entries start unreferenced, so a flood of names asked once goes
//! first.
//!
//! Next to the slot number the index keeps the generation of the screen (the blocker's lists) the
//! entry's answer last passed ([`crate::handler::Screen`]): in the four octets that the alignment of
//! the 64-bit hash leaves free in each index bucket, so it costs no memory, and in the bucket a hit
//! reads anyway, so checking it touches no other cache line. A new entry is inserted with 0 (not
//! yet checked).
//!
//! The same stamp with its top bit ([`OWN`]) set marks an entry that is the screen's own answer (a
//! blocked name's), valid under that generation only: [`Shard::lookup`] (the slow path's) misses
//! it, and the cache's screened fast path answers it only while the screen's generation is the
//! stamped one. A shard holds at most a quarter of its entries as own answers ([`OWN_SHARE`]):
//! past that, a new one is stored only in place of one of no more use (another generation's, or
//! one not asked since its TTL ran out: [`Shard::reclaim_own`]), else answered without being
//! stored. Own answers are never marked referenced, so the CLOCK hand's second chance goes to the
//! other entries only. A flood of distinct blocked names thus displaces at most a quarter of the
//! other entries.

use std::collections::hash_map::{self, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use tokio::sync::watch;

use crate::handler::HandlerResult;

use super::entry::{Age, Entry, Stored, StoredMut};
use super::slab::Slab;

/// A shard holds at most `1 / OWN_SHARE` of its entries as a screen's own answers.
pub(crate) const OWN_SHARE: usize = 4;
/// Slots [`Shard::reclaim_own`] looks at, at most, when the own answers' share is full.
const OWN_RECLAIM_SCAN: usize = 16;

/// The keyed hash of a cache key (used for the shard choice and the index).
pub(crate) fn hash_key(state: &RandomState, key: &[u8]) -> u64 {
    state.hash_one(key)
}

/// A hasher for keys that already are a keyed hash.
#[derive(Default)]
pub(crate) struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Per-shard counters, summed by `Cache::stats`. They live under the shard's lock, which every
/// counted event already holds, so counting costs no atomic operation and no shared cache line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub hits: u64,
    pub stale: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub refreshes: u64,
    pub evictions: u64,
    pub inserts: u64,
}

/// What a lookup found.
pub(crate) enum Found<'a> {
    /// A live entry.
    Fresh(StoredMut<'a>),
    /// An expired entry still within the stale window, and allowed to be served stale.
    Stale(StoredMut<'a>),
}

/// The waiters of one miss in flight: the leader publishes its result here. The channel is made
/// by the first waiter: a miss nobody else asks for meanwhile (nearly all of them) costs none (an
/// allocation, and on the leader's side the wake-up of the channel's eight notifiers when it was
/// dropped, for every cold query). Dropping a flight with waiters closes their channel: they retry.
#[derive(Default)]
pub(crate) struct Flight(Option<watch::Sender<Option<HandlerResult>>>);

impl Flight {
    /// A receiver for the leader's result (the channel is made on first use).
    pub(crate) fn subscribe(&mut self) -> watch::Receiver<Option<HandlerResult>> {
        self.0
            .get_or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Hands `result` to the waiters, if any are still there.
    pub(crate) fn publish(self, result: &HandlerResult) {
        if let Some(tx) = self.0 {
            if tx.receiver_count() > 0 {
                tx.send_replace(Some(result.clone()));
            }
        }
    }
}

/// The flights of a shard, found by the key's keyed hash (computed once per query for the shard and
/// its index, so a miss does not hash its key again to register and end its flight), each with its
/// key to tell it from another key of the same hash. Two keys in flight at once under one 64-bit
/// keyed hash are left uncoalesced: the second runs without a flight ([`Flights::try_insert`]).
#[derive(Default)]
pub(crate) struct Flights(HashMap<u64, (Box<[u8]>, Flight), BuildHasherDefault<HashIsKey>>);

impl Flights {
    /// The flight for `key`, if one is registered.
    pub(crate) fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Flight> {
        match self.0.get_mut(&hash) {
            Some((k, flight)) if **k == *key => Some(flight),
            _ => None,
        }
    }

    /// Registers `flight` for `key`; false (and `flight` dropped) when the hash is taken.
    pub(crate) fn try_insert(&mut self, hash: u64, key: &[u8], flight: Flight) -> bool {
        match self.0.entry(hash) {
            hash_map::Entry::Occupied(_) => false,
            hash_map::Entry::Vacant(v) => {
                v.insert((key.into(), flight));
                true
            }
        }
    }

    /// Ends the flight for `key`, if it is registered.
    pub(crate) fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Flight> {
        match self.0.entry(hash) {
            hash_map::Entry::Occupied(o) if *o.get().0 == *key => Some(o.remove().1),
            _ => None,
        }
    }

    /// Whether no flight is registered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Set in a place's screen stamp when the entry is the screen's own answer (a blocked name's,
/// [`crate::handler::Screen::own_answer`]), stored under the generation in the other bits and
/// answered under that generation only; generations are below 2^31.
pub(crate) const OWN: u32 = 1 << 31;

/// Where an entry is, and the screen generation it last passed (0: not checked), or with
/// [`OWN`] the generation whose own answer it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    slot: u32,
    screened: u32,
}

/// One shard.
pub(crate) struct Shard {
    index: HashMap<u64, Place, BuildHasherDefault<HashIsKey>>,
    /// The entries' octets, by slot.
    slab: Slab,
    hand: usize,
    len: usize,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// Entries that are a screen's own answers ([`OWN`]), at most `max_entries / OWN_SHARE`.
    own: usize,
    /// Where [`Shard::reclaim_own`] looks next.
    own_hand: usize,
    /// Misses being resolved, by key: present exactly while a leader works on that key.
    pub inflight: Flights,
    pub counters: Counters,
}

impl Shard {
    /// A shard for at most `max_entries` entries of at most `max_bytes` octets in all.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Shard {
        Shard {
            index: HashMap::default(),
            slab: Slab::default(),
            hand: 0,
            len: 0,
            bytes: 0,
            max_entries,
            max_bytes,
            own: 0,
            own_hand: 0,
            inflight: Flights::default(),
            counters: Counters::default(),
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries held that are a screen's own answers.
    #[cfg(test)]
    pub(crate) fn own_len(&self) -> usize {
        self.own
    }

    /// The entry for `key`: live, or expired less than `stale_ms` ago and allowed to be served
    /// stale. Any other expired entry is removed and missed. A screen's own answer ([`OWN`]) is
    /// missed too: only the screened fast path may answer one, under its generation. Flags are
    /// left to the caller.
    pub(crate) fn lookup(
        &mut self,
        hash: u64,
        key: &[u8],
        now_ms: u64,
        stale_ms: u64,
    ) -> Option<Found<'_>> {
        let (idx, screened) = self.find(hash, key)?;
        if screened & OWN != 0 {
            return None;
        }
        self.lookup_at(idx, hash, now_ms, stale_ms)
    }

    /// Where the entry for `key` is, whatever its age, and the screen generation it last passed
    /// (0: none): a miss is known before the time is read.
    #[inline]
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<(usize, u32)> {
        let place = *self.index.get(&hash)?;
        let idx = place.slot as usize;
        let entry = self.entry(idx)?;
        (entry.key() == key).then_some((idx, place.screened))
    }

    /// The entry at `idx`, whatever its age.
    #[inline]
    fn entry(&self, idx: usize) -> Option<Stored<'_>> {
        self.slab.get(idx).map(Entry::stored)
    }

    /// The entry at `idx` (where [`Shard::find`] found it), whatever its age.
    #[inline]
    pub(crate) fn entry_mut(&mut self, idx: usize) -> Option<StoredMut<'_>> {
        self.slab.get_mut(idx).map(Entry::stored_mut)
    }

    /// Records that the entry under `hash` passed the screen of `generation`.
    pub(crate) fn set_screened(&mut self, hash: u64, generation: u32) {
        if let Some(place) = self.index.get_mut(&hash) {
            place.screened = generation;
        }
    }

    /// [`Shard::lookup`] of the entry [`Shard::find`] found at `idx`.
    #[inline]
    pub(crate) fn lookup_at(
        &mut self,
        idx: usize,
        hash: u64,
        now_ms: u64,
        stale_ms: u64,
    ) -> Option<Found<'_>> {
        match self.entry(idx)?.age(now_ms, stale_ms) {
            Age::Fresh => self.entry_mut(idx).map(Found::Fresh),
            Age::Stale => self.entry_mut(idx).map(Found::Stale),
            Age::Dead => {
                self.remove(idx, hash);
                None
            }
        }
    }

    /// The most entries and octets this shard holds.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.max_entries, self.max_bytes)
    }

    /// The entry for `key`, whatever its age.
    pub(crate) fn peek_mut(&mut self, hash: u64, key: &[u8]) -> Option<StoredMut<'_>> {
        let idx = self.index.get(&hash)?.slot as usize;
        let entry = self.entry_mut(idx)?;
        (entry.key() == key).then_some(entry)
    }

    /// Every entry held.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Stored<'_>> {
        self.slab.iter().map(Entry::stored)
    }

    /// Stores an entry under `hash`, replacing what was there and evicting as needed. Returns false
    /// if the shard cannot hold it (capacity 0, or larger than the whole byte budget).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        mut entry: Entry,
        now_ms: u64,
        hasher: &RandomState,
    ) -> bool {
        if self.max_entries == 0 || entry.size() > self.max_bytes {
            return false;
        }
        if let Some(idx) = self.index.get(&hash).map(|p| p.slot) {
            // Popularity belongs to the name, not to one copy of its data: a new entry for the
            // same key adds the asks of the one it replaces (live, stale, or a refresh's old copy),
            // so a name that earned a prefetch needs only a hit in each later window to keep being
            // refreshed, as with unbound's prefetch.
            if let Some(old) = self.entry(idx as usize) {
                if old.key() == entry.key() {
                    entry.set_asks(old.asks() + entry.asks());
                }
            }
            self.remove(idx as usize, hash);
        }
        while self.len >= self.max_entries || self.bytes + entry.size() > self.max_bytes {
            if !self.evict_one(now_ms, hasher) {
                return false;
            }
        }
        let Some(idx) = self.slab.insert(entry.as_bytes()) else {
            return false;
        };
        self.bytes += entry.size();
        self.len += 1;
        self.index.insert(
            hash,
            Place {
                slot: idx as u32,
                screened: 0,
            },
        );
        self.counters.inserts += 1;
        true
    }

    /// Stores `entry`, the screen's own answer of `generation` for the key under `hash`, as
    /// [`Shard::insert`] does but not counted as an insert, and only while the shard holds fewer
    /// than `max_entries / OWN_SHARE` of them (or replaces one): a flood of distinct blocked names
    /// takes at most that share of the cache. Returns whether it was stored.
    pub(crate) fn insert_own(
        &mut self,
        hash: u64,
        entry: Entry,
        generation: u32,
        now_ms: u64,
        hasher: &RandomState,
    ) -> bool {
        let replaces_own = self.index.get(&hash).is_some_and(|p| p.screened & OWN != 0);
        if !replaces_own
            && self.own >= self.max_entries / OWN_SHARE
            && !self.reclaim_own(generation, now_ms, hasher)
        {
            return false;
        }
        if !self.insert(hash, entry, now_ms, hasher) {
            return false;
        }
        self.counters.inserts -= 1;
        self.own += 1;
        self.set_screened(hash, generation | OWN);
        true
    }

    /// Removes one own answer that can no longer be answered (stored under another generation)
    /// or has not been asked since its TTLs counted down (expired), looking at no more than
    /// [`OWN_RECLAIM_SCAN`] slots from where the last look ended; returns whether one went. Keeps
    /// the own answers' share from being held by ones that are of no more use while the cache is
    /// not full enough to evict them.
    fn reclaim_own(&mut self, generation: u32, now_ms: u64, hasher: &RandomState) -> bool {
        for _ in 0..OWN_RECLAIM_SCAN.min(self.slab.slots()) {
            if self.own_hand >= self.slab.slots() {
                self.own_hand = 0;
            }
            let idx = self.own_hand;
            self.own_hand += 1;
            let Some(entry) = self.entry(idx) else {
                continue;
            };
            let hash = hash_key(hasher, entry.key());
            let useless = self.index.get(&hash).is_some_and(|p| {
                p.slot as usize == idx
                    && p.screened & OWN != 0
                    && (p.screened != generation | OWN || entry.is_expired(now_ms))
            });
            if useless {
                self.remove(idx, hash);
                return true;
            }
        }
        false
    }

    /// Moves the CLOCK hand until one entry is gone. Two sweeps always suffice: the first clears
    /// every referenced bit it passes.
    fn evict_one(&mut self, now_ms: u64, hasher: &RandomState) -> bool {
        if self.len == 0 {
            return false;
        }
        for _ in 0..=2 * self.slab.slots() {
            if self.hand >= self.slab.slots() {
                self.hand = 0;
            }
            let idx = self.hand;
            self.hand += 1;
            let Some(mut entry) = self.entry_mut(idx) else {
                continue;
            };
            let expired = entry.is_expired(now_ms);
            if !expired && entry.take_referenced() {
                continue;
            }
            let hash = hash_key(hasher, entry.key());
            self.remove(idx, hash);
            if !expired {
                self.counters.evictions += 1;
            }
            return true;
        }
        false
    }

    /// Removes every entry `pred` picks; returns how many.
    pub(crate) fn remove_matching(
        &mut self,
        hasher: &RandomState,
        mut pred: impl FnMut(&Stored<'_>) -> bool,
    ) -> usize {
        let mut removed = 0;
        for idx in 0..self.slab.slots() {
            let hash = match self.entry(idx) {
                Some(e) if pred(&e) => hash_key(hasher, e.key()),
                _ => continue,
            };
            self.remove(idx, hash);
            removed += 1;
        }
        removed
    }

    fn remove(&mut self, idx: usize, hash: u64) {
        if let Some(size) = self.slab.remove(idx) {
            self.bytes -= size;
            self.len -= 1;
            match self.index.get(&hash) {
                Some(p) if p.slot == idx as u32 => {
                    if p.screened & OWN != 0 {
                        self.own -= 1;
                    }
                    self.index.remove(&hash);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::entry::{Entry, Parts};
    use crate::cache::key::Key;
    use crate::wire::{Class, Name, RType};

    fn entry(name: &str, lifetime: u32, inserted_ms: u64) -> (Key, Entry) {
        let n: Name = name.parse().unwrap();
        let key = Key::new(n.as_wire(), RType::A, Class::IN, false, false).unwrap();
        let b = Entry::new(&Parts {
            key: &key,
            inserted_ms,
            lifetime,
            header: [0; 12],
            tail: &[],
            ttls: &[],
            options: &[],
            stale_ok: true,
        });
        (key, b)
    }

    /// A lookup without stale data that marks a live entry as hit, as the cache does.
    fn hit(s: &mut Shard, hash: u64, key: &Key, now_ms: u64) -> bool {
        match s.lookup(hash, key.as_bytes(), now_ms, 0) {
            Some(Found::Fresh(mut e)) => {
                e.note_hit();
                true
            }
            _ => false,
        }
    }

    #[test]
    fn stale_entries_are_found_within_their_window_only() {
        let state = RandomState::new();
        let mut s = Shard::new(10, usize::MAX);
        let (a, ba) = entry("a.", 10, 0);
        let ha = hash_key(&state, a.as_bytes());
        s.insert(ha, ba, 0, &state);
        // Stored at the start of second 0 with a lifetime of 10: live through second 10 (whole
        // seconds, see `Entry::expires_ms`), stale from 11 s.
        assert!(matches!(
            s.lookup(ha, a.as_bytes(), 10_999, 5_000),
            Some(Found::Fresh(_))
        ));
        assert!(matches!(
            s.lookup(ha, a.as_bytes(), 11_000, 5_000),
            Some(Found::Stale(_))
        ));
        assert!(matches!(
            s.lookup(ha, a.as_bytes(), 15_999, 5_000),
            Some(Found::Stale(_))
        ));
        // Past the window it is a miss, and reclaimed.
        assert!(s.lookup(ha, a.as_bytes(), 16_000, 5_000).is_none());
        assert_eq!(s.len(), 0);

        // Entries that must never be served stale are missed and removed once expired.
        let (k, _) = entry("b.", 10, 0);
        let never = Entry::new(&Parts {
            key: &k,
            inserted_ms: 0,
            lifetime: 10,
            header: [0; 12],
            tail: &[],
            ttls: &[],
            options: &[],
            stale_ok: false,
        });
        let hb = hash_key(&state, k.as_bytes());
        s.insert(hb, never, 0, &state);
        // It ends exactly with its lifetime (no whole-second slack: a SERVFAIL's back-off).
        assert!(matches!(
            s.lookup(hb, k.as_bytes(), 9_999, 5_000),
            Some(Found::Fresh(_))
        ));
        assert!(s.lookup(hb, k.as_bytes(), 10_000, 5_000).is_none());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn clock_gives_referenced_entries_a_second_chance() {
        let state = RandomState::new();
        let mut s = Shard::new(3, usize::MAX);
        let keys: Vec<Key> = ["a.", "b.", "c.", "d.", "e."]
            .iter()
            .map(|n| {
                let (k, b) = entry(n, 100, 0);
                assert!(s.insert(hash_key(&state, k.as_bytes()), b, 0, &state));
                k
            })
            .collect();
        // Only three fit; "a" and "b" were evicted for "d" and "e" (neither had been referenced).
        assert_eq!(s.len(), 3);
        assert_eq!(s.counters.evictions, 2);
        let (c, _) = entry("c.", 100, 0);
        let hc = hash_key(&state, c.as_bytes());
        assert!(hit(&mut s, hc, &c, 0));
        let ha = hash_key(&state, keys[0].as_bytes());
        assert!(!hit(&mut s, ha, &keys[0], 0));
        // "c" was referenced, so the next two inserts evict "d" and "e" and keep "c".
        for n in ["f.", "g."] {
            let (k, b) = entry(n, 100, 0);
            assert!(s.insert(hash_key(&state, k.as_bytes()), b, 0, &state));
        }
        assert!(hit(&mut s, hc, &c, 0));
        assert_eq!(s.counters.evictions, 4);
    }

    #[test]
    fn expired_entries_go_first_and_are_not_counted_as_evictions() {
        let state = RandomState::new();
        let mut s = Shard::new(2, usize::MAX);
        let (a, ba) = entry("a.", 1, 0);
        let (b, bb) = entry("b.", 100, 0);
        let ha = hash_key(&state, a.as_bytes());
        let hb = hash_key(&state, b.as_bytes());
        s.insert(ha, ba, 0, &state);
        s.insert(hb, bb, 0, &state);
        // Both referenced; "a" has expired by 2 s.
        hit(&mut s, ha, &a, 0);
        hit(&mut s, hb, &b, 0);
        let (c, bc) = entry("c.", 100, 2000);
        s.insert(hash_key(&state, c.as_bytes()), bc, 2000, &state);
        assert!(hit(&mut s, hb, &b, 2000));
        assert!(!hit(&mut s, ha, &a, 2000));
        assert_eq!(s.counters.evictions, 0);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn byte_budget_is_kept_and_capacity_zero_stores_nothing() {
        let state = RandomState::new();
        let (k, b) = entry("a.", 100, 0);
        let one = b.size();
        let mut s = Shard::new(100, 2 * one);
        s.insert(hash_key(&state, k.as_bytes()), b, 0, &state);
        for n in ["b.", "c.", "d."] {
            let (k, b) = entry(n, 100, 0);
            assert!(s.insert(hash_key(&state, k.as_bytes()), b, 0, &state));
            assert!(s.bytes <= 2 * one);
        }
        assert_eq!(s.len(), 2);
        let mut none = Shard::new(0, usize::MAX);
        let (k, b) = entry("a.", 100, 0);
        assert!(!none.insert(hash_key(&state, k.as_bytes()), b, 0, &state));
        assert_eq!(none.len(), 0);
    }

    /// Flights are found by hash and told apart by key: a second key of the same hash is not
    /// registered, is not found, and cannot end the first key's flight.
    #[test]
    fn flights_of_one_hash_keep_their_keys_apart() {
        let mut f = Flights::default();
        assert!(f.try_insert(7, b"one", Flight::default()));
        assert!(!f.try_insert(7, b"two", Flight::default()), "hash taken");
        assert!(
            !f.try_insert(7, b"one", Flight::default()),
            "already in flight"
        );
        assert!(f.get_mut(7, b"one").is_some());
        assert!(f.get_mut(7, b"two").is_none());
        assert!(f.get_mut(8, b"one").is_none());
        assert!(f.remove(7, b"two").is_none());
        assert!(f.get_mut(7, b"one").is_some(), "still there");
        assert!(f.remove(7, b"one").is_some());
        assert!(f.is_empty());
        assert!(f.try_insert(7, b"two", Flight::default()));
    }
}
