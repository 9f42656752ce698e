//! A zero-allocation look at an incoming query, for the cached-answer fast path.
//!
//! The server reads this before anything else: it finds the question and the client's EDNS
//! parameters without building a [`super::Message`]. It accepts only the common shape (one
//! uncompressed question, no answer or authority records, at most one additional record which is
//! OPT); anything else is left to the full parser on the slow path.

use super::error::{Result, WireError};
use super::header::{Header, HEADER_LEN};
use super::name::MAX_NAME_LEN;
use super::types::{Class, RType};

/// The client's EDNS parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdnsInfo {
    pub udp_payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// True when the OPT record carried options (cookies, ECS, ...).
    pub has_options: bool,
}

/// The parts of a query the fast path needs, borrowed from the packet.
#[derive(Clone, Copy, Debug)]
pub struct QueryView<'a> {
    pub raw: &'a [u8],
    pub header: Header,
    /// The question name exactly as sent (uncompressed wire form, starting at offset 12).
    pub qname: &'a [u8],
    pub qtype: RType,
    pub qclass: Class,
    /// Offset just past the question.
    pub question_end: usize,
    pub edns: Option<EdnsInfo>,
}

impl<'a> QueryView<'a> {
    /// Reads a query of the common shape; an error means "use the full parser", not "malformed".
    pub fn parse(raw: &'a [u8]) -> Result<QueryView<'a>> {
        let header = Header::parse(raw)?;
        if header.qdcount != 1 || header.ancount != 0 || header.nscount != 0 || header.arcount > 1 {
            return Err(WireError::BadText("not a simple query".into()));
        }
        let mut pos = HEADER_LEN;
        loop {
            let len = *raw.get(pos).ok_or(WireError::ShortRead {
                offset: pos,
                needed: 1,
            })? as usize;
            if len & 0xC0 != 0 {
                return Err(WireError::BadLabelType(len as u8));
            }
            pos += 1 + len;
            if pos - HEADER_LEN > MAX_NAME_LEN {
                return Err(WireError::NameTooLong);
            }
            if len == 0 {
                break;
            }
        }
        let end = pos + 4;
        if end > raw.len() {
            return Err(WireError::ShortRead {
                offset: pos,
                needed: end - raw.len(),
            });
        }
        let qname = &raw[HEADER_LEN..pos];
        let qtype = RType(u16::from_be_bytes([raw[pos], raw[pos + 1]]));
        let qclass = Class(u16::from_be_bytes([raw[pos + 2], raw[pos + 3]]));
        let edns = if header.arcount == 1 {
            // The OPT record: root owner, TYPE 41, CLASS, TTL, RDLENGTH, RDATA, then nothing.
            let opt = &raw[end..];
            if opt.len() < 11 || opt[0] != 0 || opt[1..3] != [0, 41] {
                return Err(WireError::BadOpt("additional record is not a root OPT"));
            }
            let rdlen = u16::from_be_bytes([opt[9], opt[10]]) as usize;
            if opt.len() != 11 + rdlen {
                return Err(WireError::TrailingData);
            }
            Some(EdnsInfo {
                udp_payload: u16::from_be_bytes([opt[3], opt[4]]),
                version: opt[6],
                dnssec_ok: opt[7] & 0x80 != 0,
                has_options: rdlen != 0,
            })
        } else {
            if end != raw.len() {
                return Err(WireError::TrailingData);
            }
            None
        };
        Ok(QueryView {
            raw,
            header,
            qname,
            qtype,
            qclass,
            question_end: end,
            edns,
        })
    }

    /// The largest UDP response this client accepts (512 without EDNS, RFC 6891 section 6.2.5).
    pub fn max_udp_response(&self) -> usize {
        self.edns.map_or(512, |e| e.udp_payload.max(512) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Edns, Message, Name};

    #[test]
    fn reads_what_the_builder_writes() {
        let mut q = Message::query("Www.Example.com".parse::<Name>().unwrap(), RType::AAAA);
        q.header.id = 77;
        let plain = q.encode().unwrap();
        let v = QueryView::parse(&plain).unwrap();
        assert_eq!(v.qtype, RType::AAAA);
        assert_eq!(
            v.qname,
            "Www.Example.com".parse::<Name>().unwrap().as_wire()
        );
        assert!(v.edns.is_none());
        assert_eq!(v.max_udp_response(), 512);

        q.edns = Some(Edns {
            dnssec_ok: true,
            udp_payload: 4096,
            ..Edns::default()
        });
        let with_edns = q.encode().unwrap();
        let v = QueryView::parse(&with_edns).unwrap();
        let e = v.edns.unwrap();
        assert!(e.dnssec_ok && !e.has_options);
        assert_eq!(v.max_udp_response(), 4096);
        assert_eq!(v.question_end, plain.len());

        let mut trailing = plain.clone();
        trailing.push(0);
        assert!(QueryView::parse(&trailing).is_err());
        assert!(QueryView::parse(&plain[..plain.len() - 1]).is_err());
    }
}
