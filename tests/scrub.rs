//! Upstream answers are scrubbed before they reach the cache or a client: the real binary,
//! forwarding to a scripted plain-UDP upstream on 127.0.0.1 that answers with the shapes an attack
//! run found passed through (foreign records in every section, a chain of 100 CNAMEs, a loop).

mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dnsveil::wire::edns::ede;
use dnsveil::wire::{parse_record_line, Edns, Message, Name, RType, Rcode, Record};
use harness::*;

fn rr(line: &str) -> Record {
    parse_record_line(line, 300).expect("record line")
}

/// What the scripted upstream answers for `q`, by question name.
fn poisoned(q: &Message) -> Message {
    let mut m = Message::response_to(q);
    let qname = q.questions[0].name.to_string().to_ascii_lowercase();
    match qname.as_str() {
        "poison.test." => {
            m.answers = vec![
                rr("poison.test. A 192.0.2.1"),
                rr("victim.example. A 6.6.6.6"),
            ];
            m.authority = vec![rr("victim.example. NS ns.evil.example.")];
            m.additional = vec![
                rr("ns.evil.example. A 6.6.6.6"),
                rr("victim.example. AAAA 2001:db8::666"),
            ];
        }
        "chain.test." => {
            m.answers.push(rr("chain.test. CNAME c1.chain.test."));
            for i in 1..100 {
                m.answers.push(rr(&format!(
                    "c{i}.chain.test. CNAME c{}.chain.test.",
                    i + 1
                )));
            }
            m.answers.push(rr("c100.chain.test. A 192.0.2.100"));
        }
        "loop.test." => {
            m.answers = vec![
                rr("loop.test. CNAME b.loop.test."),
                rr("b.loop.test. CNAME loop.test."),
            ];
        }
        "www.one.test." => {
            m.answers = vec![
                rr("www.one.test. CNAME edge.two.test."),
                rr("edge.two.test. CNAME host.three.test."),
                rr("host.three.test. CNAME final.three.test."),
                rr("final.three.test. A 192.0.2.3"),
            ];
            m.authority = vec![rr("three.test. NS ns.three.test.")];
            m.additional = vec![rr("ns.three.test. A 192.0.2.53")];
        }
        _ => m.set_rcode(Rcode::NXDOMAIN),
    }
    m
}

/// The scripted upstream: a thread answering every query with [`poisoned`]; counts queries.
fn scripted_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    let addr = sock.local_addr().expect("addr");
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(query) = Message::parse(&buf[..n]) else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = poisoned(&query).encode().expect("encode reply");
            let _ = sock.send_to(&reply, from);
        }
    });
    (addr, asked)
}

/// Asks `name` A with EDNS (so an Extended DNS Error can come back).
fn ask(server: SocketAddr, name: &str) -> Message {
    let mut q = Message::query(name.parse::<Name>().expect("name"), RType::A);
    q.header.id = 0x5c0b;
    q.edns = Some(Edns {
        udp_payload: 4096,
        ..Edns::default()
    });
    let raw = udp_exchange(server, &q.encode().expect("encode")).expect("an answer");
    let m = Message::parse(&raw).expect("answer parses");
    assert_eq!(m.header.id, 0x5c0b);
    m
}

fn records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .chain(&m.authority)
        .chain(&m.additional)
        .map(|r| format!("{} {}", r.name, r.rtype()))
        .collect()
}

fn edes(m: &Message) -> Vec<(u16, String)> {
    m.edns
        .iter()
        .flat_map(|e| e.extended_errors())
        .map(|(code, text)| (code, text.to_string()))
        .collect()
}

#[test]
fn clients_see_neither_foreign_records_nor_long_or_looping_chains() {
    let (upstream, asked) = scripted_upstream();
    let dir = tempfile::tempdir().expect("tempdir");
    let dv = Dnsveil::forwarding(dir.path(), upstream, "", &[]);
    let server = dv.udp_addr();

    // Foreign A, NS and glue are gone; asked again, the cached copy is as clean.
    for round in 0..2 {
        let m = ask(server, "poison.test");
        assert_eq!(m.rcode(), Rcode::NOERROR, "round {round}");
        assert_eq!(records(&m), ["poison.test. A"], "round {round}");
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );

    // A chain of 100 CNAMEs and a loop: SERVFAIL, with an Extended DNS Error saying why, kept for
    // the cache's SERVFAIL time (5 s by default) so that asking again does not ask upstream again.
    for (name, why) in [
        ("chain.test", "CNAME chain longer"),
        ("loop.test", "CNAME loop"),
    ] {
        let before = asked.load(Ordering::SeqCst);
        for round in 0..2 {
            let m = ask(server, name);
            assert_eq!(m.rcode(), Rcode::SERVFAIL, "{name} round {round}: {m:?}");
            assert!(records(&m).is_empty(), "{name}: {m:?}");
            let edes = edes(&m);
            assert!(
                edes.len() == 1 && edes[0].0 == ede::OTHER && edes[0].1.contains(why),
                "{name} round {round}: {edes:?}"
            );
        }
        assert_eq!(asked.load(Ordering::SeqCst), before + 1, "{name}");
    }

    // A legitimate chain across zones comes through whole.
    let m = ask(server, "www.one.test");
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert_eq!(
        records(&m),
        [
            "www.one.test. CNAME",
            "edge.two.test. CNAME",
            "host.three.test. CNAME",
            "final.three.test. A",
            "three.test. NS",
            "ns.three.test. A",
        ]
    );
}
