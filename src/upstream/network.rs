//! `network://`: the resolvers the network this machine is on gave it (by DHCP, router
//! advertisements or a VPN), for forwarding rules only (`lan`, a VPN's domain, the LAN's reverse
//! zones) and captive-portal sign-in.
//!
//! ```text
//!   query --> NetworkTransport --(at most every RECHECK: stat the source file; changed? re-read)
//!             --> plain UDP (TCP on truncation) to the first listed resolver, then the next ...
//!   source: network:///PATH, or the first that exists of SOURCES (systemd-resolved's list of
//!           the links' servers, NetworkManager's, /etc/resolv.conf)
//! ```
//!
//! Why a file: every network manager publishes the servers it learnt as a resolv.conf, and
//! rewrites it when the network changes; systemd-resolved's `/run/systemd/resolve/resolv.conf`
//! lists the real per-link servers (not its 127.0.0.53 stub), NetworkManager's
//! `/run/NetworkManager/no-stub-resolv.conf` likewise. The file is looked at again (a `stat`, at
//! most once per [`RECHECK`]) before a query, so a new network's servers are used from the first
//! query after the manager has written them, without a watcher of our own.
//!
//! Loopback servers are left out of the files found automatically: on a machine that uses
//! dnsveil, `127.0.0.1` or `127.0.0.53` in resolv.conf leads back to dnsveil (or to a stub that
//! forwards to it), a loop. A file the user names (`network:///PATH`,
//! `upstream.network_resolv_conf`) is taken as it is: a local dnsmasq is a fine network resolver.
//!
//! Limitations: plain DNS (what a network gives out), so only names the rule or the portal window
//! sends here travel unencrypted; the `options`, `search` and `domain` lines are not used;
//! at most [`MAX_SERVERS`] servers.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::info;

use super::plain::{PlainOptions, UdpTransport};
use super::{Transport, UpstreamError};
use crate::handler::BoxFuture;

/// Where the network's resolvers are looked for, in order, when no path is given.
pub const SOURCES: [&str; 4] = [
    "/run/systemd/resolve/resolv.conf",
    "/run/NetworkManager/no-stub-resolv.conf",
    "/run/NetworkManager/resolv.conf",
    "/etc/resolv.conf",
];
/// Most resolvers used from the file.
pub const MAX_SERVERS: usize = 8;
/// Most octets read from the file.
pub const MAX_FILE: u64 = 64 * 1024;
/// How often, at most, the file is looked at again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The nameserver addresses of resolv.conf text, at most [`MAX_SERVERS`], loopback ones left out
/// unless `loopback` (a file the user named). `scope` resolves an IPv6 zone (`fe80::1%wlan0`) to
/// an interface index.
pub fn parse_resolv_conf(
    text: &str,
    loopback: bool,
    scope: impl Fn(&str) -> Option<u32>,
) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(value) = words.next() else { continue };
        let (ip, zone) = match value.split_once('%') {
            Some((ip, zone)) => (ip, Some(zone)),
            None => (value, None),
        };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        if (ip.is_loopback() && !loopback) || ip.is_unspecified() {
            continue;
        }
        let addr = match (ip, zone) {
            (IpAddr::V6(v6), Some(zone)) => {
                let Some(index) = scope(zone) else { continue };
                SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, index))
            }
            (ip, _) => SocketAddr::new(ip, 53),
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
        if out.len() == MAX_SERVERS {
            break;
        }
    }
    out
}

/// Fuzzing entry: [`parse_resolv_conf`] on any text must not panic and stays within its cap.
pub fn fuzz_resolv_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let servers = parse_resolv_conf(&text, false, |z| (z.len() < 4).then_some(1));
    assert!(servers.len() <= MAX_SERVERS);
    assert!(servers.iter().all(|s| !s.ip().is_loopback()));
}

/// What identifies a version of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

/// The servers now in use, and the file they came from.
struct Current {
    checked: Option<Instant>,
    stamp: Option<Stamp>,
    servers: Vec<(SocketAddr, Arc<UdpTransport>)>,
}

/// The `network://` transport.
pub struct NetworkTransport {
    url: String,
    /// `None`: the first of [`SOURCES`] that exists.
    path: Option<PathBuf>,
    timeout: Duration,
    /// A std Mutex: held to compare stamps and swap the list, never across an `.await`.
    current: Mutex<Current>,
}

impl NetworkTransport {
    /// The transport for `network://` (`path` `None`) or `network://PATH`.
    pub fn new(path: Option<PathBuf>, timeout: Duration) -> NetworkTransport {
        let url = match &path {
            Some(p) => format!("network://{}", p.display()),
            None => "network://".to_string(),
        };
        NetworkTransport {
            url,
            path,
            timeout,
            current: Mutex::new(Current {
                checked: None,
                stamp: None,
                servers: Vec::new(),
            }),
        }
    }

    /// The resolvers in use now (reading the file again if it may have changed).
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.refresh().iter().map(|(a, _)| *a).collect()
    }

    /// The file to read: the configured one, or the first of [`SOURCES`] that exists.
    fn source(&self) -> Option<PathBuf> {
        match &self.path {
            Some(p) => Some(p.clone()),
            None => SOURCES.iter().map(PathBuf::from).find(|p| p.exists()),
        }
    }

    /// The current servers; the file is looked at again if [`RECHECK`] has passed.
    fn refresh(&self) -> Vec<(SocketAddr, Arc<UdpTransport>)> {
        let now = Instant::now();
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if cur
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < RECHECK)
        {
            return cur.servers.clone();
        }
        cur.checked = Some(now);
        let stamp = self.source().and_then(|p| stamp_of(&p));
        if stamp != cur.stamp {
            let servers = stamp
                .as_ref()
                .map_or_else(Vec::new, |s| read_servers(&s.path, self.path.is_some()));
            info!(
                source = %stamp.as_ref().map_or("none".into(), |s| s.path.display().to_string()),
                servers = %servers.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
                "the network's resolvers"
            );
            cur.servers = servers
                .into_iter()
                .map(|a| {
                    // Forwarding to the network's own resolvers: sockets reused, as for any
                    // forwarding upstream (see `plain`'s module doc).
                    let opts = PlainOptions {
                        timeout: self.timeout,
                        reuse_udp: true,
                    };
                    (a, Arc::new(UdpTransport::new(a, opts)))
                })
                .collect();
            cur.stamp = stamp;
        }
        cur.servers.clone()
    }

    async fn exchange_inner(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let servers = self.refresh();
        let mut last = UpstreamError::NoNetworkResolvers;
        for (_, t) in &servers {
            match t.exchange(query).await {
                Ok(answer) => return Ok(answer),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        path: path.to_path_buf(),
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

fn read_servers(path: &Path, loopback: bool) -> Vec<SocketAddr> {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
        .is_ok();
    if !read {
        return Vec::new();
    }
    parse_resolv_conf(&text, loopback, |zone| {
        nix::net::if_::if_nametoindex(zone).ok()
    })
}

impl Transport for NetworkTransport {
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.exchange_inner(query))
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn reset(&self) {
        // Read the file again at the next query.
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .checked = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_and_loops_left_out() {
        let text = "# Generated by NetworkManager\nsearch lan\nnameserver 192.168.1.1\n\
                    nameserver 127.0.0.53\nnameserver ::1\nnameserver   fe80::1%wlan0  \n\
                    nameserver fe80::2%nosuch\nnameserver 2001:db8::53\nnameserver bogus\n\
                    nameserver\noptions edns0 trust-ad\nnameserver 192.168.1.1\n";
        let got = parse_resolv_conf(text, false, |z| (z == "wlan0").then_some(3));
        assert_eq!(
            got,
            [
                "192.168.1.1:53".parse().unwrap(),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 3)),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
        let many: String = (1..=20)
            .map(|i| format!("nameserver 10.0.0.{i}\n"))
            .collect();
        assert_eq!(parse_resolv_conf(&many, false, |_| None).len(), MAX_SERVERS);
        // A file the user named is taken as it is (a local dnsmasq on 127.0.0.1).
        let local = parse_resolv_conf("nameserver 127.0.0.1\n", true, |_| None);
        assert_eq!(local, ["127.0.0.1:53".parse().unwrap()]);
        fuzz_resolv_conf(b"nameserver \xff\xfe\nnameserver 1.2.3.4%x\n");
    }

    #[tokio::test]
    async fn the_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let t = NetworkTransport::new(Some(path.clone()), Duration::from_secs(1));
        assert_eq!(t.servers(), ["192.0.2.1:53".parse().unwrap()]);
        std::fs::write(&path, "nameserver 192.0.2.2\nnameserver 192.0.2.3\n").unwrap();
        // Within RECHECK the list stands; a network change (reset) makes it look at once.
        t.reset();
        assert_eq!(
            t.servers(),
            [
                "192.0.2.2:53".parse().unwrap(),
                "192.0.2.3:53".parse().unwrap()
            ]
        );
        std::fs::remove_file(&path).unwrap();
        t.reset();
        assert!(t.servers().is_empty());
        assert_eq!(t.url(), format!("network://{}", path.display()));
    }
}
