//! Fair shares of the server's shared budgets between clients.
//!
//! The listeners share two budgets among all clients: slow-path queries in flight (each may hold an
//! upstream socket and a task for seconds) and TCP connections. A first-come budget lets one client
//! take all of it: 5,000 queries for names whose upstream never answers, sent from one address in
//! under a second, once left every other client's uncached queries unanswered until they timed out.
//!
//! The rule here is max-min fairness, and it is work-conserving: while the budget has room anyone
//! may use it (a laptop's only client, loopback, can use all of it). When it is full, a newcomer
//! takes the slot of the client that holds the most, provided that client holds at least two more
//! than the newcomer; its oldest query is cancelled (the oldest is the one most likely stuck on a
//! dead name). A client that already holds as much as anyone waits or is turned away, so one
//! address can never lock the others out, however many queries it sends.
//!
//! Clients are counted per address, IPv6 per /64 (one host's usual allocation, so rotating through
//! privacy addresses buys nothing). Spoofed UDP sources could spread a flood over many keys; each
//! of them is then a light client, and a real client still takes its slot from the heaviest.
//!
//! Limitations: the share is per address, not per network, so a host with many IPv4 addresses gets
//! a share per address.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Who a query or connection is counted against: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ClientKey(u128);

impl ClientKey {
    pub(super) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(u128::from(u32::from(v4))),
                // The high bit set keeps IPv6 keys apart from IPv4 ones; the low 64 bits go.
                None => ClientKey((u128::from(v6) & !u128::from(u64::MAX)) | 1),
            },
        }
    }
}

/// Whether a client holding `heaviest` may be made to give a slot to one holding `newcomer`:
/// only if it would still hold at least as many afterwards.
pub(super) fn may_take_from(heaviest: usize, newcomer: usize) -> bool {
    heaviest > newcomer + 1
}

/// A budget of slots shared fairly between clients (see the module docs).
#[derive(Debug)]
pub(super) struct FairBudget {
    cap: usize,
    /// Locked for a few map operations per admission or release; never held across `.await`.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    next_id: u64,
    /// Each client's held slots, oldest first, with the token that cancels the work holding it.
    clients: HashMap<ClientKey, BTreeMap<u64, CancellationToken>>,
    /// (slots held, client) for every client holding any: the heaviest is the last.
    by_load: BTreeSet<(usize, ClientKey)>,
}

/// A slot of a [`FairBudget`], released when dropped. When it is given to another client,
/// [`Slot::cancelled`] fires and the work holding it should stop.
#[derive(Debug)]
pub(super) struct Slot {
    budget: Arc<FairBudget>,
    key: ClientKey,
    id: u64,
    cancel: CancellationToken,
}

/// Why no slot was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Full;

impl FairBudget {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(FairBudget {
            cap: cap.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A slot for `client`: a free one, or one taken from the heaviest client (whose oldest work is
    /// cancelled), or none when `client` already holds as much as anyone.
    pub(super) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Full> {
        let key = ClientKey::of(client);
        let cancel = CancellationToken::new();
        // No .await while the lock is held.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.total >= self.cap {
            let held = st.held(key);
            let &(heaviest, victim) = st.by_load.last().ok_or(Full)?;
            if !may_take_from(heaviest, held) {
                return Err(Full);
            }
            if let Some(token) = st.remove_oldest(victim) {
                token.cancel();
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        st.insert(key, id, cancel.clone());
        drop(st);
        Ok(Slot {
            budget: self.clone(),
            key,
            id,
            cancel,
        })
    }

    /// Slots held now, in all.
    #[cfg(test)]
    pub(super) fn in_use(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    fn release(&self, key: ClientKey, id: u64) {
        // No .await while the lock is held.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.remove(key, id);
    }
}

impl Slot {
    /// Fires when the slot was given to another client: the work holding it should stop.
    pub(super) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.budget.release(self.key, self.id);
    }
}

impl State {
    fn held(&self, key: ClientKey) -> usize {
        self.clients.get(&key).map_or(0, BTreeMap::len)
    }

    fn insert(&mut self, key: ClientKey, id: u64, cancel: CancellationToken) {
        let held = self.held(key);
        self.by_load.remove(&(held, key));
        self.clients.entry(key).or_default().insert(id, cancel);
        self.by_load.insert((held + 1, key));
        self.total += 1;
    }

    fn remove(&mut self, key: ClientKey, id: u64) -> Option<CancellationToken> {
        let slots = self.clients.get_mut(&key)?;
        let before = slots.len();
        let token = slots.remove(&id)?;
        self.after_removal(key, before);
        Some(token)
    }

    fn remove_oldest(&mut self, key: ClientKey) -> Option<CancellationToken> {
        let slots = self.clients.get_mut(&key)?;
        let before = slots.len();
        let (_, token) = slots.pop_first()?;
        self.after_removal(key, before);
        Some(token)
    }

    fn after_removal(&mut self, key: ClientKey, before: usize) {
        self.by_load.remove(&(before, key));
        if before > 1 {
            self.by_load.insert((before - 1, key));
        } else {
            self.clients.remove(&key);
        }
        self.total -= 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_group_ipv6_by_64_and_unmap_ipv4() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.1")),
            ClientKey::of(ip("192.0.2.1"))
        );
        assert_ne!(
            ClientKey::of(ip("127.0.0.1")),
            ClientKey::of(ip("127.0.0.2"))
        );
        assert_ne!(ClientKey::of(ip("::")), ClientKey::of(ip("0.0.0.0")));
    }

    #[test]
    fn one_client_may_use_the_whole_budget_while_alone() {
        let b = FairBudget::new(4);
        let held: Vec<_> = (0..4).map(|_| b.admit(ip("127.0.0.1")).unwrap()).collect();
        assert_eq!(b.in_use(), 4);
        assert_eq!(b.admit(ip("127.0.0.1")).unwrap_err(), Full);
        drop(held);
        assert_eq!(b.in_use(), 0);
        assert!(b.state.lock().unwrap().by_load.is_empty());
    }

    #[test]
    fn a_newcomer_takes_the_oldest_slot_of_the_heaviest_client() {
        let b = FairBudget::new(4);
        let flood: Vec<_> = (0..4).map(|_| b.admit(ip("10.0.0.1")).unwrap()).collect();
        let quiet = b.admit(ip("10.0.0.2")).unwrap();
        assert!(flood[0].cancel.is_cancelled(), "the oldest gives way");
        assert!(flood[1..].iter().all(|s| !s.cancel.is_cancelled()));
        assert!(!quiet.cancel.is_cancelled());
        assert_eq!(b.in_use(), 4);
        // The quiet client may take one more (3 > 1 + 1), then the two are even enough.
        let quiet2 = b.admit(ip("10.0.0.2")).unwrap();
        assert!(flood[1].cancel.is_cancelled());
        assert_eq!(b.admit(ip("10.0.0.2")).unwrap_err(), Full, "2 vs 2");
        // Dropping a slot that was taken away changes nothing.
        drop(flood);
        assert_eq!(b.in_use(), 2);
        drop((quiet, quiet2));
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn the_heaviest_client_cannot_take_from_lighter_ones() {
        let b = FairBudget::new(3);
        let _a = b.admit(ip("10.0.0.1")).unwrap();
        let _b = b.admit(ip("10.0.0.2")).unwrap();
        let _c = b.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(b.admit(ip("10.0.0.2")).unwrap_err(), Full);
        assert_eq!(b.admit(ip("10.0.0.1")).unwrap_err(), Full, "1 vs 2");
        // A third client holds nothing: it takes from the one holding two, then all hold one.
        let _d = b.admit(ip("10.0.0.3")).unwrap();
        assert!(_b.cancel.is_cancelled(), "the oldest of the heaviest");
        assert_eq!(b.admit(ip("10.0.0.3")).unwrap_err(), Full, "1 vs 1");
    }
}
