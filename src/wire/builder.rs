//! Writing messages: an output buffer that owns name compression (RFC 1035 section 4.1.4) and a size
//! limit.
//!
//! Reading and writing are separate types on purpose: a [`super::Reader`] never allocates and a
//! `MessageBuilder` never parses.

use super::error::{Result, WireError};
use super::name::Name;

/// Largest message a builder will produce (the TCP length prefix is 16 bits).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// A message under construction.
#[derive(Debug, Default)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    /// Lower-cased wire form of every name suffix written so far that can be pointed at, with its offset.
    /// Messages hold few names, so a linear scan beats hashing here.
    suffixes: Vec<(Box<[u8]>, u16)>,
    compress: bool,
}

impl MessageBuilder {
    /// A builder that compresses names where allowed.
    pub fn new() -> Self {
        MessageBuilder {
            buf: Vec::with_capacity(512),
            suffixes: Vec::new(),
            compress: true,
        }
    }

    /// A builder that never compresses (for canonical forms and digests).
    pub fn uncompressed() -> Self {
        MessageBuilder {
            buf: Vec::with_capacity(512),
            suffixes: Vec::new(),
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
        self.suffixes.retain(|(_, off)| (*off as usize) < len);
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
                if let Some(&(_, off)) = self
                    .suffixes
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
                {
                    self.buf.extend_from_slice(&(0xC000 | off).to_be_bytes());
                    return;
                }
            }
            let here = self.buf.len();
            if self.compress && here < 0x4000 {
                self.suffixes
                    .push((suffix.to_ascii_lowercase().into_boxed_slice(), here as u16));
            }
            let len = wire[pos] as usize;
            self.buf.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.buf.push(0);
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
    fn uncompressed_builder_never_points() {
        let mut b = MessageBuilder::uncompressed();
        b.put_name(&"a.b".parse().unwrap(), true);
        b.put_name(&"a.b".parse().unwrap(), true);
        assert_eq!(b.len(), 10);
    }
}
