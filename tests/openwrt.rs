//! The OpenWrt package's init script (packaging/openwrt): shellcheck finds nothing in it, and under
//! a stand-in for procd (packaging/openwrt/test-init.sh) it checks the config with the real binary
//! before starting, starts `dnsveil run --config` with respawn, restarts on a changed config and
//! signals SIGHUP on reload, and starts nothing when the config is missing or rejected.
//! The OpenWrt SDK itself cannot be installed here, so the package Makefile is not built.

mod harness;

use std::path::Path;
use std::process::Command;

fn openwrt_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/openwrt")
}

#[test]
fn the_init_script_passes_shellcheck() {
    let shellcheck = harness::require_tool("shellcheck", "shellcheck");
    let dir = openwrt_dir();
    for script in ["dnsveil/files/dnsveil.init", "test-init.sh"] {
        let out = Command::new(&shellcheck)
            .args(["-x", "-P", "SCRIPTDIR"])
            .arg(dir.join(script))
            .output()
            .expect("run shellcheck");
        assert!(
            out.status.success(),
            "shellcheck {script}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn the_init_script_under_a_procd_stand_in() {
    let sh = harness::require_tool("sh", "dash");
    let out = Command::new(sh)
        .arg(openwrt_dir().join("test-init.sh"))
        .arg(env!("CARGO_BIN_EXE_dnsveil"))
        .output()
        .expect("run test-init.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all cases passed"), "{text}");
}

/// The shipped router config is valid as it stands (it names /etc/hosts and a lease file that
/// may be missing here: the hosts file is replaced, the lease file may be absent).
#[test]
fn the_shipped_router_config_checks() {
    let text = std::fs::read_to_string(openwrt_dir().join("dnsveil/files/dnsveil.toml"))
        .expect("router config");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dnsveil.toml");
    std::fs::write(&conf, text.replace("file = \"/etc/hosts\"", "file = \"\"")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_dnsveil"))
        .arg("check-config")
        .arg(&conf)
        .output()
        .expect("check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("warning"), "{stdout}");
}
