//! Names that must never reach a public resolver (issue 16): single-label names, `.local` and
//! Mozilla's canary are answered by the real binary itself, and a fake upstream that records every
//! question proves none of them left, while ordinary names and names a rule claims still do.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod harness;

use std::net::SocketAddr;

use dnsveil::wire::{Message, RData, RType, Rcode};
use harness::*;

fn ask(server: SocketAddr, name: &str, qtype: RType) -> Message {
    let raw = udp_exchange(server, &query_bytes(name, qtype, 0x5151)).expect("an answer");
    Message::parse(&raw).expect("answer parses")
}

#[test]
fn local_names_never_reach_the_upstream() {
    let public = FakeUpstream::start();
    let lan = FakeUpstream::answering([10, 0, 0, 7].into());
    let dir = tempfile::tempdir().unwrap();
    let rule = format!(
        "[[forward]]\ndomains = [\"lan\"]\nupstreams = [\"udp://{}\"]\n",
        lan.addr
    );
    let dv = Dnsveil::forwarding(dir.path(), public.addr, &rule, &[]);
    let server = dv.udp_addr();
    for (name, qtype) in [
        ("printer", RType::A),
        ("wpad", RType::A),
        ("NAS", RType::AAAA),
        ("printer.local", RType::A),
        ("_ipp._tcp.local", RType::SRV),
        ("use-application-dns.net", RType::A),
        ("use-application-dns.net", RType::AAAA),
    ] {
        let m = ask(server, name, qtype);
        assert_eq!(m.rcode(), Rcode::NXDOMAIN, "{name} {qtype}");
        assert!(m.answers.is_empty(), "{name}");
    }
    // Ordinary names and a top-level domain's zone data still go out; `lan` goes to its rule.
    let m = ask(server, "www.example.com", RType::A);
    assert_eq!(m.answers[0].data, RData::A([192, 0, 2, 53].into()));
    assert_eq!(ask(server, "com", RType::DS).rcode(), Rcode::NOERROR);
    let m = ask(server, "lan", RType::A);
    assert_eq!(m.answers[0].data, RData::A([10, 0, 0, 7].into()));
    let m = ask(server, "router.lan", RType::A);
    assert_eq!(m.answers[0].data, RData::A([10, 0, 0, 7].into()));
    // Every answer above has come back, and the fakes record a question before answering it.
    assert_eq!(public.seen(), ["www.example.com", "com"]);
    assert_eq!(lan.seen(), ["lan", "router.lan"]);
}

#[test]
fn single_label_names_can_be_forwarded_by_configuration() {
    let public = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let dv = Dnsveil::forwarding(
        dir.path(),
        public.addr,
        "[hosts]\nsingle_label = false\n",
        &[],
    );
    let m = ask(dv.udp_addr(), "printer", RType::A);
    assert_eq!(m.answers[0].data, RData::A([192, 0, 2, 53].into()));
    // `.local` stays local: only single-label names were let out.
    assert_eq!(
        ask(dv.udp_addr(), "printer.local", RType::A).rcode(),
        Rcode::NXDOMAIN
    );
    assert_eq!(public.seen(), ["printer"]);
}

#[test]
fn single_label_names_are_looked_up_below_the_search_domains() {
    let public = FakeUpstream::start();
    let lan = FakeUpstream::answering([10, 0, 0, 7].into());
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "[hosts]\nsearch = [\"local\", \"lan\"]\n\
         [[forward]]\ndomains = [\"lan\"]\nupstreams = [\"udp://{}\"]\n",
        lan.addr
    );
    let dv = Dnsveil::forwarding(dir.path(), public.addr, &conf, &[]);
    // `printer.local` does not exist (answered here), `printer.lan` does: a CNAME to it, then its
    // address.
    let m = ask(dv.udp_addr(), "printer", RType::A);
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert_eq!(m.questions[0].name.to_string(), "printer.");
    assert_eq!(
        m.answers[0].data,
        RData::Cname("printer.lan".parse().unwrap())
    );
    assert_eq!(m.answers[1].name.to_string(), "printer.lan.");
    assert_eq!(m.answers[1].data, RData::A([10, 0, 0, 7].into()));
    assert_eq!(lan.seen(), ["printer.lan"]);
    assert!(public.seen().is_empty(), "{:?}", public.seen());
}
