//! Real encrypted DNS servers from Debian on loopback for interop tests: unbound and dnsdist as
//! DNS-over-TLS and DNS-over-HTTPS front-ends (with the test PKI in `certs/test/`) forwarding to an
//! nsd, plus plaintext *decoys* that record anything sent to them.
//!
//! ```text
//!   client --udp/tcp--> dnsveil --DoT/DoH--> unbound | dnsdist --plain--> nsd
//!                          \--(must never)--> decoy (plain UDP/TCP on the ports a fallback would use)
//! ```
//!
//! Readiness is observed: each front-end is ready when `kdig` gets an answer through it over TLS or
//! HTTPS with certificate verification (a bounded loop, never a fixed sleep). Daemons run in their
//! own process group and are killed as a group when dropped.
//!
//! dnsdist's console (`showBinds()`, `showTCPStats()`) gives per-listener query counts and TLS
//! session counts, so tests can assert which listener a query arrived on and how many TLS
//! handshakes a client cost. dnsdist's security poll (a DNS query to the system resolver) is
//! switched off: nothing here may leave loopback.
//!
//! Limitations: Linux only (any 127/8 address is local); binding the standard ports 53, 443 and 853
//! on a random 127/8 address needs root or CAP_NET_BIND_SERVICE, as the rest of the integration
//! suite (which uses `setpriv`) already does.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{free_port, require_tool, GroupGuard};

/// The host name in the test certificates (`certs/test/server.pem`).
pub const CERT_NAME: &str = "dns.test";

/// The directory of the test PKI.
pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("certs")
        .join("test")
}

/// A file of the test PKI, as a string for command lines.
pub fn cert_file(name: &str) -> String {
    certs_dir().join(name).display().to_string()
}

/// How long a daemon may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(15);
/// Pause between two readiness probes (the probe itself is the synchronisation).
const PROBE_GAP: Duration = Duration::from_millis(50);

/// Asks `name`/`qtype` with kdig over TLS (or HTTPS with `doh_path`) at `server`, verifying the
/// certificate against the test CA and [`CERT_NAME`]. Returns kdig's `+short` output.
pub fn kdig_encrypted(
    server: SocketAddr,
    doh_path: Option<&str>,
    name: &str,
    qtype: &str,
) -> Result<String, String> {
    let kdig = require_tool("kdig", "knot-dnsutils");
    let mut cmd = Command::new(kdig);
    cmd.arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .arg(format!("+tls-ca={}", cert_file("ca.pem")))
        .arg(format!("+tls-hostname={CERT_NAME}"))
        .args(["+short", "+timeout=2", "+retry=0"]);
    if let Some(path) = doh_path {
        cmd.arg(format!("+https={path}"));
    }
    let out = cmd
        .args([name, qtype])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && !stdout.trim().is_empty() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Waits until kdig gets an answer for `name` through an encrypted front-end.
fn wait_encrypted(
    what: &str,
    server: SocketAddr,
    doh_path: Option<&str>,
    name: &str,
    log: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let error = match kdig_encrypted(server, doh_path, name, "A") {
            Ok(_) => return,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what} on {server} never answered over {}: {error}\nlog:\n{}",
            if doh_path.is_some() { "HTTPS" } else { "TLS" },
            log()
        );
        std::thread::sleep(PROBE_GAP);
    }
}

/// unbound serving DoT and DoH on 127.0.0.1 with the test certificate, forwarding `zone` to an
/// authoritative server, logging every query it receives.
pub struct Unbound {
    /// The DNS-over-TLS listener (unbound also answers plain UDP on this port).
    pub dot: SocketAddr,
    /// The DNS-over-HTTPS listener; the path is `/dns-query`.
    pub doh: SocketAddr,
    log_file: PathBuf,
    _child: GroupGuard,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// Starts unbound forwarding `zone` to `authority`; `ready_name` must resolve through it.
    pub fn start(zone: &str, authority: SocketAddr, ready_name: &str) -> Unbound {
        let unbound = require_tool("unbound", "unbound");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let (dot_port, doh_port) = (free_port(), free_port());
        let log_file = dir.path().join("unbound.log");
        // `local-zone: "test." nodefault`: unbound blocks the special-use `test.` by default.
        let conf = format!(
            "server:\n  interface: 127.0.0.1@{dot_port}\n  interface: 127.0.0.1@{doh_port}\n  \
             tls-port: {dot_port}\n  https-port: {doh_port}\n  http-endpoint: \"/dns-query\"\n  \
             tls-service-key: \"{key}\"\n  tls-service-pem: \"{pem}\"\n  \
             access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  chroot: \"\"\n  \
             username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  \
             logfile: \"{log}\"\n  verbosity: 1\n  log-queries: yes\n  module-config: \"iterator\"\n  \
             qname-minimisation: no\n  local-zone: \"test.\" nodefault\n  num-threads: 1\n\
             remote-control:\n  control-enable: no\n\
             forward-zone:\n  name: \"{zone}\"\n  forward-addr: {ip}@{port}\n",
            key = cert_file("server.key"),
            pem = cert_file("server.pem"),
            log = log_file.display(),
            ip = authority.ip(),
            port = authority.port(),
        );
        let conf_path = dir.path().join("unbound.conf");
        std::fs::write(&conf_path, conf).expect("write unbound.conf");
        let child = GroupGuard::spawn(
            Command::new(unbound)
                .args(["-d", "-c"])
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let u = Unbound {
            dot: ([127, 0, 0, 1], dot_port).into(),
            doh: ([127, 0, 0, 1], doh_port).into(),
            log_file,
            _child: child,
            _dir: dir,
        };
        let log = || u.log();
        wait_encrypted("unbound", u.dot, None, ready_name, &log);
        wait_encrypted("unbound", u.doh, Some("/dns-query"), ready_name, &log);
        u
    }

    /// unbound's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Whether unbound logged a query for `name` (`log-queries`), in any letter case.
    pub fn saw_query(&self, name: &str) -> bool {
        let needle = format!(" {}. ", name.trim_end_matches('.').to_ascii_lowercase());
        self.log().to_ascii_lowercase().contains(&needle)
    }

    /// Waits (bounded) until unbound has logged a query for `name`.
    pub fn wait_logged(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.saw_query(name) {
            assert!(
                Instant::now() < deadline,
                "unbound never logged {name}:\n{}",
                self.log()
            );
            std::thread::sleep(PROBE_GAP);
        }
    }
}

/// Where a dnsdist should listen.
#[derive(Clone, Copy, Debug)]
pub struct DnsdistPorts {
    /// Plain UDP+TCP listener (dnsdist always wants one); its query count shows plaintext use.
    pub plain: SocketAddr,
    pub dot: SocketAddr,
    pub doh: SocketAddr,
}

impl DnsdistPorts {
    /// Free ports on 127.0.0.1.
    pub fn local() -> Self {
        let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
        DnsdistPorts {
            plain: at(free_port()),
            dot: at(free_port()),
            doh: at(free_port()),
        }
    }
}

/// One dnsdist listener's line of `showBinds()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub addr: SocketAddr,
    pub protocol: String,
    pub queries: u64,
}

/// TLS sessions one dnsdist frontend has seen (`showTCPStats()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsSessions {
    pub new: u64,
    pub resumed: u64,
}

impl TlsSessions {
    /// Handshakes of any kind.
    pub fn handshakes(&self) -> u64 {
        self.new + self.resumed
    }
}

/// dnsdist with a plain, a DoT and a DoH (`/dns-query`) frontend and one backend, plus its console.
pub struct Dnsdist {
    pub ports: DnsdistPorts,
    conf: PathBuf,
    child: Option<GroupGuard>,
    _dir: tempfile::TempDir,
}

impl Dnsdist {
    /// Starts dnsdist in front of `backend`; ready when `ready_name` resolves through its DoT and
    /// DoH frontends.
    pub fn start(ports: DnsdistPorts, backend: SocketAddr, ready_name: &str) -> Dnsdist {
        use base64::Engine as _;
        let dnsdist = require_tool("dnsdist", "dnsdist");
        let dir = tempfile::tempdir().expect("tempdir");
        let console = free_port();
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let (cert, pkey) = (cert_file("server.pem"), cert_file("server.key"));
        let conf = format!(
            "setSecurityPollSuffix(\"\")\n\
             setLocal(\"{plain}\")\n\
             addTLSLocal(\"{dot}\", \"{cert}\", \"{pkey}\", {{maxInFlight=1000}})\n\
             addDOHLocal(\"{doh}\", \"{cert}\", \"{pkey}\", \"/dns-query\")\n\
             newServer{{address=\"{backend}\", name=\"authority\"}}\n\
             controlSocket(\"127.0.0.1:{console}\")\n\
             setKey(\"{key}\")\n",
            plain = ports.plain,
            dot = ports.dot,
            doh = ports.doh,
        );
        let conf_path = dir.path().join("dnsdist.conf");
        std::fs::write(&conf_path, conf).expect("write dnsdist.conf");
        let log_path = dir.path().join("dnsdist.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = GroupGuard::spawn(
            Command::new(dnsdist)
                .args(["--supervised", "--disable-syslog", "-C"])
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log),
        );
        let d = Dnsdist {
            ports,
            conf: conf_path,
            child: Some(child),
            _dir: dir,
        };
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        wait_encrypted("dnsdist", ports.dot, None, ready_name, &read_log);
        wait_encrypted(
            "dnsdist",
            ports.doh,
            Some("/dns-query"),
            ready_name,
            &read_log,
        );
        d
    }

    /// Runs a Lua command on the console and returns its output.
    pub fn console(&self, command: &str) -> String {
        let dnsdist = require_tool("dnsdist", "dnsdist");
        let out = Command::new(dnsdist)
            .arg("-C")
            .arg(&self.conf)
            .args(["-c", "-e", command])
            .stdin(Stdio::null())
            .output()
            .expect("run dnsdist console");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !text.starts_with("Error"),
            "dnsdist console `{command}` failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Every listener with its query count.
    pub fn binds(&self) -> Vec<Bind> {
        parse_binds(&self.console("showBinds()"))
    }

    /// Queries received on `addr` over `protocol` (a prefix of dnsdist's name: "UDP", "TCP",
    /// "TCP (DNS over TLS)", "TCP (DNS over HTTPS)").
    pub fn queries(&self, addr: SocketAddr, protocol: &str) -> u64 {
        self.binds()
            .iter()
            .filter(|b| b.addr == addr && b.protocol == protocol)
            .map(|b| b.queries)
            .sum()
    }

    /// Queries on the plaintext listener, UDP and TCP together.
    pub fn plain_queries(&self) -> u64 {
        self.queries(self.ports.plain, "UDP") + self.queries(self.ports.plain, "TCP")
    }

    /// TLS sessions on the frontend listening on `addr`.
    pub fn tls_sessions(&self, addr: SocketAddr) -> TlsSessions {
        let binds = self.binds();
        let index = binds
            .iter()
            .position(|b| b.addr == addr && b.protocol.contains("over"))
            .unwrap_or_else(|| panic!("no TLS frontend on {addr}: {binds:?}"));
        let stats = self.console("showTCPStats()");
        parse_tls_sessions(&stats, index)
            .unwrap_or_else(|| panic!("frontend {index} missing in showTCPStats():\n{stats}"))
    }

    /// Kills dnsdist now (its ports are free afterwards).
    pub fn kill(&mut self) {
        self.child.take();
    }
}

/// Parses `showBinds()`: `#  Address  Protocol  Queries`, the protocol possibly with spaces.
pub fn parse_binds(text: &str) -> Vec<Bind> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 || fields[0].parse::<usize>().is_err() {
                return None;
            }
            Some(Bind {
                addr: fields[1].parse().ok()?,
                protocol: fields[2..fields.len() - 1].join(" "),
                queries: fields[fields.len() - 1].parse().ok()?,
            })
        })
        .collect()
}

/// The TLS new-session and resumption counts of frontend `index` in `showTCPStats()`, whose
/// frontend rows are `# Address Connections MaxConcurrent DiedReading DiedSending GaveUp
/// ClientTimeouts DownstreamTimeouts AvgQueries AvgDuration TLSNew TLSResumed ...`.
pub fn parse_tls_sessions(text: &str, index: usize) -> Option<TlsSessions> {
    let frontends = text.split("Frontends:").nth(1)?;
    let frontends = frontends.split("Backends:").next()?;
    let row: Vec<&str> = frontends
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first().and_then(|i| i.parse::<usize>().ok()) == Some(index))?;
    Some(TlsSessions {
        new: row.get(11)?.parse().ok()?,
        resumed: row.get(12)?.parse().ok()?,
    })
}

/// A random 127/8 address with the listed ports bound for both UDP and TCP: the sockets stay
/// held until taken ([`LoopbackPorts::take_udp`], [`LoopbackPorts::take_tcp`]) or dropped.
///
/// Handing the probed sockets on, rather than closing and binding again, matters: a process that
/// another test forks in that gap holds copies of the descriptors until it execs, and the second
/// bind fails with "address in use".
pub struct LoopbackPorts {
    pub ip: Ipv4Addr,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
}

impl LoopbackPorts {
    /// The held UDP socket on `port` (panics if it was not probed or is already taken).
    pub fn take_udp(&mut self, port: u16) -> UdpSocket {
        take_on_port(&mut self.udp, port, UdpSocket::local_addr, "udp")
    }

    /// The held TCP listener on `port` (panics if it was not probed or is already taken).
    pub fn take_tcp(&mut self, port: u16) -> TcpListener {
        take_on_port(&mut self.tcp, port, TcpListener::local_addr, "tcp")
    }
}

fn take_on_port<S>(
    held: &mut Vec<S>,
    port: u16,
    local: fn(&S) -> std::io::Result<SocketAddr>,
    proto: &str,
) -> S {
    let i = held
        .iter()
        .position(|s| local(s).is_ok_and(|a| a.port() == port))
        .unwrap_or_else(|| panic!("{proto} port {port} is not held"));
    held.swap_remove(i)
}

/// A random 127/8 address on which every listed port is free for both UDP and TCP, with all of
/// them bound. Binding ports below 1024 needs root or CAP_NET_BIND_SERVICE; without it the test
/// fails loudly.
pub fn free_loopback_ip(ports: &[u16]) -> LoopbackPorts {
    'addr: for _ in 0..200 {
        let r = rand::random::<[u8; 3]>();
        let ip = Ipv4Addr::new(127, r[0].max(1), r[1], r[2].clamp(1, 254));
        let mut held = LoopbackPorts {
            ip,
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for &port in ports {
            let addr = SocketAddr::from((ip, port));
            match (UdpSocket::bind(addr), TcpListener::bind(addr)) {
                (Ok(u), Ok(t)) => {
                    held.udp.push(u);
                    held.tcp.push(t);
                }
                (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    panic!(
                        "binding {addr} was refused ({e}): this interop test uses the standard \
                         ports 53, 443 and 853 on a 127/8 address and needs root or \
                         CAP_NET_BIND_SERVICE"
                    )
                }
                _ => continue 'addr,
            }
        }
        return held;
    }
    panic!("no 127/8 address with ports {ports:?} free");
}

/// What a decoy received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// "udp" or "tcp".
    pub proto: &'static str,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Plain UDP and TCP listeners that answer nothing and record every datagram and every byte
/// sent on every connection. A TCP connection is read until EOF or 300 ms of silence, then
/// closed (so a TLS client sees its handshake fail).
pub struct Decoy {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Decoy {
    /// Records on the given sockets (taken from [`free_loopback_ip`]'s result).
    pub fn start(udp: Vec<UdpSocket>, tcp: Vec<TcpListener>) -> Decoy {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for sock in udp {
            let addr = sock.local_addr().expect("decoy udp address");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let (seen, stop) = (seen.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                udp_loop(sock, addr, &seen, &stop)
            }));
        }
        for listener in tcp {
            let addr = listener.local_addr().expect("decoy tcp address");
            listener.set_nonblocking(true).expect("nonblocking");
            let (seen, stop) = (seen.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                tcp_loop(listener, addr, &seen, &stop)
            }));
        }
        Decoy {
            seen,
            stop,
            threads,
        }
    }

    /// Stops recording and returns everything that reached the decoy's sockets, including what
    /// was still queued in the kernel when this was called (a final drain of every UDP socket
    /// and the TCP accept queues), so an assertion that nothing arrived needs no waiting.
    pub fn finish(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.seen.lock().expect("decoy log").clone()
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn record(seen: &Mutex<Vec<Seen>>, item: Seen) {
    // Lock held for a push only.
    seen.lock().expect("decoy log").push(item);
}

/// Records datagrams until stopped, then drains whatever is still queued.
fn udp_loop(sock: UdpSocket, addr: SocketAddr, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65535];
    let mut last = false;
    loop {
        if stop.load(Ordering::Relaxed) && !last {
            last = true;
            let _ = sock.set_nonblocking(true);
        }
        match sock.recv_from(&mut buf) {
            Ok((n, peer)) => record(
                seen,
                Seen {
                    proto: "udp",
                    local: addr,
                    peer,
                    bytes: buf[..n].to_vec(),
                },
            ),
            Err(_) if last => return,
            Err(_) => {}
        }
    }
}

/// Accepts and records connections until stopped, then takes whatever is still queued.
fn tcp_loop(listener: TcpListener, addr: SocketAddr, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let mut last = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            last = true;
        }
        match listener.accept() {
            Ok((mut conn, peer)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
                let mut bytes = Vec::new();
                let mut buf = [0u8; 4096];
                while bytes.len() < 1 << 20 {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    }
                }
                // Recorded before the connection closes, so the client's failure comes after.
                record(
                    seen,
                    Seen {
                        proto: "tcp",
                        local: addr,
                        peer,
                        bytes,
                    },
                );
            }
            Err(_) if last => return,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Whether `bytes` contain the first label of `name` (use a distinctive one), in any letter case:
/// in wire form or as text, a query for `name` carries it.
pub fn mentions_name(bytes: &[u8], name: &str) -> bool {
    let lower: Vec<u8> = bytes.iter().map(u8::to_ascii_lowercase).collect();
    let first_label = name.split('.').next().unwrap_or(name).to_ascii_lowercase();
    lower
        .windows(first_label.len().max(1))
        .any(|w| w == first_label.as_bytes())
}

/// The IP of a socket address as an `IpAddr` string for `--bootstrap`.
pub fn ip_arg(ip: impl Into<IpAddr>) -> String {
    ip.into().to_string()
}
