//! Where a shard keeps its entries' bytes: packed one after another into segments of
//! [`SEGMENT_LEN`] octets, each entry found through a slot number, instead of one heap allocation
//! per entry.
//!
//! Why: a typical entry is 70 to 200 octets, and a general-purpose allocator spends on each small
//! allocation a header and a rounding (with glibc an 8-octet header, the total rounded up to 16:
//! 16 octets, a fifth, for an 80-octet entry). Worse, entries live for minutes or hours while the buffers of the queries that fetch
//! them live for microseconds, and both come from the same heap: how much free space ends up
//! stranded between long-lived entries depends on the order in which the two kinds were
//! allocated and freed, so a change in when answers leave changes the cache's footprint. Packed
//! into segments, an entry costs its octets and a 4-octet tag, whatever the timing.
//!
//! Each record in a segment is a tag and the entry's octets. A live record's tag is its slot
//! number; a removed one's is [`DEAD`] with its length, so a segment can be walked record by
//! record. The slot table says, per slot, in which segment, at which offset and how long its
//! entry is; slot numbers never move, so the shard's index and CLOCK hand keep using them.
//!
//! Removing an entry only marks its record dead. A segment whose records are all dead is freed
//! at once. When dead records make up an eighth or more of what the segments hold (and at least
//! [`COMPACT_MIN`] octets), the segment with the most dead octets is compacted: its live records
//! are copied to the segment being filled and it is freed. So under churn a shard's segments hold
//! at most about a seventh more than its live entries, or [`COMPACT_MIN`] more for a small shard
//! (a cache of 100,000 entries has 64 shards of about 150 KiB each), plus the unwritten end of the
//! segment being filled. One compaction copies less than one segment, so the work per removal
//! stays bounded; the segment compacted is the one with the most dead octets, on average at least
//! an eighth of it, so an octet reclaimed costs at most about seven copied.
//! An entry larger than [`LARGE`] gets a segment of its own, so that a few large answers do not
//! leave segments partly empty.

/// Octets of a segment that small entries are packed into.
pub(crate) const SEGMENT_LEN: usize = 32 * 1024;
/// An entry longer than this gets a segment of its own.
const LARGE: usize = SEGMENT_LEN / 8;
/// Octets of a record's tag.
pub(crate) const TAG_LEN: usize = 4;
/// Set in the tag of a dead record; the other bits are its length.
const DEAD: u32 = 1 << 31;
/// No segment: a free slot, or no segment being filled.
const NONE: u32 = u32::MAX;
/// Dead octets below which nothing is compacted.
const COMPACT_MIN: usize = SEGMENT_LEN / 2;
/// Compaction starts when dead octets reach `1 / COMPACT_SHARE` of what the segments hold.
const COMPACT_SHARE: usize = 8;

/// Where a slot's entry is.
#[derive(Clone, Copy, Debug)]
struct Loc {
    /// The segment, or [`NONE`] for a free slot.
    seg: u32,
    /// Offset of the entry's octets (just past its tag) in the segment.
    off: u32,
    len: u32,
}

const FREE: Loc = Loc {
    seg: NONE,
    off: 0,
    len: 0,
};

#[derive(Default)]
struct Segment {
    /// Records written so far; never grown past its first capacity, so it is never moved.
    buf: Vec<u8>,
    /// Octets of live records, tags included.
    live: usize,
}

/// The entries of one shard, by slot number.
pub(crate) struct Slab {
    locs: Vec<Loc>,
    free_slots: Vec<u32>,
    segs: Vec<Segment>,
    free_segs: Vec<u32>,
    /// The segment small entries are written to, or [`NONE`].
    open: u32,
    /// Octets written to the segments held (records, live and dead, with their tags).
    used: usize,
    /// Octets of dead records in the segments held.
    dead: usize,
}

impl Default for Slab {
    fn default() -> Slab {
        Slab {
            locs: Vec::new(),
            free_slots: Vec::new(),
            segs: Vec::new(),
            free_segs: Vec::new(),
            open: NONE,
            used: 0,
            dead: 0,
        }
    }
}

impl Slab {
    /// Slot numbers in use or free: every slot is below this.
    pub(crate) fn slots(&self) -> usize {
        self.locs.len()
    }

    /// The octets of the entry in `slot`, if it holds one.
    #[inline]
    pub(crate) fn get(&self, slot: usize) -> Option<&[u8]> {
        let loc = *self.locs.get(slot)?;
        let seg = self.segs.get(loc.seg as usize)?;
        seg.buf
            .get(loc.off as usize..loc.off as usize + loc.len as usize)
    }

    /// The octets of the entry in `slot`, to change in place.
    #[inline]
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        let loc = *self.locs.get(slot)?;
        let seg = self.segs.get_mut(loc.seg as usize)?;
        seg.buf
            .get_mut(loc.off as usize..loc.off as usize + loc.len as usize)
    }

    /// Every entry held.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.locs.len()).filter_map(|slot| self.get(slot))
    }

    /// Stores `bytes` in a free slot and returns its number; `None` when `bytes` is too long for
    /// a tag to record (2 GiB) or every slot number is taken.
    pub(crate) fn insert(&mut self, bytes: &[u8]) -> Option<usize> {
        if bytes.len() >= DEAD as usize {
            return None;
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.locs.len()).ok().filter(|&s| s < DEAD)?;
                self.locs.push(FREE);
                slot
            }
        };
        self.place(slot, bytes);
        Some(slot as usize)
    }

    /// Writes the record for `slot` into a segment with room and points the slot at it.
    fn place(&mut self, slot: u32, bytes: &[u8]) {
        let need = TAG_LEN + bytes.len();
        let seg = if bytes.len() > LARGE {
            self.new_segment(need)
        } else {
            let open_has_room = self
                .segs
                .get(self.open as usize)
                .is_some_and(|s| s.buf.capacity() - s.buf.len() >= need);
            if !open_has_room {
                self.open = self.new_segment(SEGMENT_LEN);
            }
            self.open
        };
        let s = &mut self.segs[seg as usize];
        let off = s.buf.len() + TAG_LEN;
        s.buf.extend_from_slice(&slot.to_le_bytes());
        s.buf.extend_from_slice(bytes);
        s.live += need;
        self.used += need;
        // Offsets stay below a segment's length, and a segment below 2 GiB plus a tag.
        self.locs[slot as usize] = Loc {
            seg,
            off: off as u32,
            len: bytes.len() as u32,
        };
    }

    /// A new empty segment of `capacity` octets (its memory is touched only as it is written).
    fn new_segment(&mut self, capacity: usize) -> u32 {
        let segment = Segment {
            buf: Vec::with_capacity(capacity),
            live: 0,
        };
        match self.free_segs.pop() {
            Some(i) => {
                self.segs[i as usize] = segment;
                i
            }
            None => {
                self.segs.push(segment);
                // Segments are at least one octet each, so there are fewer than 2^32 of them.
                (self.segs.len() - 1) as u32
            }
        }
    }

    /// Empties `slot`; returns the length of the entry it held.
    pub(crate) fn remove(&mut self, slot: usize) -> Option<usize> {
        let loc = *self.locs.get(slot)?;
        let seg = self.segs.get_mut(loc.seg as usize)?;
        let tag_at = loc.off as usize - TAG_LEN;
        seg.buf[tag_at..loc.off as usize].copy_from_slice(&(DEAD | loc.len).to_le_bytes());
        let need = TAG_LEN + loc.len as usize;
        seg.live -= need;
        self.dead += need;
        self.locs[slot] = FREE;
        self.free_slots.push(slot as u32);
        if seg.live == 0 {
            if loc.seg == self.open {
                // Written over from the start again.
                self.dead -= seg.buf.len();
                self.used -= seg.buf.len();
                seg.buf.clear();
            } else {
                self.release(loc.seg);
            }
        }
        self.compact_if_needed();
        Some(loc.len as usize)
    }

    /// Frees segment `seg`, whose live records have all gone or moved.
    fn release(&mut self, seg: u32) {
        let s = std::mem::take(&mut self.segs[seg as usize]);
        self.used -= s.buf.len();
        self.dead -= s.buf.len() - s.live;
        self.free_segs.push(seg);
    }

    /// Compacts the segment with the most dead octets if dead records have grown to
    /// `1 / COMPACT_SHARE` of what the segments hold.
    fn compact_if_needed(&mut self) {
        if self.dead < COMPACT_MIN || self.dead * COMPACT_SHARE < self.used {
            return;
        }
        let dead_in = |s: &Segment| s.buf.len() - s.live;
        // The open segment is left out: its dead records go when it is full or empty. If it holds
        // every dead octet, nothing is done until another segment holds some.
        let most_dead = (0..self.segs.len())
            .filter(|&i| i as u32 != self.open)
            .max_by_key(|&i| dead_in(&self.segs[i]));
        let Some(victim) = most_dead.filter(|&i| dead_in(&self.segs[i]) > 0) else {
            return;
        };
        let s = std::mem::take(&mut self.segs[victim].buf);
        let live = std::mem::replace(&mut self.segs[victim].live, 0);
        self.used -= s.len();
        self.dead -= s.len() - live;
        self.free_segs.push(victim as u32);
        let mut at = 0;
        while let Some(tag) = s.get(at..at + TAG_LEN) {
            let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
            let (slot, len) = if tag & DEAD != 0 {
                (None, (tag & !DEAD) as usize)
            } else {
                let Some(loc) = self.locs.get(tag as usize) else {
                    break;
                };
                (Some(tag), loc.len as usize)
            };
            let Some(bytes) = s.get(at + TAG_LEN..at + TAG_LEN + len) else {
                break;
            };
            if let Some(slot) = slot {
                self.place(slot, bytes);
            }
            at += TAG_LEN + len;
        }
    }

    /// Octets the segments hold (live and dead records, tags included) and octets of dead
    /// records among them.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.used, self.dead)
    }

    /// Segments held.
    #[cfg(test)]
    fn segments(&self) -> usize {
        self.segs.iter().filter(|s| s.buf.capacity() > 0).count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bytes(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n]
    }

    #[test]
    fn entries_come_back_as_stored_and_slots_are_reused() {
        let mut slab = Slab::default();
        let a = slab.insert(&bytes(80, 1)).unwrap();
        let b = slab.insert(&bytes(120, 2)).unwrap();
        assert_eq!(slab.get(a).unwrap(), &bytes(80, 1)[..]);
        assert_eq!(slab.get(b).unwrap(), &bytes(120, 2)[..]);
        slab.get_mut(b).unwrap()[0] = 9;
        assert_eq!(slab.get(b).unwrap()[0], 9);
        assert_eq!(slab.remove(a), Some(80));
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        let c = slab.insert(&bytes(10, 3)).unwrap();
        assert_eq!(c, a, "a freed slot number is given out again");
        assert_eq!(slab.iter().count(), 2);
        assert_eq!(slab.segments(), 1, "small entries share one segment");
    }

    #[test]
    fn large_entries_get_a_segment_of_their_own_freed_with_them() {
        let mut slab = Slab::default();
        let small = slab.insert(&bytes(100, 1)).unwrap();
        let large = slab.insert(&bytes(LARGE + 1, 2)).unwrap();
        let after = slab.insert(&bytes(100, 3)).unwrap();
        assert_eq!(slab.segments(), 2);
        assert_eq!(slab.get(large).unwrap().len(), LARGE + 1);
        slab.remove(large);
        assert_eq!(slab.segments(), 1, "the large entry's segment went with it");
        // Small entries kept filling the segment they were in.
        assert_eq!(slab.get(small).unwrap(), &bytes(100, 1)[..]);
        assert_eq!(slab.get(after).unwrap(), &bytes(100, 3)[..]);
        assert_eq!(slab.usage(), (2 * (TAG_LEN + 100), 0));
    }

    #[test]
    fn a_segment_left_without_live_entries_is_freed() {
        let mut slab = Slab::default();
        let per_segment = SEGMENT_LEN / (TAG_LEN + 100);
        let first: Vec<usize> = (0..per_segment)
            .map(|_| slab.insert(&bytes(100, 1)).unwrap())
            .collect();
        let next = slab.insert(&bytes(100, 2)).unwrap();
        assert_eq!(slab.segments(), 2);
        for slot in first {
            slab.remove(slot);
        }
        // Freed when its last record died, or, if a compaction came first, when its live records
        // moved: either way only the segment being filled is left.
        assert_eq!(slab.segments(), 1);
        let (used, dead) = slab.usage();
        assert_eq!(used - dead, TAG_LEN + 100, "only the last entry is live");
        assert_eq!(slab.get(next).unwrap(), &bytes(100, 2)[..]);
    }

    /// Removing every other entry of many segments leaves half of each dead: compaction must keep
    /// the dead share under an eighth (give or take the record just removed) and move no entry's
    /// octets but its own.
    #[test]
    fn dead_records_are_compacted_away_and_entries_survive_moving() {
        let mut slab = Slab::default();
        let n = 20 * SEGMENT_LEN / (TAG_LEN + 100);
        let slots: Vec<usize> = (0..n)
            .map(|i| {
                let mut b = bytes(100, (i % 251) as u8);
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                slab.insert(&b).unwrap()
            })
            .collect();
        for (i, &slot) in slots.iter().enumerate() {
            if i % 2 == 0 {
                slab.remove(slot);
            }
            let (used, dead) = slab.usage();
            assert!(
                dead < COMPACT_MIN || dead * COMPACT_SHARE < used + COMPACT_SHARE * (TAG_LEN + 100),
                "used {used}, dead {dead}"
            );
        }
        // Half of 20 segments' octets stay live: 10 segments' worth, an eighth more at most, and
        // the one being filled.
        assert!(slab.segments() <= 12, "{} segments", slab.segments());
        for (i, &slot) in slots.iter().enumerate() {
            if i % 2 == 1 {
                let b = slab.get(slot).unwrap();
                assert_eq!(b.len(), 100);
                assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), i as u64);
                assert!(b[8..].iter().all(|&x| x == (i % 251) as u8));
            } else {
                assert_eq!(slab.get(slot), None);
            }
        }
        // Whatever is left can be emptied, and the slab returns to nothing.
        for (i, &slot) in slots.iter().enumerate() {
            if i % 2 == 1 {
                assert_eq!(slab.remove(slot), Some(100));
            }
        }
        assert_eq!(slab.usage(), (0, 0));
        assert_eq!(
            slab.segments(),
            1,
            "the segment being filled is kept, emptied"
        );
    }
    /// A full cache under churn: entries of mixed sizes (a few large) replaced in random order.
    /// After every removal the dead octets stay within the module's bound (an eighth of what the
    /// segments hold, or COMPACT_MIN, plus at most what the segment being filled holds), the
    /// segments hold little more than the live entries, and every live entry keeps its bytes.
    #[test]
    fn churn_keeps_dead_octets_bounded_and_entries_whole() {
        let mut slab = Slab::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let entry = |id: u64, len: usize| {
            let mut b = vec![(id % 251) as u8; len];
            b[..8].copy_from_slice(&id.to_le_bytes());
            b
        };
        let mut live: Vec<(usize, u64, usize)> = Vec::new();
        let mut live_octets = 0;
        for id in 0..200_000u64 {
            if live.len() >= 2_000 {
                let (slot, _, len) = live.swap_remove((next() % live.len() as u64) as usize);
                assert_eq!(slab.remove(slot), Some(len));
                live_octets -= TAG_LEN + len;
                let (used, dead) = slab.usage();
                assert_eq!(used - dead, live_octets);
                assert!(
                    dead <= (used / COMPACT_SHARE).max(COMPACT_MIN) + SEGMENT_LEN,
                    "used {used}, dead {dead}"
                );
            }
            let len = if next() % 100 == 0 {
                LARGE + 1 + (next() % 4096) as usize
            } else {
                60 + (next() % 340) as usize
            };
            let slot = slab.insert(&entry(id, len)).unwrap();
            live.push((slot, id, len));
            live_octets += TAG_LEN + len;
        }
        let (used, _) = slab.usage();
        assert!(
            used <= live_octets + live_octets / 7 + COMPACT_MIN + SEGMENT_LEN,
            "segments hold {used} octets for {live_octets} live"
        );
        for &(slot, id, len) in &live {
            assert_eq!(slab.get(slot).unwrap(), &entry(id, len)[..]);
        }
    }
}
