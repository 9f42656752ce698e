//! Identical questions in flight at once share one exchange: the first asker (the leader) does
//! the work, the others wait for its result (RFC 5452 section 5: fewer identical queries on the
//! wire also means fewer chances for a spoofer to match one).
//!
//! If the leader is cancelled (its client query hit its time limit), its waiters are woken and
//! each does the work itself; a waiter also stops waiting after [`MAX_WAIT`] and does the work
//! itself, so two queries can never wait on each other for long (one waiting, as a follower, for
//! a question that the other leads while that other waits for one the first leads). The map is a std mutex never held across an `.await`; an entry lives
//! only while its leader runs, so the map holds at most one entry per exchange in flight.

use std::collections::hash_map::Entry;
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
    /// One entry per leader at work: the channel its followers wait on, made by the first
    /// follower (a question nobody else asks, nearly all of them, costs no channel). Never held
    /// across an `.await`.
    map: Mutex<HashMap<K, Option<watch::Sender<Option<V>>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    pub fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` unless the same key is in flight, in which case its result is awaited.
    pub async fn run(&self, key: K, work: impl Future<Output = V>) -> V {
        let follows = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            // One lookup (the entry) whether the key leads or follows.
            match map.entry(key.clone()) {
                Entry::Occupied(mut e) => Some(
                    e.get_mut()
                        .get_or_insert_with(|| watch::channel(None).0)
                        .subscribe(),
                ),
                Entry::Vacant(e) => {
                    e.insert(None);
                    None
                }
            }
        };
        match follows {
            None => {
                let mut done = Done {
                    flights: self,
                    key: Some(key),
                };
                let v = work.await;
                // Out of the map first: no follower can join after this, so the result is cloned
                // only for followers already there.
                if let Some(tx) = done.finish() {
                    if tx.receiver_count() > 0 {
                        tx.send_replace(Some(v.clone()));
                    }
                }
                v
            }
            Some(mut rx) => {
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

/// Removes the leader's entry when it finishes or is dropped (then its channel, if a follower
/// made one, closes, and the followers do the work themselves).
struct Done<'a, K: Eq + Hash, V> {
    flights: &'a Flights<K, V>,
    /// None once [`Done::finish`] removed the entry.
    key: Option<K>,
}

impl<K: Eq + Hash, V> Done<'_, K, V> {
    /// Removes the entry; its followers' channel, if any.
    fn finish(&mut self) -> Option<watch::Sender<Option<V>>> {
        let key = self.key.take()?;
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key).flatten()
    }
}

impl<K: Eq + Hash, V> Drop for Done<'_, K, V> {
    fn drop(&mut self) {
        // The channel, if any, is dropped after the lock is released.
        let _channel = self.finish();
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
