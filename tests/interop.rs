//! Interop with real encrypted DNS servers from Debian: the real `dnsveil` binary forwards over
//! DNS-over-TLS (RFC 7858) and DNS-over-HTTPS (RFC 8484) to unbound and dnsdist, which front an nsd
//! serving a generated zone; standard clients (dig, kdig) ask dnsveil over UDP and TCP.
//!
//! ```text
//!   dig/kdig --udp,tcp--> dnsveil --tls://, https://--> unbound | dnsdist --> nsd (interop.test)
//!                             \--(never)--> plaintext decoys on 53 and the UDP twins of 443/853
//! ```
//!
//! Besides "it answers", the tests assert where queries went (dnsdist's per-listener counters,
//! unbound's query log, decoys that record every byte), that sequential queries share one TLS
//! connection (one handshake), and that certificate failures end in SERVFAIL with an Extended DNS
//! Error (RFC 8914) and no query reaching the server. Everything runs on loopback; the host-name
//! tests bind the standard ports on a random 127/8 address and so need root (as `setpriv` in
//! `tests/integration.rs` does).

mod harness;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dnsveil::wire::edns::ede;
use dnsveil::wire::{Edns, Message, Name, RType, Rcode};
use harness::daemons::*;
use harness::*;

const ZONE: &str = "interop.test";

fn nsd() -> Nsd {
    Nsd::start(&[(ZONE, test_zone(ZONE))])
}

fn fqdn(label: &str) -> String {
    format!("{label}.{ZONE}")
}

/// dnsveil forwarding to `upstream` with the test CA (and `extra` flags), no hosts file.
fn dnsveil(upstream: &str, ca: &str, extra: &[&str]) -> Dnsveil {
    let ca = cert_file(ca);
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
        "--ca-file",
        &ca,
        "--hosts",
        "",
    ];
    args.extend_from_slice(extra);
    Dnsveil::start(&args)
}

/// Asks with EDNS (so an Extended DNS Error can come back) over UDP or TCP.
fn ask(server: SocketAddr, name: &str, qtype: RType, tcp: bool) -> Message {
    let mut q = Message::query(name.parse::<Name>().expect("name"), qtype);
    q.header.id = 0x1d0e;
    q.edns = Some(Edns {
        udp_payload: 1232,
        ..Edns::default()
    });
    let wire = q.encode().expect("encode");
    let raw = if tcp {
        tcp_exchange(server, &wire)
    } else {
        udp_exchange(server, &wire)
    }
    .unwrap_or_else(|| panic!("no answer from {server} for {name}"));
    let m = Message::parse(&raw).expect("answer parses");
    assert_eq!(m.header.id, 0x1d0e);
    assert!(m.header.response);
    m
}

/// The Extended DNS Errors of an answer.
fn extended_errors(m: &Message) -> Vec<(u16, String)> {
    m.edns
        .iter()
        .flat_map(|e| e.extended_errors())
        .map(|(code, text)| (code, text.to_string()))
        .collect()
}

/// A SERVFAIL with no data and a Network Error EDE whose text contains `why`.
fn assert_fails_closed(m: &Message, why: &str, context: &str) {
    assert_eq!(m.rcode(), Rcode::SERVFAIL, "{context}: {m:?}");
    assert!(
        m.answers.is_empty() && m.authority.is_empty(),
        "{context}: {m:?}"
    );
    let edes = extended_errors(m);
    assert!(
        edes.iter()
            .any(|(code, text)| *code == ede::NETWORK_ERROR && text.contains(why)),
        "{context}: expected EDE {} mentioning {why:?}, got {edes:?}",
        ede::NETWORK_ERROR
    );
}

/// kdig asking dnsveil over plain UDP or TCP; `+short` output.
fn kdig_plain(server: SocketAddr, tcp: bool, name: &str, qtype: &str) -> String {
    let kdig = require_tool("kdig", "knot-dnsutils");
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let transport = if tcp { "+tcp" } else { "+notcp" };
    run_tool(
        &kdig,
        &[
            &at,
            "-p",
            &port,
            transport,
            "+short",
            "+timeout=3",
            "+retry=0",
            name,
            qtype,
        ],
    )
}

/// Exercises dnsveil over UDP and TCP with dig, kdig and our own client, against the zone's data.
/// `tag` makes the names unique to this call (the NXDOMAIN name); returns how many distinct
/// questions were asked (each one a cache miss upstream).
fn check_resolves(dv: &Dnsveil, tag: &str) -> u64 {
    let (udp, tcp) = (dv.udp_addr(), dv.tcp_addr());
    assert_eq!(dig(udp, &["+short", &fqdn("www"), "A"]).trim(), "192.0.2.1");
    assert_eq!(
        dig(tcp, &["+tcp", "+short", &fqdn("www"), "AAAA"]).trim(),
        "2001:db8::1"
    );
    assert_eq!(
        dig(udp, &["+short", &fqdn("alias"), "A"])
            .lines()
            .collect::<Vec<_>>(),
        [fqdn("www") + ".", "192.0.2.1".to_string()]
    );
    assert_eq!(
        kdig_plain(tcp, true, ZONE, "MX").trim(),
        format!("10 {}.", fqdn("mail"))
    );
    assert_eq!(
        kdig_plain(udp, false, &fqdn("txt"), "TXT").trim(),
        "\"hello world\" \"second string\""
    );
    // 40 A records: more than 512 octets, complete over TCP through the encrypted upstream.
    let big = ask(tcp, &fqdn("BIG"), RType::A, true);
    assert_eq!(big.rcode(), Rcode::NOERROR);
    assert_eq!(big.answers.len(), 40);
    assert_eq!(big.questions[0].name.to_string(), format!("BIG.{ZONE}."));
    let nx = ask(udp, &fqdn(&format!("nothing-{tag}")), RType::A, false);
    assert_eq!(nx.rcode(), Rcode::NXDOMAIN);
    assert_eq!(nx.authority.len(), 1, "SOA for the negative answer");
    let caa = ask(udp, &fqdn("caa"), RType::CAA, false);
    assert_eq!(caa.answers.len(), 1);
    assert_eq!(caa.answers[0].rtype(), RType::CAA);
    8
}

#[test]
fn dnsveil_resolves_through_unbound_over_dot_and_doh() {
    let nsd = nsd();
    let unbound = Unbound::start(ZONE, nsd.addr, &fqdn("ns1"));
    let cases = [
        ("dot", format!("tls://{}", unbound.dot)),
        ("doh", format!("https://{}/dns-query", unbound.doh)),
    ];
    for (tag, url) in cases {
        let dv = dnsveil(&url, "ca.pem", &[]);
        check_resolves(&dv, tag);
        // The answers came through unbound: it logged the one name only this pass asked.
        let nx = fqdn(&format!("nothing-{tag}"));
        unbound.wait_logged(&nx);
    }
}

#[test]
fn dnsveil_resolves_through_dnsdist_by_host_name_and_never_in_plaintext() {
    let nsd = nsd();
    // The standard ports on a 127/8 address of its own: `tls://dns.test` means port 853 and
    // `https://dns.test/dns-query` port 443, and port 53 is where a plaintext fallback would go.
    let mut held = free_loopback_ip(&[53, 443, 853]);
    let ip = held.ip;
    let at = |port| SocketAddr::from((ip, port));
    let decoy = Decoy::start(
        vec![held.take_udp(53), held.take_udp(853), held.take_udp(443)],
        vec![held.take_tcp(53)],
    );
    // dnsdist binds TCP 853 and 443 itself.
    drop(held);
    let ports = DnsdistPorts {
        plain: SocketAddr::from(([127, 0, 0, 1], free_port())),
        dot: at(853),
        doh: at(443),
    };
    let mut dnsdist = Dnsdist::start(ports, nsd.addr, &fqdn("ns1"));
    let bootstrap = IpAddr::from(ip).to_string();
    let cases = [
        (
            "dot",
            format!("tls://{CERT_NAME}"),
            ports.dot,
            "TCP (DNS over TLS)",
        ),
        (
            "doh",
            format!("https://{CERT_NAME}/dns-query"),
            ports.doh,
            "TCP (DNS over HTTPS)",
        ),
    ];
    let mut running = Vec::new();
    for (tag, url, frontend, protocol) in cases {
        let dv = dnsveil(&url, "ca.pem", &["--bootstrap", &bootstrap]);
        let sessions = dnsdist.tls_sessions(frontend);
        let queries = dnsdist.queries(frontend, protocol);
        let asked = check_resolves(&dv, tag);
        let got = dnsdist.queries(frontend, protocol) - queries;
        assert!(
            got >= asked,
            "{tag}: dnsdist's {protocol} listener saw {got} queries, dnsveil had {asked} misses"
        );
        // Sequential queries share one connection: exactly one TLS handshake for all of them.
        let handshakes = dnsdist.tls_sessions(frontend).handshakes() - sessions.handshakes();
        assert_eq!(handshakes, 1, "{tag}: TLS handshakes for {got} queries");
        running.push((tag, dv));
    }
    assert_eq!(
        dnsdist.plain_queries(),
        0,
        "dnsdist's plaintext listener was used: {:?}",
        dnsdist.binds()
    );

    // The encrypted upstream disappears: fail closed, with no plaintext retry anywhere.
    dnsdist.kill();
    for (tag, dv) in &running {
        for tcp in [false, true] {
            let name = fqdn(&format!("gone-{tag}-{tcp}"));
            let m = ask(
                if tcp { dv.tcp_addr() } else { dv.udp_addr() },
                &name,
                RType::A,
                tcp,
            );
            assert_fails_closed(&m, "", &format!("{tag} after the upstream died"));
        }
    }
    let seen = decoy.finish();
    assert!(seen.is_empty(), "plaintext sent to decoys: {seen:?}");
}

#[test]
fn a_plaintext_server_on_the_encrypted_ports_gets_a_tls_handshake_and_no_query() {
    let mut held = free_loopback_ip(&[53, 443, 853]);
    let ip = held.ip;
    let at = |port| SocketAddr::from((ip, port));
    let decoy = Decoy::start(
        [53, 443, 853].map(|p| held.take_udp(p)).into(),
        [53, 443, 853].map(|p| held.take_tcp(p)).into(),
    );
    let bootstrap = IpAddr::from(ip).to_string();
    let cases = [
        ("dot", format!("tls://{CERT_NAME}")),
        ("doh", format!("https://{CERT_NAME}/dns-query")),
    ];
    let mut canaries = Vec::new();
    for (tag, url) in cases {
        let dv = dnsveil(&url, "ca.pem", &["--bootstrap", &bootstrap]);
        let canary = format!("canary{tag}x7q.{ZONE}");
        let m = ask(dv.udp_addr(), &canary, RType::A, false);
        assert_fails_closed(&m, "", &format!("{tag} against a plaintext server"));
        canaries.push(canary);
    }
    let seen = decoy.finish();
    // dnsveil connected to 853 and 443 and spoke TLS there: a handshake record (type 22,
    // version 3.x) that carries no part of the query.
    for port in [853, 443] {
        let conns: Vec<&Seen> = seen.iter().filter(|s| s.local == at(port)).collect();
        assert!(!conns.is_empty(), "no connection to port {port}: {seen:?}");
        for s in conns {
            assert_eq!(s.proto, "tcp", "{s:?}");
            assert!(
                s.bytes.len() > 5 && s.bytes[0] == 0x16 && s.bytes[1] == 0x03,
                "port {port} got something that is not a TLS handshake: {:02x?}",
                &s.bytes[..s.bytes.len().min(16)]
            );
            for canary in &canaries {
                assert!(
                    !mentions_name(&s.bytes, canary),
                    "{canary} leaked to port {port}"
                );
            }
        }
    }
    let elsewhere: Vec<&Seen> = seen
        .iter()
        .filter(|s| !(s.proto == "tcp" && (s.local == at(853) || s.local == at(443))))
        .collect();
    assert!(elsewhere.is_empty(), "plaintext fallback: {elsewhere:?}");
}

#[test]
fn certificate_failures_against_unbound_servfail_and_reach_nothing() {
    let nsd = nsd();
    let unbound = Unbound::start(ZONE, nsd.addr, &fqdn("ns1"));
    let cases = [
        // A CA that did not sign unbound's certificate.
        (
            "wrongca-dot",
            format!("tls://{}", unbound.dot),
            "other-ca.pem",
            vec![],
            "UnknownIssuer",
        ),
        (
            "wrongca-doh",
            format!("https://{}/dns-query", unbound.doh),
            "other-ca.pem",
            vec![],
            "UnknownIssuer",
        ),
        // The right CA, but a name the certificate does not cover.
        (
            "wrongname-dot",
            format!("tls://wrong.test:{}", unbound.dot.port()),
            "ca.pem",
            vec!["--bootstrap", "127.0.0.1"],
            "not valid for name",
        ),
    ];
    let mut canaries = Vec::new();
    for (tag, url, ca, extra, why) in &cases {
        let dv = dnsveil(url, ca, extra);
        for tcp in [false, true] {
            let canary = fqdn(&format!("{tag}-{}", if tcp { "tcp" } else { "udp" }));
            let addr = if tcp { dv.tcp_addr() } else { dv.udp_addr() };
            let m = ask(addr, &canary, RType::A, tcp);
            assert_fails_closed(
                &m,
                why,
                &format!("{tag} over {}", if tcp { "tcp" } else { "udp" }),
            );
            canaries.push(canary);
        }
        // The failure is logged by the connection's task, possibly just after the SERVFAIL left.
        assert!(
            dv.wait_logged(why, Duration::from_secs(10)),
            "{tag}: the log says why:\n{}",
            dv.log()
        );
    }
    // A control query with the right CA shows up in unbound's query log; none of the canaries
    // (asked earlier) ever did.
    let control = fqdn("www");
    kdig_encrypted(unbound.dot, None, &control, "AAAA").expect("control query");
    unbound.wait_logged(&control);
    for canary in &canaries {
        assert!(
            !unbound.saw_query(canary),
            "{canary} reached unbound despite a failed certificate check"
        );
    }
}
