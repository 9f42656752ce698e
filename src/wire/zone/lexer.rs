//! The lexer: one line of presentation format split into tokens, and single tokens decoded
//! (character-strings with their `\X` and `\DDD` escapes, names, TTLs and durations, hex). Tokens
//! keep their quotes and escapes until a decoder for the field they fill reads them, because only
//! the field knows whether a token is a name, a character-string or a number; keeping the
//! tokenizer ignorant of types is what lets one tokenizer serve every record type and SvcParams.

use std::str::FromStr;

use super::super::error::Result;
use super::super::name::Name;
use super::super::types::Class;
use super::{text, MAX_TTL};

/// Splits a line into tokens at unquoted, unescaped whitespace; drops `;` comments and `(`/`)`.
/// Tokens keep their quotes and escapes.
pub(super) fn tokenize(line: &str) -> Result<Vec<&str>> {
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
pub(super) fn decode_char_string(tok: &str, max: usize) -> std::result::Result<Vec<u8>, String> {
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
                } else if rest.first().is_some_and(u8::is_ascii_digit) {
                    return Err("a digit after \\ must start a three-digit \\DDD escape".into());
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

pub(super) fn parse_name(tok: &str, what: &str) -> Result<Name> {
    if tok == "@" {
        return Err(text(format!(
            "{what}: '@' (the zone origin) is not supported here; write the full name"
        )));
    }
    if has_unescaped_quote(tok) {
        return Err(text(format!(
            "{what}: {tok:?} is quoted; names are written bare"
        )));
    }
    Name::from_str(tok).map_err(|e| text(format!("{what}: {tok:?} is not a domain name ({e})")))
}

/// True when `tok` holds a `"` that is not escaped as `\"`.
fn has_unescaped_quote(tok: &str) -> bool {
    let b = tok.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return true,
            _ => i += 1,
        }
    }
    false
}

pub(super) fn is_class(tok: &str) -> bool {
    matches!(Class::from_str(tok), Ok(c) if c != Class::ANY && c != Class::NONE)
}

/// A TTL: seconds, or a duration like `1h30m` (units s, m, h, d, w), at most [`MAX_TTL`].
pub(super) fn parse_ttl(tok: &str) -> Result<u32> {
    match parse_duration(tok) {
        Some(v) if v <= MAX_TTL => Ok(v),
        _ => Err(text(format!(
            "bad TTL {tok:?}: expected seconds from 0 to {MAX_TTL} or a duration like 1h30m"
        ))),
    }
}

pub(super) fn parse_duration(tok: &str) -> Option<u32> {
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

pub(super) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}
