//! Integration-test harness: real DNS software from Debian (nsd, dig, kdig) and the real `dnsveil`
//! binary, all on loopback.
//!
//! Tools are required, not optional: when one is missing the test fails with a message saying which
//! package to install (CI installs them in `.ci/run`). Readiness is observed, never guessed: nsd is
//! ready when it answers, dnsveil when it prints its `listening on` lines.
#![allow(dead_code)]

pub mod daemons;
pub mod relay;
pub mod signing;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dnsveil::wire::{Message, Name, RType};

/// The path of a required external tool, or a failing test that names its Debian package.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("required tool `{tool}` is missing: install the Debian package `{package}` (apt-get install {package})");
}

/// A port that is free on 127.0.0.1 for both UDP and TCP right now, below the kernel's ephemeral
/// range (see [`free_port_on`]).
pub fn free_port() -> u16 {
    free_port_on(&[std::net::Ipv4Addr::LOCALHOST.into()])
}

/// A port free for both UDP and TCP on every address of `ips` right now, chosen at random below
/// the kernel's ephemeral range (32768 and up on Linux), so that no socket bound to port 0 (an
/// outgoing query's, another test's) takes it between this check and the caller's bind. For test
/// hierarchies that listen on one port on many loopback addresses.
pub fn free_port_on(ips: &[std::net::IpAddr]) -> u16 {
    for _ in 0..1000 {
        let port = rand::random::<u16>() % 22_000 + 10_000;
        let free = ips.iter().all(|&ip| {
            UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port)).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// Two different ports, each free ([`free_port_on`]) on all of 127.0.0.1 to 127.0.0.16, the
/// addresses the test hierarchies of the recursor's tests listen on.
pub fn hierarchy_ports() -> (u16, u16) {
    let ips: Vec<std::net::IpAddr> = (1..=16u8)
        .map(|i| std::net::IpAddr::from([127, 0, 0, i]))
        .collect();
    let first = free_port_on(&ips);
    loop {
        let second = free_port_on(&ips);
        if second != first {
            return (first, second);
        }
    }
}

/// Sends `query` over UDP to `server` and waits for the answer.
pub fn udp_exchange(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    sock.send_to(query, server).ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Sends `query` over TCP to `server` (one framed query) and reads one framed answer.
pub fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    tcp_exchange_from(None, server, query, Duration::from_secs(3))
}

/// [`tcp_exchange`] from source address `from` (any when None), waiting at most `wait` to connect
/// and for each read.
pub fn tcp_exchange_from(
    from: Option<std::net::IpAddr>,
    server: SocketAddr,
    query: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::STREAM,
        None,
    )
    .ok()?;
    if let Some(ip) = from {
        sock.bind(&SocketAddr::new(ip, 0).into()).ok()?;
    }
    sock.connect_timeout(&server.into(), wait).ok()?;
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(wait)).ok()?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// A query message for `name`/`qtype` with the given ID, encoded.
pub fn query_bytes(name: &str, qtype: RType, id: u16) -> Vec<u8> {
    let mut q = Message::query(name.parse::<Name>().expect("name"), qtype);
    q.header.id = id;
    q.encode().expect("encode")
}

/// Runs a command and returns its stdout, failing the test with its stderr if it fails.
pub fn run_tool(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("spawn tool");
    assert!(
        out.status.success(),
        "{} {:?} failed: {}\n{}",
        program.display(),
        args,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig +short` style helper: returns dig's full output.
pub fn dig(server: SocketAddr, args: &[&str]) -> String {
    let dig = require_tool("dig", "dnsutils");
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut all: Vec<&str> = vec![at.as_str(), "-p", port.as_str(), "+time=3", "+tries=1"];
    all.extend_from_slice(args);
    run_tool(&dig, &all)
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A daemon started in its own process group (nsd forks workers), killed as a group when dropped.
pub struct GroupGuard(pub Child);

impl GroupGuard {
    pub fn spawn(cmd: &mut Command) -> GroupGuard {
        use std::os::unix::process::CommandExt;
        GroupGuard(cmd.process_group(0).spawn().expect("spawn daemon"))
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// An nsd authoritative server on 127.0.0.1 serving the given zones (name, zone text).
pub struct Nsd {
    pub addr: SocketAddr,
    _child: GroupGuard,
    _dir: tempfile::TempDir,
}

impl Nsd {
    pub fn start(zones: &[(&str, String)]) -> Nsd {
        Self::start_on(&[std::net::Ipv4Addr::LOCALHOST], free_port(), zones)
    }

    /// An nsd serving `zones` on each of `ips` (loopback addresses such as 127.0.0.2) at `port`;
    /// `addr` is the first of them.
    pub fn start_on(ips: &[std::net::Ipv4Addr], port: u16, zones: &[(&str, String)]) -> Nsd {
        let nsd = require_tool("nsd", "nsd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let mut conf = String::from("server:\n");
        for ip in ips {
            conf.push_str(&format!("  ip-address: {ip}\n"));
        }
        conf.push_str(&format!(
            "  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
             database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 1\n  hide-version: yes\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
             remote-control:\n  control-enable: no\n"
        ));
        for (name, text) in zones {
            let file = if *name == "." { "root" } else { name };
            std::fs::write(dir.path().join(format!("{file}.zone")), text).expect("write zone");
            conf.push_str(&format!(
                "zone:\n  name: \"{name}\"\n  zonefile: \"{file}.zone\"\n"
            ));
        }
        let conf_path = dir.path().join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        let child = GroupGuard::spawn(
            Command::new(nsd)
                .args(["-d", "-c"])
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let addr: SocketAddr = (ips[0], port).into();
        // Ready when it answers the first zone's SOA.
        let probe = query_bytes(zones[0].0, RType::SOA, 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
            sock.send_to(&probe, addr).expect("send");
            let mut buf = [0u8; 4096];
            if sock.recv_from(&mut buf).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nsd did not start: {}",
                std::fs::read_to_string(dir.path().join("nsd.log")).unwrap_or_default()
            );
        }
        Nsd {
            addr,
            _child: child,
            _dir: dir,
        }
    }

    /// Stops the server without closing its sockets (SIGSTOP to its process group): queries to it
    /// go unanswered, like those to an upstream that has gone silent.
    pub fn pause(&self) {
        self.signal_group("STOP");
    }

    /// Lets a paused server answer again (SIGCONT); it then answers what was queued meanwhile.
    pub fn resume(&self) {
        self.signal_group("CONT");
    }

    fn signal_group(&self, sig: &str) {
        let status = Command::new("kill")
            .args([
                &format!("-{sig}"),
                "--",
                &format!("-{}", self._child.0.id()),
            ])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} nsd");
    }
}

/// A process's stderr lines so far, and a signal for each new one.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Log {
    fn text(&self) -> String {
        self.lines.lock().expect("log").join("\n")
    }
}

/// The real `dnsveil` binary, started with `run` and the given arguments.
pub struct Dnsveil {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub child: Guard,
    /// Its own runtime directory (RUNTIME_DIRECTORY), where its control socket goes by default.
    pub runtime_dir: tempfile::TempDir,
    log: Arc<Log>,
    /// Reads stderr into `log`; ends at the process's exit (end of the pipe).
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Dnsveil {
    /// Starts `dnsveil run ARGS` and waits for its `listening on` lines.
    pub fn start(args: &[&str]) -> Dnsveil {
        Self::start_cmd(args, &[])
    }

    /// Starts a recursive resolver over a test hierarchy: root hints from `hints`, queries to port
    /// `query_port`, validation off (test hierarchies are unsigned, and the built-in anchors are the
    /// real root's), then `extra`.
    pub fn recursive(hints: &Path, query_port: u16, extra: &[&str]) -> Dnsveil {
        let port = query_port.to_string();
        let hints = hints.to_str().expect("path");
        let mut args = vec![
            "--mode",
            "recursive",
            "--root-hints",
            hints,
            "--query-port",
            &port,
            "--listen",
            "127.0.0.1:0",
            "--hosts",
            "",
            "--dnssec",
            "off",
        ];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Starts dnsveil on loopback with `config_toml` as its config file (written into `dir`),
    /// forwarding to `upstream` over plain UDP, with no hosts file and `extra` flags.
    pub fn forwarding(
        dir: &Path,
        upstream: SocketAddr,
        config_toml: &str,
        extra: &[&str],
    ) -> Dnsveil {
        let conf = dir.join("dnsveil.toml");
        std::fs::write(&conf, config_toml).expect("write config");
        let upstream = format!("udp://{upstream}");
        let mut args = vec![
            "--config",
            conf.to_str().expect("UTF-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--hosts",
            "",
        ];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Like [`Dnsveil::start`] with extra environment variables.
    pub fn start_cmd(args: &[&str], env: &[(&str, &str)]) -> Dnsveil {
        Self::launch(&[], args, env, &mut |_| {})
    }

    /// Like [`Dnsveil::start`], run through `wrapper` (a program and its arguments that executes
    /// the command after them, such as `prlimit --nofile=1024:1024 --`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Dnsveil {
        Self::launch(wrapper, args, &[], &mut |_| {})
    }

    /// Like [`Dnsveil::start_wrapped`], calling `on_line` with each line written to stderr (by
    /// the wrapper or dnsveil) until dnsveil reports its listeners: a wrapper that waits for
    /// something (`systemd-socket-activate` waits for a first client) says when it is ready.
    pub fn start_wrapped_with(
        wrapper: &[&str],
        args: &[&str],
        on_line: &mut dyn FnMut(&str),
    ) -> Dnsveil {
        Self::launch(wrapper, args, &[], on_line)
    }

    /// Starts dnsveil; a `--listen` address with port 0 is given a port of its own first, up to
    /// five times if another test's server takes that port before dnsveil binds it.
    ///
    /// Why not port 0: the kernel would pick the listener's port from its ephemeral range, where it
    /// also picks clients' source ports. A port shared through SO_REUSEPORT counts as free to it, and
    /// dnsveil's UDP listeners set SO_REUSEPORT (one socket per thread), as do dig's sockets: a dig
    /// then and again got its source port equal to dnsveil's port, and with its socket connected to
    /// that address, received its own query back instead of the answer.
    fn launch(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        on_line: &mut dyn FnMut(&str),
    ) -> Dnsveil {
        // (index in `args`, address) of each `--listen` value with port 0.
        let unset: Vec<(usize, std::net::IpAddr)> = args
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] == "--listen")
            .filter_map(|(i, w)| Some((i + 1, w[1].parse::<SocketAddr>().ok()?)))
            .filter(|(_, a)| a.port() == 0)
            .map(|(i, a)| (i, a.ip()))
            .collect();
        for _ in 0..5 {
            let mut given: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            for &(i, ip) in &unset {
                given[i] = SocketAddr::new(ip, free_port_on(&[ip])).to_string();
            }
            let given: Vec<&str> = given.iter().map(String::as_str).collect();
            match Self::launch_once(wrapper, &given, env, on_line) {
                Ok(d) => return d,
                Err(log) if !unset.is_empty() && log.contains("already uses it") => continue,
                Err(log) => panic!("dnsveil did not report its listeners; log:\n{log}"),
            }
        }
        panic!("dnsveil found every port it was given taken");
    }

    /// One start of dnsveil: it, or its log when it did not report its listeners.
    fn launch_once(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Dnsveil, String> {
        let bin = env!("CARGO_BIN_EXE_dnsveil");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        // Each instance gets a runtime directory of its own, so that its default control socket
        // is its own (tests run in parallel).
        let runtime_dir = tempfile::tempdir().expect("runtime directory");
        cmd.arg("run").args(args);
        // The fake upstreams of most tests serve unsigned data for names under the real root,
        // which a validator rightly calls bogus: a test validates only when it says so.
        if !args.contains(&"--dnssec") {
            cmd.args(["--dnssec", "off"]);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .env("RUNTIME_DIRECTORY", runtime_dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn dnsveil");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Log::default());
        let (tx, rx) = mpsc::channel::<String>();
        let log2 = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Stored before it is announced: a line seen on the channel is in the log.
                log2.lines.lock().expect("log lock").push(line.clone());
                log2.grew.notify_all();
                let _ = tx.send(line);
            }
        });
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let expected = args.iter().filter(|a| **a == "--listen").count().max(1);
        while udp.len() < expected || tcp.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    on_line(&line);
                    if let Some(a) = addr_after(&line, "listening on udp ") {
                        udp.push(a);
                    } else if let Some(a) = addr_after(&line, "listening on tcp ") {
                        tcp.push(a);
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // Everything it wrote is in the log once the reader has seen the pipe's end
                    // (which a wrapper's leftover child could hold open: not waited for long).
                    // The channel disconnects when the reader ends.
                    let until = Instant::now() + Duration::from_secs(2);
                    while rx
                        .recv_timeout(until.saturating_duration_since(Instant::now()))
                        .is_ok()
                    {}
                    return Err(log.text());
                }
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(Dnsveil {
            udp,
            tcp,
            child: Guard(child),
            runtime_dir,
            log,
            reader: Some(reader),
        })
    }

    /// The control socket at its default place (in [`Dnsveil::runtime_dir`]).
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.path().join("control.sock")
    }

    /// The address logged on a line containing `marker` as `addr=IP:PORT`, waiting up to 10 s
    /// for the line (e.g. the metrics endpoint's, with port 0 asked for).
    pub fn logged_addr(&self, marker: &str) -> SocketAddr {
        assert!(
            self.wait_logged(marker, Duration::from_secs(10)),
            "no {marker:?} line; log:\n{}",
            self.log()
        );
        let log = self.log();
        let line = log.lines().find(|l| l.contains(marker)).expect("line");
        addr_after(line, "addr=").unwrap_or_else(|| panic!("no addr= in {line}"))
    }

    /// The first UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp[0]
    }

    /// The first TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp[0]
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Waits up to `limit` for a logged line containing `needle` (a line the process may write
    /// just after the answer that prompted it); true once there is one.
    pub fn wait_logged(&self, needle: &str, limit: Duration) -> bool {
        self.wait_logged_times(needle, 1, limit)
    }

    /// Waits up to `limit` for `times` logged lines containing `needle`; true once there are.
    pub fn wait_logged_times(&self, needle: &str, times: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut lines = self.log.lines.lock().expect("log");
        loop {
            if lines.iter().filter(|l| l.contains(needle)).count() >= times {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            lines = self.log.grew.wait_timeout(lines, left).expect("log").0;
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.0.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                // Its last lines are in the log once the reader has seen the pipe close.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A test zone under `origin` with the usual record types and a name whose answer does not fit in
/// 512 octets.
pub fn test_zone(origin: &str) -> String {
    let mut z = format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 604800 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n\
         www IN A 192.0.2.1\nwww IN AAAA 2001:db8::1\nalias IN CNAME www\n@ IN MX 10 mail\nmail IN A 192.0.2.25\n\
         txt IN TXT \"hello world\" \"second string\"\n_dns._udp IN SRV 0 5 53 ns1\nshort 5 IN A 192.0.2.5\n\
         caa IN CAA 0 issue \"letsencrypt.org\"\n"
    );
    for i in 0..40 {
        z.push_str(&format!("big IN A 198.51.100.{}\n", i + 1));
    }
    z
}

/// A plain-UDP upstream on 127.0.0.1 that answers every query with A 192.0.2.53 (TTL 60) and
/// records the question names it got, lower-cased and without the final dot; its own `network`
/// answer (the address it gives) can differ per fake, so a test can tell which one answered.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    /// Answers with A 192.0.2.53.
    pub fn start() -> FakeUpstream {
        Self::answering([192, 0, 2, 53].into())
    }

    /// Answers every A query with `ip` (other types: NODATA).
    pub fn answering(ip: std::net::Ipv4Addr) -> FakeUpstream {
        Self::on(
            UdpSocket::bind("127.0.0.1:0").expect("bind fake upstream"),
            ip,
        )
    }

    /// Like [`FakeUpstream::answering`], on a socket the caller bound (port 53 for a resolver
    /// named in a resolv.conf).
    pub fn on(sock: UdpSocket, ip: std::net::Ipv4Addr) -> FakeUpstream {
        use dnsveil::wire::{RData, Record};
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::parse(&buf[..n]) else {
                    continue;
                };
                let Some(question) = q.question().cloned() else {
                    continue;
                };
                let name = question.name.to_string().to_ascii_lowercase();
                // Recorded before the answer leaves: an answered query is in the list.
                seen2
                    .lock()
                    .expect("seen")
                    .push(name.trim_end_matches('.').to_string());
                let mut r = Message::response_to(&q);
                if question.qtype == RType::A {
                    r.answers
                        .push(Record::new(question.name.clone(), 60, RData::A(ip)));
                }
                if let Ok(bytes) = r.encode() {
                    let _ = sock.send_to(&bytes, peer);
                }
            }
        });
        FakeUpstream {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The names asked so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The body and head of `GET path` from an HTTP/1.1 server at `addr` (the metrics endpoint), as
/// one string.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

/// The value of the Prometheus sample `series` (name and labels exactly as rendered) in `text`.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}
