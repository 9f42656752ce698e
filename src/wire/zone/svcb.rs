//! SvcParams of SVCB and HTTPS records (RFC 9460 appendix A) both ways: `key=value` text to wire
//! octets and back. The values have their own small grammar (comma-separated value-lists with
//! their own escaping inside character-string escaping, key names or `keyNNNNN`, per-key value
//! formats), which is why it sits apart from the per-type parsing and writing.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use base64::Engine;

use super::super::error::Result;
use super::super::rdata::{check_svc_param, svc_key};
use super::super::types::RType;
use super::lexer::decode_char_string;
use super::present::write_quoted;
use super::{text, BASE64};

/// One SvcParam as `key=value` (RFC 9460 appendix A). The value was checked by
/// [`check_svc_param`] when it was read; a value that was not is written as opaque octets.
pub(super) fn write_svc_param(f: &mut fmt::Formatter<'_>, key: u16, value: &[u8]) -> fmt::Result {
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

/// The SvcParams of an `rtype` record from its `key[=value]` tokens (what follows the target
/// name), in key order; a key given twice is an error.
pub(super) fn parse_svc_params(rtype: RType, tokens: &[&str]) -> Result<Vec<(u16, Box<[u8]>)>> {
    let mut params: Vec<(u16, Box<[u8]>)> = Vec::new();
    for &tok in tokens {
        let (key_text, value) = split_svc_param(tok);
        let key = parse_svc_key(key_text).ok_or_else(|| {
            text(format!(
                "{} record: unknown SvcParamKey {key_text:?} (use a name like alpn or keyNNNNN)",
                rtype
            ))
        })?;
        let bad = |m: String| text(format!("{} record: {key_text}: {m}", rtype));
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
            rtype,
            SvcKey(w[0].0)
        )));
    }
    Ok(params)
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
    if raw.is_empty() {
        // Let check_svc_param say whether this key may be empty.
        return Ok(Vec::new());
    }
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
