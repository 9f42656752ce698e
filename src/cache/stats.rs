//! Cache statistics: a snapshot summed over the shards, printable as one log line.

use std::fmt;

/// Counters since the cache was created, and its current size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Queries answered from the cache (fast and slow path), stale answers included.
    pub hits: u64,
    /// Of the hits, those answered from expired data (RFC 8767).
    pub stale: u64,
    /// Queries that had to ask the rest of the chain themselves (one per coalesced group).
    pub misses: u64,
    /// Queries that waited for an identical miss or refresh already in flight and got its answer.
    pub coalesced: u64,
    /// Background refreshes run: prefetches before expiry and refreshes of stale data.
    pub refreshes: u64,
    /// Live entries dropped to make room (expired entries reclaimed are not counted).
    pub evictions: u64,
    /// Entries stored.
    pub inserts: u64,
    /// Entries held now (expired ones included until they are reclaimed).
    pub entries: u64,
}

impl CacheStats {
    /// Hits as a share of all lookups, 0.0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses + self.coalesced;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

impl fmt::Display for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entries={} hits={} stale={} misses={} coalesced={} hit_ratio={:.1}% refreshes={} \
             inserts={} evictions={}",
            self.entries,
            self.hits,
            self.stale,
            self.misses,
            self.coalesced,
            self.hit_ratio() * 100.0,
            self.refreshes,
            self.inserts,
            self.evictions
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_names_every_counter() {
        let s = CacheStats {
            hits: 3,
            stale: 1,
            misses: 1,
            coalesced: 0,
            refreshes: 6,
            evictions: 2,
            inserts: 5,
            entries: 4,
        };
        assert_eq!(
            s.to_string(),
            "entries=4 hits=3 stale=1 misses=1 coalesced=0 hit_ratio=75.0% refreshes=6 inserts=5 \
             evictions=2"
        );
        assert_eq!(CacheStats::default().hit_ratio(), 0.0);
    }
}
