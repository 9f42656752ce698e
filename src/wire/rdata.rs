//! Typed record data (RFC 1035 section 3.3 and the RFCs of each type), with RFC 3597 opaque data for
//! everything else.
//!
//! Names inside RDATA are decompressed on read only for the types RFC 3597 section 4 calls well-known
//! (NS, CNAME, SOA, PTR, MX, plus DNAME/SRV leniency on read) and compressed on write only for the
//! RFC 1035 types; every other type writes its names uncompressed. Canonical form (RFC 4034 section
//! 6.2, RFC 6840 section 5.1) lower-cases the embedded names of the types listed there.

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

/// SVCB and HTTPS data (RFC 9460); parameters kept as (key, value) in wire order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svcb {
    pub priority: u16,
    pub target: Name,
    pub params: Vec<(u16, Box<[u8]>)>,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeBitmap(pub Vec<RType>);

/// The data of one resource record.
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
        let _ = (rtype, r);
        Err(WireError::BadRdata {
            rtype: rtype.0,
            reason: "not yet implemented",
        })
    }

    /// Appends the RDATA (not its length) to a message being built, compressing names only where
    /// RFC 3597 allows.
    pub fn write(&self, b: &mut MessageBuilder) -> Result<()> {
        let _ = b;
        Ok(())
    }
}
