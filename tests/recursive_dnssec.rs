//! Recursive mode under DNSSEC validation: a hierarchy signed from its own root down (keys from
//! ldns-keygen, zones signed by ldns-signzone at test time), served by nsd on 127.0.0.x at one
//! high port, resolved by the real binary with `--mode recursive`, the test root's hints and the DS
//! of the test root's key as trust anchor. The validator sits in front of the recursor; its DS and
//! DNSKEY lookups go through the recursor (DS to the parent's servers), and the answers it judges
//! carry the RRSIGs and NSEC records the recursor kept for DO=1.
//!
//! ```text
//!   .            127.0.0.2   signed (the trust anchor is its DS)
//!   test.        127.0.0.4   signed, DS in .
//!   secure.test  127.0.0.6   signed, DS in test.
//!   bogus.test   127.0.0.6   signed, a DS in test. that matches no key
//!   plain.test   127.0.0.6   unsigned, no DS (an insecure delegation)
//! ```

mod harness;

use std::net::Ipv4Addr;

use harness::signing::{ds, keygen, sign};
use harness::{dig, hierarchy_ports, Dnsveil, Nsd};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

#[test]
fn validates_answers_resolved_from_a_signed_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (port, _) = hierarchy_ports();
    let soa = |zone: &str, ns: &str| {
        format!("$TTL 3600\n{zone} IN SOA {ns} {ns} 1 3600 900 604800 300\n")
    };
    let secure_key = keygen(d, "secure.test.", "ECDSAP256SHA256");
    let secure = sign(
        d,
        "secure.test.",
        &format!(
            "{}secure.test. NS ns.secure.test.\nns.secure.test. A 127.0.0.6\nwww.secure.test. A 192.0.2.1\n",
            soa("secure.test.", "ns.secure.test.")
        ),
        &secure_key,
        &[],
    );
    let bogus_key = keygen(d, "bogus.test.", "ECDSAP256SHA256");
    let bogus = sign(
        d,
        "bogus.test.",
        &format!(
            "{}bogus.test. NS ns.bogus.test.\nns.bogus.test. A 127.0.0.6\nwww.bogus.test. A 192.0.2.2\n",
            soa("bogus.test.", "ns.bogus.test.")
        ),
        &bogus_key,
        &[],
    );
    let mut wrong_ds = ds(d, &bogus_key).trim_end().to_string();
    let last = wrong_ds.pop().expect("digest");
    wrong_ds.push(if last == '0' { '1' } else { '0' });
    let plain = format!(
        "{}plain.test. NS ns.plain.test.\nns.plain.test. A 127.0.0.6\nwww.plain.test. A 192.0.2.3\n",
        soa("plain.test.", "ns.plain.test.")
    );
    let test_key = keygen(d, "test.", "ECDSAP256SHA256");
    let test = sign(
        d,
        "test.",
        &format!(
            "{}test. NS ns.test.\nns.test. A 127.0.0.4\n\
             secure.test. NS ns.secure.test.\nns.secure.test. A 127.0.0.6\n{}\
             bogus.test. NS ns.bogus.test.\nns.bogus.test. A 127.0.0.6\n{wrong_ds}\n\
             plain.test. NS ns.plain.test.\nns.plain.test. A 127.0.0.6\n",
            soa("test.", "ns.test."),
            ds(d, &secure_key)
        ),
        &test_key,
        &[],
    );
    let root_key = keygen(d, ".", "ECDSAP256SHA256");
    let root = sign(
        d,
        ".",
        &format!(
            "{}. NS a.roots.\na.roots. A 127.0.0.2\ntest. NS ns.test.\nns.test. A 127.0.0.4\n{}",
            soa(".", "a.roots."),
            ds(d, &test_key)
        ),
        &root_key,
        &[],
    );
    let anchor = d.join("anchor.txt");
    std::fs::copy(d.join(format!("{root_key}.ds")), &anchor).expect("anchor");
    let hints = d.join("root.hints");
    std::fs::write(
        &hints,
        ". 3600000 NS a.roots.\na.roots. 3600000 A 127.0.0.2\n",
    )
    .expect("hints");

    let _servers = [
        Nsd::start_on(&[ip(2)], port, &[(".", root)]),
        Nsd::start_on(&[ip(4)], port, &[("test", test)]),
        Nsd::start_on(
            &[ip(6)],
            port,
            &[
                ("secure.test", secure),
                ("bogus.test", bogus),
                ("plain.test", plain),
            ],
        ),
    ];
    let port_arg = port.to_string();
    let dnsveil = Dnsveil::start(&[
        "--mode",
        "recursive",
        "--root-hints",
        hints.to_str().expect("utf-8"),
        "--query-port",
        &port_arg,
        "--trust-anchor",
        anchor.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--hosts",
        "",
        "--dnssec",
        "validate",
        // The recursor logs each resolution with the upstream queries it took.
        "--log-level",
        "debug",
    ]);
    let s = dnsveil.udp_addr();
    let ask = |name: &str, qtype: &str| dig(s, &[name, qtype, "+dnssec", "+tries=1", "+time=8"]);
    let status = |out: &str| {
        let at = out.find("status: ").expect("status") + 8;
        out[at..at + out[at..].find(',').expect("comma")].to_string()
    };
    let ad = |out: &str| {
        let line = out
            .lines()
            .find(|l| l.contains(";; flags:"))
            .expect("flags");
        line.split(';')
            .nth(2)
            .is_some_and(|f| f.split_whitespace().any(|x| x == "ad"))
    };

    // A signed answer: secure, with its RRSIG.
    let out = ask("www.secure.test", "A");
    assert_eq!(status(&out), "NOERROR", "{out}\n{}", dnsveil.log());
    assert!(ad(&out), "no AD: {out}\n{}", dnsveil.log());
    assert!(out.contains("192.0.2.1") && out.contains("RRSIG"), "{out}");
    // The DS of secure.test came with test.'s referral to it: the validator's lookup for it was
    // answered from what the recursor kept, without asking test.'s server again.
    let ds_lookup = dnsveil
        .log()
        .lines()
        .find(|l| {
            l.contains("resolved") && l.contains("name=secure.test") && l.contains("qtype=DS")
        })
        .map(str::to_string);
    assert!(
        ds_lookup
            .as_deref()
            .is_some_and(|l| l.contains("upstream_queries=0")),
        "the DS lookup asked again: {ds_lookup:?}\n{}",
        dnsveil.log()
    );
    // A signed denial: the NSEC records the recursor kept prove it.
    let out = ask("none.secure.test", "A");
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(ad(&out), "denial not proven: {out}");
    // The DS comes from the parent's servers and is secure.
    let out = ask("secure.test", "DS");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(ad(&out) && out.contains("\tDS\t"), "{out}");
    // A DS that matches no key: bogus, SERVFAIL.
    let out = ask("www.bogus.test", "A");
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    // No DS: insecure, answered without AD.
    let out = ask("www.plain.test", "A");
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(!ad(&out) && out.contains("192.0.2.3"), "{out}");
}
