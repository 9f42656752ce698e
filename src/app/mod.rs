//! The composition root: turns a validated [`Config`] into handlers, a chain and listeners, and runs
//! them until shutdown. Only `main` calls it; nothing imports it.
//!
//! ```text
//!   Config --> Blocker --> Cache --> Swappable[ Hosts --> DhcpNames --> SpecialNames --> Portal --> Validator --> Forwarder [--> Recursor] ]
//!                |  lists refreshed (URLs fetched through a Chain of the stages after it)
//!                |       \______________________ downstream Chain, swapped by a reload ______________/
//!                |        resolver.mode = "recursive": the forwarder keeps its rules but has no default pool,
//!                |        and the Recursor (primed at start) resolves the rest from the root; the
//!                |        validator's DNSKEY/DS lookups go to Forwarder + Recursor
//!                |                   ^ cache refresher (prefetch, stale refresh) runs these
//!                |   Cache + Swappable ==> Chain --> Server (+ sockets passed by systemd)
//!                +-- cache file: loaded before binding (waited for at most CACHE_LOAD_WAIT),
//!                    saved every save_interval and at shutdown once loaded
//!                                      each pool: strategy + UpstreamSpec -> build_transport
//!   netwatch: resets every pool's connections on resume or network change (netlink)
//!   Sources (query counters, cache, pools) --> GET /metrics (metrics.listen), control socket
//!   (stats, flush, reload, portal), STATUS= every 10 s
//! ```
//!
//! Reloading ([`reload`]): a [`Reloader`], made by `run` once the server is bound, reads the
//! configuration again from the plan's [`ConfigSource`], builds a new [`Plan`] and swaps its parts
//! in (the downstream stages, the ACL, the cache policy), or refuses it whole. SIGHUP reaches it
//! through `run`'s channel; a control socket started in `run` can hold a clone and call
//! [`Reloader::reload`] itself.
//!
//! Everything that can fail because of the configuration fails before anything starts: what the
//! config layer cannot judge alone (a hosts file that cannot be read, an upstream whose transport
//! cannot be built) is found by [`Plan::build`], which `check-config` calls as `run` does, and
//! whose result `run` then serves (nothing is read or built twice).
//!
//! The cache file is read on a blocking thread before binding, so that the first answers can come
//! from it (a laptop whose upstreams are not reachable yet). Start-up waits for it at most
//! [`CACHE_LOAD_WAIT`] and never past a shutdown: a slow disk or a huge file delays the listeners
//! that long at most, and SIGTERM during the load ends `run` at once (`main` then gives the blocking
//! thread the runtime's shutdown grace, no more). A load still running after the wait goes on while
//! serving; no save happens until it has finished (a save would write a partial cache over the file
//! being read).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::block::{self, BlockSettings, Blocker, LoadError};
use crate::cache::{self, Cache};
use crate::clock::WallClock;
use crate::config::{
    self, knob, CaptivePortal, Config, ConfigError, ControlSocket as ControlSocketSetting,
    DnssecMode, Mode, UpstreamServer,
};
use crate::control::{self, ControlSocket, Controls};
use crate::dnssec::TrustAnchors;
use crate::forward::Forwarder;
use crate::handler::swap::Swappable;
use crate::handler::{Chain, Handler, Protocol};
use crate::hosts::leases::{self, DhcpNames};
use crate::hosts::{self, Hosts, HostsError};
use crate::metrics::QueryCounters;
use crate::notify::{self, Notifier};
use crate::observe::{self, Sources};
use crate::portal::Portal;
use crate::recursor::{HintsError, Recursor, RecursorConfig, RootHints};
use crate::server::querylog::{FileLog, QueryLogError};
use crate::server::{acl::Acl, Activated, RateLimitConfig, Server, ServerConfig};
use crate::special::SpecialNames;
use crate::upstream::{
    self, netwatch, PoolConfig, Upstream, UpstreamError, UpstreamGroup, UpstreamUrl,
};
use crate::validate::{load_anchors, Validator};
use crate::wire::Name;

mod reload;

// The server's pacer must plan the runtime's wake-ups at most half the recursor's shortest
// exchange timeout ahead (see `server::PACE`): a shorter timeout would wake the runtime's thread
// once per upstream query.
const _: () = assert!(
    crate::server::PACE.as_millis() * 2 <= crate::recursor::servers::MIN_TIMEOUT.as_millis()
);

pub use reload::{ReloadError, Reloaded, Reloader};

/// Reads the configuration again for a reload: the file `run` started with and the command-line
/// flags, checked as at start-up ([`Config::check_runnable`]).
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// How often the hosts file is checked for changes (SIGHUP reloads at once).
const HOSTS_POLL: Duration = Duration::from_secs(2);
/// Longest start-up waits for the cache file before binding without it: ample for an ordinary
/// file; a cache of millions of entries or a slow disk may take longer, and is then loaded while
/// serving.
pub const CACHE_LOAD_WAIT: Duration = Duration::from_secs(3);

/// What `run` serves, built from a validated [`Config`] before anything starts: the hosts stage
/// with its file read, and the forwarder with every upstream transport built (CA files and TLS
/// settings included). Nothing here binds, spawns or touches the network.
pub struct Plan {
    config: Config,
    hosts: Arc<Hosts>,
    dhcp: Option<Arc<DhcpNames>>,
    forwarder: Arc<Forwarder>,
    /// The blocking stage with its lists loaded, when any block list is configured.
    block: Option<BlockStage>,
    /// The query log file, opened (`log.queries_file`).
    query_log: Option<Arc<FileLog>>,
    /// The trust anchors, read, when DNSSEC validation is on.
    anchors: Option<TrustAnchors>,
    /// The last stage in recursive mode, with its root hints read.
    recursor: Option<Arc<Recursor>>,
    /// Where a reload reads the configuration again; without one, a reload re-reads the hosts
    /// file only.
    source: Option<ConfigSource>,
}

/// The blocking stage and the settings it reloads from.
type BlockStage = (Arc<Blocker>, Arc<BlockSettings>);

/// Why a valid config still cannot run; found by [`Plan::build`], before anything starts.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The hosts file cannot be loaded.
    #[error(
        "hosts.file: {source}; name a readable file, or set hosts.file = \"\" (--hosts \"\") to \
         serve none"
    )]
    HostsFile {
        #[source]
        source: HostsError,
    },
    /// The DHCP lease file exists but cannot be loaded.
    #[error(
        "dhcp.lease_file: {source}; name the DHCP server's lease file, or remove dhcp.lease_file"
    )]
    LeaseFile {
        #[source]
        source: HostsError,
    },
    /// The transport of the upstream at `key` cannot be built.
    #[error("{key}: {url}: {source}")]
    Upstream {
        key: String,
        url: UpstreamUrl,
        #[source]
        source: Box<UpstreamError>,
    },
    /// The query log file cannot be opened.
    #[error("log.queries_file: {source}; name a writable file, or leave the key out to log queries to the log")]
    QueryLog {
        #[source]
        source: QueryLogError,
    },
    /// A trust anchor file cannot be read or parsed.
    #[error(
        "resolver.trust_anchor: {0}; give a file of DS or DNSKEY records in zone-file form (as \
         unbound's trust-anchor-file), or leave the key out to use the built-in root anchors"
    )]
    TrustAnchor(String),
    /// The root hints file cannot be used.
    #[error(
        "resolver.root_hints: {source}; name a root hints file in named.root format, or remove \
         root_hints (--root-hints) to use the embedded hints"
    )]
    RootHints {
        #[source]
        source: HintsError,
    },
    /// The upstreams at `key` cannot form a pool.
    #[error("{key}: {source}")]
    Pool {
        key: String,
        #[source]
        source: Box<UpstreamError>,
    },
    /// A block or allow list cannot be loaded (the error names its key).
    #[error("{source}; name a readable list file, or remove it from the configuration")]
    Block {
        #[source]
        source: LoadError,
    },
    /// Fetched lists need a directory for their last good copies, and this one cannot be used.
    #[error(
        "block.cache_dir: {}: {problem}; set block.cache_dir to a writable directory (the last \
         good copies of list URLs are kept there)",
        dir.display()
    )]
    BlockCacheDir { dir: PathBuf, problem: String },
}

impl Plan {
    /// Loads the hosts file and builds every upstream transport of `config`.
    pub fn build(config: Config) -> Result<Plan, PlanError> {
        let hosts = Hosts::new(hosts_config(&config.hosts))
            .map_err(|source| PlanError::HostsFile { source })?;
        let dhcp = match dhcp_config(&config.dhcp) {
            Some(c) => Some(Arc::new(
                DhcpNames::new(c).map_err(|source| PlanError::LeaseFile { source })?,
            )),
            None => None,
        };
        let forwarder = build_forwarder(&config)?;
        let block = build_blocker(&config)?;
        let query_log = match &config.log.queries_file {
            Some(path) => Some(Arc::new(
                FileLog::open(path).map_err(|source| PlanError::QueryLog { source })?,
            )),
            None => None,
        };
        let anchors = match config.resolver.dnssec {
            DnssecMode::Off => None,
            DnssecMode::Validate => {
                Some(load_anchors(&config.resolver.trust_anchors).map_err(PlanError::TrustAnchor)?)
            }
        };
        let recursor = match config.resolver.mode {
            Mode::Forward => None,
            Mode::Recursive => {
                let r = &config.resolver;
                let hints = match &r.root_hints {
                    None => RootHints::embedded(),
                    Some(path) => {
                        RootHints::load(path).map_err(|source| PlanError::RootHints { source })?
                    }
                };
                Some(Arc::new(Recursor::new(RecursorConfig {
                    hints,
                    query_port: r.query_port,
                    query_ipv6: r.query_ipv6,
                    case_randomization: r.qname_case_randomization,
                })))
            }
        };
        Ok(Plan {
            config,
            hosts: Arc::new(hosts),
            dhcp,
            forwarder: Arc::new(forwarder),
            block,
            query_log,
            anchors,
            recursor,
            source: None,
        })
    }

    /// Reloads (SIGHUP, [`Reloader::reload`]) read the configuration with `source`: the file
    /// `run` was started with, and the command-line flags applied to it again.
    pub fn reloading_from(mut self, source: ConfigSource) -> Plan {
        self.source = Some(source);
        self
    }

    /// The configuration the plan was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Serves `plan` until `shutdown` is cancelled, on the configured listen addresses and the
/// sockets the service manager passed (`activated`). Each message on `reload` asks for a reload
/// (SIGHUP).
pub async fn run(
    plan: Plan,
    activated: Activated,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
) -> Result<()> {
    let Plan {
        config,
        hosts,
        dhcp,
        forwarder,
        block,
        query_log,
        anchors,
        recursor,
        source,
    } = plan;
    let started = tokio::time::Instant::now();
    let queries = Arc::new(QueryCounters::new());
    // `dnsveil reload` on the control socket asks through this, as SIGHUP does through `reload`.
    // Each carries where the outcome goes (the command answers when the reload is over).
    let (reload_tx, mut control_reload) =
        mpsc::channel::<control::ReloadReply>(control::MAX_CONNECTIONS);
    let cache = (config.cache.size > 0).then(|| {
        Arc::new(
            Cache::with_clock(cache_config(&config), WallClock::system()).with_wall_clock_seconds(),
        )
    });
    log_pools(&config, &forwarder);
    let forwarder_pools = forwarder.named_groups();
    let cache_file = cache.as_ref().and(config.cache.file.clone());
    // True once the cache file has been read (or there is none).
    let (loaded_tx, loaded) = watch::channel(cache_file.is_none());
    if let (Some(c), Some(path)) = (&cache, &cache_file) {
        let shown = path.display().to_string();
        let loading = tokio::spawn(load_cache(c.clone(), path.clone(), loaded_tx));
        match wait_for_load(loading, CACHE_LOAD_WAIT, &shutdown).await {
            LoadWait::Done => {}
            LoadWait::StillLoading => warn!(
                file = %shown,
                waited_ms = CACHE_LOAD_WAIT.as_millis() as u64,
                "cache file still loading; serving meanwhile"
            ),
            LoadWait::ShutDown => {
                info!(file = %shown, "shut down while the cache file was loading; nothing saved");
                return Ok(());
            }
        }
    }

    // Captive portals: connectivity checks (and `dnsveil portal` windows) through the network's
    // resolvers, before validation (a portal's resolver answers what it likes).
    let portal = (config.upstream.captive_portal == CaptivePortal::Detect).then(|| {
        let timeout = config.upstream.timeout;
        let network = upstream::network::NetworkTransport::new(
            config.upstream.network_resolv_conf.clone(),
            timeout,
        );
        let default = forwarder_pools
            .iter()
            .find(|(name, _)| name == "default")
            .map(|(_, g)| g.clone());
        Arc::new(Portal::new(
            Upstream::new(Arc::new(network), timeout + Duration::from_millis(500)),
            default,
        ))
    });
    // The stages after the cache, swapped whole by a reload: the server's chain runs them on a
    // miss, the cache's refresher on its own.
    let downstream_chain = downstream(
        &config,
        hosts.clone(),
        dhcp.clone(),
        portal.clone(),
        forwarder.clone(),
        recursor.clone(),
        anchors,
    );
    info!(stages = %downstream_chain.names().join(" -> "), "handler stages after the cache");
    let downstream = Arc::new(Swappable::new(downstream_chain));
    if let Some(r) = &recursor {
        let r = r.clone();
        tokio::spawn(async move { r.prime().await });
    }
    let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
    if let Some(c) = &cache {
        handlers.push(c.clone());
    }
    handlers.push(downstream.clone());
    // Block lists: in front of everything (see `block`); URL lists are fetched with a chain of the
    // stages after it, so their hosts are resolved through our own upstreams.
    let list_wake = Arc::new(tokio::sync::Notify::new());
    let refresher_lists = block.as_ref().map(|(blocker, settings)| {
        tokio::spawn(block::fetch::refresh_loop(
            blocker.clone(),
            settings.clone(),
            Chain::new(handlers.clone()),
            list_wake.clone(),
            shutdown.clone(),
        ))
    });
    if let Some((blocker, _)) = &block {
        handlers.insert(0, blocker.clone());
    }
    let chain = Arc::new(Chain::new(handlers));
    info!(chain = %chain.names().join(" -> "), "handler chain assembled");
    let refresher = cache.as_ref().map(|c| {
        c.spawn_refresher(
            Chain::new(vec![downstream.clone() as Arc<dyn Handler>]),
            shutdown.clone(),
        )
    });
    let saver = match (&cache, &cache_file) {
        (Some(c), Some(path)) if !config.cache.save_interval.is_zero() => {
            Some(tokio::spawn(save_periodically(
                c.clone(),
                path.clone(),
                config.cache.save_interval,
                loaded.clone(),
                shutdown.clone(),
            )))
        }
        _ => None,
    };

    let server = Server::bind_with(
        server_config(&config, queries.clone(), query_log),
        chain,
        activated,
    )
    .await?;
    let limited = server.rate_limit_counters();
    let sources = Sources {
        queries,
        cache: cache.clone(),
        pools: forwarder_pools,
        started,
        rate_limit: limited.clone(),
    };
    // The metrics endpoint and the control socket are bound before READY=1 too: a failure to
    // bind an address the user asked for stops start-up, as a listener's does.
    let metrics = match config.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics.listen: cannot bind {addr}"))?;
            info!(
                addr = %listener.local_addr().unwrap_or(addr),
                "metrics endpoint listening (GET /metrics)"
            );
            Some(tokio::spawn(observe::http::serve(
                listener,
                sources.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let control = bind_control(&config.server.control_socket)?.map(|socket| {
        let controls = Arc::new(Controls {
            sources: sources.clone(),
            reload: reload_tx.clone(),
            portal: portal.clone().map(|p| -> control::PortalOpener {
                Arc::new(move |minutes| {
                    Ok(p.open_window(Duration::from_secs(u64::from(minutes) * 60)))
                })
            }),
        });
        tokio::spawn(socket.serve(controls, shutdown.clone()))
    });
    if let Some(rl) = config
        .server
        .rate_limit
        .enabled()
        .then_some(config.server.rate_limit)
    {
        info!(
            qps = rl.qps,
            burst = rl.burst,
            slip = rl.slip,
            ipv4_prefix = rl.ipv4_prefix,
            ipv6_prefix = rl.ipv6_prefix,
            "rate limiting UDP queries per client network"
        );
    }
    let watchers = Watchers::start(&config, &hosts, &forwarder, &shutdown);
    let dhcp_watcher = dhcp
        .clone()
        .map(|d| d.spawn_watcher(shutdown.clone(), HOSTS_POLL));

    // The sockets are bound: from here queries wait in them, so the service manager may count us
    // as started (Type=notify) and let nss-lookup.target go.
    let notifier = Arc::new(Notifier::from_env());
    let serving_on = server
        .local_addrs()
        .iter()
        .map(|(p, a)| format!("{} {a}", if *p == Protocol::Udp { "udp" } else { "tcp" }))
        .collect::<Vec<_>>()
        .join(", ");
    let reloader = Reloader::new(
        reload::Live {
            source,
            started: config.clone(),
            hosts,
            forwarder,
            dhcp: dhcp.clone(),
            portal: portal.clone(),
            downstream,
            cache: cache.clone(),
            blocker: block.as_ref().map(|(blocker, _)| blocker.clone()),
            server: server.controls(),
            notifier: notifier.clone(),
            status: {
                let (sources, serving_on) = (sources.clone(), serving_on.clone());
                Arc::new(move || {
                    format!("{}; serving on {serving_on}", sources.snapshot().status())
                })
            },
            shutdown: shutdown.clone(),
        },
        watchers,
    );
    let serving = tokio::spawn(server.run(shutdown.clone()));
    notifier.ready(&reloader.status().await);
    let watchdog = notify::watchdog_interval()
        .map(|every| tokio::spawn(keep_watchdog(notifier.clone(), every, shutdown.clone())));
    let status = notifier.is_active().then(|| {
        tokio::spawn(keep_status(
            notifier.clone(),
            sources.clone(),
            serving_on.clone(),
            shutdown.clone(),
        ))
    });
    loop {
        let (asked_by, reply) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = reload.recv() => ("signal", None),
            Some(reply) = control_reload.recv() => ("control socket", Some(reply)),
        };
        info!(asked_by, "reloading");
        if let Some(d) = &dhcp {
            // The outcome is logged by `reload`.
            let _ = d.reload();
        }
        // The outcome is logged by the reload itself (RELOADING=1 and READY=1 around it), and
        // told to the control socket's client if one asked.
        let outcome = reloader.reload().await;
        if let Some(reply) = reply {
            let _ = reply.send(outcome.map(|done| done.to_string()).map_err(|e| {
                format!("reload refused, still serving the previous configuration: {e}")
            }));
        }
        if let Some(l) = &limited {
            info!(stats = %l, "rate limit statistics");
        }
        if let Some((blocker, settings)) = &block {
            // Built on a blocking thread while the old index keeps serving.
            let (blocker, settings) = (blocker.clone(), settings.clone());
            tokio::spawn(async move { block::reload(&blocker, &settings).await });
        }
        if let Some(c) = &cache {
            info!(stats = %c.stats(), "cache statistics");
        }
    }
    notifier.stopping();
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    for task in [status, metrics, control].into_iter().flatten() {
        let _ = task.await;
    }
    serving.await.context("server task")?;
    reloader.stop_watchers().await;
    if let Some(w) = dhcp_watcher {
        let _ = w.await;
    }
    if let Some(r) = refresher {
        let _ = r.await;
    }
    if let Some(r) = refresher_lists {
        let _ = r.await;
    }
    if let Some(s) = saver {
        let _ = s.await;
    }
    if let Some(l) = &limited {
        info!(stats = %l, "rate limit statistics");
    }
    if let Some(c) = &cache {
        info!(stats = %c.stats(), "cache statistics");
        match cache_file {
            Some(path) if *loaded.borrow() => save_cache(c.clone(), path).await,
            Some(path) => warn!(
                file = %path.display(),
                "cache file still loading at shutdown; not saved (the file is kept)"
            ),
            None => {}
        }
    }
    info!("shut down");
    Ok(())
}

/// Logs each upstream pool of `forwarder` (at start and after a reload).
fn log_pools(config: &Config, forwarder: &Forwarder) {
    for group in forwarder.groups() {
        info!(
            strategy = config.upstream.strategy.as_str(),
            timeout_ms = config.upstream.timeout.as_millis() as u64,
            upstreams = %group.urls().join(" "),
            "upstream pool"
        );
    }
}

/// The stages after the cache: hosts and local records, special-use names, the DNSSEC validator
/// (with `anchors`), the forwarder.
fn downstream(
    config: &Config,
    hosts: Arc<Hosts>,
    dhcp: Option<Arc<DhcpNames>>,
    portal: Option<Arc<Portal>>,
    forwarder: Arc<Forwarder>,
    recursor: Option<Arc<Recursor>>,
    anchors: Option<TrustAnchors>,
) -> Chain {
    let mut stages: Vec<Arc<dyn Handler>> = vec![hosts];
    // Before the special-use names: those answer NXDOMAIN for the private reverse zones the
    // leases' reverse names lie in.
    if let Some(d) = dhcp {
        stages.push(d);
    }
    if config.hosts.special_use {
        let forwarded: Vec<Name> = config
            .forward
            .iter()
            .flat_map(|rule| rule.domains.iter().cloned())
            .collect();
        stages.push(Arc::new(
            SpecialNames::with_single_label(&forwarded, config.hosts.single_label)
                .with_search(config.hosts.search.clone()),
        ));
    }
    // Captive portals: connectivity checks (and `dnsveil portal` windows) through the network's
    // resolvers, before validation (a portal's resolver answers what it likes).
    if let Some(p) = portal {
        stages.push(p);
    }
    if let Some(anchors) = anchors {
        // The domains of forwarding rules are private zones (a router's `lan`, a VPN's domain,
        // the LAN's reverse zone) that the public DNS proves do not exist: validating them would
        // make every answer bogus. They are negative trust anchors, with the configured ones.
        let mut insecure = config.resolver.insecure_domains.clone();
        insecure.extend(
            config
                .forward
                .iter()
                .flat_map(|r| r.domains.iter().cloned()),
        );
        info!(
            anchors = anchors.len(),
            insecure_domains = insecure.len(),
            "DNSSEC validation on"
        );
        // The validator's DNSKEY and DS lookups go where its queries go: the forwarder, and in
        // recursive mode the recursor after it.
        let mut below: Vec<Arc<dyn Handler>> = vec![forwarder.clone()];
        if let Some(r) = &recursor {
            below.push(r.clone());
        }
        let lookups = Chain::new(below);
        stages.push(Arc::new(Validator::new(
            anchors,
            insecure,
            lookups,
            WallClock::system(),
        )));
    }
    stages.push(forwarder);
    if let Some(r) = recursor {
        stages.push(r);
    }
    Chain::new(stages)
}

/// The tasks that follow the configuration in force: the hosts file's watcher and the network
/// watcher that resets the upstream pools. A reload stops them and starts them for the new
/// configuration.
struct Watchers {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watchers {
    fn start(
        config: &Config,
        hosts: &Arc<Hosts>,
        forwarder: &Forwarder,
        shutdown: &CancellationToken,
    ) -> Watchers {
        let stop = shutdown.child_token();
        let mut tasks = Vec::new();
        if config.hosts.file.is_some() {
            tasks.push(hosts.clone().spawn_watcher(stop.clone(), HOSTS_POLL));
        }
        // Pooled upstream connections are dropped when the machine resumes or its addresses
        // change.
        tasks.push(netwatch::spawn(forwarder.groups(), stop.clone()).task);
        Watchers { stop, tasks }
    }

    /// Stops the tasks and waits for them.
    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Sends WATCHDOG=1 every `every` until shutdown: a runtime that stops polling its tasks stops
/// sending it, and the service manager restarts the service.
async fn keep_watchdog(notifier: Arc<Notifier>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => notifier.watchdog(),
        }
    }
}

/// How often the service manager's STATUS= line is refreshed with the counters.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Refreshes STATUS= every [`STATUS_EVERY`] with queries, cache hit ratio and upstream health.
async fn keep_status(
    notifier: Arc<Notifier>,
    sources: Sources,
    serving_on: String,
    shutdown: CancellationToken,
) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => notifier.status(&format!(
                "{}; serving on {serving_on}",
                sources.snapshot().status()
            )),
        }
    }
}

/// Binds the control socket `setting` asks for. A socket at the default place that cannot be
/// had (no runtime directory, another instance holds it, no rights) is a warning; one at a path
/// the user named is an error.
fn bind_control(setting: &ControlSocketSetting) -> Result<Option<ControlSocket>> {
    let (path, chosen) = match setting {
        ControlSocketSetting::Off => return Ok(None),
        ControlSocketSetting::At(p) => (p.clone(), true),
        ControlSocketSetting::Default => match control::default_path() {
            Some(p) => (p, false),
            None => {
                info!("no runtime directory known; no control socket (see --control-socket)");
                return Ok(None);
            }
        },
    };
    match ControlSocket::bind(&path) {
        Ok(s) => {
            info!(path = %s.path().display(), "control socket listening");
            Ok(Some(s))
        }
        Err(e) if chosen => Err(anyhow::Error::from(e).context("server.control_socket")),
        Err(e) => {
            warn!(error = %e, "no control socket");
            Ok(None)
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it (0 if it cannot be read).
fn monotonic_us() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64).saturating_mul(1_000_000) + (t.tv_nsec() as u64) / 1000
    })
}

fn cache_config(config: &Config) -> cache::CacheConfig {
    let c = &config.cache;
    cache::CacheConfig {
        capacity: c.size,
        min_ttl: c.min_ttl,
        max_ttl: c.max_ttl,
        negative_max_ttl: c.negative_max_ttl,
        servfail_ttl: c.servfail_ttl,
        serve_stale: c.serve_stale,
        stale_max_age: c.stale_max_age,
        stale_answer_ttl: c.stale_answer_ttl,
        client_timeout: c.client_timeout,
        prefetch: c.prefetch,
        edns_payload: config.server.max_udp_payload,
        ..cache::CacheConfig::default()
    }
}

/// What start-up's wait for the cache file ended with.
#[derive(Debug, PartialEq, Eq)]
enum LoadWait {
    Done,
    /// `limit` passed first; the load goes on.
    StillLoading,
    /// Shutdown came first; the load goes on until the runtime is dropped.
    ShutDown,
}

/// Waits for `loading` at most `limit`, and not past `shutdown`.
async fn wait_for_load<F: Future>(
    loading: F,
    limit: Duration,
    shutdown: &CancellationToken,
) -> LoadWait {
    tokio::select! {
        _ = loading => LoadWait::Done,
        _ = tokio::time::sleep(limit) => LoadWait::StillLoading,
        _ = shutdown.cancelled() => LoadWait::ShutDown,
    }
}

/// Restores the cache from its file, then sets `loaded`. A missing file is normal (first start);
/// anything wrong with it is a warning, never a failure to start: the cache simply starts cold.
async fn load_cache(cache: Arc<Cache>, path: PathBuf, loaded: watch::Sender<bool>) {
    let shown = path.display().to_string();
    let result = tokio::task::spawn_blocking(move || cache.load(&path)).await;
    loaded.send_replace(true);
    match result {
        Ok(Ok(r)) => info!(
            file = %shown,
            loaded = r.loaded,
            expired = r.expired,
            rejected = r.rejected,
            "cache restored"
        ),
        Ok(Err(e)) if e.is_not_found() => info!(file = %shown, "no cache file yet; starting cold"),
        Ok(Err(e)) => warn!(file = %shown, error = %e, "cache file ignored; starting cold"),
        Err(e) => warn!(file = %shown, error = %e, "cache load failed"),
    }
}

/// Writes the cache file (on a blocking thread); failures are logged.
async fn save_cache(cache: Arc<Cache>, path: PathBuf) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || cache.save(&path)).await {
        Ok(Ok(n)) => info!(file = %shown, entries = n, "cache saved"),
        Ok(Err(e)) => warn!(file = %shown, error = %e, "cache not saved"),
        Err(e) => warn!(file = %shown, error = %e, "cache save failed"),
    }
}

/// Saves the cache every `every` until shutdown, once `loaded` (the final save is the caller's).
async fn save_periodically(
    cache: Arc<Cache>,
    path: PathBuf,
    every: Duration,
    mut loaded: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = loaded.wait_for(|done| *done) => {}
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => save_cache(cache.clone(), path.clone()).await,
        }
    }
}

/// The block settings `run` uses: the configured ones, with the last good copies of fetched lists
/// beside the cache file when `block.cache_dir` is not set and there is a cache file.
pub fn block_settings(config: &Config) -> BlockSettings {
    let mut settings = config.block.clone();
    if settings.cache_dir.is_none() {
        settings.cache_dir = config
            .cache
            .file
            .as_deref()
            .and_then(|f| f.parent())
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from);
    }
    settings
}

/// Loads the lists (before anything binds: a missing list file is a configuration error) and
/// checks that fetched lists have a directory for their copies.
fn build_blocker(config: &Config) -> Result<Option<BlockStage>, PlanError> {
    let settings = block_settings(config);
    if settings.is_empty() {
        return Ok(None);
    }
    if settings.urls().next().is_some() {
        check_copy_dir(settings.copy_dir())?;
    }
    let (index, report) =
        block::load::build_index(&settings).map_err(|source| PlanError::Block { source })?;
    block::log_report(&report, false);
    let blocker = Blocker::new(
        index,
        settings.answer,
        settings.ttl,
        config.server.max_udp_payload,
    );
    Ok(Some((Arc::new(blocker), Arc::new(settings))))
}

/// Whether `dir` is a writable directory, or can be created (its nearest existing ancestor is a
/// writable directory). Nothing is created here: `check-config` calls this too.
fn check_copy_dir(dir: &std::path::Path) -> Result<(), PlanError> {
    use nix::unistd::{access, AccessFlags};
    let problem = |problem: String| PlanError::BlockCacheDir {
        dir: dir.to_path_buf(),
        problem,
    };
    let mut probe = dir;
    loop {
        match std::fs::metadata(probe) {
            Ok(m) if m.is_dir() => {
                return access(probe, AccessFlags::W_OK | AccessFlags::X_OK)
                    .map_err(|e| problem(format!("{} is not writable: {e}", probe.display())));
            }
            Ok(_) => return Err(problem(format!("{} is not a directory", probe.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match probe.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                _ => return Err(problem("no existing parent directory".into())),
            },
            Err(e) => return Err(problem(e.to_string())),
        }
    }
}

fn hosts_config(h: &config::HostsConfig) -> hosts::HostsConfig {
    hosts::HostsConfig {
        file: h.file.clone(),
        records: h.records.clone(),
        ttl: h.ttl,
    }
}

fn dhcp_config(d: &config::DhcpConfig) -> Option<leases::DhcpConfig> {
    Some(leases::DhcpConfig {
        lease_file: d.lease_file.clone()?,
        format: d.format,
        domain: d.domain.clone(),
        ttl: d.ttl,
    })
}

fn server_config(
    c: &Config,
    metrics: Arc<QueryCounters>,
    query_log_file: Option<Arc<FileLog>>,
) -> ServerConfig {
    let s = &c.server;
    ServerConfig {
        listen: s.listen.clone(),
        acl: Acl::new(s.allow.clone()),
        tcp_idle_timeout: s.tcp_idle_timeout,
        max_tcp_connections: s.max_tcp_connections,
        max_tcp_per_client: s.max_tcp_connections_per_client,
        query_deadline: s.query_timeout,
        rate_limit: s.rate_limit.enabled().then_some(RateLimitConfig {
            qps: s.rate_limit.qps,
            burst: s.rate_limit.burst,
            slip: s.rate_limit.slip,
            ipv4_prefix: s.rate_limit.ipv4_prefix,
            ipv6_prefix: s.rate_limit.ipv6_prefix,
            max_clients: s.rate_limit.clients,
        }),
        max_tcp_pipeline: s.max_tcp_pipeline,
        max_udp_inflight: s.max_udp_inflight,
        udp_sockets_per_addr: knob::worker_threads(s.threads),
        max_udp_payload: s.max_udp_payload,
        log_queries: c.log.queries,
        freebind: s.freebind,
        query_log_file,
        metrics,
    }
}

/// A pool of `servers` (configured at `key`), with the configured strategy and time budget.
fn build_group(
    servers: &[UpstreamServer],
    key: &str,
    config: &Config,
) -> Result<Arc<UpstreamGroup>, PlanError> {
    let timeout = config.upstream.timeout;
    let upstreams = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut spec = s.spec(timeout);
            if let UpstreamUrl::Network { path: path @ None } = &mut spec.url {
                path.clone_from(&config.upstream.network_resolv_conf);
            }
            let transport =
                upstream::build_transport(&spec).map_err(|source| PlanError::Upstream {
                    key: format!("{key}[{i}]"),
                    url: s.url.clone(),
                    source: Box::new(source),
                })?;
            Ok(Upstream::new(
                transport,
                timeout + Duration::from_millis(500),
            ))
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let pool = PoolConfig {
        strategy: strategy(config.upstream.strategy),
        timeout,
        ..PoolConfig::default()
    };
    let group = UpstreamGroup::with_config(upstreams, pool).map_err(|source| PlanError::Pool {
        key: key.to_string(),
        source: Box::new(source),
    })?;
    Ok(Arc::new(group))
}

fn strategy(s: config::Strategy) -> upstream::Strategy {
    match s {
        config::Strategy::Fastest => upstream::Strategy::Fastest,
        config::Strategy::Ordered => upstream::Strategy::Ordered,
        config::Strategy::Parallel => upstream::Strategy::Parallel,
    }
}

fn build_forwarder(config: &Config) -> Result<Forwarder, PlanError> {
    let mut rules = Vec::new();
    for (i, rule) in config.forward.iter().enumerate() {
        let group = build_group(&rule.upstreams, &format!("forward[{i}].upstreams"), config)?;
        for domain in &rule.domains {
            rules.push((domain.clone(), group.clone()));
        }
    }
    // In recursive mode names no rule matches go on to the recursor.
    let default = if config.upstream.servers.is_empty() || config.resolver.mode == Mode::Recursive {
        None
    } else {
        Some(build_group(
            &config.upstream.servers,
            "upstream.servers",
            config,
        )?)
    };
    Ok(Forwarder::new(rules, default))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load that never ends delays start-up by the limit only; a shutdown during it ends the
    /// wait at once.
    #[tokio::test(start_paused = true)]
    async fn start_up_waits_for_the_cache_file_within_its_limit_and_not_past_shutdown() {
        let shutdown = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let wait = wait_for_load(std::future::pending::<()>(), CACHE_LOAD_WAIT, &shutdown).await;
        assert_eq!(wait, LoadWait::StillLoading);
        assert_eq!(started.elapsed(), CACHE_LOAD_WAIT);

        let started = tokio::time::Instant::now();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        });
        let wait = wait_for_load(std::future::pending::<()>(), CACHE_LOAD_WAIT, &shutdown).await;
        assert_eq!(wait, LoadWait::ShutDown);
        assert_eq!(started.elapsed(), Duration::from_millis(100));

        let wait = wait_for_load(async {}, CACHE_LOAD_WAIT, &CancellationToken::new()).await;
        assert_eq!(wait, LoadWait::Done);
    }
}
