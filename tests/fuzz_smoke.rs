//! Runs the bodies of the cargo-fuzz targets (fuzz/fuzz_targets, bodies in
//! `dnsveil::wire::fuzzing` and `dnsveil::dnssec::fuzzing`) on stable Rust: over the committed seeds, then over ~20,000
//! deterministic mutations of them per target. Real fuzzing (`cargo +nightly fuzz run message`)
//! goes much further; this keeps the targets compiling and their properties checked in CI.

use std::fs;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use dnsveil::wire::edns::ede;
use dnsveil::wire::{fuzzing, parse_record_line, Edns, EdnsOption, Message, Name, RType};

const MUTATIONS: usize = 20_000;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<Vec<u8>> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| fs::read(e.expect("dir entry").path()).expect("seed file"))
        .collect();
    out.sort();
    assert!(out.len() >= 3, "too few seeds in {}", dir.display());
    out
}

/// Zone lines of every type the codec knows, to build rich messages and text inputs from.
const LINES: &[&str] = &[
    "router.lan. 300 IN A 192.168.1.1",
    "v6.lan AAAA 2001:db8::1",
    "lan NS ns1.lan.",
    "www.lan CNAME router.lan.",
    "old.lan DNAME new.lan.",
    "1.1.168.192.in-addr.arpa PTR router.lan.",
    "lan SOA ns1.lan. admin.lan. 1 7200 3600 1209600 300",
    "lan MX 10 mail.lan.",
    r#"lan TXT "v=spf1 -all" "a \"quoted\" \\ string" "\000\255""#,
    "_sip._udp.lan SRV 0 5 5060 sip.lan.",
    r#"lan CAA 128 issue "ca.example.net; account=1""#,
    r#"_dns.lan SVCB 1 dot.lan. mandatory=alpn alpn="dot,h\\,2" port=853 ipv4hint=192.0.2.1 ech="AAEC" ipv6hint=::1 key65000="x""#,
    "lan HTTPS 0 alias.lan.",
    "lan DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118",
    "lan DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==",
    "lan RRSIG A 13 2 300 20300101000000 20200101000000 4242 lan. dGVzdA==",
    "lan NSEC \\000.lan. A NS SOA MX RRSIG NSEC DNSKEY TYPE65535",
    "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.lan NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr A RRSIG",
    "lan NSEC3PARAM 1 0 0 -",
    "x.lan TYPE65280 \\# 4 0a0b0c0d",
    "x.lan HINFO \\# 6 02504302 4f53",
];

/// Messages built by our own encoder that hold every record type, EDNS options and compression.
fn rich_messages() -> Vec<Vec<u8>> {
    let records: Vec<_> = LINES
        .iter()
        .map(|l| parse_record_line(l, 60).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let mut out = Vec::new();
    for (i, chunk) in records.chunks(4).enumerate() {
        let mut m = Message::query("www.lan".parse::<Name>().expect("name"), RType::A);
        m.header.id = i as u16;
        m.header.response = true;
        m.answers = chunk.to_vec();
        m.authority = records[..2].to_vec();
        m.additional = records[records.len() - 2..].to_vec();
        let mut e = Edns {
            dnssec_ok: true,
            ..Edns::default()
        };
        e.options.push(EdnsOption::Cookie {
            client: [1; 8],
            server: Box::new([2; 16]),
        });
        e.options.push(EdnsOption::Padding(3));
        e.add_extended_error(ede::STALE_ANSWER, "stale");
        m.edns = Some(e);
        out.push(m.encode().expect("encode"));
    }
    out
}

/// One random change: flip, overwrite, insert, delete, truncate, duplicate or splice.
fn mutate(rng: &mut StdRng, input: &[u8], pool: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = v.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                v[i] = *[0u8, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff]
                    .get(rng.gen_range(0..8))
                    .unwrap_or(&0);
            }
            2 => {
                let i = rng.gen_range(0..=len);
                let b: u8 = rng.gen();
                v.insert(i, b);
            }
            3 if len > 0 => {
                let i = rng.gen_range(0..len);
                let n = rng.gen_range(1..=(len - i).min(8));
                v.drain(i..i + n);
            }
            4 if len > 0 => v.truncate(rng.gen_range(0..len)),
            5 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..len);
                let chunk = v[a..=b].to_vec();
                let at = rng.gen_range(0..=v.len());
                v.splice(at..at, chunk);
            }
            6 => {
                let other = &pool[rng.gen_range(0..pool.len())];
                let cut = rng.gen_range(0..=v.len());
                let from = rng.gen_range(0..=other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            7 => {
                let word = dict[rng.gen_range(0..dict.len())];
                let at = rng.gen_range(0..=v.len());
                v.splice(at..at, word.iter().copied());
            }
            // Counts and flags live in the header: poke them directly.
            _ if len >= 12 => {
                let i = rng.gen_range(2..12);
                v[i] = rng.gen_range(0..4);
            }
            _ => {}
        }
    }
    v
}

fn run(target: fn(&[u8]), pool: &[Vec<u8>], dict: &[&[u8]], seed: u64) {
    for input in pool {
        target(input);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..MUTATIONS {
        let base = &pool[rng.gen_range(0..pool.len())];
        let input = mutate(&mut rng, base, pool, dict);
        target(&input);
    }
}

const WIRE_DICT: &[&[u8]] = &[
    &[0xC0, 12],
    &[0xC0, 0],
    &[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0],
    &[0, 46],
    &[0, 47],
    &[0, 50],
    &[0, 64],
    &[0, 65],
    &[0, 1, 0, 1],
    &[0, 16, 0, 1, 0, 0, 0, 60, 0, 1, 0],
    &[0xff, 0xff],
];

#[test]
fn message_target_on_seeds_and_mutations() {
    let mut pool = seeds("message");
    for s in &pool {
        // The seeds are well-formed, so the round trip is really exercised.
        Message::parse(s).expect("message seed parses");
    }
    pool.extend(rich_messages());
    run(fuzzing::message, &pool, WIRE_DICT, 1);
}

#[test]
fn query_view_target_on_seeds_and_mutations() {
    let mut pool = seeds("query_view");
    pool.extend(rich_messages());
    let views = pool
        .iter()
        .filter(|s| dnsveil::wire::QueryView::parse(s).is_ok())
        .count();
    assert!(views >= 2, "the seeds should include simple queries");
    run(fuzzing::query_view, &pool, WIRE_DICT, 2);
}

#[test]
fn simple_answer_target_on_seeds_and_mutations() {
    let mut pool = seeds("simple_answer");
    let accepted = pool
        .iter()
        .filter(|s| {
            let Ok(m) = Message::parse(s) else {
                return false;
            };
            let q = m.question().expect("seed has a question");
            dnsveil::wire::simple::check(s, m.header.id, m.header.opcode, q).is_some()
        })
        .count();
    assert!(accepted >= 3, "the seeds should include simple answers");
    pool.extend(rich_messages());
    run(fuzzing::simple_answer, &pool, WIRE_DICT, 11);
}

#[test]
fn zone_line_target_on_seeds_and_mutations() {
    let mut pool = seeds("zone_line");
    for s in &pool {
        let line = std::str::from_utf8(s).expect("seed is text");
        parse_record_line(line, 60).unwrap_or_else(|e| panic!("seed {line:?}: {e}"));
    }
    pool.extend(LINES.iter().map(|l| l.as_bytes().to_vec()));
    let dict: &[&[u8]] = &[
        b" ",
        b"\"",
        b"\\",
        b"\\#",
        b"\\0",
        b"\\255",
        b";",
        b"(",
        b")",
        b".",
        b"=",
        b",",
        b"-",
        b" IN ",
        b" 300 ",
        b" A ",
        b" TXT ",
        b" SVCB ",
        b" NSEC ",
        b"alpn=",
        b"key7=",
        b"\xc3\xa9",
        b"mandatory=",
        b"@",
        b"$",
        b"1h",
        b"99999999999",
        br"\034",
        br#"\""#,
        br"\.",
        br"\092",
    ];
    run(fuzzing::zone_line, &pool, dict, 3);
}

const TEXT_DICT: &[&[u8]] = &[
    b" ",
    b"\t",
    b"\n",
    b"\r\n",
    b"#",
    b"# ",
    b"*",
    b"-",
    b"/",
    b"/128",
    b"/32",
    b"/56",
    b"0 ",
    b"-1 ",
    b"99999999999999999999",
    b"duid ",
    b"broken\\x20",
    b"192.168.1.1",
    b"fd00::1",
    b"::ffff:1.2.3.4",
    b"fe80::1%eth0",
    b"\xc3\xa9",
    b"\xff",
    b"a.b.",
    b"..",
];

#[test]
fn hosts_target_on_seeds_and_mutations() {
    run(dnsveil::hosts::fuzz_hosts, &seeds("hosts"), TEXT_DICT, 4);
}

#[test]
fn leases_target_on_seeds_and_mutations() {
    let pool = seeds("leases");
    run(dnsveil::hosts::leases::fuzz_leases, &pool, TEXT_DICT, 5);
}

#[test]
fn referral_target_on_seeds_and_mutations() {
    let mut pool = seeds("referral");
    for s in &pool {
        Message::parse(s).expect("referral seed parses");
    }
    pool.extend(rich_messages());
    run(dnsveil::recursor::fuzzing::referral, &pool, WIRE_DICT, 6);
}

#[test]
fn answer_case_target_on_seeds_and_mutations() {
    let mut pool = seeds("answer_case");
    pool.extend(rich_messages());
    run(dnsveil::recursor::fuzzing::answer_case, &pool, WIRE_DICT, 8);
}

#[test]
fn blocklist_target_on_seeds_and_mutations() {
    let pool = seeds("blocklist");
    let dict: &[&[u8]] = &[
        b"\n",
        b"\r\n",
        b" ",
        b"\t",
        b"0.0.0.0 ",
        b"127.0.0.1 ",
        b":: ",
        b"||",
        b"^",
        b"@@",
        b"$important",
        b"*.",
        b".",
        b"#",
        b"!",
        b"\xc3\xa9",
        b"\xff",
        &[0xC0, 12],
        &[3, b'c', b'o', b'm', 0],
    ];
    run(dnsveil::block::fuzz_blocklist, &pool, dict, 4);
}

#[test]
fn netlink_target_on_seeds_and_mutations() {
    let pool = seeds("netlink");
    let dict: &[&[u8]] = &[
        &[20, 0],
        &[21, 0],
        &[16, 0],
        &[24, 0],
        &[3, 0],
        &[4, 0],
        &[8, 0, 2, 0],
        &[0xff, 0xff, 0, 0],
        &[0, 0, 0, 0],
    ];
    run(dnsveil::upstream::netwatch::fuzz_netlink, &pool, dict, 6);
}

#[test]
fn resolv_conf_target_on_seeds_and_mutations() {
    let pool = seeds("resolv_conf");
    let dict: &[&[u8]] = &[
        b"nameserver ",
        b"\n",
        b"%",
        b"::",
        b"127.0.0.1",
        b"fe80::1%lo",
        b"#",
        b" ",
        b"\xff",
    ];
    run(dnsveil::upstream::network::fuzz_resolv_conf, &pool, dict, 7);
}

#[test]
fn dnssec_records_target_on_seeds_and_mutations() {
    let mut pool = seeds("dnssec_records");
    pool.extend(rich_messages());
    run(dnsveil::dnssec::fuzzing::records, &pool, WIRE_DICT, 8);
}

#[test]
fn trust_anchors_target_on_seeds_and_mutations() {
    let pool = seeds("trust_anchors");
    for s in &pool {
        let text = std::str::from_utf8(s).expect("seed is text");
        dnsveil::dnssec::TrustAnchors::parse(text, Path::new("seed"))
            .unwrap_or_else(|e| panic!("seed {text:?}: {e}"));
    }
    let dict: &[&[u8]] = &[
        b" ",
        b"(",
        b")",
        b";",
        b"\n",
        b" IN ",
        b" DS ",
        b" DNSKEY ",
        b" 257 3 8 ",
        b" 256 ",
        b"$TTL ",
        b".",
        b"0",
        b"F",
        b"=",
    ];
    run(dnsveil::dnssec::fuzzing::anchors, &pool, dict, 9);
}

#[test]
fn dot_frames_target_on_seeds_and_mutations() {
    let pool = seeds("dot_frames");
    let dict: &[&[u8]] = &[&[0, 0], &[0, 12], &[0xff, 0xff], &[0x40, 0], &[0, 1, 0]];
    run(dnsveil::upstream::frames::fuzz_frames, &pool, dict, 6);
}
