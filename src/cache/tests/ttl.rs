//! Hits, TTLs counting down in whole seconds of the cache clock, expiry and TTL clamps.

use super::*;

#[tokio::test(start_paused = true)]
async fn hit_after_miss_and_ttls_count_down() {
    let c = default_cache();
    let q = query("www.example.com", RType::A, 1);
    assert!(fast(&c, &q, 512).is_none());
    let wire = response(
        "www.example.com",
        RType::A,
        Rcode::NOERROR,
        &[
            rr("www.example.com", 300, Data::A([192, 0, 2, 1])),
            rr("www.example.com", 200, Data::A([192, 0, 2, 2])),
        ],
        &[],
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    assert_eq!(c.len(), 1);

    let t = |out: &[u8]| ttls(out).iter().map(|r| r.2).collect::<Vec<_>>();
    let out = fast(&c, &q, 512).expect("hit");
    assert_eq!(t(&out), [300, 200]);
    advance(Duration::from_secs(10)).await;
    assert_eq!(t(&fast(&c, &q, 512).unwrap()), [290, 190]);
    // Whole seconds only: 10.9 s is still 10.
    advance(Duration::from_millis(900)).await;
    assert_eq!(t(&fast(&c, &q, 512).unwrap()), [290, 190]);
    advance(Duration::from_millis(100)).await;
    assert_eq!(t(&fast(&c, &q, 512).unwrap()), [289, 189]);

    let s = c.stats();
    assert_eq!((s.hits, s.inserts, s.entries), (4, 1, 1));
}

/// TTLs count down in whole seconds of the cache's clock, as unbound's do: stored 0.3 s into a
/// second, an entry with TTL 5 reads 5 until that second ends, 0 through its last second, and is
/// gone 5.7 s after it was stored, never later than the end of the second its TTL reached 0 in.
#[tokio::test(start_paused = true)]
async fn ttls_count_in_whole_seconds_of_the_cache_clock() {
    let c = default_cache();
    let q = query("www.example.com", RType::A, 1);
    advance(Duration::from_millis(300)).await;
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 5),
    )
    .unwrap();
    let ttl = |c: &Cache| fast(c, &q, 512).map(|out| ttls(&out)[0].2);
    assert_eq!(ttl(&c), Some(5));
    advance(Duration::from_millis(699)).await;
    assert_eq!(ttl(&c), Some(5));
    advance(Duration::from_millis(1)).await;
    assert_eq!(ttl(&c), Some(4));
    advance(Duration::from_millis(4_999)).await;
    assert_eq!(ttl(&c), Some(0));
    advance(Duration::from_millis(1)).await;
    assert_eq!(ttl(&c), None);
}

#[tokio::test(start_paused = true)]
async fn entry_expires_with_its_smallest_ttl() {
    let c = default_cache();
    let q = query("www.example.com", RType::A, 1);
    let wire = response(
        "www.example.com",
        RType::A,
        Rcode::NOERROR,
        &[
            rr("www.example.com", 300, Data::A([192, 0, 2, 1])),
            rr("www.example.com", 100, Data::A([192, 0, 2, 2])),
        ],
        &[],
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    advance(Duration::from_millis(99_999)).await;
    let last = fast(&c, &q, 512).expect("still live");
    assert_eq!(ttls(&last)[1].2, 1);
    assert_eq!(ttls(&last)[0].2, 201);
    // Whole seconds (as unbound): stored at the start of a second, the entry is answered through
    // its 100th second with TTL 0, and not a moment longer.
    advance(Duration::from_millis(1)).await;
    let zero = fast(&c, &q, 512).expect("answered through its last second");
    assert_eq!(ttls(&zero)[1].2, 0);
    assert_eq!(ttls(&zero)[0].2, 200);
    advance(Duration::from_millis(999)).await;
    assert!(fast(&c, &q, 512).is_some());
    advance(Duration::from_millis(1)).await;
    assert!(fast(&c, &q, 512).is_none());
    // Kept for serve-stale until its stale limit.
    assert_eq!(c.len(), 1);
    advance(Duration::from_secs(u64::from(DEFAULT_STALE_MAX_AGE))).await;
    assert!(fast(&c, &q, 512).is_none());
    // The entry past its stale limit was reclaimed by the lookup.
    assert_eq!(c.len(), 0);

    // Without serve-stale, at once.
    let c = cache(CacheConfig {
        serve_stale: false,
        ..CacheConfig::default()
    });
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    advance(Duration::from_secs(101)).await;
    assert!(fast(&c, &q, 512).is_none());
    assert_eq!(c.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn ttls_are_clamped() {
    let c = cache(CacheConfig {
        min_ttl: 60,
        max_ttl: 1000,
        ..CacheConfig::default()
    });
    let q = query("www.example.com", RType::A, 1);
    let wire = response(
        "www.example.com",
        RType::A,
        Rcode::NOERROR,
        &[
            rr("www.example.com", 10, Data::A([192, 0, 2, 1])),
            rr("www.example.com", 5000, Data::A([192, 0, 2, 2])),
            // RFC 2181 section 8: the top bit set means zero, raised to min_ttl.
            rr("www.example.com", 0x8000_0000, Data::A([192, 0, 2, 3])),
        ],
        &[],
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    let got: Vec<u32> = ttls(&fast(&c, &q, 512).unwrap())
        .iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(got, [60, 1000, 60]);

    // max_ttl wins over a larger min_ttl.
    let c = cache(CacheConfig {
        min_ttl: 500,
        max_ttl: 100,
        ..CacheConfig::default()
    });
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 10),
    )
    .unwrap();
    assert_eq!(ttls(&fast(&c, &q, 512).unwrap())[0].2, 100);
}
