//! 0x20 case randomisation in recursive mode, against nsd (which keeps the case of a question)
//! behind relays that play the servers which do not: one lowercases every answer's question, one
//! sends a forged answer with the question's case flipped before the true one.
//!
//! ```text
//!   dnsveil --root-hints (127.0.0.2) --query-port P [--qname-case-randomization on]
//!   .       127.0.0.2  relay --> nsd
//!   kept.   127.0.0.3  relay --> nsd                       (case kept)
//!   lower.  127.0.0.4  relay, lowercases the question --> nsd
//!   spoof.  127.0.0.5  relay, forged 6.6.6.6 with flipped case first, then nsd's answer
//! ```

mod harness;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dnsveil::wire::{Message, Name, RData, RType, Rcode};
use harness::relay::{self, Counts, Mangle};
use harness::{hierarchy_ports, udp_exchange, Dnsveil, Nsd};

const SOA: &str = "@ SOA ns hostmaster 1 3600 900 604800 60";
/// 26 letters: a random spelling of it that comes out all lower case is a 2^-26 chance.
const LONG: &str = "abcdefghijklmnopqrstuvwxyz";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

struct Hierarchy {
    port: u16,
    counts: BTreeMap<u8, Counts>,
    hints: tempfile::NamedTempFile,
    _nsd: Vec<Nsd>,
}

impl Hierarchy {
    fn start() -> Hierarchy {
        let (port, backend) = hierarchy_ports();
        let root = format!(
            "$ORIGIN .\n$TTL 3600\n{SOA}\n@ NS a.roots.\na.roots. A 127.0.0.2\nns A 127.0.0.2\n\
             kept. NS ns.kept.\nns.kept. A 127.0.0.3\n\
             lower. NS ns.lower.\nns.lower. A 127.0.0.4\n\
             spoof. NS ns.spoof.\nns.spoof. A 127.0.0.5\n"
        );
        let leaf = |origin: &str, last: u8| {
            (
                origin.to_string(),
                format!(
                    "$ORIGIN {origin}.\n$TTL 3600\n{SOA}\n@ NS ns\nns A 127.0.0.{last}\n\
                     www A 192.0.2.1\n{LONG} A 192.0.2.2\nzyxwvutsrqponmlkjihgfedcba A 192.0.2.3\n"
                ),
            )
        };
        let leaves = [leaf("kept", 3), leaf("lower", 4), leaf("spoof", 5)];
        let nsd = vec![
            Nsd::start_on(&[ip(2)], backend, &[(".", root)]),
            Nsd::start_on(
                &[ip(3), ip(4), ip(5)],
                backend,
                &leaves
                    .iter()
                    .map(|(o, z)| (o.as_str(), z.clone()))
                    .collect::<Vec<_>>(),
            ),
        ];
        let mut counts = BTreeMap::new();
        for (last, mangle) in [
            (2, Mangle::None),
            (3, Mangle::None),
            (4, Mangle::LowercaseQuestion),
            (5, Mangle::ForgeFlippedCase),
        ] {
            let listen = SocketAddr::from((ip(last), port));
            let back = SocketAddr::from((ip(last), backend));
            counts.insert(last, relay::start_mangling(listen, Some(back), mangle));
        }
        let hints = tempfile::NamedTempFile::new().expect("hints file");
        std::fs::write(
            hints.path(),
            ". 3600000 NS a.roots.\na.roots. 3600000 A 127.0.0.2\n",
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
        let d = Dnsveil::recursive(self.hints.path(), self.port, extra);
        assert!(
            d.wait_logged("root primed", Duration::from_secs(10)),
            "{}",
            d.log()
        );
        d
    }

    /// The names the server at 127.0.0.`last` was asked for `name` (any case), as sent.
    fn asked(&self, last: u8, name: &str) -> Vec<Name> {
        let want: Name = name.parse().expect("name");
        self.counts[&last]
            .names()
            .iter()
            .filter_map(|w| Name::from_wire(w).ok())
            .filter(|n| n.eq_ignore_case(&want))
            .collect()
    }
}

/// Asks `server` for `name` A; the response and the addresses in it.
fn ask(server: SocketAddr, name: &str) -> (Message, Vec<String>) {
    let mut q = Message::query(name.parse::<Name>().expect("name"), RType::A);
    q.header.id = rand::random();
    let raw = udp_exchange(server, &q.encode().expect("encode"))
        .unwrap_or_else(|| panic!("no answer for {name}"));
    let m = Message::parse(&raw).expect("parse");
    assert_eq!(m.header.id, q.header.id);
    let addrs = m
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    (m, addrs)
}

fn wire(name: &str) -> Vec<u8> {
    name.parse::<Name>().expect("name").as_wire().to_vec()
}

#[test]
fn randomised_case_defeats_a_wrong_case_forgery_and_falls_back_for_servers_that_lose_case() {
    let h = Hierarchy::start();

    // Off (the default): names leave in the client's case, and the forgery with a flipped case
    // is taken, which is what 0x20 is there to stop.
    let d = h.resolver(&[]);
    let s = d.udp_addr();
    let (m, addrs) = ask(s, "www.kept");
    assert_eq!(m.rcode(), Rcode::NOERROR, "{m:?}\n{}", d.log());
    assert_eq!(addrs, ["192.0.2.1"]);
    let sent = h.asked(3, "www.kept");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].as_wire(), wire("www.kept"));
    let (_, addrs) = ask(s, "www.spoof");
    assert_eq!(addrs, ["6.6.6.6"], "without 0x20 the forgery wins");
    drop(d);

    let d = h.resolver(&["--qname-case-randomization", "on"]);
    let s = d.udp_addr();

    // nsd keeps the case: the query left in a random case, the answer came back in it, and the
    // client sees its own case.
    let client_case = "AbcdefghijklmnopqrstuvwxyZ.Kept";
    let (m, addrs) = ask(s, client_case);
    assert_eq!(m.rcode(), Rcode::NOERROR, "{m:?}\n{}", d.log());
    assert_eq!(addrs, ["192.0.2.2"]);
    assert_eq!(m.answers[0].name.as_wire(), wire(client_case), "{m:?}");
    let sent = h.asked(3, client_case);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_ne!(sent[0].as_wire(), wire(client_case), "randomised");
    assert_ne!(sent[0].as_wire(), wire(&client_case.to_lowercase()));

    // A forged answer whose question differs in case is dropped, and the true one taken; the
    // server still gets randomised queries afterwards (a forgery is no reason to fall back).
    let (m, addrs) = ask(s, &format!("{LONG}.spoof"));
    assert_eq!(addrs, ["192.0.2.2"], "{m:?}\n{}", d.log());
    let (_, addrs) = ask(s, "zyxwvutsrqponmlkjihgfedcba.spoof");
    assert_eq!(addrs, ["192.0.2.3"]);
    let sent = h.asked(5, "zyxwvutsrqponmlkjihgfedcba.spoof");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_ne!(
        sent[0].as_wire(),
        wire("zyxwvutsrqponmlkjihgfedcba.spoof"),
        "still randomised"
    );

    // A server that lowercases every question: the randomised query's answers are dropped until
    // its timeout, the query is asked again as it came, and the answer resolves.
    let lower = format!("{LONG}.lower");
    let (m, addrs) = ask(s, &lower);
    assert_eq!(m.rcode(), Rcode::NOERROR, "{m:?}\n{}", d.log());
    assert_eq!(addrs, ["192.0.2.2"]);
    let sent = h.asked(4, &lower);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_ne!(sent[0].as_wire(), wire(&lower), "randomised first");
    assert_eq!(sent[1].as_wire(), wire(&lower), "then as asked");
    // From then on it is asked without randomisation, once per name.
    let (_, addrs) = ask(s, "zyxwvutsrqponmlkjihgfedcba.lower");
    assert_eq!(addrs, ["192.0.2.3"]);
    let sent = h.asked(4, "zyxwvutsrqponmlkjihgfedcba.lower");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].as_wire(), wire("zyxwvutsrqponmlkjihgfedcba.lower"));
}
