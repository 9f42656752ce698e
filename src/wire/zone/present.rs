//! Records and RDATA written in presentation format, as dig writes them: the `Display` impls of
//! [`Record`] and [`RData`] and the escaping of character-strings. The mirror of
//! [`super::parse`]: whatever is written here parses back to the same record there.

use std::fmt;

use base64::Engine;

use super::super::message::Record;
use super::super::rdata::{RData, TypeBitmap};
use super::base32hex::base32hex_encode;
use super::calendar::Time;
use super::svcb::write_svc_param;
use super::BASE64;

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

fn write_types(f: &mut fmt::Formatter<'_>, types: &TypeBitmap) -> fmt::Result {
    for t in &types.0 {
        write!(f, " {t}")?;
    }
    Ok(())
}

/// A character-string in double quotes: `"` and `\` escaped, anything outside printable ASCII as
/// `\DDD`.
pub(super) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &[u8]) -> fmt::Result {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn prints_what_dig_prints() {
        let show = |line: &str| parse(line).to_string();
        assert_eq!(
            show("mail.lan. 300 IN MX 10 mx.lan."),
            "mail.lan. 300 IN MX 10 mx.lan."
        );
        assert_eq!(
            show(r#"t.lan TXT "a \"q\" \\ b" plain \255"#),
            r#"t.lan. 3600 IN TXT "a \"q\" \\ b" "plain" "\255""#
        );
        assert_eq!(
            show("ds.lan DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"),
            "ds.lan. 3600 IN DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"
        );
        assert_eq!(
            show("k.lan DNSKEY 256 3 8 AwEAAQ=="),
            "k.lan. 3600 IN DNSKEY 256 3 8 AwEAAQ=="
        );
        assert_eq!(
            show("x.lan TYPE65280 \\# 3 0A0b0c"),
            "x.lan. 3600 IN TYPE65280 \\# 3 0A0B0C"
        );
        assert_eq!(
            show("x.lan TYPE65280 \\# 0"),
            "x.lan. 3600 IN TYPE65280 \\# 0"
        );
        assert_eq!(
            show("c.lan CAA 0 issue \"letsencrypt.org\""),
            "c.lan. 3600 IN CAA 0 issue \"letsencrypt.org\""
        );
        // RFC 5155 appendix A style NSEC3 and RFC 4034 section 3.3 style RRSIG.
        assert_eq!(
            show("0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG"),
            "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. 3600 IN NSEC3 1 1 12 AABBCCDD 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR NS SOA MX RRSIG DNSKEY NSEC3PARAM"
        );
        assert_eq!(
            show("host.example.com. 86400 IN RRSIG A 5 3 86400 20030322173103 ( 20030220173103 2642 example.com. oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTr PYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6o B9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3t GNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkG J5D6fwFm8nN+6pBzeDQfsS3Ap3o= )"),
            "host.example.com. 86400 IN RRSIG A 5 3 86400 20030322173103 20030220173103 2642 example.com. oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3tGNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkGJ5D6fwFm8nN+6pBzeDQfsS3Ap3o="
        );
        assert_eq!(
            show(
                r#"_dns.resolver.arpa SVCB 1 dot.lan. alpn="dot,h\\,x" port=853 ipv4hint=192.0.2.1,192.0.2.2 mandatory=port,alpn key65000 key7=x"#
            ),
            r#"_dns.resolver.arpa. 3600 IN SVCB 1 dot.lan. mandatory=port,alpn alpn="dot,h\\,x" port=853 ipv4hint=192.0.2.1,192.0.2.2 key7="x" key65000="""#
        );
    }
}
