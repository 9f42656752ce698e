//! The home-router features against the real binary (issue 17): the allow-list and its warnings,
//! the open-resolver refusal, per-client rate limiting under a flood, the TCP connection caps
//! under many idle connections, and names from a DHCP lease file with their reload.

mod harness;

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnsveil::wire::{Message, RData, RType, Rcode};
use harness::{http_get, query_bytes, sample, tcp_exchange_from, Dnsveil};

/// An upstream nothing listens on: these tests are answered from local data, or not at all.
const NO_UPSTREAM: &str = "127.0.0.1:9";

fn no_upstream() -> SocketAddr {
    NO_UPSTREAM.parse().expect("addr")
}

fn check_config(dir: &Path, toml: &str) -> (i32, String) {
    let conf = dir.join("check.toml");
    std::fs::write(&conf, toml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .arg("check-config")
        .arg(&conf)
        .output()
        .expect("run check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn run_exit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .arg("run")
        .args(args)
        .output()
        .expect("run dnsveil");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asks `name`/`qtype` over UDP from `from` and parses the answer.
fn ask_from(from: &str, server: SocketAddr, name: &str, qtype: RType) -> Option<Message> {
    let sock = UdpSocket::bind((from, 0)).expect("bind client");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    sock.send_to(&query_bytes(name, qtype, 77), server).ok()?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Message::parse(&buf[..n]).ok()
}

fn ask(server: SocketAddr, name: &str, qtype: RType) -> Message {
    ask_from("127.0.0.1", server, name, qtype)
        .unwrap_or_else(|| panic!("no answer for {name} {qtype}"))
}

fn data(m: &Message) -> Vec<RData> {
    m.answers.iter().map(|r| r.data.clone()).collect()
}

const LOCAL: &str = "[hosts]\nrecords = [\"router.lan. 300 IN A 192.168.1.1\"]\n";

/// Clients outside `server.allow` get REFUSED, clients inside it an answer, per address.
#[test]
fn the_allow_list_admits_only_its_networks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dv = Dnsveil::forwarding(
        dir.path(),
        no_upstream(),
        LOCAL,
        &["--allow", "127.0.0.2/32", "--allow", "127.0.0.3"],
    );
    for from in ["127.0.0.2", "127.0.0.3"] {
        let m = ask_from(from, dv.udp_addr(), "router.lan", RType::A).expect("answer");
        assert_eq!(m.rcode(), Rcode::NOERROR, "from {from}");
        assert_eq!(data(&m), [RData::A([192, 168, 1, 1].into())]);
    }
    let m = ask_from("127.0.0.1", dv.udp_addr(), "router.lan", RType::A).expect("answer");
    assert_eq!(m.rcode(), Rcode::REFUSED);
    assert!(m.answers.is_empty());
    let tcp = tcp_exchange_from(
        Some("127.0.0.4".parse().expect("ip")),
        dv.tcp_addr(),
        &query_bytes("router.lan", RType::A, 5),
        Duration::from_secs(3),
    )
    .and_then(|r| Message::parse(&r).ok())
    .expect("tcp answer");
    assert_eq!(tcp.rcode(), Rcode::REFUSED);
}

/// A LAN listener whose allow-list admits only loopback is legal but almost certainly a mistake:
/// check-config says so (and `run` logs the same warnings, from the same function).
#[test]
fn a_lan_listener_with_a_loopback_only_allow_list_is_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = format!("[upstream]\nservers = [\"udp://{NO_UPSTREAM}\"]\n");
    let (code, out) = check_config(
        dir.path(),
        &format!("[server]\nlisten = [\"192.168.1.1:53\", \"127.0.0.1:53\"]\n{upstream}"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "warning: dnsveil listens on 192.168.1.1:53, but server.allow admits only loopback"
        ),
        "{out}"
    );
    let (code, out) = check_config(
        dir.path(),
        &format!(
            "[server]\nlisten = [\"192.168.1.1:53\"]\nallow = [\"192.168.1.0/24\", \"::1\"]\n{upstream}"
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
    let (code, out) = check_config(dir.path(), &upstream);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "loopback only: {out}");
}

/// A public (or wildcard) listener with an allow-list of everyone is refused, by check-config and
/// by run (exit 78, before binding), from the file or from flags, unless open_resolver = true.
#[test]
fn an_open_resolver_needs_explicit_consent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = format!("[upstream]\nservers = [\"udp://{NO_UPSTREAM}\"]\n");
    for (listen, allow) in [
        ("0.0.0.0:53", "0.0.0.0/0"),
        ("[::]:53", "::/0"),
        ("203.0.113.7:53", "0.0.0.0/0"),
    ] {
        let toml = format!("[server]\nlisten = [\"{listen}\"]\nallow = [\"{allow}\"]\n{upstream}");
        let (code, out) = check_config(dir.path(), &toml);
        assert_eq!(code, 1, "{listen} {allow}: {out}");
        assert!(out.contains("server.allow"), "{out}");
        assert!(out.contains("open resolver"), "{out}");
        assert!(out.contains("server.open_resolver = true"), "{out}");
        assert!(out.contains("amplifier"), "says why: {out}");

        let conf = dir.path().join("run.toml");
        std::fs::write(&conf, &toml).expect("write");
        let (code, err) = run_exit(&["--config", conf.to_str().expect("path")]);
        assert_eq!(code, 78, "{err}");
        assert!(err.contains("open resolver"), "{err}");

        let (code, out) = check_config(
            dir.path(),
            &toml.replace("[server]\n", "[server]\nopen_resolver = true\n"),
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("warning: server.allow contains a /0"), "{out}");
    }
    // On a LAN address the same allow-list is only a warning.
    let (code, out) = check_config(
        dir.path(),
        &format!("[server]\nlisten = [\"192.168.1.1:53\"]\nallow = [\"0.0.0.0/0\"]\n{upstream}"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: server.allow contains a /0"), "{out}");
    // The flags make the same listener and allow-list, and are refused the same way.
    let (code, err) = run_exit(&[
        "--upstream",
        &format!("udp://{NO_UPSTREAM}"),
        "--listen",
        "0.0.0.0:5353",
        "--allow",
        "0.0.0.0/0",
    ]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("open resolver"), "{err}");
}

/// What one flooding client got back.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    answered: usize,
    truncated: usize,
    elapsed: Duration,
}

/// Sends `n` queries from `from` as fast as the socket takes them and counts what comes back
/// (until nothing has come for 500 ms).
fn flood_from(from: &str, server: SocketAddr, n: usize) -> Tally {
    let sock = UdpSocket::bind((from, 0)).expect("bind flooder");
    let reader = sock.try_clone().expect("clone");
    reader
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let counter = std::thread::spawn(move || {
        let (mut answered, mut truncated) = (0, 0);
        let mut buf = vec![0u8; 4096];
        loop {
            match reader.recv_from(&mut buf) {
                Ok((len, _)) => match Message::parse(&buf[..len]) {
                    Ok(m) if m.header.truncated => {
                        assert!(m.answers.is_empty() && len <= 40, "a slip is small: {m:?}");
                        truncated += 1;
                    }
                    Ok(m) if m.rcode() == Rcode::NOERROR && !m.answers.is_empty() => answered += 1,
                    other => panic!("unexpected answer {other:?}"),
                },
                Err(_) if done2.load(Ordering::Acquire) => break,
                Err(_) => {}
            }
        }
        (answered, truncated)
    });
    let started = Instant::now();
    let q = query_bytes("router.lan", RType::A, 1);
    let mut sent = 0;
    for _ in 0..n {
        if sock.send_to(&q, server).is_ok() {
            sent += 1;
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    let (answered, truncated) = counter.join().expect("counter");
    Tally {
        sent,
        answered,
        truncated,
        elapsed,
    }
}

/// One client floods (5,000 queries as fast as it can) while another asks once every 20 ms: the
/// flooder gets no more answers than its rate and burst allow, about every other limited query
/// back as an empty TC=1 answer and nothing for the rest; the other client is answered every time,
/// promptly. The counts show up in the statistics logged on SIGHUP.
#[test]
fn rate_limiting_slows_a_flooding_client_and_not_the_others() {
    const QPS: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let dv = Dnsveil::forwarding(
        dir.path(),
        no_upstream(),
        LOCAL,
        &["--rate-limit", &QPS.to_string(), "--metrics", "127.0.0.1:0"],
    );
    assert!(dv
        .log()
        .contains("rate limiting UDP queries per client network"));
    let metrics = dv.logged_addr("metrics endpoint listening");
    let server = dv.udp_addr();
    let quiet = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut answered = 0;
        for _ in 0..40 {
            let t = Instant::now();
            if ask_from("127.0.0.2", server, "router.lan", RType::A)
                .is_some_and(|m| m.rcode() == Rcode::NOERROR && !m.header.truncated)
            {
                answered += 1;
            }
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        (answered, worst)
    });
    let tally = flood_from("127.0.0.1", server, 5000);
    assert!(tally.sent >= 4000, "a flood: {tally:?}");
    let (quiet_answered, worst) = quiet.join().expect("quiet client");

    // The burst (= the rate) plus the rate over the time the flood took, and a little for the
    // answers' own delay.
    let allowed = QPS + (QPS as f64 * (tally.elapsed.as_secs_f64() + 0.6)) as usize;
    assert!(
        tally.answered >= QPS / 2 && tally.answered <= allowed,
        "{tally:?}: at most {allowed} answers"
    );
    assert!(
        tally.truncated > 0,
        "{tally:?}: some limited queries get TC=1"
    );
    assert_eq!(quiet_answered, 40, "the other client is always answered");
    assert!(
        worst < Duration::from_millis(500),
        "slowest answer {worst:?}"
    );

    dv.signal("HUP");
    assert!(
        dv.wait_logged("rate limit statistics", Duration::from_secs(5)),
        "{}",
        dv.log()
    );
    let line = dv
        .log()
        .lines()
        .find(|l| l.contains("rate limit statistics"))
        .map(str::to_string)
        .expect("line");
    let count = |key: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.trim_start_matches("stats=").strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    let (slipped, dropped) = (count("slipped="), count("dropped="));
    // The same counts on the metrics endpoint.
    let text = http_get(metrics, "/metrics");
    let series = |action: &str| {
        sample(
            &text,
            &format!("dnsveil_rate_limited_total{{action=\"{action}\"}}"),
        )
    };
    assert_eq!(series("slip") as usize, slipped, "{text}");
    assert_eq!(series("drop") as usize, dropped, "{text}");
    // slip = 2: limited queries alternate between dropped and TC=1 (the kernel may have dropped
    // some of the flood before dnsveil saw it, so the client's own count is a lower bound).
    assert!(slipped.abs_diff(dropped) <= 1, "{line}");
    assert!(slipped >= 1000, "{line}");
    assert!(tally.truncated <= slipped, "{tally:?} {line}");
}

/// Without `--rate-limit` the same flood is answered in full (what the test above measures is the
/// limiter, not the kernel dropping datagrams).
#[test]
fn without_a_rate_limit_a_flood_is_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dv = Dnsveil::forwarding(dir.path(), no_upstream(), LOCAL, &[]);
    let tally = flood_from("127.0.0.1", dv.udp_addr(), 500);
    assert_eq!(tally.truncated, 0, "{tally:?}");
    // Far more than the limited flooder's (at most the rate, 50, plus about a second's worth):
    // what the kernel drops of a burst is the rest (on a loaded machine, up to half of it: 249 of
    // 500 answered was seen with five builds running on two cores).
    assert!(tally.answered >= 150, "{tally:?}");
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(from.parse().expect("ip"), 0).into())
        .expect("bind");
    sock.connect(&server.into()).expect("connect");
    sock.into()
}

/// One client opens 12 connections and sends nothing: it keeps 4 (its cap), the others are closed
/// at once; other clients are still served; and the idle ones close after the idle timeout.
#[test]
fn tcp_caps_hold_under_many_idle_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nmax_tcp_connections = 8\nmax_tcp_connections_per_client = 4\n\
         tcp_idle_timeout_secs = 2\n\n{LOCAL}"
    );
    let dv = Dnsveil::forwarding(dir.path(), no_upstream(), &config, &[]);
    let opened_at = Instant::now();
    let mut idle: Vec<TcpStream> = (0..12)
        .map(|_| connect_from("127.0.0.1", dv.tcp_addr()))
        .collect();
    let closed: Vec<bool> = idle
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_millis(300)))
        .collect();
    let kept = closed.iter().filter(|c| !**c).count();
    assert_eq!(kept, 4, "connections left open: {closed:?}");
    // Two more clients at their own caps fill the total (8); a third still gets in, because the
    // longest-idle connection gives way, and is answered.
    let mut others: Vec<TcpStream> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .flat_map(|ip| (0..2).map(move |_| *ip))
        .map(|ip| connect_from(ip, dv.tcp_addr()))
        .collect();
    let answer = tcp_exchange_from(
        Some("127.0.0.9".parse().expect("ip")),
        dv.tcp_addr(),
        &query_bytes("router.lan", RType::A, 3),
        Duration::from_secs(3),
    )
    .and_then(|r| Message::parse(&r).ok())
    .expect("a new client is answered");
    assert_eq!(data(&answer), [RData::A([192, 168, 1, 1].into())]);
    // Idle connections close after the idle timeout (2 s), not before, and all of them.
    let mut survivors: Vec<&mut TcpStream> = idle
        .iter_mut()
        .zip(&closed)
        .filter(|(_, c)| !**c)
        .map(|(s, _)| s)
        .chain(others.iter_mut())
        .collect();
    let all_closed = survivors
        .iter_mut()
        .all(|s| closed_within(s, Duration::from_secs(5)));
    assert!(all_closed, "every idle connection is closed");
    let took = opened_at.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Names from a dnsmasq lease file and an odhcpd one answer A, AAAA and PTR under the configured
/// domain; a changed file is picked up without a signal, and a departed host's name is gone.
#[test]
fn lease_file_names_resolve_and_follow_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leases = dir.path().join("dhcp.leases");
    let far = 4_000_000_000u64;
    std::fs::write(
        &leases,
        format!(
            "{far} aa:bb:cc:dd:ee:01 192.168.1.23 laptop 01:aa:bb:cc:dd:ee:01\n\
             0 aa:bb:cc:dd:ee:02 192.168.1.24 printer *\n\
             1000 aa:bb:cc:dd:ee:03 192.168.1.25 expired *\n\
             # br-lan 000100012a2b2c2d 1a2b3c4d laptop {far} 23 128 fd00::23/128\n"
        ),
    )
    .expect("lease file");
    let config = format!(
        "[dhcp]\nlease_file = \"{}\"\ndomain = \"home.arpa\"\n",
        leases.display()
    );
    let dv = Dnsveil::forwarding(dir.path(), no_upstream(), &config, &[]);
    let server = dv.udp_addr();

    let a = ask(server, "laptop.home.arpa", RType::A);
    assert_eq!(data(&a), [RData::A([192, 168, 1, 23].into())]);
    assert_eq!(
        a.answers[0].ttl, 0,
        "dhcp.ttl's default: not kept past a reload"
    );
    let aaaa = ask(server, "LAPTOP.home.arpa", RType::AAAA);
    assert_eq!(data(&aaaa), [RData::Aaaa("fd00::23".parse().expect("v6"))]);
    let ptr = ask(server, "24.1.168.192.in-addr.arpa", RType::PTR);
    assert_eq!(
        data(&ptr),
        [RData::Ptr("printer.home.arpa".parse().expect("name"))]
    );
    let ptr6 = ask(
        server,
        "3.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        RType::PTR,
    );
    assert_eq!(
        data(&ptr6),
        [RData::Ptr("laptop.home.arpa".parse().expect("name"))]
    );
    let nodata = ask(server, "printer.home.arpa", RType::AAAA);
    assert_eq!((nodata.rcode(), nodata.answers.len()), (Rcode::NOERROR, 0));
    // The expired lease is not served: the name goes on to the (absent) upstream.
    let gone = ask(server, "expired.home.arpa", RType::A);
    assert!(gone.answers.is_empty(), "{gone:?}");

    // The DHCP server rewrites the file: the laptop left, a tablet came.
    write_atomically(
        &leases,
        &format!("0 aa:bb:cc:dd:ee:02 192.168.1.24 printer *\n{far} aa:bb:cc:dd:ee:04 192.168.1.26 tablet *\n"),
    );
    assert!(
        dv.wait_logged("DHCP names reloaded", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    let tablet = ask(server, "tablet.home.arpa", RType::A);
    assert_eq!(data(&tablet), [RData::A([192, 168, 1, 26].into())]);
    let laptop = ask(server, "laptop.home.arpa", RType::A);
    assert!(
        laptop.answers.is_empty(),
        "the laptop's name left with its lease: {laptop:?}"
    );
}

/// A lease file that is not there yet is no reason not to start; its names are served once the
/// DHCP server writes it (under the default domain, `lan`, with the configured TTL).
#[test]
fn a_missing_lease_file_is_picked_up_when_it_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leases = dir.path().join("dhcp.leases");
    let config = format!("[dhcp]\nlease_file = \"{}\"\nttl = 30\n", leases.display());
    let dv = Dnsveil::forwarding(dir.path(), no_upstream(), &config, &[]);
    assert!(
        dv.log().contains("DHCP lease file not found"),
        "{}",
        dv.log()
    );
    write_atomically(&leases, "0 aa:bb:cc:dd:ee:05 192.168.1.30 nas *\n");
    assert!(
        dv.wait_logged("DHCP names reloaded", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    let nas = ask(dv.udp_addr(), "nas.lan", RType::A);
    assert_eq!(data(&nas), [RData::A([192, 168, 1, 30].into())]);
    assert_eq!(nas.answers[0].ttl, 30);
}

/// A lease file that is a FIFO (or anything but a regular file) is refused before anything
/// starts, instead of hanging the start waiting for a writer.
#[test]
fn a_lease_file_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("leases.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let conf = dir.path().join("dnsveil.toml");
    std::fs::write(
        &conf,
        format!(
            "[dhcp]\nlease_file = \"{}\"\n[hosts]\nfile = \"\"\n[upstream]\nservers = [\"udp://{NO_UPSTREAM}\"]\n",
            fifo.display()
        ),
    )
    .expect("config");
    let started = Instant::now();
    let (code, err) = run_exit(&[
        "--config",
        conf.to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("dhcp.lease_file") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `run` logs the loopback-only warning at start, too: in a network namespace of its own (a LAN
/// address on its loopback interface), dnsveil listening on that address with the default
/// allow-list says that the LAN would get REFUSED, and serves all the same.
#[test]
fn a_lan_listener_with_a_loopback_only_allow_list_is_a_warning_at_start() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let unshare = harness::require_tool("unshare", "util-linux");
    let ip = harness::require_tool("ip", "iproute2");
    let bin = env!("CARGO_BIN_EXE_dnsveil");
    let script = format!(
        "{ip} addr add 192.168.77.1/32 dev lo && {ip} link set lo up && exec {bin} run \
         --listen 192.168.77.1:5399 --upstream udp://{NO_UPSTREAM} --hosts ''",
        ip = ip.display()
    );
    let mut child = harness::Guard(
        Command::new(&unshare)
            .args(["--net", "sh", "-c", &script])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unshare"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let done = line.contains("listening on tcp 192.168.77.1:5399");
        seen.push(line);
        if done {
            break;
        }
    }
    let log = seen.join("\n");
    assert!(
        log.contains("dnsveil listens on 192.168.77.1:5399, but server.allow admits only loopback"),
        "{log}"
    );
    assert!(log.contains("listening on udp 192.168.77.1:5399"), "{log}");
}
