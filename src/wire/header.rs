//! The fixed 12-octet message header (RFC 1035 section 4.1.1, flags from RFC 4035 section 3.2).

use super::error::{Result, WireError};
use super::types::Opcode;

/// Length of the header on the wire.
pub const HEADER_LEN: usize = 12;

/// A message header. The RCODE here is only the low 4 bits; [`super::Message`] joins it with EDNS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// QR: this is a response.
    pub response: bool,
    pub opcode: Opcode,
    /// AA
    pub authoritative: bool,
    /// TC
    pub truncated: bool,
    /// RD
    pub recursion_desired: bool,
    /// RA
    pub recursion_available: bool,
    /// The Z bit; must be zero but is echoed as received.
    pub z: bool,
    /// AD (RFC 4035 section 3.2.3)
    pub authentic_data: bool,
    /// CD (RFC 4035 section 3.2.2)
    pub checking_disabled: bool,
    /// The low 4 bits of the response code.
    pub rcode_low: u8,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Default for Opcode {
    fn default() -> Self {
        Opcode::QUERY
    }
}

impl Header {
    /// Reads the header from the first 12 octets of `msg`.
    pub fn parse(msg: &[u8]) -> Result<Header> {
        if msg.len() < HEADER_LEN {
            return Err(WireError::ShortRead {
                offset: msg.len(),
                needed: HEADER_LEN - msg.len(),
            });
        }
        let b = |i: usize| msg[i];
        let w = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
        Ok(Header {
            id: w(0),
            response: b(2) & 0x80 != 0,
            opcode: Opcode((b(2) >> 3) & 0x0F),
            authoritative: b(2) & 0x04 != 0,
            truncated: b(2) & 0x02 != 0,
            recursion_desired: b(2) & 0x01 != 0,
            recursion_available: b(3) & 0x80 != 0,
            z: b(3) & 0x40 != 0,
            authentic_data: b(3) & 0x20 != 0,
            checking_disabled: b(3) & 0x10 != 0,
            rcode_low: b(3) & 0x0F,
            qdcount: w(4),
            ancount: w(6),
            nscount: w(8),
            arcount: w(10),
        })
    }

    /// The two flag octets (bytes 2 and 3 of the header).
    pub fn flags(&self) -> [u8; 2] {
        let mut f0 = (self.opcode.0 & 0x0F) << 3;
        if self.response {
            f0 |= 0x80;
        }
        if self.authoritative {
            f0 |= 0x04;
        }
        if self.truncated {
            f0 |= 0x02;
        }
        if self.recursion_desired {
            f0 |= 0x01;
        }
        let mut f1 = self.rcode_low & 0x0F;
        if self.recursion_available {
            f1 |= 0x80;
        }
        if self.z {
            f1 |= 0x40;
        }
        if self.authentic_data {
            f1 |= 0x20;
        }
        if self.checking_disabled {
            f1 |= 0x10;
        }
        [f0, f1]
    }

    /// The 12 wire octets.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&self.id.to_be_bytes());
        out[2..4].copy_from_slice(&self.flags());
        out[4..6].copy_from_slice(&self.qdcount.to_be_bytes());
        out[6..8].copy_from_slice(&self.ancount.to_be_bytes());
        out[8..10].copy_from_slice(&self.nscount.to_be_bytes());
        out[10..12].copy_from_slice(&self.arcount.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bit_round_trips() {
        for f0 in 0..=255u8 {
            for f1 in [0u8, 0x80, 0x40, 0x20, 0x10, 0x0F, 0xFF] {
                let raw = [0x12, 0x34, f0, f1, 0, 1, 0, 2, 0, 3, 0, 4];
                let h = Header::parse(&raw).unwrap();
                assert_eq!(h.to_bytes(), raw);
            }
        }
        assert!(Header::parse(&[0; 11]).is_err());
    }
}
