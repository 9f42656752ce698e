//! The network's own resolvers and captive portals (issue 16), with fake network resolvers on
//! port 53 of random 127/8 addresses named in a resolv.conf the test writes, and the real binary.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dnsveil::wire::{Message, RData, RType, Rcode};
use harness::daemons::free_loopback_ip;
use harness::*;

fn ask(server: SocketAddr, name: &str, qtype: RType) -> Message {
    let raw = udp_exchange(server, &query_bytes(name, qtype, 0x7171)).expect("an answer");
    Message::parse(&raw).expect("answer parses")
}

/// A fake network resolver on port 53 of a free 127/8 address, answering A with `ip`.
fn network_resolver(ip: [u8; 4]) -> FakeUpstream {
    let mut held = free_loopback_ip(&[53]);
    FakeUpstream::on(held.take_udp(53), ip.into())
}

fn resolv_conf(path: &Path, servers: &[&FakeUpstream]) {
    let text: String = servers
        .iter()
        .map(|s| format!("# written by the test\nnameserver {}\n", s.addr.ip()))
        .collect();
    std::fs::write(path, text).unwrap();
}

fn a_record(m: &Message) -> Option<RData> {
    m.answers.first().map(|r| r.data.clone())
}

#[test]
fn a_rule_to_network_follows_the_networks_resolv_conf() {
    let public = FakeUpstream::start();
    let home = network_resolver([10, 0, 0, 1]);
    let hotel = network_resolver([10, 0, 0, 2]);
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("resolv.conf");
    resolv_conf(&rc, &[&home]);
    let conf = format!(
        "[upstream]\nnetwork_resolv_conf = {:?}\ncaptive_portal = \"off\"\n\
         [[forward]]\ndomains = [\"lan\"]\nupstreams = [\"network://\"]\n",
        rc.to_str().unwrap()
    );
    let dv = Dnsveil::forwarding(dir.path(), public.addr, &conf, &[]);
    let m = ask(dv.udp_addr(), "nas.lan", RType::A);
    assert_eq!(a_record(&m), Some(RData::A([10, 0, 0, 1].into())));
    // The network changes: its manager rewrites the file, and the next queries (once the file
    // has been looked at again, within a second) go to the new resolver.
    resolv_conf(&rc, &[&hotel]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let m = ask(dv.udp_addr(), &format!("x{n}.lan"), RType::A);
        if a_record(&m) == Some(RData::A([10, 0, 0, 2].into())) {
            break;
        }
        assert!(Instant::now() < deadline, "still the old resolver");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Other names never went to the network's resolvers, nor `lan` names to the public one.
    ask(dv.udp_addr(), "www.example.com", RType::A);
    assert_eq!(public.seen(), ["www.example.com"]);
    assert!(home
        .seen()
        .iter()
        .chain(hotel.seen().iter())
        .all(|n| n.ends_with("lan")));
}

#[test]
fn network_is_never_the_default_route() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "[upstream]\nservers = [\"network://\"]\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_dnsveil");
    let run = Command::new(bin)
        .args([
            "run",
            "--config",
            conf.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(78));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("upstream.servers[0]") && err.contains("[[forward]]"),
        "{err}"
    );
    let check = Command::new(bin)
        .args(["check-config", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!check.status.success());
    let flag = Command::new(bin)
        .args(["run", "--listen", "127.0.0.1:0", "--upstream", "network://"])
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&flag.stderr).contains("--upstream"));
}

#[test]
fn captive_portal_checks_and_the_window_use_the_networks_resolvers() {
    let portal = network_resolver([10, 1, 2, 3]);
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("resolv.conf");
    resolv_conf(&rc, &[&portal]);
    let conf = format!(
        "[upstream]\nnetwork_resolv_conf = {:?}\ntimeout_ms = 500\n",
        rc.to_str().unwrap()
    );
    // The encrypted upstream stands for one behind the portal: nothing answers on it.
    let unreachable: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let dv = Dnsveil::forwarding(dir.path(), unreachable, &conf, &[]);
    assert!(dv.wait_logged("control socket listening", Duration::from_secs(10)));
    // Fail closed for ordinary names.
    assert_eq!(
        ask(dv.udp_addr(), "www.example.com", RType::A).rcode(),
        Rcode::SERVFAIL
    );
    // A connectivity check goes to the network's resolver, and is not cached (TTL 0).
    let m = ask(dv.udp_addr(), "detectportal.firefox.com", RType::A);
    assert_eq!(a_record(&m), Some(RData::A([10, 1, 2, 3].into())));
    assert_eq!(m.answers[0].ttl, 0);
    assert_eq!(portal.seen(), ["detectportal.firefox.com"]);

    // The window: every name through the network's resolvers, said loudly.
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["portal", "--minutes", "2", "--control-socket"])
        .arg(dv.control_socket())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("open for 2 minute(s)"));
    assert!(dv.wait_logged("captive-portal window open", Duration::from_secs(5)));
    let m = ask(dv.udp_addr(), "login.hotel.example", RType::A);
    assert_eq!(a_record(&m), Some(RData::A([10, 1, 2, 3].into())));
    assert!(dv.wait_logged("qname=login.hotel.example.", Duration::from_secs(5)));
    assert_eq!(
        portal.seen(),
        ["detectportal.firefox.com", "login.hotel.example"]
    );
    // Out-of-range windows are refused by the command line.
    let bad = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["portal", "--minutes", "0", "--control-socket"])
        .arg(dv.control_socket())
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn captive_portal_off_fails_closed() {
    let portal = network_resolver([10, 1, 2, 3]);
    let dir = tempfile::tempdir().unwrap();
    let rc = dir.path().join("resolv.conf");
    resolv_conf(&rc, &[&portal]);
    let conf = format!(
        "[upstream]\nnetwork_resolv_conf = {:?}\ntimeout_ms = 500\ncaptive_portal = \"off\"\n",
        rc.to_str().unwrap()
    );
    let dv = Dnsveil::forwarding(dir.path(), "127.0.0.1:9".parse().unwrap(), &conf, &[]);
    assert!(dv.wait_logged("control socket listening", Duration::from_secs(10)));
    let m = ask(dv.udp_addr(), "detectportal.firefox.com", RType::A);
    assert_eq!(m.rcode(), Rcode::SERVFAIL);
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["portal", "--control-socket"])
        .arg(dv.control_socket())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("captive_portal = \"off\""));
    assert!(portal.seen().is_empty());
}
