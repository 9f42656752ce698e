//! The DHCP server's lease file as host names: `laptop` with a lease on 192.168.1.23 answers
//! `laptop.lan` A 192.168.1.23 and `23.1.168.192.in-addr.arpa` PTR `laptop.lan`, as dnsmasq does
//! for its own leases.
//!
//! Two formats are read, both one lease per line:
//!
//! ```text
//! dnsmasq (dhcp.leases)   EXPIRY MAC IPv4 HOSTNAME CLIENT-ID        (HOSTNAME `*`: none)
//!                          duid SERVER-DUID                          (starts the DHCPv6 leases)
//!                          EXPIRY IAID IPv6 HOSTNAME CLIENT-DUID
//! odhcpd (leasefile)      # IFACE DUID IAID HOSTNAME VALID ID PREFIX-LEN ADDR/LEN [ADDR/LEN...]
//!                                                                    (HOSTNAME `-`: none)
//! ```
//!
//! EXPIRY and VALID are Unix times; dnsmasq writes 0 and odhcpd -1 for a lease that never ends,
//! odhcpd 0 for one that has ended. Expired leases are left out, and the table is rebuilt when the
//! earliest remaining lease ends (see [`DhcpNames`]), so a departed laptop's name goes with its
//! lease even when the file does not change. In [`LeaseFormat::Auto`] each line is read as what
//! it looks like (odhcpd's begin with `#`); odhcpd's host-file lines (`ADDR NAME...`, without
//! `#`) carry nothing its lease lines do not, and are skipped.
//!
//! A host name is taken only if it is one DNS label of letters, digits and hyphens (what
//! dnsmasq itself accepts from clients); odhcpd marks the others `broken`. Addresses with a
//! prefix length other than the host's own (odhcpd's delegated prefixes) are not host addresses
//! and are skipped.
//!
//! The file is written by another program and may be hostile (a client chooses its host name):
//! lines longer than [`MAX_LINE_LEN`] are skipped, at most [`MAX_LEASES`] leases are taken, at most
//! [`super::parse::MAX_WARNINGS`] warnings kept, and the caller bounds the file's size
//! ([`MAX_FILE_LEN`]). Nothing here is fatal.
//!
//! Limitations: names are served under one domain for every interface; a host name that two
//! clients share answers with both addresses; no AAAA from DHCPv4 clients' SLAAC addresses (the
//! DHCP server does not know them).

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::parse::{keep_warning, HostsLine, ParseWarning, MAX_WARNINGS};
use super::table::{self, HostsTable, LocalRecords};
use super::{FileStamp, HostsError, Watched};
use crate::handler::{local_answer, BoxFuture, Handler, HandlerResult, Next, Request};
use crate::wire::{Message, Name};

/// Largest lease file read: 16 MiB (a lease line is under 200 octets).
pub const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;
/// Longest line read.
pub const MAX_LINE_LEN: usize = 4096;
/// Most leases taken from one file.
pub const MAX_LEASES: usize = 100_000;

/// How the lease file is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LeaseFormat {
    /// Each line as what it looks like.
    #[default]
    Auto,
    /// dnsmasq's `dhcp.leases`.
    Dnsmasq,
    /// odhcpd's lease file.
    Odhcpd,
}

impl std::str::FromStr for LeaseFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LeaseFormat::Auto),
            "dnsmasq" => Ok(LeaseFormat::Dnsmasq),
            "odhcpd" => Ok(LeaseFormat::Odhcpd),
            _ => Err(format!(
                "{s:?} is not a lease file format (expected \"auto\", \"dnsmasq\" or \"odhcpd\")"
            )),
        }
    }
}

/// One usable lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// 1-based line number.
    pub line: usize,
    pub addr: IpAddr,
    /// The host name as one label (lower case as written).
    pub host: String,
    /// Unix time the lease ends; `None` for never.
    pub expires: Option<u64>,
}

/// What a parse produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedLeases {
    pub leases: Vec<Lease>,
    /// The first [`MAX_WARNINGS`] warnings.
    pub warnings: Vec<ParseWarning>,
    pub suppressed_warnings: usize,
    /// Leases left out because they had ended at `now`.
    pub expired: usize,
    /// True when parsing stopped at [`MAX_LEASES`].
    pub truncated: bool,
}

impl ParsedLeases {
    fn warn(&mut self, line: usize, reason: impl Into<String>) {
        keep_warning(
            &mut self.warnings,
            &mut self.suppressed_warnings,
            line,
            reason,
        );
    }

    /// When the first of the leases ends, if any ends.
    pub fn earliest_expiry(&self) -> Option<u64> {
        self.leases.iter().filter_map(|l| l.expires).min()
    }

    /// The leases as hosts-file lines: `HOST.DOMAIN` and `HOST` for each address (the first name
    /// is the one the reverse name points to).
    pub fn hosts_lines(&self, domain: &Name) -> Vec<HostsLine> {
        self.leases
            .iter()
            .filter_map(|l| {
                let bare: Name = l.host.parse().ok()?;
                let full = domain.prepend(l.host.as_bytes()).ok()?;
                Some(HostsLine {
                    line: l.line,
                    addr: l.addr,
                    names: vec![full, bare],
                })
            })
            .collect()
    }
}

/// Parses lease-file content as of Unix time `now`. Any bytes are accepted.
pub fn parse_leases(data: &[u8], format: LeaseFormat, now: u64) -> ParsedLeases {
    let mut out = ParsedLeases::default();
    for (idx, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line_no = idx + 1;
        if out.leases.len() >= MAX_LEASES {
            out.truncated = true;
            out.warn(line_no, format!("stopped after {MAX_LEASES} leases"));
            break;
        }
        if raw.len() > MAX_LINE_LEN {
            out.warn(line_no, format!("line longer than {MAX_LINE_LEN} octets"));
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            out.warn(line_no, "line is not UTF-8");
            continue;
        };
        let tokens: Vec<&str> = text.split_ascii_whitespace().take(64).collect();
        let odhcpd = tokens.first() == Some(&"#");
        let result = match (format, odhcpd) {
            (_, _) if tokens.is_empty() => continue,
            // odhcpd's host-file lines (`ADDR NAME...`) repeat its lease lines.
            (LeaseFormat::Auto, false) if tokens[0].parse::<IpAddr>().is_ok() => continue,
            (LeaseFormat::Dnsmasq, _) | (LeaseFormat::Auto, false) => dnsmasq_line(&tokens),
            (LeaseFormat::Odhcpd, true) | (LeaseFormat::Auto, true) => odhcpd_line(&tokens),
            // odhcpd's host-file lines repeat its lease lines.
            (LeaseFormat::Odhcpd, false) => continue,
        };
        match result {
            Ok(found) => {
                for (addr, host, expires) in found {
                    if expires.is_some_and(|t| t <= now) {
                        out.expired += 1;
                        continue;
                    }
                    if out.leases.len() < MAX_LEASES {
                        out.leases.push(Lease {
                            line: line_no,
                            addr,
                            host,
                            expires,
                        });
                    }
                }
            }
            Err(Skip::Quietly) => {}
            Err(Skip::Warn(why)) => out.warn(line_no, why),
        }
    }
    out
}

/// Why a line gives no lease.
enum Skip {
    /// Normal: no host name, a server DUID line, an ended lease.
    Quietly,
    Warn(String),
}

type Found = Vec<(IpAddr, String, Option<u64>)>;

/// `EXPIRY MAC-or-IAID ADDRESS HOSTNAME CLIENT-ID`, or `duid DUID`.
fn dnsmasq_line(t: &[&str]) -> Result<Found, Skip> {
    if t[0] == "duid" {
        return Err(Skip::Quietly);
    }
    let [expiry, _, addr, host, ..] = *t else {
        return Err(Skip::Warn(format!(
            "{} fields (expected EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID)",
            t.len()
        )));
    };
    let expiry: u64 = expiry
        .parse()
        .map_err(|_| Skip::Warn(format!("{expiry:?} is not an expiry time")))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| Skip::Warn(format!("{addr:?} is not an IP address")))?;
    if host == "*" {
        return Err(Skip::Quietly);
    }
    let host = host_label(host)?;
    Ok(vec![(addr, host, (expiry != 0).then_some(expiry))])
}

/// `# IFACE DUID IAID HOSTNAME VALID ID PREFIX-LEN ADDR/LEN...`
fn odhcpd_line(t: &[&str]) -> Result<Found, Skip> {
    if t.len() < 9 {
        // Other comments, and leases without addresses.
        return Err(Skip::Quietly);
    }
    let host = t[4];
    if host == "-" || host.starts_with("broken") {
        return Err(Skip::Quietly);
    }
    let valid: i64 = t[5]
        .parse()
        .map_err(|_| Skip::Warn(format!("{:?} is not a lease end time", t[5])))?;
    let expires = match valid {
        -1 => None,
        v if v <= 0 => return Err(Skip::Quietly),
        v => Some(v as u64),
    };
    let host = host_label(host)?;
    let mut found = Vec::new();
    for a in &t[8..] {
        let (addr, len) = a.split_once('/').unwrap_or((a, ""));
        let Ok(addr) = addr.parse::<IpAddr>() else {
            return Err(Skip::Warn(format!("{a:?} is not an address/length")));
        };
        let host_len = if addr.is_ipv4() { "32" } else { "128" };
        // A delegated prefix (IA_PD) is not a host's address.
        if len == host_len || len.is_empty() {
            found.push((addr, host.clone(), expires));
        }
    }
    Ok(found)
}

/// A host name as dnsmasq accepts it from a client: one label of letters, digits and hyphens,
/// not starting or ending with a hyphen.
fn host_label(s: &str) -> Result<String, Skip> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(Skip::Warn(format!(
            "{s:?} is not a host name (one label of letters, digits and hyphens)"
        )))
    }
}

/// What the DHCP-names stage serves.
#[derive(Clone, Debug)]
pub struct DhcpConfig {
    pub lease_file: PathBuf,
    pub format: LeaseFormat,
    /// Host names are served under this domain (and bare).
    pub domain: Name,
    /// TTL of the answers.
    pub ttl: u32,
}

/// The DHCP-names handler: answers the lease file's names and their reverse names, and passes
/// everything else on. Reloaded by its watcher when the file changes or a lease ends.
pub struct DhcpNames {
    config: DhcpConfig,
    empty: LocalRecords,
    /// The current table. Held only to clone or replace the `Arc`, never across `.await`.
    table: RwLock<Arc<HostsTable>>,
    /// The stamp of the file version loaded and the earliest lease end in it. Held only to read
    /// or write them, never across `.await`.
    loaded: Mutex<(Option<FileStamp>, Option<u64>)>,
    reloads: watch::Sender<u64>,
}

impl DhcpNames {
    /// Loads the lease file. A missing file is not an error (the DHCP server may not have written
    /// it yet): the table starts empty and the watcher picks the file up when it appears.
    pub fn new(config: DhcpConfig) -> Result<DhcpNames, HostsError> {
        let names = DhcpNames {
            config,
            empty: LocalRecords::default(),
            table: RwLock::new(Arc::new(HostsTable::default())),
            loaded: Mutex::new((None, None)),
            reloads: watch::Sender::new(0),
        };
        match names.load() {
            Ok(()) => {}
            Err(HostsError::Read { reason, .. }) if !names.config.lease_file.exists() => {
                warn!(
                    file = %names.config.lease_file.display(),
                    "DHCP lease file not found ({reason}); serving its names once it appears"
                );
            }
            Err(e) => return Err(e),
        }
        info!(
            file = %names.config.lease_file.display(),
            domain = %names.config.domain,
            names = names.current().name_count(),
            "DHCP names loaded"
        );
        Ok(names)
    }

    /// A receiver whose value is the number of successful reloads so far.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Polls the file every `interval` and reloads it on a change or when a lease ends.
    pub fn spawn_watcher(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
        interval: Duration,
    ) -> JoinHandle<()> {
        super::spawn_watcher(self, shutdown, interval)
    }

    /// Re-reads the file; on error the previous table stays.
    pub fn reload(&self) -> Result<(), HostsError> {
        let result = self.load();
        match &result {
            Ok(()) => {
                info!(names = self.current().name_count(), "DHCP names reloaded");
                self.reloads.send_modify(|n| *n += 1);
            }
            Err(e) => {
                warn!(error = %e, "DHCP lease file reload failed; keeping the previous names")
            }
        }
        result
    }

    fn current(&self) -> Arc<HostsTable> {
        // Lock held only to clone the Arc.
        Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, (Option<FileStamp>, Option<u64>)> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self) -> Result<(), HostsError> {
        let path = &self.config.lease_file;
        let read_err = |e: std::io::Error| HostsError::Read {
            path: path.clone(),
            reason: e.to_string(),
        };
        let stamp = FileStamp::of(path).map_err(read_err)?;
        // A version that cannot be used is not tried again until it changes (no warning every
        // poll); the previous names stay meanwhile.
        let failed = |e: HostsError| {
            self.lock_loaded().0 = Some(stamp);
            e
        };
        // Opening a FIFO would wait for a writer; a device or directory is no lease file.
        if !std::fs::metadata(path).map_err(read_err)?.is_file() {
            return Err(failed(HostsError::Read {
                path: path.clone(),
                reason: "not a regular file".into(),
            }));
        }
        let mut data = Vec::new();
        std::fs::File::open(path)
            .map_err(read_err)?
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut data)
            .map_err(|e| failed(read_err(e)))?;
        if data.len() as u64 > MAX_FILE_LEN {
            return Err(failed(HostsError::TooLarge {
                path: path.clone(),
                max: MAX_FILE_LEN,
            }));
        }
        let parsed = parse_leases(&data, self.config.format, unix_now());
        for w in &parsed.warnings {
            warn!(file = %path.display(), line = w.line, "skipping lease line: {}", w.reason);
        }
        if parsed.suppressed_warnings > 0 {
            warn!(file = %path.display(), count = parsed.suppressed_warnings, "more bad lease lines");
        }
        let (table, _) = HostsTable::build(&parsed.hosts_lines(&self.config.domain));
        debug!(
            leases = parsed.leases.len(),
            expired = parsed.expired,
            "lease file read"
        );
        // Locks held only for the assignments.
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        *self.lock_loaded() = (Some(stamp), parsed.earliest_expiry());
        Ok(())
    }

    fn answer(&self, query: &Message) -> Option<Message> {
        table::answer(&self.current(), &self.empty, query, self.config.ttl)
    }
}

impl Watched for DhcpNames {
    fn path(&self) -> Option<&Path> {
        Some(&self.config.lease_file)
    }

    fn stale(&self, now: Option<FileStamp>) -> bool {
        let (stamp, expiry) = *self.lock_loaded();
        // A file that is gone for the moment (being replaced) keeps the table until it is back.
        now.is_some() && (now != stamp || expiry.is_some_and(|t| t <= unix_now()))
    }

    fn reload_now(&self) {
        // Errors are logged by `reload`.
        let _ = self.reload();
    }
}

impl Handler for DhcpNames {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        match self.answer(&req.query) {
            Some(response) => {
                debug!(
                    answers = response.answers.len(),
                    "answered from DHCP leases"
                );
                Box::pin(std::future::ready(local_answer(&response)))
            }
            None => next.run(req),
        }
    }

    fn name(&self) -> &'static str {
        "dhcp"
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fuzz body for the lease parser: any input, in every format, parses without panicking, within
/// its caps, and builds a table whose names all lie under the domain or are one label.
#[doc(hidden)]
pub fn fuzz_leases(data: &[u8]) {
    let domain: Name = "lan".parse().unwrap_or_else(|_| Name::root());
    for format in [LeaseFormat::Auto, LeaseFormat::Dnsmasq, LeaseFormat::Odhcpd] {
        let parsed = parse_leases(data, format, 1_700_000_000);
        assert!(parsed.leases.len() <= MAX_LEASES);
        assert!(parsed.warnings.len() <= MAX_WARNINGS);
        for l in &parsed.leases {
            assert!(!l.host.is_empty() && l.host.len() <= 63, "{l:?}");
            assert!(l.expires.map_or(true, |t| t > 1_700_000_000), "{l:?}");
        }
        let lines = parsed.hosts_lines(&domain);
        for line in &lines {
            assert!(line.names[0].is_subdomain_of(&domain));
            assert_eq!(line.names[1].label_count(), 1);
        }
        let (table, _) = HostsTable::build(&lines);
        assert!(table.name_count() <= 2 * parsed.leases.len());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::wire::{RData, RType};

    const NOW: u64 = 1_700_000_000;

    fn hosts(p: &ParsedLeases) -> Vec<(String, String)> {
        p.leases
            .iter()
            .map(|l| (l.host.clone(), l.addr.to_string()))
            .collect()
    }

    #[test]
    fn dnsmasq_leases_v4_and_v6() {
        let text = "1700003600 aa:bb:cc:dd:ee:ff 192.168.1.23 laptop 01:aa:bb:cc:dd:ee:ff\n\
                    0 11:22:33:44:55:66 192.168.1.5 printer *\n\
                    1700003600 11:22:33:44:55:77 192.168.1.6 * *\n\
                    1600000000 11:22:33:44:55:88 192.168.1.7 gone *\n\
                    duid 00:01:00:01:2a:2b:2c:2d:aa:bb:cc:dd:ee:ff\n\
                    1700003600 12345678 fd00::23 laptop 00:01:00:01:aa\n";
        let p = parse_leases(text.as_bytes(), LeaseFormat::Auto, NOW);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            hosts(&p),
            [
                ("laptop".into(), "192.168.1.23".into()),
                ("printer".into(), "192.168.1.5".into()),
                ("laptop".into(), "fd00::23".into()),
            ]
        );
        assert_eq!(p.expired, 1);
        assert_eq!(p.leases[1].expires, None, "0 is infinite");
        assert_eq!(p.earliest_expiry(), Some(1_700_003_600));
        assert_eq!(
            p,
            parse_leases(text.as_bytes(), LeaseFormat::Dnsmasq, NOW),
            "the same either way"
        );
    }

    #[test]
    fn odhcpd_leases() {
        let text = "# br-lan 000100012a2b2c2d 1a2b3c4d laptop 1700003600 23 128 fd00::23/128 fd00:1::23/128\n\
                    fd00::23\tlaptop.lan\tlaptop\n\
                    # br-lan 000100012a2b2c2e 1 - 1700003600 24 128 fd00::24/128\n\
                    # br-lan 000100012a2b2c2f 2 broken\\x20name 1700003600 25 128 fd00::25/128\n\
                    # br-lan 000100012a2b2c30 3 router2 -1 0 56 fd00:2200::/56\n\
                    # br-lan 000100012a2b2c31 4 phone -1 26 128 fd00::26/128\n\
                    # br-lan 000100012a2b2c32 5 old 0 27 128 fd00::27/128\n\
                    # br-lan aabbccddeeff ipv4 desktop 1700003600 64 32 192.168.1.100/32\n";
        let p = parse_leases(text.as_bytes(), LeaseFormat::Auto, NOW);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            hosts(&p),
            [
                ("laptop".into(), "fd00::23".into()),
                ("laptop".into(), "fd00:1::23".into()),
                ("phone".into(), "fd00::26".into()),
                ("desktop".into(), "192.168.1.100".into()),
            ]
        );
        assert_eq!(p.leases[2].expires, None);
        let strict = parse_leases(text.as_bytes(), LeaseFormat::Odhcpd, NOW);
        assert_eq!(strict.leases, p.leases);
    }

    #[test]
    fn hostile_lines_are_skipped_and_bounded() {
        let text = format!(
            "1700003600 m 192.168.1.1 evil.example.com *\n\
             1700003600 m 192.168.1.2 -dash *\n\
             x m 192.168.1.3 host *\n\
             1700003600 m 999.1.1.1 host *\n\
             1700003600 m\n\
             \u{ff}\n\
             1700003600 m 192.168.1.4 {} *\n\
             1700003600 m 192.168.1.5 ok *\n",
            "a".repeat(64)
        );
        let p = parse_leases(text.as_bytes(), LeaseFormat::Auto, NOW);
        let lines: Vec<usize> = p.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(hosts(&p), [("ok".into(), "192.168.1.5".into())]);

        let mut flood = String::new();
        for i in 0..MAX_LEASES + 5 {
            flood.push_str(&format!(
                "0 m 10.{}.{}.{} h{i} *\n",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            ));
        }
        let p = parse_leases(flood.as_bytes(), LeaseFormat::Auto, NOW);
        assert!(p.truncated);
        assert_eq!(p.leases.len(), MAX_LEASES);
    }

    #[test]
    fn names_and_reverse_names_under_the_domain() {
        let p = parse_leases(b"0 m 192.168.1.23 Laptop *\n", LeaseFormat::Auto, NOW);
        let domain: Name = "home.arpa".parse().unwrap();
        let (table, _) = HostsTable::build(&p.hosts_lines(&domain));
        let empty = LocalRecords::default();
        let look = |name: &str, t: RType| {
            table::lookup(&table, &empty, &name.parse().unwrap(), t, 0)
                .map(|v| v.into_iter().map(|r| r.data).collect::<Vec<_>>())
        };
        assert_eq!(
            look("laptop.home.arpa", RType::A),
            Some(vec![RData::A([192, 168, 1, 23].into())])
        );
        assert_eq!(look("LAPTOP", RType::A).map(|v| v.len()), Some(1));
        assert_eq!(
            look("laptop.home.arpa", RType::AAAA),
            Some(vec![]),
            "NODATA"
        );
        assert_eq!(
            look("23.1.168.192.in-addr.arpa", RType::PTR),
            Some(vec![RData::Ptr("Laptop.home.arpa".parse().unwrap())])
        );
        assert_eq!(look("desktop.home.arpa", RType::A), None);
    }

    #[test]
    fn fuzz_body_survives_odd_input() {
        for input in [
            &b""[..],
            b"#",
            b"# a b c d e f g h",
            b"# a b c d 99999999999999999999 f g h/1",
            b"# a b c host -1 f 128 ::1/128 /128 1.2.3.4/ 1.2.3.4/32",
            b"0 0 0 0 0",
            b"\xff\xfe 0 m 1.2.3.4 x",
        ] {
            fuzz_leases(input);
        }
    }
}
