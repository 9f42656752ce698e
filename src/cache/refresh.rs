//! Background refreshes: prefetch before expiry, and the refresh of stale data that outlives the
//! query that asked for it.
//!
//! ```text
//!   answer_fast / step --try_reserve--> bounded queue --> refresher task --permit--> refresh task:
//!       (under the shard lock, no wait)   (QUEUE jobs)      (one per cache)     (<= MAX_IN_FLIGHT)
//!                                                                               lead(key) through
//!                                                                               the downstream chain
//! ```
//!
//! A job names a key. An unclaimed job (prefetch, or stale data answered at once) first looks for a
//! flight for that key: if a client miss or another refresh is already asking, it does nothing
//! (one upstream query per key at a time); otherwise it registers the flight. A claimed job's flight
//! was registered by the query that queued it, which waits on it. Either way the refresh then runs
//! the cache's ordinary leader path, asking the stages after the cache through the lookup API
//! ([`Chain::lookup`]) with the key's question and flags: so a refresh stores its
//! answer, hands it to any waiting clients, and on failure keeps the old data (see
//! `Cache::keep_after_failure`).
//!
//! Shutdown: the task stops at the token, drops queued jobs (ending the flights of claimed ones, so
//! that no waiter waits on them) and cancels the refreshes in flight (whose leaders end their
//! flights as a cancelled client's would).

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::handler::{Chain, Lookup};
use crate::wire::{Class, Name, QueryFlags, Question};

use super::entry::Client;
use super::flight::Fetch;
use super::key::Key;
use super::shard::Flight;
use super::Cache;

/// Jobs waiting for the refresher; a full queue drops new prefetches.
pub(crate) const QUEUE: usize = 1024;
/// Refreshes running at once.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// One refresh to run.
pub(crate) struct Job {
    pub key: Key,
    pub hash: u64,
    /// True when the queuing query already registered the flight for `key` and waits on it.
    pub claimed: bool,
}

impl Cache {
    /// Starts the task that runs background refreshes through `downstream`, the handlers that
    /// follow the cache in the server's chain, until `shutdown`. Prefetch needs it; without it stale
    /// data is refreshed by the query that finds it. Call once; later calls only return a finished
    /// task.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        downstream: Chain,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let (tx, rx) = mpsc::channel(QUEUE);
        if self.refresher.set(tx).is_err() {
            warn!("cache refresher started twice; keeping the first");
            return tokio::spawn(async {});
        }
        tokio::spawn(run(self.clone(), Arc::new(downstream), rx, shutdown))
    }

    /// Runs one job (see the module docs).
    async fn refresh(&self, job: Job, downstream: &Chain) {
        if !job.claimed {
            // Lock held to look for a flight and register ours; nothing awaits here.
            let mut shard = self.shard(job.hash);
            if !shard
                .inflight
                .try_insert(job.hash, job.key.as_bytes(), Flight::default())
            {
                // In flight already (or, rarely, another key of the same hash is).
                return;
            }
        }
        let Some(lookup) = lookup_for(&job.key) else {
            // Keys are built from parsed names, so this does not happen; end the flight anyway.
            self.abandon(&job);
            return;
        };
        self.count(job.hash, |c| c.refreshes += 1);
        let client = Client {
            id: 0,
            recursion_available: true,
            qname: job.key.qname(),
            recursion_desired: true,
            checking_disabled: job.key.checking_disabled(),
            wants_ad: job.key.dnssec_ok(),
            edns: Some(job.key.dnssec_ok()),
            payload: self.payload,
        };
        let result = self
            .lead(
                downstream.lookup(&lookup),
                &job.key,
                job.hash,
                &client,
                Fetch::Refresh,
            )
            .await;
        if let Err(e) = result {
            debug!(error = %e, "background refresh failed");
        }
    }

    /// Drops a job that will not run: a claimed job's flight ends, so its waiters stop waiting.
    fn abandon(&self, job: &Job) {
        if job.claimed {
            // Lock held only to remove the flight.
            self.shard(job.hash)
                .inflight
                .remove(job.hash, job.key.as_bytes());
        }
    }
}

/// The refresher task.
async fn run(
    cache: Arc<Cache>,
    downstream: Arc<Chain>,
    mut rx: mpsc::Receiver<Job>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    loop {
        let job = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => {
                cache.abandon(&job);
                break;
            }
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (cache, downstream) = (cache.clone(), downstream.clone());
        tasks.spawn(async move {
            let _permit = permit;
            cache.refresh(job, &downstream).await;
        });
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        cache.abandon(&job);
    }
    tasks.shutdown().await;
}

/// What a refresh asks the stages after the cache: the key's question with RD and its DO and CD
/// bits, through the lookup API (no client).
fn lookup_for(key: &Key) -> Option<Lookup> {
    let name = Name::from_wire(key.qname()).ok()?;
    let tc = key.type_and_class();
    Some(Lookup {
        question: Question {
            name,
            qtype: key.qtype(),
            qclass: Class(u16::from_be_bytes([tc[2], tc[3]])),
        },
        flags: QueryFlags {
            recursion_desired: true,
            checking_disabled: key.checking_disabled(),
            dnssec_ok: key.dnssec_ok(),
        },
    })
}
