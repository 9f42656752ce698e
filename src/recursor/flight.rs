//! Identical questions in flight at once share one exchange: the first asker (the leader) does
//! the work, the others wait for its result (RFC 5452 section 5: fewer identical queries on the
//! wire also means fewer chances for a spoofer to match one).
//!
//! If the leader is cancelled (its client query hit its time limit), its waiters are woken and
//! each does the work itself; a waiter also stops waiting after [`MAX_WAIT`] and does the work
//! itself, so two queries can never wait on each other for long (one waiting, as a follower, for
//! a question that the other leads while that other waits for one the first leads). The map is a std mutex never held across an `.await`; an entry lives
//! only while its leader runs, so the map holds at most one entry per exchange in flight.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use std::time::Duration;

use tokio::sync::watch;

/// Longest a waiter waits for its leader before doing the work itself (the longest timeout of one
/// query to one server, see `servers::MAX_TIMEOUT`).
pub const MAX_WAIT: Duration = Duration::from_secs(3);

/// Leaders' results by key.
pub struct Flights<K, V> {
    /// Never held across an `.await`.
    map: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    pub fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` unless the same key is in flight, in which case its result is awaited.
    pub async fn run(&self, key: K, work: impl Future<Output = V>) -> V {
        let waiting = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(key.clone(), rx);
                    Ok(tx)
                }
            }
        };
        match waiting {
            Ok(tx) => {
                let done = Done { flights: self, key };
                let v = work.await;
                // Out of the map first: no waiter can join after this, so when no receiver is
                // left (the map held the only one) nobody waits, and the result is not cloned.
                drop(done);
                if tx.receiver_count() > 0 {
                    tx.send_replace(Some(v.clone()));
                }
                v
            }
            Err(mut rx) => {
                // The guard `wait_for` returns is not held across the `.await` below.
                let shared = tokio::time::timeout(MAX_WAIT, rx.wait_for(|v| v.is_some()))
                    .await
                    .ok()
                    .and_then(|r| r.ok().and_then(|v| v.clone()));
                match shared {
                    Some(v) => v,
                    // The leader was dropped before it finished.
                    None => work.await,
                }
            }
        }
    }

    /// Keys in flight (for tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes the leader's entry when it finishes or is dropped.
struct Done<'a, K: Eq + Hash, V> {
    flights: &'a Flights<K, V>,
    key: K,
}

impl<K: Eq + Hash, V> Drop for Done<'_, K, V> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn many_waiters_share_one_run_and_a_dropped_leader_hands_over() {
        let flights = Arc::new(Flights::<u32, u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (f, r, mut go) = (flights.clone(), runs.clone(), go_rx.clone());
            tasks.push(tokio::spawn(async move {
                f.run(7, async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    go.wait_for(|g| *g).await.unwrap();
                    42
                })
                .await
            }));
        }
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        go_tx.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());

        // A leader that never finishes and is dropped: the waiter does the work itself.
        let f2 = flights.clone();
        let leader = tokio::spawn(async move { f2.run(8, std::future::pending::<u32>()).await });
        while flights.is_empty() {
            tokio::task::yield_now().await;
        }
        let f3 = flights.clone();
        let waiter = tokio::spawn(async move { f3.run(8, async { 5 }).await });
        tokio::task::yield_now().await;
        leader.abort();
        assert_eq!(waiter.await.unwrap(), 5);
    }
}
