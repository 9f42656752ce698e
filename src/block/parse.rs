//! Block-list lines: hosts files, plain domain lists and the adblock subset used by DNS lists.
//!
//! ```text
//!   "0.0.0.0 ads.example"  "127.0.0.1 a.example b.example"   hosts file: every name after an
//!                                                             unspecified or loopback address
//!   "ads.example"  "*.ads.example"                            plain list: one name per line
//!   "||ads.example^"  "||ads.example^$important"              adblock: block the name
//!   "@@||good.example^"                                       adblock exception: allow the name
//!   "# comment"  "! comment"  "[Adblock Plus 2.0]"  ""        nothing
//! ```
//!
//! Every rule covers its name and all names below it (that is what `||name^` means in adblock
//! syntax, and what DNS block lists intend for a hosts line). A line this module cannot use (a
//! cosmetic or URL rule, a regular expression, a wildcard in the middle, a modifier that narrows
//! the rule such as `$client=` or `$dnstype=`, a hosts line that redirects to a real address, a name
//! that is not a host name) is reported as [`Line::Unusable`] with the reason: the loader counts
//! these and never fails on them, since lists fetched from the internet always have a few.
//!
//! Names are kept in lower-case wire form (length-prefixed labels ending in the root), the form a
//! query's name arrives in, so that the index compares bytes. Only letters, digits, `-` and `_` are
//! accepted in labels (the set host names and the service labels of real lists use).
//!
//! Limitations: no regular expressions, no `*` inside a name (a leading `*.` is read as the name
//! below it), no per-client or per-type modifiers, no `$badfilter`; such rules are unusable, never
//! approximated.

use std::net::IpAddr;

use crate::wire::name::{MAX_LABEL_LEN, MAX_NAME_LEN};

/// Longest line looked at; a longer one is unusable (a list is never read past its size cap).
pub const MAX_LINE_LEN: usize = 4096;

/// What one line of a list says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Nothing: a blank line or a comment.
    Nothing,
    /// Block these names (lower-case wire form) and the names below them.
    Block(Vec<Vec<u8>>),
    /// Allow this name and the names below it (an adblock `@@` exception).
    Allow(Vec<u8>),
    /// A rule this module cannot use, and why.
    Unusable(&'static str),
}

/// Names a hosts file gives its loopback and broadcast entries: never blocked (blocking
/// `localhost` would break the machine), skipped as [`Line::Nothing`] when they are all a line has.
const HOSTS_HOUSEKEEPING: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Reads one line of a block or allow list (any of the formats above).
pub fn parse_line(line: &str) -> Line {
    if line.len() > MAX_LINE_LEN {
        return Line::Unusable("line too long");
    }
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('!') || line.starts_with('[') {
        return Line::Nothing;
    }
    if let Some(rule) = line.strip_prefix("@@") {
        return match adblock(rule) {
            Ok(name) => Line::Allow(name),
            Err(why) => Line::Unusable(why),
        };
    }
    if line.starts_with("||") {
        return match adblock(line) {
            Ok(name) => Line::Block(vec![name]),
            Err(why) => Line::Unusable(why),
        };
    }
    if line.starts_with('|') || line.contains("##") || line.contains("#@#") || line.contains('/') {
        return Line::Unusable("not a domain rule (URL, path or cosmetic rule)");
    }
    // Hosts files and plain lists may end a line with a comment.
    let line = line.split_once('#').map_or(line, |(rule, _)| rule).trim();
    let mut fields = line.split_ascii_whitespace();
    let Some(first) = fields.next() else {
        return Line::Nothing;
    };
    if let Ok(ip) = first.parse::<IpAddr>() {
        return hosts(ip, fields);
    }
    if fields.next().is_some() {
        return Line::Unusable("more than one field, and the first is not an address");
    }
    let name = first.strip_prefix("*.").unwrap_or(first);
    match wire_name(name) {
        Ok(name) => Line::Block(vec![name]),
        Err(why) => Line::Unusable(why),
    }
}

/// A hosts line: every name after an address that means "nowhere".
fn hosts<'a>(ip: IpAddr, names: impl Iterator<Item = &'a str>) -> Line {
    if !(ip.is_unspecified() || ip.is_loopback()) {
        return Line::Unusable("hosts line with a real address (a redirect, not a block)");
    }
    let mut out = Vec::new();
    for name in names {
        if HOSTS_HOUSEKEEPING
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
        {
            continue;
        }
        match wire_name(name) {
            Ok(n) => out.push(n),
            Err(why) => return Line::Unusable(why),
        }
    }
    if out.is_empty() {
        Line::Nothing
    } else {
        Line::Block(out)
    }
}

/// `||name^` with at most the harmless `$important` modifier (its only effect, winning over
/// exceptions within the same list, is not modelled: exceptions always win).
fn adblock(rule: &str) -> Result<Vec<u8>, &'static str> {
    let Some(rest) = rule.strip_prefix("||") else {
        return Err("exception that is not of the form @@||name^");
    };
    let (rest, modifiers) = rest.split_once('$').unwrap_or((rest, ""));
    if !modifiers.is_empty() && !modifiers.eq_ignore_ascii_case("important") {
        return Err("adblock modifier other than $important");
    }
    let Some(name) = rest.strip_suffix('^').or_else(|| rest.strip_suffix("^|")) else {
        return Err("adblock rule that does not end its name with ^");
    };
    let name = name.strip_prefix("*.").unwrap_or(name);
    wire_name(name)
}

/// `name` (dotted text, an optional final dot) in lower-case wire form.
pub fn wire_name(name: &str) -> Result<Vec<u8>, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() + 2 > MAX_NAME_LEN {
        return Err("name longer than 255 octets");
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("an address, not a name");
    }
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("label longer than 63 octets");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("character not allowed in a host name");
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    Ok(wire)
}

/// The dotted text of a wire-form name (for messages; no final dot, `.` for the root).
pub fn dotted(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        let len = usize::from(len);
        if len == 0 {
            break;
        }
        let Some(label) = wire.get(pos + 1..pos + 1 + len) else {
            break;
        };
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(label.iter().map(|&b| char::from(b)));
        pos += 1 + len;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        wire_name(s).unwrap()
    }

    #[test]
    fn hosts_lines_block_every_name_after_a_nowhere_address() {
        assert_eq!(
            parse_line("0.0.0.0 ads.example"),
            Line::Block(vec![w("ads.example")])
        );
        assert_eq!(
            parse_line("127.0.0.1\tA.Example  b.example # trackers"),
            Line::Block(vec![w("a.example"), w("b.example")])
        );
        assert_eq!(
            parse_line(":: six.example"),
            Line::Block(vec![w("six.example")])
        );
        assert_eq!(parse_line("127.0.0.1 localhost"), Line::Nothing);
        assert_eq!(parse_line("0.0.0.0 0.0.0.0"), Line::Nothing);
        assert!(matches!(
            parse_line("192.168.1.1 router.lan"),
            Line::Unusable(_)
        ));
        assert!(matches!(parse_line("0.0.0.0 bad!name"), Line::Unusable(_)));
    }

    #[test]
    fn plain_lines_are_one_name() {
        assert_eq!(
            parse_line("Tracker.Example."),
            Line::Block(vec![w("tracker.example")])
        );
        assert_eq!(
            parse_line("*.wild.example"),
            Line::Block(vec![w("wild.example")])
        );
        assert_eq!(
            parse_line("_dmarc.example"),
            Line::Block(vec![w("_dmarc.example")])
        );
        assert!(matches!(parse_line("two names.example"), Line::Unusable(_)));
        assert!(matches!(
            parse_line("1.2.3.4"),
            Line::Nothing | Line::Unusable(_)
        ));
        assert!(matches!(parse_line("a..example"), Line::Unusable(_)));
        let long = format!("{}.example", "a".repeat(64));
        assert!(matches!(parse_line(&long), Line::Unusable(_)));
        let too_long = vec!["a"; 130].join(".");
        assert!(matches!(parse_line(&too_long), Line::Unusable(_)));
    }

    #[test]
    fn adblock_rules_and_exceptions() {
        assert_eq!(
            parse_line("||ads.example^"),
            Line::Block(vec![w("ads.example")])
        );
        assert_eq!(
            parse_line("||ads.example^$important"),
            Line::Block(vec![w("ads.example")])
        );
        assert_eq!(
            parse_line("@@||good.example^"),
            Line::Allow(w("good.example"))
        );
        assert!(matches!(
            parse_line("||ads.example^$client=10.0.0.1"),
            Line::Unusable(_)
        ));
        assert!(matches!(
            parse_line("||ads.example/path^"),
            Line::Unusable(_)
        ));
        assert!(matches!(
            parse_line("example.com##.banner"),
            Line::Unusable(_)
        ));
        assert!(matches!(parse_line("/ads[0-9]+/"), Line::Unusable(_)));
        assert!(matches!(
            parse_line("|https://x.example^"),
            Line::Unusable(_)
        ));
        assert!(matches!(parse_line("@@good.example"), Line::Unusable(_)));
        assert!(matches!(parse_line("||a*b.example^"), Line::Unusable(_)));
    }

    #[test]
    fn comments_and_blanks_are_nothing() {
        for l in [
            "",
            "   ",
            "# hosts",
            "! adblock",
            "[Adblock Plus 2.0]",
            "  # indented",
        ] {
            assert_eq!(parse_line(l), Line::Nothing, "{l:?}");
        }
        assert!(matches!(
            parse_line(&"a".repeat(MAX_LINE_LEN + 1)),
            Line::Unusable(_)
        ));
    }

    #[test]
    fn dotted_reads_back_the_wire_form() {
        assert_eq!(dotted(&w("Ads.Example")), "ads.example");
        assert_eq!(dotted(&[0]), ".");
        assert_eq!(dotted(&[5, b'a']), ".");
    }
}
