//! IANA code points: record types, classes, opcodes and response codes.
//!
//! Each is a newtype over its number so that unknown values round-trip (RFC 3597) while known ones
//! get names in logs and presentation format (`TYPE65280` for the rest, as RFC 3597 section 5).

use std::fmt;
use std::str::FromStr;

use super::error::WireError;

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident($int:ty), $prefix:literal, { $($(#[$cdoc:meta])* $konst:ident = $val:expr, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        impl $name {
            $($(#[$cdoc])* pub const $konst: $name = $name($val);)*

            /// The mnemonic, if this code point has one.
            pub fn mnemonic(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.mnemonic() {
                    Some(m) => f.write_str(m),
                    None => write!(f, concat!($prefix, "{}"), self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = WireError;

            fn from_str(s: &str) -> Result<Self, WireError> {
                $(if s.eq_ignore_ascii_case($text) { return Ok($name($val)); })*
                let upper = s.to_ascii_uppercase();
                if let Some(num) = upper.strip_prefix($prefix) {
                    if let Ok(v) = num.parse::<$int>() {
                        return Ok($name(v));
                    }
                }
                Err(WireError::BadText(format!(concat!("unknown ", stringify!($name), " {:?}"), s)))
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                $name(v)
            }
        }
    };
}

code_type!(
    /// A resource record type (RFC 1035 section 3.2.2 and the IANA registry).
    RType(u16), "TYPE", {
    A = 1, "A";
    NS = 2, "NS";
    CNAME = 5, "CNAME";
    SOA = 6, "SOA";
    PTR = 12, "PTR";
    HINFO = 13, "HINFO";
    MX = 15, "MX";
    TXT = 16, "TXT";
    AAAA = 28, "AAAA";
    SRV = 33, "SRV";
    NAPTR = 35, "NAPTR";
    DNAME = 39, "DNAME";
    OPT = 41, "OPT";
    DS = 43, "DS";
    SSHFP = 44, "SSHFP";
    RRSIG = 46, "RRSIG";
    NSEC = 47, "NSEC";
    DNSKEY = 48, "DNSKEY";
    NSEC3 = 50, "NSEC3";
    NSEC3PARAM = 51, "NSEC3PARAM";
    TLSA = 52, "TLSA";
    CDS = 59, "CDS";
    CDNSKEY = 60, "CDNSKEY";
    SVCB = 64, "SVCB";
    HTTPS = 65, "HTTPS";
    IXFR = 251, "IXFR";
    AXFR = 252, "AXFR";
    ANY = 255, "ANY";
    CAA = 257, "CAA";
});

impl RType {
    /// Meta types and QTYPE-only values (RFC 6895 section 3.1) that never appear as stored data.
    pub fn is_meta(self) -> bool {
        matches!(self.0, 41 | 128..=255)
    }
}

code_type!(
    /// A record class.
    Class(u16), "CLASS", {
    IN = 1, "IN";
    CH = 3, "CH";
    HS = 4, "HS";
    NONE = 254, "NONE";
    ANY = 255, "ANY";
});

code_type!(
    /// An operation code (RFC 1035 section 4.1.1, RFC 6895).
    Opcode(u8), "OPCODE", {
    QUERY = 0, "QUERY";
    IQUERY = 1, "IQUERY";
    STATUS = 2, "STATUS";
    NOTIFY = 4, "NOTIFY";
    UPDATE = 5, "UPDATE";
});

code_type!(
    /// A response code, 12 bits wide once EDNS supplies the upper 8 (RFC 6891 section 6.1.3).
    Rcode(u16), "RCODE", {
    NOERROR = 0, "NOERROR";
    FORMERR = 1, "FORMERR";
    SERVFAIL = 2, "SERVFAIL";
    NXDOMAIN = 3, "NXDOMAIN";
    NOTIMP = 4, "NOTIMP";
    REFUSED = 5, "REFUSED";
    YXDOMAIN = 6, "YXDOMAIN";
    YXRRSET = 7, "YXRRSET";
    NXRRSET = 8, "NXRRSET";
    NOTAUTH = 9, "NOTAUTH";
    NOTZONE = 10, "NOTZONE";
    BADVERS = 16, "BADVERS";
    BADCOOKIE = 23, "BADCOOKIE";
});

impl Rcode {
    /// The low 4 bits, which live in the header.
    pub fn low(self) -> u8 {
        (self.0 & 0x0F) as u8
    }

    /// The high 8 bits, which live in the OPT record's TTL field.
    pub fn high(self) -> u8 {
        (self.0 >> 4) as u8
    }

    /// Joins the header's 4 bits and OPT's 8 bits.
    pub fn from_parts(low: u8, high: u8) -> Rcode {
        Rcode(((high as u16) << 4) | (low as u16 & 0x0F))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!("aaaa".parse::<RType>().unwrap(), RType::AAAA);
        assert_eq!(RType(65280).to_string(), "TYPE65280");
        assert_eq!("TYPE65280".parse::<RType>().unwrap(), RType(65280));
        assert_eq!("type1".parse::<RType>().unwrap(), RType::A);
        assert!("BOGUS".parse::<RType>().is_err());
        assert_eq!(Class::IN.to_string(), "IN");
        assert_eq!(Rcode::from_parts(0, 1), Rcode::BADVERS);
        assert_eq!(Rcode::BADVERS.low(), 0);
        assert_eq!(Rcode::BADVERS.high(), 1);
    }
}
