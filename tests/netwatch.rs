//! The network watcher against a real kernel (issue 16): dnsveil runs in a network namespace this
//! test creates, and sees an address added to a dummy interface there, from netlink events, while
//! a refresh of an address it knows is not a change.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

/// Runs `ip ARGS` inside the network namespace of process `pid`.
fn ip_in(pid: u32, args: &str) {
    let out = try_ip_in(pid, args);
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn try_ip_in(pid: u32, args: &str) -> std::process::Output {
    let nsenter = require_tool("nsenter", "util-linux");
    require_tool("ip", "iproute2");
    let pid = pid.to_string();
    let mut all = vec!["-t", pid.as_str(), "-n", "ip"];
    all.extend(args.split_whitespace());
    Command::new(nsenter).args(&all).output().unwrap()
}

/// Waits up to 10 s for `needle` to appear in at least `n` lines of the log.
fn wait_count(dv: &Dnsveil, needle: &str, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if dv.log().lines().filter(|l| l.contains(needle)).count() >= n {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        // The log grows; wait for its next line (or a short while) and look again.
        dv.wait_logged("\u{0}never", Duration::from_millis(50));
    }
}

#[test]
fn the_watcher_sees_an_address_added_in_its_namespace() {
    require_tool("unshare", "util-linux");
    let dv = Dnsveil::start_wrapped(
        &[
            "unshare",
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "udp://127.0.0.1:9",
            "--hosts",
            "",
            "--log-level",
            "debug",
        ],
    );
    let pid = dv.child.0.id();
    assert!(
        dv.wait_logged(
            "network state read; watching for changes",
            Duration::from_secs(10)
        ),
        "{}",
        dv.log()
    );
    let changed = "network changed; dropping upstream connections";
    assert!(!dv.log().contains(changed), "{}", dv.log());
    // A dummy interface; where the kernel has no dummy driver (some container hosts), an empty
    // bridge, which holds addresses the same way.
    if !try_ip_in(pid, "link add dummy0 type dummy")
        .status
        .success()
    {
        ip_in(pid, "link add dummy0 type bridge");
    }
    ip_in(pid, "link set dummy0 up");
    ip_in(
        pid,
        "addr add 192.0.2.10/24 dev dummy0 valid_lft 300 preferred_lft 300",
    );
    assert!(wait_count(&dv, changed, 1), "{}", dv.log());
    // The burst (link, address, its routes) was one change.
    let quiet = dv.log().lines().filter(|l| l.contains("changes=0")).count();
    // A lifetime refresh of the known address: netlink says so, and nothing changes.
    ip_in(
        pid,
        "addr change 192.0.2.10/24 dev dummy0 valid_lft 200 preferred_lft 200",
    );
    assert!(wait_count(&dv, "changes=0", quiet + 1), "{}", dv.log());
    // Removing the address is a change again.
    ip_in(pid, "addr del 192.0.2.10/24 dev dummy0");
    assert!(wait_count(&dv, changed, 2), "{}", dv.log());
    assert_eq!(
        dv.log().lines().filter(|l| l.contains(changed)).count(),
        2,
        "{}",
        dv.log()
    );
}
