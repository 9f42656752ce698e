//! The cache file: round trips, aged TTLs, and files that are refused unread or checked like
//! network answers.

use super::*;

fn file_of(c: &Cache, now_unix_ms: u64) -> Vec<u8> {
    c.encode_file(now_unix_ms).0
}

const T0: u64 = 1_800_000_000_000;

/// A TTL never counts up across a restart, wherever the saving and the loading clocks are in
/// their seconds: saved 0.2 s after it was stored late in a second, an entry reads 4 of its 5
/// seconds; read back half a second into the new clock's second, it still reads no more than 4.
#[tokio::test(start_paused = true)]
async fn a_restored_ttl_never_counts_up() {
    let a = default_cache();
    let q = query("www.example.com", RType::A, 1);
    let ttl = |c: &Cache| fast(c, &q, 512).map(|out| ttls(&out)[0].2);
    advance(Duration::from_millis(900)).await;
    a.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 5),
    )
    .unwrap();
    advance(Duration::from_millis(200)).await;
    assert_eq!(ttl(&a), Some(4));
    let (file, count) = a.encode_file(T0);
    assert_eq!(count, 1);

    let b = default_cache();
    advance(Duration::from_millis(500)).await;
    assert_eq!(b.decode_file(&file, T0).unwrap().loaded, 1);
    assert_eq!(ttl(&b), Some(4));
}

#[tokio::test(start_paused = true)]
async fn cache_file_round_trip_ages_every_ttl() {
    let a = default_cache();
    let k = key("www.example.com", RType::A, false, false);
    a.insert_wire(&k, &a_response("www.example.com", 300))
        .unwrap();
    let neg = response(
        "nope.example.com",
        RType::A,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 3600, Data::Soa { minimum: 120 })],
    );
    a.insert_wire(&key("nope.example.com", RType::A, false, false), &neg)
        .unwrap();
    let dnssec = key("www.example.com", RType::A, true, true);
    a.insert_wire(&dnssec, &a_response("www.example.com", 50))
        .unwrap();
    // Not written: SERVFAIL.
    let h = Header {
        rcode_low: Rcode::SERVFAIL.low(),
        ..Header::default()
    };
    let sf = response_with(h, "down.example", RType::A, &[], &[], None);
    a.insert_wire(&key("down.example", RType::A, false, false), &sf)
        .unwrap();
    advance(Duration::from_secs(10)).await;
    let (file, count) = a.encode_file(T0);
    assert_eq!(count, 3);

    // Read back 20 s (wall clock) later: 30 s have passed since insertion.
    let b = default_cache();
    let report = b.decode_file(&file, T0 + 20_000).unwrap();
    assert_eq!(
        report,
        LoadReport {
            loaded: 3,
            expired: 0,
            rejected: 0
        }
    );
    let t = |c: &Cache, q: &[u8]| ttls(&fast(c, q, 1232).unwrap())[0].2;
    assert_eq!(t(&b, &query("www.example.com", RType::A, 1)), 270);
    assert_eq!(t(&b, &query("nope.example.com", RType::A, 1)), 90);
    let do_cd = query_with("www.example.com", RType::A, 1, edns(true), true);
    assert_eq!(t(&b, &do_cd), 20);
    // The restored entries expire when the originals would have, give or take the share of a
    // second the restored clock is out of step with the original's (whole seconds: expires_ms).
    advance(Duration::from_secs(21)).await;
    assert!(fast(&b, &do_cd, 1232).is_none());

    // Much later: expired data is kept for serve-stale (and answered stale), until its limit.
    let c = default_cache();
    let later = T0 + 1000 * 1000;
    let report = c.decode_file(&file, later).unwrap();
    assert_eq!((report.loaded, report.expired), (3, 0));
    let d = T0 + 1000 * (u64::from(DEFAULT_STALE_MAX_AGE) + 200);
    let report = default_cache().decode_file(&file, d).unwrap();
    assert_eq!((report.loaded, report.expired), (1, 2));
    let report = cache(CacheConfig {
        serve_stale: false,
        ..CacheConfig::default()
    })
    .decode_file(&file, later)
    .unwrap();
    assert_eq!((report.loaded, report.expired), (0, 3));
    // Today's clamps apply to what is read back.
    let clamped = cache(CacheConfig {
        max_ttl: 100,
        ..CacheConfig::default()
    });
    clamped.decode_file(&file, T0).unwrap();
    assert_eq!(t(&clamped, &query("www.example.com", RType::A, 1)), 90);
}

#[tokio::test(start_paused = true)]
async fn cache_file_saves_and_loads_through_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    let a = default_cache();
    for i in 0..100 {
        let n = format!("n{i}.example");
        a.insert_wire(&key(&n, RType::A, false, false), &a_response(&n, 600))
            .unwrap();
    }
    assert_eq!(a.save(&path).unwrap(), 100);
    // Saving again replaces the file; no temporary file is left behind.
    assert_eq!(a.save(&path).unwrap(), 100);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let b = default_cache();
    assert_eq!(b.load(&path).unwrap().loaded, 100);
    assert_eq!(b.len(), 100);
    assert!(b
        .load(&dir.path().join("missing"))
        .unwrap_err()
        .is_not_found());
    // A file with more entries than the cache holds is not read, nor one larger than it could
    // have written (checked on the file's length, before reading it).
    let small = cache(CacheConfig {
        capacity: 1,
        ..CacheConfig::default()
    });
    assert!(matches!(small.load(&path), Err(PersistError::TooMany(100))));
    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![0u8; 1 << 20]).unwrap();
    assert!(matches!(small.load(&huge), Err(PersistError::TooLarge(_))));
    assert!(small.is_empty());
}

/// A cache filled to its limits (each shard holds a little more than its share of the capacity,
/// and at least one maximal message's worth of octets) writes a file it reads back whole.
#[tokio::test]
async fn a_full_cache_reads_back_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    // 10 entries over 4 shards: 3 per shard, 12 in all.
    let cfg = || CacheConfig {
        capacity: 10,
        shards: 4,
        ..CacheConfig::default()
    };
    let a = cache(cfg());
    for i in 0..200 {
        let n = format!("n{i}.example");
        a.insert_wire(&key(&n, RType::A, false, false), &a_response(&n, 600))
            .unwrap();
    }
    assert_eq!(a.len(), 12);
    assert_eq!(a.save(&path).unwrap(), 12);
    let b = cache(cfg());
    assert_eq!(b.load(&path).unwrap().loaded, 12);

    // Few entries, each far above the 1 KiB per entry of capacity budget.
    let a = cache(CacheConfig {
        capacity: 4,
        shards: 1,
        ..CacheConfig::default()
    });
    let answers: Vec<_> = (0..250u8)
        .map(|i| rr("big.example", 600, Data::A([192, 0, 2, i])))
        .collect();
    for i in 0..4 {
        let n = format!("big{i}.example");
        let wire = response(&n, RType::A, Rcode::NOERROR, &answers, &[]);
        assert!(wire.len() > 3000);
        a.insert_wire(&key(&n, RType::A, false, false), &wire)
            .unwrap();
    }
    assert_eq!(a.save(&path).unwrap(), 4);
    let b = cache(CacheConfig {
        capacity: 4,
        shards: 1,
        ..CacheConfig::default()
    });
    assert_eq!(b.load(&path).unwrap().loaded, 4);
}

/// Runs `f` on a thread of its own and fails the test if it has not returned within `limit`: a
/// load that blocks must fail the test, not hang it (the stuck thread is left behind).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("still blocked after {limit:?}"))
}

/// Generous: the loads below are a stat each; only a blocked or a whole read takes long.
const LOAD_LIMIT: Duration = Duration::from_secs(10);

/// A FIFO at the cache-file path is refused without being opened: opening one for reading waits
/// for a writer, and reading it waits for the writer to close. The octets a writer put into it
/// are still there afterwards.
#[test]
fn a_fifo_at_the_cache_file_path_is_refused_without_reading_it() {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cache.bin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    // Nobody has it open for writing.
    let path = fifo.clone();
    let err = within(LOAD_LIMIT, move || default_cache().load(&path)).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(err.to_string().contains("FIFO"), "{err}");

    // A writer that has put the start of a file into it and keeps it open (Linux opens a FIFO for
    // reading and writing without waiting; non-blocking, so that reading it back cannot hang).
    let mut end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .unwrap();
    end.write_all(persist::MAGIC).unwrap();
    let path = fifo.clone();
    let err = within(LOAD_LIMIT, move || default_cache().load(&path)).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let mut back = [0u8; 8];
    end.read_exact(&mut back).unwrap();
    assert_eq!(&back, persist::MAGIC);
}

/// A device, a directory or a socket at the cache-file path is refused on its type, before it is
/// opened: `/dev/zero` would otherwise be read up to the size bound (hundreds of megabytes for the
/// default capacity) before the magic check refused it.
#[test]
fn devices_directories_and_sockets_at_the_cache_file_path_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for (path, kind) in [
        (std::path::PathBuf::from("/dev/zero"), "character device"),
        (dir.path().to_path_buf(), "directory"),
        (socket, "socket"),
    ] {
        let shown = path.display().to_string();
        let err = within(LOAD_LIMIT, move || default_cache().load(&path)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("not a regular file"), "{shown}: {text}");
        assert!(text.contains(kind), "{shown}: {text}");
    }
}

/// A regular file longer than the cache could have written is refused on its length, unread: here
/// a sparse file of 1 TiB that a whole read could never get through.
#[test]
fn a_regular_file_over_the_size_bound_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(1 << 40).unwrap();
    drop(f);
    let c = default_cache();
    assert!(c.max_file_len() < 1 << 40);
    let err = within(LOAD_LIMIT, move || c.load(&path)).unwrap_err();
    assert!(
        matches!(err, PersistError::TooLarge(n) if n == 1 << 40),
        "{err}"
    );
}

/// The checks on the opened file, alone (as when a FIFO is swapped in after the check on the path):
/// the non-blocking open returns at once and the FIFO is refused. A file whose stated length is
/// wrong (`/proc` reports 0) is read no further than the bound.
#[test]
fn the_opened_file_is_checked_again_and_read_no_further_than_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cache.bin");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = within(LOAD_LIMIT, move || persist::read_opened(&fifo, 1 << 20)).unwrap_err();
    assert!(
        matches!(err, PersistError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );

    let status = std::path::Path::new("/proc/self/status");
    assert_eq!(std::fs::metadata(status).unwrap().len(), 0);
    let whole = persist::read_opened(status, 1 << 20).unwrap();
    assert!(whole.len() > 64, "{}", whole.len());
    assert!(matches!(
        persist::read_opened(status, 64),
        Err(PersistError::TooLarge(65))
    ));
}

/// Saving replaces a regular file (or what a link leads to, if regular) but never a FIFO, device
/// or directory at the path; a leftover temporary file, even a FIFO, does not block the save.
#[test]
fn saving_replaces_only_a_regular_file_and_never_opens_a_leftover_temporary_file() {
    use std::os::unix::fs::FileTypeExt;

    let dir = tempfile::tempdir().unwrap();
    let c = default_cache();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&link, "a character device")] {
        let err = c.save(path).unwrap_err();
        assert!(
            matches!(&err, PersistError::NotRegular { kind: k, .. } if *k == kind),
            "{err}"
        );
    }
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(matches!(
        c.save(dir.path()),
        Err(PersistError::NotRegular {
            kind: "a directory",
            ..
        })
    ));

    // A FIFO where the temporary file goes: opening it for writing would wait for a reader.
    let path = dir.path().join("cache.bin");
    let tmp = dir
        .path()
        .join(format!("cache.bin.tmp.{}", std::process::id()));
    nix::unistd::mkfifo(&tmp, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let saved = within(LOAD_LIMIT, move || default_cache().save(&path));
    assert_eq!(saved.unwrap(), 0);
    assert!(!tmp.exists());
    assert!(dir.path().join("cache.bin").is_file());
}

/// Re-signs a file body (header and records) as the writer would.
fn signed(mut body: Vec<u8>) -> Vec<u8> {
    let sum = ring::digest::digest(&ring::digest::SHA256, &body);
    body.extend_from_slice(sum.as_ref());
    body
}

#[tokio::test(start_paused = true)]
async fn truncated_garbage_and_foreign_cache_files_are_refused() {
    let a = default_cache();
    a.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 300),
    )
    .unwrap();
    let good = file_of(&a, T0);
    assert_eq!(default_cache().decode_file(&good, T0).unwrap().loaded, 1);

    // Every truncation, and every single-octet corruption, is refused whole.
    for cut in 0..good.len() {
        let c = default_cache();
        let e = c.decode_file(&good[..cut], T0).unwrap_err();
        assert!(
            matches!(e, PersistError::Foreign | PersistError::Corrupt),
            "cut at {cut}: {e}"
        );
        assert!(c.is_empty());
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        let c = default_cache();
        assert!(c.decode_file(&bad, T0).is_err(), "flip at {i}");
        assert!(c.is_empty());
    }
    // Garbage and other formats.
    let c = default_cache();
    assert!(matches!(c.decode_file(b"", T0), Err(PersistError::Foreign)));
    assert!(matches!(
        c.decode_file(&[0xff; 4096], T0),
        Err(PersistError::Foreign)
    ));
    assert!(matches!(
        c.decode_file(
            b"SQLite format 3\0........................................",
            T0
        ),
        Err(PersistError::Foreign)
    ));
    let body = &good[..good.len() - 32];
    let mut v2 = body.to_vec();
    v2[9] = 2;
    assert!(matches!(
        c.decode_file(&signed(v2), T0),
        Err(PersistError::Version(2))
    ));
    // A file from the future, and one with more entries than the capacity.
    assert!(matches!(
        c.decode_file(&good, T0 - 3_600_000),
        Err(PersistError::FromTheFuture(3600))
    ));
    let tiny = cache(CacheConfig {
        capacity: 0,
        ..CacheConfig::default()
    });
    assert!(matches!(
        tiny.decode_file(&good, T0),
        Err(PersistError::TooMany(1))
    ));
    // Trailing octets after the last record.
    let mut trailing = body.to_vec();
    trailing.push(0);
    assert!(matches!(
        c.decode_file(&signed(trailing), T0),
        Err(PersistError::Corrupt)
    ));
    assert!(c.is_empty());
}

#[tokio::test(start_paused = true)]
async fn hostile_cache_records_are_checked_like_network_answers() {
    let header = |count: u32| {
        let mut h = b"DNSVEILC".to_vec();
        h.extend_from_slice(&1u16.to_be_bytes());
        h.extend_from_slice(&T0.to_be_bytes());
        h.extend_from_slice(&count.to_be_bytes());
        h
    };
    let record = |inserted: u64, key: &[u8], wire: &[u8]| {
        let mut r = inserted.to_be_bytes().to_vec();
        r.extend_from_slice(&(key.len() as u16).to_be_bytes());
        r.extend_from_slice(key);
        r.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        r.extend_from_slice(wire);
        r
    };
    let k = key("www.example.com", RType::A, false, false);
    let good = a_response("www.example.com", 300);
    let mut upper_key = k.as_bytes().to_vec();
    upper_key[1] = b'W';
    let cases: Vec<(u64, Vec<u8>, Vec<u8>)> = vec![
        // The answer is for another name than the key.
        (
            T0,
            k.as_bytes().to_vec(),
            a_response("evil.example.com", 300),
        ),
        // A key the cache would never build.
        (T0, upper_key, good.clone()),
        (T0, vec![0xC0, 0x0C, 0, 1, 0, 1, 0], good.clone()),
        // Responses that do not parse, are queries, or are REFUSED / SERVFAIL.
        (T0, k.as_bytes().to_vec(), good[..good.len() - 3].to_vec()),
        (T0, k.as_bytes().to_vec(), {
            let mut q = good.clone();
            q[2] &= 0x7f;
            q
        }),
        (
            T0,
            k.as_bytes().to_vec(),
            response("www.example.com", RType::A, Rcode::REFUSED, &[], &[]),
        ),
        (
            T0,
            k.as_bytes().to_vec(),
            response("www.example.com", RType::A, Rcode::SERVFAIL, &[], &[]),
        ),
        // Inserted after the file was saved.
        (T0 + 1, k.as_bytes().to_vec(), good.clone()),
        // Zero TTL.
        (T0, k.as_bytes().to_vec(), a_response("www.example.com", 0)),
        // For clients without DO, but with a DNSSEC record they did not ask for.
        (T0, k.as_bytes().to_vec(), {
            let mut m = Message::parse(&good).unwrap();
            m.answers.push(rrsig_over_a(m.questions[0].name.clone()));
            m.encode().unwrap()
        }),
    ];
    let n = cases.len() as u32;
    let mut body = header(n + 1);
    for (t, key, wire) in &cases {
        body.extend_from_slice(&record(*t, key, wire));
    }
    body.extend_from_slice(&record(T0, k.as_bytes(), &good));
    let c = default_cache();
    let report = c.decode_file(&signed(body), T0).unwrap();
    assert_eq!(
        report,
        LoadReport {
            loaded: 1,
            expired: 0,
            rejected: cases.len()
        }
    );
    assert_eq!(c.len(), 1);
    let out = fast(&c, &query("www.example.com", RType::A, 1), 512).unwrap();
    assert_eq!(ttls(&out)[0].2, 300);
    // A record length that runs past the end is a corrupt file, and stores nothing.
    let mut body = header(2);
    body.extend_from_slice(&record(T0, k.as_bytes(), &good));
    let mut r = record(T0, k.as_bytes(), &good);
    r.truncate(r.len() - 1);
    body.extend_from_slice(&r);
    let c = default_cache();
    assert!(matches!(
        c.decode_file(&signed(body), T0),
        Err(PersistError::Corrupt)
    ));
    assert!(c.is_empty());
}

#[test]
fn cache_file_fuzz_body_survives_mutated_records() {
    // The records of a real file, in the form the fuzz body takes: a count octet, then records.
    let c = default_cache();
    for i in 0..5 {
        let name = format!("n{i}.example.com");
        c.insert_wire(&key(&name, RType::A, false, false), &a_response(&name, 300))
            .unwrap();
    }
    let file = file_of(&c, T0);
    let records = &file[persist::HEADER_LEN..file.len() - 32];
    let mut seed = vec![5u8];
    seed.extend_from_slice(records);
    persist::fuzz_cache_file(&seed);
    persist::fuzz_cache_file(&[]);
    persist::fuzz_cache_file(&file);
    // Deterministic mutations: flip, drop and duplicate octets.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut m = seed.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % m.len();
            match next() % 3 {
                0 => m[at] ^= 1 << (next() % 8),
                1 => {
                    m.remove(at);
                }
                _ => m.insert(at, m[at]),
            }
            if m.is_empty() {
                break;
            }
        }
        persist::fuzz_cache_file(&m);
    }
}
