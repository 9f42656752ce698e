//! Blocking through the real binary: each list format, subdomains, allow lists over block lists,
//! NXDOMAIN and null answers with Extended DNS Error 15 naming the list, CNAME cloaking, list URLs
//! fetched from a local HTTPS server (the host resolved through dnsveil's own chain), the last
//! good copy used when a fetch fails, reload on SIGHUP, `dnsveil why`, and configuration errors.
//! nsd serves the zone behind dnsveil.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod harness;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dnsveil::wire::edns::ede;
use dnsveil::wire::{Edns, Message, Name, RData, RType, Rcode};
use harness::*;

const ZONE: &str = "$ORIGIN example.\n$TTL 300\n\
@ IN SOA ns1 hostmaster 1 3600 900 604800 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n\
www IN A 192.0.2.1\nsub.www IN A 192.0.2.2\nmail IN A 192.0.2.25\nplain IN A 192.0.2.6\n\
deep.plain IN A 192.0.2.7\nads IN A 192.0.2.3\nx.ads IN A 192.0.2.4\nok.ads IN A 192.0.2.5\n\
cloak IN CNAME trk\ntrk IN A 192.0.2.9\nfine IN A 192.0.2.10\n";

/// Asks `server` over UDP with EDNS (so Extended DNS Errors come back) and parses the answer.
fn ask(server: SocketAddr, name: &str, qtype: RType) -> Message {
    let mut q = Message::query(name.parse::<Name>().unwrap(), qtype);
    q.header.id = 0x4242;
    q.edns = Some(Edns::default());
    let reply = udp_exchange(server, &q.encode().unwrap()).expect("an answer");
    Message::parse(&reply).unwrap()
}

/// The Extended DNS Error 15 text of `m`, if it has one.
fn blocked_text(m: &Message) -> Option<String> {
    m.edns
        .as_ref()?
        .extended_errors()
        .find(|(code, _)| *code == ede::BLOCKED)
        .map(|(_, text)| text.to_string())
}

fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(ip) => Some(ip.to_string()),
            RData::Aaaa(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect()
}

/// Checks that `name` is answered NXDOMAIN with EDE 15 whose text names `list`.
fn assert_blocked(server: SocketAddr, name: &str, list: &str) {
    let m = ask(server, name, RType::A);
    assert_eq!(m.rcode(), Rcode::NXDOMAIN, "{name}: {m:?}");
    let text = blocked_text(&m).unwrap_or_else(|| panic!("{name}: no EDE 15: {m:?}"));
    assert!(text.contains(list), "{name}: {text:?} does not name {list}");
    assert_eq!(m.header.id, 0x4242);
}

/// Checks that `name` gets nsd's answer.
fn assert_answered(server: SocketAddr, name: &str, addr: &str) {
    let m = ask(server, name, RType::A);
    assert_eq!(m.rcode(), Rcode::NOERROR, "{name}: {m:?}");
    assert_eq!(blocked_text(&m), None, "{name}");
    assert!(addresses(&m).contains(&addr.to_string()), "{name}: {m:?}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn every_list_format_blocks_its_names_and_their_subdomains() {
    let nsd = Nsd::start(&[("example", ZONE.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(
        dir.path(),
        "hosts.txt",
        "# hosts format\n127.0.0.1 localhost\n0.0.0.0 www.example\n192.168.1.1 fine.example\n",
    );
    let plain = write(dir.path(), "plain.txt", "plain.example\n");
    let adblock = write(
        dir.path(),
        "adblock.txt",
        "! adblock\n||ads.example^\n@@||ok.ads.example^\n##.banner\n",
    );
    let d = Dnsveil::forwarding(
        dir.path(),
        nsd.addr,
        "",
        &[
            "--blocklist",
            &hosts,
            "--blocklist",
            &plain,
            "--blocklist",
            &adblock,
        ],
    );
    let server = d.udp_addr();
    assert_blocked(server, "www.example", "hosts.txt");
    assert_blocked(server, "sub.www.example", "hosts.txt");
    assert_blocked(server, "WWW.Example", "hosts.txt");
    assert_blocked(server, "plain.example", "plain.txt");
    assert_blocked(server, "deep.plain.example", "plain.txt");
    assert_blocked(server, "ads.example", "adblock.txt");
    assert_blocked(server, "x.ads.example", "adblock.txt");
    // The `@@` exception wins; a redirecting hosts line is not a block; the rest is forwarded.
    assert_answered(server, "ok.ads.example", "192.0.2.5");
    assert_answered(server, "fine.example", "192.0.2.10");
    assert_answered(server, "mail.example", "192.0.2.25");
    // The client keeps its spelling of the name, over TCP too (the same fast path).
    let mut q = Message::query("Sub.WWW.example".parse::<Name>().unwrap(), RType::AAAA);
    q.header.id = 7;
    let reply = tcp_exchange(d.tcp_addr(), &q.encode().unwrap()).unwrap();
    let m = Message::parse(&reply).unwrap();
    assert_eq!(m.rcode(), Rcode::NXDOMAIN);
    assert_eq!(m.questions[0].name.to_string(), "Sub.WWW.example.");
    // No EDNS in the query: no OPT record in the answer.
    assert!(m.edns.is_none());
    // Unusable lines are counted and reported, not fatal.
    assert!(
        d.wait_logged("block list lines skipped", Duration::from_secs(5)),
        "{}",
        d.log()
    );
    assert!(d.log().contains("blocked=3 allowed=1"), "{}", d.log());
}

#[test]
fn allow_lists_win_and_null_answers_carry_the_unspecified_address() {
    let nsd = Nsd::start(&[("example", ZONE.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), "block.txt", "example\n");
    let allow = write(dir.path(), "allow.txt", "mail.example\n||fine.example^\n");
    let d = Dnsveil::forwarding(
        dir.path(),
        nsd.addr,
        "[block]\nanswer = \"null\"\nttl = 42\n",
        &["--blocklist", &block, "--allowlist", &allow],
    );
    let server = d.udp_addr();
    assert_answered(server, "mail.example", "192.0.2.25");
    assert_answered(server, "fine.example", "192.0.2.10");
    let a = ask(server, "www.example", RType::A);
    assert_eq!(a.rcode(), Rcode::NOERROR);
    assert_eq!(addresses(&a), ["0.0.0.0"]);
    assert_eq!(a.answers[0].ttl, 42);
    assert!(blocked_text(&a).unwrap().contains("block.txt"));
    let aaaa = ask(server, "www.example", RType::AAAA);
    assert_eq!(addresses(&aaaa), ["::"]);
    let mx = ask(server, "www.example", RType::MX);
    assert_eq!((mx.rcode(), mx.answers.len()), (Rcode::NOERROR, 0));
    assert!(blocked_text(&mx).is_some());
}

#[test]
fn a_cname_into_a_blocked_name_is_blocked_fresh_and_cached() {
    let nsd = Nsd::start(&[("example", ZONE.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), "trackers.txt", "||trk.example^\n");
    let d = Dnsveil::forwarding(dir.path(), nsd.addr, "", &["--blocklist", &block]);
    let server = d.udp_addr();
    // First from the upstream (slow path), then from the cache (fast path).
    for round in 0..2 {
        let m = ask(server, "cloak.example", RType::A);
        assert_eq!(m.rcode(), Rcode::NXDOMAIN, "round {round}: {m:?}");
        let text = blocked_text(&m).unwrap();
        assert!(text.contains("CNAME target trk.example"), "{text}");
        assert!(text.contains("trackers.txt"), "{text}");
    }
    assert_answered(server, "www.example", "192.0.2.1");
}

#[test]
fn sighup_reloads_a_changed_list_without_a_restart_and_it_applies_to_cached_answers() {
    let nsd = Nsd::start(&[("example", ZONE.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), "list.txt", "www.example\n");
    let d = Dnsveil::forwarding(dir.path(), nsd.addr, "", &["--blocklist", &block]);
    let server = d.udp_addr();
    assert_blocked(server, "www.example", "list.txt");
    // Cached, then answered from the cache (checked against the lists and marked as checked).
    for _ in 0..3 {
        assert_answered(server, "mail.example", "192.0.2.25");
        assert_answered(server, "cloak.example", "192.0.2.9");
    }
    write(dir.path(), "list.txt", "mail.example\ntrk.example\n");
    d.signal("HUP");
    assert!(
        d.wait_logged("block lists reloaded", Duration::from_secs(10)),
        "{}",
        d.log()
    );
    // Both still cached: the reload applies to them at once.
    for _ in 0..2 {
        assert_blocked(server, "mail.example", "list.txt");
        let m = ask(server, "cloak.example", RType::A);
        assert_eq!(m.rcode(), Rcode::NXDOMAIN, "{m:?}");
        let text = blocked_text(&m).unwrap();
        assert!(text.contains("CNAME target trk.example"), "{text}");
    }
    // www.example was answered blocked before, and the cache held that answer under the old
    // lists: it is not served again; the name goes to nsd.
    for _ in 0..2 {
        assert_answered(server, "www.example", "192.0.2.1");
    }
}

/// Blocked answers asked again are answered from the cache (the blocked answer is stored there as
/// a local answer): the metrics and the query log count them as local answers, never as cache
/// hits; a client without EDNS gets no OPT record, so no Extended DNS Error, and TCP the same.
#[test]
fn blocked_answers_asked_again_are_local_answers_in_the_metrics_and_the_log() {
    let nsd = Nsd::start(&[("example", ZONE.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), "list.txt", "ads.example\n");
    let d = Dnsveil::forwarding(
        dir.path(),
        nsd.addr,
        "",
        &[
            "--blocklist",
            &block,
            "--metrics",
            "127.0.0.1:0",
            "--log-queries",
        ],
    );
    let metrics = d.logged_addr("metrics endpoint listening");
    let server = d.udp_addr();
    for _ in 0..4 {
        assert_blocked(server, "x.ads.example", "list.txt");
    }
    let plain =
        Message::parse(&udp_exchange(server, &query_bytes("x.ads.example", RType::A, 9)).unwrap())
            .unwrap();
    assert_eq!((plain.rcode(), plain.header.id), (Rcode::NXDOMAIN, 9));
    assert!(plain.edns.is_none(), "{plain:?}");
    let tcp = Message::parse(
        &tcp_exchange(d.tcp_addr(), &query_bytes("X.Ads.Example", RType::A, 10)).unwrap(),
    )
    .unwrap();
    assert_eq!(tcp.rcode(), Rcode::NXDOMAIN);
    assert_eq!(tcp.questions[0].name.to_string(), "X.Ads.Example.");

    let response = http_get(metrics, "/metrics");
    let text = response.split_once("\r\n\r\n").unwrap().1;
    let a = |source: &str| {
        sample(
            text,
            &format!("dnsveil_answers_total{{source=\"{source}\"}}"),
        )
    };
    assert_eq!((a("local"), a("cache")), (6.0, 0.0), "{text}");
    assert_eq!(sample(text, "dnsveil_cache_hits_total"), 0.0);
    assert!(
        d.wait_logged_times("source=\"local\"", 6, Duration::from_secs(10)),
        "{}",
        d.log()
    );
    let log = d.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("qname=x.ads.example"))
        .collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert!(
        lines.iter().all(|l| l.contains("source=\"local\"")),
        "{log}"
    );
}

/// A config reload applies `block.answer` and `block.ttl` at once, to blocked answers the cache
/// already holds too.
#[test]
fn a_config_reload_changes_the_answer_mode_of_cached_blocked_answers() {
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), "list.txt", "ads.example\n");
    let config = |answer: &str, ttl: u32| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[hosts]\nfile = \"\"\n\
             [upstream]\nservers = [\"udp://127.0.0.1:9\"]\n\
             [block]\nlists = [\"{block}\"]\nanswer = \"{answer}\"\nttl = {ttl}\n"
        )
    };
    let conf = write(dir.path(), "dnsveil.toml", &config("nxdomain", 10));
    let d = Dnsveil::start(&["--config", &conf]);
    let server = d.udp_addr();
    for _ in 0..3 {
        assert_blocked(server, "ads.example", "list.txt");
    }
    write(dir.path(), "dnsveil.toml", &config("null", 42));
    d.signal("HUP");
    assert!(
        d.wait_logged("configuration reloaded", Duration::from_secs(10)),
        "{}",
        d.log()
    );
    assert!(!d.log().contains("needs a restart"), "{}", d.log());
    for _ in 0..3 {
        let m = ask(server, "ads.example", RType::A);
        assert_eq!(m.rcode(), Rcode::NOERROR, "{m:?}");
        assert_eq!(addresses(&m), ["0.0.0.0"]);
        assert_eq!(m.answers[0].ttl, 42);
        assert!(blocked_text(&m).unwrap().contains("list.txt"));
    }
}

/// A list URL whose host (`dns.test`) only dnsveil's own chain can resolve (a local record), on an
/// HTTPS server with the test CA: fetched, its copy kept; then, with the server failing and the
/// copy out of date, a new dnsveil still blocks from the copy.
#[test]
fn list_urls_are_fetched_over_https_and_the_last_good_copy_survives_a_failed_fetch() {
    let nsd = Nsd::start(&[("example", ZONE.to_string())]);
    let pki = support::tls::Pki::generate();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body: support::tls::ListBody =
        Arc::new(Mutex::new(Some(b"0.0.0.0 www.example\n".to_vec())));
    let server = runtime.block_on(support::tls::list_server(&pki.good, body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let url = format!("https://dns.test:{}/hosts.txt", server.addr.port());
    let config = format!(
        "[hosts]\nrecords = [\"dns.test. 60 IN A 127.0.0.1\"]\n\
         [block]\nlists = [\"{url}\"]\nca_file = \"{}\"\ncache_dir = \"{}\"\n",
        pki.ca_file.display(),
        copies.display()
    );
    {
        let d = Dnsveil::forwarding(dir.path(), nsd.addr, &config, &[]);
        // Not fetched yet at start: the list is empty until the fetch and the reload after it.
        assert!(d.log().contains("not fetched yet"), "{}", d.log());
        assert!(
            d.wait_logged("block list fetched", Duration::from_secs(20)),
            "{}",
            d.log()
        );
        assert!(
            d.wait_logged("block lists reloaded", Duration::from_secs(10)),
            "{}",
            d.log()
        );
        assert_blocked(d.udp_addr(), "www.example", &url);
        assert_eq!(server.queries(), 1);
    }
    let copy = std::fs::read_dir(&copies)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(std::fs::read(&copy).unwrap(), b"0.0.0.0 www.example\n");

    // The server fails from now on; the copy is two days old, so the next start fetches at once.
    *body.lock().unwrap() = None;
    let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let d = Dnsveil::forwarding(dir.path(), nsd.addr, &config, &[]);
    assert!(
        d.wait_logged("keeping the last good copy", Duration::from_secs(20)),
        "{}",
        d.log()
    );
    assert!(d.log().contains("503"), "{}", d.log());
    assert_eq!(server.queries(), 2);
    assert_blocked(d.udp_addr(), "www.example", &url);
    assert_eq!(std::fs::read(&copy).unwrap(), b"0.0.0.0 www.example\n");
}

fn dnsveil(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn why_names_the_list_the_line_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let block = write(dir.path(), "ads.txt", "# ads\n\n||ads.example^\n");
    let allow = write(dir.path(), "allow.txt", "ok.ads.example\n");
    let (code, out, err) = dnsveil(&[
        "why",
        "X.Ads.Example",
        "--blocklist",
        &block,
        "--allowlist",
        &allow,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("x.ads.example: blocked\n"), "{out}");
    assert!(
        out.contains(&format!("\"||ads.example^\" (list {block}, line 3")),
        "{out}"
    );
    let (_, out, _) = dnsveil(&[
        "why",
        "y.ok.ads.example",
        "--blocklist",
        &block,
        "--allowlist",
        &allow,
    ]);
    assert!(out.starts_with("y.ok.ads.example: allowed"), "{out}");
    assert!(out.contains(&format!("(list {allow}, line 1")), "{out}");
    let (_, out, _) = dnsveil(&["why", "example", "--blocklist", &block]);
    assert!(out.starts_with("example: not blocked"), "{out}");
    // From a config file, as run reads it.
    let conf = write(dir.path(), "c.toml", "[block]\nlists = [\"ads.txt\"]\n");
    let (code, out, _) = dnsveil(&["why", "ads.example", "--config", &conf]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("ads.example: blocked"), "{out}");
}

#[test]
fn a_missing_list_or_a_bad_block_key_is_a_config_error_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    let conf = write(
        dir.path(),
        "c.toml",
        &format!(
            "[upstream]\nservers = [\"udp://127.0.0.1:9\"]\n[block]\nlists = [\"{}\"]\n",
            missing.display()
        ),
    );
    let (code, _, err) = dnsveil(&["run", "--config", &conf, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("block.lists[0]") && err.contains("nope.txt"),
        "{err}"
    );
    let (code, _, err) = dnsveil(&["check-config", &conf]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("block.lists[0]"), "{err}");

    for (toml, key) in [
        ("answer = \"refused\"", "block.answer"),
        ("lists = [\"http://lists.example/x\"]", "block.lists[0]"),
        ("ttl = -1", "block.ttl"),
        ("refresh_secs = 5", "block.refresh_secs"),
        ("colour = 1", "colour"),
    ] {
        let conf = write(
            dir.path(),
            "bad.toml",
            &format!("[upstream]\nservers = [\"udp://127.0.0.1:9\"]\n[block]\n{toml}\n"),
        );
        let (code, _, err) = dnsveil(&["check-config", &conf]);
        assert_eq!(code, Some(1), "{toml}: {err}");
        assert!(err.contains(key), "{toml}: {err}");
        let (code, _, err) = dnsveil(&["run", "--config", &conf, "--listen", "127.0.0.1:0"]);
        assert_eq!(code, Some(78), "{toml}: {err}");
    }
    // A URL list needs a usable directory for its last good copy.
    let file = write(dir.path(), "plainfile", "");
    let conf = write(
        dir.path(),
        "dir.toml",
        &format!(
            "[upstream]\nservers = [\"udp://127.0.0.1:9\"]\n[block]\nlists = [\"https://lists.example/l\"]\ncache_dir = \"{file}/sub\"\n"
        ),
    );
    let (code, _, err) = dnsveil(&["check-config", &conf]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("block.cache_dir"), "{err}");
    let (code, _, _) = dnsveil(&["run", "--config", &conf, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(78));
}
