//! Reloading a running dnsveil (SIGHUP, as `systemctl reload` sends it): the real binary between
//! a Rust client and two nsd instances, on loopback.

mod harness;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use dnsveil::wire::{Message, RData, RType, Rcode};
use harness::*;

/// A zone `up.test` whose names answer `ip`.
fn zone(ip: &str) -> String {
    format!(
        "$ORIGIN up.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 900 604800 60\n@ IN NS ns1\n\
         ns1 IN A 127.0.0.1\nwww IN A {ip}\nlater IN A {ip}\n"
    )
}

/// The config: one upstream, one local record, clients from `allow`.
fn config(upstream: SocketAddr, record_ip: &str, allow: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nallow = [\"{allow}\"]\n\
         [hosts]\nfile = \"\"\nrecords = [\"box.lan. 300 IN A {record_ip}\"]\n\
         [upstream]\nservers = [\"udp://{upstream}\"]\ntimeout_ms = 2000\n"
    )
}

fn ask(server: SocketAddr, name: &str, id: u16) -> Message {
    let raw = udp_exchange(server, &query_bytes(name, RType::A, id)).expect("an answer");
    let m = Message::parse(&raw).expect("answer parses");
    assert_eq!(m.header.id, id);
    m
}

fn a_of(m: &Message) -> Ipv4Addr {
    match m.answers.first().map(|r| &r.data) {
        Some(RData::A(ip)) => *ip,
        other => panic!("expected an A record, got {other:?} in {m:?}"),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

/// SIGHUP with a changed file: the new upstream, local record and allow list take effect; the
/// listener is the same socket and the cache keeps what it had (a name cached from the old
/// upstream is still answered from it). Then a file that does not check: refused with a message
/// naming the key, and the previous configuration keeps serving.
#[test]
fn sighup_swaps_in_a_good_configuration_and_refuses_a_bad_one() {
    let old = Nsd::start(&[("up.test", zone("192.0.2.10"))]);
    let new = Nsd::start(&[("up.test", zone("192.0.2.20"))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dnsveil.toml");
    write(&conf, &config(old.addr, "10.0.0.1", "127.0.0.0/8"));
    let conf_arg = conf.to_str().expect("UTF-8 path");
    let mut dv = Dnsveil::start(&["--config", conf_arg]);
    let addr = dv.udp_addr();

    assert_eq!(
        a_of(&ask(addr, "www.up.test", 1)),
        Ipv4Addr::new(192, 0, 2, 10)
    );
    assert_eq!(a_of(&ask(addr, "box.lan", 2)), Ipv4Addr::new(10, 0, 0, 1));

    // A good new configuration.
    write(&conf, &config(new.addr, "10.0.0.2", "127.0.0.1/32"));
    dv.signal("HUP");
    assert!(
        dv.wait_logged("configuration reloaded", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    assert_eq!(
        a_of(&ask(addr, "later.up.test", 3)),
        Ipv4Addr::new(192, 0, 2, 20)
    );
    assert_eq!(a_of(&ask(addr, "box.lan", 4)), Ipv4Addr::new(10, 0, 0, 2));
    // Kept: the cache (this answer is the old upstream's, from the cache) and the socket.
    assert_eq!(
        a_of(&ask(addr, "www.up.test", 5)),
        Ipv4Addr::new(192, 0, 2, 10)
    );

    // A configuration that does not check: refused, the running one stays.
    write(
        &conf,
        &format!(
            "{}[cache]\nmin_ttl = 99999999\n",
            config(old.addr, "10.0.0.3", "127.0.0.1/32")
        ),
    );
    dv.signal("HUP");
    assert!(
        dv.wait_logged("reload refused", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    let log = dv.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .expect("the refusal");
    assert!(refusal.contains("cache.min_ttl"), "{refusal}");
    assert!(
        refusal.contains("still serving the previous configuration"),
        "{refusal}"
    );
    assert_eq!(a_of(&ask(addr, "box.lan", 6)), Ipv4Addr::new(10, 0, 0, 2));
    let m = ask(addr, "www.up.test", 7);
    assert_eq!(m.rcode(), Rcode::NOERROR);

    // A file that is not there any more: refused too; still serving.
    std::fs::remove_file(&conf).expect("remove");
    dv.signal("HUP");
    assert!(
        dv.wait_logged_times("reload refused", 2, Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    assert_eq!(a_of(&ask(addr, "box.lan", 8)), Ipv4Addr::new(10, 0, 0, 2));

    dv.signal("TERM");
    assert_eq!(dv.wait_exit(Duration::from_secs(10)), Some(0));
}

/// `dnsveil reload --control-socket PATH` (what the unit's `ExecReload=` runs) returns when the
/// reload is over: the new record answers the very next query, with no wait for a log line. A
/// refused configuration makes it exit non-zero with the reason (so `systemctl reload` fails);
/// a changed setting that needs a restart is named in its output and as a warning in the log.
#[test]
fn control_socket_reload_waits_for_the_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dnsveil.toml");
    // Only local names are asked: the upstream is never used.
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    write(&conf, &config(unused, "10.0.0.1", "127.0.0.0/8"));
    let conf_arg = conf.to_str().expect("UTF-8 path");
    let mut dv = Dnsveil::start(&["--config", conf_arg]);
    assert!(dv.wait_logged("control socket listening", Duration::from_secs(10)));
    let addr = dv.udp_addr();
    let sock = dv.control_socket();
    let reload = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsveil"))
            .args(["reload", "--control-socket", sock.to_str().expect("UTF-8")])
            .output()
            .expect("run dnsveil reload");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(a_of(&ask(addr, "box.lan", 1)), Ipv4Addr::new(10, 0, 0, 1));

    for (i, id) in (2u8..12).zip(2u16..) {
        write(
            &conf,
            &config(unused, &format!("10.0.0.{i}"), "127.0.0.0/8"),
        );
        let (code, out, err) = reload();
        assert_eq!(code, Some(0), "{out}{err}");
        assert_eq!(out, "configuration reloaded\n");
        assert_eq!(a_of(&ask(addr, "box.lan", id)), Ipv4Addr::new(10, 0, 0, i));
    }

    // Refused: exit 1, the reason on stderr, the old record still answers.
    write(
        &conf,
        &format!(
            "{}[cache]\nmin_ttl = 99999999\n",
            config(unused, "10.0.0.99", "127.0.0.0/8")
        ),
    );
    let (code, out, err) = reload();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("reload refused") && err.contains("cache.min_ttl"),
        "{err}"
    );
    assert_eq!(a_of(&ask(addr, "box.lan", 50)), Ipv4Addr::new(10, 0, 0, 11));

    // Taken, with a setting that waits for a restart: named in the output and the log.
    write(
        &conf,
        &format!(
            "{}[metrics]\nlisten = \"127.0.0.1:0\"\n",
            config(unused, "10.0.0.12", "127.0.0.0/8")
        ),
    );
    let (code, out, err) = reload();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("metrics.listen changed: needs a restart"),
        "{out}"
    );
    assert_eq!(a_of(&ask(addr, "box.lan", 51)), Ipv4Addr::new(10, 0, 0, 12));
    // Logged before the reply, but read by the harness on a thread of its own.
    assert!(
        dv.wait_logged("needs a restart", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    let log = dv.log();
    let warning = log
        .lines()
        .find(|l| l.contains("needs a restart"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    assert!(
        warning.contains("WARN") && warning.contains("metrics.listen"),
        "{warning}"
    );

    dv.signal("TERM");
    assert_eq!(dv.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A changed allow list applies to the next query: a reload that admits no loopback client
/// makes the same socket refuse.
#[test]
fn a_reloaded_allow_list_applies_to_the_next_query() {
    let up = Nsd::start(&[("up.test", zone("192.0.2.10"))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dnsveil.toml");
    write(&conf, &config(up.addr, "10.0.0.1", "127.0.0.0/8"));
    let dv = Dnsveil::start(&["--config", conf.to_str().expect("UTF-8 path")]);
    let addr = dv.udp_addr();
    assert_eq!(ask(addr, "box.lan", 1).rcode(), Rcode::NOERROR);

    write(&conf, &config(up.addr, "10.0.0.1", "192.0.2.0/24"));
    dv.signal("HUP");
    assert!(
        dv.wait_logged("configuration reloaded", Duration::from_secs(10)),
        "{}",
        dv.log()
    );
    assert_eq!(ask(addr, "box.lan", 2).rcode(), Rcode::REFUSED);
}
