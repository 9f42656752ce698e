//! Socket activation (sd_listen_fds(3)): the listening sockets a service manager opened for us
//! and passed as descriptors 3, 4, ... with `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`.
//!
//! Why: with `dnsveil.socket`, systemd binds `127.0.0.1:53` and `[::1]:53` itself (as root, before
//! dnsveil runs), so queries sent during start-up or a restart wait in the socket instead of being
//! refused, and the service needs no capability to bind port 53.
//!
//! How the sockets become ours without `unsafe`: turning a descriptor number into a socket is
//! `unsafe` in std (`FromRawFd`: nothing proves the number is an open socket nobody else owns), so
//! the `listenfd` crate does it, once per descriptor, after checking with `fstat`/`getsockopt`
//! that it is a socket of the type asked for. Opening `/proc/self/fd/N` does not work for sockets
//! (the kernel answers ENXIO). We check `LISTEN_PID` ourselves (the descriptors are ours only if
//! it names this process) and bound `LISTEN_FDS` before the crate sees it.
//!
//! This is read once, by `main`, before any thread starts: the variables are then removed from
//! the environment so that no child process (none today) inherits them.
//!
//! How the server uses them ([`Server::bind_with`](super::Server::bind_with)): a passed socket
//! whose address is a configured listen address (`server.listen`) serves it, for its protocol, in
//! place of binding one; configured addresses no passed socket covers are bound as usual; passed
//! sockets at other addresses are served too (the socket unit is the administrator's word on where
//! to listen).
//!
//! Limitations: one UDP socket per passed address (no SO_REUSEPORT siblings: a socket systemd
//! created as root cannot be joined by an unprivileged process), so UDP on such an address is
//! received by one thread; descriptors that are not TCP listeners or UDP sockets (a Unix socket,
//! say) are logged and left alone; `LISTEN_FDNAMES` is used only to name sockets in the log.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use thiserror::Error;
use tracing::{info, warn};

/// The most descriptors accepted in `LISTEN_FDS` (systemd passes one per `Listen*=` line).
pub const MAX_LISTEN_FDS: usize = 256;

/// The listening sockets passed by the service manager, by address.
#[derive(Debug, Default)]
pub struct Activated {
    udp: Vec<(SocketAddr, UdpSocket, String)>,
    tcp: Vec<(SocketAddr, TcpListener, String)>,
}

/// Why the passed sockets cannot be used; reported as a start-up failure (the unit is wrong).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_FDS` is not a number, or too large.
    #[error(
        "LISTEN_FDS={value:?} is not a number of descriptors from 0 to {MAX_LISTEN_FDS}; check \
         the socket unit (dnsveil.socket) or unset LISTEN_FDS"
    )]
    BadCount { value: String },
    /// A passed socket cannot be set up (its address read, made non-blocking).
    #[error("socket {index} passed by the service manager ({name}): {source}")]
    Socket {
        index: usize,
        name: String,
        #[source]
        source: io::Error,
    },
}

/// The environment variables of the protocol, as read (tests build them by hand).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListenEnv {
    /// `LISTEN_FDS`.
    pub fds: Option<String>,
    /// `LISTEN_PID`.
    pub pid: Option<String>,
    /// `LISTEN_FDNAMES`.
    pub names: Option<String>,
}

impl ListenEnv {
    /// The variables as the process has them.
    pub fn from_process() -> ListenEnv {
        let get = |k: &str| std::env::var(k).ok();
        ListenEnv {
            fds: get("LISTEN_FDS"),
            pid: get("LISTEN_PID"),
            names: get("LISTEN_FDNAMES"),
        }
    }

    /// How many descriptors are ours: 0 without `LISTEN_FDS` or when `LISTEN_PID` names another
    /// process (the variables were inherited, not meant for us).
    pub fn count_for(&self, our_pid: u32) -> Result<usize, ActivationError> {
        let Some(fds) = &self.fds else {
            return Ok(0);
        };
        match &self.pid {
            Some(pid) if pid.trim().parse::<u32>().ok() == Some(our_pid) => {}
            _ => return Ok(0),
        }
        match fds.trim().parse::<usize>() {
            Ok(n) if n <= MAX_LISTEN_FDS => Ok(n),
            _ => Err(ActivationError::BadCount { value: fds.clone() }),
        }
    }

    /// The name of descriptor `index` (`LISTEN_FDNAMES`), or "unnamed".
    pub fn name(&self, index: usize) -> String {
        self.names
            .as_deref()
            .and_then(|n| n.split(':').nth(index))
            .filter(|n| !n.is_empty())
            .unwrap_or("unnamed")
            .to_string()
    }
}

impl Activated {
    /// No passed sockets: every listener is bound by the server.
    pub fn none() -> Activated {
        Activated::default()
    }

    /// Takes over the sockets passed to this process and removes the protocol's variables from
    /// the environment. Call it once, before any thread starts (it changes the environment).
    pub fn from_env() -> Result<Activated, ActivationError> {
        let env = ListenEnv::from_process();
        let count = env.count_for(std::process::id());
        if env.fds.is_some() {
            // Only ever called before other threads exist (see the module docs).
            std::env::remove_var("LISTEN_FDNAMES");
        }
        let count = count?;
        if count == 0 {
            // listenfd would accept a missing LISTEN_PID; we do not, so it must not look.
            std::env::remove_var("LISTEN_FDS");
            std::env::remove_var("LISTEN_PID");
            return Ok(Activated::none());
        }
        // LISTEN_FDS is checked (a number within MAX_LISTEN_FDS) and LISTEN_PID is ours; a
        // descriptor offset of listenfd's own must not move where it looks.
        std::env::remove_var("LISTEN_FDS_FIRST_FD");
        let mut fds = listenfd::ListenFd::from_env();
        let mut activated = Activated::none();
        for index in 0..count.min(fds.len()) {
            let name = env.name(index);
            let socket_err = |source| ActivationError::Socket {
                index,
                name: name.clone(),
                source,
            };
            // A descriptor of the wrong type is left in place, so trying TCP first is harmless.
            if let Ok(Some(listener)) = fds.take_tcp_listener(index) {
                listener.set_nonblocking(true).map_err(socket_err)?;
                let addr = listener.local_addr().map_err(socket_err)?;
                info!(fd = 3 + index, name = %name, "received tcp {addr} from the service manager");
                activated.tcp.push((addr, listener, name));
            } else if let Ok(Some(sock)) = fds.take_udp_socket(index) {
                super::prepare_udp(&sock).map_err(socket_err)?;
                let addr = sock.local_addr().map_err(socket_err)?;
                info!(fd = 3 + index, name = %name, "received udp {addr} from the service manager");
                activated.udp.push((addr, sock, name));
            } else {
                warn!(
                    fd = 3 + index,
                    name = %name,
                    "ignoring a descriptor from the service manager that is neither a TCP \
                     listener nor a UDP socket"
                );
            }
        }
        Ok(activated)
    }

    /// Whether no socket was passed.
    pub fn is_empty(&self) -> bool {
        self.udp.is_empty() && self.tcp.is_empty()
    }

    /// The passed UDP socket at `addr`, if any (taken: asking again gives none).
    pub(super) fn take_udp(&mut self, addr: SocketAddr) -> Option<UdpSocket> {
        let at = self.udp.iter().position(|(a, ..)| same_addr(*a, addr))?;
        Some(self.udp.swap_remove(at).1)
    }

    /// The passed TCP listener at `addr`, if any (taken: asking again gives none).
    pub(super) fn take_tcp(&mut self, addr: SocketAddr) -> Option<TcpListener> {
        let at = self.tcp.iter().position(|(a, ..)| same_addr(*a, addr))?;
        Some(self.tcp.swap_remove(at).1)
    }

    /// Everything not taken, by address.
    pub(super) fn into_rest(self) -> Vec<(SocketAddr, Option<UdpSocket>, Option<TcpListener>)> {
        let mut by_addr: HashMap<SocketAddr, (Option<UdpSocket>, Option<TcpListener>)> =
            HashMap::new();
        let mut order = Vec::new();
        for (addr, sock, _) in self.udp {
            let addr = plain(addr);
            if !by_addr.contains_key(&addr) {
                order.push(addr);
            }
            by_addr.entry(addr).or_default().0 = Some(sock);
        }
        for (addr, listener, _) in self.tcp {
            let addr = plain(addr);
            if !by_addr.contains_key(&addr) {
                order.push(addr);
            }
            by_addr.entry(addr).or_default().1 = Some(listener);
        }
        order
            .into_iter()
            .filter_map(|a| by_addr.remove(&a).map(|(u, t)| (a, u, t)))
            .collect()
    }
}

/// The address without IPv6 flow information or scope (which a configured address lacks).
fn plain(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port())
}

/// Whether a passed socket's address is the configured `wanted` (port 0 never matches).
fn same_addr(bound: SocketAddr, wanted: SocketAddr) -> bool {
    wanted.port() != 0 && plain(bound) == plain(wanted)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn env(fds: Option<&str>, pid: Option<&str>, names: Option<&str>) -> ListenEnv {
        ListenEnv {
            fds: fds.map(str::to_string),
            pid: pid.map(str::to_string),
            names: names.map(str::to_string),
        }
    }

    /// The descriptors are ours only when LISTEN_PID names us; a count that is not a number or
    /// is huge is an error, not an allocation.
    #[test]
    fn the_count_needs_our_pid_and_a_sane_number() {
        assert_eq!(env(None, Some("7"), None).count_for(7).unwrap(), 0);
        assert_eq!(env(Some("2"), Some("7"), None).count_for(7).unwrap(), 2);
        assert_eq!(env(Some("2"), Some(" 7\n"), None).count_for(7).unwrap(), 2);
        assert_eq!(env(Some("2"), Some("8"), None).count_for(7).unwrap(), 0);
        assert_eq!(env(Some("2"), None, None).count_for(7).unwrap(), 0);
        assert_eq!(env(Some("2"), Some(""), None).count_for(7).unwrap(), 0);
        for bad in ["x", "-1", "257", "99999999999999999999"] {
            let err = env(Some(bad), Some("7"), None).count_for(7).unwrap_err();
            assert!(err.to_string().contains("LISTEN_FDS"), "{err}");
        }
        assert_eq!(env(Some("256"), Some("7"), None).count_for(7).unwrap(), 256);
    }

    #[test]
    fn names_come_from_listen_fdnames_by_index() {
        let e = env(Some("3"), Some("1"), Some("dns:dns::x"));
        assert_eq!(e.name(0), "dns");
        assert_eq!(e.name(2), "unnamed");
        assert_eq!(e.name(3), "x");
        assert_eq!(e.name(9), "unnamed");
        assert_eq!(env(None, None, None).name(0), "unnamed");
    }

    /// A passed socket serves a configured address with the same IP and port (IPv6 scope and
    /// flow information aside); port 0 asks for a fresh port and never matches.
    #[test]
    fn passed_sockets_match_configured_addresses() {
        let mut a = Activated::none();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        a.tcp.push((addr, tcp, "t".into()));
        let udp = UdpSocket::bind(addr).unwrap();
        a.udp.push((addr, udp, "u".into()));
        assert!(a.take_tcp("127.0.0.1:0".parse().unwrap()).is_none());
        assert!(a.take_udp("127.0.0.2:0".parse().unwrap()).is_none());
        assert!(a.take_tcp(addr).is_some());
        assert!(a.take_tcp(addr).is_none(), "taken once");
        let rest = a.into_rest();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, addr);
        assert!(rest[0].1.is_some() && rest[0].2.is_none());
    }
}
