//! Captive portals: the scoped ways out of "fail closed" that let a hotel or airport login page
//! work.
//!
//! ```text
//!   Request --window open?--yes--> the network's resolvers (network://), logged --> client
//!           --a connectivity-check name?--yes--> default upstreams; unreachable (all resting,
//!                                                or this query failed) --> the network's resolvers
//!           --otherwise--> next stage (validation, forwarding)
//! ```
//!
//! Behind a captive portal the encrypted upstreams cannot be reached until the user has logged
//! in, and the login page cannot be found without DNS. Two ways out, both through the resolvers
//! the network gave us (`network://`), never anything else:
//!
//! - **detect**: the names operating systems and browsers fetch to detect a portal
//!   ([`CHECK_NAMES`]: NetworkManager's and GNOME's, Firefox's, Android's, Apple's, Windows') are
//!   asked through the network's resolvers *while the encrypted upstreams are unreachable*, so
//!   the OS notices the portal and opens its login window. These names say nothing about the
//!   user; the OS fetches them over plain HTTP anyway.
//! - **a window**: `dnsveil portal [--minutes N]` (over the control socket) sends *every* name
//!   through the network's resolvers for N minutes (at most 60), so the login page and whatever it
//!   loads resolve. Opening and closing are logged at `warn`, and every name asked meanwhile at
//!   `info`; the window closes by itself.
//!
//! Nothing answered this way is cached (TTLs become 0): a portal's resolver may lie until the
//! login, and its answers must not outlive the window. Nor is it validated (this stage sits
//! before the validator): a portal's resolver answers what it likes, which is the point.
//!
//! `captive_portal = "off"` turns both off (fail closed without exception).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::handler::{
    Answer, BoxFuture, Handler, HandlerError, HandlerResult, Next, Origin, Request, Verdict,
};
use crate::upstream::pool::BreakerState;
use crate::upstream::{forwarding_flags, Upstream, UpstreamGroup};
use crate::wire::Name;

/// The connectivity-check names of the common operating systems and browsers.
pub const CHECK_NAMES: [&str; 16] = [
    // NetworkManager (Ubuntu, Debian, Fedora, Arch), GNOME
    "connectivity-check.ubuntu.com",
    "network-test.debian.org",
    "fedoraproject.org",
    "ping.archlinux.org",
    "nmcheck.gnome.org",
    // Firefox
    "detectportal.firefox.com",
    // Android, ChromeOS
    "connectivitycheck.gstatic.com",
    "connectivitycheck.android.com",
    "clients3.google.com",
    "www.google.com",
    // Apple
    "captive.apple.com",
    "www.apple.com",
    // Windows
    "www.msftconnecttest.com",
    "ipv6.msftconnecttest.com",
    "www.msftncsi.com",
    "dns.msftncsi.com",
];

/// Longest window.
pub const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);

/// The captive-portal stage.
pub struct Portal {
    checks: Vec<Name>,
    /// The network's resolvers (a `network://` upstream).
    network: Upstream,
    /// The default upstreams, whose health says whether they are reachable.
    encrypted: Option<Arc<UpstreamGroup>>,
    epoch: Instant,
    /// Milliseconds since `epoch` until which the window is open (0: closed).
    window_until: AtomicU64,
}

impl Portal {
    /// A stage asking `network` for portal names when `encrypted` is unreachable, and for every
    /// name while a window is open.
    pub fn new(network: Upstream, encrypted: Option<Arc<UpstreamGroup>>) -> Portal {
        Portal {
            checks: CHECK_NAMES.iter().filter_map(|n| n.parse().ok()).collect(),
            network,
            encrypted,
            epoch: Instant::now(),
            window_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// True while a window is open.
    pub fn window_open(&self) -> bool {
        self.now_ms() < self.window_until.load(Ordering::Relaxed)
    }

    /// Opens (or extends, or shortens) the window to `length` from now (at most [`MAX_WINDOW`]);
    /// says so loudly, and once more when it closes. Must be called within the tokio runtime.
    pub fn open_window(self: &Arc<Self>, length: Duration) -> String {
        let length = length.min(MAX_WINDOW);
        let until = self.now_ms() + length.as_millis() as u64;
        self.window_until.store(until, Ordering::Relaxed);
        warn!(
            minutes = length.as_secs() / 60,
            "captive-portal window open: every name now resolves through the network's own \
             resolvers, unencrypted and unvalidated"
        );
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(length).await;
            // A later `open_window` moved the end: that one's task reports it.
            if me.window_until.load(Ordering::Relaxed) == until {
                warn!("captive-portal window closed: names go to the encrypted upstreams again");
            }
        });
        format!(
            "captive-portal window open for {} minute(s): every name resolves through the \
             network's resolvers until then\n",
            length.as_secs() / 60
        )
    }

    /// True when no default upstream can be used now (every breaker open or probing).
    fn encrypted_unreachable(&self) -> bool {
        self.encrypted.as_ref().is_some_and(|g| {
            g.health()
                .iter()
                .all(|h| !matches!(h.breaker, BreakerState::Closed))
        })
    }

    fn is_check_name(&self, name: &Name) -> bool {
        self.checks.iter().any(|c| c.eq_ignore_case(name))
    }

    /// Asks the network's resolvers; the answer's TTLs become 0 so nothing keeps it.
    async fn via_network(&self, req: &Request) -> HandlerResult {
        let q = req.query.question().ok_or(HandlerError::NotImplemented)?;
        let mut reply = self
            .network
            .ask(q, forwarding_flags(&req.query))
            .await
            .map_err(HandlerError::upstream)?;
        let mut message = reply.take_message().map_err(HandlerError::upstream)?;
        let upstream = reply.upstream;
        for r in message
            .answers
            .iter_mut()
            .chain(message.authority.iter_mut())
            .chain(message.additional.iter_mut())
        {
            r.ttl = 0;
        }
        let wire = message.encode().map_err(HandlerError::internal)?;
        Ok(Answer::checked(wire, Origin::Upstream, Verdict::Unchecked).with_upstream(upstream))
    }

    async fn resolve(&self, req: &Request, next: Next<'_>) -> HandlerResult {
        let Some(q) = req.query.question() else {
            return next.run(req).await;
        };
        if self.window_open() {
            info!(qname = %q.name, qtype = %q.qtype, "captive-portal window: asked the network's resolvers");
            return self.via_network(req).await;
        }
        if !self.is_check_name(&q.name) {
            return next.run(req).await;
        }
        if self.encrypted_unreachable() {
            debug!(qname = %q.name, "connectivity check while the upstreams rest: network's resolvers");
            return self.via_network(req).await;
        }
        match next.run(req).await {
            Err(e @ (HandlerError::Upstream(_) | HandlerError::Deadline(_))) => {
                info!(
                    qname = %q.name,
                    error = %e,
                    "connectivity check failed upstream; asking the network's resolvers (captive portal?)"
                );
                self.via_network(req).await.or(Err(e))
            }
            other => other,
        }
    }
}

impl Handler for Portal {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(self.resolve(req, next))
    }

    fn name(&self) -> &'static str {
        "captive-portal"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_window_closes_by_itself() {
        let network = crate::upstream::network::NetworkTransport::new(
            Some("/nonexistent/resolv.conf".into()),
            Duration::from_secs(1),
        );
        let p = Arc::new(Portal::new(
            Upstream::new(Arc::new(network), Duration::from_secs(1)),
            None,
        ));
        assert!(!p.window_open());
        p.open_window(Duration::from_secs(120));
        assert!(p.window_open());
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(p.window_open());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!p.window_open());
        // Never longer than an hour, whatever is asked.
        p.open_window(Duration::from_secs(24 * 3600));
        tokio::time::advance(MAX_WINDOW + Duration::from_secs(1)).await;
        assert!(!p.window_open());
        // With no default upstreams there is nothing to be unreachable.
        assert!(!p.encrypted_unreachable());
        assert!(p.is_check_name(&"CAPTIVE.apple.com".parse().unwrap()));
        assert!(!p.is_check_name(&"apple.com".parse().unwrap()));
    }

    #[test]
    fn every_check_name_parses() {
        assert_eq!(
            CHECK_NAMES
                .iter()
                .filter_map(|n| n.parse::<Name>().ok())
                .count(),
            CHECK_NAMES.len()
        );
    }
}
