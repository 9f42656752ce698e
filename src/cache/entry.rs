//! One cached answer, stored as one run of octets in its shard's slab ([`super::slab`]), and how a
//! hit is written from it.
//!
//! ```text
//!   0..6    inserted, milliseconds on the cache's clock (u48 LE)
//!   6..9    lifetime in seconds: the smallest stored TTL (u24 LE, at most MAX_LIFETIME)
//!   9       flags: bit 0 = referenced since the CLOCK hand last passed, bit 1 = a prefetch was
//!           requested, bit 2 = never serve stale, bits 4..5 = asks (hits, the client
//!           miss that fetched it, and those of the entry it replaced; saturating)
//!   10..14  held until, seconds on the cache's clock (u32 LE, 0 = not held): after a failed
//!           refresh, expired data is answered stale without asking again until then
//!   14..16  key length K (u16 LE)
//!   16..18  number of TTL fields N (u16 LE)
//!   18      length O of the EDNS option octets (at most 255)
//!   19..    key (K) | TTL field offsets (N x u16 LE) | header (12) | tail | EDNS options (O)
//! ```
//!
//! The stored response is the encoded answer without its question and OPT record: the header,
//! then everything after the question ("tail"). The EDNS options (an Extended DNS Error: a
//! blocked answer's names its list) come last, so that a hit for a client without EDNS reads
//! none of their octets. A hit rebuilds the question from the client's own
//! name octets, which have the same length as the stored (lower-cased) name, so every compression
//! pointer and every TTL offset in the tail stays valid and the client sees its own spelling
//! (0x20 mixed case). TTL offsets are counted from the start of the full response.
//!
//! [`Entry`] holds those bytes (they can only be built whole, by [`Entry::new`]; the shard copies
//! them into its slab and lends them back as a view) and is the only code that knows the offsets:
//! every field is a method that reads or writes it in place, under the shard's lock, so a hit costs
//! no decoding and no allocation.
//!
//! Keeping key, offsets and answer in one run of octets is what keeps a million entries small (the
//! bytes per entry that the cache's `memory_per_entry` test measures are in BENCHMARKS.md). The
//! fixed part is 19 octets: the insertion time needs no more than 48 bits, a lifetime no more than
//! 24 and the options (one Extended DNS Error with a short text) no more than 8, which pays for the
//! hold time that serve-stale needs. (The generation of the blocker's check an entry last passed
//! lives in the shard's index, in padding: see [`super::shard`].)
//!
//! A stale answer (RFC 8767) is rendered from the same bytes with every TTL set to the stale answer
//! TTL and an Extended DNS Error "Stale Answer" (RFC 8914 info-code 3) after the stored options.

use crate::handler::answer::allows_ad;
use crate::handler::Verdict;
use crate::wire::edns::{code, ede};
pub(crate) use crate::wire::response::Client;
use crate::wire::response::{self, Source, TtlOffsets};
use crate::wire::HEADER_LEN;

use super::key::{self, Key};

const OFF_INSERTED: usize = 0;
const OFF_LIFETIME: usize = 6;
const OFF_FLAGS: usize = 9;
const OFF_HELD_UNTIL: usize = 10;
const OFF_KEY_LEN: usize = 14;
const OFF_TTL_COUNT: usize = 16;
const OFF_OPT_LEN: usize = 18;
const FIXED_LEN: usize = 19;

/// Longest lifetime an entry can record (about 194 days); the cache clamps TTLs below it.
pub(crate) const MAX_LIFETIME: u32 = (1 << 24) - 1;
/// Most EDNS option octets an entry can keep.
pub(crate) const MAX_OPTIONS_LEN: usize = u8::MAX as usize;

/// The answer's DNSSEC verdict ([`Verdict::kind_code`], 0..=4) in three bits: bit 3, bits 6-7.
const VERDICT_LOW: u8 = 0x08;
const VERDICT_HIGH_SHIFT: u8 = 6;
const FLAG_REFERENCED: u8 = 0x01;
const FLAG_PREFETCH_REQUESTED: u8 = 0x02;
const FLAG_NEVER_STALE: u8 = 0x04;
const HITS_SHIFT: u8 = 4;
const HITS_MASK: u8 = 0x30;
/// The hit counter saturates here.
pub(crate) const MAX_HITS: u8 = 3;

/// The Extended DNS Error option a stale answer carries: option code, length 2, and the info-code
/// [`ede::STALE_ANSWER`] (RFC 8914 section 4.4), no text.
const STALE_EDE: [u8; 6] = {
    let [c0, c1] = code::EXTENDED_ERROR.to_be_bytes();
    let [i0, i1] = ede::STALE_ANSWER.to_be_bytes();
    [c0, c1, 0, 2, i0, i1]
};

/// What goes into a new entry.
pub(crate) struct Parts<'a> {
    pub key: &'a Key,
    pub inserted_ms: u64,
    pub lifetime: u32,
    /// The normalised header (ID 0, counts of what the tail holds).
    pub header: [u8; HEADER_LEN],
    /// Everything after the question, OPT record removed.
    pub tail: &'a [u8],
    /// Each TTL field as (offset in the full response, value to store).
    pub ttls: &'a [(u16, u32)],
    /// EDNS option octets (code, length, data) to send to EDNS clients: an Extended DNS Error.
    pub options: &'a [u8],
    /// False for data that must never be answered stale: a SERVFAIL, and (once a validator exists)
    /// anything that failed DNSSEC validation (RFC 8767 section 6 leaves this to the resolver; we
    /// never serve a failure as if it were data).
    pub stale_ok: bool,
}

/// One cached answer: the bytes laid out as the module docs draw them.
///
/// An `Entry` can only come from [`Entry::new`] (an owned entry, `B` a box), or be lent by the
/// shard as a view of bytes that one built ([`Stored`], [`StoredMut`]: `B` a slice of the shard's
/// [`super::slab`]), so its fixed part and the lengths it records always agree with the bytes that
/// follow. The wrapper is the bytes and nothing more, and every accessor reads or writes them in
/// place.
pub(crate) struct Entry<B = Box<[u8]>>(B);

/// An entry as the shard lends it to read.
pub(crate) type Stored<'a> = Entry<&'a [u8]>;
/// An entry as the shard lends it to change in place (under its lock).
pub(crate) type StoredMut<'a> = Entry<&'a mut [u8]>;

impl Entry {
    /// Builds an entry. The caller has checked that offsets lie inside the tail and that lengths
    /// fit their fields (a response is at most 65535 octets, options at most
    /// [`MAX_OPTIONS_LEN`]); the lifetime is capped at [`MAX_LIFETIME`].
    pub(crate) fn new(p: &Parts<'_>) -> Entry {
        debug_assert!(p.options.len() <= MAX_OPTIONS_LEN);
        let key = p.key.as_bytes();
        let len =
            FIXED_LEN + key.len() + 2 * p.ttls.len() + p.options.len() + HEADER_LEN + p.tail.len();
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&p.inserted_ms.to_le_bytes()[..6]);
        b.extend_from_slice(&p.lifetime.min(MAX_LIFETIME).to_le_bytes()[..3]);
        b.push(if p.stale_ok { 0 } else { FLAG_NEVER_STALE });
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(key.len() as u16).to_le_bytes());
        b.extend_from_slice(&(p.ttls.len() as u16).to_le_bytes());
        b.push(p.options.len() as u8);
        b.extend_from_slice(key);
        for (off, _) in p.ttls {
            b.extend_from_slice(&off.to_le_bytes());
        }
        b.extend_from_slice(&p.header);
        let tail_at = b.len();
        b.extend_from_slice(p.tail);
        b.extend_from_slice(p.options);
        let tail_base = question_end(key.len());
        for &(off, ttl) in p.ttls {
            let at = tail_at + off as usize - tail_base;
            b[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
        }
        debug_assert_eq!(b.len(), len);
        Entry(b.into_boxed_slice())
    }

    /// The entry's octets, as the shard stores them.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<'a> Stored<'a> {
    /// The entry whose octets the shard's slab holds at `bytes` (only ever octets of an
    /// [`Entry::new`]).
    pub(super) fn stored(bytes: &'a [u8]) -> Stored<'a> {
        Entry(bytes)
    }
}

impl<'a> StoredMut<'a> {
    /// As [`Entry::stored`], to change in place.
    pub(super) fn stored_mut(bytes: &'a mut [u8]) -> StoredMut<'a> {
        Entry(bytes)
    }
}

impl<B: AsRef<[u8]>> Entry<B> {
    #[inline]
    fn b(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// Octets held: what the shard's byte budget counts.
    pub(crate) fn size(&self) -> usize {
        self.b().len()
    }

    fn u16_at(&self, at: usize) -> usize {
        u16::from_le_bytes([self.b()[at], self.b()[at + 1]]) as usize
    }

    /// The stored key.
    pub(crate) fn key(&self) -> &[u8] {
        &self.b()[FIXED_LEN..FIXED_LEN + self.u16_at(OFF_KEY_LEN)]
    }

    /// True when the entry has lived its lifetime at `now_ms`.
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms()
    }

    /// When the entry's lifetime ends, in milliseconds on the cache's clock.
    ///
    /// TTLs are whole seconds, and the cache counts them in whole seconds of its clock, as unbound
    /// and Knot Resolver do: an entry stored during second `s` with a lifetime of `L` is answered
    /// through second `s + L`, in which its smallest TTL reads 0, and ends when second `s + L + 1`
    /// begins. So it outlives its TTL by less than a second (half a second on average), the share
    /// of a second that had passed when it was stored; a TTL never counts up and never exceeds what
    /// was stored. A lifetime of 0 ends at once: such an entry is never answered. An entry never to
    /// be served stale (a SERVFAIL) ends exactly when its lifetime does.
    pub(crate) fn expires_ms(&self) -> u64 {
        let life = u64::from(self.lifetime());
        let inserted = self.inserted_ms();
        if life == 0 {
            return inserted;
        }
        if !self.stale_ok() {
            // A SERVFAIL's lifetime is a back-off that RFC 2308 section 7.1 caps at five minutes
            // (and `servfail_ttl` may be exactly that): no slack past it.
            return inserted.saturating_add(life * 1000);
        }
        (inserted / 1000)
            .saturating_add(life + 1)
            .saturating_mul(1000)
    }

    /// The entry's [`Age`] at `now_ms` with a stale window of `stale_ms`.
    #[inline]
    pub(crate) fn age(&self, now_ms: u64, stale_ms: u64) -> Age {
        let expires = self.expires_ms();
        if now_ms < expires {
            Age::Fresh
        } else if self.stale_ok() && now_ms - expires < stale_ms {
            Age::Stale
        } else {
            Age::Dead
        }
    }

    /// True when the entry may be answered stale once expired (see [`Parts::stale_ok`]).
    pub(crate) fn stale_ok(&self) -> bool {
        self.b()[OFF_FLAGS] & FLAG_NEVER_STALE == 0
    }

    /// When the entry was stored, in milliseconds on the cache's clock.
    pub(crate) fn inserted_ms(&self) -> u64 {
        let mut v = [0u8; 8];
        v[..6].copy_from_slice(&self.b()[OFF_INSERTED..OFF_INSERTED + 6]);
        u64::from_le_bytes(v)
    }

    /// The smallest TTL the entry answers with at `now_ms` (0 in its last second, and once
    /// expired).
    pub(crate) fn ttl_left_s(&self, now_ms: u64) -> u64 {
        u64::from(self.lifetime()).saturating_sub(self.elapsed_s(now_ms))
    }

    /// Whole seconds of the cache's clock begun since the entry was stored: what its TTLs have
    /// counted down (see [`Entry::expires_ms`]).
    fn elapsed_s(&self, now_ms: u64) -> u64 {
        (now_ms / 1000).saturating_sub(self.inserted_ms() / 1000)
    }

    /// The entry's lifetime in seconds.
    pub(crate) fn lifetime(&self) -> u32 {
        let b = self.b();
        u32::from_le_bytes([b[OFF_LIFETIME], b[OFF_LIFETIME + 1], b[OFF_LIFETIME + 2], 0])
    }

    /// The asks counted so far (saturating at [`MAX_HITS`]).
    pub(crate) fn asks(&self) -> u8 {
        (self.b()[OFF_FLAGS] & HITS_MASK) >> HITS_SHIFT
    }

    /// True once a prefetch has been asked for this entry (a replacement entry starts without it).
    pub(crate) fn prefetch_requested(&self) -> bool {
        self.b()[OFF_FLAGS] & FLAG_PREFETCH_REQUESTED != 0
    }

    /// Until when (seconds on the cache's clock) expired data is answered stale without a refresh.
    pub(crate) fn held_until_s(&self) -> u32 {
        let b = self.b();
        u32::from_le_bytes([
            b[OFF_HELD_UNTIL],
            b[OFF_HELD_UNTIL + 1],
            b[OFF_HELD_UNTIL + 2],
            b[OFF_HELD_UNTIL + 3],
        ])
    }

    /// True while a failed refresh holds the entry at `now_ms` (see [`Entry::held_until_s`]).
    pub(crate) fn is_held(&self, now_ms: u64) -> bool {
        u64::from(self.held_until_s()) * 1000 > now_ms
    }

    /// The stored verdict's kind ([`Verdict::kind_code`]).
    pub(crate) fn verdict_code(&self) -> u8 {
        let f = self.b()[OFF_FLAGS];
        u8::from(f & VERDICT_LOW != 0) | ((f >> VERDICT_HIGH_SHIFT) << 1)
    }

    /// The stored verdict (a bogus one with the reason of its stored Extended DNS Error).
    pub(crate) fn verdict(&self) -> Verdict {
        let code = self.verdict_code();
        let ede = (code == Verdict::BOGUS_CODE)
            .then(|| first_ede(self.options()))
            .flatten();
        Verdict::from_kind_code(code, ede)
    }

    /// The stored EDNS option octets.
    fn options(&self) -> &[u8] {
        &self.b()[self.b().len() - usize::from(self.b()[OFF_OPT_LEN])..]
    }

    /// Writes the response for `client` into `out` with the one response writer
    /// ([`crate::wire::response::write`]): ID, question spelling, flags and TTLs (see [`Ttls`])
    /// patched, OPT for EDNS clients, cut to `max_len` by [`crate::wire::fit`]. Returns false
    /// (with `out` unchanged) if not even the truncated form fits or the client's name does not
    /// match. Allocates nothing beyond what `out` needs: this is the fast path's copy.
    pub(crate) fn render(
        &self,
        client: &Client<'_>,
        ttls: Ttls,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let b = self.b();
        let key_len = self.u16_at(OFF_KEY_LEN);
        let ttl_count = self.u16_at(OFF_TTL_COUNT);
        let opt_len = usize::from(b[OFF_OPT_LEN]);
        let key = &b[FIXED_LEN..FIXED_LEN + key_len];
        let offsets_at = FIXED_LEN + key_len;
        let header_at = offsets_at + 2 * ttl_count;
        let tail_at = header_at + HEADER_LEN;
        // The options last: a client without EDNS never reads their octets.
        let options_at = b.len() - opt_len;
        let header = &b[header_at..tail_at];
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let mut type_and_class = [0u8; 4];
        type_and_class.copy_from_slice(key::type_and_class_of(key));
        let src = Source {
            flags: [header[2], header[3]],
            counts: [count(6), count(8), count(10)],
            qname: key::qname_of(key),
            type_and_class: Some(type_and_class),
            records: &b[tail_at..options_at],
            options: &b[options_at..],
            ttl_offsets: TtlOffsets::Packed(&b[offsets_at..header_at]),
            ad_allowed: allows_ad(self.verdict_code(), header[3] & 0x20 != 0),
            ext_rcode: 0,
        };
        let (ttls, extra): (_, &[u8]) = match ttls {
            Ttls::At(now_ms) => (
                response::Ttls::Less(self.elapsed_s(now_ms).min(u64::from(u32::MAX)) as u32),
                &[],
            ),
            Ttls::Stale(ttl) => (response::Ttls::All(ttl), &STALE_EDE),
        };
        response::write(&src, client, ttls, extra, max_len, out)
    }

    /// The complete response as it was stored (TTLs as received, after the policy's clamps; ID 0,
    /// RD clear, AD as stored, no OPT) and the stored key: what a cache file keeps of an entry.
    pub(crate) fn stored_response(&self) -> Vec<u8> {
        let key = self.key();
        let client = Client {
            id: 0,
            recursion_available: true,
            qname: key::qname_of(key),
            recursion_desired: false,
            checking_disabled: key::checking_disabled_of(key),
            wants_ad: true,
            edns: None,
            payload: 0,
        };
        let mut out = Vec::new();
        // The name is the stored one and every stored response fits a message, so this cannot
        // fail; an empty result would be rejected when the file is read back anyway.
        self.render(
            &client,
            Ttls::At(self.inserted_ms()),
            crate::wire::builder::MAX_MESSAGE_LEN,
            &mut out,
        );
        out
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Entry<B> {
    #[inline]
    fn b_mut(&mut self) -> &mut [u8] {
        self.0.as_mut()
    }

    /// Starts the entry's lifetime again at `now_ms`: its TTLs count down from what was stored.
    /// Only for an answer that would be stored again as the very same bytes (a screen's own
    /// answer under the same generation, see `Cache::own_hit`).
    pub(crate) fn renew(&mut self, now_ms: u64) {
        self.b_mut()[OFF_INSERTED..OFF_INSERTED + 6].copy_from_slice(&now_ms.to_le_bytes()[..6]);
    }

    /// Notes a hit for the CLOCK hand and the popularity count; returns the asks counted before
    /// this one (saturating at [`MAX_HITS`]).
    pub(crate) fn note_hit(&mut self) -> u8 {
        let before = self.count_ask();
        self.b_mut()[OFF_FLAGS] |= FLAG_REFERENCED;
        before
    }

    /// Sets the asks counted (a new entry taking over its predecessor's popularity).
    pub(crate) fn set_asks(&mut self, asks: u8) {
        let flags = &mut self.b_mut()[OFF_FLAGS];
        *flags = (*flags & !HITS_MASK) | (asks.min(MAX_HITS) << HITS_SHIFT);
    }

    /// Counts an ask without marking the entry referenced for the CLOCK hand (the client miss that
    /// fetched it: a name asked once must still go first); returns the asks counted before this
    /// one.
    pub(crate) fn count_ask(&mut self) -> u8 {
        let flags = self.b()[OFF_FLAGS];
        let before = (flags & HITS_MASK) >> HITS_SHIFT;
        let after = before.saturating_add(1).min(MAX_HITS);
        self.b_mut()[OFF_FLAGS] = (flags & !HITS_MASK) | (after << HITS_SHIFT);
        before
    }

    /// Records that a prefetch has been asked for.
    pub(crate) fn set_prefetch_requested(&mut self) {
        self.b_mut()[OFF_FLAGS] |= FLAG_PREFETCH_REQUESTED;
    }

    /// Lets a prefetch or refresh be asked for again.
    pub(crate) fn clear_prefetch_requested(&mut self) {
        self.b_mut()[OFF_FLAGS] &= !FLAG_PREFETCH_REQUESTED;
    }

    /// Holds the entry (see [`Entry::held_until_s`]).
    pub(crate) fn set_held_until_s(&mut self, s: u32) {
        self.b_mut()[OFF_HELD_UNTIL..OFF_HELD_UNTIL + 4].copy_from_slice(&s.to_le_bytes());
    }

    /// Stores the answer's DNSSEC verdict (a bogus one's reason is its Extended DNS Error option).
    pub(crate) fn set_verdict(&mut self, verdict: &Verdict) {
        let code = verdict.kind_code();
        let flags = self.b()[OFF_FLAGS] & !(VERDICT_LOW | (0b11 << VERDICT_HIGH_SHIFT));
        let low = if code & 1 != 0 { VERDICT_LOW } else { 0 };
        self.b_mut()[OFF_FLAGS] = flags | low | ((code >> 1) << VERDICT_HIGH_SHIFT);
    }

    /// Clears the referenced bit; returns whether it was set (the entry's second chance).
    pub(crate) fn take_referenced(&mut self) -> bool {
        let was = self.b()[OFF_FLAGS] & FLAG_REFERENCED != 0;
        self.b_mut()[OFF_FLAGS] &= !FLAG_REFERENCED;
        was
    }
}

/// Offset just past the question in the full response for a key of this length.
fn question_end(key_len: usize) -> usize {
    // The question is the name (key minus 5 octets), QTYPE and QCLASS.
    HEADER_LEN + key_len - 1
}

/// Where an entry stands at a moment, for a given stale window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    /// Within its lifetime.
    Fresh,
    /// Expired less than the stale window ago, and allowed to be answered stale.
    Stale,
    /// Of no more use: expired and past the window, or expired and never to be served stale.
    Dead,
}

/// The info-code of the first Extended DNS Error among `options`.
fn first_ede(options: &[u8]) -> Option<u16> {
    let mut ede = Vec::new();
    crate::wire::edns::extended_error_options(options, &mut ede);
    ede.get(4..6).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// How the TTLs of a rendered answer are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ttls {
    /// The stored TTL minus the whole seconds of the cache's clock begun since the entry was
    /// stored, at this time (ms on the cache's clock; see [`Entry::expires_ms`]).
    At(u64),
    /// Every TTL set to this value, with an Extended DNS Error "Stale Answer" for EDNS clients
    /// (RFC 8767 section 4, RFC 8914 section 4.4).
    Stale(u32),
}
