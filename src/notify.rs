//! systemd's service notification protocol (sd_notify(3)): READY, RELOADING, STOPPING, STATUS and
//! the watchdog, as datagrams of `KEY=value` lines to the socket named in `NOTIFY_SOCKET`.
//!
//! Why: with `Type=notify` systemd (and so `nss-lookup.target`, which waits for the resolver)
//! counts dnsveil as started only once every listener is bound, not when the process is spawned;
//! with `WatchdogSec=` it restarts a dnsveil that stopped making progress.
//!
//! The protocol is a datagram on a Unix socket: a path, or an abstract name written `@name`. It is
//! small enough to speak here without a crate and without `unsafe` (the standard library has
//! abstract socket addresses on Linux). Without `NOTIFY_SOCKET` every call does nothing, so the
//! same binary runs under any supervisor or none.
//!
//! Limitations: no file-descriptor passing (FDSTORE); `MAINPID` is not sent (dnsveil is the main
//! process); messages that cannot be sent are logged at debug and dropped, as libsystemd does.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tracing::debug;

/// Where notifications go, if anywhere.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    /// An abstract socket name (`@name` in `NOTIFY_SOCKET`), without the `@`.
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names (none when it is unset or empty).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|v| parse_target(&v));
        Notifier { target }
    }

    /// A notifier for the socket at `path` (tests).
    pub fn to_path(path: impl Into<PathBuf>) -> Notifier {
        Notifier {
            target: Some(Target::Path(path.into())),
        }
    }

    /// Whether a supervisor listens.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Every listener is bound and the configuration is in force.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A reload starts (`ready` ends it). `now_us` is CLOCK_MONOTONIC in microseconds, which
    /// systemd 253 and later require with RELOADING=1.
    pub fn reloading(&self, now_us: u64) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={now_us}"));
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=shutting down");
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// The watchdog keep-alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let sent = UnixDatagram::unbound().and_then(|sock| match target {
            Target::Path(path) => sock.send_to(message.as_bytes(), path),
            Target::Abstract(name) => send_abstract(&sock, name, message.as_bytes()),
        });
        if let Err(e) = sent {
            debug!(error = %e, "service manager notification not sent");
        }
    }
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, when it is set and meant for this
/// process (`WATCHDOG_PID`, if present, is ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

fn parse_target(v: &std::ffi::OsStr) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = v.as_bytes();
    match bytes.first()? {
        b'@' => Some(Target::Abstract(bytes[1..].to_vec())),
        b'/' => Some(Target::Path(PathBuf::from(v))),
        // vsock and relative paths: not for a local service.
        _ => None,
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &[u8], message: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(message, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// A status value on one line (the protocol is one assignment per line).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::to_path(&path);
        assert!(n.is_active());
        n.ready("serving\non 127.0.0.1:53");
        assert_eq!(receive(&sock), "READY=1\nSTATUS=serving on 127.0.0.1:53");
        n.reloading(42);
        assert_eq!(receive(&sock), "RELOADING=1\nMONOTONIC_USEC=42");
        n.stopping();
        assert_eq!(receive(&sock), "STOPPING=1\nSTATUS=shutting down");
        n.watchdog();
        assert_eq!(receive(&sock), "WATCHDOG=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("dnsveil-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let target = parse_target(std::ffi::OsStr::new(&format!("@{name}")));
        let n = Notifier { target };
        n.status("42 queries");
        assert_eq!(receive(&sock), "STATUS=42 queries");
    }

    #[test]
    fn no_socket_means_no_notifications() {
        let n = Notifier::default();
        assert!(!n.is_active());
        n.ready("nobody listens"); // does nothing, does not fail
        assert!(parse_target(std::ffi::OsStr::new("")).is_none());
        assert!(parse_target(std::ffi::OsStr::new("relative")).is_none());
    }
}
