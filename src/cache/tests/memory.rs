//! Memory per entry (an ignored test that measures RSS) and that the cache can be shared.

use super::*;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Run alone: `cargo test --lib cache::tests::memory::memory_per_entry -- --ignored --nocapture`.
#[test]
#[ignore = "measures process RSS; run alone"]
fn memory_per_entry() {
    const N: usize = 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // Headroom: capacity is split evenly over the shards and hashing does not fill them evenly.
    let c = cache(CacheConfig {
        capacity: N + N / 8,
        ..CacheConfig::default()
    });
    // Names like those of a real cache: www.host123456.example.com, A, one record.
    let mut wire = a_response("www.host000000.example.com", 3600);
    let label_at = HEADER_LEN + 4;
    let before = rss_bytes();
    for i in 0..N {
        let digits = format!("{i:06}");
        wire[label_at + 4..label_at + 10].copy_from_slice(digits.as_bytes());
        let qname = &wire[HEADER_LEN..HEADER_LEN + 28];
        let k = Key::new(qname, RType::A, Class::IN, false, false).unwrap();
        c.insert_wire(&k, &wire).unwrap();
    }
    let after = rss_bytes();
    assert_eq!(c.len(), N);
    let per_entry = (after - before) as f64 / N as f64;
    println!(
        "{N} entries of {} response octets: RSS grew {} MiB, {per_entry:.0} bytes per entry",
        wire.len(),
        (after - before) >> 20
    );
    assert!(per_entry < 250.0, "{per_entry} bytes per entry");
}

#[test]
fn cache_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cache>();
}
