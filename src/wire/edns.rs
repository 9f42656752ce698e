//! EDNS(0) (RFC 6891): the OPT pseudo-record and the options we understand.
//!
//! Typed options: Client Subnet (RFC 7871), Cookie (RFC 7873), Padding (RFC 7830) and Extended DNS
//! Error (RFC 8914). Everything else is kept as opaque (code, data) and written back unchanged.

use std::net::IpAddr;

use super::builder::MessageBuilder;
use super::error::{Result, WireError};
use super::reader::Reader;
use super::types::RType;

/// Option codes.
pub mod code {
    pub const CLIENT_SUBNET: u16 = 8;
    pub const COOKIE: u16 = 10;
    pub const PADDING: u16 = 12;
    pub const EXTENDED_ERROR: u16 = 15;
}

/// Extended DNS Error info codes we emit (RFC 8914 section 4).
pub mod ede {
    pub const OTHER: u16 = 0;
    pub const STALE_ANSWER: u16 = 3;
    pub const DNSSEC_BOGUS: u16 = 6;
    pub const NOT_READY: u16 = 14;
    pub const PROHIBITED: u16 = 18;
    pub const NOT_SUPPORTED: u16 = 21;
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    pub const NETWORK_ERROR: u16 = 23;
}

/// The payload size we advertise and accept by default (DNS Flag Day 2020).
pub const DEFAULT_PAYLOAD: u16 = 1232;

/// An EDNS Client Subnet option (RFC 7871 section 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// 1 for IPv4, 2 for IPv6 (other families are kept as-is).
    pub family: u16,
    pub source_prefix: u8,
    pub scope_prefix: u8,
    /// The address octets as sent: ceil(source_prefix / 8) of them.
    pub address: Box<[u8]>,
}

impl ClientSubnet {
    /// The address, zero-filled to its family's width, if the family is IPv4 or IPv6.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.family {
            1 if self.address.len() <= 4 => {
                let mut a = [0u8; 4];
                a[..self.address.len()].copy_from_slice(&self.address);
                Some(IpAddr::from(a))
            }
            2 if self.address.len() <= 16 => {
                let mut a = [0u8; 16];
                a[..self.address.len()].copy_from_slice(&self.address);
                Some(IpAddr::from(a))
            }
            _ => None,
        }
    }
}

/// One EDNS option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdnsOption {
    ClientSubnet(ClientSubnet),
    /// A client cookie (8 octets) and an optional server cookie (8 to 32 octets).
    Cookie {
        client: [u8; 8],
        server: Box<[u8]>,
    },
    /// Padding of this many octets (their content is ignored on read and written as zeros).
    Padding(u16),
    ExtendedError {
        info_code: u16,
        extra_text: String,
    },
    Unknown {
        code: u16,
        data: Box<[u8]>,
    },
}

impl EdnsOption {
    /// The option code.
    pub fn code(&self) -> u16 {
        match self {
            EdnsOption::ClientSubnet(_) => code::CLIENT_SUBNET,
            EdnsOption::Cookie { .. } => code::COOKIE,
            EdnsOption::Padding(_) => code::PADDING,
            EdnsOption::ExtendedError { .. } => code::EXTENDED_ERROR,
            EdnsOption::Unknown { code, .. } => *code,
        }
    }

    fn read(code: u16, r: &mut Reader<'_>) -> Result<EdnsOption> {
        let bad = |reason| WireError::BadOpt(reason);
        let opt = match code {
            code::CLIENT_SUBNET => {
                let family = r.u16()?;
                let source_prefix = r.u8()?;
                let scope_prefix = r.u8()?;
                let address: Box<[u8]> = r.take_rest().into();
                let max_bits = match family {
                    1 => 32,
                    2 => 128,
                    _ => 255,
                };
                if source_prefix as u32 > max_bits
                    || address.len() != (source_prefix as usize).div_ceil(8)
                {
                    return Err(bad("client subnet address does not match its prefix"));
                }
                // RFC 7871 section 6: bits past the prefix must be zero (FORMERR otherwise).
                let spare = (8 - source_prefix % 8) % 8;
                if address
                    .last()
                    .is_some_and(|last| last & ((1u8 << spare) - 1) != 0)
                {
                    return Err(bad("client subnet address has bits set past its prefix"));
                }
                EdnsOption::ClientSubnet(ClientSubnet {
                    family,
                    source_prefix,
                    scope_prefix,
                    address,
                })
            }
            code::COOKIE => {
                let client = r
                    .array::<8>()
                    .map_err(|_| bad("cookie shorter than 8 octets"))?;
                let server: Box<[u8]> = r.take_rest().into();
                if !server.is_empty() && !(8..=32).contains(&server.len()) {
                    return Err(bad("server cookie not 8 to 32 octets"));
                }
                EdnsOption::Cookie { client, server }
            }
            code::PADDING => EdnsOption::Padding(r.take_rest().len() as u16),
            code::EXTENDED_ERROR => {
                let info_code = r.u16()?;
                let text = r.take_rest();
                EdnsOption::ExtendedError {
                    info_code,
                    extra_text: String::from_utf8_lossy(text).into_owned(),
                }
            }
            _ => EdnsOption::Unknown {
                code,
                data: r.take_rest().into(),
            },
        };
        r.expect_end()?;
        Ok(opt)
    }

    fn write(&self, b: &mut MessageBuilder) {
        b.put_u16(self.code());
        let len_at = b.len();
        b.put_u16(0);
        match self {
            EdnsOption::ClientSubnet(cs) => {
                b.put_u16(cs.family);
                b.put_u8(cs.source_prefix);
                b.put_u8(cs.scope_prefix);
                b.put_bytes(&cs.address);
            }
            EdnsOption::Cookie { client, server } => {
                b.put_bytes(client);
                b.put_bytes(server);
            }
            EdnsOption::Padding(n) => {
                for _ in 0..*n {
                    b.put_u8(0);
                }
            }
            EdnsOption::ExtendedError {
                info_code,
                extra_text,
            } => {
                b.put_u16(*info_code);
                b.put_bytes(extra_text.as_bytes());
            }
            EdnsOption::Unknown { data, .. } => b.put_bytes(data),
        }
        let len = b.len() - len_at - 2;
        b.patch_u16(len_at, len as u16);
    }
}

/// The contents of an OPT record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size (the OPT CLASS field).
    pub udp_payload: u16,
    /// The upper 8 bits of the extended RCODE.
    pub ext_rcode: u8,
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
    /// The other 15 flag bits, kept so they round-trip.
    pub z: u16,
    pub options: Vec<EdnsOption>,
}

impl Default for Edns {
    fn default() -> Self {
        Edns {
            udp_payload: DEFAULT_PAYLOAD,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
            z: 0,
            options: Vec::new(),
        }
    }
}

/// Reads the options of an OPT record's RDATA, handing each to `keep`.
fn read_options(rd: &mut Reader<'_>, mut keep: impl FnMut(EdnsOption)) -> Result<()> {
    while !rd.is_empty() {
        let code = rd.u16()?;
        let len = rd.u16()? as usize;
        keep(EdnsOption::read(code, &mut rd.sub(len)?)?);
    }
    Ok(())
}

/// Octets of an OPT record before its options: root owner, TYPE, CLASS, TTL, RDLENGTH.
pub const OPT_FIXED_LEN: usize = 11;
/// The DO bit in the OPT record's flags (RFC 3225).
pub const DO_BIT: u16 = 0x8000;

/// The fixed part of an OPT record (RFC 6891 section 6.1.2): root owner, TYPE 41, the payload size
/// in CLASS, extended RCODE, version and flags in TTL, and RDLENGTH (the options that follow).
/// Every OPT record dnsveil writes, in a response or a query, starts with these octets.
pub fn opt_head(
    payload: u16,
    ext_rcode: u8,
    version: u8,
    flags: u16,
    rdlength: u16,
) -> [u8; OPT_FIXED_LEN] {
    let [p0, p1] = payload.to_be_bytes();
    let [f0, f1] = flags.to_be_bytes();
    let [l0, l1] = rdlength.to_be_bytes();
    let [t0, t1] = RType::OPT.0.to_be_bytes();
    [0, t0, t1, p0, p1, ext_rcode, version, f0, f1, l0, l1]
}

/// Appends to `out` the Extended DNS Error options (RFC 8914) of an OPT record's RDATA, as they
/// are (code, length, data), leaving every other option out. Stops at the first option that does
/// not frame (a checked message has none).
pub fn extended_error_options(rdata: &[u8], out: &mut Vec<u8>) {
    let mut pos = 0;
    while let Some(head) = rdata.get(pos..pos + 4) {
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let Some(whole) = rdata.get(pos..pos + 4 + len) else {
            return;
        };
        if u16::from_be_bytes([head[0], head[1]]) == code::EXTENDED_ERROR {
            out.extend_from_slice(whole);
        }
        pos += 4 + len;
    }
}

/// Checks an OPT record's RDATA (its options) exactly as a message's is checked when it is parsed,
/// without keeping the options: for a fast path that answers without parsing the message.
pub fn check_options(rdata: &[u8]) -> Result<()> {
    read_options(&mut Reader::new(rdata), drop)
}

impl Edns {
    /// Reads the OPT record's fields after its owner name and TYPE: CLASS, TTL, RDLENGTH, RDATA.
    pub(crate) fn read_after_type(r: &mut Reader<'_>) -> Result<Edns> {
        let udp_payload = r.u16()?;
        let ext_rcode = r.u8()?;
        let version = r.u8()?;
        let flags = r.u16()?;
        let rdlen = r.u16()? as usize;
        let mut options = Vec::new();
        read_options(&mut r.sub(rdlen)?, |o| options.push(o))?;
        Ok(Edns {
            udp_payload,
            ext_rcode,
            version,
            dnssec_ok: flags & 0x8000 != 0,
            z: flags & 0x7FFF,
            options,
        })
    }

    /// Writes the whole OPT record (root owner, TYPE 41, ...).
    pub fn write(&self, b: &mut MessageBuilder) {
        let flags = if self.dnssec_ok { DO_BIT } else { 0 } | (self.z & !DO_BIT);
        b.put_bytes(&opt_head(
            self.udp_payload,
            self.ext_rcode,
            self.version,
            flags,
            0,
        ));
        let len_at = b.len() - 2;
        for opt in &self.options {
            opt.write(b);
        }
        let len = b.len() - len_at - 2;
        b.patch_u16(len_at, len as u16);
    }

    /// Length of the OPT record as [`Edns::write`] would write it.
    pub fn wire_len(&self) -> usize {
        let mut b = MessageBuilder::uncompressed();
        self.write(&mut b);
        b.len()
    }

    /// The first option with this code.
    pub fn option(&self, code: u16) -> Option<&EdnsOption> {
        self.options.iter().find(|o| o.code() == code)
    }

    /// Removes every option with this code.
    pub fn remove_option(&mut self, code: u16) {
        self.options.retain(|o| o.code() != code);
    }

    /// The Extended DNS Errors (RFC 8914) among the options, in order: info-code and extra text.
    pub fn extended_errors(&self) -> impl Iterator<Item = (u16, &str)> + '_ {
        self.options.iter().filter_map(|o| match o {
            EdnsOption::ExtendedError {
                info_code,
                extra_text,
            } => Some((*info_code, extra_text.as_str())),
            _ => None,
        })
    }

    /// Adds an Extended DNS Error (RFC 8914).
    pub fn add_extended_error(&mut self, info_code: u16, extra_text: impl Into<String>) {
        self.options.push(EdnsOption::ExtendedError {
            info_code,
            extra_text: extra_text.into(),
        });
    }

    /// The payload size a response may use: the client's, but never below 512 (RFC 6891 section 6.2.5).
    pub fn effective_payload(&self) -> u16 {
        self.udp_payload.max(512)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: &Edns) -> Edns {
        let mut b = MessageBuilder::new();
        e.write(&mut b);
        let bytes = b.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8().unwrap(), 0);
        assert_eq!(r.u16().unwrap(), 41);
        let back = Edns::read_after_type(&mut r).unwrap();
        r.expect_end().unwrap();
        back
    }

    #[test]
    fn options_round_trip() {
        let mut e = Edns {
            dnssec_ok: true,
            udp_payload: 4096,
            z: 0x1234,
            ..Edns::default()
        };
        e.options.push(EdnsOption::ClientSubnet(ClientSubnet {
            family: 1,
            source_prefix: 24,
            scope_prefix: 0,
            address: Box::new([192, 0, 2]),
        }));
        e.options.push(EdnsOption::Cookie {
            client: [1; 8],
            server: Box::new([2; 8]),
        });
        e.options.push(EdnsOption::Padding(7));
        e.add_extended_error(ede::DNSSEC_BOGUS, "bad sig");
        e.options.push(EdnsOption::Unknown {
            code: 65001,
            data: Box::new([9, 9]),
        });
        e.add_extended_error(ede::STALE_ANSWER, "");
        assert_eq!(
            e.extended_errors().collect::<Vec<_>>(),
            [(ede::DNSSEC_BOGUS, "bad sig"), (ede::STALE_ANSWER, "")]
        );
        assert_eq!(round_trip(&e), e);
        assert_eq!(e.wire_len(), {
            let mut b = MessageBuilder::new();
            e.write(&mut b);
            b.len()
        });
    }

    #[test]
    fn malformed_options_are_rejected() {
        let mut r = Reader::new(&[0, 8, 24, 0, 1, 2]);
        assert!(EdnsOption::read(code::CLIENT_SUBNET, &mut r.sub(6).unwrap()).is_err());
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(EdnsOption::read(code::COOKIE, &mut r.sub(3).unwrap()).is_err());
        // A /20 of IPv4: the last octet's low four bits must be zero (RFC 7871 section 6).
        // As OPT RDATA: code 8, length 7, family 1, source /20, scope 0, three address octets.
        let ecs =
            |prefix: u8, last: u8| check_options(&[0, 8, 0, 7, 0, 1, prefix, 0, 192, 0, last]);
        assert!(ecs(20, 0xF0).is_ok());
        assert!(ecs(20, 0xFF).is_err());
        assert!(ecs(20, 0x01).is_err());
        // Whole octets have no spare bits.
        assert!(ecs(24, 0xFF).is_ok());
        // Framing: an option longer than the data, a cut header.
        assert!(check_options(&[0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
        assert!(check_options(&[0, 10, 0]).is_err());
        assert!(check_options(&[]).is_ok());
    }
}
