//! Trust anchors: the keys the chain of trust starts from, and the parser of anchor files.
//!
//! ```text
//!   certs/root-anchors.txt (include_str!) --TrustAnchors::iana_root--> TrustAnchors
//!   a file's text + its path              --TrustAnchors::parse------> TrustAnchors | AnchorError
//!   TrustAnchors::closest(name) --> ZoneAnchor --verify_dnskeys--> the zone's DNSKEY RRset, trusted
//! ```
//!
//! The built-in anchors are the IANA root key-signing keys KSK-2017 (tag 20326) and KSK-2024
//! (tag 38696) as DS records, in `certs/root-anchors.txt` with its source noted; both are listed
//! so that the rollover from one to the other needs no new build (RFC 9718 describes IANA's
//! publication). A validating resolver with a stale anchor set fails closed (every answer from
//! the root down is bogus or indeterminate), so the file is data, not code: it can be replaced
//! without touching the validator.
//!
//! An anchor file holds DS or DNSKEY records in zone-file form, the form unbound's
//! `trust-anchor-file` takes: one record per line (or across lines inside parentheses), `;`
//! comments, absolute owner names, for any number of zones. A DS anchor authenticates the keys
//! of its zone's DNSKEY RRset that it matches (RFC 4035 section 5.2); a DNSKEY anchor is such a
//! key itself (RFC 4035 section 5, RFC 4033 section 3.1). Anchor files are configuration, so
//! they are checked when read: a DS digest of the wrong length for its type, a DNSKEY that is not
//! a zone key, is revoked or has a protocol other than 3 is an error naming the file and line,
//! as is a file without any anchor.
//!
//! Limitations: no RFC 5011 automated updates (unbound's `auto-trust-anchor-file`): a new root
//! KSK needs a new anchor file or build. No `$ORIGIN`, `$INCLUDE` or relative names (`$TTL` lines
//! are accepted and ignored: an anchor's TTL means nothing). An anchor whose algorithms we do not
//! validate makes its zone insecure, as such a DS record would.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::algorithm::{Algorithm, DigestType};
use super::key::{match_ds, Dnskey, Ds, DsMatch};
use super::verify::{verify_with_keys, Budget, VerifiedRrset, VerifyError};
use crate::wire::{parse_record_line, Class, Name, RType, Record, WireError};

/// The built-in anchor file: the IANA root KSKs as DS records.
pub const ROOT_ANCHORS: &str = include_str!("../../certs/root-anchors.txt");

/// The name [`TrustAnchors::iana_root`] gives the built-in file in errors.
pub const ROOT_ANCHORS_PATH: &str = "certs/root-anchors.txt";

/// The anchors of every configured zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    zones: BTreeMap<Name, ZoneAnchor>,
}

/// The anchors of one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneAnchor {
    zone: Name,
    ds: Vec<Record>,
    dnskeys: Vec<Record>,
}

impl TrustAnchors {
    /// The built-in root anchors ([`ROOT_ANCHORS`]).
    pub fn iana_root() -> TrustAnchors {
        // The file is part of the build, and `built_in_root_anchors_parse` checks it parses.
        #[allow(clippy::expect_used)]
        TrustAnchors::parse(ROOT_ANCHORS, Path::new(ROOT_ANCHORS_PATH))
            .expect("the built-in root anchors parse")
    }

    /// Parses an anchor file's `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<TrustAnchors, AnchorError> {
        let err = |line, kind| AnchorError {
            file: file.to_path_buf(),
            line,
            kind,
        };
        let mut zones: BTreeMap<Name, ZoneAnchor> = BTreeMap::new();
        for (line, text) in logical_lines(text).map_err(|(n, k)| err(Some(n), k))? {
            if text.trim_start().starts_with("$TTL") {
                continue;
            }
            let record = parse_record_line(&text, 0).map_err(|e| err(Some(line), e.into()))?;
            check_anchor(&record).map_err(|k| err(Some(line), k))?;
            let zone = zones
                .entry(record.name.clone())
                .or_insert_with(|| ZoneAnchor {
                    zone: record.name.clone(),
                    ds: Vec::new(),
                    dnskeys: Vec::new(),
                });
            let list = if record.rtype() == RType::DS {
                &mut zone.ds
            } else {
                &mut zone.dnskeys
            };
            if !list.iter().any(|r| r.data == record.data) {
                list.push(record);
            }
        }
        if zones.is_empty() {
            return Err(err(None, AnchorErrorKind::Empty));
        }
        Ok(TrustAnchors { zones })
    }

    /// Adds `other`'s anchors to these (several files, each for its zones).
    pub fn extend(&mut self, other: TrustAnchors) {
        for (name, anchor) in other.zones {
            match self.zones.get_mut(&name) {
                None => {
                    self.zones.insert(name, anchor);
                }
                Some(mine) => {
                    for r in anchor.ds {
                        if !mine.ds.iter().any(|m| m.data == r.data) {
                            mine.ds.push(r);
                        }
                    }
                    for r in anchor.dnskeys {
                        if !mine.dnskeys.iter().any(|m| m.data == r.data) {
                            mine.dnskeys.push(r);
                        }
                    }
                }
            }
        }
    }

    /// The anchors of exactly `zone`.
    pub fn get(&self, zone: &Name) -> Option<&ZoneAnchor> {
        self.zones.get(zone)
    }

    /// The anchor of the closest zone at or above `name`: where its chain of trust starts.
    /// `None` when no anchor covers the name (its answers are indeterminate).
    pub fn closest(&self, name: &Name) -> Option<&ZoneAnchor> {
        let mut cur = Some(name.clone());
        while let Some(n) = cur {
            if let Some(a) = self.zones.get(&n) {
                return Some(a);
            }
            cur = n.parent();
        }
        None
    }

    /// Every zone's anchors, in canonical order of the zone names.
    pub fn iter(&self) -> impl Iterator<Item = &ZoneAnchor> {
        self.zones.values()
    }

    /// The number of zones with anchors.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// True when there are no anchors.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

impl ZoneAnchor {
    /// The zone.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// Its DS anchors.
    pub fn ds(&self) -> &[Record] {
        &self.ds
    }

    /// Its DNSKEY anchors.
    pub fn dnskeys(&self) -> &[Record] {
        &self.dnskeys
    }

    /// Authenticates the zone's DNSKEY RRset `dnskeys` with its `rrsigs`: it must be signed by a
    /// key a DS anchor matches or by a DNSKEY anchor. On success every key of the set is
    /// trusted. When no anchor uses an algorithm (and, for DS, a digest type) we validate, the
    /// result is the "unsupported" error: the zone is insecure.
    pub fn verify_dnskeys(
        &self,
        dnskeys: &[Record],
        rrsigs: &[Record],
        now: u32,
        budget: &mut Budget,
    ) -> Result<VerifiedRrset, VerifyError> {
        let mut keys: Vec<&Record> = self
            .dnskeys
            .iter()
            .filter(|r| {
                Dnskey::from_record(r).is_some_and(|k| Algorithm::validated(k.algorithm).is_some())
            })
            .collect();
        let ds = if self.ds.is_empty() {
            None
        } else {
            Some(match_ds(&self.ds, dnskeys))
        };
        if let Some(DsMatch::Keys(matched)) = &ds {
            keys.extend(matched);
        }
        if !keys.is_empty() {
            return verify_with_keys(dnskeys, rrsigs, &keys, now, budget);
        }
        Err(match ds {
            Some(DsMatch::NoMatch) => VerifyError::NoKeyForDs {
                zone: self.zone.clone(),
            },
            Some(DsMatch::UnsupportedDigest) => VerifyError::UnsupportedDigest,
            _ => VerifyError::UnsupportedAlgorithm,
        })
    }
}

/// Why an anchor file was refused, with the file and line it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorError {
    /// The file (as named by the caller).
    pub file: PathBuf,
    /// The line the record starts on (1-based), or `None` for the file as a whole.
    pub line: Option<usize>,
    pub kind: AnchorErrorKind,
}

impl fmt::Display for AnchorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.kind),
            None => write!(f, "{}: {}", self.file.display(), self.kind),
        }
    }
}

impl std::error::Error for AnchorError {}

/// What is wrong with an anchor file.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AnchorErrorKind {
    /// The line is not a record in zone-file form.
    #[error("{0}")]
    Record(WireError),
    /// A record of another type.
    #[error("{0} record: a trust anchor is a DS or DNSKEY record")]
    NotAnchorType(RType),
    /// A class other than IN.
    #[error("class {0}: trust anchors are class IN")]
    Class(Class),
    /// A DS digest whose length does not fit its digest type.
    #[error("DS digest of {got} octets, where digest type {digest_type} has {want}")]
    DigestLength {
        digest_type: u8,
        want: usize,
        got: usize,
    },
    /// A DNSKEY that is not a zone key or is revoked.
    #[error("DNSKEY flags {0}: a trust anchor is a zone key (flags 256 or 257), not revoked")]
    NotZoneKey(u16),
    /// A DNSKEY protocol other than 3.
    #[error("DNSKEY protocol {0}: must be 3")]
    Protocol(u8),
    /// A `(` without its `)`.
    #[error("'(' is not closed before the end of the file")]
    Unclosed,
    /// No record at all.
    #[error("no DS or DNSKEY record")]
    Empty,
}

impl From<WireError> for AnchorErrorKind {
    fn from(e: WireError) -> Self {
        AnchorErrorKind::Record(e)
    }
}

fn check_anchor(record: &Record) -> Result<(), AnchorErrorKind> {
    if record.class != Class::IN {
        return Err(AnchorErrorKind::Class(record.class));
    }
    if let Some(ds) = Ds::from_rdata(&record.data) {
        if let Some(dt) = DigestType::from_code(ds.digest_type) {
            if ds.digest.len() != dt.output_len() {
                return Err(AnchorErrorKind::DigestLength {
                    digest_type: ds.digest_type,
                    want: dt.output_len(),
                    got: ds.digest.len(),
                });
            }
        }
        return Ok(());
    }
    let Some(key) = Dnskey::from_rdata(&record.data) else {
        return Err(AnchorErrorKind::NotAnchorType(record.rtype()));
    };
    if key.protocol != super::key::DNSKEY_PROTOCOL {
        return Err(AnchorErrorKind::Protocol(key.protocol));
    }
    if !key.is_zone_key() || key.is_revoked() {
        return Err(AnchorErrorKind::NotZoneKey(key.flags));
    }
    Ok(())
}

/// The file's records as (first line number, text) pairs: comments removed, and the lines of a
/// record whose parentheses span lines joined. Blank lines are skipped.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, (usize, AnchorErrorKind)> {
    let mut out = Vec::new();
    let mut record = String::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let code = strip_comment(line);
        if depth == 0 {
            start = i + 1;
            record.clear();
        }
        for c in code.chars() {
            match c {
                '(' => depth += 1,
                // An unbalanced ')' is left for the record parser to report.
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        record.push_str(code);
        record.push(' ');
        if depth == 0 && !record.trim().is_empty() {
            out.push((start, std::mem::take(&mut record)));
        }
    }
    if depth > 0 {
        return Err((start, AnchorErrorKind::Unclosed));
    }
    Ok(out)
}

/// The line up to its `;` comment (a `;` inside quotes or escaped does not count).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dnssec::key::match_ds;
    use crate::dnssec::vectors;
    use crate::dnssec::verify::VerifyError;

    fn rec(line: &str) -> Record {
        parse_record_line(line, 0).unwrap()
    }

    fn parse(text: &str) -> Result<TrustAnchors, AnchorError> {
        TrustAnchors::parse(text, Path::new("anchors.txt"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(a) => panic!("{text:?} parsed: {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn built_in_root_anchors_parse_and_match_the_root_ksks() {
        let anchors = TrustAnchors::iana_root();
        assert_eq!(anchors.len(), 1);
        let root = anchors.get(&Name::root()).unwrap();
        assert_eq!(root.ds().len(), 2);
        assert!(root.dnskeys().is_empty());
        // Each DS is the digest of the KSK IANA publishes with it: a typo in either the file or
        // the vectors would show here.
        for (ksk, tag) in [
            (vectors::ROOT_KSK_2017, 20326),
            (vectors::ROOT_KSK_2024, 38696),
        ] {
            let key = rec(ksk);
            let keys = std::slice::from_ref(&key);
            assert_eq!(
                match_ds(root.ds(), keys),
                DsMatch::Keys(vec![&key]),
                "KSK {tag}"
            );
            assert_eq!(Dnskey::from_record(&key).unwrap().key_tag(), tag);
        }
        // The file's records are exactly those of IANA's XML.
        assert_eq!(
            root.ds(),
            [rec(vectors::ROOT_DS_2017), rec(vectors::ROOT_DS_2024)]
        );
    }

    #[test]
    fn root_anchor_authenticates_the_2019_root_dnskey_rrset() {
        let anchors = TrustAnchors::iana_root();
        let root = anchors
            .closest(&"www.example.com".parse().unwrap())
            .unwrap();
        assert!(root.zone().is_root());
        let dnskeys = [rec(vectors::ROOT_KSK_2017), rec(vectors::ROOT_ZSK_2019)];
        let rrsig = [rec(vectors::ROOT_DNSKEY_RRSIG_2019)];
        let mut budget = Budget::per_query();
        let v = root
            .verify_dnskeys(&dnskeys, &rrsig, vectors::ROOT_2019_NOW, &mut budget)
            .unwrap();
        assert_eq!((v.key_tag, v.wildcard), (20326, None));
        assert_eq!(budget.used(), 1);
        // Without KSK-2017 in the set, the DS anchors match nothing.
        assert!(matches!(
            root.verify_dnskeys(&dnskeys[1..], &rrsig, vectors::ROOT_2019_NOW, &mut budget),
            Err(VerifyError::NoKeyForDs { .. })
        ));
        // A DNSKEY anchor does the same job as the DS.
        let by_key = parse(vectors::ROOT_KSK_2017).unwrap();
        let root = by_key.get(&Name::root()).unwrap();
        assert!(root
            .verify_dnskeys(&dnskeys, &rrsig, vectors::ROOT_2019_NOW, &mut budget)
            .is_ok());
        // ... but only the anchored key's signature counts: KSK-2024 as the only anchor does
        // not accept a set signed by KSK-2017.
        let other = parse(vectors::ROOT_KSK_2024).unwrap();
        assert!(matches!(
            other.get(&Name::root()).unwrap().verify_dnskeys(
                &dnskeys,
                &rrsig,
                vectors::ROOT_2019_NOW,
                &mut budget
            ),
            Err(VerifyError::NoMatchingKey { .. })
        ));
    }

    #[test]
    fn files_with_several_zones_comments_and_multi_line_records() {
        let text = format!(
            "; unbound-style anchor file\n\
             \n\
             ;; id: . 1\n\
             {}\n\
             example.net. 3600 IN DNSKEY 257 3 13 ( ; the KSK\n\
             \tGojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb\n\
             \tkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA== ) ; {{id = 55648 (ksk)}}\n\
             $TTL 3600\n\
             Example.NET. IN DS 55648 13 2 b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17\n\
             {}\n",
            vectors::ROOT_DS_2017,
            vectors::ROOT_DS_2017
        );
        let a = parse(&text).unwrap();
        assert_eq!(a.len(), 2);
        let net = a.get(&"example.net".parse().unwrap()).unwrap();
        assert_eq!(net.dnskeys(), [rec(vectors::RFC6605_P256_DNSKEY)]);
        assert_eq!(net.ds().len(), 1);
        // Duplicates are kept once.
        assert_eq!(a.get(&Name::root()).unwrap().ds().len(), 1);
        // The closest anchor at or above a name.
        let zone = |n: &str| a.closest(&n.parse().unwrap()).map(|z| z.zone().to_string());
        assert_eq!(zone("www.EXAMPLE.net").as_deref(), Some("example.net."));
        assert_eq!(zone("example.net").as_deref(), Some("example.net."));
        assert_eq!(zone("net").as_deref(), Some("."));
        assert_eq!(
            zone("anything.example.org").as_deref(),
            Some("."),
            "the root covers all"
        );
        assert_eq!(
            a.iter().map(|z| z.zone().to_string()).collect::<Vec<_>>(),
            [".", "example.net."]
        );
        let only_net = parse(vectors::RFC6605_P256_DS).unwrap();
        assert!(only_net.closest(&"example.org".parse().unwrap()).is_none());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let cases = [
            ("", "anchors.txt: no DS or DNSKEY record"),
            ("; only a comment\n\n", "anchors.txt: no DS or DNSKEY record"),
            (
                "; x\n. IN A 192.0.2.1\n",
                "anchors.txt:2: A record: a trust anchor is a DS or DNSKEY record",
            ),
            (
                ". CH DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
                "anchors.txt:1: class CH",
            ),
            (
                "\n\n. IN DS 20326 8 2 E06D44B80B8F",
                "anchors.txt:3: DS digest of 6 octets, where digest type 2 has 32",
            ),
            (". IN DS 20326 8 2 XYZ", "anchors.txt:1: bad presentation format"),
            (". IN DNSKEY 257 3 8 !!!", "not base64"),
            (
                "example.net. DNSKEY 1 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
                "anchors.txt:1: DNSKEY flags 1: a trust anchor is a zone key",
            ),
            (
                "example.net. DNSKEY 385 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
                "DNSKEY flags 385",
            ),
            (
                "example.net. DNSKEY 257 2 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
                "DNSKEY protocol 2: must be 3",
            ),
            (
                "; header\nexample.net. DS 55648 13 2 (\n b4c8c1fe2e7477127b27115656ad6256\n",
                "anchors.txt:2: '(' is not closed",
            ),
            ("$ORIGIN example.\n", "anchors.txt:1: bad presentation format: directive"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.contains(want), "{text:?}: {got:?} lacks {want:?}");
        }
        // A digest type we do not know is kept (it makes the zone insecure, as such a DS would).
        assert!(parse(". IN DS 20326 8 3 00").is_ok());
        // A ';' inside quotes is not a comment.
        assert_eq!(strip_comment(r#"a "b;c" d ; e"#), r#"a "b;c" d "#);
        assert_eq!(strip_comment(r"a\;b;c"), r"a\;b");
    }

    #[test]
    fn unsupported_anchors_make_the_zone_insecure() {
        let dnskeys = [rec(vectors::RFC4034_DNSKEY)];
        let mut budget = Budget::per_query();
        // RSASHA1 (algorithm 5), as RFC 9905 asks.
        let a = parse(vectors::RFC4034_DS).unwrap();
        let zone = a.iter().next().unwrap();
        assert_eq!(
            zone.verify_dnskeys(&dnskeys, &[], 0, &mut budget),
            Err(VerifyError::UnsupportedAlgorithm)
        );
        let by_key = parse(vectors::RFC4034_DNSKEY).unwrap();
        assert_eq!(
            by_key
                .iter()
                .next()
                .unwrap()
                .verify_dnskeys(&dnskeys, &[], 0, &mut budget),
            Err(VerifyError::UnsupportedAlgorithm)
        );
        let digest = parse("dskey.example.com. DS 60485 13 3 00").unwrap();
        assert_eq!(
            digest
                .iter()
                .next()
                .unwrap()
                .verify_dnskeys(&dnskeys, &[], 0, &mut budget),
            Err(VerifyError::UnsupportedDigest)
        );
        assert_eq!(budget.used(), 0);
    }
}
