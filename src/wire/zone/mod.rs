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
//!
//! Layout: this module holds the entry point ([`parse_record_line`]) and what its parts share; each
//! concern has its own module.
//!
//! ```text
//!   line --lexer::tokenize--> tokens --parse::parse_rdata--> RData     (text -> record)
//!   RData --present (Display)--> text                                  (record -> text)
//!   svcb: SvcParams both ways   base32hex: NSEC3 hashes   calendar: RRSIG times
//! ```

mod base32hex;
mod calendar;

pub(crate) use calendar::civil_from_days;
mod lexer;
mod parse;
mod present;
mod svcb;

use std::str::FromStr;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;

use super::error::{Result, WireError};
use super::message::Record;
use super::types::{Class, RType};
use lexer::{is_class, parse_name, parse_ttl, tokenize};

pub use base32hex::{base32hex_decode, base32hex_encode};
pub use parse::parse_rdata;

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
        return Err(text(format!("type {rtype} cannot be stored in a record")));
    }
    let data = parse_rdata(rtype, &rest[i + 1..])?;
    Ok(Record {
        name,
        class: class.unwrap_or(Class::IN),
        ttl: ttl.unwrap_or(default_ttl),
        data,
    })
}

/// A [`WireError::BadText`] with `msg`.
fn text(msg: impl Into<String>) -> WireError {
    WireError::BadText(msg.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::name::Name;
    use crate::wire::rdata::tests::samples;
    use crate::wire::rdata::{RData, Soa};

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    pub(super) fn parse(line: &str) -> Record {
        parse_record_line(line, 3600).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn err(line: &str) -> String {
        match parse_record_line(line, 3600) {
            Ok(r) => panic!("{line:?} parsed as {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_sample_prints_and_parses_back() {
        for rec in samples() {
            let shown = rec.to_string();
            let back = parse_record_line(&shown, 0).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
            assert_eq!(back, rec, "{shown}");
            assert_eq!(back.name.as_wire(), rec.name.as_wire(), "case of {shown}");
        }
    }

    #[test]
    fn parses_the_forms_local_records_use() {
        let want = Record::new(
            n("router.lan"),
            300,
            RData::A(Ipv4Addr::new(192, 168, 1, 1)),
        );
        assert_eq!(parse("router.lan. 300 IN A 192.168.1.1"), want);
        assert_eq!(parse("router.lan IN 300 A 192.168.1.1"), want);
        assert_eq!(parse("  router.lan 5m A 192.168.1.1 ; the router"), want);
        assert_eq!(
            parse_record_line("router.lan A 192.168.1.1", 300).unwrap(),
            want
        );
        assert_eq!(parse("router.lan 1h30m A 192.168.1.1").ttl, 5400);
        assert_eq!(parse("x.lan CH TXT hi").class, Class::CH);
        assert_eq!(
            parse("x.lan SOA ns.lan. admin.lan. ( 1 2h 1h 1w 300 )").data,
            RData::Soa(Soa {
                mname: n("ns.lan"),
                rname: n("admin.lan"),
                serial: 1,
                refresh: 7200,
                retry: 3600,
                expire: 604800,
                minimum: 300
            })
        );
        assert_eq!(
            parse("_sip._udp.lan SRV 0 5 5060 sip.lan").data,
            RData::Srv {
                priority: 0,
                weight: 5,
                port: 5060,
                target: n("sip.lan")
            }
        );
        assert_eq!(
            parse("x.lan TXT \"two words\" \"semi;colon\" \\\"").data,
            RData::Txt(vec![
                b"two words".to_vec().into(),
                b"semi;colon".to_vec().into(),
                b"\"".to_vec().into()
            ])
        );
        // The generic form gives the typed data for typed types.
        assert_eq!(
            parse("router.lan A \\# 4 C0A80101").data,
            RData::A(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(
            parse("x.lan HINFO \\# 4 01610162").data,
            RData::Unknown {
                rtype: RType::HINFO,
                data: Box::new([1, b'a', 1, b'b'])
            }
        );
        assert_eq!(
            parse("a\\032b.lan PTR x.lan").name.as_wire(),
            b"\x03a b\x03lan\x00"
        );
        let odd = parse(r#"o\"d\034\;\(\)\@\$\.\\\000.lan CNAME \"q\".lan"#);
        assert_eq!(odd.name.as_wire(), b"\x0co\"d\";()@$.\\\x00\x03lan\x00");
        assert_eq!(parse(&odd.to_string()), odd);
        assert!(err("\"x\".lan A 1.2.3.4").contains("quoted"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("router.lan", "no type"),
            ("router.lan 300", "no type"),
            ("router.lan FOO 1.2.3.4", "unknown record type \"FOO\""),
            ("router.lan A", "missing IPv4 address"),
            (
                "router.lan A 300.1.1.1",
                "\"300.1.1.1\" is not an IPv4 address",
            ),
            ("router.lan A 1.2.3.4 5.6.7.8", "unexpected \"5.6.7.8\""),
            ("router.lan AAAA 1.2.3.4", "not an IPv6 address"),
            ("router.lan 99999999999 A 1.2.3.4", "bad TTL"),
            ("router.lan 2147483648 A 1.2.3.4", "bad TTL"),
            ("router..lan A 1.2.3.4", "owner name"),
            ("@ A 1.2.3.4", "'@'"),
            ("$TTL 300", "directive"),
            (
                "x.lan MX 70000 mx.lan",
                "preference \"70000\" is not a number from 0 to 65535",
            ),
            ("x.lan MX 10", "missing mail exchange"),
            ("x.lan TXT \"open", "unterminated quoted string"),
            ("x.lan TXT", "at least one string"),
            ("x.lan CAA 0 \"\" x", "tag must not be empty"),
            ("x.lan HINFO cpu os", "\\# <length> <hex>"),
            ("x.lan ANY \\# 0", "cannot be stored"),
            ("x.lan OPT \\# 0", "cannot be stored"),
            (
                "x.lan A \\# 4 C0A801",
                "length says 4 octets but the data has 3",
            ),
            ("x.lan A \\# 3 C0A801", "A record (generic \\# form)"),
            ("x.lan A \\# 4 C0A8010", "not hexadecimal"),
            ("x.lan DS 1 8 2 XYZ", "digest is not hexadecimal"),
            ("x.lan DNSKEY 257 3 8 !!!", "not base64"),
            (
                "x.lan RRSIG A 8 2 300 20991332000000 1 1 x. AAAA",
                "expiration",
            ),
            ("x.lan NSEC x.lan A BOGUS", "\"BOGUS\" is not a record type"),
            ("x.lan NSEC3 1 0 0 - 0 A", "not base32hex"),
            ("x.lan NSEC3PARAM 1 0 0 zz", "salt"),
            ("x.lan HTTPS 1 . port=x", "port"),
            ("x.lan HTTPS 1 . port=1 port=2", "given twice"),
            ("x.lan HTTPS 1 . bogus=1", "unknown SvcParamKey"),
            ("x.lan HTTPS 1 . alpn", "empty alpn"),
            ("x.lan SOA a. b. 1 2 3 4", "missing minimum"),
            ("x.lan TXT a\\1b", "three-digit"),
            ("x.lan TXT \\256", "above 255"),
            ("x\\1.lan A 1.2.3.4", "three digits"),
        ];
        for (line, want) in cases {
            let e = err(line);
            assert!(
                e.contains(want),
                "{line:?}: {e:?} does not mention {want:?}"
            );
        }
        let long = format!("x.lan TXT {}", "a".repeat(256));
        assert!(err(&long).contains("longer than 255"));
    }
}
