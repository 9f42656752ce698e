//! What happens once a response is ready: it is counted ([`QueryCounters`]) and, when the user
//! asked for it, logged, one line per query.
//!
//! ```text
//!   udp/tcp listener --Answered{proto, client, name, type, response, source, upstream, start}-->
//!       QueryCounters::record (always: one relaxed addition on this thread's shard)
//!       QueryLog::Tracing: an `info` event   QueryLog::File: a line to the writer thread
//! ```
//!
//! The line (the same fields in both sinks; in the file, separated by single spaces):
//!
//! ```text
//! 2026-12-06T22:40:00.123Z 127.0.0.1:40000 udp www.example.com. A NOERROR upstream tls://dns.quad9.net 12.403ms
//! time (UTC, ms) client     proto name          type rcode  source  upstream (or -)  duration
//! ```
//!
//! `source` is `cache`, `stale`, `local` (hosts, local records, special-use names), `upstream`, or
//! `none` (an error response: refused, malformed, every upstream failed). `duration` runs from the
//! moment the listener had the query to the response being ready.
//!
//! Why a writer thread for the file: a receive thread must never wait for a disk. Lines go through
//! a bounded channel ([`FILE_QUEUE`] lines); when the writer falls that far behind, lines are
//! dropped and counted, and the writer says how many in the file itself. Query logging is off by
//! default: the names a machine looks up are private.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tracing::info;

use crate::handler::Protocol;
use crate::metrics::{QueryCounters, Source};
use crate::wire::{Name, RType, Rcode};

/// Lines the file writer may be behind before lines are dropped.
pub const FILE_QUEUE: usize = 8192;

/// Where query lines go.
#[derive(Clone, Default)]
pub enum QueryLog {
    /// Nowhere (the default).
    #[default]
    Off,
    /// `info` events through the process's log.
    Tracing,
    /// A file, appended to.
    File(Arc<FileLog>),
}

impl std::fmt::Debug for QueryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryLog::Off => f.write_str("off"),
            QueryLog::Tracing => f.write_str("log"),
            QueryLog::File(file) => write!(f, "file {}", file.path.display()),
        }
    }
}

impl QueryLog {
    /// True unless [`QueryLog::Off`].
    pub fn is_on(&self) -> bool {
        !matches!(self, QueryLog::Off)
    }
}

/// The query log file cannot be opened.
#[derive(Debug, Error)]
#[error("cannot open the query log {}: {source}", path.display())]
pub struct QueryLogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A query log file and the thread that writes it.
pub struct FileLog {
    path: PathBuf,
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileLog({})", self.path.display())
    }
}

impl FileLog {
    /// Opens `path` for appending (created with mode 0640 if missing) and starts its writer.
    pub fn open(path: &Path) -> Result<FileLog, QueryLogError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(|source| QueryLogError {
                path: path.to_path_buf(),
                source,
            })?;
        let (tx, rx) = mpsc::sync_channel::<String>(FILE_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        std::thread::Builder::new()
            .name("dnsveil-querylog".into())
            .spawn(move || write_lines(file, &rx, &lost))
            .map_err(|source| QueryLogError {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FileLog {
            path: path.to_path_buf(),
            tx,
            dropped,
        })
    }

    fn send(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread: lines as they come, flushed whenever the queue runs empty; ends when every
/// sender is gone.
fn write_lines(file: File, rx: &mpsc::Receiver<String>, dropped: &AtomicU64) {
    let mut out = BufWriter::new(file);
    let mut reported = 0;
    while let Ok(line) = rx.recv() {
        let mut ok = out.write_all(line.as_bytes()).is_ok();
        while let Ok(line) = rx.try_recv() {
            ok &= out.write_all(line.as_bytes()).is_ok();
        }
        let lost = dropped.load(Ordering::Relaxed);
        if lost > reported {
            let note = format!(
                "# {} line(s) dropped: the writer fell behind\n",
                lost - reported
            );
            ok &= out.write_all(note.as_bytes()).is_ok();
            reported = lost;
        }
        if !(ok && out.flush().is_ok()) {
            crate::logging::log_limited!(tracing::Level::WARN, "query log write failed");
        }
    }
    let _ = out.flush();
}

/// A response about to be sent, with what the log line needs.
pub(super) struct Answered<'a> {
    pub protocol: Protocol,
    pub client: SocketAddr,
    /// The question's name in wire form (uncompressed), or empty if there was none.
    pub qname: &'a [u8],
    pub qtype: RType,
    pub response: &'a [u8],
    pub source: Source,
    pub upstream: Option<&'a str>,
    /// When the listener had the query; `None` when nothing is logged (not measured).
    pub started: Option<Instant>,
}

/// Counts `a` and logs it if the log is on.
#[inline]
pub(super) fn answered(metrics: &QueryCounters, log: &QueryLog, a: &Answered<'_>) {
    metrics.record_wire(a.protocol, a.qtype, a.response, a.source);
    match log {
        QueryLog::Off => {}
        QueryLog::Tracing => {
            let f = Fields::of(a);
            info!(
                proto = f.proto,
                client = %a.client,
                qname = %f.name,
                qtype = %a.qtype,
                rcode = %f.rcode,
                source = a.source.as_str(),
                upstream = f.upstream,
                duration = %f.duration,
                "query"
            );
        }
        QueryLog::File(file) => file.send(line(a, SystemTime::now())),
    }
}

/// The fields every sink writes, as text.
struct Fields<'a> {
    proto: &'static str,
    name: String,
    rcode: Rcode,
    upstream: &'a str,
    duration: String,
}

impl<'a> Fields<'a> {
    fn of(a: &Answered<'a>) -> Fields<'a> {
        Fields {
            proto: match a.protocol {
                Protocol::Udp => "udp",
                Protocol::Tcp => "tcp",
            },
            name: Name::from_wire(a.qname).map_or_else(|_| "-".to_string(), |n| n.to_string()),
            rcode: a
                .response
                .get(3)
                .map_or(Rcode::SERVFAIL, |b| Rcode(u16::from(b & 0x0f))),
            upstream: a.upstream.unwrap_or("-"),
            duration: a.started.map_or_else(
                || "-".to_string(),
                |t| format!("{:.3}ms", t.elapsed().as_secs_f64() * 1000.0),
            ),
        }
    }
}

/// The file's line for `a`, stamped `now`.
fn line(a: &Answered<'_>, now: SystemTime) -> String {
    let f = Fields::of(a);
    format!(
        "{} {} {} {} {} {} {} {} {}\n",
        utc(now),
        a.client,
        f.proto,
        f.name,
        a.qtype,
        f.rcode,
        a.source.as_str(),
        f.upstream,
        f.duration
    )
}

/// `now` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (y, m, d) = crate::wire::zone::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wire::Message;

    #[test]
    fn the_line_has_every_documented_field() {
        let name: Name = "www.Example.com".parse().unwrap();
        let mut resp = Message::response_to(&Message::query(name.clone(), RType::AAAA));
        resp.set_rcode(Rcode::NXDOMAIN);
        let wire = resp.encode().unwrap();
        let a = Answered {
            protocol: Protocol::Tcp,
            client: "127.0.0.1:40000".parse().unwrap(),
            qname: name.as_wire(),
            qtype: RType::AAAA,
            response: &wire,
            source: Source::Upstream,
            upstream: Some("tls://dns.quad9.net"),
            started: Some(Instant::now()),
        };
        let at = UNIX_EPOCH + Duration::from_millis(1_796_596_800_123);
        let l = line(&a, at);
        let fields: Vec<&str> = l.trim_end().split(' ').collect();
        assert_eq!(
            fields[..8],
            [
                "2026-12-06T22:40:00.123Z",
                "127.0.0.1:40000",
                "tcp",
                "www.Example.com.",
                "AAAA",
                "NXDOMAIN",
                "upstream",
                "tls://dns.quad9.net"
            ]
        );
        assert!(fields[8].ends_with("ms"), "{l}");
        assert_eq!(fields.len(), 9);
        assert!(l.ends_with('\n'));
        // No upstream, no timing: dashes keep the columns.
        let a = Answered {
            upstream: None,
            started: None,
            source: Source::Cache,
            ..a
        };
        assert!(line(&a, at).ends_with(" cache - -\n"));
    }

    #[test]
    fn the_file_gets_one_line_per_query() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.log");
        let log = QueryLog::File(Arc::new(FileLog::open(&path).unwrap()));
        let counters = QueryCounters::new();
        let name: Name = "a.test".parse().unwrap();
        let wire = Message::response_to(&Message::query(name.clone(), RType::A))
            .encode()
            .unwrap();
        for _ in 0..3 {
            answered(
                &counters,
                &log,
                &Answered {
                    protocol: Protocol::Udp,
                    client: "[::1]:5353".parse().unwrap(),
                    qname: name.as_wire(),
                    qtype: RType::A,
                    response: &wire,
                    source: Source::Local,
                    upstream: None,
                    started: Some(Instant::now()),
                },
            );
        }
        // Dropping the last sender ends the writer, which flushes first.
        drop(log);
        let deadline = Instant::now() + Duration::from_secs(5);
        let text = loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 3 || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text
            .lines()
            .all(|l| l.contains(" [::1]:5353 udp a.test. A NOERROR local - ")));
        assert_eq!(counters.snapshot()[0].count, 3);
    }
}
