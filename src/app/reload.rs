//! Reloading the configuration while serving: SIGHUP (`systemctl reload`), and whatever else
//! holds a [`Reloader`] (the control socket's `reload` command).
//!
//! ```text
//!   ConfigSource (file + command-line flags) --check_runnable--> Config --Plan::build--> Plan
//!        any error: refused, logged, the running configuration stays whole
//!   then, in this order:  ACL --> server          (next UDP query, next TCP connection)
//!                         cache policy --> cache  (entries kept)
//!                         hosts + special names + forwarder --> Swappable (next miss)
//!                         hosts-file and network watchers restarted for the new stages
//! ```
//!
//! Everything that can fail is done before anything is swapped: the file is read and checked as
//! `check-config` and start-up check it, the hosts file is read and every upstream transport built.
//! Only then are the parts swapped, each atomically; a query sees either the old or the new value of
//! each part (a query arriving during the few instructions between two swaps may see a new ACL and
//! the old upstreams). The listeners (their sockets) and the cache (its entries) are kept.
//!
//! What the running process cannot take without a restart is left as it was and named, key by
//! key, in a warning that says it "needs a restart" ([`restart_only_changes`], listed in the
//! README's "What a reload applies"): the listeners and everything sized or set when they were
//! bound (`server.listen`, `threads`, the TCP and UDP limits, `query_timeout_secs`, the rate
//! limiter, `freebind`), the cache's capacity and file, the log settings and query-log file, the
//! block-list settings but `block.answer` and `block.ttl` (the lists are re-read on SIGHUP by the
//! blocking stage itself), the
//! `[dhcp]` lease settings (the lease file itself is re-read), the metrics listener, the control
//! socket, and the captive-portal setting and its network resolv.conf.
//!
//! The service manager is told RELOADING=1 before and READY=1 after, whether or not the new
//! configuration was taken; one reload runs at a time.

use std::sync::Arc;

use thiserror::Error;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    cache_config, downstream, log_pools, monotonic_us, ConfigSource, Plan, PlanError, Watchers,
};
use crate::block::{BlockSettings, Blocker};
use crate::cache::Cache;
use crate::config::{CaptivePortal, Config, ConfigError};
use crate::forward::Forwarder;
use crate::handler::swap::Swappable;
use crate::hosts::leases::DhcpNames;
use crate::hosts::{Hosts, HostsError};
use crate::notify::Notifier;
use crate::portal::Portal;
use crate::server::{Acl, Controls};

/// Why a reload was refused; the running configuration stays in force.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration does not check.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration checks but cannot run (hosts file, upstream transports).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Without a configuration source (no file to read again), the hosts file could not be read.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// Reading the configuration failed unexpectedly (the blocking task did not finish).
    #[error("reading the configuration failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Computes the STATUS= line when asked.
pub type StatusLine = Arc<dyn Fn() -> String + Send + Sync>;

/// A reload that was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys whose new values are kept for the next restart.
    pub restart_needed: Vec<&'static str>,
}

/// What `dnsveil reload` prints: one line, and one more per key that needs a restart.
impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "configuration reloaded")?;
        for key in &self.restart_needed {
            writeln!(f, "{}", needs_restart(key))?;
        }
        Ok(())
    }
}

/// The warning for a changed key a reload cannot apply.
fn needs_restart(key: &str) -> String {
    format!("{key} changed: needs a restart to take effect (the running value stays until then)")
}

/// Runs reloads; cheap to clone, and every clone reloads the same running service.
#[derive(Clone)]
pub struct Reloader {
    /// Held for a whole reload, across its awaits (a tokio mutex): one reload at a time.
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// What a reload swaps, and what it needs to do so.
pub(super) struct Live {
    pub source: Option<ConfigSource>,
    /// The configuration the process started with (what restart-only keys are compared with).
    pub started: Config,
    pub hosts: Arc<Hosts>,
    pub forwarder: Arc<Forwarder>,
    /// The DHCP names stage, kept across reloads (its lease file is re-read on SIGHUP by `run`).
    pub dhcp: Option<Arc<DhcpNames>>,
    /// The captive-portal stage, kept across reloads (its window and the control socket's hold
    /// on it stay).
    pub portal: Option<Arc<Portal>>,
    pub downstream: Arc<Swappable>,
    pub cache: Option<Arc<Cache>>,
    /// The blocking stage, kept across reloads (its lists are re-read on SIGHUP by `run`); a
    /// reload gives it the new `block.answer` and `block.ttl`.
    pub blocker: Option<Arc<Blocker>>,
    pub server: Controls,
    pub notifier: Arc<Notifier>,
    /// The STATUS= line told with READY=1 (the figures of `crate::observe`).
    pub status: StatusLine,
    pub shutdown: CancellationToken,
}

struct State {
    live: Live,
    /// None once stopped at shutdown.
    watchers: Option<Watchers>,
}

impl Reloader {
    /// A reloader of `live`, whose watchers are `watchers`.
    pub(super) fn new(live: Live, watchers: Watchers) -> Reloader {
        Reloader {
            state: Arc::new(Mutex::new(State {
                live,
                watchers: Some(watchers),
            })),
        }
    }

    /// Reads the configuration again and swaps it in, or refuses it and keeps the running one.
    /// The outcome is logged here (info when taken, a warning naming the keys that wait for a
    /// restart, an error when refused); callers may report it too.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let mut state = self.state.lock().await;
        state.live.notifier.reloading(monotonic_us());
        let result = state.apply().await;
        match &result {
            Ok(done) => {
                info!("configuration reloaded");
                for key in &done.restart_needed {
                    warn!("{}", needs_restart(key));
                }
            }
            Err(e) => error!("reload refused, still serving the previous configuration: {e}"),
        }
        state.live.notifier.ready(&state.status());
        result
    }

    /// The STATUS= line for the service manager (its [`StatusLine`]).
    pub async fn status(&self) -> String {
        self.state.lock().await.status()
    }

    /// Stops the watchers of the configuration in force (shutdown).
    pub(super) async fn stop_watchers(&self) {
        let watchers = self.state.lock().await.watchers.take();
        if let Some(w) = watchers {
            w.stop().await;
        }
    }
}

impl State {
    fn status(&self) -> String {
        (self.live.status)()
    }

    async fn apply(&mut self) -> Result<Reloaded, ReloadError> {
        let Some(source) = self.live.source.clone() else {
            self.live.hosts.reload()?;
            return Ok(Reloaded::default());
        };
        // File reads (config, hosts file, CA files) on a blocking thread.
        let plan = tokio::task::spawn_blocking(move || -> Result<Plan, ReloadError> {
            Ok(Plan::build(source()?)?)
        })
        .await??;
        let Plan {
            config,
            hosts,
            forwarder,
            recursor,
            anchors,
            ..
        } = plan;
        for w in config.warnings() {
            warn!("{w}");
        }
        let live = &mut self.live;
        live.server.set_acl(Acl::new(config.server.allow.clone()));
        if let Some(c) = &live.cache {
            c.set_policy(&cache_config(&config));
        }
        if let Some(b) = &live.blocker {
            b.set_answer(config.block.answer, config.block.ttl);
        }
        live.downstream.swap(downstream(
            &config,
            hosts.clone(),
            live.dhcp.clone(),
            live.portal.clone(),
            forwarder.clone(),
            recursor.clone(),
            anchors,
        ));
        if let Some(r) = recursor {
            tokio::spawn(async move { r.prime().await });
        }
        log_pools(&config, &forwarder);
        if let Some(old) = self.watchers.take() {
            old.stop().await;
        }
        self.watchers = Some(Watchers::start(&config, &hosts, &forwarder, &live.shutdown));
        live.hosts = hosts;
        live.forwarder = forwarder;
        Ok(Reloaded {
            restart_needed: restart_only_changes(&live.started, &config),
        })
    }
}

/// The keys whose values differ between `running` and `new` but that a reload cannot apply.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&running.server, &new.server);
    let (c, d) = (&running.cache, &new.cache);
    let (ra, rb) = (&a.rate_limit, &b.rate_limit);
    let (da, db) = (&running.dhcp, &new.dhcp);
    let (ua, ub) = (&running.upstream, &new.upstream);
    let checks = [
        (a.listen != b.listen, "server.listen"),
        (a.threads != b.threads, "server.threads"),
        (
            a.tcp_idle_timeout != b.tcp_idle_timeout,
            "server.tcp_idle_timeout_secs",
        ),
        (
            a.max_tcp_connections != b.max_tcp_connections,
            "server.max_tcp_connections",
        ),
        (
            a.max_tcp_pipeline != b.max_tcp_pipeline,
            "server.max_tcp_pipeline",
        ),
        (
            a.max_udp_inflight != b.max_udp_inflight,
            "server.max_udp_inflight",
        ),
        (
            a.max_udp_payload != b.max_udp_payload,
            "server.max_udp_payload",
        ),
        (a.freebind != b.freebind, "server.freebind"),
        (
            a.max_tcp_connections_per_client != b.max_tcp_connections_per_client,
            "server.max_tcp_connections_per_client",
        ),
        (
            a.query_timeout != b.query_timeout,
            "server.query_timeout_secs",
        ),
        (ra.qps != rb.qps, "server.rate_limit"),
        // The burst defaults to the rate: named on its own only when the rate stayed.
        (
            ra.qps == rb.qps && ra.burst != rb.burst,
            "server.rate_limit_burst",
        ),
        (ra.slip != rb.slip, "server.rate_limit_slip"),
        (
            ra.ipv4_prefix != rb.ipv4_prefix,
            "server.rate_limit_ipv4_prefix",
        ),
        (
            ra.ipv6_prefix != rb.ipv6_prefix,
            "server.rate_limit_ipv6_prefix",
        ),
        (ra.clients != rb.clients, "server.rate_limit_clients"),
        (
            a.control_socket != b.control_socket,
            "server.control_socket",
        ),
        (
            running.metrics.listen != new.metrics.listen,
            "metrics.listen",
        ),
        (da.lease_file != db.lease_file, "dhcp.lease_file"),
        (da.format != db.format, "dhcp.format"),
        (da.domain != db.domain, "dhcp.domain"),
        (da.ttl != db.ttl, "dhcp.ttl"),
        (
            ua.captive_portal != ub.captive_portal,
            "upstream.captive_portal",
        ),
        // The captive-portal stage reads the network's resolvers from the path it started with
        // (forwarding rules to `network://` take the new path).
        (
            ua.captive_portal == CaptivePortal::Detect
                && ua.network_resolv_conf != ub.network_resolv_conf,
            "upstream.network_resolv_conf",
        ),
        (c.size != d.size, "cache.size"),
        (c.file != d.file, "cache.cache_file"),
        (
            c.save_interval != d.save_interval,
            "cache.save_interval_secs",
        ),
        (running.log.level != new.log.level, "log.level"),
        (running.log.queries != new.log.queries, "log.queries"),
        (
            running.log.queries_file != new.log.queries_file,
            "log.queries_file",
        ),
        // The block lists are re-read on SIGHUP with the settings they started with; the answer
        // mode and TTL are applied.
        (
            BlockSettings {
                answer: new.block.answer,
                ttl: new.block.ttl,
                ..running.block.clone()
            } != new.block,
            "block",
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(changed, key)| changed.then_some(key))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::from_toml(text, "test.toml", std::path::Path::new("/")).unwrap()
    }

    /// What a reload applies is not listed; what waits for a restart is, by its key.
    #[test]
    fn restart_only_keys_are_named() {
        let base = "[upstream]\nservers = [\"udp://127.0.0.1:53\"]\n";
        let running = parse(base);
        let applied = parse(&format!(
            "{base}[server]\nallow = [\"10.0.0.0/8\"]\n[cache]\nmin_ttl = 60\n\
             [hosts]\nrecords = [\"a.lan A 10.0.0.1\"]\n[block]\nanswer = \"null\"\nttl = 60\n"
        ));
        assert!(restart_only_changes(&running, &applied).is_empty());
        let lists = parse(&format!(
            "{base}[block]\nanswer = \"null\"\nrefresh_secs = 600\n"
        ));
        assert_eq!(restart_only_changes(&running, &lists), ["block"]);
        let restart = parse(&format!(
            "{base}[server]\nlisten = [\"127.0.0.1:5353\"]\nthreads = 3\n[cache]\nsize = 10\n\
             [log]\nlevel = \"debug\"\n"
        ));
        assert_eq!(
            restart_only_changes(&running, &restart),
            ["server.listen", "server.threads", "cache.size", "log.level"]
        );
    }

    /// The settings taken when the listeners, the metrics endpoint, the control socket and the
    /// DHCP and captive-portal stages were built are named too, each by its key.
    #[test]
    fn settings_of_the_start_up_stages_are_named() {
        let base = "[upstream]\nservers = [\"udp://127.0.0.1:53\"]\n";
        let running = parse(base);
        let changed = parse(
            "[server]\nrate_limit = 50\nquery_timeout_secs = 3\n\
             max_tcp_connections_per_client = 5\ncontrol_socket = \"/tmp/x.sock\"\n\
             [dhcp]\nlease_file = \"/tmp/leases\"\ndomain = \"home\"\n\
             [metrics]\nlisten = \"127.0.0.1:9153\"\n\
             [log]\nqueries_file = \"/tmp/q.log\"\n\
             [upstream]\nservers = [\"udp://127.0.0.1:53\"]\ncaptive_portal = \"off\"\n",
        );
        assert_eq!(
            restart_only_changes(&running, &changed),
            [
                "server.max_tcp_connections_per_client",
                "server.query_timeout_secs",
                "server.rate_limit",
                "server.control_socket",
                "metrics.listen",
                "dhcp.lease_file",
                "dhcp.domain",
                "upstream.captive_portal",
                "log.queries_file",
            ]
        );
        let done = Reloaded {
            restart_needed: vec!["metrics.listen"],
        };
        assert_eq!(
            done.to_string(),
            "configuration reloaded\nmetrics.listen changed: needs a restart to take effect \
             (the running value stays until then)\n"
        );
    }
}
