//! Network-change watcher: drops pooled upstream connections, and forgets which upstreams were
//! resting, when the machine resumes from suspend or its links, addresses or default routes
//! change.
//!
//! ```text
//!   rtnetlink socket (RTMGRP link, IPv4/IPv6 address and route groups)
//!     --dump at start (links, addresses, routes: the baseline, no change)--> NetState
//!     --event--> NetState::apply: a new or removed address, a link going up or down, a default
//!                route added or removed = change; a lifetime refresh of a known address = none
//!   every RESUME_CHECK: CLOCK_BOOTTIME vs CLOCK_MONOTONIC --boot clock ran ahead--> resumed
//!   either --(SETTLE: a burst of events is one change)--> UpstreamGroup::reset() on every pool
//!                                                         + the generation on `changes` goes up
//! ```
//!
//! A laptop that sleeps, switches Wi-Fi or loses its WAN keeps TCP and TLS connections that look
//! open but lead nowhere: the first query on one would wait for a timeout. The transports already
//! retry at once when a connection errors; this watcher closes them *before* a query finds out,
//! and lets upstreams that failed on the old network be asked again at once (their breakers are
//! reset). Others learn of changes through [`NetWatch::changes`] (the network's own resolvers are
//! read again on one).
//!
//! **Events, not polling**: the kernel tells a `NETLINK_ROUTE` socket about every change as it
//! happens; nothing reads `/proc` (which a unit's `ProcSubset=pid` hides). Address events come
//! often on IPv6 (each router advertisement refreshes lifetimes with another `RTM_NEWADDR`), so
//! the watcher keeps what it knows ([`NetState`]) and counts only real differences. If the kernel
//! drops events (`ENOBUFS`: the socket's buffer overflowed), that is a change too.
//!
//! **Suspend**: `CLOCK_BOOTTIME` counts time spent suspended, `CLOCK_MONOTONIC` (behind
//! [`std::time::Instant`]) does not. When the boot clock has advanced more than [`SLEEP_DRIFT`]
//! beyond the monotonic clock between two checks ([`RESUME_CHECK`] apart; two `clock_gettime`
//! calls through the vDSO), the machine slept in between.
//!
//! Limitations: Linux only. A netlink socket that cannot be opened (a sandbox without
//! `AF_NETLINK`; systemd's `RestrictAddressFamilies=` must list it) leaves only the suspend check,
//! and says so once. Non-default routes are not watched (a VPN that adds routes also adds an
//! address, which is).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockname, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::time::{clock_gettime, ClockId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::UpstreamGroup;

/// How often the two clocks are compared.
pub const RESUME_CHECK: Duration = Duration::from_secs(5);
/// Boot-clock time beyond monotonic time that means the machine slept.
pub const SLEEP_DRIFT: Duration = Duration::from_secs(3);
/// After a change, further events within this time belong to the same change.
pub const SETTLE: Duration = Duration::from_millis(300);
/// Most links, addresses and default routes remembered; beyond it the state starts over.
pub const MAX_STATE: usize = 4096;

/// Receive buffer. The kernel sizes a dump's datagrams to the largest buffer a reader has offered
/// (at least a page), and single events are a few hundred octets, so 16 KiB never cuts one; a
/// larger buffer only costs resident memory on an idle router (issue 17's budget).
const RECV_BUF: usize = 16 * 1024;

// rtnetlink constants (linux/rtnetlink.h, linux/netlink.h, linux/if.h).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const HEADER: usize = 16;

/// Why the network is considered changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The boot clock ran ahead of the monotonic clock by this much: the machine was suspended.
    Resumed(Duration),
    /// Links, addresses or default routes changed.
    Network,
}

/// Detects suspend from the two clocks. Pure, so tests can feed it readings.
#[derive(Clone, Debug, Default)]
pub struct SleepDetector {
    last: Option<(Duration, Duration)>,
}

impl SleepDetector {
    pub fn new() -> Self {
        SleepDetector::default()
    }

    /// Takes a reading: `boot` is the boot clock (suspend included), `mono` the monotonic clock.
    /// Returns how long the machine slept since the previous reading, if it did.
    pub fn observe(&mut self, boot: Duration, mono: Duration) -> Option<Duration> {
        let (boot0, mono0) = self.last.replace((boot, mono))?;
        let slept = boot
            .saturating_sub(boot0)
            .saturating_sub(mono.saturating_sub(mono0));
        (slept > SLEEP_DRIFT).then_some(slept)
    }
}

/// The boot and monotonic clocks now.
fn clocks() -> Option<(Duration, Duration)> {
    let read = |id| clock_gettime(id).ok().map(Duration::from);
    Some((
        read(ClockId::CLOCK_BOOTTIME)?,
        read(ClockId::CLOCK_MONOTONIC)?,
    ))
}

/// What the watcher knows of the links, addresses and default routes, to tell a change from a
/// repeat.
#[derive(Debug, Default)]
pub struct NetState {
    /// Link index -> its up/running/lower-up flags; an address or default route -> nothing.
    known: HashMap<Vec<u8>, u32>,
}

/// What one batch of netlink messages amounted to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Messages that changed something.
    pub changes: usize,
    /// The kernel said it dropped messages, or sent an error.
    pub lost: bool,
    /// The end of a dump was seen.
    pub dump_done: bool,
}

impl NetState {
    /// Applies the netlink messages in `buf` (one datagram). `ours` is this socket's port id:
    /// messages carrying it answer our dump and only fill the state. Never panics; a malformed
    /// message ends the batch.
    /// [`NetState::apply`] for a datagram of real length `len` read into `buf` (MSG_TRUNC): one
    /// cut short is not applied in part but counted as lost events.
    pub fn apply_received(&mut self, buf: &[u8], len: usize, ours: u32) -> Applied {
        match buf.get(..len) {
            Some(whole) => self.apply(whole, ours),
            None => Applied {
                lost: true,
                ..Applied::default()
            },
        }
    }

    pub fn apply(&mut self, buf: &[u8], ours: u32) -> Applied {
        let mut out = Applied::default();
        let mut rest = buf;
        while rest.len() >= HEADER {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len < HEADER || len > rest.len() {
                break;
            }
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let pid = u32::from_ne_bytes([rest[12], rest[13], rest[14], rest[15]]);
            let body = &rest[HEADER..len];
            let dump = pid == ours && ours != 0;
            match kind {
                NLMSG_DONE => out.dump_done = true,
                NLMSG_ERROR | NLMSG_OVERRUN => out.lost = true,
                _ => {
                    if self.message(kind, body) && !dump {
                        out.changes += 1;
                    }
                }
            }
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        }
        out
    }

    /// Applies one message; true if it changed the state.
    fn message(&mut self, kind: u16, body: &[u8]) -> bool {
        if self.known.len() >= MAX_STATE {
            self.known.clear();
        }
        match kind {
            RTM_NEWLINK | RTM_DELLINK if body.len() >= 16 => {
                let index = &body[4..8];
                let flags = u32::from_ne_bytes([body[8], body[9], body[10], body[11]])
                    & (IFF_UP | IFF_RUNNING | IFF_LOWER_UP);
                let key = [b"l".as_slice(), index].concat();
                if kind == RTM_DELLINK {
                    self.known.remove(&key).is_some()
                } else {
                    self.known.insert(key, flags) != Some(flags)
                }
            }
            RTM_NEWADDR | RTM_DELADDR if body.len() >= 8 => {
                let (family, index) = (body[0], &body[4..8]);
                let attrs = attributes(&body[8..]);
                let Some(addr) = attrs
                    .iter()
                    .find(|(t, _)| *t == IFA_LOCAL)
                    .or_else(|| attrs.iter().find(|(t, _)| *t == IFA_ADDRESS))
                    .map(|(_, v)| *v)
                else {
                    return false;
                };
                let key = [b"a".as_slice(), &[family], index, addr].concat();
                if kind == RTM_DELADDR {
                    self.known.remove(&key).is_some()
                } else {
                    self.known.insert(key, 0).is_none()
                }
            }
            RTM_NEWROUTE | RTM_DELROUTE if body.len() >= 12 => {
                let (family, dst_len, table) = (body[0], body[1], body[4]);
                if dst_len != 0 || table != RT_TABLE_MAIN {
                    return false;
                }
                let attrs = attributes(&body[12..]);
                let get = |t: u16| {
                    attrs
                        .iter()
                        .find(|(k, _)| *k == t)
                        .map_or(&[][..], |(_, v)| *v)
                };
                let key = [b"r".as_slice(), &[family], get(RTA_OIF), get(RTA_GATEWAY)].concat();
                if kind == RTM_DELROUTE {
                    self.known.remove(&key).is_some()
                } else {
                    self.known.insert(key, 0).is_none()
                }
            }
            _ => false,
        }
    }
}

/// The route attributes (type, value) in `buf`, at most 64; a malformed one ends the list.
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 && out.len() < 64 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// Fuzzing entry: [`NetState::apply`] on any bytes must not panic and its state stays bounded.
pub fn fuzz_netlink(data: &[u8]) {
    let mut s = NetState::default();
    for chunk in data.chunks(512) {
        let _ = s.apply(chunk, 7);
    }
    assert!(s.known.len() <= MAX_STATE);
}

/// An rtnetlink socket subscribed to link, address and route changes, read by a thread of its
/// own (blocking, with a receive timeout to notice shutdown): tokio's `AsyncFd` would need an
/// unsafe or deprecated registration.
struct Netlink {
    fd: OwnedFd,
    port: u32,
}

/// How long the reading thread blocks before it looks at the shutdown token.
const READ_TIMEOUT: Duration = Duration::from_millis(500);

impl Netlink {
    fn open() -> nix::Result<Netlink> {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
        use nix::sys::time::TimeVal;
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
        setsockopt(
            &fd,
            ReceiveTimeout,
            &TimeVal::new(0, READ_TIMEOUT.as_micros() as _),
        )?;
        let port = getsockname::<NetlinkAddr>(fd.as_raw_fd())?.pid();
        Ok(Netlink { fd, port })
    }

    /// Asks the kernel for every object of `kind` (a GET request with NLM_F_DUMP).
    fn request_dump(&self, kind: u16) -> nix::Result<()> {
        // The header, then a zeroed family header (rtgenmsg padded to what each type reads).
        let body = 16;
        let mut msg = Vec::with_capacity(HEADER + body);
        msg.extend_from_slice(&((HEADER + body) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.resize(HEADER + body, 0);
        sendto(
            self.fd.as_raw_fd(),
            &msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map(|_| ())
    }

    /// Dumps the state, then reads events until `shutdown` (or a hard error), sending one
    /// message per batch that changed something (or lost events).
    fn run(self, events: tokio::sync::mpsc::Sender<()>, shutdown: CancellationToken) {
        let mut state = NetState::default();
        let mut buf = vec![0u8; RECV_BUF];
        // The dumps go one after another: the kernel serves one dump per socket at a time.
        let mut dumps = vec![RTM_GETROUTE, RTM_GETADDR, RTM_GETLINK];
        if let Some(kind) = dumps.pop() {
            let _ = self.request_dump(kind);
        }
        while !shutdown.is_cancelled() {
            // MSG_TRUNC: the datagram's real length comes back, so a cut one is seen as such.
            let applied = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
                // A cut one cannot happen with the kernel's sizing (see RECV_BUF), but if it did
                // the tail's events would be gone: it counts as lost events.
                Ok(n) => state.apply_received(&buf, n, self.port),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                // The socket's buffer overflowed: events were lost, so assume a change.
                Err(Errno::ENOBUFS) => Applied {
                    lost: true,
                    ..Applied::default()
                },
                Err(e) => {
                    warn!(error = %e, "netlink socket failed; network changes go unnoticed");
                    return;
                }
            };
            if applied.dump_done {
                match dumps.pop() {
                    Some(kind) => {
                        let _ = self.request_dump(kind);
                    }
                    None => debug!(
                        known = state.known.len(),
                        "network state read; watching for changes"
                    ),
                }
            }
            debug!(
                changes = applied.changes,
                lost = applied.lost,
                "netlink events"
            );
            if applied.changes > 0 || applied.lost {
                // Full: a change is already waiting to be handled, which covers this one.
                let _ = events.try_send(());
            }
        }
    }
}

/// The running watcher.
pub struct NetWatch {
    pub task: JoinHandle<()>,
    /// Goes up by one on every change (after the pools are reset).
    pub changes: watch::Receiver<u64>,
}

/// Watches for network changes and resumes until `shutdown`, resetting every group on one.
pub fn spawn(groups: Vec<Arc<UpstreamGroup>>, shutdown: CancellationToken) -> NetWatch {
    let (tx, changes) = watch::channel(0u64);
    let (events_tx, mut events) = tokio::sync::mpsc::channel::<()>(1);
    let opened = Netlink::open().and_then(|n| {
        let stop = shutdown.clone();
        std::thread::Builder::new()
            .name("dnsveil-netlink".into())
            .spawn(move || n.run(events_tx, stop))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
    });
    if let Err(e) = opened {
        warn!(
            error = %e,
            "cannot watch the network over netlink; network changes go unnoticed (resume from \
             suspend is still noticed)"
        );
    } else {
        info!("watching the network (netlink) and the clocks for suspend");
    }
    let task = tokio::spawn(async move {
        let mut sleep = SleepDetector::new();
        let _ = clocks().map(|(b, m)| sleep.observe(b, m));
        let mut tick = tokio::time::interval(RESUME_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => clocks()
                    .and_then(|(b, m)| sleep.observe(b, m))
                    .map(Change::Resumed),
                Some(()) = events.recv() => {
                    // A burst of events (an address, then its routes) is one change.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(SETTLE) => {}
                    }
                    while events.try_recv().is_ok() {}
                    Some(Change::Network)
                }
            };
            if let Some(change) = change {
                on_change(change, &groups, &tx);
            }
        }
    });
    NetWatch { task, changes }
}

fn on_change(change: Change, groups: &[Arc<UpstreamGroup>], tx: &watch::Sender<u64>) {
    match change {
        Change::Resumed(slept) => info!(
            slept_secs = slept.as_secs(),
            "resumed from suspend; dropping upstream connections"
        ),
        Change::Network => {
            info!("network changed; dropping upstream connections and probing upstreams again")
        }
    }
    for g in groups {
        g.reset();
    }
    tx.send_modify(|n| *n += 1);
    debug!(generation = *tx.borrow(), "network generation");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn suspend_is_boot_clock_running_ahead() {
        let mut d = SleepDetector::new();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(d.observe(s(1000), s(900)), None, "nothing to compare");
        // Both clocks advance together (2 s, 10 ms of jitter): awake.
        assert_eq!(d.observe(ms(1_002_010), s(902)), None);
        // 2 s monotonic but 62 s boot time: slept a minute.
        assert_eq!(d.observe(ms(1_064_010), s(904)), Some(s(60)));
        // Drift just under the threshold is not a suspend.
        assert_eq!(d.observe(ms(1_068_900), s(906)), None);
        // A boot clock that goes backwards (cannot happen, but input is input) is no suspend.
        assert_eq!(d.observe(s(1000), s(908)), None);
        // This machine's clocks are readable.
        assert!(clocks().is_some());
    }

    /// One netlink message of `kind` from port `pid` with `body`.
    fn msg(kind: u16, pid: u32, body: &[u8]) -> Vec<u8> {
        let len = HEADER + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&pid.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize((4 + value.len()).next_multiple_of(4), 0);
        a
    }

    fn addr(index: u32, ip: [u8; 4]) -> Vec<u8> {
        let mut b = vec![2, 24, 0, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend(attr(IFA_LOCAL, &ip));
        b
    }

    fn link(index: u32, flags: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 1, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&u32::MAX.to_ne_bytes());
        b
    }

    fn default_route(gw: [u8; 4]) -> Vec<u8> {
        let mut b = vec![2, 0, 0, 0, RT_TABLE_MAIN, 3, 0, 1];
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend(attr(RTA_GATEWAY, &gw));
        b.extend(attr(RTA_OIF, &2u32.to_ne_bytes()));
        b
    }

    #[test]
    fn only_real_differences_count() {
        let mut s = NetState::default();
        let ours = 77;
        // The dump fills the state without counting.
        let dump = [
            msg(RTM_NEWADDR, ours, &addr(2, [192, 168, 1, 5])),
            msg(RTM_NEWLINK, ours, &link(2, IFF_UP | IFF_RUNNING)),
            msg(RTM_NEWROUTE, ours, &default_route([192, 168, 1, 1])),
            msg(NLMSG_DONE, ours, &[0; 4]),
        ]
        .concat();
        let a = s.apply(&dump, ours);
        assert_eq!((a.changes, a.dump_done, a.lost), (0, true, false));
        // A lifetime refresh of a known address, the same link state, the same route: nothing.
        let again = [
            msg(RTM_NEWADDR, 0, &addr(2, [192, 168, 1, 5])),
            msg(RTM_NEWLINK, 0, &link(2, IFF_UP | IFF_RUNNING | 0x1000)),
            msg(RTM_NEWROUTE, 0, &default_route([192, 168, 1, 1])),
        ]
        .concat();
        assert_eq!(s.apply(&again, ours).changes, 0);
        // A new address, a link losing carrier, a new gateway, a removed address: four.
        let news = [
            msg(RTM_NEWADDR, 4242, &addr(3, [10, 0, 0, 9])),
            msg(RTM_NEWLINK, 0, &link(2, IFF_UP)),
            msg(RTM_NEWROUTE, 0, &default_route([192, 168, 1, 254])),
            msg(RTM_DELADDR, 0, &addr(2, [192, 168, 1, 5])),
            // Deleting what is not known is not a change.
            msg(RTM_DELADDR, 0, &addr(9, [1, 2, 3, 4])),
        ]
        .concat();
        assert_eq!(s.apply(&news, ours).changes, 4);
        // Non-default routes are not watched.
        let mut r = default_route([10, 0, 0, 1]);
        r[1] = 24;
        assert_eq!(s.apply(&msg(RTM_NEWROUTE, 0, &r), ours).changes, 0);
        // An overrun or an error says events were lost.
        assert!(s.apply(&msg(NLMSG_OVERRUN, 0, &[]), ours).lost);
    }

    #[test]
    fn a_cut_datagram_is_lost_events_not_applied_in_part() {
        let mut s = NetState::default();
        let two = [
            msg(RTM_NEWADDR, 0, &addr(3, [10, 0, 0, 9])),
            msg(RTM_NEWADDR, 0, &addr(4, [10, 0, 0, 10])),
        ]
        .concat();
        // The buffer held the first message only; the datagram was longer (MSG_TRUNC's length).
        let first = msg(RTM_NEWADDR, 0, &addr(3, [10, 0, 0, 9])).len();
        let a = s.apply_received(&two[..first], two.len(), 1);
        assert_eq!((a.lost, a.changes), (true, 0));
        assert!(s.known.is_empty(), "nothing of a cut datagram is applied");
        // Whole, it applies as usual.
        let a = s.apply_received(&two, two.len(), 1);
        assert_eq!((a.lost, a.changes), (false, 2));
    }

    #[test]
    fn malformed_batches_end_quietly() {
        let mut s = NetState::default();
        let good = msg(RTM_NEWADDR, 0, &addr(3, [10, 0, 0, 9]));
        // Truncated, a length below the header, a length past the end, garbage attributes.
        for bad in [
            good[..good.len() - 3].to_vec(),
            [&[4u8, 0, 0, 0][..], &good[4..]].concat(),
            [&[255u8, 255, 0, 0][..], &good[4..]].concat(),
            msg(RTM_NEWADDR, 0, &[2, 24, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 1, 0]),
            msg(RTM_NEWLINK, 0, &[1, 2, 3]),
        ] {
            let _ = s.apply(&bad, 1);
        }
        fuzz_netlink(&[0xffu8; 3000]);
        fuzz_netlink(&good.repeat(100));
    }
}
