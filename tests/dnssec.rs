//! DNSSEC validation end to end, against zones signed by software we did not write: a hierarchy
//! under a test anchor `test.` is signed at test time with ldns-signzone (keys from ldns-keygen),
//! served by nsd, and the real dnsveil binary forwards to it with `--dnssec validate` and
//! `--trust-anchor` naming the DS of `test.`. Each child zone is one case: good zones with
//! several algorithms and NSEC or NSEC3, and the bogus and insecure variants the issue lists.
//! Answers are read with dig.

mod harness;

use std::net::SocketAddr;
use std::process::Command;

use harness::daemons::{cert_file, Unbound};
use harness::signing::{ds, keygen, sign};
use harness::{dig, Dnsveil, Nsd};

/// A zone to sign (or not) and how.
struct Zone {
    /// The label under `test.`.
    name: &'static str,
    /// Records below the apex (the SOA and NS are added).
    body: &'static str,
    /// ldns-keygen algorithm, or None for an unsigned zone.
    algorithm: Option<&'static str>,
    /// Extra ldns-signzone options (NSEC3, validity window).
    sign_args: Vec<String>,
    /// What the parent publishes for it.
    ds: Ds,
    /// Applied to the signed text before it is served (tampering).
    edit: fn(String) -> String,
    /// DNSKEYs added before signing that share the real key's tag but match no signature
    /// (KeyTrap, CVE-2023-50387).
    colliding_keys: usize,
}

#[derive(PartialEq)]
enum Ds {
    /// The DS of its key.
    Real,
    /// No DS: an insecure delegation.
    None,
    /// A DS whose digest matches no key.
    Wrong,
    /// The DS of a key the zone is never signed with (the zone is served unsigned).
    OfUnusedKey,
}

fn keep(s: String) -> String {
    s
}

fn apex(zone: &str) -> String {
    format!(
        "$TTL 3600\n{zone}. IN SOA ns.{zone}. admin.{zone}. 1 3600 900 604800 300\n{zone}. IN NS ns.{zone}.\nns.{zone}. IN A 127.0.0.1\n"
    )
}

/// A date ldns-signzone takes, `days` from now.
fn date(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    (now + days * 86_400).to_string()
}

/// The test hierarchy, signed and served; dnsveil validating in front of it.
struct Hierarchy {
    nsd: Nsd,
    /// The non-validating recursor in between, when there is one.
    _unbound: Option<Unbound>,
    dnsveil: Dnsveil,
    anchor: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// How dnsveil reaches the hierarchy.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// Straight to nsd over plain UDP (nsd serves every zone, DS from the parent's side).
    Nsd,
    /// Over DNS-over-TLS to unbound with only its iterator module (no validation), which
    /// forwards `test.` to nsd and passes the DNSSEC records through.
    UnboundDot,
}

impl Hierarchy {
    fn start(extra: &[&str]) -> Hierarchy {
        Hierarchy::start_via(Via::Nsd, extra)
    }

    fn start_via(via: Via, extra: &[&str]) -> Hierarchy {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let zones = zones();
        let mut parent_body = String::new();
        let mut served: Vec<(String, String)> = Vec::new();
        for z in &zones {
            let name = format!("{}.test", z.name);
            parent_body.push_str(&format!(
                "{name}. IN NS ns.{name}.\nns.{name}. IN A 127.0.0.1\n"
            ));
            let text = format!("{}{}\n", apex(&name), z.body);
            let zone_text = match z.algorithm {
                Some(alg) => {
                    let base = keygen(d, &name, alg);
                    let mut text = text;
                    if z.colliding_keys > 0 {
                        let key =
                            std::fs::read_to_string(d.join(format!("{base}.key"))).expect("key");
                        text.push_str(&colliding_keys(&key, z.colliding_keys));
                    }
                    let signed = sign(d, &name, &text, &base, &z.sign_args);
                    let ds = ds(d, &base);
                    match z.ds {
                        Ds::Real => parent_body.push_str(&ds),
                        Ds::Wrong => {
                            // Flip the last digest digit.
                            let mut ds = ds.trim_end().to_string();
                            let last = ds.pop().expect("digest");
                            ds.push(if last == '0' { '1' } else { '0' });
                            parent_body.push_str(&ds);
                            parent_body.push('\n');
                        }
                        Ds::None | Ds::OfUnusedKey => {}
                    }
                    (z.edit)(signed)
                }
                None => {
                    if z.ds == Ds::OfUnusedKey {
                        let base = keygen(d, &name, "ECDSAP256SHA256");
                        let ds = ds(d, &base);
                        parent_body.push_str(&ds);
                    }
                    text
                }
            };
            served.push((name, zone_text));
        }
        // A wildcard CNAME in the anchor zone into a name a child zone denies: the answer's
        // authority then holds proofs of two zones that are both above the final name.
        parent_body.push_str("*.chain.test. IN CNAME nx.secure.test.\n");
        let base = keygen(d, "test", "ECDSAP256SHA256");
        let parent = sign(
            d,
            "test",
            &format!("{}{parent_body}", apex("test")),
            &base,
            &[],
        );
        let anchor = d.join("anchor.txt");
        std::fs::copy(d.join(format!("{base}.ds")), &anchor).expect("anchor");
        served.push(("test".into(), parent));
        let refs: Vec<(&str, String)> = served
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let nsd = Nsd::start(&refs);
        let unbound =
            (via == Via::UnboundDot).then(|| Unbound::start("test", nsd.addr, "www.secure.test"));
        let upstream = match &unbound {
            Some(u) => format!("tls://{}", u.dot),
            None => format!("udp://{}", nsd.addr),
        };
        let ca = cert_file("ca.pem");
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--hosts",
            "",
            "--trust-anchor",
            anchor.to_str().expect("utf-8"),
        ];
        if unbound.is_some() {
            args.extend(["--ca-file", &ca]);
        }
        if !extra.contains(&"--dnssec") {
            args.extend(["--dnssec", "validate"]);
        }
        args.extend_from_slice(extra);
        let dnsveil = Dnsveil::start(&args);
        Hierarchy {
            nsd,
            _unbound: unbound,
            dnsveil,
            anchor,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.dnsveil.udp[0]
    }

    /// dig's answer to `name type` with DO set (and more flags).
    fn ask(&self, name: &str, qtype: &str, flags: &[&str]) -> Answer {
        let mut args = vec![name, qtype, "+dnssec", "+tries=1", "+time=5"];
        args.extend_from_slice(flags);
        Answer(dig(self.addr(), &args))
    }
}

/// dig's output.
struct Answer(String);

impl Answer {
    fn status(&self) -> &str {
        let at = self.0.find("status: ").expect("status line") + 8;
        let rest = &self.0[at..];
        &rest[..rest.find(',').expect("comma")]
    }

    fn ad(&self) -> bool {
        let line = self
            .0
            .lines()
            .find(|l| l.contains(";; flags:"))
            .expect("flags line");
        let flags = &line[line.find(";; flags:").expect("flags") + 9..];
        let flags = &flags[..flags.find(';').unwrap_or(flags.len())];
        flags.split_whitespace().any(|f| f == "ad")
    }

    /// The EDE info code, if dig shows one.
    fn ede(&self) -> Option<u16> {
        let at = self.0.find("; EDE: ")? + 7;
        let rest = &self.0[at..];
        rest[..rest.find(|c: char| !c.is_ascii_digit())?]
            .parse()
            .ok()
    }

    fn has(&self, text: &str) -> bool {
        self.0.contains(text)
    }
}

fn zones() -> Vec<Zone> {
    let z = |name, body, algorithm, sign_args: Vec<String>, ds| Zone {
        name,
        body,
        algorithm,
        sign_args,
        ds,
        edit: keep,
        colliding_keys: 0,
    };
    let nsec3 = |iterations: &str| {
        vec![
            "-n".to_string(),
            "-t".into(),
            iterations.into(),
            "-s".into(),
            "ab".into(),
        ]
    };
    vec![
        z(
            "secure",
            "www IN A 192.0.2.1\n*.wild IN TXT \"wild\"\nalias IN CNAME www\nout IN CNAME www.insecure.test.\n*.chain IN CNAME nx.nsec3.test.\n",
            Some("ECDSAP256SHA256"),
            vec![],
            Ds::Real,
        ),
        z("rsa", "www IN A 192.0.2.8\n", Some("RSASHA256"), vec![], Ds::Real),
        z("ed", "www IN A 192.0.2.15\n", Some("ED25519"), vec![], Ds::Real),
        z(
            "nsec3",
            "www IN A 192.0.2.3\n*.wild IN TXT \"wild\"\n",
            Some("ECDSAP256SHA256"),
            nsec3("0"),
            Ds::Real,
        ),
        z("highiter", "www IN A 192.0.2.4\n", Some("ECDSAP256SHA256"), nsec3("100"), Ds::Real),
        z("insecure", "www IN A 192.0.2.5\n", None, vec![], Ds::None),
        z("badds", "www IN A 192.0.2.6\n", Some("ECDSAP256SHA256"), vec![], Ds::Wrong),
        z("unsigned", "www IN A 192.0.2.7\n", None, vec![], Ds::OfUnusedKey),
        z(
            "expired",
            "www IN A 192.0.2.9\n",
            Some("ECDSAP256SHA256"),
            vec!["-i".into(), date(-30), "-e".into(), date(-2)],
            Ds::Real,
        ),
        z(
            "future",
            "www IN A 192.0.2.10\n",
            Some("ECDSAP256SHA256"),
            vec!["-i".into(), date(10), "-e".into(), date(40)],
            Ds::Real,
        ),
        z("sha1", "www IN A 192.0.2.11\n", Some("RSASHA1"), vec![], Ds::Real),
        Zone {
            edit: |s| without_type(&s, "NSEC"),
            ..z(
                "noproof",
                "www IN A 192.0.2.12\n*.wild IN TXT \"wild\"\n",
                Some("ECDSAP256SHA256"),
                vec![],
                Ds::Real,
            )
        },
        Zone {
            // The A record's data changed after signing.
            edit: |s| s.replace("192.0.2.13", "192.0.2.66"),
            ..z("tampered", "www IN A 192.0.2.13\n", Some("ECDSAP256SHA256"), vec![], Ds::Real)
        },
        Zone {
            colliding_keys: 9,
            ..z("keytrap", "www IN A 192.0.2.16\n", Some("ECDSAP256SHA256"), vec![], Ds::Real)
        },
        Zone {
            // One character of the A record's signature changed.
            edit: tamper_signature,
            ..z("badsig", "www IN A 192.0.2.14\n", Some("ED25519"), vec![], Ds::Real)
        },
    ]
}

/// `n` DNSKEY records with the tag of the key in `key_file` (ldns-keygen's `.key` line) and
/// other public keys: the first octet changed, the last two searched until the tag matches.
fn colliding_keys(key_file: &str, n: usize) -> String {
    use base64::Engine as _;
    let line = key_file
        .lines()
        .find(|l| l.contains("DNSKEY"))
        .expect("DNSKEY line");
    // ldns-keygen ends the line with a comment (`;{id = ...}`).
    let line = line.split(';').next().expect("record");
    let f: Vec<&str> = line.split_whitespace().collect();
    let at = f.iter().position(|x| *x == "DNSKEY").expect("type");
    let (flags, alg): (u16, u8) = (
        f[at + 1].parse().expect("flags"),
        f[at + 3].parse().expect("alg"),
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let real = b64.decode(f[at + 4..].concat()).expect("base64 key");
    let rdata = |key: &[u8]| [&flags.to_be_bytes()[..], &[3, alg], key].concat();
    let tag = dnsveil::dnssec::key::key_tag(&rdata(&real));
    let mut out = String::new();
    for i in 0..n {
        let mut key = real.clone();
        key[0] ^= (i + 1) as u8;
        // The tag sums the RDATA as 16-bit words (RFC 4034 appendix B): with the last two octets
        // zero, the sum is short of what the tag needs by an amount those two octets can add.
        let last = key.len() - 2;
        key[last..].copy_from_slice(&[0, 0]);
        let base: u32 = rdata(&key)
            .chunks(2)
            .map(|p| (u32::from(p[0]) << 8) + u32::from(*p.get(1).unwrap_or(&0)))
            .sum();
        let w = [base >> 16, (base >> 16) + 1]
            .into_iter()
            .map(|k| k * 65536 + ((u32::from(tag) + 65536 - (k & 0xffff)) & 0xffff))
            .find(|ac| *ac >= base && *ac - base <= 0xffff)
            .expect("a reachable sum")
            - base;
        if (4 + last) % 2 == 0 {
            key[last..].copy_from_slice(&(w as u16).to_be_bytes());
        } else {
            key[last] = (w & 0xff) as u8;
            key[last + 1] = (w >> 8) as u8;
        }
        assert_eq!(
            dnsveil::dnssec::key::key_tag(&rdata(&key)),
            tag,
            "colliding key"
        );
        out.push_str(&format!(
            "{} IN DNSKEY {flags} 3 {alg} {}\n",
            f[0],
            b64.encode(&key)
        ));
    }
    out
}

/// The signed zone with one base64 character of the signature over `www ... A` changed.
fn tamper_signature(text: String) -> String {
    let mut done = false;
    let out = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if !done
                && f.first().is_some_and(|o| o.starts_with("www."))
                && f.get(3) == Some(&"RRSIG")
                && f.get(4) == Some(&"A")
            {
                done = true;
                let mut chars: Vec<char> = l.chars().collect();
                let i = chars.len() - 10;
                chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
                return chars.into_iter().collect::<String>() + "\n";
            }
            format!("{l}\n")
        })
        .collect();
    assert!(done, "no RRSIG over www A to tamper with");
    out
}

/// The zone text without the records of `rtype` and their RRSIGs.
fn without_type(text: &str, rtype: &str) -> String {
    text.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let is_type = f.get(3) == Some(&rtype);
            let is_sig = f.get(3) == Some(&"RRSIG") && f.get(4) == Some(&rtype);
            !(is_type || is_sig)
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn validates_a_signed_hierarchy_and_rejects_its_bogus_variants() {
    check_hierarchy(&Hierarchy::start(&[]));
}

/// The same checks through a non-validating recursor reached over DNS-over-TLS: DO=1 and CD=1
/// queries, DS and DNSKEY over the same encrypted upstream.
#[test]
fn validates_through_a_non_validating_recursor_over_dot() {
    let h = Hierarchy::start_via(Via::UnboundDot, &[]);
    check_hierarchy(&h);
    // A recursor follows a chain across zones: a wildcard CNAME in secure.test (its proof signed
    // by secure.test) to a name nsec3.test denies (its proof signed by nsec3.test), both proofs
    // in one authority section.
    let a = h.ask("a.chain.secure.test", "A", &[]);
    assert_eq!(a.status(), "NXDOMAIN", "{}", a.0);
    assert!(a.ad(), "{}", a.0);
    let a = h.ask("b.chain.test", "A", &[]);
    assert_eq!(a.status(), "NXDOMAIN", "{}", a.0);
    assert!(a.ad(), "{}", a.0);
}

fn check_hierarchy(h: &Hierarchy) {
    // Secure answers over three algorithms, NSEC and NSEC3: AD set for a DO client.
    for name in [
        "www.secure.test",
        "www.rsa.test",
        "www.ed.test",
        "www.nsec3.test",
    ] {
        let a = h.ask(name, "A", &[]);
        assert_eq!(a.status(), "NOERROR", "{name}: {}", a.0);
        assert!(a.ad(), "{name} should be secure: {}", a.0);
        assert!(a.has("RRSIG"), "{name}: DO client gets signatures: {}", a.0);
    }
    // Secure denials: NXDOMAIN and NODATA, with NSEC and with NSEC3.
    for (name, qtype, status) in [
        ("nx.secure.test", "A", "NXDOMAIN"),
        ("www.secure.test", "TXT", "NOERROR"),
        ("nx.nsec3.test", "A", "NXDOMAIN"),
        ("www.nsec3.test", "MX", "NOERROR"),
    ] {
        let a = h.ask(name, qtype, &[]);
        assert_eq!(a.status(), status, "{name} {qtype}: {}", a.0);
        assert!(a.ad(), "{name} {qtype} should be a secure denial: {}", a.0);
    }
    // Wildcard answers with their proofs.
    for name in ["a.wild.secure.test", "b.wild.nsec3.test"] {
        let a = h.ask(name, "TXT", &[]);
        assert_eq!(a.status(), "NOERROR", "{name}: {}", a.0);
        assert!(a.ad(), "{name}: {}", a.0);
    }
    // A CNAME inside a signed zone is secure.
    let a = h.ask("alias.secure.test", "A", &[]);
    assert!(a.ad() && a.status() == "NOERROR", "{}", a.0);

    // An insecure delegation: answered, no AD, no EDE.
    let a = h.ask("www.insecure.test", "A", &[]);
    assert_eq!(a.status(), "NOERROR", "{}", a.0);
    assert!(!a.ad(), "{}", a.0);
    assert!(a.has("192.0.2.5"), "{}", a.0);
    // Secure CNAME into an insecure zone: answered, not secure.
    let a = h.ask("out.secure.test", "A", &[]);
    assert_eq!(a.status(), "NOERROR", "{}", a.0);
    assert!(!a.ad(), "{}", a.0);

    // Insecure for reasons a client should hear: SHA-1 algorithm (EDE 1), NSEC3 iterations (EDE 27).
    let a = h.ask("www.sha1.test", "A", &[]);
    assert_eq!(a.status(), "NOERROR", "{}", a.0);
    assert!(!a.ad(), "{}", a.0);
    assert_eq!(a.ede(), Some(1), "{}", a.0);
    let a = h.ask("nx.highiter.test", "A", &[]);
    assert_eq!(a.status(), "NXDOMAIN", "{}", a.0);
    assert!(!a.ad(), "{}", a.0);
    assert_eq!(a.ede(), Some(27), "{}", a.0);

    // Bogus: SERVFAIL with the EDE that says why.
    for (name, qtype, ede) in [
        ("www.badds.test", "A", 9),
        ("www.unsigned.test", "A", 9),
        ("www.expired.test", "A", 7),
        ("www.future.test", "A", 8),
        ("www.tampered.test", "A", 6),
        ("www.badsig.test", "A", 6),
        ("nx.noproof.test", "A", 12),
        ("a.wild.noproof.test", "TXT", 12),
    ] {
        let a = h.ask(name, qtype, &[]);
        assert_eq!(a.status(), "SERVFAIL", "{name} should be bogus: {}", a.0);
        assert_eq!(a.ede(), Some(ede), "{name}: {}", a.0);
        // A client that validates for itself (CD) gets the data, without AD.
        let cd = h.ask(name, qtype, &["+cd"]);
        assert_ne!(cd.status(), "SERVFAIL", "{name} with CD: {}", cd.0);
        assert!(!cd.ad(), "{name} with CD: {}", cd.0);
    }

    // A client without DO gets no DNSSEC records, and AD only if it asks with AD.
    let plain = Answer(dig(
        h.addr(),
        &["www.secure.test", "A", "+tries=1", "+noadflag"],
    ));
    assert!(!plain.has("RRSIG"), "{}", plain.0);
    assert!(!plain.ad(), "{}", plain.0);
    let with_ad = Answer(dig(
        h.addr(),
        &["www.secure.test", "A", "+tries=1", "+adflag"],
    ));
    assert!(with_ad.ad() && !with_ad.has("RRSIG"), "{}", with_ad.0);
}

#[test]
fn an_insecure_domain_is_not_validated() {
    let h = Hierarchy::start(&["--insecure-domain", "badds.test"]);
    let a = h.ask("www.badds.test", "A", &[]);
    assert_eq!(a.status(), "NOERROR", "{}", a.0);
    assert!(!a.ad(), "{}", a.0);
    // Others still are.
    assert_eq!(h.ask("www.expired.test", "A", &[]).status(), "SERVFAIL");
    assert!(h.ask("www.secure.test", "A", &[]).ad());
}

#[test]
fn dnssec_off_passes_bogus_answers() {
    let h = Hierarchy::start(&["--dnssec", "off"]);
    let a = h.ask("www.tampered.test", "A", &[]);
    assert_eq!(a.status(), "NOERROR", "{}", a.0);
}

#[test]
fn query_shows_the_verdict() {
    let h = Hierarchy::start(&[]);
    let upstream = format!("udp://{}", h.nsd.addr);
    let query = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_dnsveil"))
            .args([
                "query",
                name,
                "A",
                "--upstream",
                &upstream,
                "--trust-anchor",
            ])
            .arg(&h.anchor)
            .args(["--dnssec", "validate"])
            .output()
            .expect("run dnsveil query")
    };
    let out = query("www.secure.test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(";; DNSSEC: secure\n"), "{text}");
    assert!(text.contains("192.0.2.1"), "{text}");

    let out = query("www.sha1.test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(";; DNSSEC: insecure (EDE 1 "), "{text}");

    // Bogus: the data as the upstream gave it, the reason, and exit status 1.
    let out = query("www.expired.test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(";; DNSSEC: bogus (EDE 7 "), "{text}");
    assert!(text.contains("192.0.2.9"), "{text}");
}

/// RFC 8198: once a secure NSEC denial is known, other names in the range it proves empty are
/// denied without the upstream (here paused, so any query to it would go unanswered).
#[test]
fn names_in_a_validated_nsec_range_are_denied_without_the_upstream() {
    let h = Hierarchy::start(&[]);
    // nx and nz both sort between ns and out; the apex NSEC covers *.secure.test.
    let first = h.ask("nx.secure.test", "A", &[]);
    assert_eq!(first.status(), "NXDOMAIN", "{}", first.0);
    assert!(first.ad(), "{}", first.0);
    let nodata = h.ask("www.secure.test", "TXT", &[]);
    assert!(nodata.ad() && nodata.status() == "NOERROR", "{}", nodata.0);

    h.nsd.pause();
    let second = h.ask("nz.secure.test", "A", &[]);
    assert_eq!(second.status(), "NXDOMAIN", "{}", second.0);
    assert!(second.ad(), "{}", second.0);
    assert!(
        second.has("NSEC"),
        "the proof is in the answer: {}",
        second.0
    );
    let other_type = h.ask("www.secure.test", "MX", &[]);
    assert_eq!(other_type.status(), "NOERROR", "{}", other_type.0);
    assert!(other_type.ad(), "{}", other_type.0);
    // zzz sorts after www, in the range of the NSEC at www (seen in the NODATA) that wraps to the
    // apex.
    let wrapped = h.ask("zzz.secure.test", "A", &[]);
    assert!(
        wrapped.ad() && wrapped.status() == "NXDOMAIN",
        "{}",
        wrapped.0
    );
    // A name the known ranges do not cover (b: between alias and ns) still needs the upstream.
    let uncovered = h.ask("b.secure.test", "A", &["+time=8"]);
    assert_eq!(uncovered.status(), "SERVFAIL", "{}", uncovered.0);
    h.nsd.resume();
}

/// The same with NSEC3 (hashed names): once the zone's ranges are known from a few secure
/// denials, other names are denied without the upstream.
#[test]
fn names_in_validated_nsec3_ranges_are_denied_without_the_upstream() {
    let h = Hierarchy::start(&[]);
    // nsec3.test has five names (apex, ns, www, wild, *.wild), so five hashed ranges: forty
    // names visit them all but for a very small one (whose chance to be hit later is as small).
    for i in 0..40 {
        let a = h.ask(&format!("nx{i}.nsec3.test"), "A", &[]);
        assert!(a.ad() && a.status() == "NXDOMAIN", "{}", a.0);
    }
    let nodata = h.ask("www.nsec3.test", "TXT", &[]);
    assert!(nodata.ad() && nodata.status() == "NOERROR", "{}", nodata.0);

    h.nsd.pause();
    let mut denied = 0;
    for i in 0..10 {
        let a = h.ask(&format!("other{i}.nsec3.test"), "A", &["+time=8"]);
        if a.status() == "NXDOMAIN" {
            assert!(a.ad() && a.has("NSEC3"), "{}", a.0);
            denied += 1;
        }
    }
    let other_type = h.ask("www.nsec3.test", "MX", &["+time=8"]);
    h.nsd.resume();
    assert!(
        denied >= 9,
        "only {denied} of 10 names denied from the known ranges"
    );
    assert!(
        other_type.ad() && other_type.status() == "NOERROR",
        "{}",
        other_type.0
    );
}

/// KeyTrap (CVE-2023-50387): ten DNSKEYs share one key tag and only one is real. At most two keys
/// per tag are tried, so the answer comes at once, and the process keeps answering. Whether the
/// real key is among the two tried depends on the order nsd lists the keys in: secure if it is,
/// bogus ("DNSKEY Missing": no key the DS names verified) if not.
#[test]
fn many_keys_with_one_tag_cost_two_verifications_not_ten() {
    let h = Hierarchy::start(&[]);
    let keys = dig(h.nsd.addr, &["keytrap.test", "DNSKEY", "+short"]);
    let first_two: Vec<&str> = keys.lines().take(2).collect();
    let real_tried = {
        let dir = std::fs::read_dir(h._dir.path()).expect("dir");
        let key_file = dir
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.to_string_lossy().contains("Kkeytrap.test.")
                    && p.extension().is_some_and(|e| e == "key")
            })
            .expect("key file");
        let text = std::fs::read_to_string(key_file).expect("key");
        let rdata = text.split("DNSKEY").nth(1).expect("rdata");
        let real_b64: String = rdata
            .split(';')
            .next()
            .expect("rdata")
            .split_whitespace()
            .skip(3)
            .collect();
        first_two
            .iter()
            .any(|l| l.split_whitespace().skip(3).collect::<String>() == real_b64)
    };
    let start = std::time::Instant::now();
    let a = h.ask("www.keytrap.test", "A", &[]);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    if real_tried {
        assert!(a.ad() && a.status() == "NOERROR", "{}", a.0);
    } else {
        assert_eq!(a.status(), "SERVFAIL", "{}", a.0);
        assert_eq!(a.ede(), Some(9), "{}", a.0);
    }
    assert!(h.ask("www.secure.test", "A", &[]).ad(), "still serving");
}
