//! The cache reads the time of day from its [`WallClock`](crate::clock::WallClock) only: tests
//! set and move a [`ManualClock`] and see the second grid and the cache file follow it. TTLs
//! count on tokio's clock, paused here, so every reading is exact.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::time::advance;

use super::key::Key;
use super::{Cache, CacheConfig, LoadReport};
use crate::clock::ManualClock;
use crate::handler::Handler;
use crate::wire::{Class, Message, Name, QueryView, RData, RType, Record};

/// A wall-clock time on a whole second (milliseconds since the epoch, in 2027).
const T0: u64 = 1_800_000_000_000;

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn key(qname: &str) -> Key {
    Key::new(name(qname).as_wire(), RType::A, Class::IN, false, false).unwrap()
}

/// An answer of one A record with `ttl`.
fn a_response(qname: &str, ttl: u32) -> Vec<u8> {
    let mut m = Message::response_to(&Message::query(name(qname), RType::A));
    m.header.recursion_available = true;
    m.answers.push(Record::new(
        name(qname),
        ttl,
        RData::A([192, 0, 2, 1].into()),
    ));
    m.encode().unwrap()
}

/// The TTL a live hit for `qname` is answered with on the fast path, if there is one.
fn ttl(c: &Cache, qname: &str) -> Option<u32> {
    let raw = Message::query(name(qname), RType::A).encode().unwrap();
    let view = QueryView::parse(&raw).unwrap();
    let mut out = Vec::new();
    c.answer_fast(&view, 512, &mut out)?;
    Some(Message::parse(&out).unwrap().answers[0].ttl)
}

/// The server's cache counts TTL seconds on the wall clock's second grid (as unbound's `time()`
/// seconds), whatever the moment the process started: the cache's clock and the wall clock turn
/// their seconds together, once aligned, however long the cache's clock ran before.
#[tokio::test(start_paused = true)]
async fn wall_clock_seconds_put_the_cache_clock_on_the_wall_clocks_grid() {
    let hand = ManualClock::at_unix_ms(T0 + 300);
    let c = Cache::with_clock(CacheConfig::default(), hand.clock());
    // Both clocks run 1.234 s before the alignment: it must allow for the cache clock's own part.
    let both = |ms| {
        hand.advance(Duration::from_millis(ms));
        advance(Duration::from_millis(ms))
    };
    both(1234).await;
    let c = c.with_wall_clock_seconds();
    for step in [0, 1, 170, 465, 999, 1000, 4321] {
        both(step).await;
        assert_eq!(
            c.now_ms() % 1000,
            hand.clock().unix_ms() % 1000,
            "after {step} ms"
        );
    }
    // A step of the wall clock later does not move the grid (it is taken once).
    let before = c.now_ms();
    hand.advance(Duration::from_millis(500));
    assert_eq!(c.now_ms(), before);
}

/// An entry's TTL turns when the injected wall clock's second does: stored at x.700 s on it, a
/// 5 s TTL reads 4 after 300 ms of tokio's clock, not after the 1000 ms a cache left at its own
/// start would take.
#[tokio::test(start_paused = true)]
async fn an_entrys_second_boundary_follows_the_injected_wall_clock() {
    for (into_second, turns_after) in [(700, 300), (200, 800), (0, 1000)] {
        let hand = ManualClock::at_unix_ms(T0 + into_second);
        let c = Cache::with_clock(CacheConfig::default(), hand.clock()).with_wall_clock_seconds();
        c.insert_wire(&key("www.example"), &a_response("www.example", 5))
            .unwrap();
        assert_eq!(ttl(&c, "www.example"), Some(5));
        advance(Duration::from_millis(turns_after - 1)).await;
        assert_eq!(ttl(&c, "www.example"), Some(5), "at x.{into_second}");
        advance(Duration::from_millis(1)).await;
        assert_eq!(ttl(&c, "www.example"), Some(4), "at x.{into_second}");
    }
}

/// A cache file saved at T on the wall clock and loaded at T + 40 s has every TTL aged by 40 s,
/// and what is past its TTL and stale window by then is dropped: no sleep, no tokio time, only
/// the injected wall clock moves.
#[tokio::test(start_paused = true)]
async fn a_cache_file_is_aged_by_the_wall_clock_time_between_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    let cfg = CacheConfig {
        stale_max_age: 10,
        ..CacheConfig::default()
    };
    let hand = ManualClock::at_unix_ms(T0);
    let a = Cache::with_clock(cfg.clone(), hand.clock()).with_wall_clock_seconds();
    for (qname, ttl) in [
        ("live.example", 300),
        ("stale.example", 30),
        ("dead.example", 20),
    ] {
        a.insert_wire(&key(qname), &a_response(qname, ttl)).unwrap();
    }
    assert_eq!(a.save(&path).unwrap(), 3);

    // Read back with the clock where it was saved: nothing is aged.
    let same = Cache::with_clock(cfg.clone(), hand.clock()).with_wall_clock_seconds();
    assert_eq!(same.load(&path).unwrap().loaded, 3);
    assert_eq!(ttl(&same, "live.example"), Some(300));
    assert_eq!(ttl(&same, "dead.example"), Some(20));

    hand.advance(Duration::from_secs(40));
    let b = Cache::with_clock(cfg, hand.clock()).with_wall_clock_seconds();
    assert_eq!(
        b.load(&path).unwrap(),
        LoadReport {
            loaded: 2,
            // 20 s TTL: expired 19 s ago (an entry lives through its last second), past the 10 s
            // stale window. The 30 s one expired 9 s ago and is kept for serve-stale.
            expired: 1,
            rejected: 0,
        }
    );
    assert_eq!(ttl(&b, "live.example"), Some(260));
    assert_eq!(ttl(&b, "stale.example"), None, "expired: no live hit");
    assert_eq!(ttl(&b, "dead.example"), None);
    assert_eq!(b.len(), 2);
}

/// Saving dates each entry by the wall clock now, less its age on the cache's TTL clock: an entry
/// stored 25 s (tokio) before a save is dated 25 s before the save's wall-clock time, however the
/// wall clock moved in between.
#[tokio::test(start_paused = true)]
async fn saving_dates_entries_by_the_wall_clock_less_their_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    let hand = ManualClock::at_unix_ms(T0);
    let a = Cache::with_clock(CacheConfig::default(), hand.clock());
    a.insert_wire(&key("www.example"), &a_response("www.example", 300))
        .unwrap();
    advance(Duration::from_secs(25)).await;
    // The wall clock was stepped forward by an hour meanwhile, then ran 25 s.
    hand.advance(Duration::from_secs(3600 + 25));
    assert_eq!(ttl(&a, "www.example"), Some(275));
    assert_eq!(a.save(&path).unwrap(), 1);

    // Loaded 15 s later on the wall clock: 40 s old.
    hand.advance(Duration::from_secs(15));
    let b = Cache::with_clock(CacheConfig::default(), hand.clock());
    assert_eq!(b.load(&path).unwrap().loaded, 1);
    assert_eq!(ttl(&b, "www.example"), Some(260));
}
