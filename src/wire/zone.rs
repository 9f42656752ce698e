//! Presentation format (RFC 1035 section 5.1, RFC 3597 section 5): records as text, both ways.
//!
//! ```text
//!   Record --Display--> "mail.lan. 300 IN MX 10 mx.lan."       (logs, dumps: what dig prints)
//!   "router.lan A 192.168.1.1" --parse_record_line--> Record   (user-configured local records)
//! ```
//!
//! Display writes what dig writes: TXT and CAA values quoted with `\"`, `\\` and `\DDD` escapes,
//! base64 for keys and signatures (RFC 4034 sections 2.2 and 3.2), upper-case hex for digests,
//! base32hex without padding for NSEC3 hashes (RFC 5155 section 3.3, RFC 4648 section 7), RRSIG times
//! as `YYYYMMDDHHmmSS`, SVCB parameters as `key=value` (RFC 9460 appendix A) and RFC 3597's
//! `\# length hex` for every type without a typed form. Whatever Display writes,
//! [`parse_record_line`] reads back to the same record.
//!
//! The parser reads one record per line: `owner [TTL] [class] type rdata`, TTL and class in either
//! order and optional (class IN, the given default TTL). Every name is absolute whether or not it
//! ends in a dot. Quoted strings, escapes, `;` comments and `( )` grouping on the one line are
//! understood. Typed RDATA is accepted for A, AAAA, NS, CNAME, DNAME, PTR, SOA, MX, TXT, SRV, CAA,
//! SVCB, HTTPS, DS, DNSKEY, RRSIG, NSEC, NSEC3 and NSEC3PARAM, and the generic `\# len hex` form
//! for any type.
//!
//! Limitations: no `$ORIGIN`, `$TTL`, `$INCLUDE`, `@` or relative names (local records are written
//! in full); no owner inherited from a previous line; no multi-line records; algorithm mnemonics in
//! DS/DNSKEY/RRSIG must be given as numbers; TTLs above 2^31 - 1 (RFC 2181 section 8) are refused.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::error::{Result, WireError};
use super::message::Record;
use super::name::Name;
use super::rdata::{check_svc_param, svc_key, Nsec3, RData, Rrsig, Soa, Svcb, TypeBitmap};
use super::types::{Class, RType};

/// The largest TTL a zone line may give (RFC 2181 section 8).
pub const MAX_TTL: u32 = (1 << 31) - 1;

/// Standard base64 that writes padding and accepts input with or without it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses one record in presentation format, e.g. `router.lan. 300 IN A 192.168.1.1` or
/// `router.lan A 192.168.1.1`. `default_ttl` applies when the line gives none.
pub fn parse_record_line(line: &str, default_ttl: u32) -> Result<Record> {
    let tokens = tokenize(line)?;
    let Some((&owner, rest)) = tokens.split_first() else {
        return Err(text("empty record line"));
    };
    if owner.starts_with('$') {
        return Err(text(format!(
            "directive {owner:?} is not supported: write one complete record per line"
        )));
    }
    let name = parse_name(owner, "owner name")?;
    let mut ttl = None;
    let mut class = None;
    let mut i = 0;
    while i < rest.len().min(2) {
        let tok = rest[i];
        if ttl.is_none() && tok.starts_with(|c: char| c.is_ascii_digit()) {
            ttl = Some(parse_ttl(tok)?);
        } else if class.is_none() && is_class(tok) {
            class = Some(Class::from_str(tok)?);
        } else {
            break;
        }
        i += 1;
    }
    let Some(&type_tok) = rest.get(i) else {
        return Err(text(format!("record for {name} has no type")));
    };
    let rtype = RType::from_str(type_tok).map_err(|_| {
        text(format!(
            "unknown record type {type_tok:?} (use a mnemonic like A or TXT, or TYPEnnn)"
        ))
    })?;
    if rtype.is_meta() || rtype.0 == 0 {
        return Err(text(format!("{rtype} is not a type that can be stored")));
    }
    let data = parse_rdata(rtype, &rest[i + 1..])?;
    Ok(Record {
        name,
        class: class.unwrap_or(Class::IN),
        ttl: ttl.unwrap_or(default_ttl),
        data,
    })
}

/// Parses RDATA in presentation format for `rtype`, from its whitespace-separated tokens (quotes and
/// escapes still in place, as [`parse_record_line`] splits them).
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
                params: parse_svc_params(&mut a)?,
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

/// Writes the record as `owner TTL CLASS TYPE rdata`.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.name,
            self.ttl,
            self.class,
            self.rtype(),
            self.data
        )
    }
}

/// Writes the RDATA in presentation format, as dig prints it.
impl fmt::Display for RData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RData::A(a) => write!(f, "{a}"),
            RData::Aaaa(a) => write!(f, "{a}"),
            RData::Ns(n) | RData::Cname(n) | RData::Dname(n) | RData::Ptr(n) => write!(f, "{n}"),
            RData::Soa(s) => write!(
                f,
                "{} {} {} {} {} {} {}",
                s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
            ),
            RData::Mx {
                preference,
                exchange,
            } => write!(f, "{preference} {exchange}"),
            RData::Txt(strings) => {
                for (i, s) in strings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write_quoted(f, s)?;
                }
                Ok(())
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}"),
            RData::Caa { flags, tag, value } => {
                write!(f, "{flags} ")?;
                write_unquoted(f, tag)?;
                f.write_str(" ")?;
                write_quoted(f, value)
            }
            RData::Svcb(s) | RData::Https(s) => {
                write!(f, "{} {}", s.priority, s.target)?;
                for (key, value) in &s.params {
                    f.write_str(" ")?;
                    write_svc_param(f, *key, value)?;
                }
                Ok(())
            }
            RData::Ds {
                key_tag,
                algorithm,
                digest_type,
                digest,
            } => {
                write!(f, "{key_tag} {algorithm} {digest_type}")?;
                if !digest.is_empty() {
                    write!(f, " {}", Hex(digest))?;
                }
                Ok(())
            }
            RData::Dnskey {
                flags,
                protocol,
                algorithm,
                public_key,
            } => {
                write!(f, "{flags} {protocol} {algorithm}")?;
                if !public_key.is_empty() {
                    write!(f, " {}", BASE64.encode(public_key))?;
                }
                Ok(())
            }
            RData::Rrsig(s) => {
                write!(
                    f,
                    "{} {} {} {} {} {} {} {}",
                    s.type_covered,
                    s.algorithm,
                    s.labels,
                    s.original_ttl,
                    Time(s.expiration),
                    Time(s.inception),
                    s.key_tag,
                    s.signer_name
                )?;
                if !s.signature.is_empty() {
                    write!(f, " {}", BASE64.encode(&s.signature))?;
                }
                Ok(())
            }
            RData::Nsec { next, types } => {
                write!(f, "{next}")?;
                write_types(f, types)
            }
            RData::Nsec3(n) => {
                write!(
                    f,
                    "{} {} {} {} {}",
                    n.hash_algorithm,
                    n.flags,
                    n.iterations,
                    Salt(&n.salt),
                    base32hex_encode(&n.next_hashed_owner)
                )?;
                write_types(f, &n.types)
            }
            RData::Nsec3Param {
                hash_algorithm,
                flags,
                iterations,
                salt,
            } => write!(f, "{hash_algorithm} {flags} {iterations} {}", Salt(salt)),
            RData::Unknown { data, .. } => {
                write!(f, "\\# {}", data.len())?;
                if !data.is_empty() {
                    write!(f, " {}", Hex(data))?;
                }
                Ok(())
            }
        }
    }
}

/// Base32 with the "extended hex" alphabet (RFC 4648 section 7), upper case, without padding.
pub fn base32hex_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut acc: u16 = 0;
    let mut bits = 0;
    for &b in data {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[usize::from((acc >> bits) & 0x1F)] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[usize::from((acc << (5 - bits)) & 0x1F)] as char);
    }
    out
}

/// Decodes unpadded base32hex in either case. `None` for bad characters, an impossible length or
/// non-zero leftover bits (so that every accepted text encodes back to itself, up to case).
pub fn base32hex_decode(text: &str) -> Option<Vec<u8>> {
    if !matches!(text.len() % 8, 0 | 2 | 4 | 5 | 7) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u16 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'V' => c - b'A' + 10,
            b'a'..=b'v' => c - b'a' + 10,
            _ => return None,
        };
        acc = (acc << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Display helpers.

/// Upper-case hex.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// An NSEC3 salt: hex, or `-` when empty (RFC 5155 section 3.3).
struct Salt<'a>(&'a [u8]);

impl fmt::Display for Salt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("-")
        } else {
            Hex(self.0).fmt(f)
        }
    }
}

/// An RRSIG time as `YYYYMMDDHHmmSS` in UTC (RFC 4034 section 3.2).
struct Time(u32);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i64::from(self.0);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }
}

fn write_types(f: &mut fmt::Formatter<'_>, types: &TypeBitmap) -> fmt::Result {
    for t in &types.0 {
        write!(f, " {t}")?;
    }
    Ok(())
}

/// A character-string in double quotes: `"` and `\` escaped, anything outside printable ASCII as
/// `\DDD`.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &[u8]) -> fmt::Result {
    f.write_str("\"")?;
    for &c in s {
        match c {
            b'"' | b'\\' => write!(f, "\\{}", c as char)?,
            0x20..=0x7e => write!(f, "{}", c as char)?,
            _ => write!(f, "\\{c:03}")?,
        }
    }
    f.write_str("\"")
}

/// A character-string without quotes: also escapes what would end or split a token.
fn write_unquoted(f: &mut fmt::Formatter<'_>, s: &[u8]) -> fmt::Result {
    if s.is_empty() {
        return f.write_str("\"\"");
    }
    for &c in s {
        match c {
            b'"' | b'\\' | b';' | b'(' | b')' => write!(f, "\\{}", c as char)?,
            0x21..=0x7e => write!(f, "{}", c as char)?,
            _ => write!(f, "\\{c:03}")?,
        }
    }
    Ok(())
}

fn svc_key_name(key: u16) -> Option<&'static str> {
    Some(match key {
        svc_key::MANDATORY => "mandatory",
        svc_key::ALPN => "alpn",
        svc_key::NO_DEFAULT_ALPN => "no-default-alpn",
        svc_key::PORT => "port",
        svc_key::IPV4HINT => "ipv4hint",
        svc_key::ECH => "ech",
        svc_key::IPV6HINT => "ipv6hint",
        _ => return None,
    })
}

struct SvcKey(u16);

impl fmt::Display for SvcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match svc_key_name(self.0) {
            Some(n) => f.write_str(n),
            None => write!(f, "key{}", self.0),
        }
    }
}

/// One SvcParam as `key=value` (RFC 9460 appendix A). The value was checked by
/// [`check_svc_param`] when it was read; a value that was not is written as opaque octets.
fn write_svc_param(f: &mut fmt::Formatter<'_>, key: u16, value: &[u8]) -> fmt::Result {
    write!(f, "{}", SvcKey(key))?;
    if check_svc_param(key, value).is_err() {
        f.write_str("=")?;
        return write_quoted(f, value);
    }
    match key {
        svc_key::NO_DEFAULT_ALPN => Ok(()),
        svc_key::MANDATORY => {
            for (i, k) in value.chunks_exact(2).enumerate() {
                let sep = if i == 0 { "=" } else { "," };
                write!(f, "{sep}{}", SvcKey(u16::from_be_bytes([k[0], k[1]])))?;
            }
            Ok(())
        }
        svc_key::ALPN => {
            // Item-level escaping of ',' and '\' first, then character-string escaping.
            let mut list = Vec::with_capacity(value.len() + 8);
            let mut rest = value;
            while let Some((&len, tail)) = rest.split_first() {
                let (id, after) = tail.split_at(usize::from(len));
                if !list.is_empty() {
                    list.push(b',');
                }
                for &c in id {
                    if c == b',' || c == b'\\' {
                        list.push(b'\\');
                    }
                    list.push(c);
                }
                rest = after;
            }
            f.write_str("=")?;
            write_quoted(f, &list)
        }
        svc_key::PORT => write!(f, "={}", u16::from_be_bytes([value[0], value[1]])),
        svc_key::IPV4HINT => {
            for (i, a) in value.chunks_exact(4).enumerate() {
                let sep = if i == 0 { "=" } else { "," };
                write!(f, "{sep}{}", Ipv4Addr::new(a[0], a[1], a[2], a[3]))?;
            }
            Ok(())
        }
        svc_key::IPV6HINT => {
            for (i, a) in value.chunks_exact(16).enumerate() {
                let sep = if i == 0 { "=" } else { "," };
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                write!(f, "{sep}{}", Ipv6Addr::from(o))?;
            }
            Ok(())
        }
        svc_key::ECH => write!(f, "=\"{}\"", BASE64.encode(value)),
        _ => {
            f.write_str("=")?;
            write_quoted(f, value)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers.

fn text(msg: impl Into<String>) -> WireError {
    WireError::BadText(msg.into())
}

/// Splits a line into tokens at unquoted, unescaped whitespace; drops `;` comments and `(`/`)`.
/// Tokens keep their quotes and escapes.
fn tokenize(line: &str) -> Result<Vec<&str>> {
    let bytes = line.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() || c == b'(' || c == b')' {
            i += 1;
            continue;
        }
        if c == b';' {
            break;
        }
        let start = i;
        let mut quoted = false;
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                quoted = !quoted;
            } else if !quoted && (c.is_ascii_whitespace() || matches!(c, b';' | b'(' | b')')) {
                break;
            }
            i += 1;
        }
        if quoted {
            return Err(text(format!(
                "unterminated quoted string in {:?}",
                &line[start..]
            )));
        }
        let end = i.min(bytes.len());
        // `end` is a char boundary: it is the line's end or an ASCII delimiter (an escape only
        // skips into a multi-byte character, whose remaining bytes are not ASCII).
        tokens.push(line.get(start..end).ok_or_else(|| text("bad escape"))?);
    }
    Ok(tokens)
}

/// Decodes a character-string token: quotes removed, `\X` and `\DDD` escapes resolved.
fn decode_char_string(tok: &str, max: usize) -> std::result::Result<Vec<u8>, String> {
    let b = tok.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i += 1,
            b'\\' => {
                let rest = &b[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    let v = u32::from(rest[0] - b'0') * 100
                        + u32::from(rest[1] - b'0') * 10
                        + u32::from(rest[2] - b'0');
                    let v = u8::try_from(v).map_err(|_| format!("escape \\{v} is above 255"))?;
                    out.push(v);
                    i += 4;
                } else if let Some(&e) = rest.first() {
                    out.push(e);
                    i += 2;
                } else {
                    return Err("dangling backslash at the end".into());
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    if out.len() > max {
        return Err(format!(
            "{} octets is longer than {max}; split it into several quoted strings",
            out.len()
        ));
    }
    Ok(out)
}

fn parse_name(tok: &str, what: &str) -> Result<Name> {
    if tok == "@" {
        return Err(text(format!(
            "{what}: '@' (the zone origin) is not supported here; write the full name"
        )));
    }
    if tok.contains('"') {
        return Err(text(format!(
            "{what}: {tok:?} is quoted; names are written bare"
        )));
    }
    Name::from_str(tok).map_err(|e| text(format!("{what}: {tok:?} is not a domain name ({e})")))
}

fn is_class(tok: &str) -> bool {
    matches!(Class::from_str(tok), Ok(c) if c != Class::ANY && c != Class::NONE)
}

/// A TTL: seconds, or a duration like `1h30m` (units s, m, h, d, w), at most [`MAX_TTL`].
fn parse_ttl(tok: &str) -> Result<u32> {
    match parse_duration(tok) {
        Some(v) if v <= MAX_TTL => Ok(v),
        _ => Err(text(format!(
            "bad TTL {tok:?}: expected seconds from 0 to {MAX_TTL} or a duration like 1h30m"
        ))),
    }
}

fn parse_duration(tok: &str) -> Option<u32> {
    if tok.bytes().all(|c| c.is_ascii_digit()) {
        return tok.parse().ok();
    }
    let mut total: u32 = 0;
    let mut num: Option<u32> = None;
    for c in tok.bytes() {
        if c.is_ascii_digit() {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u32::from(c - b'0'))?,
            );
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if num.is_some() {
        return None;
    }
    Some(total)
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

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
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

fn parse_svc_params(a: &mut Args<'_, '_>) -> Result<Vec<(u16, Box<[u8]>)>> {
    let mut params: Vec<(u16, Box<[u8]>)> = Vec::new();
    for &tok in a.rest() {
        let (key_text, value) = split_svc_param(tok);
        let key = parse_svc_key(key_text).ok_or_else(|| {
            text(format!(
                "{} record: unknown SvcParamKey {key_text:?} (use a name like alpn or keyNNNNN)",
                a.rtype
            ))
        })?;
        let bad = |m: String| text(format!("{} record: {key_text}: {m}", a.rtype));
        let raw = match value {
            Some(v) => decode_char_string(v, u16::MAX as usize).map_err(bad)?,
            None => Vec::new(),
        };
        let wire = svc_value_to_wire(key, &raw).map_err(bad)?;
        check_svc_param(key, &wire).map_err(|m| bad(m.to_string()))?;
        params.push((key, wire.into()));
    }
    params.sort_by_key(|p| p.0);
    if let Some(w) = params.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(text(format!(
            "{} record: SvcParamKey {} given twice",
            a.rtype,
            SvcKey(w[0].0)
        )));
    }
    Ok(params)
}

/// Splits `key=value` at the first unescaped, unquoted `=`.
fn split_svc_param(tok: &str) -> (&str, Option<&str>) {
    match tok.find('=') {
        Some(i) => (&tok[..i], Some(&tok[i + 1..])),
        None => (tok, None),
    }
}

fn parse_svc_key(s: &str) -> Option<u16> {
    (0..=6u16)
        .find(|k| svc_key_name(*k).is_some_and(|n| n.eq_ignore_ascii_case(s)))
        .or_else(|| {
            let num = s.strip_prefix("key")?;
            if num.is_empty() || num.len() > 5 || !num.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            num.parse().ok()
        })
}

/// Turns a decoded SvcParamValue into wire octets for its key (RFC 9460 appendix A and section 7).
fn svc_value_to_wire(key: u16, raw: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let as_text = || std::str::from_utf8(raw).map_err(|_| "value is not text".to_string());
    match key {
        svc_key::MANDATORY => {
            let mut out = Vec::new();
            for k in split_value_list(raw) {
                let k = String::from_utf8(k).map_err(|_| "bad key name".to_string())?;
                let v = parse_svc_key(&k).ok_or_else(|| format!("unknown key {k:?}"))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            Ok(out)
        }
        svc_key::ALPN => {
            let mut out = Vec::new();
            for id in split_value_list(raw) {
                let len = u8::try_from(id.len())
                    .map_err(|_| "alpn-id longer than 255 octets".to_string())?;
                out.push(len);
                out.extend_from_slice(&id);
            }
            Ok(out)
        }
        svc_key::PORT => {
            let t = as_text()?;
            let p: u16 = t
                .parse()
                .ok()
                .filter(|_| t.bytes().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| format!("{t:?} is not a port number"))?;
            Ok(p.to_be_bytes().to_vec())
        }
        svc_key::IPV4HINT => {
            let mut out = Vec::new();
            for a in as_text()?.split(',') {
                let ip =
                    Ipv4Addr::from_str(a).map_err(|_| format!("{a:?} is not an IPv4 address"))?;
                out.extend_from_slice(&ip.octets());
            }
            Ok(out)
        }
        svc_key::IPV6HINT => {
            let mut out = Vec::new();
            for a in as_text()?.split(',') {
                let ip =
                    Ipv6Addr::from_str(a).map_err(|_| format!("{a:?} is not an IPv6 address"))?;
                out.extend_from_slice(&ip.octets());
            }
            Ok(out)
        }
        svc_key::ECH => BASE64
            .decode(raw)
            .map_err(|e| format!("value is not base64 ({e})")),
        _ => Ok(raw.to_vec()),
    }
}

/// Splits a value-list at unescaped commas, resolving `\,` and `\\` (RFC 9460 appendix A.1).
fn split_value_list(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut items = vec![Vec::new()];
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\\' if i + 1 < raw.len() => {
                if let Some(last) = items.last_mut() {
                    last.push(raw[i + 1]);
                }
                i += 2;
            }
            b',' => {
                items.push(Vec::new());
                i += 1;
            }
            c => {
                if let Some(last) = items.last_mut() {
                    last.push(c);
                }
                i += 1;
            }
        }
    }
    items
}

/// `YYYYMMDDHHmmSS` in UTC, or plain seconds since 1970 (RFC 4034 section 3.2).
fn parse_time(t: &str) -> Option<u32> {
    if !t.bytes().all(|c| c.is_ascii_digit()) || t.is_empty() {
        return None;
    }
    if t.len() != 14 {
        return t.parse().ok();
    }
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(8..10)?,
        n(10..12)?,
        n(12..14)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    u32::try_from(secs).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
