//! The hosts/local-records handler: answers names from an /etc/hosts-format file and from records
//! in the config, before anything is forwarded.
//!
//! ```text
//!   Request --name known locally?--yes--> A/AAAA/PTR/local records, or NODATA --> client
//!                                 \--no--> next handler (forwarding rules)
//! ```
//!
//! What is answered, and why a known name never leaks upstream, is in [`table`]; the file format is
//! in [`parse`]. Answers are NOERROR with AA=0 and RA=1, as dnsmasq answers from /etc/hosts: we are
//! a resolver relaying local data, not an authoritative server for a zone (and we have no SOA to
//! back an AA=1 negative answer). Hosts-file answers carry [`HostsConfig::ttl`] (default 0, so
//! clients and downstream caches do not keep them past a reload); local records keep their own TTL.
//!
//! Reloading: [`Hosts::reload`] re-reads the file and swaps the table atomically (readers clone an
//! `Arc` under a lock held only for that clone). [`Hosts::spawn_watcher`] polls the file's
//! modification time, length and inode and reloads on change; the process edge calls `reload` on
//! SIGHUP. A reload that fails (file gone, unreadable, too large) keeps the previous table.
//!
//! Bounds: the file is read up to [`MAX_FILE_LEN`] octets (a larger file is an error), lines up to
//! [`parse::MAX_LINE_LEN`], at most [`parse::MAX_NAMES`] (1,000,000) names and
//! [`table::MAX_ADDRS_PER_NAME`] addresses per name and family.
//!
//! The DHCP lease names ([`leases`]) are a second stage built from the same parts: the table, the
//! lookup and the file watcher.
//!
//! Limitations: change detection by polling (no inotify), so a rewrite that keeps length, inode and
//! modification time (within the filesystem's timestamp resolution) goes unnoticed until the next
//! SIGHUP; only class IN is answered.

pub mod leases;
pub mod parse;
pub mod table;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::handler::{local_answer, BoxFuture, Handler, HandlerResult, Next, Request};
use crate::wire::{Message, Record};
use table::{HostsTable, LocalRecords};

/// Largest hosts file we read: 64 MiB (a million ad-block lines take about 30 MiB).
pub const MAX_FILE_LEN: u64 = 64 * 1024 * 1024;

/// What the handler serves.
#[derive(Clone, Debug, Default)]
pub struct HostsConfig {
    /// An /etc/hosts-format file, if any.
    pub file: Option<PathBuf>,
    /// Local records from the config, already parsed.
    pub records: Vec<Record>,
    /// TTL of answers from the hosts file (0: not cached downstream).
    pub ttl: u32,
}

/// Why the hosts file could not be loaded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HostsError {
    #[error("cannot read hosts file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("hosts file {path} is larger than {max} octets")]
    TooLarge { path: PathBuf, max: u64 },
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The hosts/local-records handler.
pub struct Hosts {
    file: Option<PathBuf>,
    ttl: u32,
    local: LocalRecords,
    /// The current hosts table. Held only to clone or replace the `Arc`, never across `.await`.
    table: RwLock<Arc<HostsTable>>,
    /// The stamp of the file version last loaded. Held only to read or write it, never across
    /// `.await`.
    stamp: Mutex<Option<FileStamp>>,
    /// Counts successful reloads; lets tests and the app wait for one.
    reloads: watch::Sender<u64>,
}

impl Hosts {
    /// Loads the file (if any) and indexes the local records. A missing or unreadable file is an
    /// error here (the config named it); bad lines are only warnings.
    pub fn new(config: HostsConfig) -> Result<Hosts, HostsError> {
        let hosts = Hosts {
            file: config.file,
            ttl: config.ttl,
            local: LocalRecords::new(config.records),
            table: RwLock::new(Arc::new(HostsTable::default())),
            stamp: Mutex::new(None),
            reloads: watch::Sender::new(0),
        };
        hosts.load()?;
        info!(
            file = %shown(hosts.file.as_deref()),
            names = hosts.current().name_count(),
            local_records = hosts.local.len(),
            "hosts loaded"
        );
        Ok(hosts)
    }

    /// Re-reads the file and swaps the table in. On error the previous table stays.
    pub fn reload(&self) -> Result<(), HostsError> {
        let result = self.load();
        match &result {
            Ok(()) => {
                info!(file = %shown(self.file.as_deref()), names = self.current().name_count(), "hosts reloaded");
                self.reloads.send_modify(|n| *n += 1);
            }
            Err(e) => warn!(error = %e, "hosts reload failed; keeping the previous table"),
        }
        result
    }

    /// A receiver whose value is the number of successful reloads so far.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Polls the file every `interval` and reloads when its stamp changes, until `shutdown`.
    /// Without a file the task ends at once. Reading happens on the blocking pool.
    pub fn spawn_watcher(
        self: Arc<Self>,
        shutdown: CancellationToken,
        interval: Duration,
    ) -> JoinHandle<()> {
        spawn_watcher(self, shutdown, interval)
    }

    fn current(&self) -> Arc<HostsTable> {
        // Lock held only to clone the Arc.
        Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn lock_stamp(&self) -> std::sync::MutexGuard<'_, Option<FileStamp>> {
        self.stamp.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads, parses and installs the file.
    fn load(&self) -> Result<(), HostsError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let read_err = |e: std::io::Error| HostsError::Read {
            path: path.clone(),
            reason: e.to_string(),
        };
        // Stamp first: a change made while we read is then seen by the next poll.
        let stamp = FileStamp::of(path).map_err(read_err)?;
        let mut data = Vec::new();
        std::fs::File::open(path)
            .map_err(read_err)?
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut data)
            .map_err(read_err)?;
        if data.len() as u64 > MAX_FILE_LEN {
            return Err(HostsError::TooLarge {
                path: path.clone(),
                max: MAX_FILE_LEN,
            });
        }
        let parsed = parse::parse_hosts(&data);
        for w in &parsed.warnings {
            warn!(file = %path.display(), line = w.line, "skipping hosts line: {}", w.reason);
        }
        if parsed.suppressed_warnings > 0 {
            warn!(file = %path.display(), count = parsed.suppressed_warnings, "more bad hosts lines");
        }
        let (table, dropped) = HostsTable::build(&parsed.lines);
        if dropped > 0 {
            warn!(
                file = %path.display(),
                dropped,
                "addresses beyond {} per name ignored",
                table::MAX_ADDRS_PER_NAME
            );
        }
        // Locks held only for the assignments.
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        *self.lock_stamp() = Some(stamp);
        Ok(())
    }

    /// The response for a query, or `None` to pass it on.
    fn answer(&self, query: &Message) -> Option<Message> {
        table::answer(&self.current(), &self.local, query, self.ttl)
    }
}

impl Watched for Hosts {
    fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn stale(&self, now: Option<FileStamp>) -> bool {
        // Gone for the moment (an editor replacing it): keep the old table.
        now.is_some() && now != *self.lock_stamp()
    }

    fn reload_now(&self) {
        // Errors are logged by `reload`.
        let _ = self.reload();
    }
}

/// A table loaded from a file that a watcher keeps current.
trait Watched: Send + Sync + 'static {
    /// The file, if any.
    fn path(&self) -> Option<&Path>;
    /// Whether the table should be reloaded, given the file's stamp now (None: cannot be read).
    fn stale(&self, now: Option<FileStamp>) -> bool;
    /// Reloads (and logs the outcome).
    fn reload_now(&self);
}

/// Polls `watched`'s file every `interval` (one `stat`) and reloads it on the blocking pool when
/// it is stale, until `shutdown`. Without a file the task ends at once.
fn spawn_watcher<W: Watched>(
    watched: Arc<W>,
    shutdown: CancellationToken,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(path) = watched.path().map(Path::to_path_buf) else {
            return;
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            // The stat runs here (a system call on a local file, microseconds); only a changed
            // file is read and parsed on the blocking pool. A stat there too kept a pool thread
            // alive for good (its keep-alive is longer than the poll interval) and woke it at
            // every poll, on a laptop or router with nothing to do.
            if watched.stale(FileStamp::of(&path).ok()) {
                let this = Arc::clone(&watched);
                let _ = tokio::task::spawn_blocking(move || this.reload_now()).await;
            }
        }
        debug!(file = %path.display(), "file watcher stopped");
    })
}

impl Handler for Hosts {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        match self.answer(&req.query) {
            Some(response) => {
                debug!(answers = response.answers.len(), "answered from hosts");
                Box::pin(std::future::ready(local_answer(&response)))
            }
            None => next.run(req),
        }
    }

    fn name(&self) -> &'static str {
        "hosts"
    }
}

/// A hosts file path for the log: the path, or "none".
fn shown(file: Option<&Path>) -> std::path::Display<'_> {
    file.unwrap_or(Path::new("none")).display()
}

/// Fuzz body for the hosts parser: any input must parse without panicking, within the caps, and
/// build a table.
#[doc(hidden)]
pub fn fuzz_hosts(data: &[u8]) {
    let parsed = parse::parse_hosts(data);
    assert!(parsed.name_count() <= parse::MAX_NAMES);
    assert!(parsed.warnings.len() <= parse::MAX_WARNINGS);
    for line in &parsed.lines {
        assert!(!line.names.is_empty());
    }
    let (table, _) = HostsTable::build(&parsed.lines);
    assert!(table.name_count() <= parsed.name_count());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn fuzz_body_survives_odd_input() {
        for input in [
            &b""[..],
            b"\n\n\n",
            b"#",
            b"1.2.3.4",
            b"1.2.3.4 a b c\r\n::1 a",
            b"\xff\x00\x01 \xfe",
            b"::ffff:1.2.3.4 mapped. ..",
        ] {
            fuzz_hosts(input);
        }
    }
}
