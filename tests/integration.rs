//! End-to-end tests: the real `dnsveil` binary between standard clients (dig, kdig, a Rust client)
//! and a real authoritative server (nsd), all on loopback.

mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dnsveil::wire::{Class, Message, RData, RType, Rcode};
use harness::*;

fn forwarder() -> (Nsd, Dnsveil) {
    let nsd = Nsd::start(&[("example.test", test_zone("example.test"))]);
    let upstream = format!("udp://{}", nsd.addr);
    let dv = Dnsveil::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--hosts",
        "/dev/null",
    ]);
    (nsd, dv)
}

fn ask(server: SocketAddr, name: &str, qtype: RType, tcp: bool) -> Message {
    let q = query_bytes(name, qtype, 0x4242);
    let raw = if tcp {
        tcp_exchange(server, &q)
    } else {
        udp_exchange(server, &q)
    }
    .expect("an answer");
    let m = Message::parse(&raw).expect("answer parses");
    assert_eq!(m.header.id, 0x4242);
    assert!(m.header.response);
    m
}

#[test]
fn answers_over_udp_and_tcp_with_dig_and_kdig() {
    let (_nsd, dv) = forwarder();
    let out = dig(dv.udp_addr(), &["+short", "www.example.test", "A"]);
    assert_eq!(out.trim(), "192.0.2.1");
    let out = dig(
        dv.tcp_addr(),
        &["+tcp", "+short", "www.example.test", "AAAA"],
    );
    assert_eq!(out.trim(), "2001:db8::1");
    let out = dig(dv.udp_addr(), &["+short", "alias.example.test", "A"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["www.example.test.", "192.0.2.1"]
    );
    let out = dig(dv.udp_addr(), &["+short", "example.test", "MX"]);
    assert_eq!(out.trim(), "10 mail.example.test.");
    let out = dig(dv.udp_addr(), &["+short", "txt.example.test", "TXT"]);
    assert_eq!(out.trim(), "\"hello world\" \"second string\"");
    let out = dig(dv.udp_addr(), &["+short", "_dns._udp.example.test", "SRV"]);
    assert_eq!(out.trim(), "0 5 53 ns1.example.test.");

    let kdig = require_tool("kdig", "knot-dnsutils");
    let at = format!("@{}", dv.tcp_addr().ip());
    let port = dv.tcp_addr().port().to_string();
    let out = run_tool(
        &kdig,
        &[
            &at,
            "-p",
            &port,
            "+tcp",
            "+short",
            "caa.example.test",
            "CAA",
        ],
    );
    assert_eq!(out.trim(), "0 issue \"letsencrypt.org\"");

    // Our own client over both transports, with the question's case echoed.
    for tcp in [false, true] {
        let addr = if tcp { dv.tcp_addr() } else { dv.udp_addr() };
        let m = ask(addr, "WwW.ExAmPlE.tEsT", RType::A, tcp);
        assert_eq!(m.rcode(), Rcode::NOERROR);
        assert_eq!(m.questions[0].name.to_string(), "WwW.ExAmPlE.tEsT.");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, RData::A([192, 0, 2, 1].into()));
    }
}

#[test]
fn cached_answers_survive_the_upstream_and_count_down() {
    let (nsd, dv) = forwarder();
    let first = ask(dv.udp_addr(), "www.example.test", RType::A, false);
    assert_eq!(first.answers[0].ttl, 300);
    let neg = ask(dv.udp_addr(), "nothing.example.test", RType::A, false);
    assert_eq!(neg.rcode(), Rcode::NXDOMAIN);
    assert_eq!(neg.authority.len(), 1);
    assert_eq!(neg.authority[0].rtype(), RType::SOA);
    assert!(
        neg.authority[0].ttl <= 60,
        "negative TTL is min(SOA TTL, MINIMUM)"
    );
    drop(nsd);
    // The upstream is gone: only the cache can answer now.
    let again = ask(dv.tcp_addr(), "www.example.test", RType::A, true);
    assert_eq!(again.answers[0].data, first.answers[0].data);
    assert!(again.answers[0].ttl <= 300);
    let neg_again = ask(dv.udp_addr(), "NOTHING.example.test", RType::A, false);
    assert_eq!(neg_again.rcode(), Rcode::NXDOMAIN);
    // Something never asked before fails with SERVFAIL (and an EDE), not silence.
    let miss = ask(dv.udp_addr(), "other.example.test", RType::AAAA, false);
    assert_eq!(miss.rcode(), Rcode::SERVFAIL);
}

#[test]
fn refusals_zone_transfers_and_uncached_answers() {
    let (_nsd, dv) = forwarder();
    // nsd refuses a class it does not serve with a bare header, no question echoed. That is its
    // answer, not a stray datagram to skip until the query times out in SERVFAIL.
    for tcp in [false, true] {
        let mut q = Message::query("www.example.test".parse().unwrap(), RType::A);
        q.header.id = 0x4242;
        q.questions[0].qclass = Class::HS;
        let wire = q.encode().unwrap();
        let raw = if tcp {
            tcp_exchange(dv.tcp_addr(), &wire)
        } else {
            udp_exchange(dv.udp_addr(), &wire)
        };
        let m = Message::parse(&raw.expect("an answer")).unwrap();
        assert_eq!(m.rcode(), Rcode::REFUSED, "tcp: {tcp}");
        assert_eq!(m.questions, q.questions);
    }
    // Zone transfers are refused here, not relayed (nsd would refuse too, but without our EDE).
    let mut axfr = Message::query("example.test".parse().unwrap(), RType::AXFR);
    axfr.header.id = 0x4243;
    axfr.edns = Some(dnsveil::wire::Edns::default());
    let raw = tcp_exchange(dv.tcp_addr(), &axfr.encode().unwrap()).expect("an answer");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.rcode(), Rcode::REFUSED);
    let ede: Vec<u16> = m.edns.unwrap().extended_errors().map(|(c, _)| c).collect();
    assert_eq!(ede, [21], "EDE Not Supported");
    // ANY is not cached; the relayed answer does not keep nsd's AA.
    let m = ask(dv.udp_addr(), "www.example.test", RType::ANY, false);
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert!(!m.answers.is_empty());
    assert!(!m.header.authoritative);
    // The upstream still answers the ordinary question.
    let m = ask(dv.udp_addr(), "www.example.test", RType::A, false);
    assert_eq!(m.answers[0].data, RData::A([192, 0, 2, 1].into()));
}

#[test]
fn special_use_names_stay_local_unless_a_rule_forwards_them() {
    // nsd serves the usual zone and the reverse zones of 192.168/16 and 10/8; only 168.192 is
    // forwarded to it by a rule, so 10/8 must come back as the local empty zone (nsd would answer).
    let reverse = |origin: &str, ptr: &str| {
        format!(
            "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 900 604800 60\n\
             @ IN NS ns1.example.test.\n{ptr} IN PTR router.example.test.\n"
        )
    };
    let nsd = Nsd::start(&[
        ("example.test", test_zone("example.test")),
        (
            "168.192.in-addr.arpa",
            reverse("168.192.in-addr.arpa", "1.1"),
        ),
        ("10.in-addr.arpa", reverse("10.in-addr.arpa", "1.0.0")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let rule = format!(
        "[[forward]]\ndomains = [\"168.192.in-addr.arpa\"]\nupstreams = [\"udp://{}\"]\n",
        nsd.addr
    );
    let dv = Dnsveil::forwarding(dir.path(), nsd.addr, &rule, &[]);
    let m = ask(dv.udp_addr(), "printer.localhost", RType::A, false);
    assert_eq!(m.answers[0].data, RData::A([127, 0, 0, 1].into()));
    let m = ask(dv.tcp_addr(), "localhost", RType::AAAA, true);
    assert_eq!(
        m.answers[0].data,
        RData::Aaaa(std::net::Ipv6Addr::LOCALHOST)
    );
    let m = ask(dv.udp_addr(), "1.0.0.127.in-addr.arpa", RType::PTR, false);
    assert_eq!(m.answers[0].data, RData::Ptr("localhost".parse().unwrap()));
    // Local empty zones: NXDOMAIN with the zone's SOA, though nsd has data there.
    for name in ["1.0.0.10.in-addr.arpa", "x.invalid", "abc.onion"] {
        let m = ask(dv.udp_addr(), name, RType::PTR, false);
        assert_eq!(m.rcode(), Rcode::NXDOMAIN, "{name}");
        assert_eq!(m.authority[0].rtype(), RType::SOA);
    }
    // The rule takes 168.192.in-addr.arpa to nsd.
    let m = ask(dv.udp_addr(), "1.1.168.192.in-addr.arpa", RType::PTR, false);
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert_eq!(
        m.answers[0].data,
        RData::Ptr("router.example.test".parse().unwrap())
    );
    // Names that are not special still go upstream.
    let m = ask(dv.udp_addr(), "www.example.test", RType::A, false);
    assert_eq!(m.answers[0].data, RData::A([192, 0, 2, 1].into()));
}

#[test]
fn big_answers_truncate_over_udp_and_complete_over_tcp() {
    let (_nsd, dv) = forwarder();
    let out = dig(
        dv.udp_addr(),
        &["+noedns", "+ignore", "big.example.test", "A"],
    );
    assert!(
        out.contains("flags: qr tc rd ra") || out.contains(" tc "),
        "expected TC: {out}"
    );
    // dig retries over TCP on its own and gets every record.
    let out = dig(
        dv.udp_addr(),
        &["+noedns", "+short", "big.example.test", "A"],
    );
    assert_eq!(out.lines().count(), 40);
    // With a 4096 EDNS buffer the whole answer fits in UDP.
    let out = dig(
        dv.udp_addr(),
        &["+bufsize=4096", "+ignore", "big.example.test", "A"],
    );
    assert!(!out.contains(" tc "), "{out}");
    assert!(out.contains("ANSWER: 40"), "{out}");
}

#[test]
fn malformed_packets_never_stop_the_server() {
    let (_nsd, dv) = forwarder();
    let addr = dv.udp_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let good = query_bytes("www.example.test", RType::A, 7);
    let mut battery: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 11],
        vec![0xff; 12],
        vec![0; 512],
        vec![0xff; 4096],
    ];
    // Truncations and bit flips of a good query.
    for cut in 0..good.len() {
        battery.push(good[..cut].to_vec());
    }
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xff;
        battery.push(b);
    }
    // A compression loop in the question and a pointer past the end.
    let mut looped = good[..12].to_vec();
    looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    battery.push(looped);
    let mut past = good[..12].to_vec();
    past.extend_from_slice(&[0xC0, 0xff, 0, 1, 0, 1]);
    battery.push(past);
    // A response sent as a query: must be dropped.
    let mut resp = good.clone();
    resp[2] |= 0x80;
    battery.push(resp.clone());
    for pkt in &battery {
        sock.send_to(pkt, addr).unwrap();
    }
    // Header-readable garbage gets FORMERR with its ID; never a crash.
    let mut garbage = vec![0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[63, 1, 2, 3]);
    let reply = udp_exchange(addr, &garbage).expect("FORMERR reply");
    assert_eq!(&reply[..2], &[0xAB, 0xCD]);
    assert_eq!(reply[3] & 0x0F, 1, "FORMERR");
    // The same battery over TCP, one connection each.
    for pkt in battery.iter().take(40) {
        let _ = tcp_exchange(dv.tcp_addr(), pkt);
    }
    // Still serving.
    let m = ask(addr, "www.example.test", RType::A, false);
    assert_eq!(m.answers.len(), 1);
    let m = ask(dv.tcp_addr(), "www.example.test", RType::A, true);
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn clients_outside_the_allow_list_are_refused() {
    let nsd = Nsd::start(&[("example.test", test_zone("example.test"))]);
    let upstream = format!("udp://{}", nsd.addr);
    let dv = Dnsveil::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--allow",
        "10.0.0.0/8",
    ]);
    let m = ask(dv.udp_addr(), "www.example.test", RType::A, false);
    assert_eq!(m.rcode(), Rcode::REFUSED);
    assert!(m.answers.is_empty());
}

#[test]
fn hosts_file_answers_and_reloads_on_sighup() {
    let (nsd, _) = forwarder();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "# test hosts\n192.0.2.10 printer.home printer\n2001:db8::10 printer.home\n",
    )
    .unwrap();
    let upstream = format!("udp://{}", nsd.addr);
    let dv = Dnsveil::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--hosts",
        hosts.to_str().unwrap(),
    ]);
    assert_eq!(
        dig(dv.udp_addr(), &["+short", "printer.home", "A"]).trim(),
        "192.0.2.10"
    );
    assert_eq!(
        dig(dv.udp_addr(), &["+short", "printer", "AAAA"]).trim(),
        ""
    );
    assert_eq!(
        dig(dv.udp_addr(), &["+short", "printer.home", "AAAA"]).trim(),
        "2001:db8::10"
    );
    assert_eq!(
        dig(dv.udp_addr(), &["+short", "-x", "192.0.2.10"]).trim(),
        "printer.home."
    );
    // A name in hosts never leaks upstream for other types: NODATA, not an upstream NXDOMAIN.
    let out = dig(dv.udp_addr(), &["printer.home", "MX"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        "{out}"
    );

    std::fs::write(&hosts, "192.0.2.11 printer.home\n").unwrap();
    dv.signal("HUP");
    let mut seen = String::new();
    for _ in 0..100 {
        seen = dig(dv.udp_addr(), &["+short", "printer.home", "A"]);
        if seen.trim() == "192.0.2.11" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen.trim(), "192.0.2.11", "reload after SIGHUP");
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let (_nsd, mut dv) = forwarder();
    let _ = ask(dv.udp_addr(), "www.example.test", RType::A, false);
    dv.signal("TERM");
    assert_eq!(
        dv.wait_exit(Duration::from_secs(10)),
        Some(0),
        "log:\n{}",
        dv.log()
    );
}

#[test]
fn bind_failures_explain_the_fix() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["run", "--listen", &addr, "--upstream", "udp://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "names the address: {err}");

    // Port 53 as an unprivileged user: the message says how to fix it.
    let setpriv = require_tool("setpriv", "util-linux");
    let out = std::process::Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_dnsveil"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:53",
            "--upstream",
            "udp://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CAP_NET_BIND_SERVICE") && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn running_without_an_upstream_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(
        &conf,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = []\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["run", "--config", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upstream"), "{err}");
}

/// Under a service manager (`NOTIFY_SOCKET`), dnsveil says READY=1 once its listeners are bound,
/// RELOADING=1 and READY=1 around a reload (SIGHUP), and STOPPING=1 when it shuts down.
#[test]
fn the_service_manager_is_told_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let next = || {
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let notify = path.to_str().expect("UTF-8 path");
    let mut dv = Dnsveil::start_cmd(
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "udp://127.0.0.1:9",
            "--hosts",
            "",
        ],
        &[("NOTIFY_SOCKET", notify)],
    );
    let ready = next();
    assert!(ready.starts_with("READY=1\nSTATUS="), "{ready}");
    assert!(
        ready.contains(&format!("udp {}", dv.udp_addr())),
        "the status names the listeners: {ready}"
    );
    assert!(
        ready.contains("0 queries, cache hit ratio 0.0%, upstreams 1/1 up; serving on "),
        "the status has the figures: {ready}"
    );
    dv.signal("HUP");
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(
        next().starts_with("READY=1"),
        "ready again after the reload"
    );
    dv.signal("TERM");
    assert_eq!(next(), "STOPPING=1\nSTATUS=shutting down");
    assert_eq!(dv.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Where IPv6 is off (a network namespace with it disabled on loopback), the default pair of
/// listeners still starts: `[::1]` is skipped with a warning and `127.0.0.1` serves. `[::1]` alone
/// stays an error.
#[test]
fn a_machine_without_ipv6_still_serves_on_127_0_0_1() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let unshare = require_tool("unshare", "util-linux");
    let bin = env!("CARGO_BIN_EXE_dnsveil");
    let run = |listen: &str| {
        let script = format!(
            "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && exec {bin} run {listen} \
             --upstream udp://127.0.0.1:9 --hosts ''"
        );
        Command::new(&unshare)
            .args(["--net", "sh", "-c", &script])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unshare")
    };
    let mut both = Guard(run("--listen 127.0.0.1:5399 --listen [::1]:5399"));
    let stderr = both.0.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let done = line.contains("listening on tcp 127.0.0.1:5399");
        seen.push(line);
        if done {
            break;
        }
    }
    let log = seen.join("\n");
    assert!(log.contains("listening on udp 127.0.0.1:5399"), "{log}");
    assert!(
        log.contains("IPv6 is off on this machine; not listening on [::1]:5399"),
        "{log}"
    );
    drop(both);
    let alone = run("--listen [::1]:5399").wait_with_output().expect("wait");
    assert!(!alone.status.success());
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("[::1]:5399"),
        "{err}"
    );
}
