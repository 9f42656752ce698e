//! A bounds-checked cursor over a received message.
//!
//! Modelled on rustls' `msgs::codec::Reader`: every read checks its length, sub-readers are
//! length-delimited and can insist that they were consumed completely. The whole message stays
//! reachable so that compressed names can follow pointers backwards.

use super::error::{Result, WireError};

/// A cursor over `msg[pos..limit]`, with the whole message kept for compression pointers.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
    limit: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the whole of `msg`.
    pub fn new(msg: &'a [u8]) -> Self {
        Reader {
            msg,
            pos: 0,
            limit: msg.len(),
        }
    }

    /// The whole message (for compression pointers).
    pub fn message(&self) -> &'a [u8] {
        self.msg
    }

    /// The current offset from the start of the message.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left before this reader's limit.
    pub fn remaining(&self) -> usize {
        self.limit - self.pos
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.pos == self.limit
    }

    /// Fails with [`WireError::TrailingData`] unless everything was consumed.
    pub fn expect_end(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingData)
        }
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(WireError::ShortRead {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.msg[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes everything that is left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let s = &self.msg[self.pos..self.limit];
        self.pos = self.limit;
        s
    }

    /// A sub-reader over the next `n` bytes; this reader moves past them.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>> {
        if self.remaining() < n {
            return Err(WireError::ShortRead {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let r = Reader {
            msg: self.msg,
            pos: self.pos,
            limit: self.pos + n,
        };
        self.pos += n;
        Ok(r)
    }

    /// Reads one octet.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Moves to an absolute offset (used after reading a compressed name).
    pub(crate) fn seek(&mut self, pos: usize) -> Result<()> {
        if pos > self.limit {
            return Err(WireError::ShortRead {
                offset: self.pos,
                needed: pos - self.limit,
            });
        }
        self.pos = pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert!(r.u16().is_err());
        assert_eq!(r.u8().unwrap(), 3);
        r.expect_end().unwrap();
    }

    #[test]
    fn sub_reader_is_length_delimited() {
        let mut r = Reader::new(&[0, 1, 2, 3, 4]);
        let mut s = r.sub(2).unwrap();
        assert_eq!(s.u16().unwrap(), 1);
        assert!(s.u8().is_err());
        assert_eq!(r.u8().unwrap(), 2);
        assert!(r.sub(3).is_err());
    }
}
