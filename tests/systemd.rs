//! dnsveil under systemd: socket activation with the real `systemd-socket-activate` (Debian's
//! systemd package), on a high loopback port.

mod harness;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use dnsveil::wire::{Message, RData, RType};
use harness::*;

/// A config serving `name` A 192.0.2.53 from a local record on `listen`, with a dead upstream
/// (nothing here is forwarded).
fn local_config(dir: &Path, listen: &[SocketAddr], name: &str) -> String {
    let listen: Vec<String> = listen.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[server]\nlisten = [{}]\n[hosts]\nfile = \"\"\nrecords = [\"{name} 300 IN A 192.0.2.53\"]\n\
         [upstream]\nservers = [\"udp://127.0.0.1:9\"]\ntimeout_ms = 500\n",
        listen.join(", ")
    );
    let path = dir.join("dnsveil.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

fn answer_a(raw: Option<Vec<u8>>, id: u16) -> Ipv4Addr {
    let m = Message::parse(&raw.expect("an answer")).expect("answer parses");
    assert_eq!(m.header.id, id);
    match m.answers.first().map(|r| &r.data) {
        Some(RData::A(ip)) => *ip,
        other => panic!("expected an A record, got {other:?}"),
    }
}

/// systemd-socket-activate holds TCP 127.0.0.1:P (the outer one) and UDP 127.0.0.1:P plus UDP
/// 127.0.0.1:Q (the inner one, which takes over the outer's socket and adds its own), and starts
/// dnsveil at the first connection. dnsveil serves the configured 127.0.0.1:P on the passed
/// sockets (binding its own there would fail: the address is taken), serves the passed socket at
/// Q that it was not configured for, and answers the connection that woke it.
#[test]
fn socket_activation_serves_the_passed_udp_and_tcp_sockets() {
    let activate = require_tool("systemd-socket-activate", "systemd");
    let activate = activate.to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let extra = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let extra_addr: SocketAddr = ([127, 0, 0, 1], extra).into();
    let config = local_config(dir.path(), &[addr], "svc.test");
    let tcp_listen = addr.to_string();
    let udp_listen = addr.to_string();
    let extra_listen = extra_addr.to_string();
    let wrapper = [
        activate,
        "-l",
        &tcp_listen,
        "--fdname=dns-tcp",
        activate,
        "--datagram",
        "-l",
        &udp_listen,
        "-l",
        &extra_listen,
        "--fdname=dns-tcp:dns-udp:extra",
    ];

    // The first client: it connects once the outer wrapper says it listens, and its query is
    // answered by the dnsveil that its connection started.
    let (tx, rx) = mpsc::channel();
    let mut client = None;
    let ready = format!("Listening on {addr} as 3.");
    let mut on_line = |line: &str| {
        if client.is_none() && line.contains(&ready) {
            let tx = tx.clone();
            client = Some(std::thread::spawn(move || {
                let q = query_bytes("svc.test", RType::A, 0x5301);
                let raw = tcp_exchange_from(None, addr, &q, Duration::from_secs(20));
                let _ = tx.send(raw);
            }));
        }
    };
    let dv = Dnsveil::start_wrapped_with(
        &wrapper,
        &["--config", &config, "--log-level", "info"],
        &mut on_line,
    );
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the first client finished");
    assert_eq!(answer_a(first, 0x5301), Ipv4Addr::new(192, 0, 2, 53));

    let log = dv.log();
    assert!(
        log.contains(&format!("received tcp {addr} from the service manager")),
        "{log}"
    );
    assert!(
        log.contains(&format!("received udp {addr} from the service manager")),
        "{log}"
    );
    assert!(log.contains("name=extra"), "{log}");
    assert!(dv.udp.contains(&addr) && dv.tcp.contains(&addr), "{log}");

    let q = query_bytes("svc.test", RType::A, 0x5302);
    assert_eq!(
        answer_a(udp_exchange(addr, &q), 0x5302),
        Ipv4Addr::new(192, 0, 2, 53)
    );
    let q = query_bytes("svc.test", RType::A, 0x5303);
    assert_eq!(
        answer_a(tcp_exchange(addr, &q), 0x5303),
        Ipv4Addr::new(192, 0, 2, 53)
    );
    // The passed socket at an address the config does not name is served as well.
    assert!(
        dv.wait_logged(
            &format!("listening on udp {extra_addr}"),
            Duration::from_secs(5)
        ),
        "{}",
        dv.log()
    );
    let q = query_bytes("svc.test", RType::A, 0x5304);
    assert_eq!(
        answer_a(udp_exchange(extra_addr, &q), 0x5304),
        Ipv4Addr::new(192, 0, 2, 53)
    );
}

/// Started without passed sockets, the same binary binds its own; LISTEN_* variables meant for
/// another process (LISTEN_PID not ours) are ignored.
#[test]
fn without_passed_sockets_dnsveil_binds_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = local_config(dir.path(), &[addr], "own.test");
    let dv = Dnsveil::start_cmd(
        &["--config", &config],
        &[
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "1"),
            ("LISTEN_FDNAMES", "a:b"),
        ],
    );
    let q = query_bytes("own.test", RType::A, 0x5305);
    assert_eq!(
        answer_a(udp_exchange(addr, &q), 0x5305),
        Ipv4Addr::new(192, 0, 2, 53)
    );
    assert!(
        !dv.log().contains("from the service manager"),
        "{}",
        dv.log()
    );
}

/// With stderr being the stream JOURNAL_STREAM names (set here to the pipe's own device and
/// inode, as systemd does for the journal), every line starts with its syslog priority and
/// carries no time stamp; a warning is `<4>`. With JOURNAL_STREAM naming another file, the usual
/// format stays.
#[test]
fn logs_fit_the_journal_when_stderr_is_the_journal_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An unparsable RUST_LOG is a warning (and the configured level is used).
    let config = local_config(dir.path(), &[([127, 0, 0, 1], 0).into()], "j.test");
    let journal = [
        "sh",
        "-c",
        "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) RUST_LOG=no=such=filter exec \"$0\" \"$@\"",
    ];
    let mut dv = Dnsveil::start_wrapped(&journal, &["--config", &config]);
    dv.signal("TERM");
    assert_eq!(dv.wait_exit(Duration::from_secs(10)), Some(0));
    let log = dv.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 3, "{log}");
    for line in &lines {
        let prio = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(p, _)| p);
        assert!(
            matches!(prio, Some("3" | "4" | "6" | "7")),
            "a line without a priority: {line}\n{log}"
        );
        assert!(!line.contains(" INFO ") && !line.contains("WARN"), "{line}");
        // No time stamp of our own (tracing's starts with the year).
        assert!(!line.contains("T2"), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("ignoring RUST_LOG")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("listening on udp")),
        "{log}"
    );

    // JOURNAL_STREAM inherited from elsewhere: not the journal, the usual format.
    let mut dv = Dnsveil::start_cmd(&["--config", &config], &[("JOURNAL_STREAM", "1:1")]);
    dv.signal("TERM");
    assert_eq!(dv.wait_exit(Duration::from_secs(10)), Some(0));
    let log = dv.log();
    assert!(log.lines().all(|l| !l.starts_with('<')), "{log}");
    assert!(log.contains(" INFO "), "{log}");
}

/// A configuration error at start is written before the log is set up; with stderr being the
/// journal it still carries the error priority (`<3>`), so `journalctl -p err` shows why the unit
/// failed (it was "info" before; found under a real systemd, packaging/systemd-smoke.sh). The
/// exit status stays 78, which the unit's RestartPreventExitStatus= names.
#[test]
fn a_start_up_configuration_error_has_the_error_priority_in_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nno_such_key = 1\n").expect("write config");
    let journal = "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$0\" \"$@\"";
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            journal,
            env!("CARGO_BIN_EXE_dnsveil"),
            "run",
            "--config",
        ])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run dnsveil");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("<3>dnsveil: config error: ") && err.contains("server.no_such_key"),
        "{err}"
    );
    assert!(err.lines().all(|l| l.starts_with("<3>")), "{err}");
}

/// Runs `dnsveil run --config CONFIG` inside a new network namespace whose loopback is up and
/// which has no other interface, and returns its exit status and stderr (it is stopped after
/// `wait` if still running).
fn run_in_netns(config: &str, wait: Duration) -> (Option<i32>, String) {
    let unshare = require_tool("unshare", "util-linux");
    require_tool("ip", "iproute2");
    let out = std::process::Command::new(unshare)
        .args(["-n", "sh", "-c"])
        .arg(format!(
            "ip link set lo up && exec timeout --preserve-status -s TERM {} \"$0\" run --config \"$1\"",
            wait.as_secs()
        ))
        .arg(env!("CARGO_BIN_EXE_dnsveil"))
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run unshare");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A LAN address that no interface has yet (here: a documentation address in a namespace of our
/// own, nothing sent to it) cannot be listened on, with a message that points at
/// server.freebind; with server.freebind = true it is bound and served until stopped.
#[test]
fn freebind_listens_on_an_address_no_interface_has_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lan: SocketAddr = ([198, 51, 100, 7], 5353).into();
    let path = local_config(dir.path(), &[lan], "fb.test");
    let (code, log) = run_in_netns(&path, Duration::from_secs(5));
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("no interface on this machine has that address"),
        "{log}"
    );
    assert!(log.contains("server.freebind = true"), "{log}");

    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("[hosts]", "freebind = true\n[hosts]")).expect("write");
    let (code, log) = run_in_netns(&path, Duration::from_secs(2));
    assert!(log.contains(&format!("listening on udp {lan}")), "{log}");
    assert!(log.contains(&format!("listening on tcp {lan}")), "{log}");
    // Stopped by the timeout's SIGTERM: a graceful exit.
    assert_eq!(code, Some(0), "{log}");
}

/// Under the unit's /proc restrictions (ProcSubset=pid, ProtectProc=invisible: a /proc with only
/// process directories, mounted here in a mount namespace of our own), dnsveil starts and serves.
#[test]
fn dnsveil_serves_under_the_units_proc_restrictions() {
    let unshare = require_tool("unshare", "util-linux");
    let unshare = unshare.to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = local_config(dir.path(), &[([127, 0, 0, 1], 0).into()], "proc.test");
    let wrapper = [
        unshare,
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t proc -o subset=pid,hidepid=invisible proc /proc && test ! -e /proc/net \
         && exec \"$0\" \"$@\"",
    ];
    let mut dv = Dnsveil::start_wrapped(&wrapper, &["--config", &config]);
    let q = query_bytes("proc.test", RType::A, 0x5306);
    assert_eq!(
        answer_a(udp_exchange(dv.udp_addr(), &q), 0x5306),
        Ipv4Addr::new(192, 0, 2, 53)
    );
    dv.signal("TERM");
    assert_eq!(
        dv.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        dv.log()
    );
}

/// The shipped unit files pass `systemd-analyze verify`, with the man pages they name
/// (Documentation=) generated by `dnsveil manpage` and found through MANPATH, and ExecStart
/// pointing at the binary under test instead of /usr/bin/dnsveil.
#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let analyze = require_tool("systemd-analyze", "systemd");
    require_tool("man", "man-db");
    let dir = tempfile::tempdir().expect("tempdir");
    let man = dir.path().join("man");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .arg("manpage")
        .arg(man.join("man8"))
        .output()
        .expect("dnsveil manpage");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let units = dir.path().join("units");
    std::fs::create_dir(&units).expect("mkdir");
    for unit in ["dnsveil.service", "dnsveil.socket"] {
        let text = std::fs::read_to_string(packaging.join(unit)).expect("unit file");
        assert!(text.contains("Documentation=man:dnsveil(8)"), "{unit}");
        let text = text.replace("/usr/bin/dnsveil", env!("CARGO_BIN_EXE_dnsveil"));
        std::fs::write(units.join(unit), text).expect("write unit");
    }
    let verify = |manpath: &Path| {
        std::process::Command::new(&analyze)
            .arg("verify")
            .arg(units.join("dnsveil.socket"))
            .arg(units.join("dnsveil.service"))
            .env("MANPATH", manpath)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("systemd-analyze verify")
    };
    let out = verify(&man);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
    // It does check the pages: without them, verification fails.
    let out = verify(&dir.path().join("no-man"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dnsveil(8)"));
}

/// `dnsveil manpage` writes dnsveil.8 (with the sections clap does not know) and a page per
/// command, which man reads; `dnsveil completions bash` is a script bash accepts, completing the
/// commands and run's flags.
#[test]
fn man_pages_and_completions_come_from_the_command_line_definitions() {
    let man = require_tool("man", "man-db");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .arg("manpage")
        .arg(dir.path())
        .output()
        .expect("dnsveil manpage");
    assert!(out.status.success());
    for page in [
        "dnsveil.8",
        "dnsveil-run.8",
        "dnsveil-check-config.8",
        "dnsveil-query.8",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    let rendered = std::process::Command::new(&man)
        .arg("-l")
        .arg(dir.path().join("dnsveil.8"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man -l");
    let text = String::from_utf8_lossy(&rendered.stdout);
    for needle in [
        "SIGHUP",
        "EXIT STATUS",
        "LISTEN_FDS",
        "JOURNAL_STREAM",
        "dnsveil-run(8)",
    ] {
        assert!(text.contains(needle), "dnsveil.8 lacks {needle}:\n{text}");
    }
    let run_page = std::process::Command::new(&man)
        .arg("-l")
        .arg(dir.path().join("dnsveil-run.8"))
        .env("MANPAGER", "cat")
        .output()
        .expect("man -l");
    let text = String::from_utf8_lossy(&run_page.stdout);
    assert!(
        text.contains("--log-queries")
            || text.contains("-\u{2010}log-queries")
            || text.contains("log-queries"),
        "{text}"
    );

    let bash = require_tool("bash", "bash");
    let script = std::process::Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .args(["completions", "bash"])
        .output()
        .expect("dnsveil completions");
    assert!(script.status.success());
    let path = dir.path().join("dnsveil.bash");
    std::fs::write(&path, &script.stdout).expect("write");
    // Load it and ask for the completions of `dnsveil run --log-`.
    let probe = format!(
        "source {}; COMP_WORDS=(dnsveil run --log-); COMP_CWORD=2; COMP_LINE='dnsveil run --log-'; \
         COMP_POINT=${{#COMP_LINE}}; _dnsveil dnsveil --log- run; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = std::process::Command::new(bash)
        .args(["-c", &probe])
        .output()
        .expect("bash");
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.contains("--log-queries"),
        "{words}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(words.contains("--log-level"), "{words}");
}
