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

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

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
///
/// Admitting and releasing a slot allocates nothing once the budget has been used: a slot is an
/// index into a table kept for the budget's life, and each client's slots form a list through it,
/// oldest first. A client holding one slot (every client of a lightly loaded server) costs one map
/// entry; only a client holding two or more is in the load index, because only such a client can
/// ever be made to give one up (see [`may_take_from`]).
#[derive(Debug)]
pub(super) struct FairBudget {
    cap: usize,
    /// Locked for a few map operations per admission or release, and to look at one slot when its
    /// holder polls [`Slot::cancelled`]; never held across `.await`, nor while waking anything.
    state: Mutex<State>,
    /// `State::total`, readable without the lock (written under it).
    in_use: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    /// Slots held by clients (not those taken away whose holders have not yet let go).
    total: usize,
    /// Every slot whose [`Slot`] is alive, by index; `free` lists the unused indexes.
    slots: Vec<SlotState>,
    free: Vec<u32>,
    /// Each client holding any slots: how many, and the two ends of their list.
    clients: HashMap<ClientKey, Held>,
    /// (slots held, client) for every client holding two or more: the heaviest is the last.
    by_load: BTreeSet<(usize, ClientKey)>,
}

/// A client's slots: a list through [`State::slots`], oldest first.
#[derive(Debug, Clone, Copy)]
struct Held {
    count: usize,
    oldest: u32,
    newest: u32,
}

#[derive(Debug)]
struct SlotState {
    key: ClientKey,
    /// Neighbours in the client's list ([`NONE`] at its ends).
    older: u32,
    newer: u32,
    /// Given to another client: no longer in any list, and its holder should stop.
    taken: bool,
    /// The holder's task, while it waits in [`Slot::cancelled`].
    waker: Option<Waker>,
}

const NONE: u32 = u32::MAX;

/// A slot of a [`FairBudget`], released when dropped. When it is given to another client,
/// [`Slot::cancelled`] fires and the work holding it should stop.
#[derive(Debug)]
pub(super) struct Slot {
    budget: Arc<FairBudget>,
    index: u32,
}

/// Why no slot was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Full;

impl FairBudget {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(FairBudget {
            cap: cap.max(1),
            state: Mutex::new(State::default()),
            in_use: AtomicUsize::new(0),
        })
    }

    /// A slot for `client`: a free one, or one taken from the heaviest client (whose oldest work is
    /// cancelled), or none when `client` already holds as much as anyone.
    pub(super) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Full> {
        let key = ClientKey::of(client);
        let mut st = self.lock();
        let mut victim = None;
        if st.total >= self.cap {
            let held = st.clients.get(&key).map_or(0, |h| h.count);
            let &(heaviest, heavy) = st.by_load.last().ok_or(Full)?;
            if !may_take_from(heaviest, held) {
                return Err(Full);
            }
            victim = st.take_oldest(heavy);
        }
        let index = st.insert(key);
        self.in_use.store(st.total, Ordering::Relaxed);
        drop(st);
        // Woken with the lock released: a waker may drop its task, and so a slot, there and then.
        if let Some(waker) = victim {
            waker.wake();
        }
        Ok(Slot {
            budget: self.clone(),
            index,
        })
    }

    /// Slots held now, in all (a moment's reading: others may admit or release meanwhile).
    pub(super) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs under this lock; recover from poisoning all the same.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slot {
    /// Fires when the slot was given to another client: the work holding it should stop.
    pub(super) fn cancelled(&self) -> Cancelled<'_> {
        Cancelled(self)
    }

    #[cfg(test)]
    fn is_cancelled(&self) -> bool {
        self.budget.lock().slot(self.index).taken
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.budget.lock();
        st.release(self.index);
        self.budget.in_use.store(st.total, Ordering::Relaxed);
        // The waker (if any) is dropped after the lock, like everything the holder left there.
        let waker = st.slot_mut(self.index).waker.take();
        st.free_index(self.index);
        drop(st);
        drop(waker);
    }
}

/// What [`Slot::cancelled`] returns.
pub(super) struct Cancelled<'a>(&'a Slot);

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let slot = self.0;
        let mut st = slot.budget.lock();
        let state = st.slot_mut(slot.index);
        if state.taken {
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => {
                // A replaced waker is dropped with the lock released.
                let old = w.replace(cx.waker().clone());
                drop(st);
                drop(old);
            }
        }
        Poll::Pending
    }
}

impl State {
    fn slot(&self, index: u32) -> &SlotState {
        &self.slots[index as usize]
    }

    fn slot_mut(&mut self, index: u32) -> &mut SlotState {
        &mut self.slots[index as usize]
    }

    /// Gives `key` a new slot, the newest of its list.
    fn insert(&mut self, key: ClientKey) -> u32 {
        let state = SlotState {
            key,
            older: NONE,
            newer: NONE,
            taken: false,
            waker: None,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = state;
                i
            }
            None => {
                self.slots.push(state);
                (self.slots.len() - 1) as u32
            }
        };
        let held = self.clients.entry(key).or_insert(Held {
            count: 0,
            oldest: index,
            newest: NONE,
        });
        let before = *held;
        held.count += 1;
        held.newest = index;
        if before.newest != NONE {
            self.slots[before.newest as usize].newer = index;
            self.slots[index as usize].older = before.newest;
        }
        self.reindex(key, before.count, before.count + 1);
        self.total += 1;
        index
    }

    /// Takes the oldest slot of `key` away: out of its list, marked taken; its holder's waker.
    fn take_oldest(&mut self, key: ClientKey) -> Option<Waker> {
        let oldest = self.clients.get(&key)?.oldest;
        self.unlink(oldest);
        let state = self.slot_mut(oldest);
        state.taken = true;
        state.waker.take()
    }

    /// A slot's holder let go: out of its client's list, unless it was taken away before.
    fn release(&mut self, index: u32) {
        if !self.slot(index).taken {
            self.unlink(index);
        }
    }

    /// Removes a held slot from its client's list and the counts.
    fn unlink(&mut self, index: u32) {
        let SlotState {
            key, older, newer, ..
        } = *self.slot(index);
        if older != NONE {
            self.slots[older as usize].newer = newer;
        }
        if newer != NONE {
            self.slots[newer as usize].older = older;
        }
        let Entry::Occupied(mut entry) = self.clients.entry(key) else {
            return;
        };
        let held = entry.get_mut();
        let before = held.count;
        if before <= 1 {
            entry.remove();
        } else {
            held.count -= 1;
            if held.oldest == index {
                held.oldest = newer;
            }
            if held.newest == index {
                held.newest = older;
            }
        }
        self.reindex(key, before, before - 1);
        self.total -= 1;
    }

    /// Moves `key` in the load index from `before` slots to `after`; clients holding fewer than
    /// two are not in it.
    fn reindex(&mut self, key: ClientKey, before: usize, after: usize) {
        if before >= 2 {
            self.by_load.remove(&(before, key));
        }
        if after >= 2 {
            self.by_load.insert((after, key));
        }
    }

    /// Returns a dropped slot's index for reuse: the table grows only to the most slots alive at
    /// once.
    fn free_index(&mut self, index: u32) {
        self.free.push(index);
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
        assert!(b.state.lock().unwrap().clients.is_empty());
    }

    #[test]
    fn a_newcomer_takes_the_oldest_slot_of_the_heaviest_client() {
        let b = FairBudget::new(4);
        let flood: Vec<_> = (0..4).map(|_| b.admit(ip("10.0.0.1")).unwrap()).collect();
        let quiet = b.admit(ip("10.0.0.2")).unwrap();
        assert!(flood[0].is_cancelled(), "the oldest gives way");
        assert!(flood[1..].iter().all(|s| !s.is_cancelled()));
        assert!(!quiet.is_cancelled());
        assert_eq!(b.in_use(), 4);
        // The quiet client may take one more (3 > 1 + 1), then the two are even enough.
        let quiet2 = b.admit(ip("10.0.0.2")).unwrap();
        assert!(flood[1].is_cancelled());
        assert_eq!(b.admit(ip("10.0.0.2")).unwrap_err(), Full, "2 vs 2");
        // Dropping a slot that was taken away changes nothing.
        drop(flood);
        assert_eq!(b.in_use(), 2);
        drop((quiet, quiet2));
        assert_eq!(b.in_use(), 0);
    }

    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// The holder of a slot given away is woken, and its `cancelled` then fires; the others' not.
    #[test]
    fn a_slot_given_away_wakes_its_holder() {
        let b = FairBudget::new(2);
        let old = b.admit(ip("10.0.0.1")).unwrap();
        let young = b.admit(ip("10.0.0.1")).unwrap();
        let flags: Vec<_> = (0..2)
            .map(|_| Arc::new(Flag(std::sync::atomic::AtomicBool::new(false))))
            .collect();
        let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
        for (slot, waker) in [&old, &young].into_iter().zip(&wakers) {
            let mut cx = Context::from_waker(waker);
            assert!(Pin::new(&mut slot.cancelled()).poll(&mut cx).is_pending());
        }
        let _newcomer = b.admit(ip("10.0.0.2")).unwrap();
        assert!(
            flags[0].0.load(Ordering::SeqCst),
            "the oldest's holder is woken"
        );
        assert!(!flags[1].0.load(Ordering::SeqCst));
        let mut cx = Context::from_waker(&wakers[0]);
        assert!(Pin::new(&mut old.cancelled()).poll(&mut cx).is_ready());
        let mut cx = Context::from_waker(&wakers[1]);
        assert!(Pin::new(&mut young.cancelled()).poll(&mut cx).is_pending());
    }

    /// A server with one query at a time reuses one entry of the slot table, however many it
    /// admits; slots released out of order leave the lists whole.
    #[test]
    fn slots_are_reused_and_lists_stay_whole() {
        let b = FairBudget::new(8);
        for _ in 0..100 {
            drop(b.admit(ip("127.0.0.1")).unwrap());
        }
        assert_eq!(b.state.lock().unwrap().slots.len(), 1);
        let mut held: Vec<_> = (0..5).map(|_| b.admit(ip("10.0.0.1")).unwrap()).collect();
        // Release the middle, the newest and the oldest: two are left, the second and the fourth.
        drop(held.remove(2));
        drop(held.pop());
        drop(held.remove(0));
        assert_eq!(b.in_use(), 2);
        let (second, fourth) = (held[0].index, held[1].index);
        {
            let st = b.state.lock().unwrap();
            let h = st.clients[&ClientKey::of(ip("10.0.0.1"))];
            assert_eq!((h.count, h.oldest, h.newest), (2, second, fourth));
            assert_eq!(st.slot(second).newer, fourth);
            assert_eq!(st.slot(fourth).older, second);
            assert_eq!(
                st.by_load.iter().next(),
                Some(&(2, ClientKey::of(ip("10.0.0.1"))))
            );
        }
        // Full (cap 8 with six more from elsewhere): a newcomer takes the second, the oldest left.
        let _others: Vec<_> = (0..6)
            .map(|i| b.admit(IpAddr::from([10, 0, 1, i])).unwrap())
            .collect();
        let _newcomer = b.admit(ip("10.0.0.9")).unwrap();
        assert!(held[0].is_cancelled() && !held[1].is_cancelled());
        drop(held);
        assert_eq!(b.in_use(), 7);
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
        assert!(_b.is_cancelled(), "the oldest of the heaviest");
        assert_eq!(b.admit(ip("10.0.0.3")).unwrap_err(), Full, "1 vs 1");
    }
}
