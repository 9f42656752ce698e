//! Zones signed at test time by software we did not write: keys from ldns-keygen and signatures
//! from ldns-signzone (Debian's ldnsutils), for the validator's tests in forwarding and in
//! recursive mode.

use std::path::Path;
use std::process::Command;

use super::require_tool;

/// The zone's absolute name (with its final dot).
fn absolute(zone: &str) -> String {
    if zone.ends_with('.') {
        zone.to_string()
    } else {
        format!("{zone}.")
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new key-signing key for `zone` with `algorithm` (ldns-keygen's name, e.g. `ECDSAP256SHA256`;
/// RSA keys get 2048 bits), its files written into `dir`; returns their base name.
pub fn keygen(dir: &Path, zone: &str, algorithm: &str) -> String {
    let keygen = require_tool("ldns-keygen", "ldnsutils");
    let mut cmd = Command::new(keygen);
    cmd.current_dir(dir).args(["-a", algorithm, "-k"]);
    if algorithm.starts_with("RSA") {
        cmd.args(["-b", "2048"]);
    }
    cmd.arg(absolute(zone));
    run(&mut cmd).trim().to_string()
}

/// `text`, the zone file of `zone`, signed with the key `base` (and the extra ldns-signzone
/// `args`: NSEC3, validity window); returns the signed zone file.
pub fn sign(dir: &Path, zone: &str, text: &str, base: &str, args: &[String]) -> String {
    let signzone = require_tool("ldns-signzone", "ldnsutils");
    let zone = absolute(zone);
    let stem = match zone.trim_end_matches('.') {
        "" => "root",
        z => z,
    };
    let file = dir.join(format!("{stem}.unsigned"));
    std::fs::write(&file, text).expect("write zone");
    let out = dir.join(format!("{stem}.signed"));
    run(Command::new(signzone)
        .current_dir(dir)
        .args(args)
        .arg("-f")
        .arg(&out)
        .arg("-o")
        .arg(&zone)
        .arg(&file)
        .arg(base));
    std::fs::read_to_string(out).expect("signed zone")
}

/// The DS record of the key `base`, as ldns-keygen wrote it.
pub fn ds(dir: &Path, base: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{base}.ds"))).expect("ds")
}
