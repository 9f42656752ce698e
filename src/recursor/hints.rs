//! Root hints: the names and addresses of the root servers, the one thing a recursive resolver must
//! be told (RFC 8109 section 2).
//!
//! The embedded set is `certs/named.root`, IANA's `named.root` (the InterNIC file "named.cache",
//! last update April 18, 2024, root zone 2024041801) as Debian's `dns-root-data` package ships it.
//! `root_hints` / `--root-hints FILE` replaces it with a file in the same format: zone-file lines
//! `. TTL NS NAME` and `NAME TTL A|AAAA ADDRESS`, `;` comments. The hints only bootstrap: priming
//! (`. NS` asked of a hint server, RFC 8109 section 3) replaces them with the root's own answer.
//!
//! Limitations: one record per line (no `$ORIGIN`, no continuation lines), as named.root is written.

use std::net::IpAddr;
use std::path::Path;

use thiserror::Error;

use crate::wire::{parse_record_line, Name, RData, RType, WireError};

/// IANA's named.root, compiled in (see the module docs for its version).
pub const EMBEDDED: &str = include_str!("../../certs/named.root");
/// Largest hints file read (named.root is about 3 KiB).
pub const MAX_HINTS_LEN: u64 = 64 * 1024;
/// Most root server names kept from a hints file (the root has 13).
pub const MAX_HINT_SERVERS: usize = 32;
/// Most addresses kept per root server name.
pub const MAX_HINT_ADDRS: usize = 8;

/// One root server: its name and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintServer {
    pub name: Name,
    pub addrs: Vec<IpAddr>,
}

/// The root servers to start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootHints {
    pub servers: Vec<HintServer>,
    /// True for the embedded set: answers that point name servers at loopback or private
    /// addresses are then refused (see [`super::caution`]); a hints file given explicitly may
    /// itself name such addresses (a test hierarchy on 127.0.0.0/8).
    pub embedded: bool,
}

/// Why a hints file cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HintsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_HINTS_LEN} bytes; a root hints file is about 3 KiB")]
    TooLarge { path: String },
    #[error("line {line}: {source}")]
    Line {
        line: usize,
        #[source]
        source: WireError,
    },
    #[error("line {line}: {rtype} record not expected (named.root holds NS records of the root and A/AAAA records of their names)")]
    Unexpected { line: usize, rtype: RType },
    #[error("no root server with an address (expected lines such as \". 3600000 NS a.root-servers.net.\" and \"a.root-servers.net. 3600000 A 198.41.0.4\")")]
    Empty,
}

impl RootHints {
    /// The embedded hints.
    pub fn embedded() -> RootHints {
        // The embedded file is tested to parse; should it ever not, there is nothing to resolve
        // with, and an empty set makes every query SERVFAIL rather than the process panic.
        let mut hints = RootHints::parse(EMBEDDED).unwrap_or(RootHints {
            servers: Vec::new(),
            embedded: true,
        });
        hints.embedded = true;
        hints
    }

    /// Reads a hints file (at most [`MAX_HINTS_LEN`] bytes).
    pub fn load(path: &Path) -> Result<RootHints, HintsError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read = |source| HintsError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        file.take(MAX_HINTS_LEN + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_HINTS_LEN {
            return Err(HintsError::TooLarge { path: shown });
        }
        RootHints::parse(&text)
    }

    /// Parses named.root text. Addresses of names that are not root servers are ignored; a server
    /// without an address is dropped (it would need resolution before there is anything to resolve
    /// with).
    pub fn parse(text: &str) -> Result<RootHints, HintsError> {
        let mut servers: Vec<HintServer> = Vec::new();
        let mut addrs: Vec<(Name, IpAddr)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let body = line.split(';').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let record = parse_record_line(body, 3_600_000).map_err(|source| HintsError::Line {
                line: i + 1,
                source,
            })?;
            match record.data {
                RData::Ns(name) if record.name.is_root() => {
                    if servers.len() < MAX_HINT_SERVERS
                        && !servers.iter().any(|s| s.name.eq_ignore_case(&name))
                    {
                        servers.push(HintServer {
                            name,
                            addrs: Vec::new(),
                        });
                    }
                }
                RData::A(a) => addrs.push((record.name, IpAddr::V4(a))),
                RData::Aaaa(a) => addrs.push((record.name, IpAddr::V6(a))),
                other => {
                    return Err(HintsError::Unexpected {
                        line: i + 1,
                        rtype: other.rtype(),
                    })
                }
            }
        }
        for (name, ip) in addrs {
            if let Some(s) = servers.iter_mut().find(|s| s.name.eq_ignore_case(&name)) {
                if s.addrs.len() < MAX_HINT_ADDRS && !s.addrs.contains(&ip) {
                    s.addrs.push(ip);
                }
            }
        }
        servers.retain(|s| !s.addrs.is_empty());
        if servers.is_empty() {
            return Err(HintsError::Empty);
        }
        Ok(RootHints {
            servers,
            embedded: false,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_hints_name_the_thirteen_root_servers() {
        let h = RootHints::embedded();
        assert!(h.embedded);
        assert_eq!(h.servers.len(), 13);
        let a = &h.servers[0];
        assert_eq!(a.name, "a.root-servers.net".parse::<Name>().unwrap());
        assert_eq!(
            a.addrs,
            vec![
                "198.41.0.4".parse::<IpAddr>().unwrap(),
                "2001:503:ba3e::2:30".parse().unwrap()
            ]
        );
        assert!(h.servers.iter().all(|s| s.addrs.len() == 2));
    }

    #[test]
    fn a_test_hierarchy_on_loopback_is_accepted_and_bad_files_say_why() {
        let h = RootHints::parse(
            "; test\n. 3600 NS ns1.root.\n. 3600 NS ns2.root.\n. NS nowhere.\n\
             ns1.root. 3600 A 127.0.0.2\nns2.root. A 127.0.0.3\nns2.root. AAAA ::1\nother. A 127.0.0.9\n",
        )
        .unwrap();
        assert!(!h.embedded);
        assert_eq!(h.servers.len(), 2);
        assert_eq!(h.servers[1].addrs.len(), 2);
        assert!(matches!(
            RootHints::parse("; nothing\n"),
            Err(HintsError::Empty)
        ));
        assert!(matches!(
            RootHints::parse(". NS a.\na. MX 10 b.\n"),
            Err(HintsError::Unexpected { line: 2, .. })
        ));
        let e = RootHints::parse(". NS a.\na. A 300.1.1.1\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: "), "{e}");
    }

    #[test]
    fn a_file_too_large_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.root");
        std::fs::write(&p, vec![b';'; MAX_HINTS_LEN as usize + 10]).unwrap();
        assert!(matches!(
            RootHints::load(&p),
            Err(HintsError::TooLarge { .. })
        ));
        assert!(matches!(
            RootHints::load(&dir.path().join("missing")),
            Err(HintsError::Read { .. })
        ));
    }
}
