//! Typed record data (RFC 1035 section 3.3 and the RFCs of each type), with RFC 3597 opaque data for
//! everything else.
//!
//! Names inside RDATA are decompressed on read only for the types RFC 3597 section 4 calls well-known
//! (NS, CNAME, SOA, PTR, MX), plus leniency on read for DNAME, SRV and the SVCB/HTTPS target, which
//! deployed software compresses although their RFCs forbid it; they are compressed on write only for
//! the RFC 1035 types. Every other type (RRSIG, NSEC, ...) writes its names uncompressed and rejects
//! pointers on read.
//! Canonical form (RFC 4034 section 6.2, RFC 6840 section 5.1) lives in [`super::canonical`],
//! presentation format in [`super::zone`].
//!
//! Every reader consumes its length-delimited sub-reader exactly and reports malformed data as
//! [`WireError::BadRdata`]; nothing allocates more than the RDATA length justifies. Writers check
//! the same invariants, so whatever `write` accepts, `read` gives back unchanged.
//!
//! Layouts: A/AAAA (RFC 1035 3.4.1, RFC 3596), NS/CNAME/PTR/SOA/MX/TXT (RFC 1035 3.3), DNAME
//! (RFC 6672), SRV (RFC 2782), CAA (RFC 8659 section 4.1), SVCB/HTTPS (RFC 9460 section 2.2),
//! DS/DNSKEY/RRSIG/NSEC (RFC 4034 sections 5.1, 2.1, 3.1, 4.1), NSEC3/NSEC3PARAM (RFC 5155 sections
//! 3.2 and 4.2).
//!
//! Limitations: DNSKEY keys, DS digests and RRSIG signatures are opaque octets (the validator
//! interprets them); SVCB parameter values are checked for their RFC 9460 section 7 shape but kept
//! as octets; CAA property values are not interpreted. An NSEC/NSEC3 type bitmap with an empty or
//! zero-padded window (forbidden by RFC 4034 section 4.1.2) is rejected rather than normalised, so a
//! record is never silently re-encoded differently from what was signed.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::builder::MessageBuilder;
use super::error::{Result, WireError};
use super::name::Name;
use super::reader::Reader;
use super::types::RType;

/// SOA data (RFC 1035 section 3.3.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// SVCB and HTTPS data (RFC 9460); parameters kept as (key, value) in wire order, which is strictly
/// increasing key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svcb {
    pub priority: u16,
    pub target: Name,
    pub params: Vec<(u16, Box<[u8]>)>,
}

/// SvcParamKeys (RFC 9460 section 14.3.2).
pub mod svc_key {
    pub const MANDATORY: u16 = 0;
    pub const ALPN: u16 = 1;
    pub const NO_DEFAULT_ALPN: u16 = 2;
    pub const PORT: u16 = 3;
    pub const IPV4HINT: u16 = 4;
    pub const ECH: u16 = 5;
    pub const IPV6HINT: u16 = 6;
}

/// RRSIG data (RFC 4034 section 3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rrsig {
    pub type_covered: RType,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    pub signer_name: Name,
    pub signature: Box<[u8]>,
}

/// NSEC3 data (RFC 5155 section 3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nsec3 {
    pub hash_algorithm: u8,
    pub flags: u8,
    pub iterations: u16,
    pub salt: Box<[u8]>,
    pub next_hashed_owner: Box<[u8]>,
    pub types: TypeBitmap,
}

/// The type bit maps of NSEC and NSEC3 (RFC 4034 section 4.1.2), as a sorted list of types.
///
/// Reading always yields a sorted list without duplicates; writing sorts and de-duplicates, so build
/// values with [`TypeBitmap::new`] to keep equality meaningful.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeBitmap(pub Vec<RType>);

impl TypeBitmap {
    /// A bitmap of these types, sorted and without duplicates.
    pub fn new(types: impl IntoIterator<Item = RType>) -> Self {
        let mut v: Vec<RType> = types.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        TypeBitmap(v)
    }

    /// True when `rtype` is in the bitmap.
    pub fn contains(&self, rtype: RType) -> bool {
        self.0.contains(&rtype)
    }

    /// Reads window blocks until the reader is exhausted.
    fn read(rtype: RType, r: &mut Reader<'_>) -> Result<TypeBitmap> {
        let mut types = Vec::new();
        let mut last_window: Option<u8> = None;
        while !r.is_empty() {
            let window = r.u8().map_err(|_| bad(rtype, "truncated type bitmap"))?;
            let len = r.u8().map_err(|_| bad(rtype, "truncated type bitmap"))? as usize;
            if last_window.is_some_and(|w| window <= w) {
                return Err(bad(rtype, "type bitmap windows not in increasing order"));
            }
            last_window = Some(window);
            if !(1..=32).contains(&len) {
                return Err(bad(rtype, "type bitmap window length not 1 to 32"));
            }
            let bits = r
                .take(len)
                .map_err(|_| bad(rtype, "type bitmap window runs past the record data"))?;
            if bits[len - 1] == 0 {
                return Err(bad(rtype, "type bitmap window ends in a zero octet"));
            }
            for (i, &octet) in bits.iter().enumerate() {
                for bit in 0..8 {
                    if octet & (0x80 >> bit) != 0 {
                        types.push(RType(
                            (u16::from(window) << 8) | ((i as u16) << 3) | bit as u16,
                        ));
                    }
                }
            }
        }
        Ok(TypeBitmap(types))
    }

    fn write(&self, b: &mut MessageBuilder) {
        let mut types = self.0.clone();
        types.sort_unstable();
        types.dedup();
        let mut i = 0;
        while i < types.len() {
            let window = (types[i].0 >> 8) as u8;
            let mut bits = [0u8; 32];
            let mut used = 0;
            while i < types.len() && (types[i].0 >> 8) as u8 == window {
                let low = (types[i].0 & 0xFF) as usize;
                bits[low / 8] |= 0x80 >> (low % 8);
                used = low / 8 + 1;
                i += 1;
            }
            b.put_u8(window);
            b.put_u8(used as u8);
            b.put_bytes(&bits[..used]);
        }
    }
}

/// The data of one resource record.
///
/// `Unknown` is meant for types without a typed variant; reading never produces it for a typed
/// type (an `Unknown` holding, say, type A writes fine but reads back as `A`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ns(Name),
    Cname(Name),
    Dname(Name),
    Ptr(Name),
    Soa(Soa),
    Mx {
        preference: u16,
        exchange: Name,
    },
    /// One or more character-strings of at most 255 octets each.
    Txt(Vec<Box<[u8]>>),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Caa {
        flags: u8,
        tag: Box<[u8]>,
        value: Box<[u8]>,
    },
    Svcb(Svcb),
    Https(Svcb),
    Ds {
        key_tag: u16,
        algorithm: u8,
        digest_type: u8,
        digest: Box<[u8]>,
    },
    Dnskey {
        flags: u16,
        protocol: u8,
        algorithm: u8,
        public_key: Box<[u8]>,
    },
    Rrsig(Rrsig),
    Nsec {
        next: Name,
        types: TypeBitmap,
    },
    Nsec3(Nsec3),
    Nsec3Param {
        hash_algorithm: u8,
        flags: u8,
        iterations: u16,
        salt: Box<[u8]>,
    },
    /// Any other type, kept as opaque octets (RFC 3597).
    Unknown {
        rtype: RType,
        data: Box<[u8]>,
    },
}

impl RData {
    /// The record type this data belongs to.
    pub fn rtype(&self) -> RType {
        match self {
            RData::A(_) => RType::A,
            RData::Aaaa(_) => RType::AAAA,
            RData::Ns(_) => RType::NS,
            RData::Cname(_) => RType::CNAME,
            RData::Dname(_) => RType::DNAME,
            RData::Ptr(_) => RType::PTR,
            RData::Soa(_) => RType::SOA,
            RData::Mx { .. } => RType::MX,
            RData::Txt(_) => RType::TXT,
            RData::Srv { .. } => RType::SRV,
            RData::Caa { .. } => RType::CAA,
            RData::Svcb(_) => RType::SVCB,
            RData::Https(_) => RType::HTTPS,
            RData::Ds { .. } => RType::DS,
            RData::Dnskey { .. } => RType::DNSKEY,
            RData::Rrsig(_) => RType::RRSIG,
            RData::Nsec { .. } => RType::NSEC,
            RData::Nsec3(_) => RType::NSEC3,
            RData::Nsec3Param { .. } => RType::NSEC3PARAM,
            RData::Unknown { rtype, .. } => *rtype,
        }
    }

    /// Reads RDATA of type `rtype`. `r` is a sub-reader covering exactly RDLENGTH octets (it still
    /// sees the whole message for compression pointers); the data must consume it completely.
    pub fn read(rtype: RType, r: &mut Reader<'_>) -> Result<RData> {
        let data = read_typed(rtype, r)?;
        if !r.is_empty() {
            return Err(bad(rtype, "trailing octets after the record data"));
        }
        Ok(data)
    }

    /// Builds typed data from RFC 3597 generic octets (`\# len hex` in zone files): the octets are
    /// read as if they were the RDATA of `rtype` in a message of their own, and must be exactly what
    /// the typed form writes back (so compression pointers and non-canonical bitmaps are refused).
    pub fn from_generic(rtype: RType, data: &[u8]) -> Result<RData> {
        if rtype == RType::OPT {
            return Err(bad(rtype, "OPT is not record data"));
        }
        let mut r = Reader::new(data);
        let rd = RData::read(rtype, &mut r)?;
        let mut b = MessageBuilder::uncompressed();
        rd.write(&mut b)?;
        if b.as_slice() != data {
            return Err(bad(
                rtype,
                "generic data is not in the type's uncompressed form",
            ));
        }
        Ok(rd)
    }

    /// Appends the RDATA (not its length) to a message being built, compressing names only where
    /// RFC 3597 allows.
    pub fn write(&self, b: &mut MessageBuilder) -> Result<()> {
        self.write_with(b, false)
    }

    /// The writer behind [`RData::write`] and canonical form: with `canonical`, names of the types
    /// RFC 4034 section 6.2 (as amended by RFC 6840 section 5.1) lists are lower-cased. Whether
    /// names are compressed is up to the builder (an uncompressed builder never points).
    pub(crate) fn write_with(&self, b: &mut MessageBuilder, canonical: bool) -> Result<()> {
        let rtype = self.rtype();
        // Both lists are per type: which types may compress (RFC 3597 section 4) and which are
        // lower-cased in canonical form.
        let compress = matches!(
            self,
            RData::Ns(_) | RData::Cname(_) | RData::Soa(_) | RData::Ptr(_) | RData::Mx { .. }
        );
        let lower = canonical && lowercased_in_canonical_form(rtype);
        let put_name = |b: &mut MessageBuilder, name: &Name| {
            if lower {
                b.put_name(&name.to_lowercase(), compress);
            } else {
                b.put_name(name, compress);
            }
        };
        match self {
            RData::A(a) => b.put_bytes(&a.octets()),
            RData::Aaaa(a) => b.put_bytes(&a.octets()),
            RData::Ns(n) | RData::Cname(n) | RData::Dname(n) | RData::Ptr(n) => put_name(b, n),
            RData::Soa(s) => {
                put_name(b, &s.mname);
                put_name(b, &s.rname);
                for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
                    b.put_u32(v);
                }
            }
            RData::Mx {
                preference,
                exchange,
            } => {
                b.put_u16(*preference);
                put_name(b, exchange);
            }
            RData::Txt(strings) => {
                if strings.is_empty() {
                    return Err(bad(rtype, "TXT needs at least one character-string"));
                }
                for s in strings {
                    put_char_string(b, rtype, s)?;
                }
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                b.put_u16(*priority);
                b.put_u16(*weight);
                b.put_u16(*port);
                put_name(b, target);
            }
            RData::Caa { flags, tag, value } => {
                if tag.is_empty() {
                    return Err(bad(rtype, "empty CAA tag"));
                }
                b.put_u8(*flags);
                put_char_string(b, rtype, tag)?;
                b.put_bytes(value);
            }
            RData::Svcb(s) | RData::Https(s) => {
                b.put_u16(s.priority);
                put_name(b, &s.target);
                let mut last: Option<u16> = None;
                for (key, value) in &s.params {
                    if last.is_some_and(|k| *key <= k) {
                        return Err(bad(rtype, "SvcParamKeys not in strictly increasing order"));
                    }
                    last = Some(*key);
                    check_svc_param(*key, value).map_err(|reason| bad(rtype, reason))?;
                    b.put_u16(*key);
                    b.put_u16(value.len() as u16);
                    b.put_bytes(value);
                }
            }
            RData::Ds {
                key_tag,
                algorithm,
                digest_type,
                digest,
            } => {
                b.put_u16(*key_tag);
                b.put_u8(*algorithm);
                b.put_u8(*digest_type);
                b.put_bytes(digest);
            }
            RData::Dnskey {
                flags,
                protocol,
                algorithm,
                public_key,
            } => {
                b.put_u16(*flags);
                b.put_u8(*protocol);
                b.put_u8(*algorithm);
                b.put_bytes(public_key);
            }
            RData::Rrsig(s) => {
                write_rrsig_fields(b, s);
                put_name(b, &s.signer_name);
                b.put_bytes(&s.signature);
            }
            RData::Nsec { next, types } => {
                put_name(b, next);
                types.write(b);
            }
            RData::Nsec3(n) => {
                b.put_u8(n.hash_algorithm);
                b.put_u8(n.flags);
                b.put_u16(n.iterations);
                put_char_string(b, rtype, &n.salt)?;
                if n.next_hashed_owner.is_empty() {
                    return Err(bad(rtype, "empty NSEC3 next hashed owner name"));
                }
                put_char_string(b, rtype, &n.next_hashed_owner)?;
                n.types.write(b);
            }
            RData::Nsec3Param {
                hash_algorithm,
                flags,
                iterations,
                salt,
            } => {
                b.put_u8(*hash_algorithm);
                b.put_u8(*flags);
                b.put_u16(*iterations);
                put_char_string(b, rtype, salt)?;
            }
            RData::Unknown { rtype, data } => {
                if *rtype == RType::OPT {
                    return Err(bad(*rtype, "OPT is not record data; use Message::edns"));
                }
                b.put_bytes(data);
            }
        }
        Ok(())
    }
}

/// The types whose embedded names canonical form lower-cases (RFC 4034 section 6.2 item 3 with
/// NSEC removed by RFC 6840 section 5.1): NS, MD, MF, CNAME, SOA, MB, MG, MR, PTR, MINFO, MX, RP,
/// AFSDB, RT, SIG, PX, NXT, NAPTR, KX, SRV, DNAME, A6, RRSIG.
pub fn lowercased_in_canonical_form(rtype: RType) -> bool {
    // NS MD MF CNAME SOA MB MG MR PTR MINFO MX RP AFSDB RT SIG PX NXT SRV NAPTR KX A6 DNAME RRSIG
    const LISTED: [u16; 23] = [
        2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15, 17, 18, 21, 24, 26, 30, 33, 35, 36, 38, 39, 46,
    ];
    LISTED.contains(&rtype.0)
}

/// The RRSIG fields before the signer's name (RFC 4034 section 3.1).
pub(crate) fn write_rrsig_fields(b: &mut MessageBuilder, s: &Rrsig) {
    b.put_u16(s.type_covered.0);
    b.put_u8(s.algorithm);
    b.put_u8(s.labels);
    b.put_u32(s.original_ttl);
    b.put_u32(s.expiration);
    b.put_u32(s.inception);
    b.put_u16(s.key_tag);
}

fn bad(rtype: RType, reason: &'static str) -> WireError {
    WireError::BadRdata {
        rtype: rtype.0,
        reason,
    }
}

fn put_char_string(b: &mut MessageBuilder, rtype: RType, s: &[u8]) -> Result<()> {
    if s.len() > 255 {
        return Err(bad(rtype, "character-string longer than 255 octets"));
    }
    b.put_u8(s.len() as u8);
    b.put_bytes(s);
    Ok(())
}

/// Checks one SvcParam value against its key's format (RFC 9460 section 7). Unknown keys (and ECH,
/// whose ECHConfigList is opaque to us) take any octets.
pub fn check_svc_param(key: u16, value: &[u8]) -> std::result::Result<(), &'static str> {
    if value.len() > u16::MAX as usize {
        return Err("SvcParamValue longer than 65535 octets");
    }
    match key {
        svc_key::MANDATORY if value.is_empty() || value.len() % 2 != 0 => {
            Err("mandatory SvcParam is not a non-empty list of keys")
        }
        svc_key::ALPN => {
            if value.is_empty() {
                return Err("empty alpn SvcParam");
            }
            let mut rest = value;
            while let Some((&len, tail)) = rest.split_first() {
                let len = len as usize;
                if len == 0 || len > tail.len() {
                    return Err("malformed alpn-id in alpn SvcParam");
                }
                rest = &tail[len..];
            }
            Ok(())
        }
        svc_key::NO_DEFAULT_ALPN if !value.is_empty() => {
            Err("no-default-alpn SvcParam has a value")
        }
        svc_key::PORT if value.len() != 2 => Err("port SvcParam is not 2 octets"),
        svc_key::IPV4HINT if value.is_empty() || value.len() % 4 != 0 => {
            Err("ipv4hint SvcParam is not a non-empty list of IPv4 addresses")
        }
        svc_key::IPV6HINT if value.is_empty() || value.len() % 16 != 0 => {
            Err("ipv6hint SvcParam is not a non-empty list of IPv6 addresses")
        }
        _ => Ok(()),
    }
}

/// A sub-reader with the record type attached, so every failure becomes a [`WireError::BadRdata`]
/// that says what was wrong.
struct Rd<'r, 'a> {
    r: &'r mut Reader<'a>,
    rtype: RType,
}

impl<'a> Rd<'_, 'a> {
    fn short(&self) -> WireError {
        bad(self.rtype, "record data too short")
    }

    fn u8(&mut self) -> Result<u8> {
        self.r.u8().map_err(|_| self.short())
    }

    fn u16(&mut self) -> Result<u16> {
        self.r.u16().map_err(|_| self.short())
    }

    fn u32(&mut self) -> Result<u32> {
        self.r.u32().map_err(|_| self.short())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.r.take(n).map_err(|_| self.short())
    }

    fn rest(&mut self) -> Box<[u8]> {
        self.r.take_rest().into()
    }

    /// A length octet and that many octets.
    fn char_string(&mut self) -> Result<&'a [u8]> {
        let len = self.u8()? as usize;
        self.r
            .take(len)
            .map_err(|_| bad(self.rtype, "character-string runs past the record data"))
    }

    /// A name, compressed only when `compressed` (the RFC 3597 section 4 well-known types).
    fn name(&mut self, compressed: bool) -> Result<Name> {
        let res = if compressed {
            Name::read(self.r)
        } else {
            Name::read_uncompressed(self.r)
        };
        res.map_err(|e| {
            let reason = match e {
                WireError::BadPointer(_) if !compressed => {
                    "compressed name where compression is not allowed"
                }
                WireError::BadPointer(_) => "bad compression pointer in name",
                WireError::PointerLoop => "too many compression pointers in name",
                WireError::LabelTooLong => "label longer than 63 octets in name",
                WireError::NameTooLong => "name longer than 255 octets",
                WireError::BadLabelType(_) => "unsupported label type in name",
                WireError::ShortRead { .. } => "name runs past the record data",
                _ => "malformed name",
            };
            bad(self.rtype, reason)
        })
    }
}

fn read_typed(rtype: RType, r: &mut Reader<'_>) -> Result<RData> {
    let mut rd = Rd { r, rtype };
    let data = match rtype {
        RType::A => {
            let b = rd.take(4)?;
            RData::A(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        RType::AAAA => {
            let mut a = [0u8; 16];
            a.copy_from_slice(rd.take(16)?);
            RData::Aaaa(Ipv6Addr::from(a))
        }
        RType::NS => RData::Ns(rd.name(true)?),
        RType::CNAME => RData::Cname(rd.name(true)?),
        RType::PTR => RData::Ptr(rd.name(true)?),
        // RFC 6672 says DNAME targets are not compressed, but old servers did; accept on read.
        RType::DNAME => RData::Dname(rd.name(true)?),
        RType::SOA => RData::Soa(Soa {
            mname: rd.name(true)?,
            rname: rd.name(true)?,
            serial: rd.u32()?,
            refresh: rd.u32()?,
            retry: rd.u32()?,
            expire: rd.u32()?,
            minimum: rd.u32()?,
        }),
        RType::MX => RData::Mx {
            preference: rd.u16()?,
            exchange: rd.name(true)?,
        },
        RType::TXT => {
            if rd.r.is_empty() {
                return Err(bad(rtype, "TXT needs at least one character-string"));
            }
            let mut strings = Vec::new();
            while !rd.r.is_empty() {
                strings.push(rd.char_string()?.into());
            }
            RData::Txt(strings)
        }
        // RFC 2782 forbids compressing the target, but RFC 3597 section 4 allows decompressing it.
        RType::SRV => RData::Srv {
            priority: rd.u16()?,
            weight: rd.u16()?,
            port: rd.u16()?,
            target: rd.name(true)?,
        },
        RType::CAA => {
            let flags = rd.u8()?;
            let tag = rd.char_string()?;
            if tag.is_empty() {
                return Err(bad(rtype, "empty CAA tag"));
            }
            RData::Caa {
                flags,
                tag: tag.into(),
                value: rd.rest(),
            }
        }
        RType::SVCB | RType::HTTPS => {
            let priority = rd.u16()?;
            // RFC 9460 section 2.2 forbids compressing the target, but hickory-proto 0.24 (and so
            // hickory-dns servers) compress it; reject that and a browser's HTTPS query to such a
            // zone would fail. Decompressing is harmless (the name is written back uncompressed
            // and canonical form never compresses), so accept it like SRV and DNAME.
            let target = rd.name(true)?;
            let mut params = Vec::new();
            let mut last: Option<u16> = None;
            while !rd.r.is_empty() {
                let key = rd.u16()?;
                if last.is_some_and(|k| key <= k) {
                    return Err(bad(rtype, "SvcParamKeys not in strictly increasing order"));
                }
                last = Some(key);
                let len = rd.u16()? as usize;
                let value =
                    rd.r.take(len)
                        .map_err(|_| bad(rtype, "SvcParamValue runs past the record data"))?;
                check_svc_param(key, value).map_err(|reason| bad(rtype, reason))?;
                params.push((key, value.into()));
            }
            let svcb = Svcb {
                priority,
                target,
                params,
            };
            if rtype == RType::SVCB {
                RData::Svcb(svcb)
            } else {
                RData::Https(svcb)
            }
        }
        RType::DS => RData::Ds {
            key_tag: rd.u16()?,
            algorithm: rd.u8()?,
            digest_type: rd.u8()?,
            digest: rd.rest(),
        },
        RType::DNSKEY => RData::Dnskey {
            flags: rd.u16()?,
            protocol: rd.u8()?,
            algorithm: rd.u8()?,
            public_key: rd.rest(),
        },
        RType::RRSIG => RData::Rrsig(Rrsig {
            type_covered: RType(rd.u16()?),
            algorithm: rd.u8()?,
            labels: rd.u8()?,
            original_ttl: rd.u32()?,
            expiration: rd.u32()?,
            inception: rd.u32()?,
            key_tag: rd.u16()?,
            signer_name: rd.name(false)?,
            signature: rd.rest(),
        }),
        RType::NSEC => RData::Nsec {
            next: rd.name(false)?,
            types: TypeBitmap::read(rtype, rd.r)?,
        },
        RType::NSEC3 => {
            let hash_algorithm = rd.u8()?;
            let flags = rd.u8()?;
            let iterations = rd.u16()?;
            let salt = rd.char_string()?.into();
            let next_hashed_owner: Box<[u8]> = rd.char_string()?.into();
            if next_hashed_owner.is_empty() {
                return Err(bad(rtype, "empty NSEC3 next hashed owner name"));
            }
            RData::Nsec3(Nsec3 {
                hash_algorithm,
                flags,
                iterations,
                salt,
                next_hashed_owner,
                types: TypeBitmap::read(rtype, rd.r)?,
            })
        }
        RType::NSEC3PARAM => RData::Nsec3Param {
            hash_algorithm: rd.u8()?,
            flags: rd.u8()?,
            iterations: rd.u16()?,
            salt: rd.char_string()?.into(),
        },
        _ => RData::Unknown {
            rtype,
            data: rd.rest(),
        },
    };
    Ok(data)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::message::{Message, Record};
    use crate::wire::types::Class;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    /// One record of every variant, with awkward values where the format has corners.
    pub(crate) fn samples() -> Vec<Record> {
        let owner = n("Host.Example.com");
        let svcb = Svcb {
            priority: 1,
            target: n("svc.Example.com"),
            params: vec![
                (svc_key::MANDATORY, Box::new([0, 1, 0, 3])),
                (svc_key::ALPN, b"\x02h2\x05h3,\\x".to_vec().into()),
                (svc_key::NO_DEFAULT_ALPN, Box::new([])),
                (svc_key::PORT, Box::new([1, 187])),
                (svc_key::IPV4HINT, Box::new([192, 0, 2, 1, 192, 0, 2, 2])),
                (svc_key::ECH, Box::new([0xfe, 0x0d, 0, 1, 2])),
                (
                    svc_key::IPV6HINT,
                    Box::new([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                ),
                (65000, b"opaque \"value\"\x00".to_vec().into()),
            ],
        };
        let data = vec![
            RData::A(Ipv4Addr::new(192, 0, 2, 1)),
            RData::Aaaa("2001:db8::1".parse().unwrap()),
            RData::Ns(n("ns1.Example.com")),
            RData::Cname(n("other.example.com")),
            RData::Dname(n("example.net")),
            RData::Ptr(n("host.example.com")),
            RData::Soa(Soa {
                mname: n("ns1.example.com"),
                rname: n("hostmaster.example.com"),
                serial: 2024010101,
                refresh: 7200,
                retry: 3600,
                expire: 1209600,
                minimum: 300,
            }),
            RData::Mx {
                preference: 10,
                exchange: n("mail.example.com"),
            },
            RData::Txt(vec![
                b"v=spf1 -all".to_vec().into(),
                Box::new([]),
                b"quote\" back\\slash \x00\xff".to_vec().into(),
                vec![b'x'; 255].into(),
            ]),
            RData::Srv {
                priority: 0,
                weight: 5,
                port: 5060,
                target: n("sip.example.com"),
            },
            RData::Caa {
                flags: 128,
                tag: b"issue".to_vec().into(),
                value: b"letsencrypt.org; validationmethods=dns-01".to_vec().into(),
            },
            RData::Svcb(svcb.clone()),
            RData::Https(Svcb {
                priority: 0,
                target: n("alias.example.net"),
                params: vec![],
            }),
            RData::Ds {
                key_tag: 60485,
                algorithm: 5,
                digest_type: 1,
                digest: vec![0x2B; 20].into(),
            },
            RData::Dnskey {
                flags: 257,
                protocol: 3,
                algorithm: 8,
                public_key: (0..=255u8).collect::<Vec<_>>().into(),
            },
            RData::Rrsig(Rrsig {
                type_covered: RType::A,
                algorithm: 13,
                labels: 3,
                original_ttl: 3600,
                expiration: 1_900_000_000,
                inception: 1_700_000_000,
                key_tag: 4242,
                signer_name: n("Example.com"),
                signature: vec![7; 64].into(),
            }),
            RData::Nsec {
                next: n("\\000.Host.example.com"),
                types: TypeBitmap::new([
                    RType::A,
                    RType::MX,
                    RType::RRSIG,
                    RType::NSEC,
                    RType::CAA,
                    RType(65535),
                ]),
            },
            RData::Nsec {
                next: n("example.com"),
                types: TypeBitmap::default(),
            },
            RData::Nsec3(Nsec3 {
                hash_algorithm: 1,
                flags: 1,
                iterations: 12,
                salt: Box::new([0xaa, 0xbb, 0xcc, 0xdd]),
                next_hashed_owner: (0..20u8).collect::<Vec<_>>().into(),
                types: TypeBitmap::new([RType::A, RType::RRSIG]),
            }),
            RData::Nsec3(Nsec3 {
                hash_algorithm: 1,
                flags: 0,
                iterations: 0,
                salt: Box::new([]),
                next_hashed_owner: Box::new([0xff]),
                types: TypeBitmap::default(),
            }),
            RData::Nsec3Param {
                hash_algorithm: 1,
                flags: 0,
                iterations: 0,
                salt: Box::new([]),
            },
            RData::Unknown {
                rtype: RType(65280),
                data: Box::new([1, 2, 3, 0xC0, 12]),
            },
            RData::Unknown {
                rtype: RType::HINFO,
                data: Box::new([]),
            },
        ];
        data.into_iter()
            .enumerate()
            .map(|(i, d)| Record::new(owner.clone(), 300 + i as u32, d))
            .collect()
    }

    fn in_message(records: Vec<Record>) -> Message {
        let mut m = Message::query(n("host.example.com"), RType::ANY);
        m.header.response = true;
        m.answers = records;
        m
    }

    /// `m` with the header counts a parse of it would have.
    fn counted(mut m: Message) -> Message {
        m.header.qdcount = m.questions.len() as u16;
        m.header.ancount = m.answers.len() as u16;
        m.header.nscount = m.authority.len() as u16;
        m.header.arcount = (m.additional.len() + usize::from(m.edns.is_some())) as u16;
        m
    }

    #[test]
    fn every_type_round_trips_through_a_message() {
        for rec in samples() {
            let m = in_message(vec![rec.clone(), rec.clone()]);
            let bytes = m.encode().unwrap();
            let back = Message::parse(&bytes).unwrap_or_else(|e| panic!("{rec:?}: {e}"));
            assert_eq!(back, counted(m), "{:?}", rec.rtype());
            // The uncompressed form is what `from_generic` accepts.
            let mut b = MessageBuilder::uncompressed();
            rec.data.write(&mut b).unwrap();
            assert_eq!(
                RData::from_generic(rec.rtype(), b.as_slice()).unwrap(),
                rec.data
            );
        }
        // All of them at once, in every section.
        let mut m = in_message(samples());
        m.authority = samples();
        m.additional = samples();
        let bytes = m.encode().unwrap();
        assert_eq!(Message::parse(&bytes).unwrap(), counted(m));
    }

    /// Bytes of a response with one answer record `owner=example.com` (at offset 12).
    fn raw_record(rtype: RType, rdata: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0];
        v.extend_from_slice(n("example.com").as_wire());
        v.extend_from_slice(&rtype.0.to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        v.extend_from_slice(rdata);
        v
    }

    fn parse_one(rtype: RType, rdata: &[u8]) -> Result<RData> {
        Message::parse(&raw_record(rtype, rdata)).map(|m| m.answers[0].data.clone())
    }

    fn assert_bad(rtype: RType, rdata: &[u8], why: &str) {
        match parse_one(rtype, rdata) {
            Err(WireError::BadRdata { rtype: t, reason }) => {
                assert_eq!(t, rtype.0, "{why}");
                assert!(!reason.is_empty());
            }
            other => panic!("{why}: expected BadRdata, got {other:?}"),
        }
    }

    #[test]
    fn compression_follows_rfc3597() {
        // Well-known types are decompressed on read and compressed on write.
        let mx = parse_one(RType::MX, &[0, 5, 4, b'm', b'a', b'i', b'l', 0xC0, 12]).unwrap();
        assert_eq!(
            mx,
            RData::Mx {
                preference: 5,
                exchange: n("mail.example.com")
            }
        );
        let m = in_message(vec![Record::new(n("example.com"), 1, mx)]);
        let bytes = m.encode().unwrap();
        // The question "host.example.com" starts at 12, so "example.com" is at 17.
        assert!(bytes.ends_with(&[0, 9, 0, 5, 4, b'm', b'a', b'i', b'l', 0xC0, 17]));
        // DNAME and SRV are decompressed leniently but written in full.
        assert_eq!(
            parse_one(RType::DNAME, &[0xC0, 12]).unwrap(),
            RData::Dname(n("example.com"))
        );
        let srv = parse_one(RType::SRV, &[0, 1, 0, 2, 0, 3, 0xC0, 12]).unwrap();
        let m = in_message(vec![Record::new(n("example.com"), 1, srv)]);
        assert!(m.encode().unwrap().ends_with(n("example.com").as_wire()));
        // Newer types must not be compressed, on read or on write.
        let mut rrsig = vec![0, 1, 8, 2, 0, 0, 0, 60, 0, 0, 0, 2, 0, 0, 0, 1, 0, 7];
        rrsig.extend_from_slice(&[0xC0, 12]);
        rrsig.extend_from_slice(&[1, 2, 3]);
        assert_bad(RType::RRSIG, &rrsig, "compressed RRSIG signer");
        assert_bad(RType::NSEC, &[0xC0, 12, 0, 1, 0x40], "compressed NSEC next");
        // SVCB targets are read leniently (hickory compresses them) but written in full.
        let svcb = parse_one(RType::SVCB, &[0, 1, 0xC0, 12]).unwrap();
        let m = in_message(vec![Record::new(n("example.com"), 1, svcb)]);
        assert!(m.encode().unwrap().ends_with(n("example.com").as_wire()));
        let rec = Record::new(
            n("example.com"),
            1,
            RData::Nsec {
                next: n("example.com"),
                types: TypeBitmap::new([RType::A]),
            },
        );
        let bytes = in_message(vec![rec]).encode().unwrap();
        assert!(bytes.ends_with(&[
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0x40
        ]));
    }

    #[test]
    fn malformed_rdata_is_rejected() {
        assert_bad(RType::A, &[1, 2, 3], "short A");
        assert_bad(RType::A, &[1, 2, 3, 4, 5], "long A");
        assert_bad(RType::AAAA, &[0; 15], "short AAAA");
        assert_bad(RType::AAAA, &[0; 17], "long AAAA");
        assert_bad(RType::NS, &[], "empty NS");
        assert_bad(RType::NS, &[3, b'a', b'b'], "NS name past the data");
        assert_bad(RType::NS, &[0, 0], "NS with trailing octet");
        assert_bad(RType::CNAME, &[0xC0, 200], "forward pointer");
        assert_bad(RType::CNAME, &[0x80, 1], "bad label type");
        assert_bad(RType::MX, &[0], "short MX");
        assert_bad(RType::MX, &[0, 1, 0, 9], "MX with trailing data");
        assert_bad(RType::SOA, &[0, 0, 0, 0, 0, 1], "short SOA");
        let mut soa = vec![0, 0];
        soa.extend_from_slice(&[0; 21]);
        assert_bad(RType::SOA, &soa, "SOA with trailing data");
        assert_bad(RType::TXT, &[], "empty TXT");
        assert_bad(RType::TXT, &[5, b'a'], "TXT string past the data");
        assert_bad(RType::TXT, &[1, b'a', 2], "second TXT string past the data");
        assert_bad(RType::SRV, &[0, 1, 0, 2, 0, 3], "SRV without target");
        assert_bad(RType::CAA, &[0, 0], "empty CAA tag");
        assert_bad(RType::CAA, &[0, 9, b'i'], "CAA tag past the data");
        assert_bad(RType::DS, &[0, 1, 8], "short DS");
        assert_bad(RType::DNSKEY, &[1, 1, 3], "short DNSKEY");
        assert_bad(RType::RRSIG, &[0; 17], "short RRSIG");
        assert_bad(
            RType::NSEC3PARAM,
            &[1, 0, 0, 0, 2, 0xaa],
            "salt past the data",
        );
        assert_bad(
            RType::NSEC3PARAM,
            &[1, 0, 0, 0, 0, 1],
            "NSEC3PARAM with trailing data",
        );
        assert_bad(RType::NSEC3, &[1, 0, 0, 0, 0, 0], "empty NSEC3 hash");
        assert_bad(
            RType::NSEC3,
            &[1, 0, 0, 0, 0, 3, 1],
            "NSEC3 hash past the data",
        );
        assert_bad(RType::NSEC3, &[1, 0, 0, 0], "NSEC3 without salt");
    }

    #[test]
    fn bad_type_bitmaps_are_rejected() {
        let nsec = |bitmap: &[u8]| {
            let mut v = vec![0];
            v.extend_from_slice(bitmap);
            v
        };
        assert_eq!(
            parse_one(RType::NSEC, &nsec(&[0, 1, 0x40, 1, 1, 0x80])).unwrap(),
            RData::Nsec {
                next: Name::root(),
                types: TypeBitmap(vec![RType::A, RType(256)]),
            }
        );
        assert_bad(RType::NSEC, &nsec(&[0, 0]), "zero-length window");
        assert_bad(RType::NSEC, &nsec(&[0, 33]), "window longer than 32");
        assert_bad(RType::NSEC, &nsec(&[0, 2, 0x40]), "window past the data");
        assert_bad(RType::NSEC, &nsec(&[0, 2, 0x40, 0]), "trailing zero octet");
        assert_bad(RType::NSEC, &nsec(&[0, 1, 0]), "empty window");
        assert_bad(
            RType::NSEC,
            &nsec(&[1, 1, 0x40, 0, 1, 0x40]),
            "decreasing windows",
        );
        assert_bad(
            RType::NSEC,
            &nsec(&[0, 1, 0x40, 0, 1, 0x20]),
            "repeated window",
        );
        assert_bad(RType::NSEC, &nsec(&[0]), "window without length");
        assert_bad(
            RType::NSEC3,
            &[1, 0, 0, 0, 0, 1, 0xff, 0, 0],
            "NSEC3 bad window",
        );
        // Written sorted and without duplicates whatever the order given.
        let rec = Record::new(
            Name::root(),
            0,
            RData::Nsec {
                next: Name::root(),
                types: TypeBitmap(vec![RType(256), RType::A, RType::A]),
            },
        );
        let bytes = in_message(vec![rec]).encode().unwrap();
        assert!(bytes.ends_with(&[0, 1, 0x40, 1, 1, 0x80]));
    }

    #[test]
    fn svcb_params_are_checked() {
        let svcb = |params: &[u8]| {
            let mut v = vec![0, 1, 0];
            v.extend_from_slice(params);
            v
        };
        assert!(parse_one(RType::HTTPS, &svcb(&[0, 3, 0, 2, 1, 187])).is_ok());
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 3, 0, 2, 1, 187, 0, 3, 0, 2, 0, 80]),
            "repeated key",
        );
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 3, 0, 2, 1, 187, 0, 1, 0, 3, 2, b'h', b'2']),
            "decreasing keys",
        );
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 3, 0, 3, 1, 187, 0]),
            "3-octet port",
        );
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 4, 0, 5, 1, 2, 3, 4, 5]),
            "bad ipv4hint",
        );
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 6, 0, 4, 1, 2, 3, 4]),
            "bad ipv6hint",
        );
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 1, 0, 3, 3, b'h', b'2']),
            "alpn-id past the value",
        );
        assert_bad(RType::HTTPS, &svcb(&[0, 1, 0, 1, 0]), "empty alpn-id");
        assert_bad(
            RType::HTTPS,
            &svcb(&[0, 2, 0, 1, 0]),
            "no-default-alpn with a value",
        );
        assert_bad(RType::HTTPS, &svcb(&[0, 0, 0, 1, 0]), "odd mandatory");
        assert_bad(RType::SVCB, &svcb(&[0, 9, 0, 5, 1]), "value past the data");
        assert_bad(RType::SVCB, &svcb(&[0]), "truncated key");
        assert_bad(RType::SVCB, &[0], "no priority");
    }

    #[test]
    fn writers_refuse_what_readers_would_reject() {
        let write = |d: RData| {
            let mut b = MessageBuilder::new();
            d.write(&mut b)
        };
        assert!(write(RData::Txt(vec![])).is_err());
        assert!(write(RData::Txt(vec![vec![0; 256].into()])).is_err());
        assert!(write(RData::Caa {
            flags: 0,
            tag: Box::new([]),
            value: Box::new([])
        })
        .is_err());
        let svcb = |params: Vec<(u16, Box<[u8]>)>| {
            RData::Svcb(Svcb {
                priority: 1,
                target: Name::root(),
                params,
            })
        };
        assert!(write(svcb(vec![(3, Box::new([0, 1])), (1, Box::new([1, b'a']))])).is_err());
        assert!(write(svcb(vec![(3, Box::new([0]))])).is_err());
        assert!(write(RData::Nsec3Param {
            hash_algorithm: 1,
            flags: 0,
            iterations: 0,
            salt: vec![0; 256].into()
        })
        .is_err());
        assert!(write(RData::Unknown {
            rtype: RType::OPT,
            data: Box::new([])
        })
        .is_err());
        // A record whose data is too long for RDLENGTH.
        let rec = Record::new(
            Name::root(),
            0,
            RData::Unknown {
                rtype: RType(65280),
                data: vec![0; 70000].into(),
            },
        );
        assert!(in_message(vec![rec]).encode().is_err());
    }

    #[test]
    fn generic_data_must_be_in_uncompressed_form() {
        // A name with a pointer back into the data itself: RNAME points at MNAME's last label
        // (offset 13, past the 12 octets where no name may start). It reads, and is refused for
        // not being the uncompressed form.
        let mut soa_with_pointer = vec![12];
        soa_with_pointer.extend_from_slice(b"abcdefghijkl");
        soa_with_pointer.extend_from_slice(&[1, b'a', 0, 0xC0, 13]);
        soa_with_pointer
            .extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]);
        let err = RData::from_generic(RType::SOA, &soa_with_pointer).unwrap_err();
        assert!(err.to_string().contains("uncompressed form"), "{err}");
        assert!(RData::from_generic(RType::A, &[1, 2, 3]).is_err());
        assert!(RData::from_generic(RType::OPT, &[]).is_err());
        assert_eq!(
            RData::from_generic(RType::A, &[10, 0, 0, 1]).unwrap(),
            RData::A(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            RData::from_generic(RType(65000), &[9]).unwrap(),
            RData::Unknown {
                rtype: RType(65000),
                data: Box::new([9])
            }
        );
        let _ = Class::IN;
    }
}
