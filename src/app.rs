//! The composition root: turns a validated [`Config`] into handlers, a chain and listeners, and runs
//! them until shutdown. Only `main` calls it; nothing imports it.
//!
//! ```text
//!   Config --> Blocker --> Cache --> Hosts --> DhcpNames --> SpecialNames --> Portal --> Validator --> Forwarder(rules, default pool)
//!                |  lists refreshed (URLs fetched through a Chain of the stages after it)
//!                |       \___________________________ downstream Chain ______________________________/
//!                |                   ^ cache refresher (prefetch, stale refresh) runs these
//!                |   Cache + downstream Chain ==> Chain --> Server
//!                +-- cache file: loaded before binding (waited for at most CACHE_LOAD_WAIT),
//!                    saved every save_interval and at shutdown once loaded
//!                                      each pool: strategy + UpstreamSpec -> build_transport
//!   netwatch: resets every pool's connections on resume or network change (netlink)
//!   Sources (query counters, cache, pools) --> GET /metrics (metrics.listen), control socket
//!   (stats, flush, reload, portal), STATUS= every 10 s
//! ```
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
    self, knob, CaptivePortal, Config, ControlSocket as ControlSocketSetting, DnssecMode,
    UpstreamServer,
};
use crate::control::{self, ControlSocket, Controls};
use crate::dnssec::TrustAnchors;
use crate::forward::Forwarder;
use crate::handler::{Chain, Handler, Protocol};
use crate::hosts::leases::{self, DhcpNames};
use crate::hosts::{self, Hosts, HostsError};
use crate::metrics::QueryCounters;
use crate::notify::{self, Notifier};
use crate::observe::{self, Sources};
use crate::portal::Portal;
use crate::server::querylog::{FileLog, QueryLogError};
use crate::server::{acl::Acl, RateLimitConfig, Server, ServerConfig};
use crate::special::SpecialNames;
use crate::upstream::{
    self, netwatch, PoolConfig, Upstream, UpstreamError, UpstreamGroup, UpstreamUrl,
};
use crate::validate::{load_anchors, Validator};
use crate::wire::Name;

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
        Ok(Plan {
            config,
            hosts: Arc::new(hosts),
            dhcp,
            forwarder: Arc::new(forwarder),
            block,
            query_log,
            anchors,
        })
    }

    /// The configuration the plan was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Serves `plan` until `shutdown` is cancelled. Each message on `reload` asks for a reload
/// (SIGHUP).
pub async fn run(
    plan: Plan,
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
    } = plan;
    let started = tokio::time::Instant::now();
    let queries = Arc::new(QueryCounters::new());
    // `dnsveil reload` on the control socket asks through this, as SIGHUP does through `reload`.
    let (reload_tx, mut control_reload) = mpsc::channel::<()>(1);
    let cache = (config.cache.size > 0).then(|| {
        Arc::new(
            Cache::with_clock(cache_config(&config), WallClock::system()).with_wall_clock_seconds(),
        )
    });
    let groups = forwarder.groups();
    let forwarder_pools = forwarder.named_groups();
    for group in &groups {
        info!(
            strategy = config.upstream.strategy.as_str(),
            timeout = ?config.upstream.timeout,
            upstreams = ?group.urls(),
            "upstream pool"
        );
    }
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
                waited = ?CACHE_LOAD_WAIT,
                "cache file still loading; serving meanwhile"
            ),
            LoadWait::ShutDown => {
                info!(file = %shown, "shut down while the cache file was loading; nothing saved");
                return Ok(());
            }
        }
    }

    // The stages after the cache: the server's chain runs them on a miss, the cache's refresher
    // on its own.
    let mut downstream: Vec<Arc<dyn Handler>> = vec![hosts.clone()];
    // Before the special-use names: those answer NXDOMAIN for the private reverse zones the
    // leases' reverse names lie in.
    if let Some(d) = &dhcp {
        downstream.push(d.clone());
    }
    if config.hosts.special_use {
        let forwarded: Vec<Name> = config
            .forward
            .iter()
            .flat_map(|rule| rule.domains.iter().cloned())
            .collect();
        downstream.push(Arc::new(
            SpecialNames::with_single_label(&forwarded, config.hosts.single_label)
                .with_search(config.hosts.search.clone()),
        ));
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
    if let Some(p) = &portal {
        downstream.push(p.clone());
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
        let lookups = Chain::new(vec![forwarder.clone()]);
        downstream.push(Arc::new(Validator::new(
            anchors,
            insecure,
            lookups,
            WallClock::system(),
        )));
    }
    downstream.push(forwarder);
    let mut handlers: Vec<Arc<dyn Handler>> = Vec::new();
    if let Some(c) = &cache {
        handlers.push(c.clone());
    }
    handlers.extend(downstream.iter().cloned());
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
    info!(chain = ?chain.names(), "handler chain assembled");
    let refresher = cache
        .as_ref()
        .map(|c| c.spawn_refresher(Chain::new(downstream), shutdown.clone()));
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

    let sources = Sources {
        queries: queries.clone(),
        cache: cache.clone(),
        pools: forwarder_pools,
        started,
    };
    let server = Server::bind(server_config(&config, queries, query_log), chain).await?;
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
    let limited = server.rate_limit_counters();
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
    let watcher = config
        .hosts
        .file
        .is_some()
        .then(|| hosts.clone().spawn_watcher(shutdown.clone(), HOSTS_POLL));

    let dhcp_watcher = dhcp
        .clone()
        .map(|d| d.spawn_watcher(shutdown.clone(), HOSTS_POLL));

    // Pooled upstream connections are dropped when the machine resumes or its addresses change.
    let net_watcher = netwatch::spawn(groups, shutdown.clone());

    // The sockets are bound: from here queries wait in them, so the service manager may count us
    // as started (Type=notify) and let nss-lookup.target go.
    let notifier = Arc::new(Notifier::from_env());
    let serving_on = server
        .local_addrs()
        .iter()
        .map(|(p, a)| format!("{} {a}", if *p == Protocol::Udp { "udp" } else { "tcp" }))
        .collect::<Vec<_>>()
        .join(", ");
    let serving = tokio::spawn(server.run(shutdown.clone()));
    notifier.ready(&format!("serving on {serving_on}"));
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
        let asked_by = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = reload.recv() => "signal",
            Some(()) = control_reload.recv() => "control socket",
        };
        info!(asked_by, "reloading");
        notifier.reloading(monotonic_us());
        if let Some(d) = &dhcp {
            // The outcome is logged by `reload`.
            let _ = d.reload();
        }
        if let Some(l) = &limited {
            info!(stats = %l, "rate limit statistics");
        }
        if let Some((blocker, settings)) = &block {
            // Built on a blocking thread while the old index keeps serving.
            let (blocker, settings) = (blocker.clone(), settings.clone());
            tokio::spawn(async move { block::reload(&blocker, &settings).await });
        }
        match hosts.reload() {
            Ok(()) => info!("hosts reloaded"),
            Err(e) => warn!(error = %e, "hosts reload failed; keeping the previous table"),
        }
        if let Some(c) = &cache {
            info!(stats = %c.stats(), "cache statistics");
        }
        // Ready again, with the counters (STATUS= is also refreshed every STATUS_EVERY).
        notifier.ready(&format!(
            "{}; serving on {serving_on}",
            sources.snapshot().status()
        ));
    }
    notifier.stopping();
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    for task in [status, metrics, control].into_iter().flatten() {
        let _ = task.await;
    }
    serving.await.context("server task")?;
    if let Some(w) = watcher {
        let _ = w.await;
    }
    if let Some(w) = dhcp_watcher {
        let _ = w.await;
    }
    let _ = net_watcher.task.await;
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
    let default = if config.upstream.servers.is_empty() {
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
