//! Writing messages: an output buffer that owns name compression (RFC 1035 section 4.1.4) and a size
//! limit.
//!
//! Reading and writing are separate types on purpose: a [`super::Reader`] never allocates and a
//! `MessageBuilder` never parses.

use super::error::{Result, WireError};
use super::name::{Name, MAX_POINTER_HOPS};

/// Largest message a builder will produce (the TCP length prefix is 16 bits).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Suffixes kept in the builder itself before any is kept on the heap: a typical message's (a
/// growing `Vec` from empty took three allocations per message).
const INLINE_SUFFIXES: usize = 32;

/// The compression targets of a builder: (offset, uncompressed length), the first
/// [`INLINE_SUFFIXES`] inline.
#[derive(Debug)]
struct Suffixes {
    inline: [(u16, u8); INLINE_SUFFIXES],
    len: usize,
    more: Vec<(u16, u8)>,
}

impl Default for Suffixes {
    fn default() -> Self {
        Suffixes {
            inline: [(0, 0); INLINE_SUFFIXES],
            len: 0,
            more: Vec::new(),
        }
    }
}

impl Suffixes {
    fn iter(&self) -> impl Iterator<Item = &(u16, u8)> {
        self.inline[..self.len].iter().chain(&self.more)
    }

    fn push(&mut self, s: (u16, u8)) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = s;
                self.len += 1;
            }
            None => self.more.push(s),
        }
    }

    /// Forgets the suffixes at or after `len` (they are in offset order).
    fn truncate_at(&mut self, len: usize) {
        self.more.retain(|(off, _)| usize::from(*off) < len);
        while self.len > 0 && usize::from(self.inline[self.len - 1].0) >= len {
            self.len -= 1;
        }
    }
}

/// A message under construction.
#[derive(Debug, Default)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    /// Every name suffix written so far that can be pointed at: its offset in `buf` and its length
    /// uncompressed. The suffix itself is read back from `buf` when compared (no copy of it is
    /// kept: a lower-cased copy per suffix was an allocation per label written). Messages hold
    /// few names, so a linear scan, rejecting on length first, beats hashing here.
    suffixes: Suffixes,
    compress: bool,
}

impl MessageBuilder {
    /// A builder that compresses names where allowed.
    pub fn new() -> Self {
        MessageBuilder {
            buf: Vec::with_capacity(512),
            suffixes: Suffixes::default(),
            compress: true,
        }
    }

    /// A builder that never compresses (for canonical forms and digests).
    pub fn uncompressed() -> Self {
        MessageBuilder {
            buf: Vec::with_capacity(512),
            suffixes: Suffixes::default(),
            compress: false,
        }
    }

    /// Octets written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The octets written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Gives up the buffer.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Appends one octet.
    pub fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian u16.
    pub fn put_u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u32.
    pub fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends raw octets.
    pub fn put_bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Overwrites a u16 written earlier (counts, RDLENGTH).
    pub fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Appends a character-string (RFC 1035 section 3.3): a length octet and at most 255 octets.
    pub fn put_char_string(&mut self, s: &[u8]) -> Result<()> {
        if s.len() > 255 {
            return Err(WireError::BadRdata {
                rtype: 0,
                reason: "character-string longer than 255 octets",
            });
        }
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s);
        Ok(())
    }

    /// Drops everything after `len` (used to roll back a record that did not fit). Compression
    /// targets beyond the cut are forgotten too.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
        self.suffixes.truncate_at(len);
    }

    /// Appends a name, compressed against earlier names when `compress` is true and this builder
    /// compresses at all. Every suffix written in full becomes a target for later names.
    pub fn put_name(&mut self, name: &Name, compress: bool) {
        let wire = name.as_wire();
        let compress = compress && self.compress;
        let mut pos = 0;
        while wire[pos] != 0 {
            let suffix = &wire[pos..];
            if compress {
                if let Some(&(off, _)) = self.suffixes.iter().find(|&&(off, len)| {
                    usize::from(len) == suffix.len() && self.written_at(off.into(), suffix)
                }) {
                    self.buf.extend_from_slice(&(0xC000 | off).to_be_bytes());
                    return;
                }
            }
            let here = self.buf.len();
            if self.compress && here < 0x4000 {
                // A name is at most 255 octets (`Name` guarantees it), so its length fits.
                self.suffixes.push((here as u16, suffix.len() as u8));
            }
            let len = wire[pos] as usize;
            self.buf.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.buf.push(0);
    }
}

impl MessageBuilder {
    /// True when the name written at `off` (its labels, then the root label or a pointer to an
    /// earlier name) is `suffix` ignoring ASCII case. Every pointer in `buf` was written here and
    /// points backwards, so the walk ends; the hop cap and the bounds checks make sure of it.
    fn written_at(&self, mut off: usize, suffix: &[u8]) -> bool {
        let mut i = 0;
        let mut hops = 0;
        loop {
            let Some(&len) = self.buf.get(off) else {
                return false;
            };
            if len & 0xC0 == 0xC0 {
                let Some(&lo) = self.buf.get(off + 1) else {
                    return false;
                };
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return false;
                }
                off = (usize::from(len & 0x3F) << 8) | usize::from(lo);
                continue;
            }
            let end = 1 + usize::from(len);
            // The length octets (at most 63) are not letters, so comparing them ignoring case is
            // comparing them exactly.
            match (self.buf.get(off..off + end), suffix.get(i..i + end)) {
                (Some(ours), Some(theirs)) if ours.eq_ignore_ascii_case(theirs) => {}
                _ => return false,
            }
            if len == 0 {
                return true;
            }
            off += end;
            i += end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_shared_suffixes_case_insensitively() {
        let mut b = MessageBuilder::new();
        b.put_bytes(&[0; 12]);
        b.put_name(&"www.Example.com".parse().unwrap(), true);
        let first = b.len();
        b.put_name(&"mail.example.COM".parse().unwrap(), true);
        assert_eq!(
            &b.as_slice()[first..],
            &[4, b'm', b'a', b'i', b'l', 0xC0, 16]
        );
        let second = b.len();
        b.put_name(&"example.com".parse().unwrap(), false);
        assert_eq!(b.len() - second, 13);
    }

    #[test]
    fn compresses_against_a_name_that_itself_ends_in_a_pointer() {
        let mut b = MessageBuilder::new();
        b.put_bytes(&[0; 12]);
        b.put_name(&"example.com".parse().unwrap(), true);
        let first = b.len();
        // Written as `www` + a pointer to 12.
        b.put_name(&"www.EXAMPLE.com".parse().unwrap(), true);
        assert_eq!(&b.as_slice()[first..], &[3, b'w', b'w', b'w', 0xC0, 12]);
        let second = b.len();
        // `www.example.com` is found at `first`, through its pointer.
        b.put_name(&"WWW.example.COM".parse().unwrap(), true);
        assert_eq!(&b.as_slice()[second..], &[0xC0, first as u8]);
        let third = b.len();
        // Same length, different labels: not a match, written in full up to the shared `com`.
        b.put_name(&"www.exbmple.com".parse().unwrap(), true);
        assert_eq!(
            &b.as_slice()[third..],
            &[3, b'w', b'w', b'w', 7, b'e', b'x', b'b', b'm', b'p', b'l', b'e', 0xC0, 20]
        );
        // A rolled-back name is no target any more.
        b.truncate(third);
        b.put_name(&"www.exbmple.com".parse().unwrap(), true);
        assert_eq!(b.len() - third, 14);
    }

    #[test]
    fn uncompressed_builder_never_points() {
        let mut b = MessageBuilder::uncompressed();
        b.put_name(&"a.b".parse().unwrap(), true);
        b.put_name(&"a.b".parse().unwrap(), true);
        assert_eq!(b.len(), 10);
    }
}
