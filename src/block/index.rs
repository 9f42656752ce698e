//! The compact index of blocked and allowed names: one byte arena and two open-addressing tables.
//!
//! ```text
//!   arena: | list u16 | line u32 | len u8 | name (lower-case wire form) | list | line | ...
//!   table: tags [u8: 0 = empty, else 0x80 | top 7 bits of the hash] + slots [u32: arena offset + 1]
//!   query name -> lower-cased on the stack -> each suffix at a label boundary
//!              -> hash -> probe (tag first, then the arena bytes)
//! ```
//!
//! Why this shape: a million names must fit in well under 48 MiB and be looked up on the cached
//! path without allocating. A `HashSet<Box<[u8]>>` costs a heap allocation (16 octets of pointer
//! and length, plus the allocator's overhead) per name on top of the name; here a name costs its
//! wire form, seven octets of attribution (which list, which line: what `dnsveil why` and the
//! Extended DNS Error report), and five octets of table per slot at a load of at most 7/10.
//!
//! Lookups are by suffix: a rule covers its name and everything below it, so a query name is
//! looked up once per label boundary (`a.ads.example`, `ads.example`, `example`). The tag byte
//! keeps a probe of a slot that holds another name from touching the arena almost always.
//!
//! The hash is SipHash with per-process random keys ([`RandomState`]): lists come from the
//! internet, and a list crafted to collide must not turn loading into quadratic work.
//!
//! Limitations: names are never removed (an index is rebuilt whole on reload, see
//! [`super::Blocker`]); at most [`MAX_LISTS`] lists and [`MAX_NAMES`] names.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::wire::name::MAX_NAME_LEN;

/// Most lists (block and allow together) one index holds.
pub const MAX_LISTS: usize = u16::MAX as usize;
/// Most names (block and allow together) one index holds: about 300 MiB of index at the most, a
/// bound that no real set of lists comes near (the largest public lists hold a few million).
pub const MAX_NAMES: usize = 10_000_000;

/// Most names [`Index::reserve`] makes room for at once (a list of mostly blank lines must not
/// reserve a huge table); a larger list grows the table as it loads.
pub const MAX_RESERVE: usize = 4_000_000;

/// Octets before the name in an arena entry: list, line, length.
const ENTRY_HEAD: usize = 7;

/// Whether a rule blocks or allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Block,
    Allow,
}

/// A rule that matched a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit<'a> {
    pub kind: Kind,
    /// The list's name, as configured (a path or a URL).
    pub list: &'a str,
    /// The rule's line in the list, counted from 1.
    pub line: u32,
    /// The name the rule names (lower-case wire form): the query name or one of its parents.
    pub name: &'a [u8],
}

/// Why a name could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// [`MAX_NAMES`] reached.
    Names,
}

/// One open-addressing table of arena offsets.
#[derive(Default)]
struct Table {
    /// Arena offset + 1 (meaningful where the tag is not 0).
    slots: Vec<u32>,
    /// 0 for an empty slot, else [`tag_of`] the hash of its name.
    tags: Vec<u8>,
    len: usize,
    /// Bit n set when some name in the table has n labels (n < 128): a query name's suffixes of
    /// other lengths are not looked up (most lists hold no one-label name, so `com` costs nothing).
    label_counts: u128,
}

impl Table {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }
}

/// The blocked and allowed names of a set of lists.
pub struct Index {
    lists: Vec<Arc<str>>,
    arena: Vec<u8>,
    block: Table,
    allow: Table,
    hasher: RandomState,
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index {
            lists: Vec::new(),
            arena: Vec::new(),
            block: Table::default(),
            allow: Table::default(),
            hasher: RandomState::new(),
        }
    }

    /// Registers a list by name and returns its number (None past [`MAX_LISTS`]).
    pub fn add_list(&mut self, name: &str) -> Option<u16> {
        if self.lists.len() >= MAX_LISTS {
            return None;
        }
        self.lists.push(Arc::from(name));
        Some((self.lists.len() - 1) as u16)
    }

    /// Adds a rule for `name` (lower-case wire form, as [`super::parse`] gives it). Returns
    /// Ok(false) if the table already has the name (the first list to name it keeps it).
    pub fn insert(&mut self, kind: Kind, name: &[u8], list: u16, line: u32) -> Result<bool, Full> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Ok(false);
        }
        if self.block.len + self.allow.len >= MAX_NAMES {
            return Err(Full::Names);
        }
        let hash = self.hasher.hash_one(name);
        if self.find(kind, name, hash).is_some() {
            return Ok(false);
        }
        let offset = self.arena.len();
        self.arena.extend_from_slice(&list.to_le_bytes());
        self.arena.extend_from_slice(&line.to_le_bytes());
        self.arena.push(name.len() as u8);
        self.arena.extend_from_slice(name);
        let needs_room = {
            let t = self.table(kind);
            (t.len + 1) * 10 > t.slots.len() * 7
        };
        if needs_room {
            self.grow(kind);
        }
        let t = match kind {
            Kind::Block => &mut self.block,
            Kind::Allow => &mut self.allow,
        };
        place(t, hash, offset as u32 + 1);
        t.len += 1;
        t.label_counts |= 1u128 << labels(name).min(127);
        Ok(true)
    }

    /// Makes room for `names` more names of `kind` (at most [`MAX_RESERVE`] at once) and about
    /// `octets` more of arena, so that a load does not rehash the table as it grows.
    pub fn reserve(&mut self, kind: Kind, names: usize, octets: usize) {
        let names = names.min(MAX_RESERVE);
        self.arena.reserve(octets.min(MAX_RESERVE * 64));
        let want = (self.table(kind).len + names) * 10 / 7 + 1;
        if want > self.table(kind).slots.len() {
            self.resize(kind, want.next_power_of_two());
        }
    }

    /// Gives back the room the arena grew into (after the last insert).
    pub fn shrink(&mut self) {
        self.arena.shrink_to_fit();
    }

    /// Blocked names.
    pub fn blocked(&self) -> usize {
        self.block.len
    }

    /// Allowed names.
    pub fn allowed(&self) -> usize {
        self.allow.len
    }

    /// The lists' names, in the order they were added.
    pub fn lists(&self) -> &[Arc<str>] {
        &self.lists
    }

    /// Octets held (arena and tables), for the load log.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + 5 * (self.block.slots.capacity() + self.allow.slots.capacity())
    }

    /// The block rule that applies to `qname` (wire form, any case), unless an allow rule covers
    /// it: allow rules win over every block rule. None for a name that is not blocked, and for a
    /// name that is not a well-formed uncompressed wire name.
    #[inline]
    pub fn blocking(&self, qname: &[u8]) -> Option<Hit<'_>> {
        if self.block.len == 0 {
            return None;
        }
        let (buf, len, count) = lower(qname)?;
        let name = &buf[..len];
        let hit = self.closest(Kind::Block, name, count)?;
        if self.allow.len > 0 && self.closest(Kind::Allow, name, count).is_some() {
            return None;
        }
        Some(hit)
    }

    /// The closest block rule and the closest allow rule for `qname`, whatever wins (for `dnsveil
    /// why`).
    pub fn explain(&self, qname: &[u8]) -> (Option<Hit<'_>>, Option<Hit<'_>>) {
        let Some((buf, len, count)) = lower(qname) else {
            return (None, None);
        };
        let name = &buf[..len];
        (
            self.closest(Kind::Block, name, count),
            self.closest(Kind::Allow, name, count),
        )
    }

    /// The rule of `kind` for the longest suffix of `name` (lower case, `count` labels) that has
    /// one.
    fn closest(&self, kind: Kind, name: &[u8], count: usize) -> Option<Hit<'_>> {
        let counts = self.table(kind).label_counts;
        let mut pos = 0;
        let mut left = count;
        // `lower` checked the labels, so this walk stays inside `name`.
        while name[pos] != 0 {
            if counts & (1u128 << left.min(127)) != 0 {
                let tail = &name[pos..];
                if let Some(offset) = self.find(kind, tail, self.hasher.hash_one(tail)) {
                    return Some(self.hit(kind, offset));
                }
            }
            pos += 1 + usize::from(name[pos]);
            left -= 1;
        }
        None
    }

    fn table(&self, kind: Kind) -> &Table {
        match kind {
            Kind::Block => &self.block,
            Kind::Allow => &self.allow,
        }
    }

    /// The arena offset of `name`'s entry in the table of `kind`.
    #[inline]
    fn find(&self, kind: Kind, name: &[u8], hash: u64) -> Option<usize> {
        let t = self.table(kind);
        if t.slots.is_empty() {
            return None;
        }
        let mask = t.mask();
        let tag = tag_of(hash);
        let mut i = hash as usize & mask;
        // The load is at most 7/10, so an empty slot ends every probe sequence. Only the tags are
        // read until one matches: a fifth of the table's memory, so most probes touch one cache
        // line of it and nothing else.
        loop {
            let t_i = t.tags[i];
            if t_i == 0 {
                return None;
            }
            if t_i == tag {
                let offset = t.slots[i] as usize - 1;
                if self.entry_name(offset) == name {
                    return Some(offset);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn entry_name(&self, offset: usize) -> &[u8] {
        let len = usize::from(self.arena[offset + ENTRY_HEAD - 1]);
        &self.arena[offset + ENTRY_HEAD..offset + ENTRY_HEAD + len]
    }

    fn hit(&self, kind: Kind, offset: usize) -> Hit<'_> {
        let a = &self.arena[offset..offset + ENTRY_HEAD];
        let list = usize::from(u16::from_le_bytes([a[0], a[1]]));
        Hit {
            kind,
            list: self.lists.get(list).map_or("", |l| l),
            line: u32::from_le_bytes([a[2], a[3], a[4], a[5]]),
            name: self.entry_name(offset),
        }
    }

    /// Doubles the table of `kind` (at least 1024 slots) and places every entry again.
    fn grow(&mut self, kind: Kind) {
        let size = (self.table(kind).slots.len() * 2).max(1024);
        self.resize(kind, size);
    }

    /// Gives the table of `kind` `size` slots (a power of two, room for every entry) and places
    /// every entry again.
    fn resize(&mut self, kind: Kind, size: usize) {
        let old = std::mem::take(match kind {
            Kind::Block => &mut self.block,
            Kind::Allow => &mut self.allow,
        });
        let mut t = Table {
            slots: vec![0; size],
            tags: vec![0; size],
            len: old.len,
            label_counts: old.label_counts,
        };
        for &slot in old.slots.iter().filter(|&&s| s != 0) {
            let name = self.entry_name(slot as usize - 1);
            place(&mut t, self.hasher.hash_one(name), slot);
        }
        match kind {
            Kind::Block => self.block = t,
            Kind::Allow => self.allow = t,
        }
    }
}

/// Puts `slot` in the first free place of its probe sequence (the table has room).
fn place(t: &mut Table, hash: u64, slot: u32) {
    let mask = t.mask();
    let mut i = hash as usize & mask;
    while t.tags[i] != 0 {
        i = (i + 1) & mask;
    }
    t.slots[i] = slot;
    t.tags[i] = tag_of(hash);
}

/// The tag of a hash: its top seven bits with the high bit set, so that 0 marks an empty slot.
#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

/// The labels of a well-formed wire name (the root not counted).
fn labels(wire: &[u8]) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while let Some(&len) = wire.get(pos).filter(|&&l| l != 0) {
        pos += 1 + usize::from(len);
        n += 1;
    }
    n
}

/// `qname` lower-cased into a buffer on the stack, with its length and its labels; None unless it
/// is a well-formed uncompressed wire name (labels of at most 63 octets, ending in the root, at
/// most 255 octets).
#[inline]
fn lower(qname: &[u8]) -> Option<([u8; MAX_NAME_LEN], usize, usize)> {
    let n = qname.len();
    if n == 0 || n > MAX_NAME_LEN {
        return None;
    }
    // The labels are checked by walking their length octets; the name is lower-cased whole
    // (length octets are at most 63, below 'A', so only label characters fold: RFC 4343).
    let mut pos = 0;
    let mut count = 0;
    loop {
        let len = usize::from(*qname.get(pos)?);
        if len > 63 {
            return None;
        }
        if len == 0 {
            break;
        }
        count += 1;
        pos += 1 + len;
    }
    if pos + 1 != n {
        return None;
    }
    let mut buf = [0u8; MAX_NAME_LEN];
    buf[..n].copy_from_slice(qname);
    buf[..n].make_ascii_lowercase();
    Some((buf, n, count))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;
    use crate::block::parse::wire_name;

    fn w(s: &str) -> Vec<u8> {
        wire_name(s).unwrap()
    }

    fn mixed(s: &str) -> Vec<u8> {
        // Wire form keeping the case, as a client may send it.
        let mut out = Vec::new();
        for l in s.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }

    #[test]
    fn a_rule_covers_its_name_and_everything_below() {
        let mut ix = Index::new();
        let l = ix.add_list("ads.txt").unwrap();
        assert!(ix.insert(Kind::Block, &w("ads.example"), l, 3).unwrap());
        let hit = ix.blocking(&mixed("X.Ads.EXAMPLE")).unwrap();
        assert_eq!(
            (hit.list, hit.line, hit.name),
            ("ads.txt", 3, &w("ads.example")[..])
        );
        assert!(ix.blocking(&mixed("ads.example")).is_some());
        assert!(ix.blocking(&mixed("example")).is_none());
        assert!(ix.blocking(&mixed("notads.example")).is_none());
        assert!(ix.blocking(&mixed("ads.example.org")).is_none());
    }

    #[test]
    fn allow_wins_over_every_block_and_why_sees_both() {
        let mut ix = Index::new();
        let a = ix.add_list("a").unwrap();
        let b = ix.add_list("b").unwrap();
        ix.insert(Kind::Block, &w("example"), a, 1).unwrap();
        ix.insert(Kind::Block, &w("x.good.example"), b, 7).unwrap();
        ix.insert(Kind::Allow, &w("good.example"), b, 2).unwrap();
        assert!(ix.blocking(&mixed("x.good.example")).is_none());
        assert!(ix.blocking(&mixed("good.example")).is_none());
        assert_eq!(ix.blocking(&mixed("bad.example")).unwrap().list, "a");
        let (block, allow) = ix.explain(&mixed("y.x.good.example"));
        assert_eq!(block.unwrap().line, 7);
        assert_eq!(allow.unwrap().name, &w("good.example")[..]);
    }

    #[test]
    fn duplicates_keep_the_first_list_and_many_names_grow_the_table() {
        let mut ix = Index::new();
        let a = ix.add_list("a").unwrap();
        let b = ix.add_list("b").unwrap();
        for i in 0..5000 {
            assert!(ix
                .insert(Kind::Block, &w(&format!("n{i}.example")), a, i)
                .unwrap());
        }
        assert!(!ix.insert(Kind::Block, &w("n42.example"), b, 1).unwrap());
        ix.shrink();
        assert_eq!(ix.blocked(), 5000);
        for i in (0..5000).step_by(97) {
            let hit = ix.blocking(&mixed(&format!("n{i}.example"))).unwrap();
            assert_eq!((hit.list, hit.line), ("a", i));
        }
        assert!(ix.blocking(&mixed("n5000.example")).is_none());
    }

    #[test]
    fn one_label_rules_and_deep_names_are_found() {
        let mut ix = Index::new();
        let l = ix.add_list("l").unwrap();
        ix.insert(Kind::Block, &w("zip"), l, 1).unwrap();
        ix.insert(Kind::Block, &w("a.b.c.d.e.f.example"), l, 2)
            .unwrap();
        assert_eq!(ix.blocking(&mixed("x.zip")).unwrap().line, 1);
        assert_eq!(
            ix.blocking(&mixed("z.a.b.c.d.e.f.example")).unwrap().line,
            2
        );
        assert!(ix.blocking(&mixed("b.c.d.e.f.example")).is_none());
        let deep = vec!["a"; 126].join(".");
        ix.insert(Kind::Block, &w(&deep), l, 3).unwrap();
        assert_eq!(ix.blocking(&mixed(&format!("b.{deep}"))).unwrap().line, 3);
    }

    #[test]
    fn malformed_query_names_match_nothing() {
        let mut ix = Index::new();
        let l = ix.add_list("l").unwrap();
        ix.insert(Kind::Block, &w("example"), l, 1).unwrap();
        for bad in [
            &[][..],
            &[7, b'e', b'x'],
            &[0xC0, 12],
            &[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e'],
            &[1, b'a', 0, 0],
        ] {
            assert!(ix.blocking(bad).is_none(), "{bad:?}");
        }
        assert!(ix.blocking(&[0]).is_none());
    }
}
