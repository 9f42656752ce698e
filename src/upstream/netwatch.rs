//! Network-change watcher: drops pooled upstream connections when the machine resumes from suspend
//! or its addresses or routes change.
//!
//! ```text
//!   every 2 s: /proc/uptime (boot clock) vs Instant (monotonic)  --drift > 3 s--> resumed
//!              hash(/proc/net/if_inet6, /proc/net/route, /proc/net/fib_trie) --differs--> changed
//!              either --> UpstreamGroup::reset() on every pool (connections and health)
//! ```
//!
//! A laptop that sleeps, switches Wi-Fi or loses its WAN keeps TCP and TLS connections that look
//! open but lead nowhere: the first query on one would wait for a timeout. The transports already
//! retry at once when a connection errors; this watcher closes them *before* a query finds out.
//!
//! **Suspend**: Linux's `CLOCK_BOOTTIME` counts time spent suspended, `CLOCK_MONOTONIC` (behind
//! [`std::time::Instant`]) does not. `/proc/uptime` reads the boot clock, so when the boot clock
//! has advanced more than [`SLEEP_DRIFT`] beyond the monotonic clock between two checks, the
//! machine slept in between. No `unsafe` and no extra crate are needed for `clock_gettime`.
//!
//! **Addresses**: the IPv6 addresses (`if_inet6`), the IPv4 routes (`route`) and the IPv4 local
//! addresses (`fib_trie`, which lists them as `/32 host LOCAL`) of the network namespace are
//! hashed; any difference is a change. Each file is read up to [`MAX_READ`] octets, so a router
//! with a full routing table costs a bounded read every tick.
//!
//! Limitations: Linux only (elsewhere the files are missing, nothing is detected and the watcher
//! only logs that once); polling, not netlink, so a change is noticed up to one interval late;
//! IPv6 routes are not watched (address changes are); a temporary IPv6 address rotating also
//! counts as a change (one needless reconnect a day).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::UpstreamGroup;

/// How often the watcher looks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Boot-clock time beyond monotonic time that means the machine slept.
pub const SLEEP_DRIFT: Duration = Duration::from_secs(3);
/// Most octets read from one /proc file per check.
pub const MAX_READ: u64 = 512 * 1024;

/// The files whose content describes the machine's addresses and routes.
const NETWORK_FILES: [&str; 3] = [
    "/proc/net/if_inet6",
    "/proc/net/route",
    "/proc/net/fib_trie",
];

/// Why the network is considered changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The boot clock ran ahead of the monotonic clock by this much: the machine was suspended.
    Resumed(Duration),
    /// Addresses or routes differ from the last check.
    Addresses,
}

/// Detects suspend from the two clocks. Pure, so tests can feed it readings.
#[derive(Clone, Debug)]
pub struct SleepDetector {
    last: Option<(Duration, std::time::Instant)>,
}

impl SleepDetector {
    pub fn new() -> Self {
        SleepDetector { last: None }
    }

    /// Takes a reading: `boot` is the boot clock (time since boot, suspend included), `mono` the
    /// monotonic clock. Returns how long the machine slept since the previous reading, if it did.
    pub fn observe(&mut self, boot: Duration, mono: std::time::Instant) -> Option<Duration> {
        let previous = self.last.replace((boot, mono));
        let (boot0, mono0) = previous?;
        let slept = boot
            .saturating_sub(boot0)
            .saturating_sub(mono.saturating_duration_since(mono0));
        (slept > SLEEP_DRIFT).then_some(slept)
    }
}

impl Default for SleepDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// Detects changes of the machine's network state from a fingerprint of it.
#[derive(Clone, Debug, Default)]
pub struct AddressDetector {
    last: Option<u64>,
}

impl AddressDetector {
    /// Takes a fingerprint; true if it differs from the previous one (the first never does).
    pub fn observe(&mut self, fingerprint: u64) -> bool {
        self.last
            .replace(fingerprint)
            .is_some_and(|old| old != fingerprint)
    }
}

/// The boot clock from `/proc/uptime` (its first field, seconds with two decimals).
pub fn boot_clock() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    parse_uptime(&text)
}

/// Parses `/proc/uptime` text.
pub fn parse_uptime(text: &str) -> Option<Duration> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A hash of the network files' contents (a missing file hashes as absent), or `None` if none of
/// them can be read.
pub fn network_fingerprint() -> Option<u64> {
    fingerprint_files(NETWORK_FILES.iter().map(Path::new))
}

/// A hash of the files' contents, each read up to [`MAX_READ`] octets.
pub fn fingerprint_files<'p>(paths: impl IntoIterator<Item = &'p Path>) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    let mut any = false;
    for path in paths {
        let mut content = Vec::new();
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(MAX_READ).read_to_end(&mut content))
            .is_ok();
        any |= read;
        read.hash(&mut hasher);
        content.hash(&mut hasher);
    }
    any.then(|| hasher.finish())
}

/// Looks for network changes every `interval` until `shutdown`, and resets every group on one.
pub fn spawn(
    groups: Vec<Arc<UpstreamGroup>>,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sleep = SleepDetector::new();
        let mut addrs = AddressDetector::default();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let resumed = boot_clock()
                .and_then(|boot| sleep.observe(boot, std::time::Instant::now()))
                .map(Change::Resumed);
            let fingerprint = network_fingerprint();
            if fingerprint.is_none() && !warned {
                warned = true;
                info!("network state is not readable from /proc; network changes go unnoticed");
            }
            let changed = fingerprint
                .is_some_and(|f| addrs.observe(f))
                .then_some(Change::Addresses);
            if let Some(change) = resumed.or(changed) {
                match change {
                    Change::Resumed(slept) => {
                        info!(slept = ?slept, "resumed from suspend; dropping upstream connections")
                    }
                    Change::Addresses => {
                        info!("network addresses changed; dropping upstream connections")
                    }
                }
                for g in &groups {
                    g.reset();
                }
            } else {
                debug!("network unchanged");
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn uptime_parses() {
        assert_eq!(
            parse_uptime("12345.67 54321.00\n"),
            Some(Duration::from_millis(12_345_670))
        );
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("abc 1"), None);
        assert_eq!(parse_uptime("-1 1"), None);
        assert_eq!(parse_uptime("inf 1"), None);
        // This machine's clock is readable and sane.
        assert!(boot_clock().is_some_and(|d| d > Duration::ZERO));
    }

    #[test]
    fn suspend_is_boot_clock_running_ahead() {
        let mut d = SleepDetector::new();
        let t0 = Instant::now();
        let boot = Duration::from_secs(1000);
        assert_eq!(
            d.observe(boot, t0),
            None,
            "first reading has nothing to compare"
        );
        // Both clocks advance together (2 s, 10 ms of jitter): awake.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(d.observe(boot + Duration::from_millis(2010), t1), None);
        // 2 s monotonic but 62 s boot time: slept a minute.
        let t2 = t1 + Duration::from_secs(2);
        let slept = d.observe(boot + Duration::from_millis(64_010), t2);
        assert_eq!(slept, Some(Duration::from_secs(60)));
        // Drift just under the threshold is not a suspend.
        let t3 = t2 + Duration::from_secs(2);
        assert_eq!(d.observe(boot + Duration::from_millis(68_900), t3), None);
        // A boot clock that goes backwards (cannot happen, but input is input) is no suspend.
        let t4 = t3 + Duration::from_secs(2);
        assert_eq!(d.observe(boot, t4), None);
    }

    #[test]
    fn address_changes_are_fingerprint_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("if_inet6");
        let b = dir.path().join("route");
        std::fs::write(&a, "fe800000000000000000000000000001 02 40 20 80 wlan0\n").unwrap();
        std::fs::write(
            &b,
            "Iface\tDestination\tGateway\nwlan0\t00000000\t0101A8C0\n",
        )
        .unwrap();
        let files = || [a.as_path(), b.as_path()];
        let mut det = AddressDetector::default();
        let f1 = fingerprint_files(files()).unwrap();
        assert!(!det.observe(f1), "the first look is the baseline");
        assert!(!det.observe(fingerprint_files(files()).unwrap()));
        std::fs::write(
            &b,
            "Iface\tDestination\tGateway\nwlan0\t00000000\t0102A8C0\n",
        )
        .unwrap();
        assert!(
            det.observe(fingerprint_files(files()).unwrap()),
            "new gateway"
        );
        assert!(!det.observe(fingerprint_files(files()).unwrap()));
        std::fs::remove_file(&a).unwrap();
        assert!(
            det.observe(fingerprint_files(files()).unwrap()),
            "file gone"
        );
        let missing = dir.path().join("missing");
        assert_eq!(fingerprint_files([missing.as_path()]), None);
        // This machine's real files are readable (Linux), and stable while nothing changes.
        let here = network_fingerprint();
        assert!(here.is_some());
        assert_eq!(network_fingerprint(), here);
    }
}
