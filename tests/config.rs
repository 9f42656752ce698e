//! Config and command-line tests: the embedded default and every shipped example parse; bad configs
//! fail naming the right key; the README documents every knob; the binary's exit codes and signals.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dnsveil::config::{knob, Config, ConfigError, Strategy, EMBEDDED_DEFAULT};
use dnsveil::upstream::UpstreamUrl;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml", Path::new("/"))
}

#[test]
fn embedded_default_is_loopback_with_encrypted_bootstrapped_upstreams() {
    let c = Config::embedded().expect("embedded default parses");
    c.check_runnable().expect("embedded default is runnable");
    assert!(c
        .server
        .listen
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 53));
    assert!(
        c.server.listen.iter().any(|a| a.is_ipv4()) && c.server.listen.iter().any(|a| a.is_ipv6())
    );
    assert!(!c.server.allow.is_empty());
    for cidr in &c.server.allow {
        assert!(cidr.addr().is_loopback(), "{cidr} is not loopback");
    }
    assert_eq!(c.hosts.file, Some(PathBuf::from("/etc/hosts")));
    assert!(c.cache.size > 0);
    let urls: Vec<String> = c
        .upstream
        .servers
        .iter()
        .map(|s| s.url.to_string())
        .collect();
    for want in [
        "https://cloudflare-dns.com:443/dns-query",
        "tls://one.one.one.one:853",
        "tls://dns.quad9.net:853",
        "https://dns.quad9.net:443/dns-query",
    ] {
        assert!(
            urls.iter().any(|u| u == want),
            "{want} missing from {urls:?}"
        );
    }
    for s in &c.upstream.servers {
        assert!(s.url.is_encrypted(), "{} is not encrypted", s.url);
        assert!(!s.connect_addrs().is_empty(), "{} has no addresses", s.url);
    }
    let quad9 = c
        .upstream
        .servers
        .iter()
        .find(|s| matches!(&s.url, UpstreamUrl::Tls { host, .. } if host == "dns.quad9.net"))
        .unwrap();
    assert!(quad9
        .connect_addrs()
        .contains(&"9.9.9.9:853".parse().unwrap()));
    assert_eq!(c.upstream.strategy, Strategy::Fastest);
    assert!(!c.log.queries, "per-query logging must be off by default");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn every_shipped_example_parses() {
    let mut files = vec![root().join("src/config/default.toml")];
    for dir in ["packaging", "examples"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 2, "no example configs found: {files:?}");
    for f in &files {
        let c = Config::load(f).unwrap_or_else(|e| panic!("{e}"));
        c.check_runnable()
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert_eq!(
        std::fs::read_to_string(root().join("src/config/default.toml")).unwrap(),
        EMBEDDED_DEFAULT
    );
}

/// The example is the packaged /etc/dnsveil/dnsveil.toml: no live forwarding rule or local
/// record (they would send a stranger's LAN names to 192.168.1.1), and its commented examples
/// parse once uncommented.
#[test]
fn the_full_example_sets_every_section() {
    let path = root().join("packaging/dnsveil.toml");
    let c = Config::load(&path).unwrap();
    assert!(c.forward.is_empty());
    assert!(c.hosts.records.is_empty());
    assert!(c.upstream.servers.len() >= 2);

    let text = std::fs::read_to_string(&path).unwrap();
    let mut uncommented = String::new();
    for line in text.lines() {
        let line = match line.strip_prefix("# ") {
            Some(l)
                if l == "[[forward]]"
                    || l.starts_with("domains = ")
                    || l.starts_with("upstreams = ") =>
            {
                l
            }
            _ => line,
        };
        let line = match line.strip_prefix("#   ") {
            Some(l)
                if l.starts_with("records = ") || l.starts_with("    \"") || l.starts_with(']') =>
            {
                l
            }
            _ => line,
        };
        if line.trim() == "records = []" {
            continue;
        }
        uncommented.push_str(line);
        uncommented.push('\n');
    }
    let c = Config::from_toml(&uncommented, "uncommented", &root().join("packaging")).unwrap();
    // The router, the VPN and the network's own resolvers.
    assert_eq!(c.forward.len(), 3);
    assert_eq!(
        c.forward[0].domains[0].to_string().trim_end_matches('.'),
        "lan"
    );
    assert_eq!(c.hosts.records.len(), 2);
    assert!(c.upstream.servers.len() >= 2);
    // The example states the defaults of the router keys.
    let d = Config::from_toml("", "empty", Path::new("/")).unwrap();
    assert_eq!(c.server.rate_limit, d.server.rate_limit);
    assert_eq!(c.server.open_resolver, d.server.open_resolver);
    assert_eq!(
        c.server.max_tcp_connections_per_client,
        d.server.max_tcp_connections_per_client
    );
    assert_eq!(c.dhcp, d.dhcp);
    assert_eq!(c.resolver.dnssec, dnsveil::config::DnssecMode::Validate);
}

#[test]
fn a_trust_anchor_file_that_does_not_parse_stops_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("anchors.txt");
    std::fs::write(&anchor, ". IN DS 20326 8 2 ABCD\n").unwrap();
    let conf = dir.path().join("dnsveil.toml");
    std::fs::write(
        &conf,
        "[upstream]\nservers = [\"udp://127.0.0.1:9\"]\n[hosts]\nfile = \"\"\n[resolver]\ntrust_anchor = \"anchors.txt\"\n",
    )
    .unwrap();
    rejected_by_both(
        &conf,
        &["resolver.trust_anchor", "anchors.txt:1", "DS digest"],
    );
}

/// (config text, key the error must name, text the message must contain)
const BAD: &[(&str, &str, &str)] = &[
    ("[server]\nlisten = [\"127.0.0.1:53\", \"127.0.0.1\"]", "server.listen[1]", "no port"),
    ("[server]\nlisten = [\"localhost:53\"]", "server.listen[0]", "not an address:port"),
    ("[server]\nlisten = [\"127.0.0.1:53\", \"127.0.0.1:53\"]", "server.listen[1]", "twice"),
    ("[server]\nlisten = []", "server.listen", "no listen address"),
    ("[server]\nallow = [\"10.0.0.0/33\"]", "server.allow[0]", "prefix"),
    ("[server]\nallow = []", "server.allow", "no client"),
    ("[server]\nthreads = -1", "server.threads", "expected 0 to 1024"),
    ("[server]\nthreads = \"4\"", "server.threads", "expected an integer"),
    ("[server]\nmax_udp_payload = 100", "server.max_udp_payload", "512 to 4096"),
    ("[server]\ntcp_idle_timeout_secs = 0", "server.tcp_idle_timeout_secs", "out of range"),
    ("[server]\nmax_tcp_connections = 0", "server.max_tcp_connections", "out of range"),
    ("[server]\nmax_tcp_pipeline = 5000", "server.max_tcp_pipeline", "out of range"),
    ("[server]\nmax_udp_inflight = 0", "server.max_udp_inflight", "out of range"),
    ("[server]\nrate_limit = -5", "server.rate_limit", "0 to 1000000"),
    ("[server]\nrate_limit_slip = 11", "server.rate_limit_slip", "0 to 10"),
    ("[server]\nrate_limit_ipv4_prefix = 33", "server.rate_limit_ipv4_prefix", "8 to 32"),
    ("[server]\nrate_limit_ipv6_prefix = 8", "server.rate_limit_ipv6_prefix", "16 to 128"),
    ("[server]\nmax_tcp_connections_per_client = 0", "server.max_tcp_connections_per_client", "out of range"),
    ("[server]\nopen_resolver = \"yes\"", "server.open_resolver", "expected a boolean"),
    ("[dhcp]\nformat = \"isc\"", "dhcp.format", "not a lease file format"),
    ("[dhcp]\ndomain = \".\"", "dhcp.domain", "root"),
    ("[dhcp]\ndomain = \"a..b\"", "dhcp.domain", "not a domain name"),
    ("[dhcp]\nleases = \"/tmp/x\"", "dhcp.leases", "unknown key"),
    ("[cache]\nmin_ttl = 600\nmax_ttl = 60", "cache.min_ttl", "max_ttl"),
    ("[cache]\nsize = 1.5", "cache.size", "expected an integer"),
    ("[cache]\nsize = -5", "cache.size", "out of range"),
    ("[cache]\nservfail_ttl = 301", "cache.servfail_ttl", "0 to 300"),
    ("[cache]\nnegative_max_ttl = 86401", "cache.negative_max_ttl", "out of range"),
    ("[cache]\nmax_ttl = 0", "cache.max_ttl", "out of range"),
    ("[cache]\nserve_stale = \"on\"", "cache.serve_stale", "boolean"),
    ("[cache]\nprefetch = 1", "cache.prefetch", "boolean"),
    ("[cache]\nstale_max_age = 0", "cache.stale_max_age", "expected 1 to 604800 seconds"),
    ("[cache]\nstale_max_age = 604801", "cache.stale_max_age", "out of range"),
    ("[cache]\nstale_answer_ttl = 0", "cache.stale_answer_ttl", "expected 1 to 300 seconds"),
    ("[cache]\nclient_timeout_ms = -1", "cache.client_timeout_ms", "0 to 60000 milliseconds"),
    ("[cache]\nclient_timeout_ms = 1.8", "cache.client_timeout_ms", "expected an integer"),
    ("[cache]\nsave_interval_secs = 86401", "cache.save_interval_secs", "out of range"),
    ("[cache]\ncache_file = 5", "cache.cache_file", "expected a string"),
    ("[cache]\nstale = true", "cache.stale", "unknown key"),
    ("[hosts]\nrecords = [\" \"]", "hosts.records[0]", "zone-file line"),
    (
        "[hosts]\nrecords = [\"a.lan A 10.0.0.1\", \"router.lan A 192.168.1.999\"]",
        "hosts.records[1]",
        "\"router.lan A 192.168.1.999\": bad presentation format: A record: \"192.168.1.999\" \
         is not an IPv4 address",
    ),
    ("[hosts]\nttl = 90000", "hosts.ttl", "out of range"),
    ("[resolver]\ndnssec = \"on\"", "resolver.dnssec", "expected \"validate\" or \"off\""),
    (
        "[resolver]\ntrust_anchor = \"/nonexistent/anchors.txt\"",
        "resolver.trust_anchor[0]",
        "DS or DNSKEY records",
    ),
    ("[resolver]\ninsecure_domains = [\"a..b\"]", "resolver.insecure_domains[0]", "not a domain name"),
    ("[resolver]\nvalidate = true", "resolver.validate", "unknown key"),
    ("[hosts]\nfile = 7", "hosts.file", "expected a string"),
    ("[upstream]\nservers = [\"dns.quad9.net\"]", "upstream.servers[0]", "not a URL"),
    ("[upstream]\nservers = [\"tls://dns.quad9.net\"]", "upstream.servers[0]", "bootstrap"),
    ("[upstream]\nservers = [\"udp://router.lan\"]", "upstream.servers[0]", "IP address"),
    ("[upstream]\nservers = [\"ftp://10.0.0.1\"]", "upstream.servers[0]", "unknown scheme"),
    (
        "[upstream]\nservers = [{ url = \"ftp://10.0.0.1\" }]",
        "upstream.servers[0].url",
        "unknown scheme",
    ),
    (
        "[upstream]\nservers = [{ url = \"udp://10.0.0.1\", bootstrap = [\"1.1.1.1\"] }]",
        "upstream.servers[0].bootstrap",
        "plain DNS",
    ),
    (
        "[upstream]\nservers = [{ url = \"tls://1.1.1.1\", bootstrap = [\"1.1.1.1\"] }]",
        "upstream.servers[0].bootstrap",
        "already names an IP",
    ),
    (
        "[upstream]\nservers = [{ url = \"tls://x.example\", bootstrap = [\"nope\"] }]",
        "upstream.servers[0].bootstrap[0]",
        "not an IP address",
    ),
    (
        "[upstream]\nservers = [{ url = \"tls://1.1.1.1\", pins = [\"abc\"] }]",
        "upstream.servers[0].pins[0]",
        "base64",
    ),
    (
        "[upstream]\nservers = [{ url = \"tcp://10.0.0.1\", pins = [\"QHSD5qwsK4PZb3aU+n7oKaoMD69Z7+yh2LvWDkwgGho=\"] }]",
        "upstream.servers[0].pins",
        "plain DNS",
    ),
    (
        "[upstream]\nservers = [{ url = \"tls://1.1.1.1\", ca_file = \"/nonexistent/ca.pem\" }]",
        "upstream.servers[0].ca_file",
        "/nonexistent/ca.pem",
    ),
    (
        "[upstream]\nservers = [{ url = \"tls://1.1.1.1\", method = \"get\" }]",
        "upstream.servers[0].method",
        "not https",
    ),
    (
        "[upstream]\nservers = [{ url = \"https://1.1.1.1/dns-query\", method = \"put\" }]",
        "upstream.servers[0].method",
        "\"post\" or \"get\"",
    ),
    (
        "[upstream]\nservers = [{ bootstrap = [\"1.1.1.1\"] }]",
        "upstream.servers[0]",
        "missing key `url`",
    ),
    ("[upstream]\nservers = [42]", "upstream.servers[0]", "URL string or a table"),
    ("[upstream]\nservers = \"udp://10.0.0.1\"", "upstream.servers", "expected a list"),
    (
        "[upstream]\nservers = [\"udp://10.0.0.1\", \"udp://10.0.0.1:53\"]",
        "upstream.servers[1]",
        "same as upstream.servers[0]",
    ),
    ("[upstream]\nstrategy = \"random\"", "upstream.strategy", "fastest, ordered or parallel"),
    ("[upstream]\ntimeout_ms = 50", "upstream.timeout_ms", "100 to 60000"),
    (
        "[[forward]]\ndomains = []\nupstreams = [\"udp://10.0.0.1\"]",
        "forward[0].domains",
        "empty",
    ),
    ("[[forward]]\nupstreams = [\"udp://10.0.0.1\"]", "forward[0]", "missing key `domains`"),
    (
        "[[forward]]\ndomains = [\".\"]\nupstreams = [\"udp://10.0.0.1\"]",
        "forward[0].domains[0]",
        "root",
    ),
    (
        "[[forward]]\ndomains = [\"a..b\"]\nupstreams = [\"udp://10.0.0.1\"]",
        "forward[0].domains[0]",
        "not a domain name",
    ),
    ("[[forward]]\ndomains = [\"lan\"]\nupstreams = []", "forward[0].upstreams", "empty"),
    (
        "[[forward]]\ndomains = [\"lan\"]\nupstreams = [\"udp://10.0.0.1\"]\n\
         [[forward]]\ndomains = [\"LAN.\"]\nupstreams = [\"udp://10.0.0.2\"]",
        "forward[1].domains[0]",
        "already routed by forward[0]",
    ),
    (
        "[[forward]]\ndomains = [\"lan\"]\nupstreams = [\"tls://router.lan\"]",
        "forward[0].upstreams[0]",
        "bootstrap",
    ),
    ("[log]\nlevel = \"verbose\"", "log.level", "error, warn, info, debug or trace"),
    ("[log]\nqueries = \"yes\"", "log.queries", "boolean"),
    // Unknown keys, at every level.
    ("colour = true", "colour", "unknown key `colour`"),
    ("[server]\nlistn = []", "server.listn", "unknown key `listn`"),
    ("[server]\nlog_queries = true", "server.log_queries", "unknown key"),
    ("[cache]\nsise = 10", "cache.sise", "unknown key"),
    ("[hosts]\nfiles = \"\"", "hosts.files", "unknown key"),
    ("[upstream]\nserver = []", "upstream.server", "unknown key"),
    (
        "[[upstream.servers]]\nurl = \"udp://10.0.0.1\"\nport = 53",
        "upstream.servers[0].port",
        "unknown key `port`",
    ),
    (
        "[[forward]]\ndomain = \"lan\"\ndomains = [\"lan\"]\nupstreams = [\"udp://10.0.0.1\"]",
        "forward[0].domain",
        "unknown key",
    ),
    ("[log]\nfile = \"/var/log/x\"", "log.file", "unknown key"),
];

#[test]
fn bad_configs_name_the_key_and_what_is_expected() {
    for (text, key, needle) in BAD {
        let err = match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert_eq!(err.key(), Some(*key), "wrong key for:\n{text}\n{msg}");
        assert!(
            msg.contains(needle),
            "{msg:?} lacks {needle:?} for:\n{text}"
        );
        assert!(msg.starts_with("test.toml: "), "{msg}");
    }
}

#[test]
fn syntax_errors_give_the_line() {
    let err = parse("[server]\nthreads = 2\nlisten = = 1\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{err}");
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("certs/test/ca.pem"), dir.path().join("ca.pem")).unwrap();
    let path = dir.path().join("dnsveil.toml");
    std::fs::write(
        &path,
        "[hosts]\nfile = \"hosts\"\n[upstream]\n\
         servers = [{ url = \"tls://dns.example\", bootstrap = [\"127.0.0.1\"], ca_file = \"ca.pem\" }]\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.hosts.file, Some(dir.path().join("hosts")));
    assert_eq!(
        c.upstream.servers[0].ca_file,
        Some(dir.path().join("ca.pem"))
    );
    assert_eq!(
        c.upstream.servers[0].connect_addrs(),
        vec!["127.0.0.1:853".parse().unwrap()]
    );
}

#[test]
fn cache_settings_parse_and_the_file_is_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnsveil.toml");
    std::fs::write(
        &path,
        "[cache]\nserve_stale = false\nprefetch = false\nstale_max_age = 3600\n\
         stale_answer_ttl = 10\nclient_timeout_ms = 0\ncache_file = \"state/cache.bin\"\n\
         save_interval_secs = 0\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap().cache;
    assert!(!c.serve_stale && !c.prefetch);
    assert_eq!((c.stale_max_age, c.stale_answer_ttl), (3600, 10));
    assert_eq!(c.client_timeout, Duration::ZERO);
    assert_eq!(c.file, Some(dir.path().join("state/cache.bin")));
    assert_eq!(c.save_interval, Duration::ZERO);
    assert_eq!(
        parse("[cache]\ncache_file = \"\"").unwrap().cache.file,
        None
    );
    let d = parse("").unwrap().cache;
    assert!(d.serve_stale && d.prefetch && d.file.is_none());
}

#[test]
fn cache_flags_replace_the_config() {
    let mut c = parse("[cache]\ncache_file = \"/var/lib/dnsveil/cache.bin\"").unwrap();
    c.apply(dnsveil::config::Overrides {
        serve_stale: Some(false),
        prefetch: Some(false),
        cache_file: Some(PathBuf::new()),
        ..Default::default()
    })
    .unwrap();
    assert!(!c.cache.serve_stale && !c.cache.prefetch);
    assert_eq!(c.cache.file, None);
    c.apply(dnsveil::config::Overrides {
        serve_stale: Some(true),
        cache_file: Some(PathBuf::from("/tmp/c.bin")),
        ..Default::default()
    })
    .unwrap();
    assert!(c.cache.serve_stale && !c.cache.prefetch);
    assert_eq!(c.cache.file, Some(PathBuf::from("/tmp/c.bin")));
}

#[test]
fn empty_hosts_file_disables_it() {
    assert_eq!(parse("[hosts]\nfile = \"\"").unwrap().hosts.file, None);
}

#[test]
fn readme_documents_every_knob() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for k in knob::ALL {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` ", k.key)))
            .unwrap_or_else(|| panic!("README has no table row for `{}`", k.key));
        assert!(
            row.contains(&format!("| {} |", k.default)),
            "default of {}: {row}",
            k.key
        );
        assert!(
            row.contains(&format!("{}–{}", k.min, k.max)),
            "range of {}: {row}",
            k.key
        );
    }
}

// --- The binary ---

fn dnsveil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dnsveil"));
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn version_prints_the_crate_version() {
    let out = dnsveil().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dnsveil {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_reports_ok_or_the_error() {
    let example = root().join("packaging/dnsveil.toml");
    let out = dnsveil()
        .arg("check-config")
        .arg(&example)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{}: ok\n", example.display())),
        "{stdout}"
    );
    assert!(stdout.contains("forwarding rules: 0"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = [\"127.0.0.1:53\", \"127.0.0.1\"]\n",
    )
    .unwrap();
    let out = dnsveil().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.listen[1]: \"127.0.0.1\" has no port"),
        "{stderr}"
    );

    let out = dnsveil()
        .arg("check-config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    let out = dnsveil().arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn run_rejects_bad_config_before_starting() {
    // No upstream anywhere: a clear error, exit 78, nothing started.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "[server]\nlisten = [\"127.0.0.1:0\"]\n").unwrap();
    let out = dnsveil()
        .arg("run")
        .arg("--config")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstream.servers: no upstream server is configured"),
        "{stderr}"
    );
    assert!(!stderr.contains("starting"), "{stderr}");

    // A flag error names the flag.
    let out = dnsveil()
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "https://dns.example/dns-query",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--upstream"));

    // Values clap can check itself are usage errors.
    for args in [
        &["run", "--listen", "127.0.0.1"][..],
        &["run", "--upstream", "ftp://x"],
        &["run", "--threads", "5000"],
        &["run", "--strategy", "random"],
        &["run", "--bootstrap", "dns.example"],
        &["run", "--serve-stale", "yes"],
        &["run", "--prefetch"],
        &["run", "--frobnicate"],
    ] {
        let out = dnsveil().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// Starts `run` on a free loopback port, waits for its start line, and stops it with SIGTERM.
#[test]
fn sigterm_shuts_down_gracefully() {
    let mut child = dnsveil()
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "udp://127.0.0.1:9",
            "--hosts",
            "",
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no start line; log so far: {log:#?}"));
        let started = line.contains("dnsveil starting");
        log.push(line);
        if started {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader thread ends (and the channel disconnects) when the child's stderr closes.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        log.push(line);
    }
    assert_eq!(exit.code(), Some(0), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("shutting down") && l.contains("SIGTERM")),
        "{log:#?}"
    );
}

/// Runs `dnsveil check-config FILE` and `dnsveil run --config FILE`: the first must fail and the
/// second exit 78, both before anything starts, each naming every one of `needles`.
fn rejected_by_both(file: &Path, needles: &[&str]) {
    let out = dnsveil()
        .arg("check-config")
        .arg(file)
        .output()
        .expect("dnsveil check-config runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "check-config accepted {}:\n{stdout}{stderr}",
        file.display()
    );
    for n in needles {
        assert!(stderr.contains(n), "check-config: {stderr:?} lacks {n:?}");
    }

    let out = dnsveil()
        .arg("run")
        .arg("--config")
        .arg(file)
        .output()
        .expect("dnsveil run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "run: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "run: {stderr:?} lacks {n:?}");
    }
    assert!(!stderr.contains("starting"), "run started: {stderr}");
}

/// The head of a config that would run (no hosts file, a plain loopback upstream) with `hosts`
/// and `upstream` sections of a test's own.
fn config_with(dir: &Path, name: &str, hosts: &str, upstream: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[server]\nlisten = [\"127.0.0.1:0\"]\n[hosts]\n{hosts}\n[upstream]\n{upstream}\n"),
    )
    .expect("config written");
    path
}

const LOOPBACK_UPSTREAM: &str = "servers = [\"udp://127.0.0.1:9\"]";

#[test]
fn a_local_record_that_does_not_parse_stops_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_with(
        dir.path(),
        "records.toml",
        "file = \"\"\nrecords = [\"ok.lan. 300 IN A 192.168.1.1\", \
         \"router.lan. 300 IN A 192.168.1.999\"]",
        LOOPBACK_UPSTREAM,
    );
    rejected_by_both(
        &file,
        &[
            "records.toml",
            "hosts.records[1]",
            "\"router.lan. 300 IN A 192.168.1.999\"",
            "not an IPv4 address",
        ],
    );
}

#[test]
fn a_hosts_file_that_cannot_be_read_stops_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("hostz");
    let file = config_with(
        dir.path(),
        "missing.toml",
        "file = \"hostz\"",
        LOOPBACK_UPSTREAM,
    );
    let shown = missing.display().to_string();
    let needles = [
        "hosts.file",
        shown.as_str(),
        "No such file or directory",
        "hosts.file = \"\"",
    ];
    rejected_by_both(&file, &needles);

    // A directory is not a hosts file either.
    let file = config_with(dir.path(), "dir.toml", "file = \".\"", LOOPBACK_UPSTREAM);
    rejected_by_both(&file, &["hosts.file", "Is a directory"]);

    // Nor is a missing file given on the command line.
    let fine = config_with(dir.path(), "fine.toml", "file = \"\"", LOOPBACK_UPSTREAM);
    let out = dnsveil()
        .arg("run")
        .arg("--config")
        .arg(&fine)
        .arg("--hosts")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains(&shown), "{stderr}");
    assert!(stderr.contains("--hosts \"\""), "{stderr}");
    assert!(!stderr.contains("starting"), "{stderr}");
}

#[test]
fn a_ca_file_that_is_no_certificate_stops_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    let file = config_with(
        dir.path(),
        "ca.toml",
        "file = \"\"",
        "servers = [\"udp://127.0.0.1:9\", { url = \"tls://127.0.0.1:853\", ca_file = \"ca.pem\" }]",
    );
    rejected_by_both(
        &file,
        &["upstream.servers[1].ca_file", "ca.pem", "no CERTIFICATE"],
    );

    // In a forwarding rule.
    let path = dir.path().join("forward.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[hosts]\nfile = \"\"\n[upstream]\n\
         servers = [\"udp://127.0.0.1:9\"]\n[[forward]]\ndomains = [\"lan\"]\n\
         upstreams = [{ url = \"tls://127.0.0.1:853\", ca_file = \"ca.pem\" }]\n",
    )
    .unwrap();
    rejected_by_both(
        &path,
        &[
            "forward[0].upstreams[0].ca_file",
            "ca.pem",
            "no CERTIFICATE",
        ],
    );

    // Given on the command line.
    let fine = config_with(dir.path(), "fine.toml", "file = \"\"", LOOPBACK_UPSTREAM);
    let out = dnsveil()
        .arg("run")
        .arg("--config")
        .arg(&fine)
        .args(["--upstream", "tls://127.0.0.1:853", "--ca-file"])
        .arg(dir.path().join("ca.pem"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("--ca-file"), "{stderr}");
    assert!(stderr.contains("no CERTIFICATE"), "{stderr}");
    assert!(!stderr.contains("starting"), "{stderr}");
}

/// A listen address in use: the error says so once, with the command that finds the other
/// program on the port actually asked for.
#[test]
fn an_address_in_use_is_reported_once_with_its_own_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = dnsveil()
        .args(["run", "--upstream", "udp://127.0.0.1:9", "--hosts", ""])
        .args(["--threads", "1", "--listen"])
        .arg(addr.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on tcp {addr}")),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("another program").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("ss -lntup 'sport = :{}'", addr.port())),
        "{stderr}"
    );
    assert!(!stderr.contains(":53'"), "{stderr}");
}

/// check-config warns (and still says ok) when dnsveil listens on a non-loopback address while
/// only loopback clients are allowed; `run` logs the same warning.
#[test]
fn check_config_warns_of_a_lan_listener_with_a_loopback_only_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lan.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:53\", \"192.168.1.2:53\"]\n\
         [upstream]\nservers = [\"udp://127.0.0.1:53\"]\n",
    )
    .unwrap();
    let out = dnsveil().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("warning: dnsveil listens on 192.168.1.2:53"))
        .unwrap_or_else(|| panic!("no warning in:\n{stdout}"));
    assert!(warning.contains("server.allow"), "{warning}");

    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:53\", \"192.168.1.2:53\"]\n\
         allow = [\"127.0.0.0/8\", \"192.168.1.0/24\"]\n\
         [upstream]\nservers = [\"udp://127.0.0.1:53\"]\n",
    )
    .unwrap();
    let out = dnsveil().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning"));
}

// --- Recursive mode ---

#[test]
fn recursive_mode_keys_parse_and_are_checked() {
    let c =
        parse("[resolver]\nmode = \"recursive\"\nquery_port = 5300\nquery_ipv6 = false\n").unwrap();
    assert_eq!(c.resolver.mode, dnsveil::config::Mode::Recursive);
    assert_eq!(c.resolver.query_port, 5300);
    assert!(!c.resolver.query_ipv6);
    assert_eq!(c.resolver.root_hints, None);
    // No upstream is needed in recursive mode, one is in forwarding mode.
    assert!(c.check_runnable().is_ok());
    let fwd = parse("").unwrap();
    assert_eq!(fwd.resolver.mode, dnsveil::config::Mode::Forward);
    assert!(fwd.check_runnable().is_err());

    let e = parse("[resolver]\nmode = \"iterative\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resolver.mode: \"iterative\" is not a mode (expected forward or recursive)"),
        "{e}"
    );
    let e = parse("[resolver]\nquery_port = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resolver.query_port: 0 is out of range (expected 1 to 65535"),
        "{e}"
    );
    let e = parse("[resolver]\nroot_hints = \"\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("resolver.root_hints: empty path"), "{e}");
}

#[test]
fn qname_case_randomization_is_off_unless_asked_for() {
    assert!(!parse("").unwrap().resolver.qname_case_randomization);
    let c = parse("[resolver]\nmode = \"recursive\"\nqname_case_randomization = true\n").unwrap();
    assert!(c.resolver.qname_case_randomization);
    assert!(c.summary().contains("0x20 on"), "{}", c.summary());
    let e = parse("[resolver]\nqname_case_randomization = \"yes\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("qname_case_randomization"), "{e}");
    // The flag replaces the key.
    let mut c = parse("[resolver]\nqname_case_randomization = true\n").unwrap();
    c.apply(dnsveil::config::Overrides {
        qname_case_randomization: Some(false),
        ..Default::default()
    })
    .unwrap();
    assert!(!c.resolver.qname_case_randomization);
}

#[test]
fn a_bad_root_hints_file_is_rejected_by_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let hints = dir.path().join("bad.hints");
    std::fs::write(&hints, ". 3600000 NS a.root-servers.net.\n").unwrap();
    let conf = dir.path().join("rec.toml");
    std::fs::write(
        &conf,
        "[resolver]\nmode = \"recursive\"\nroot_hints = \"bad.hints\"\n[server]\n\
         listen = [\"127.0.0.1:0\"]\n[hosts]\nfile = \"\"\n",
    )
    .unwrap();
    rejected_by_both(
        &conf,
        &["resolver.root_hints: no root server with an address"],
    );
    // The flag is checked the same way, and names itself.
    let out = dnsveil()
        .args([
            "run",
            "--mode",
            "recursive",
            "--listen",
            "127.0.0.1:0",
            "--hosts",
            "",
        ])
        .arg("--root-hints")
        .arg(dir.path().join("missing.hints"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--root-hints"), "{stderr}");
    let out = dnsveil()
        .args(["run", "--mode", "iterative"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad --mode value is a usage error"
    );
    // A good file passes check-config, which names the mode.
    std::fs::write(
        &hints,
        ". 3600000 NS a.roots.\na.roots. 3600000 A 127.0.0.2\n",
    )
    .unwrap();
    let out = dnsveil().arg("check-config").arg(&conf).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("mode: recursive"), "{stdout}");
}
