//! Typed RDATA from presentation-format tokens, one arm per record type (RFC 1035 section 5.1 and
//! the RFCs of each type), plus RFC 3597's generic `\# length hex` form for any type. Separate
//! from the lexer, which knows nothing of record types, and from [`super::present`], which writes
//! the same forms back: the two directions of each type are easier to check side by side in
//! their own files than interleaved.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use base64::Engine;

use super::super::error::{Result, WireError};
use super::super::name::Name;
use super::super::rdata::{Nsec3, RData, Rrsig, Soa, Svcb, TypeBitmap};
use super::super::types::RType;
use super::base32hex::base32hex_decode;
use super::calendar::parse_time;
use super::lexer::{decode_char_string, hex_decode, parse_duration, parse_name};
use super::svcb::parse_svc_params;
use super::{text, BASE64};

/// Parses RDATA in presentation format for `rtype`, from its whitespace-separated tokens (quotes and
/// escapes still in place, as [`parse_record_line`](super::parse_record_line) splits them).
pub fn parse_rdata(rtype: RType, tokens: &[&str]) -> Result<RData> {
    if tokens.first() == Some(&"\\#") {
        return parse_generic(rtype, &tokens[1..]);
    }
    let mut a = Args {
        toks: tokens,
        pos: 0,
        rtype,
    };
    let data = match rtype {
        RType::A => {
            let t = a.next("IPv4 address")?;
            RData::A(
                Ipv4Addr::from_str(t)
                    .map_err(|_| a.err(format!("{t:?} is not an IPv4 address")))?,
            )
        }
        RType::AAAA => {
            let t = a.next("IPv6 address")?;
            RData::Aaaa(
                Ipv6Addr::from_str(t)
                    .map_err(|_| a.err(format!("{t:?} is not an IPv6 address")))?,
            )
        }
        RType::NS => RData::Ns(a.name("name server")?),
        RType::CNAME => RData::Cname(a.name("target name")?),
        RType::DNAME => RData::Dname(a.name("target name")?),
        RType::PTR => RData::Ptr(a.name("target name")?),
        RType::SOA => RData::Soa(Soa {
            mname: a.name("primary name server (MNAME)")?,
            rname: a.name("mailbox (RNAME)")?,
            serial: a.number("serial", u32::MAX)?,
            refresh: a.duration("refresh")?,
            retry: a.duration("retry")?,
            expire: a.duration("expire")?,
            minimum: a.duration("minimum")?,
        }),
        RType::MX => RData::Mx {
            preference: a.number("preference", u16::MAX)?,
            exchange: a.name("mail exchange")?,
        },
        RType::TXT => {
            if tokens.is_empty() {
                return Err(a.err("needs at least one string".into()));
            }
            let mut strings = Vec::with_capacity(tokens.len());
            while a.pos < tokens.len() {
                strings.push(a.char_string("string")?.into());
            }
            RData::Txt(strings)
        }
        RType::SRV => RData::Srv {
            priority: a.number("priority", u16::MAX)?,
            weight: a.number("weight", u16::MAX)?,
            port: a.number("port", u16::MAX)?,
            target: a.name("target")?,
        },
        RType::CAA => {
            let flags = a.number("flags", u8::MAX)?;
            let tag = a.char_string("tag")?;
            if tag.is_empty() {
                return Err(a.err("the tag must not be empty".into()));
            }
            let value = decode_char_string(a.next("value")?, usize::MAX)
                .map_err(|e| a.err(format!("value: {e}")))?;
            RData::Caa {
                flags,
                tag: tag.into(),
                value: value.into(),
            }
        }
        RType::SVCB | RType::HTTPS => {
            let svcb = Svcb {
                priority: a.number("priority", u16::MAX)?,
                target: a.name("target name")?,
                params: parse_svc_params(rtype, a.rest())?,
            };
            if rtype == RType::SVCB {
                RData::Svcb(svcb)
            } else {
                RData::Https(svcb)
            }
        }
        RType::DS => RData::Ds {
            key_tag: a.number("key tag", u16::MAX)?,
            algorithm: a.number("algorithm", u8::MAX)?,
            digest_type: a.number("digest type", u8::MAX)?,
            digest: a.hex_rest("digest")?.into(),
        },
        RType::DNSKEY => RData::Dnskey {
            flags: a.number("flags", u16::MAX)?,
            protocol: a.number("protocol", u8::MAX)?,
            algorithm: a.number("algorithm", u8::MAX)?,
            public_key: a.base64_rest("public key")?.into(),
        },
        RType::RRSIG => RData::Rrsig(Rrsig {
            type_covered: a.rtype("type covered")?,
            algorithm: a.number("algorithm", u8::MAX)?,
            labels: a.number("labels", u8::MAX)?,
            original_ttl: a.number("original TTL", u32::MAX)?,
            expiration: a.time("expiration")?,
            inception: a.time("inception")?,
            key_tag: a.number("key tag", u16::MAX)?,
            signer_name: a.name("signer's name")?,
            signature: a.base64_rest("signature")?.into(),
        }),
        RType::NSEC => RData::Nsec {
            next: a.name("next domain name")?,
            types: a.type_list()?,
        },
        RType::NSEC3 => {
            let hash_algorithm = a.number("hash algorithm", u8::MAX)?;
            let flags = a.number("flags", u8::MAX)?;
            let iterations = a.number("iterations", u16::MAX)?;
            let salt = a.salt()?;
            let t = a.next("next hashed owner name")?;
            let next_hashed_owner = base32hex_decode(t)
                .filter(|h| !h.is_empty() && h.len() <= 255)
                .ok_or_else(|| {
                    a.err(format!(
                        "next hashed owner name {t:?} is not base32hex (RFC 4648)"
                    ))
                })?;
            RData::Nsec3(Nsec3 {
                hash_algorithm,
                flags,
                iterations,
                salt,
                next_hashed_owner: next_hashed_owner.into(),
                types: a.type_list()?,
            })
        }
        RType::NSEC3PARAM => RData::Nsec3Param {
            hash_algorithm: a.number("hash algorithm", u8::MAX)?,
            flags: a.number("flags", u8::MAX)?,
            iterations: a.number("iterations", u16::MAX)?,
            salt: a.salt()?,
        },
        _ => {
            return Err(text(format!(
            "type {rtype} has no text form here: write its data as \\# <length> <hex> (RFC 3597)"
        )))
        }
    };
    a.end()?;
    Ok(data)
}

/// The RDATA tokens of one record, with the type for error messages.
struct Args<'t, 'a> {
    toks: &'t [&'a str],
    pos: usize,
    rtype: RType,
}

impl<'t, 'a> Args<'t, 'a> {
    fn err(&self, msg: String) -> WireError {
        text(format!("{} record: {msg}", self.rtype))
    }

    fn next(&mut self, what: &str) -> Result<&'a str> {
        let t = self
            .toks
            .get(self.pos)
            .ok_or_else(|| self.err(format!("missing {what}")))?;
        self.pos += 1;
        Ok(t)
    }

    fn rest(&mut self) -> &'t [&'a str] {
        let r = &self.toks[self.pos..];
        self.pos = self.toks.len();
        r
    }

    fn end(&self) -> Result<()> {
        match self.toks.get(self.pos) {
            Some(t) => Err(self.err(format!("unexpected {t:?} after the data"))),
            None => Ok(()),
        }
    }

    fn number<T: TryFrom<u64> + Into<u64>>(&mut self, what: &str, max: T) -> Result<T> {
        let t = self.next(what)?;
        let max = max.into();
        let v = if !t.is_empty() && t.len() <= 20 && t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse::<u64>().ok().filter(|v| *v <= max)
        } else {
            None
        };
        v.and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| self.err(format!("{what} {t:?} is not a number from 0 to {max}")))
    }

    fn duration(&mut self, what: &str) -> Result<u32> {
        let t = self.next(what)?;
        parse_duration(t).ok_or_else(|| {
            self.err(format!(
                "{what} {t:?} is not a number of seconds or a duration like 1h30m"
            ))
        })
    }

    fn name(&mut self, what: &str) -> Result<Name> {
        let t = self.next(what)?;
        parse_name(t, what).map_err(|e| match e {
            WireError::BadText(m) => self.err(m),
            e => e,
        })
    }

    fn rtype(&mut self, what: &str) -> Result<RType> {
        let t = self.next(what)?;
        RType::from_str(t).map_err(|_| self.err(format!("{what} {t:?} is not a record type")))
    }

    fn char_string(&mut self, what: &str) -> Result<Vec<u8>> {
        let t = self.next(what)?;
        decode_char_string(t, 255).map_err(|e| self.err(format!("{what} {t:?}: {e}")))
    }

    fn hex_rest(&mut self, what: &str) -> Result<Vec<u8>> {
        let joined: String = self.rest().concat();
        hex_decode(&joined).ok_or_else(|| self.err(format!("{what} is not hexadecimal")))
    }

    fn base64_rest(&mut self, what: &str) -> Result<Vec<u8>> {
        let joined: String = self.rest().concat();
        BASE64
            .decode(joined.as_bytes())
            .map_err(|e| self.err(format!("{what} is not base64 ({e})")))
    }

    fn salt(&mut self) -> Result<Box<[u8]>> {
        let t = self.next("salt")?;
        if t == "-" {
            return Ok(Box::default());
        }
        hex_decode(t)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(Vec::into_boxed_slice)
            .ok_or_else(|| {
                self.err(format!(
                    "salt {t:?} is not '-' or 1 to 255 octets of hexadecimal"
                ))
            })
    }

    fn time(&mut self, what: &str) -> Result<u32> {
        let t = self.next(what)?;
        parse_time(t).ok_or_else(|| {
            self.err(format!(
                "{what} {t:?} is not YYYYMMDDHHmmSS (1970 to 2106) or seconds since 1970"
            ))
        })
    }

    fn type_list(&mut self) -> Result<TypeBitmap> {
        let mut types = Vec::new();
        for t in self.rest() {
            let rt = RType::from_str(t)
                .map_err(|_| text(format!("{} record: {t:?} is not a record type", self.rtype)))?;
            types.push(rt);
        }
        Ok(TypeBitmap::new(types))
    }
}

/// `\# <length> <hex>...` (RFC 3597 section 5), turned into typed data where the type has a form.
fn parse_generic(rtype: RType, toks: &[&str]) -> Result<RData> {
    let ctx = |m: String| text(format!("{rtype} record (generic \\# form): {m}"));
    let (len_tok, hex) = toks
        .split_first()
        .ok_or_else(|| ctx("missing the data length after \\#".into()))?;
    let len: u16 = len_tok
        .parse()
        .ok()
        .filter(|_| len_tok.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| {
            ctx(format!(
                "length {len_tok:?} is not a number from 0 to 65535"
            ))
        })?;
    let data =
        hex_decode(&hex.concat()).ok_or_else(|| ctx("the data is not hexadecimal".into()))?;
    if data.len() != usize::from(len) {
        return Err(ctx(format!(
            "the length says {len} octets but the data has {}",
            data.len()
        )));
    }
    RData::from_generic(rtype, &data).map_err(|e| ctx(e.to_string()))
}
