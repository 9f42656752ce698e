//! Recursive mode against a fake hierarchy on loopback: a root, a TLD (`test.`) and leaf zones,
//! served by nsd on 127.0.0.x addresses (several servers per zone), behind counting relays on one
//! high port (`--query-port`). The real binary resolves from explicit root hints.
//!
//! ```text
//!   dnsveil --root-hints (a.roots 127.0.0.2, b.roots 127.0.0.3) --query-port P
//!     --> relay 127.0.0.x:P (counts) --> nsd 127.0.0.x:P2
//!   .            127.0.0.2, .3      test.          127.0.0.4, .5
//!   example.test 127.0.0.6, .7 + lame 127.0.0.9 (REFUSED) + dead 127.0.0.10 (black hole)
//!   other.test, glueless.test (NS ns2.other.test, no glue), sub.example.test   127.0.0.8
//!   evil.test + a fake example.test                          127.0.0.11
//!   up.test: a server that refers back up to the root        127.0.0.12
//!   loop1.test <-> loop2.test: glueless NS in each other; nxns.test: 20 glueless NS names that
//!   do not exist
//! ```

mod harness;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dnsveil::recursor::limits::{MAX_NS_LOOKUPS_PER_DELEGATION, MAX_UPSTREAM_QUERIES};
use dnsveil::wire::{Edns, Message, Name, RData, RType, Rcode};
use harness::relay::{self, Counts};
use harness::{hierarchy_ports, udp_exchange, Dnsveil, Nsd};

const SOA: &str = "@ SOA ns hostmaster 1 3600 900 604800 60";
const DNSKEY: &str = "AwEAAagAIKlVZrpC6Ia7gEzahOR+9W29euxhJhVVLOyQbSEW0O8gcCjFFVQUTf6v58fLjwBd0YI0EzrAcQqBGCzh/RStIoO8g0NfnfL2MTJRkxoXbfDaUeVPQuYEhg37NZWAJQ9VnMVDxP/VHL496M/QZxkjf5/Efucp2gaDX6RS6CXpoY68LsvPVjR0ZSwzz1apAzvN9dlzEheX7ICJBBtuA6G3LQpzW5hOA2hzCTMjJPJ8LbqF6dsV6DoBQzgul0sGIcGOYl7OyQdXfZ57relSQageu+ipAdTTJ25AsRTAoub8ONGcLmqrAmRLKBP1dfwhYB4N7knNnulqQxA+Uk1ihz0=";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn zone(origin: &str, body: &str) -> String {
    format!("$ORIGIN {origin}\n$TTL 3600\n{SOA}\n{body}")
}

/// The hierarchy: nsd instances behind relays, and the relays' counts by address.
struct Hierarchy {
    port: u16,
    counts: BTreeMap<u8, Counts>,
    hints: tempfile::NamedTempFile,
    _nsd: Vec<Nsd>,
}

impl Hierarchy {
    fn start() -> Hierarchy {
        let (port, backend) = hierarchy_ports();
        let root = zone(
            ".",
            "@ NS a.roots.\n@ NS b.roots.\na.roots. A 127.0.0.2\nb.roots. A 127.0.0.3\n\
             ns.roots. A 127.0.0.2\n\
             test. NS ns1.test.\ntest. NS ns2.test.\nns1.test. A 127.0.0.4\nns2.test. A 127.0.0.5\n",
        );
        let mut nxns = String::new();
        for i in 0..20 {
            nxns.push_str(&format!("nxns NS ns{i}.nx{i}.test.\n"));
        }
        let test = zone(
            "test.",
            &format!(
                "@ NS ns1\n@ NS ns2\nns A 127.0.0.4\nns1 A 127.0.0.4\nns2 A 127.0.0.5\n\
                 example NS ns1.example\nexample NS ns2.example\nexample NS lame.example\nexample NS dead.example\n\
                 ns1.example A 127.0.0.6\nns2.example A 127.0.0.7\nlame.example A 127.0.0.9\ndead.example A 127.0.0.10\n\
                 example DS 12345 13 2 8F3D1F8C2A0E3C8F4AA7B1D2E3F405162738495A6B7C8D9EAFB0C1D2E3F40516\n\
                 other NS ns.other\nns.other A 127.0.0.8\n\
                 glueless NS ns2.other.test.\n\
                 evil NS ns.evil\nns.evil A 127.0.0.11\n\
                 up NS ns.up\nns.up A 127.0.0.12\n\
                 loop1 NS ns.loop2.test.\nloop2 NS ns.loop1.test.\n{nxns}"
            ),
        );
        let mut example_body = format!(
            "@ NS ns1\n@ NS ns2\n@ NS lame\n@ NS dead\nns A 127.0.0.6\nns1 A 127.0.0.6\nns2 A 127.0.0.7\n\
             lame A 127.0.0.9\ndead A 127.0.0.10\n@ DNSKEY 257 3 8 {DNSKEY}\n\
             www A 192.0.2.1\nwww TXT \"hello\"\nalias CNAME www.other.test.\nloop CNAME loop.other.test.\n\
             long CNAME c1\nsub NS ns.sub\nns.sub A 127.0.0.8\ntosub CNAME www.sub.example.test.\n"
        );
        for i in 1..=12 {
            example_body.push_str(&format!("h{i} A 192.0.2.{}\n", 100 + i));
            example_body.push_str(&format!("c{i} CNAME c{}.other.test.\n", i));
        }
        for i in 1..=120 {
            example_body.push_str(&format!("big A 198.51.100.{i}\n"));
        }
        let example = zone("example.test.", &example_body);
        let mut other_body = String::from(
            "@ NS ns\nns A 127.0.0.8\nns2 A 127.0.0.8\nwww CNAME www.glueless.test.\n\
             loop CNAME loop.example.test.\n",
        );
        for i in 1..=12 {
            other_body.push_str(&format!("c{i} CNAME c{}.example.test.\n", i + 1));
        }
        let other = zone("other.test.", &other_body);
        let glueless =
            "$ORIGIN glueless.test.\n$TTL 3600\n@ SOA ns2.other.test. h 1 3600 900 604800 60\n\
             @ NS ns2.other.test.\nwww A 192.0.2.30\n"
                .to_string();
        let sub = zone(
            "sub.example.test.",
            "@ NS ns\nns A 127.0.0.8\nwww A 192.0.2.40\n",
        );
        let evil = zone(
            "evil.test.",
            "@ NS ns\nns A 127.0.0.11\nwww CNAME www.example.test.\n",
        );
        let fake_example = zone("example.test.", "@ NS ns\nns A 127.0.0.11\nwww A 6.6.6.6\n");
        let lame = zone("lamezone.", "@ NS ns\nns A 127.0.0.9\n");

        let nsd = vec![
            Nsd::start_on(&[ip(2), ip(3)], backend, &[(".", root.clone())]),
            Nsd::start_on(&[ip(4), ip(5)], backend, &[("test", test)]),
            Nsd::start_on(&[ip(6), ip(7)], backend, &[("example.test", example)]),
            Nsd::start_on(
                &[ip(8)],
                backend,
                &[
                    ("other.test", other),
                    ("glueless.test", glueless),
                    ("sub.example.test", sub),
                ],
            ),
            Nsd::start_on(&[ip(9)], backend, &[("lamezone", lame)]),
            Nsd::start_on(
                &[ip(11)],
                backend,
                &[("evil.test", evil), ("example.test", fake_example)],
            ),
            Nsd::start_on(&[ip(12)], backend, &[(".", root)]),
        ];
        let mut counts = BTreeMap::new();
        for last in 2..=12u8 {
            let listen = SocketAddr::from((ip(last), port));
            let back = (last != 10).then(|| SocketAddr::from((ip(last), backend)));
            counts.insert(last, relay::start(listen, back));
        }
        let hints = tempfile::NamedTempFile::new().expect("hints file");
        std::fs::write(
            hints.path(),
            ". 3600000 NS a.roots.\n. 3600000 NS b.roots.\n\
             a.roots. 3600000 A 127.0.0.2\nb.roots. 3600000 A 127.0.0.3\n",
        )
        .expect("write hints");
        Hierarchy {
            port,
            counts,
            hints,
            _nsd: nsd,
        }
    }

    fn resolver(&self, extra: &[&str]) -> Dnsveil {
        Dnsveil::recursive(self.hints.path(), self.port, extra)
    }

    fn total(&self) -> usize {
        self.counts.values().map(Counts::total).sum()
    }

    fn count(&self, last: u8) -> usize {
        self.counts[&last].total()
    }
}

/// Asks `server` and returns the parsed response and how long it took.
fn ask(server: SocketAddr, name: &str, qtype: RType, dnssec: bool) -> (Message, Duration) {
    let mut q = Message::query(name.parse::<Name>().expect("name"), qtype);
    q.header.id = rand::random();
    if dnssec {
        q.edns = Some(Edns {
            dnssec_ok: true,
            ..Edns::default()
        });
    }
    let started = Instant::now();
    let raw = udp_exchange(server, &q.encode().expect("encode"))
        .unwrap_or_else(|| panic!("no answer for {name} {qtype}"));
    let m = Message::parse(&raw).expect("parse");
    assert_eq!(m.header.id, q.header.id);
    (m, started.elapsed())
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn resolves_a_loopback_hierarchy_from_its_root_hints() {
    let h = Hierarchy::start();
    let d = h.resolver(&[]);
    let s = d.udp_addr();
    // The resolver primes the root at start; wait for it so counts below are per name.
    assert!(
        d.wait_logged("root primed", Duration::from_secs(10)),
        "{}",
        d.log()
    );

    // Plain resolution: root -> test -> example.test, with QNAME minimisation.
    let before = h.total();
    let (m, _) = ask(s, "www.example.test", RType::A, false);
    assert_eq!(m.rcode(), Rcode::NOERROR, "{m:?}");
    assert_eq!(addresses(&m), ["192.0.2.1"]);
    assert!(m.header.recursion_available && !m.header.authoritative);
    let cold = h.total() - before;
    assert!(
        (3..=6).contains(&cold),
        "cold resolution took {cold} upstream queries"
    );
    // The cache answers again without asking anyone.
    let before = h.total();
    let (m, _) = ask(s, "www.example.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.1"]);
    assert_eq!(h.total(), before);
    // The delegation cache: a sibling name costs one query to the zone's servers.
    let before = h.total();
    let (m, _) = ask(s, "h1.example.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.101"]);
    let warm = h.total() - before;
    assert!(warm <= 3, "a name in a known zone took {warm} queries");

    // NXDOMAIN and NODATA, with the zone's SOA.
    let (m, _) = ask(s, "nope.example.test", RType::A, false);
    assert_eq!(m.rcode(), Rcode::NXDOMAIN);
    assert!(m.authority.iter().any(|r| r.rtype() == RType::SOA), "{m:?}");
    let (m, _) = ask(s, "www.example.test", RType::MX, false);
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert!(m.answers.is_empty());
    assert!(m.authority.iter().any(|r| r.rtype() == RType::SOA), "{m:?}");

    // A lame server (REFUSED) and a dead one (black hole) among good ones: every name resolves,
    // and once each has failed it rests, so later queries neither ask nor wait for it.
    for i in 2..=12 {
        let name = format!("h{i}.example.test");
        let (m, took) = ask(s, &name, RType::A, false);
        assert_eq!(addresses(&m), [format!("192.0.2.{}", 100 + i)], "{name}");
        if i > 8 {
            assert!(took < Duration::from_millis(300), "{name} took {took:?}");
        }
    }
    assert!(h.count(9) <= 2, "lame server asked {} times", h.count(9));
    assert!(h.count(10) <= 2, "dead server asked {} times", h.count(10));

    // Truncation: 120 A records do not fit 1232 octets; nsd sets TC and the answer comes over TCP.
    let tcp_before: usize = h.counts.values().map(Counts::tcp).sum();
    let raw = harness::tcp_exchange(
        d.tcp_addr(),
        &harness::query_bytes("big.example.test", RType::A, 7),
    )
    .expect("tcp answer");
    let m = Message::parse(&raw).expect("parse");
    assert_eq!(addresses(&m).len(), 120);
    let tcp_after: usize = h.counts.values().map(Counts::tcp).sum();
    assert!(tcp_after > tcp_before, "no query went over TCP");

    // Glueless delegation: glueless.test's server is named in other.test, which is looked up.
    let (m, _) = ask(s, "www.glueless.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.30"], "{m:?}");

    // A CNAME chain across three zones; out-of-zone data the same server sent is not used.
    let (m, _) = ask(s, "alias.example.test", RType::A, false);
    let chain: Vec<(String, RType)> = m
        .answers
        .iter()
        .map(|r| (r.name.to_string(), r.rtype()))
        .collect();
    assert_eq!(
        chain,
        [
            ("alias.example.test.".to_string(), RType::CNAME),
            ("www.other.test.".to_string(), RType::CNAME),
            ("www.glueless.test.".to_string(), RType::A),
        ]
    );

    // A CNAME to a name below a zone cut inside the same zone: the child zone is asked.
    let (m, _) = ask(s, "tosub.example.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.40"], "{m:?}");

    // Out of bailiwick: evil.test's server also serves a fake example.test and sends its
    // www.example.test A 6.6.6.6 with the CNAME; the real one is asked instead.
    let (m, _) = ask(s, "www.evil.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.1"], "{m:?}");

    // A CNAME loop across two zones, and a chain longer than the limit: SERVFAIL.
    let (m, took) = ask(s, "loop.example.test", RType::A, true);
    assert_eq!(m.rcode(), Rcode::SERVFAIL, "{m:?}");
    assert!(took < Duration::from_secs(2));
    let ede: Vec<String> = m
        .edns
        .as_ref()
        .map(|e| e.extended_errors().map(|(_, t)| t.to_string()).collect())
        .unwrap_or_default();
    assert!(ede.iter().any(|t| t.contains("CNAME loop")), "{ede:?}");
    let before = h.total();
    let (m, _) = ask(s, "loop.example.test", RType::A, true);
    assert_eq!(m.rcode(), Rcode::SERVFAIL);
    assert_eq!(h.total(), before, "the failure is cached briefly");
    let (m, _) = ask(s, "long.example.test", RType::A, false);
    assert_eq!(m.rcode(), Rcode::SERVFAIL, "{m:?}");

    // A server that refers back up to the root, and two zones whose servers are named in each
    // other: SERVFAIL, quickly.
    for name in ["www.up.test", "www.loop1.test"] {
        let (m, took) = ask(s, name, RType::A, false);
        assert_eq!(m.rcode(), Rcode::SERVFAIL, "{name}: {m:?}");
        assert!(took < Duration::from_secs(3), "{name} took {took:?}");
    }

    // NXNS: 20 glueless NS names that do not exist. The work stays far under the cap.
    let before = h.total();
    let (m, _) = ask(s, "www.nxns.test", RType::A, false);
    assert_eq!(m.rcode(), Rcode::SERVFAIL);
    let spent = h.total() - before;
    // At most MAX_NS_LOOKUPS_PER_DELEGATION (8) lookups of two queries each (the minimised
    // name, then the full one after its NXDOMAIN), plus the referral.
    assert_eq!(MAX_NS_LOOKUPS_PER_DELEGATION, 8);
    assert!(spent < MAX_UPSTREAM_QUERIES);
    assert!(spent <= 20, "NXNS delegation cost {spent} upstream queries");
    eprintln!("NXNS delegation: {spent} upstream queries");

    // DS is asked of the parent (test.), DNSKEY of the zone itself.
    let parent_before = h.count(4) + h.count(5);
    let (m, _) = ask(s, "example.test", RType::DS, true);
    assert!(m.answers.iter().any(|r| r.rtype() == RType::DS), "{m:?}");
    assert!(h.count(4) + h.count(5) > parent_before);
    let (m, _) = ask(s, "example.test", RType::DNSKEY, true);
    assert!(
        m.answers.iter().any(|r| r.rtype() == RType::DNSKEY),
        "{m:?}"
    );
    assert!(m.edns.is_some_and(|e| e.dnssec_ok));
}

#[test]
fn forwarding_rules_still_win_in_recursive_mode() {
    let h = Hierarchy::start();
    // A rule sends example.test to its server directly (as a LAN rule would), skipping the root.
    let dir = tempfile::tempdir().expect("dir");
    let conf = dir.path().join("dnsveil.toml");
    std::fs::write(
        &conf,
        format!(
            "[resolver]\nmode = \"recursive\"\ndnssec = \"off\"\n[[forward]]\ndomains = [\"example.test\"]\nupstreams = [\"udp://127.0.0.6:{}\"]\n",
            h.port
        ),
    )
    .expect("write");
    let d = h.resolver(&["--config", conf.to_str().expect("path")]);
    assert!(d.wait_logged("root primed", Duration::from_secs(10)));
    let roots = h.count(2) + h.count(3);
    let (m, _) = ask(d.udp_addr(), "www.example.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.1"]);
    assert_eq!(
        h.count(2) + h.count(3),
        roots,
        "the root was asked for a forwarded name"
    );
    let (m, _) = ask(d.udp_addr(), "www.glueless.test", RType::A, false);
    assert_eq!(addresses(&m), ["192.0.2.30"]);
}
