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

/// Extended DNS Error info codes (RFC 8914 section 4), the whole IANA "Extended DNS Error Codes"
/// registry as of code 30, each with the name the registry gives it ([`ede::name`]).
///
/// The codes are plain `u16`s (the option's INFO-CODE field) so that a code we do not know, read
/// from an upstream's answer, is carried and printed like one we do. Everything that writes or
/// names a code uses these constants; nothing else spells a number.
pub mod ede {
    macro_rules! registry {
        ($($(#[$doc:meta])* $konst:ident = $code:literal, $name:literal;)*) => {
            $($(#[$doc])* pub const $konst: u16 = $code;)*

            /// Every registered code with its registry name, in code order.
            pub const REGISTRY: &[(u16, &str)] = &[$(($konst, $name),)*];
        };
    }

    registry! {
        /// None of the other codes fits; the EXTRA-TEXT says what happened (section 4.1).
        OTHER = 0, "Other Error";
        /// A DNSKEY RRset held only unsupported DNSSEC algorithms (section 4.2).
        UNSUPPORTED_DNSKEY_ALGORITHM = 1, "Unsupported DNSKEY Algorithm";
        /// A DS RRset held only unsupported digest types (section 4.3).
        UNSUPPORTED_DS_DIGEST_TYPE = 2, "Unsupported DS Digest Type";
        /// Answered from expired cache data instead of an error (section 4.4, RFC 8767).
        STALE_ANSWER = 3, "Stale Answer";
        /// An answer forged for policy reasons (section 4.5).
        FORGED_ANSWER = 4, "Forged Answer";
        /// DNSSEC validation ended Indeterminate (section 4.6).
        DNSSEC_INDETERMINATE = 5, "DNSSEC Indeterminate";
        /// DNSSEC validation ended Bogus (section 4.7).
        DNSSEC_BOGUS = 6, "DNSSEC Bogus";
        /// No signature is valid and some are expired (section 4.8).
        SIGNATURE_EXPIRED = 7, "Signature Expired";
        /// No signature is valid and some are not yet valid (section 4.9).
        SIGNATURE_NOT_YET_VALID = 8, "Signature Not Yet Valid";
        /// A DS exists at the parent but no matching supported DNSKEY at the child (section 4.10).
        DNSKEY_MISSING = 9, "DNSKEY Missing";
        /// No RRSIG for an RRset where one was expected (section 4.11).
        RRSIGS_MISSING = 10, "RRSIGs Missing";
        /// No DNSKEY had the Zone Key bit set (section 4.12).
        NO_ZONE_KEY_BIT_SET = 11, "No Zone Key Bit Set";
        /// Data missing without a covering NSEC or NSEC3 (section 4.13).
        NSEC_MISSING = 12, "NSEC Missing";
        /// A SERVFAIL answered from the cache (section 4.14).
        CACHED_ERROR = 13, "Cached Error";
        /// The server was not fully functional when the query arrived (section 4.15).
        NOT_READY = 14, "Not Ready";
        /// The name is on the operator's blocklist (section 4.16).
        BLOCKED = 15, "Blocked";
        /// The name is on a blocklist required by someone other than the operator (section 4.17).
        CENSORED = 16, "Censored";
        /// The name is on a blocklist the client asked for (section 4.18).
        FILTERED = 17, "Filtered";
        /// The client is not allowed to ask (section 4.19).
        PROHIBITED = 18, "Prohibited";
        /// Answered a cached NXDOMAIN past its time instead of an error (section 4.20).
        STALE_NXDOMAIN_ANSWER = 19, "Stale NXDomain Answer";
        /// A query with RD=0 for data the server is not authoritative for (section 4.21).
        NOT_AUTHORITATIVE = 20, "Not Authoritative";
        /// The requested operation or query is not supported (section 4.22).
        NOT_SUPPORTED = 21, "Not Supported";
        /// No authoritative server could be reached (section 4.23).
        NO_REACHABLE_AUTHORITY = 22, "No Reachable Authority";
        /// An unrecoverable error talking to another server (section 4.24).
        NETWORK_ERROR = 23, "Network Error";
        /// An authoritative server's data for the zone is unusable, e.g. expired (section 4.25).
        INVALID_DATA = 24, "Invalid Data";
        /// A signature's inception is later than its expiration (IANA, after RFC 8914).
        SIGNATURE_EXPIRED_BEFORE_VALID = 25, "Signature Expired before Valid";
        /// A query sent in 0-RTT early data was not processed (RFC 9250).
        TOO_EARLY = 26, "Too Early";
        /// NSEC3 iterations above what the validator accepts (RFC 9276).
        UNSUPPORTED_NSEC3_ITERATIONS_VALUE = 27, "Unsupported NSEC3 Iterations Value";
        /// The resolver cannot meet the provisioning domain's policy (IANA, after RFC 8914).
        UNABLE_TO_CONFORM_TO_POLICY = 28, "Unable to conform to policy";
        /// The answer was synthesised by the resolver (IANA, after RFC 8914).
        SYNTHESIZED = 29, "Synthesized";
        /// The query type is not valid for the question (IANA, after RFC 8914).
        INVALID_QUERY_TYPE = 30, "Invalid Query Type";
    }

    /// The registry's name for `code`, or None for a code not in [`REGISTRY`].
    pub fn name(code: u16) -> Option<&'static str> {
        REGISTRY
            .iter()
            .find(|&&(c, _)| c == code)
            .map(|&(_, name)| name)
    }
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
    fn every_ede_code_has_its_registry_name() {
        // Codes 0 to 30, each once, in order, each with a name.
        let codes: Vec<u16> = ede::REGISTRY.iter().map(|&(c, _)| c).collect();
        assert_eq!(codes, (0..=30).collect::<Vec<u16>>());
        for &(code, name) in ede::REGISTRY {
            assert!(!name.is_empty(), "{code}");
            assert_eq!(ede::name(code), Some(name));
        }
        assert_eq!(ede::name(ede::OTHER), Some("Other Error"));
        assert_eq!(ede::name(ede::STALE_ANSWER), Some("Stale Answer"));
        assert_eq!(ede::name(ede::PROHIBITED), Some("Prohibited"));
        assert_eq!(ede::name(ede::NETWORK_ERROR), Some("Network Error"));
        assert_eq!(
            ede::name(ede::NO_REACHABLE_AUTHORITY),
            Some("No Reachable Authority")
        );
        assert_eq!(
            ede::name(ede::UNSUPPORTED_NSEC3_ITERATIONS_VALUE),
            Some("Unsupported NSEC3 Iterations Value")
        );
        assert_eq!(
            ede::name(ede::INVALID_QUERY_TYPE),
            Some("Invalid Query Type")
        );
        assert_eq!(ede::name(31), None);
        assert_eq!(ede::name(49152), None);
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
