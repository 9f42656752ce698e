//! CLOCK eviction, the size bound and the shard count.

use super::*;

#[tokio::test(start_paused = true)]
async fn eviction_bounds_the_size_and_counts() {
    let c = cache(CacheConfig {
        capacity: 100,
        shards: 1,
        ..CacheConfig::default()
    });
    let hot = key("hot.example", RType::A, false, false);
    c.insert_wire(&hot, &a_response("hot.example", 600))
        .unwrap();
    let hot_q = query("hot.example", RType::A, 1);
    for i in 0..1000 {
        let n = format!("n{i}.example");
        c.insert_wire(&key(&n, RType::A, false, false), &a_response(&n, 600))
            .unwrap();
        // A name asked for keeps its place (CLOCK second chance).
        assert!(fast(&c, &hot_q, 512).is_some(), "hot entry evicted at {i}");
    }
    let s = c.stats();
    assert_eq!(s.entries, 100);
    assert_eq!(s.inserts, 1001);
    assert_eq!(s.evictions, 901);

    // Sharded: the total stays within capacity.
    let c = cache(CacheConfig {
        capacity: 1000,
        ..CacheConfig::default()
    });
    for i in 0..5000 {
        let n = format!("n{i}.example");
        c.insert_wire(&key(&n, RType::A, false, false), &a_response(&n, 600))
            .unwrap();
    }
    assert!(c.len() <= 1000, "{} entries", c.len());
    assert!(c.len() >= 900, "{} entries", c.len());
    assert_eq!(c.stats().evictions, 5000 - c.len() as u64);
}

#[test]
fn shard_count_is_a_power_of_two() {
    let n = |capacity, shards| {
        CacheConfig {
            capacity,
            shards,
            ..CacheConfig::default()
        }
        .shard_count()
    };
    assert_eq!(n(100_000, 0), 64);
    assert_eq!(n(1000, 0), 8);
    assert_eq!(n(10, 0), 1);
    assert_eq!(n(0, 0), 1);
    assert_eq!(n(1000, 3), 4);
    assert_eq!(n(1000, 1 << 20), MAX_SHARDS);
}
