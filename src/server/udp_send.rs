//! Sends a batch of UDP answers with as few trips through the kernel's send path as it can.
//!
//! A receive loop answers a whole `recvmmsg` batch at once ([`super::udp`]); this module puts the
//! answers on the wire. Every answer costs the kernel a route lookup, a socket buffer, the IP output
//! path and (on loopback) a second pass through the receive path, and under load that per-datagram
//! work is most of the server's CPU, far more than finding the answer in the cache. So:
//!
//! - The lone answers of a batch go in one `sendmmsg`, which shares the system call.
//! - Answers of the same size for the same client (a busy client socket: a forwarder downstream, a
//!   load generator, a host resolving many names through one socket) go as one UDP GSO send
//!   (`UDP_SEGMENT`, Linux 4.18): the kernel builds one large packet, walks the output path (route
//!   lookup, socket buffer, IP headers) once, and cuts it into the individual datagrams at the
//!   device: in the NIC where it can, in software just before the device otherwise (so on
//!   loopback). The client receives ordinary datagrams, one per answer. On loopback, where every
//!   datagram still crosses the receive path on its own, the saving is modest (measured against a
//!   build with GSO forced off: BENCHMARKS.md, "Figures moved from module docs").
//!
//! Answers to one client may leave in another order than they were found (the groups go before the
//! lone answers); UDP promises no order and clients match answers by ID. Each group is a send of its
//! own: `sendmmsg` reports an error only for its first message, and an error on a later one would
//! silently drop every group after it.
//!
//! Limitations: only answers of at most [`GSO_MAX_SEGMENT`] octets are grouped, so a segment always
//! fits the IPv6 minimum MTU and never needs fragmenting. GSO is used only where the kernel knows
//! `UDP_SEGMENT` (asked once per socket: an older kernel would ignore the control message and send a
//! group as one long datagram). A group the kernel refuses goes one datagram per answer; a refusal
//! that means GSO cannot work (EIO: a device without checksum offload; no support) turns it off for
//! the socket. The lone answers share one `sendmmsg`, where an error after the first datagram
//! still loses the rest of them (clients retry).

use std::io::IoSlice;
use std::os::fd::{AsFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::sockopt::UdpGsoSegment;
use nix::sys::socket::{
    getsockopt, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use tracing::debug;

/// The most answers one batch holds: the receive batch. The kernel takes at most 64 segments per
/// GSO send (`UDP_MAX_SEGMENTS`), so a group can never be too long.
pub(super) const BATCH: usize = 32;
/// Largest answer grouped: the IPv6 minimum MTU (1280) less the IPv6 and UDP headers, the same
/// size DNS flag day 2020 picked for EDNS payloads. 32 of them stay below a datagram's 65,507
/// octets.
pub(super) const GSO_MAX_SEGMENT: usize = 1232;

/// One message of a send: `len` answers from `first` in the flattened order, cut into `seg`-octet
/// datagrams by the kernel (`seg == 0`: a single answer, no GSO).
#[derive(Clone, Copy, Default)]
struct Planned {
    first: usize,
    len: usize,
    seg: u16,
}

/// Reusable state for sending batches from one socket (one per receive loop).
pub(super) struct BatchSender {
    plain: MultiHeaders<SockaddrStorage>,
    /// The same, with room for the `UDP_SEGMENT` control message in every header. Kept apart:
    /// a header with control space but no message in it is refused by the kernel.
    gso: MultiHeaders<SockaddrStorage>,
    gso_on: bool,
    /// Sends that went out as GSO, and the answers they carried (logged when the loop ends).
    gso_sends: u64,
    gso_answers: u64,
}

impl BatchSender {
    /// A sender for `sock`. GSO is used only if the kernel knows the `UDP_SEGMENT` option: an
    /// older one would ignore the control message and send each group as one long datagram.
    pub(super) fn new(sock: &impl AsFd) -> Self {
        BatchSender {
            plain: MultiHeaders::preallocate(BATCH, None),
            gso: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(u16))),
            gso_on: getsockopt(sock, UdpGsoSegment).is_ok(),
            gso_sends: 0,
            gso_answers: 0,
        }
    }

    /// Sends `outs[i]` to `dests[i]` for every i (at most [`BATCH`]). A datagram the kernel refuses
    /// is skipped (UDP: the client retries).
    pub(super) fn send(&mut self, fd: RawFd, outs: &[Vec<u8>], dests: &[Option<SockaddrStorage>]) {
        let n = outs.len().min(dests.len()).min(BATCH);
        // Group: each answer joins the first earlier one with the same client and size.
        let mut order = [0usize; BATCH];
        let mut plan = [Planned::default(); BATCH];
        let mut taken = [false; BATCH];
        let (mut placed, mut msgs) = (0, 0);
        for i in 0..n {
            if taken[i] {
                continue;
            }
            let size = outs[i].len();
            let first = placed;
            order[placed] = i;
            placed += 1;
            if self.gso_on && size > 0 && size <= GSO_MAX_SEGMENT && dests[i].is_some() {
                for j in i + 1..n {
                    if !taken[j] && outs[j].len() == size && dests[j] == dests[i] {
                        taken[j] = true;
                        order[placed] = j;
                        placed += 1;
                    }
                }
            }
            let len = placed - first;
            let seg = if len > 1 { size as u16 } else { 0 };
            plan[msgs] = Planned { first, len, seg };
            msgs += 1;
        }
        let iov: [IoSlice<'_>; BATCH] = std::array::from_fn(|k| {
            IoSlice::new(if k < placed { &outs[order[k]][..] } else { &[] })
        });
        if msgs == n {
            // No group (no client has two answers of one size here; always so for a lone answer):
            // the order is the answers' own, and each goes alone.
            self.send_in_order(fd, &iov[..n], &dests[..n]);
            return;
        }
        // Each group in a send of its own, so that an error belongs to one group (`sendmmsg`
        // reports only an error on its first message; a later one would silently drop the rest).
        // A group the kernel refuses goes one datagram at a time, with the lone answers.
        let mut alone = [0usize; BATCH];
        let mut count = 0;
        for p in &plan[..msgs] {
            if p.seg != 0 && self.gso_on && self.send_gso(fd, &iov, &order, p, dests) {
                continue;
            }
            for k in p.first..p.first + p.len {
                alone[count] = k;
                count += 1;
            }
        }
        let lone_iov: [IoSlice<'_>; BATCH] = std::array::from_fn(|i| {
            if i < count {
                iov[alone[i]]
            } else {
                IoSlice::new(&[])
            }
        });
        let lone_to: [Option<SockaddrStorage>; BATCH] = std::array::from_fn(|i| {
            if i < count {
                dests[order[alone[i]]]
            } else {
                None
            }
        });
        self.send_in_order(fd, &lone_iov[..count], &lone_to[..count]);
    }

    /// Sends `iov[i]` to `dests[i]` for every i, one datagram each, with one `sendmmsg`, skipping a
    /// datagram the kernel refuses and going on with the rest. Straight from the caller's slices:
    /// nothing is copied (an address is 128 octets).
    fn send_in_order(&mut self, fd: RawFd, iov: &[IoSlice<'_>], dests: &[Option<SockaddrStorage>]) {
        let mut start = 0;
        while start < iov.len() {
            let no_cmsgs: [ControlMessage<'_>; 0] = [];
            match sendmmsg(
                fd,
                &mut self.plain,
                iov[start..].iter().map(std::array::from_ref),
                &dests[start..],
                no_cmsgs,
                MsgFlags::empty(),
            ) {
                // Sent. The kernel stops early only at a send error after the first datagram (and
                // then reports success, the error is lost, sendmmsg(2)); the count it returns is not
                // read, because nix's result iterator would read its send headers' address slots,
                // which sendmmsg never fills. So a batch cut short by an error loses the rest of
                // its answers; clients retry.
                Ok(_) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    debug!(error = %e, "udp send failed");
                    start += 1;
                }
            }
        }
    }

    /// Sends the group `p` (answers of `p.seg` octets to one client) as one GSO send. False if the
    /// kernel refused it (nothing was sent); a refusal that says GSO cannot work here (no checksum
    /// offload on the route's device, or no support) also turns GSO off for this socket.
    fn send_gso(
        &mut self,
        fd: RawFd,
        iov: &[IoSlice<'_>; BATCH],
        order: &[usize; BATCH],
        p: &Planned,
        dests: &[Option<SockaddrStorage>],
    ) -> bool {
        let slices = [&iov[p.first..p.first + p.len]];
        let to = [dests[order[p.first]]];
        let cmsgs = [ControlMessage::UdpGsoSegments(&p.seg)];
        loop {
            match sendmmsg(
                fd,
                &mut self.gso,
                slices.iter(),
                to,
                cmsgs,
                MsgFlags::empty(),
            ) {
                Ok(_) => {
                    self.gso_sends += 1;
                    self.gso_answers += p.len as u64;
                    return true;
                }
                Err(Errno::EINTR) => {}
                Err(e @ (Errno::EIO | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)) => {
                    debug!(error = %e, "udp segmentation offload refused; sending one datagram per answer from now on");
                    self.gso_on = false;
                    return false;
                }
                Err(e) => {
                    debug!(error = %e, "udp segmentation offload send failed; sending its answers one by one");
                    return false;
                }
            }
        }
    }

    /// GSO sends made and the answers they carried.
    pub(super) fn gso_counts(&self) -> (u64, u64) {
        (self.gso_sends, self.gso_answers)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
pub(super) mod tests {
    use std::collections::HashMap;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;

    fn storage(addr: SocketAddr) -> Option<SockaddrStorage> {
        Some(SockaddrStorage::from(addr))
    }

    /// The next `count` datagrams `sock` receives (each within 5 s).
    pub(in crate::server) fn receive_all(sock: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 70_000];
        (0..count)
            .map(|_| {
                let n = sock.recv(&mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    fn answer(tag: u8, len: usize) -> Vec<u8> {
        (0..len).map(|k| tag.wrapping_add(k as u8)).collect()
    }

    #[test]
    fn equal_answers_to_one_client_arrive_as_separate_datagrams() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (to_a, to_b) = (
            storage(a.local_addr().unwrap()),
            storage(b.local_addr().unwrap()),
        );
        // a: five of 40 octets, one of 41, one of 39; b: three of 40, one too large to group.
        let mut outs = Vec::new();
        let mut dests = Vec::new();
        for (tag, len, to) in [
            (1, 40, to_a),
            (2, 40, to_b),
            (3, 40, to_a),
            (4, 41, to_a),
            (5, 40, to_a),
            (6, 40, to_b),
            (7, 39, to_a),
            (8, 40, to_a),
            (9, 2000, to_b),
            (10, 40, to_a),
            (11, 40, to_b),
        ] {
            outs.push(answer(tag, len));
            dests.push(to);
        }
        let mut sender = BatchSender::new(&server);
        sender.send(server.as_raw_fd(), &outs, &dests);
        let want = |to: Option<SockaddrStorage>| {
            let mut v: Vec<Vec<u8>> = outs
                .iter()
                .zip(&dests)
                .filter(|(_, d)| **d == to)
                .map(|(o, _)| o.clone())
                .collect();
            v.sort();
            v
        };
        let mut got_a = receive_all(&a, 7);
        let mut got_b = receive_all(&b, 4);
        got_a.sort();
        got_b.sort();
        assert_eq!(got_a, want(to_a));
        assert_eq!(got_b, want(to_b));
        // Two GSO sends: a's five 40s and b's three 40s.
        assert_eq!(sender.gso_counts(), (2, 8));
        // Nothing more arrives.
        a.set_nonblocking(true).unwrap();
        assert!(a.recv(&mut [0u8; 64]).is_err());
    }

    #[test]
    fn a_full_batch_of_one_size_for_one_client_is_one_send() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = storage(client.local_addr().unwrap());
        let outs: Vec<Vec<u8>> = (0..BATCH)
            .map(|k| answer(k as u8, GSO_MAX_SEGMENT))
            .collect();
        let dests = vec![to; BATCH];
        let mut sender = BatchSender::new(&server);
        sender.send(server.as_raw_fd(), &outs, &dests);
        let got: HashMap<u8, Vec<u8>> = receive_all(&client, BATCH)
            .into_iter()
            .map(|d| (d[0], d))
            .collect();
        assert_eq!(got.len(), BATCH);
        for out in &outs {
            assert_eq!(&got[&out[0]], out);
        }
        assert_eq!(sender.gso_counts(), (1, BATCH as u64));
    }

    #[test]
    fn a_refused_group_goes_one_datagram_at_a_time_and_the_others_still_go() {
        // An IPv4 socket cannot send to an IPv6 address: the kernel refuses that group's send. Its
        // answers then go alone (and are refused again, skipped). The group to the reachable
        // client, found after it, and that client's lone answer still arrive, and since the
        // refusal was about the address, not about GSO, GSO stays on.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let bad = storage("[::1]:9".parse().unwrap());
        let good = storage(client.local_addr().unwrap());
        let outs = vec![
            answer(1, 30),
            answer(2, 30),
            answer(3, 31),
            answer(4, 31),
            answer(5, 32),
        ];
        let dests = vec![bad, bad, good, good, good];
        let mut sender = BatchSender::new(&server);
        assert!(sender.gso_on, "this kernel knows UDP_SEGMENT");
        sender.send(server.as_raw_fd(), &outs, &dests);
        let mut got = receive_all(&client, 3);
        got.sort();
        assert_eq!(got, vec![answer(3, 31), answer(4, 31), answer(5, 32)]);
        assert!(sender.gso_on);
        assert_eq!(sender.gso_counts(), (1, 2));
    }

    /// Answers of different sizes form no group and go straight from the caller's slices, in
    /// order: each reaches its own client, and one the kernel refuses first is skipped.
    #[test]
    fn lone_answers_go_in_order_to_their_own_clients() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let bad = storage("[::1]:9".parse().unwrap());
        let (to_a, to_b) = (
            storage(a.local_addr().unwrap()),
            storage(b.local_addr().unwrap()),
        );
        let outs = vec![answer(1, 30), answer(2, 31), answer(3, 32), answer(4, 33)];
        let dests = vec![bad, to_a, to_b, to_a];
        let mut sender = BatchSender::new(&server);
        sender.send(server.as_raw_fd(), &outs, &dests);
        assert_eq!(receive_all(&a, 2), vec![answer(2, 31), answer(4, 33)]);
        assert_eq!(receive_all(&b, 1), vec![answer(3, 32)]);
        assert_eq!(sender.gso_counts(), (0, 0));
    }
}
