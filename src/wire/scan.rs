//! Record offsets in an encoded message, without decoding any data.
//!
//! The cache stores answers as wire bytes and, on every hit, rewrites the TTL fields in place; this
//! walker finds those fields once, when the answer is stored. It only skips names (never follows a
//! pointer), so its work is linear in the message length.

use std::ops::Range;

use super::error::{Result, WireError};
use super::header::{Header, HEADER_LEN};
use super::types::{Class, RType};

/// Which section a record is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// Where one record lies in the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    pub section: Section,
    /// Offset of the owner name.
    pub start: usize,
    pub rtype: RType,
    pub class: Class,
    /// Offset of the 4-octet TTL field.
    pub ttl_offset: usize,
    pub ttl: u32,
    pub rdata: Range<usize>,
}

impl RecordSpan {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.rdata.end
    }
}

/// Skips a (possibly compressed) name starting at `pos`; returns the offset after it.
pub fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize> {
    let start = pos;
    loop {
        let len = *msg.get(pos).ok_or(WireError::ShortRead {
            offset: pos,
            needed: 1,
        })? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => {
                pos += 1 + len;
                if pos - start > 255 {
                    return Err(WireError::NameTooLong);
                }
            }
            0xC0 => {
                if pos + 2 > msg.len() {
                    return Err(WireError::ShortRead {
                        offset: pos,
                        needed: 2,
                    });
                }
                return Ok(pos + 2);
            }
            t => return Err(WireError::BadLabelType(t as u8)),
        }
    }
}

/// Offset just past the question section.
pub fn questions_end(msg: &[u8]) -> Result<usize> {
    let header = Header::parse(msg)?;
    let mut pos = HEADER_LEN;
    for _ in 0..header.qdcount {
        pos = skip_name(msg, pos)? + 4;
        if pos > msg.len() {
            return Err(WireError::ShortRead {
                offset: pos - 4,
                needed: pos - msg.len(),
            });
        }
    }
    Ok(pos)
}

/// Every record of the answer, authority and additional sections, OPT included, in order.
pub fn records(msg: &[u8]) -> Result<Vec<RecordSpan>> {
    let walk = Records::new(msg)?;
    let mut out = Vec::with_capacity(walk.left);
    for span in walk {
        out.push(span?);
    }
    Ok(out)
}

/// The records of a message one at a time, without allocating: what [`records`] collects. After
/// the last record it checks that nothing trails it ([`WireError::TrailingData`] otherwise).
#[derive(Clone, Debug)]
pub struct Records<'a> {
    msg: &'a [u8],
    pos: usize,
    index: usize,
    left: usize,
    ancount: usize,
    nscount: usize,
    failed: bool,
}

impl<'a> Records<'a> {
    /// A walk over `msg`'s records, after its header and question section.
    pub fn new(msg: &'a [u8]) -> Result<Self> {
        let header = Header::parse(msg)?;
        let pos = questions_end(msg)?;
        let total = header.ancount as usize + header.nscount as usize + header.arcount as usize;
        if total * 11 > msg.len() - pos {
            return Err(WireError::ShortRead {
                offset: pos,
                needed: total * 11 - (msg.len() - pos),
            });
        }
        Ok(Records {
            msg,
            pos,
            index: 0,
            left: total,
            ancount: header.ancount as usize,
            nscount: header.nscount as usize,
            failed: false,
        })
    }

    fn step(&mut self) -> Result<RecordSpan> {
        let msg = self.msg;
        let section = if self.index < self.ancount {
            Section::Answer
        } else if self.index < self.ancount + self.nscount {
            Section::Authority
        } else {
            Section::Additional
        };
        let start = self.pos;
        let pos = skip_name(msg, start)?;
        let fixed = msg.get(pos..pos + 10).ok_or(WireError::ShortRead {
            offset: pos,
            needed: 10,
        })?;
        let rtype = RType(u16::from_be_bytes([fixed[0], fixed[1]]));
        let class = Class(u16::from_be_bytes([fixed[2], fixed[3]]));
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = pos + 10..pos + 10 + rdlen;
        if rdata.end > msg.len() {
            return Err(WireError::ShortRead {
                offset: rdata.start,
                needed: rdata.end - msg.len(),
            });
        }
        self.pos = rdata.end;
        self.index += 1;
        self.left -= 1;
        if self.left == 0 && self.pos != msg.len() {
            return Err(WireError::TrailingData);
        }
        Ok(RecordSpan {
            section,
            start,
            rtype,
            class,
            ttl_offset: pos + 4,
            ttl,
            rdata,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<RecordSpan>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.index == 0 && self.pos != self.msg.len() {
                // No records at all, and something after the question.
                self.failed = true;
                return Some(Err(WireError::TrailingData));
            }
            return None;
        }
        let step = self.step();
        self.failed = step.is_err();
        Some(step)
    }
}
