//! From configured lists to an [`Index`]: files read, fetched lists taken from their last good
//! copy on disk, every line parsed, unusable lines counted.
//!
//! ```text
//!   block.lists[i] / block.allow[j] --File--> read (capped) ---------\
//!                                   --Url---> cache_dir/copy file ----+--> parse lines --> Index
//!   fetch (fetch.rs) --body--> write copy (temp file, rename) --> a later load reads it
//! ```
//!
//! A fetched list's only home is its copy on disk: the loader never keeps list texts in memory
//! between loads, so a reload after a fetch, a SIGHUP and a restart all read the same bytes, and a
//! failed fetch leaves the last good copy in place. A list that has never been fetched loads as
//! empty (with a warning) until its first fetch.
//!
//! A file list that cannot be read is an error (at start: a configuration error before anything
//! binds; on reload: the previous index stays). Unusable lines never are.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::answer::AnswerMode;
use super::index::{Full, Index, Kind, MAX_NAMES};
use super::parse::{parse_line, Line};

/// Largest list read or fetched, in octets (a million names in hosts format is about 30 MB).
pub const MAX_LIST_BYTES: u64 = 256 << 20;

/// How often fetched lists are refreshed when `block.refresh_secs` is absent.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(86_400);

/// Where the last good copies go when neither `block.cache_dir` nor `cache.cache_file` says.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/dnsveil";

/// What the blocking stage is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSettings {
    /// Block lists (with `@@` exceptions inside them going to the allow side).
    pub lists: Vec<ListSource>,
    /// Allow lists: every rule in them allows.
    pub allow: Vec<ListSource>,
    pub answer: AnswerMode,
    /// TTL of blocked answers, in seconds.
    pub ttl: u32,
    /// How often lists are reloaded and URL lists fetched.
    pub refresh: Duration,
    /// Where the last good copies of fetched lists are kept; None: [`DEFAULT_CACHE_DIR`] (the
    /// application puts them beside the cache file when there is one).
    pub cache_dir: Option<PathBuf>,
    /// An extra PEM CA trusted for list URLs (besides the web PKI roots).
    pub ca_file: Option<PathBuf>,
}

impl BlockSettings {
    /// True when there is nothing to block.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Every list with its config key and kind, block lists first.
    pub fn sources(&self) -> impl Iterator<Item = (String, Kind, &ListSource)> + '_ {
        let block = self
            .lists
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("block.lists[{i}]"), Kind::Block, s));
        let allow = self
            .allow
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("block.allow[{i}]"), Kind::Allow, s));
        block.chain(allow)
    }

    /// The URL lists.
    pub fn urls(&self) -> impl Iterator<Item = &ListUrl> + '_ {
        self.lists
            .iter()
            .chain(&self.allow)
            .filter_map(|s| match s {
                ListSource::Url(u) => Some(u),
                ListSource::File(_) => None,
            })
    }

    /// Where the last good copy of `url` is kept.
    pub fn copy_path(&self, url: &ListUrl) -> PathBuf {
        self.copy_dir().join(url.copy_name())
    }

    /// The directory of the last good copies.
    pub fn copy_dir(&self) -> &Path {
        self.cache_dir
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CACHE_DIR))
    }
}

impl Default for BlockSettings {
    fn default() -> Self {
        BlockSettings {
            lists: Vec::new(),
            allow: Vec::new(),
            answer: AnswerMode::default(),
            ttl: super::DEFAULT_TTL,
            refresh: DEFAULT_REFRESH,
            cache_dir: None,
            ca_file: None,
        }
    }
}

/// Where a list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListSource {
    File(PathBuf),
    Url(ListUrl),
}

impl fmt::Display for ListSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListSource::File(p) => write!(f, "{}", p.display()),
            ListSource::Url(u) => write!(f, "{u}"),
        }
    }
}

/// An `https://HOST[:PORT]/PATH` list address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListUrl {
    text: String,
    host: String,
    port: u16,
    path: String,
}

impl ListUrl {
    /// The host: a name, or an IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query, at least `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file name of this URL's last good copy: a digest of the URL, so that two lists never
    /// share a copy and no URL can name a path.
    pub fn copy_name(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.text.as_bytes());
        let hex: String = digest.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("blocklist-{hex}.txt")
    }
}

impl fmt::Display for ListUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ListUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri: http::Uri = s
            .parse()
            .map_err(|e| format!("{s:?} is not a URL: {e} (expected https://HOST/PATH)"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!(
                "{s:?}: only https:// list URLs are fetched (lists are never fetched in \
                 plaintext); a local file is named by its path"
            ));
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("{s:?} has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(format!(
                "{s:?}: user information in a list URL is not supported"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        Ok(ListUrl {
            text: s.to_string(),
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(443),
            path: uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
        })
    }
}

impl ListSource {
    /// A list from its config text: an `https://` URL or a path (relative to `base`).
    pub fn parse(text: &str, base: &Path) -> Result<ListSource, String> {
        if text.trim().is_empty() {
            return Err("empty list (expected a file path or an https:// URL)".into());
        }
        if text.contains("://") {
            return text.parse().map(ListSource::Url);
        }
        Ok(ListSource::File(base.join(text)))
    }
}

/// Why lists could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A list file cannot be read.
    #[error("{key}: {}: {source}", path.display())]
    Read {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A list file is not a regular file.
    #[error("{key}: {} is not a regular file", path.display())]
    NotAFile { key: String, path: PathBuf },
    /// A list is larger than [`MAX_LIST_BYTES`].
    #[error("{key}: {} is larger than {MAX_LIST_BYTES} octets", path.display())]
    TooLarge { key: String, path: PathBuf },
    /// The lists hold more than [`MAX_NAMES`] names.
    #[error("the lists hold more than {MAX_NAMES} names")]
    TooManyNames,
    /// More lists than an index can tell apart.
    #[error("too many lists")]
    TooManyLists,
}

/// What one list gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListReport {
    pub key: String,
    pub name: String,
    /// Names added (block and allow).
    pub added: usize,
    /// Names already in the index from an earlier rule.
    pub duplicates: usize,
    /// Lines that hold a rule this parser cannot use.
    pub unusable: usize,
    /// The first unusable line: its number and why.
    pub first_unusable: Option<(u32, &'static str)>,
    /// A URL list with no copy on disk yet (loaded as empty).
    pub not_fetched: bool,
}

/// What a load gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub lists: Vec<ListReport>,
    pub blocked: usize,
    pub allowed: usize,
    pub heap_bytes: usize,
    pub elapsed: Duration,
}

/// Reads and indexes every list of `settings`.
pub fn build_index(settings: &BlockSettings) -> Result<(Index, LoadReport), LoadError> {
    let started = Instant::now();
    let mut index = Index::new();
    let mut report = LoadReport::default();
    for (key, kind, source) in settings.sources() {
        let name = source.to_string();
        let list = index.add_list(&name).ok_or(LoadError::TooManyLists)?;
        let mut r = ListReport {
            key: key.clone(),
            name,
            ..ListReport::default()
        };
        let text = match source {
            ListSource::File(path) => read_list(&key, path)?,
            ListSource::Url(url) => match read_list(&key, &settings.copy_path(url)) {
                Ok(text) => text,
                Err(LoadError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    r.not_fetched = true;
                    Vec::new()
                }
                Err(e) => return Err(e),
            },
        };
        add_text(&mut index, kind, list, &text, &mut r)?;
        report.lists.push(r);
    }
    index.shrink();
    report.blocked = index.blocked();
    report.allowed = index.allowed();
    report.heap_bytes = index.heap_bytes();
    report.elapsed = started.elapsed();
    Ok((index, report))
}

/// Parses `text` (one list) into `index` as list number `list`; lines of an allow list allow.
pub fn add_text(
    index: &mut Index,
    kind: Kind,
    list: u16,
    text: &[u8],
    r: &mut ListReport,
) -> Result<(), LoadError> {
    // One line is at most one name in most lists: room for them all at once, and arena for about
    // the text's size (a name's wire form and attribution are about as long as its line).
    let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
    index.reserve(kind, lines, text.len());
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = match std::str::from_utf8(raw) {
            Ok(s) => parse_line(s),
            Err(_) => Line::Unusable("not UTF-8 text"),
        };
        let (rule_kind, names) = match line {
            Line::Nothing => continue,
            Line::Unusable(why) => {
                r.unusable += 1;
                r.first_unusable.get_or_insert((line_no, why));
                continue;
            }
            Line::Block(names) => (kind, names),
            Line::Allow(name) => (Kind::Allow, vec![name]),
        };
        for name in names {
            match index.insert(rule_kind, &name, list, line_no) {
                Ok(true) => r.added += 1,
                Ok(false) => r.duplicates += 1,
                Err(Full::Names) => return Err(LoadError::TooManyNames),
            }
        }
    }
    Ok(())
}

/// The bytes of the list file at `path`, at most [`MAX_LIST_BYTES`].
pub fn read_list(key: &str, path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_err = |source| LoadError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_LIST_BYTES {
        return Err(LoadError::TooLarge {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_LIST_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_LIST_BYTES {
        return Err(LoadError::TooLarge {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// Writes `body` as the last good copy at `path`: a temporary file beside it, then a rename, so a
/// crash never leaves half a list where the last good one was.
pub fn write_copy(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    #[test]
    fn list_urls_are_https_only_and_copies_are_named_by_digest() {
        let u: ListUrl = "https://Lists.Example:8443/a/hosts.txt?x=1"
            .parse()
            .unwrap();
        assert_eq!(
            (u.host(), u.port(), u.path()),
            ("lists.example", 8443, "/a/hosts.txt?x=1")
        );
        let v: ListUrl = "https://[::1]/l".parse().unwrap();
        assert_eq!((v.host(), v.port()), ("::1", 443));
        assert!("http://lists.example/l".parse::<ListUrl>().is_err());
        assert!("https://user@lists.example/l".parse::<ListUrl>().is_err());
        assert_ne!(u.copy_name(), v.copy_name());
        assert!(u.copy_name().starts_with("blocklist-") && !u.copy_name().contains('/'));
        assert!(matches!(
            ListSource::parse("ads.txt", Path::new("/etc/dnsveil")).unwrap(),
            ListSource::File(p) if p == Path::new("/etc/dnsveil/ads.txt")
        ));
        assert!(ListSource::parse("ftp://x/y", Path::new("/")).is_err());
    }

    #[test]
    fn every_format_in_one_list_and_unusable_lines_are_counted() {
        let text = b"# a hosts file\r\n0.0.0.0 hosts.example\n||adblock.example^\n\
                     plain.example\n@@||ok.adblock.example^\n/regex/\n\xff\xfe\nplain.example\n";
        let mut ix = Index::new();
        let l = ix.add_list("mixed").unwrap();
        let mut r = ListReport::default();
        add_text(&mut ix, Kind::Block, l, text, &mut r).unwrap();
        assert_eq!((r.added, r.duplicates, r.unusable), (4, 1, 2));
        assert_eq!(r.first_unusable.unwrap().0, 6);
        assert_eq!(ix.blocked(), 3);
        assert_eq!(ix.allowed(), 1);
        // In an allow list, a plain name allows.
        let a = ix.add_list("allow").unwrap();
        add_text(
            &mut ix,
            Kind::Allow,
            a,
            b"plain.example\n",
            &mut ListReport::default(),
        )
        .unwrap();
        assert_eq!(ix.allowed(), 2);
    }
}
