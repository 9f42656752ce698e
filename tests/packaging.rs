//! The files under packaging/ that make the system use dnsveil (README: "Making the system use
//! it"): checked with the tools that read them where they can run here, parsed otherwise.

mod harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use dnsveil::config::Config;
use harness::*;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging")
}

/// An INI file as systemd and NetworkManager read it: `[Section]` headers, `Key=value` lines,
/// `#` and `;` comments. Every line must be one of these.
fn ini(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("read");
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not Key=value: {line}", path.display(), n + 1));
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("{}:{}: a key before any section", path.display(), n + 1));
        out.entry(section)
            .or_default()
            .insert(key.trim().to_string(), value.trim().to_string());
    }
    out
}

/// The resolved.conf.d drop-ins: systemd reads them from resolved.conf.d (`systemd-analyze
/// cat-config` lists them there), they set only [Resolve] keys resolved.conf(5) has, with valid
/// values, and the resolver they name is where the packaged config listens.
#[test]
fn resolved_drop_ins_are_read_and_name_dnsveils_address() {
    let analyze = require_tool("systemd-analyze", "systemd");
    let root = tempfile::tempdir().expect("tempdir");
    let dropins = root.path().join("etc/systemd/resolved.conf.d");
    std::fs::create_dir_all(&dropins).expect("mkdir");
    let files = ["dnsveil.conf", "dnsveil-stub-off.conf"];
    for f in files {
        std::fs::copy(packaging().join("resolved").join(f), dropins.join(f)).expect("copy");
    }
    let out = Command::new(analyze)
        .arg(format!("--root={}", root.path().display()))
        .args(["cat-config", "systemd/resolved.conf"])
        .output()
        .expect("systemd-analyze cat-config");
    let text = String::from_utf8_lossy(&out.stdout);
    for f in files {
        assert!(
            text.contains(&format!("resolved.conf.d/{f}")),
            "cat-config does not read {f}:\n{text}"
        );
    }

    const KEYS: &[&str] = &[
        "DNS",
        "FallbackDNS",
        "Domains",
        "LLMNR",
        "MulticastDNS",
        "DNSSEC",
        "DNSOverTLS",
        "Cache",
        "CacheFromLocalhost",
        "DNSStubListener",
        "DNSStubListenerExtra",
        "ReadEtcHosts",
        "ResolveUnicastSingleLabel",
        "StaleRetentionSec",
    ];
    let packaged = Config::load(&packaging().join("dnsveil.toml")).expect("packaged config");
    for f in files {
        let parsed = ini(&packaging().join("resolved").join(f));
        assert_eq!(parsed.keys().collect::<Vec<_>>(), ["Resolve"], "{f}");
        for (key, value) in &parsed["Resolve"] {
            assert!(KEYS.contains(&key.as_str()), "{f}: unknown key {key}");
            match key.as_str() {
                "DNS" => {
                    for server in value.split_whitespace() {
                        let addr: SocketAddr = server.parse().expect("DNS= is ADDRESS:PORT");
                        assert!(
                            packaged.server.listen.contains(&addr),
                            "{f}: DNS={addr} is not a listen address of packaging/dnsveil.toml"
                        );
                    }
                }
                "Domains" => assert_eq!(value, "~.", "{f}"),
                "DNSStubListener" => assert!(["no", "yes", "udp", "tcp"].contains(&value.as_str())),
                "DNSSEC" | "DNSOverTLS" => assert!(
                    ["no", "yes", "allow-downgrade", "opportunistic"].contains(&value.as_str()),
                    "{f}: {key}={value}"
                ),
                _ => {}
            }
        }
    }
    assert_eq!(
        ini(&packaging().join("resolved/dnsveil.conf"))["Resolve"]["Domains"],
        "~."
    );
    assert_eq!(
        ini(&packaging().join("resolved/dnsveil-stub-off.conf"))["Resolve"]["DNSStubListener"],
        "no"
    );
}

/// The NetworkManager drop-ins set [main] dns= to a mode NetworkManager.conf(5) has.
#[test]
fn networkmanager_drop_ins_set_the_dns_mode() {
    let none = ini(&packaging().join("NetworkManager/dnsveil.conf"));
    assert_eq!(none["main"]["dns"], "none");
    assert_eq!(none["main"]["rc-manager"], "unmanaged");
    let resolved = ini(&packaging().join("NetworkManager/dnsveil-via-resolved.conf"));
    assert_eq!(resolved["main"]["dns"], "systemd-resolved");
    assert_eq!(resolved["main"].len(), 1);
}

/// The shipped resolv.conf makes the C library's resolver ask dnsveil: in a network and mount
/// namespace of our own (loopback only), with packaging/resolv.conf mounted over
/// /etc/resolv.conf and dnsveil on 127.0.0.1:53 and [::1]:53, `getent` finds a name only dnsveil
/// knows.
#[test]
fn the_shipped_resolv_conf_sends_the_system_to_dnsveil() {
    let unshare = require_tool("unshare", "util-linux");
    require_tool("ip", "iproute2");
    require_tool("getent", "libc-bin");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("dnsveil.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:53\", \"[::1]:53\"]\n\
         [hosts]\nfile = \"\"\nrecords = [\"only-dnsveil.test. 300 IN A 192.0.2.53\"]\n\
         [upstream]\nservers = [\"udp://127.0.0.1:9\"]\ntimeout_ms = 500\n",
    )
    .expect("write config");
    let log = dir.path().join("dnsveil.log");
    // Starts dnsveil, waits (bounded, polling its log) for its listening lines, asks getent,
    // stops dnsveil.
    let script = r#"
ip link set lo up || exit 3
mount --bind "$RESOLV" /etc/resolv.conf || exit 3
"$DNSVEIL" run --config "$CONFIG" 2>"$LOG" &
pid=$!
trap 'kill -TERM $pid; wait $pid' EXIT
for i in $(seq 1 200); do
    if [ "$(grep -c 'listening on tcp' "$LOG")" -ge 2 ]; then break; fi
    kill -0 "$pid" 2>/dev/null || exit 3
    sleep 0.05
done
# gethostbyname (getent hosts), not getaddrinfo with AI_ADDRCONFIG (getent ahosts), which asks
# nothing on a machine with loopback addresses only.
echo "found: $(timeout 10 getent hosts only-dnsveil.test)"
"#;
    let out = Command::new(unshare)
        .args(["-n", "-m", "--propagation", "private", "sh", "-c", script])
        .env("RESOLV", packaging().join("resolv.conf"))
        .env("DNSVEIL", env!("CARGO_BIN_EXE_dnsveil"))
        .env("CONFIG", &config)
        .env("LOG", &log)
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        stdout.contains("found: 192.0.2.53"),
        "getent did not reach dnsveil:\n{stdout}\n{}\n{log_text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `systemctl reload` runs the unit's `ExecReload=`: `dnsveil reload` on the control socket the
/// service binds under the unit, `$RUNTIME_DIRECTORY/control.sock` with `RuntimeDirectory=`
/// under /run, which the packaged config leaves at its default. If either moved alone,
/// `systemctl reload` would fail to connect.
#[test]
fn the_units_reload_asks_the_control_socket_the_service_binds() {
    let unit = ini(&packaging().join("dnsveil.service"));
    let service = &unit["Service"];
    let socket = Path::new("/run")
        .join(&service["RuntimeDirectory"])
        .join(dnsveil::control::SOCKET_NAME);
    assert_eq!(
        service["ExecReload"],
        format!(
            "/usr/bin/dnsveil reload --control-socket {}",
            socket.display()
        )
    );
    let packaged = Config::load(&packaging().join("dnsveil.toml")).expect("packaged config");
    assert_eq!(
        packaged.server.control_socket,
        dnsveil::config::ControlSocket::Default
    );
}

/// The binary loads no libm: its one use of it (tokio's `pow`) is served by the binary itself
/// (src/main.rs), which keeps about 0.5 MiB of the C math library out of an idle router's memory
/// (issue 17). Read with `readelf`, which comes with the linker every build needs.
#[test]
fn the_binary_does_not_load_libm() {
    let readelf = require_tool("readelf", "binutils");
    let out = Command::new(readelf)
        .args(["--dynamic", "--wide", env!("CARGO_BIN_EXE_dnsveil")])
        .output()
        .expect("run readelf");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.iter().any(|l| l.starts_with("libc.so")), "{dynamic}");
    assert!(
        !needed.iter().any(|l| l.starts_with("libm.so")),
        "needed: {needed:?}"
    );
}
