//! The /etc/hosts format (hosts(5)): `ADDRESS NAME [ALIAS...]` per line.
//!
//! Accepted: IPv4 and IPv6 addresses, any number of names per line, `#` comments anywhere on a line,
//! blank lines, spaces and tabs, CRLF line ends. A bad line (an unparsable address, an IPv6 zone
//! id such as `fe80::1%eth0`, no names) is skipped with a warning naming its line number; a bad name
//! is skipped on its own. Nothing here is ever fatal.
//!
//! The file may be hostile or simply huge (ad-block lists): lines longer than [`MAX_LINE_LEN`] are
//! skipped, parsing stops after [`MAX_NAMES`] names, and at most [`MAX_WARNINGS`] warnings are
//! kept (the rest are only counted). The caller bounds the file size.
//!
//! Limitations: names with backslash escapes are rejected (hosts files hold plain host names);
//! zone-scoped IPv6 addresses are skipped, since an answer cannot carry the zone.

use std::net::IpAddr;

use crate::wire::Name;

/// Longest line we read; longer ones are skipped with a warning.
pub const MAX_LINE_LEN: usize = 16 * 1024;
/// Most names (counting every name on every line) taken from one file: 1,000,000.
pub const MAX_NAMES: usize = 1_000_000;
/// Most warnings kept per parse; further ones are only counted.
pub const MAX_WARNINGS: usize = 100;

/// One usable line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsLine {
    /// 1-based line number.
    pub line: usize,
    pub addr: IpAddr,
    /// The canonical name first, then aliases; never empty.
    pub names: Vec<Name>,
}

/// A problem with one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWarning {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// Keeps a warning about `line` among the first [`MAX_WARNINGS`] of a parse, or counts it in
/// `suppressed` (a hostile file cannot make the warnings grow without bound).
pub(super) fn keep_warning(
    warnings: &mut Vec<ParseWarning>,
    suppressed: &mut usize,
    line: usize,
    reason: impl Into<String>,
) {
    if warnings.len() < MAX_WARNINGS {
        warnings.push(ParseWarning {
            line,
            reason: reason.into(),
        });
    } else {
        *suppressed += 1;
    }
}

/// What a parse produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedHosts {
    pub lines: Vec<HostsLine>,
    /// The first [`MAX_WARNINGS`] warnings.
    pub warnings: Vec<ParseWarning>,
    /// Warnings beyond those kept.
    pub suppressed_warnings: usize,
    /// True when parsing stopped at [`MAX_NAMES`].
    pub truncated: bool,
}

impl ParsedHosts {
    fn warn(&mut self, line: usize, reason: impl Into<String>) {
        keep_warning(
            &mut self.warnings,
            &mut self.suppressed_warnings,
            line,
            reason,
        );
    }

    /// Total names over all lines.
    pub fn name_count(&self) -> usize {
        self.lines.iter().map(|l| l.names.len()).sum()
    }
}

/// Parses hosts-file content. Any bytes are accepted; non-UTF-8 tokens are bad tokens.
pub fn parse_hosts(data: &[u8]) -> ParsedHosts {
    let mut out = ParsedHosts::default();
    let mut names_total = 0usize;
    for (idx, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line_no = idx + 1;
        if raw.len() > MAX_LINE_LEN {
            out.warn(line_no, format!("line longer than {MAX_LINE_LEN} octets"));
            continue;
        }
        let content = match raw.iter().position(|&b| b == b'#') {
            Some(i) => &raw[..i],
            None => raw,
        };
        let mut tokens = content
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let Some(addr_token) = tokens.next() else {
            continue;
        };
        let addr = match parse_addr(addr_token) {
            Ok(a) => a,
            Err(why) => {
                out.warn(line_no, why);
                continue;
            }
        };
        let mut names = Vec::new();
        for token in tokens {
            if names_total >= MAX_NAMES {
                out.truncated = true;
                break;
            }
            match parse_name(token) {
                Ok(n) => {
                    names.push(n);
                    names_total += 1;
                }
                Err(why) => out.warn(line_no, why),
            }
        }
        if !names.is_empty() {
            out.lines.push(HostsLine {
                line: line_no,
                addr,
                names,
            });
        } else if !out.truncated {
            out.warn(line_no, "address without any usable name");
        }
        if out.truncated {
            out.warn(line_no, format!("stopped after {MAX_NAMES} names"));
            break;
        }
    }
    out
}

fn parse_addr(token: &[u8]) -> Result<IpAddr, String> {
    let text = std::str::from_utf8(token).map_err(|_| "address is not UTF-8".to_string())?;
    if text.contains('%') {
        return Err(format!("{text:?}: zone-scoped addresses are not supported"));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

fn parse_name(token: &[u8]) -> Result<Name, String> {
    let text = std::str::from_utf8(token).map_err(|_| "name is not UTF-8".to_string())?;
    if text.contains('\\') {
        return Err(format!("{text:?}: escapes are not allowed in host names"));
    }
    let name: Name = text
        .parse()
        .map_err(|e| format!("{text:?} is not a domain name: {e}"))?;
    if name.is_root() {
        return Err("the root name is not a host name".into());
    }
    Ok(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn names(l: &HostsLine) -> Vec<String> {
        l.names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn parses_the_usual_file() {
        let text = b"# The following lines are desirable for IPv4 capable hosts\r\n\
127.0.0.1       localhost\r\n\
\n\
   \t  \n\
192.168.1.10\trouter.lan router   # the box in the hall\n\
::1     localhost ip6-localhost ip6-loopback\n\
fe00::0 ip6-localnet\n\
2001:db8::1 v6.example.\n";
        let p = parse_hosts(text);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.lines.len(), 5);
        assert_eq!(p.lines[0].line, 2);
        assert_eq!(p.lines[0].addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(names(&p.lines[0]), ["localhost."]);
        assert_eq!(p.lines[1].line, 5);
        assert_eq!(names(&p.lines[1]), ["router.lan.", "router."]);
        assert_eq!(
            names(&p.lines[2]),
            ["localhost.", "ip6-localhost.", "ip6-loopback."]
        );
        assert_eq!(p.lines[4].addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(p.name_count(), 8);
        assert!(!p.truncated);
    }

    #[test]
    fn bad_lines_are_skipped_with_their_line_number() {
        let text = b"10.0.0.1 good\n\
999.1.1.1 bad-addr\n\
fe80::1%eth0 zoned\n\
10.0.0.2\n\
10.0.0.3 a..b fine\n\
\xff\xfe nonutf8\n\
10.0.0.4 back\\slash ok\n\
#10.0.0.5 commented\n\
10.0.0.6#glued comment\n";
        let p = parse_hosts(text);
        let lines: Vec<usize> = p.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 9]);
        assert!(p.warnings[1].reason.contains("zone"));
        let good: Vec<(usize, Vec<String>)> = p.lines.iter().map(|l| (l.line, names(l))).collect();
        assert_eq!(
            good,
            [
                (1, vec!["good.".to_string()]),
                (5, vec!["fine.".to_string()]),
                (7, vec!["ok.".to_string()]),
            ]
        );
    }

    #[test]
    fn long_lines_and_floods_are_bounded() {
        let mut text = format!("10.0.0.1 {}\n", "a".repeat(MAX_LINE_LEN)).into_bytes();
        text.extend_from_slice(b"10.0.0.2 kept\n");
        let p = parse_hosts(&text);
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].line, 1);
        assert_eq!(p.lines.len(), 1);

        let mut flood = Vec::new();
        for i in 0..MAX_NAMES + 10 {
            flood.extend_from_slice(format!("0.0.0.0 h{i}\n").as_bytes());
        }
        let p = parse_hosts(&flood);
        assert!(p.truncated);
        assert_eq!(p.name_count(), MAX_NAMES);

        let bad: Vec<u8> = "x\n".repeat(MAX_WARNINGS + 5).into_bytes();
        let p = parse_hosts(&bad);
        assert_eq!(p.warnings.len(), MAX_WARNINGS);
        assert_eq!(p.suppressed_warnings, 5);
    }
}
