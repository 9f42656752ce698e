//! `dnsveil query`: the real binary asking in-process DoT and DoH servers (with the committed test
//! PKI) and nsd over plain DNS, all on loopback.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

mod harness;
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use harness::{test_zone, Nsd};
use support::tls::{doh_server, dot_server, DohMode, DotMode, Pki};

fn ca_file() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs/test/ca.pem")
        .display()
        .to_string()
}

fn dnsveil_query(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .arg("query")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run dnsveil query")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A multi-threaded runtime for the in-process servers while the test thread runs the binary.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn asks_a_dot_upstream_and_prints_like_dig() {
    let rt = runtime();
    let pki = Pki::committed();
    let server = rt.block_on(dot_server(&pki.good, DotMode::Answer));
    let url = format!("tls://127.0.0.1:{}", server.addr.port());
    let out = dnsveil_query(&[
        "example.com",
        "AAAA",
        "--upstream",
        &url,
        "--ca",
        &ca_file(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    assert!(
        text.starts_with(";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: "),
        "{text}"
    );
    assert!(
        text.contains(";; flags: qr rd ra; QUERY: 1, ANSWER: 0"),
        "{text}"
    );
    assert!(
        text.contains(";; QUESTION SECTION:\n;example.com.\t\tIN\tAAAA\n"),
        "{text}"
    );
    assert!(text.contains("\n;; Query time: "), "{text}");
    assert!(
        text.trim_end().ends_with(&format!(";; SERVER: {url}")),
        "{text}"
    );
    assert_eq!(server.queries(), 1);

    // A host name with a bootstrap address; NXDOMAIN is an answer too (exit 0).
    let url = format!("tls://dns.test:{}", server.addr.port());
    let out = dnsveil_query(&[
        "nx.example.com",
        "--upstream",
        &url,
        "--ca-file",
        &ca_file(),
        "--bootstrap",
        "127.0.0.1",
        "--dnssec",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("status: NXDOMAIN"), "{text}");
    assert!(text.contains(";nx.example.com.\t\tIN\tA\n"), "{text}");
    assert!(text.contains("; EDNS: version: 0, flags: do;"), "{text}");
    assert_eq!(server.queries(), 2);
}

#[test]
fn asks_a_doh_upstream() {
    let rt = runtime();
    let pki = Pki::committed();
    let server = rt.block_on(doh_server(&pki.good, DohMode::Answer));
    let url = format!("https://127.0.0.1:{}/dns-query", server.server.addr.port());
    let out = dnsveil_query(&["example.org", "TXT", "--upstream", &url, "--ca", &ca_file()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(text.contains(";example.org.\t\tIN\tTXT"), "{text}");
    assert!(text.contains(&format!(";; SERVER: {url}")), "{text}");
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
}

#[test]
fn failures_exit_1_with_the_reason() {
    let rt = runtime();
    let pki = Pki::committed();
    let server = rt.block_on(dot_server(&pki.good, DotMode::Answer));
    // Without the test CA the certificate is not trusted: refused, nothing asked.
    let url = format!("tls://127.0.0.1:{}", server.addr.port());
    let out = dnsveil_query(&["example.com", "--upstream", &url, "--timeout-ms", "2000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("query failed: TLS error"), "{err}");
    assert_eq!(server.queries(), 0);

    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("tls://127.0.0.1:{port}");
    let out = dnsveil_query(&["example.com", "--upstream", &url, "--ca", &ca_file()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("query failed"), "{}", stderr(&out));

    // A host name without a bootstrap address cannot be reached without plaintext DNS.
    let out = dnsveil_query(&["example.com", "--upstream", "tls://dns.test"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad upstream configuration"),
        "{}",
        stderr(&out)
    );

    // Usage errors are clap's exit status 2.
    for args in [
        &["example.com", "--ca", "/tmp/ca.pem"][..],
        &["example.com", "NOTATYPE"][..],
        &["bad..name"][..],
    ] {
        let out = dnsveil_query(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn prints_records_from_a_plain_upstream_over_udp_and_tcp() {
    let nsd = Nsd::start(&[("example.test", test_zone("example.test"))]);
    let url = format!("udp://{}", nsd.addr);
    for extra in [&[][..], &["--tcp"][..]] {
        let mut args = vec!["www.example.test", "A", "--upstream", &url];
        args.extend_from_slice(extra);
        let out = dnsveil_query(&args);
        let text = stdout(&out);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            text.contains(";; ANSWER SECTION:\nwww.example.test.\t300\tIN\tA\t192.0.2.1\n"),
            "{extra:?}: {text}"
        );
        assert!(text.contains("flags: qr aa rd"), "{text}");
        let server = if extra.is_empty() {
            url.clone()
        } else {
            url.replace("udp://", "tcp://")
        };
        assert!(text.contains(&format!(";; SERVER: {server}\n")), "{text}");
    }
    let out = dnsveil_query(&["example.test", "MX", "--upstream", &url]);
    assert!(
        stdout(&out).contains("example.test.\t300\tIN\tMX\t10 mail.example.test.\n"),
        "{}",
        stdout(&out)
    );
    let out = dnsveil_query(&["nothing.example.test", "A", "--upstream", &url]);
    let text = stdout(&out);
    assert!(text.contains("status: NXDOMAIN"), "{text}");
    assert!(
        text.contains(";; AUTHORITY SECTION:\nexample.test.\t"),
        "{text}"
    );
    assert!(
        text.contains("\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 "),
        "{text}"
    );
}

#[test]
fn prints_an_extended_dns_error_with_its_registry_name() {
    use dnsveil::wire::edns::ede;
    use dnsveil::wire::{Message, Rcode};

    // A one-shot UDP upstream that answers SERVFAIL with EDE 27, a code RFC 8914 itself does not
    // list (the registry added it later, RFC 9276).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("udp://{}", sock.local_addr().unwrap());
    let upstream = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        let query = Message::parse(&buf[..n]).unwrap();
        let mut answer = Message::response_to(&query);
        answer.set_rcode(Rcode::SERVFAIL);
        answer
            .edns
            .as_mut()
            .unwrap()
            .add_extended_error(ede::UNSUPPORTED_NSEC3_ITERATIONS_VALUE, "150 iterations");
        sock.send_to(&answer.encode().unwrap(), from).unwrap();
    });
    let out = dnsveil_query(&["example.test", "A", "--upstream", &url]);
    upstream.join().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("status: SERVFAIL"), "{text}");
    assert!(
        text.contains("\n; EDE: 27 (Unsupported NSEC3 Iterations Value): (150 iterations)\n"),
        "{text}"
    );
}
