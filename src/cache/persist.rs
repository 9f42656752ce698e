//! Warm restarts: the cache written to a file and read back, so that a restarted resolver (or a
//! laptop booting on a network whose upstreams are not reachable yet) starts with what it knew.
//!
//! ```text
//!   file  = magic "DNSVEILC" | version u16 | saved at u64 | count u32 | record* | SHA-256 of all before
//!   record = inserted at u64 | key length u16 | key | response length u16 | response
//!   (integers big-endian; times in milliseconds since the Unix epoch, wall clock)
//! ```
//!
//! A record is an entry's key and the complete response it stored (TTLs as stored, not counted
//! down), with the wall-clock time it was stored. Both times come from the cache's
//! [`WallClock`](crate::clock::WallClock) (tests move it): saving dates each entry by the wall
//! clock now less its age on the cache's TTL clock. Reading one back ages it by the wall-clock time
//! that passed since then, rounded up to whole seconds (TTLs count whole seconds, so a TTL never
//! reads more than it did when it was saved): it is rebuilt as if inserted at that time, so its
//! TTLs count down from there, and it is dropped when it is past its stale limit (or simply
//! expired, with serve-stale off). SERVFAIL entries are not written.
//!
//! The file is hostile input, like a packet: the whole file is refused when it is not a regular
//! file, not ours (magic), of another version, larger than the cache could hold, claims more
//! entries than the cache holds, does not match its digest (truncated or corrupt), or was written
//! in the future. Each record is
//! then checked like a network answer: its key must be exactly what the cache would build for its
//! question, its response must parse (`Message::parse`) and be NOERROR or NXDOMAIN, and it is stored
//! only through `policy::prepare`, which applies today's TTL clamps. A record that fails is skipped
//! and counted. The digest catches accidents (a torn write, a truncated copy), not an attacker who
//! can write the file: one who can write the daemon's state directory could write its config too.
//!
//! Reading never waits on what is at the path. A FIFO, device, socket or directory is refused on its
//! type before it is opened (opening a FIFO for reading waits for a writer; `/dev/zero` never
//! ends); a symbolic link is followed, and refused the same way if it leads to one of those. The
//! file is opened non-blocking, so that one swapped in after that check cannot block the open, and
//! its type and length are checked again on the open file. At most the size bound plus one octet is
//! read ([`Cache::max_file_len`]: what this cache could have written, derived from its entry and
//! byte limits), so a file that grows, or whose stated length is wrong (`/proc`), is refused
//! without being read whole.
//!
//! Writes go to a temporary file in the same directory, are synced, and are renamed over the old
//! file, so a crash mid-write leaves the previous file intact. A path that holds something other
//! than a regular file (or a link to one) is not replaced: renaming over `/dev/null` would replace
//! the device for every program when running as root.
//!
//! Limitations: a save holds each shard's lock while that shard's entries are copied out; the hold
//! after a failed refresh and the hit counts are not kept. The type checks cannot stop a process
//! that can write the directory from swapping the path between the check and the rename of a save
//! (see above on who can write the state directory). The size bound is proportional to the
//! cache's byte budget (twice it, plus a record header per entry), so a large cache still reads a
//! large file: about 206 MB for the default 100,000 entries.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use ring::digest::{digest, SHA256};
use thiserror::Error;

use crate::wire::{Message, Rcode};

use super::entry::Age;
use super::key::Key;
use super::shard::hash_key;
use super::{policy, Cache};

/// The first octets of every cache file.
pub const MAGIC: &[u8; 8] = b"DNSVEILC";
/// The format version written and read.
pub const VERSION: u16 = 1;
/// Magic, version, save time, record count.
pub(super) const HEADER_LEN: usize = 8 + 2 + 8 + 4;
const DIGEST_LEN: usize = 32;
/// Inserted-at, key length, response length.
const RECORD_FIXED: usize = 8 + 2 + 2;
/// A file saved up to this far in the future is taken as saved now (clocks are adjusted).
const FUTURE_SLACK_MS: u64 = 5 * 60 * 1000;

/// Why a cache file was not read or written. A file that is refused is left in place and will be
/// replaced by the next save.
#[derive(Debug, Error)]
pub enum PersistError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file ({kind})", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("not a dnsveil cache file")]
    Foreign,
    #[error("cache file version {0} is not supported (expected {VERSION})")]
    Version(u16),
    #[error("cache file is truncated or corrupt")]
    Corrupt,
    #[error("cache file is larger than this cache can hold ({0} bytes)")]
    TooLarge(u64),
    #[error("cache file holds {0} entries, more than this cache can hold")]
    TooMany(u32),
    #[error("cache file was written {0} s in the future (is the system clock right?)")]
    FromTheFuture(u64),
}

impl PersistError {
    /// True when the file does not exist (no cache was saved yet): not worth a warning.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PersistError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Entries stored in the cache.
    pub loaded: usize,
    /// Entries dropped because they were past their stale limit (or expired, without serve-stale).
    pub expired: usize,
    /// Entries skipped because they did not pass the checks.
    pub rejected: usize,
}

impl Cache {
    /// Writes the cache to `path` (atomically: temporary file, sync, rename) and returns the number
    /// of entries written, dated by the cache's wall clock. Blocking: call it from a blocking
    /// thread.
    pub fn save(&self, path: &Path) -> Result<usize, PersistError> {
        let io = |source| PersistError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Only a regular file (or a link to one), or nothing, is replaced.
        match fs::metadata(path) {
            Ok(meta) => check_regular(path, &meta.file_type())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let (bytes, count) = self.encode_file(self.wall_clock.unix_ms());
        write_atomically(path, &bytes).map_err(io)?;
        Ok(count)
    }

    /// Reads a cache file written by [`Cache::save`] into the cache, its entries aged to the
    /// cache's wall clock. Blocking: call it from a blocking thread, before serving.
    pub fn load(&self, path: &Path) -> Result<LoadReport, PersistError> {
        let bytes = read_bounded(path, self.max_file_len())?;
        self.decode_file(&bytes, self.wall_clock.unix_ms())
    }

    /// The most entries and entry octets the cache holds: its shards' limits added up (a shard
    /// may hold a little more than its share of `capacity`, and at least one maximal message).
    fn held_limits(&self) -> (usize, usize) {
        // Every shard is built with the same limits.
        let (entries, bytes) = super::lock(&self.shards[0]).limits();
        let n = self.shards.len();
        (entries.saturating_mul(n), bytes.saturating_mul(n))
    }

    /// The largest file this cache could have written: a record header per entry, and per entry
    /// its key and response, each no longer than the entry itself. The size bound for reading.
    pub(super) fn max_file_len(&self) -> u64 {
        let (entries, bytes) = self.held_limits();
        (entries as u64)
            .saturating_mul(RECORD_FIXED as u64)
            .saturating_add((bytes as u64).saturating_mul(2))
            .saturating_add((HEADER_LEN + DIGEST_LEN) as u64)
    }

    /// The file's bytes for the cache as it is at `now_unix_ms`, and the number of records.
    pub(super) fn encode_file(&self, now_unix_ms: u64) -> (Vec<u8>, usize) {
        let mut body = Vec::new();
        let mut count: u32 = 0;
        for shard in self.shards.iter() {
            // Lock held while this shard's entries are copied out; nothing awaits here.
            let guard = super::lock(shard);
            let now_ms = self.now_ms();
            let window = self.stale_window_ms();
            for entry in guard.entries() {
                // SERVFAIL entries (never stale) are not written, live or not.
                if !entry.stale_ok() || entry.age(now_ms, window) == Age::Dead {
                    continue;
                }
                let wire = entry.stored_response();
                let key = entry.key();
                if wire.is_empty() || wire.len() > usize::from(u16::MAX) || count == u32::MAX {
                    continue;
                }
                let age = now_ms.saturating_sub(entry.inserted_ms());
                body.extend_from_slice(&now_unix_ms.saturating_sub(age).to_be_bytes());
                body.extend_from_slice(&(key.len() as u16).to_be_bytes());
                body.extend_from_slice(key);
                body.extend_from_slice(&(wire.len() as u16).to_be_bytes());
                body.extend_from_slice(&wire);
                count += 1;
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + DIGEST_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&now_unix_ms.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&body);
        let sum = digest(&SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        (out, count as usize)
    }

    /// Checks a whole file (see the module docs) and stores its records, aged to `now_unix_ms`.
    pub(super) fn decode_file(
        &self,
        bytes: &[u8],
        now_unix_ms: u64,
    ) -> Result<LoadReport, PersistError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC[..] {
            return Err(PersistError::Foreign);
        }
        if bytes.len() < HEADER_LEN + DIGEST_LEN {
            return Err(PersistError::Corrupt);
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(PersistError::Version(version));
        }
        let (signed, sum) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if digest(&SHA256, signed).as_ref() != sum {
            return Err(PersistError::Corrupt);
        }
        let saved_at = be_u64(&signed[10..18]);
        let count = u32::from_be_bytes([signed[18], signed[19], signed[20], signed[21]]);
        if count as usize > self.held_limits().0 {
            return Err(PersistError::TooMany(count));
        }
        if saved_at > now_unix_ms.saturating_add(FUTURE_SLACK_MS) {
            return Err(PersistError::FromTheFuture((saved_at - now_unix_ms) / 1000));
        }
        // Taken as saved no later than now.
        let now_unix_ms = now_unix_ms.max(saved_at);

        // First the structure, whole, so that a bad file stores nothing.
        // The count is only a claim until the records are there: reserve no more than the
        // octets could hold.
        let mut records = Vec::with_capacity((count as usize).min(signed.len() / RECORD_FIXED));
        let mut rest = &signed[HEADER_LEN..];
        for _ in 0..count {
            let (record, after) = split_record(rest).ok_or(PersistError::Corrupt)?;
            records.push(record);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(PersistError::Corrupt);
        }

        let mut report = LoadReport::default();
        for r in records {
            match self.restore(r.inserted_unix_ms, r.key, r.wire, saved_at, now_unix_ms) {
                Restored::Loaded => report.loaded += 1,
                Restored::Expired => report.expired += 1,
                Restored::Rejected => report.rejected += 1,
            }
        }
        Ok(report)
    }

    /// Checks one record and stores it as inserted `now_unix_ms - inserted_unix_ms` ago.
    fn restore(
        &self,
        inserted_unix_ms: u64,
        key: &[u8],
        wire: &[u8],
        saved_at: u64,
        now_unix_ms: u64,
    ) -> Restored {
        if inserted_unix_ms > saved_at {
            return Restored::Rejected;
        }
        let Some(key) = Key::from_stored(key) else {
            return Restored::Rejected;
        };
        match Message::parse(wire) {
            Ok(m) if m.header.response && matches!(m.rcode(), Rcode::NOERROR | Rcode::NXDOMAIN) => {
            }
            _ => return Restored::Rejected,
        }
        let now_ms = self.now_ms();
        // Rounded up to whole seconds: the TTLs count whole seconds of the clock (see
        // `Entry::expires_ms`), whose second boundaries fall elsewhere in this process, and with
        // the exact age an entry could read one second more here than it did when it was saved.
        let age = (now_unix_ms - inserted_unix_ms).div_ceil(1000) * 1000;
        // Older than the cache's clock can date: past any TTL plus stale age.
        let Some(inserted_ms) = now_ms.checked_sub(age) else {
            return Restored::Expired;
        };
        let Ok(entry) = policy::prepare(&self.policy().limits, &key, wire, inserted_ms) else {
            return Restored::Rejected;
        };
        if entry.age(now_ms, self.stale_window_ms()) == Age::Dead {
            return Restored::Expired;
        }
        let hash = hash_key(&self.hasher, key.as_bytes());
        // Lock held for the insert only.
        if self.shard(hash).insert(hash, entry, now_ms, &self.hasher) {
            Restored::Loaded
        } else {
            Restored::Rejected
        }
    }
}

/// The outcome for one record.
enum Restored {
    Loaded,
    Expired,
    Rejected,
}

fn be_u64(b: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    u64::from_be_bytes(v)
}

/// One record of a file, not yet checked.
struct Record<'a> {
    inserted_unix_ms: u64,
    key: &'a [u8],
    wire: &'a [u8],
}

/// The record at the start of `b` and the octets after it, or None if `b` is too short for it.
fn split_record(b: &[u8]) -> Option<(Record<'_>, &[u8])> {
    if b.len() < 10 {
        return None;
    }
    let inserted_unix_ms = be_u64(b);
    let key_len = usize::from(u16::from_be_bytes([b[8], b[9]]));
    let key = b.get(10..10 + key_len)?;
    let at = 10 + key_len;
    let wire_len = usize::from(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]));
    let wire = b.get(at + 2..at + 2 + wire_len)?;
    let record = Record {
        inserted_unix_ms,
        key,
        wire,
    };
    Some((record, &b[at + 2 + wire_len..]))
}

/// The whole regular file at `path` (following links), if it is at most `limit` octets long; see
/// the module docs for the order of the checks. Nothing is read from anything else.
pub(super) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    check_regular(path, &meta.file_type())?;
    if meta.len() > limit {
        return Err(PersistError::TooLarge(meta.len()));
    }
    read_opened(path, limit)
}

/// Opens `path` without waiting (whatever is there by now) and reads it if the open file is a
/// regular file of at most `limit` octets, reading no more than `limit + 1`.
pub(super) fn read_opened(path: &Path, limit: u64) -> Result<Vec<u8>, PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Non-blocking: a FIFO opens at once instead of waiting for a writer (and is then refused);
    // a regular file reads as usual. Not a controlling terminal, should one be swapped in.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    check_regular(path, &meta.file_type())?;
    if meta.len() > limit {
        return Err(PersistError::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(PersistError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Refuses anything but a regular file, naming what it is.
fn check_regular(path: &Path, t: &fs::FileType) -> Result<(), PersistError> {
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(PersistError::NotRegular {
        path: path.to_path_buf(),
        kind,
    })
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`. The
/// temporary file is created afresh (`O_EXCL`, which follows no link): whatever was left under
/// its name (by a crashed run with the same process ID, say), a FIFO included, is removed rather
/// than opened.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fuzz body for the cache-file reader (`fuzz/fuzz_targets/cache_file.rs`): `data` is read both as
/// a whole file and as the records of a file with a valid header and digest (random bytes almost
/// never pass the digest, and the record checks behind it are what matters). Reading must never
/// panic and must never store more entries than the cache holds.
pub fn fuzz_cache_file(data: &[u8]) {
    let cache = Cache::new(super::CacheConfig {
        capacity: 64,
        ..super::CacheConfig::default()
    });
    let now = 1_800_000_000_000;
    let _ = cache.decode_file(data, now);
    // Counts up to twice what the cache holds, so that the "too many" refusal is reached too.
    let (count, body) = match data.split_first() {
        Some((c, rest)) => (u32::from(*c % 129), rest),
        None => (0, data),
    };
    let mut file = Vec::with_capacity(HEADER_LEN + body.len() + DIGEST_LEN);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&VERSION.to_be_bytes());
    file.extend_from_slice(&(now - 1000).to_be_bytes());
    file.extend_from_slice(&count.to_be_bytes());
    file.extend_from_slice(body);
    let sum = digest(&SHA256, &file);
    file.extend_from_slice(sum.as_ref());
    let _ = cache.decode_file(&file, now);
    assert!(
        cache.len() <= cache.held_limits().0,
        "the cache outgrew its capacity"
    );
}
