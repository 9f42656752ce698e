//! Configuration: a TOML file (or the embedded default) turned into a validated [`Config`].
//!
//! ```text
//!   TOML text --serde (spec.rs, deny_unknown_fields)--> file spec --validate--> Config
//!                                                                   ^
//!   command-line flags ---------------------------- Overrides ------+ (Config::apply)
//! ```
//!
//! This is the only module that knows serde or TOML. [`Config`] is plain, already-checked data: every
//! address parsed, every number within its [`knob`] range, every upstream URL usable as given. The
//! parts of the program that consume it never re-validate and never see the file format.
//!
//! Errors name the key (`server.listen[1]`, `upstream.servers[0].bootstrap`, or the flag
//! `--upstream`) and say what is expected. Unknown keys are errors, so a typo never silently falls
//! back to a default.
//!
//! Local records (`hosts.records`) are parsed here, and extra CA files (`ca_file`, `--ca-file`) are
//! read as the TLS layer will read them, so that their errors name the key like any other. What
//! can only be checked by building the service (the hosts file, the upstream transports) is checked
//! by `app::Plan::build`, which `check-config` and `run` both call before anything starts.
//!
//! Limitations: the hosts file is named here, not read (it is read once, by the hosts stage).

pub mod knob;
mod spec;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::block::BlockSettings;
pub use crate::hosts::leases::LeaseFormat;
use crate::server::acl::Cidr;
use crate::upstream::{UpstreamError, UpstreamSpec, UpstreamUrl};
use crate::wire::{Name, Record, WireError};

pub use knob::Knob;

/// The configuration used when no file is given: loopback listeners on port 53, loopback clients,
/// /etc/hosts, the cache, and Cloudflare and Quad9 over DoT and DoH with their published addresses.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// Most listen addresses accepted.
pub const MAX_LISTEN: usize = 64;
/// Most upstream servers in one list (the default list or one forwarding rule).
pub const MAX_UPSTREAMS: usize = 32;
/// Most bootstrap addresses per upstream.
pub const MAX_BOOTSTRAP: usize = 16;
/// TTL of a local record written without one, in seconds.
pub const LOCAL_RECORD_TTL: u32 = 3600;

/// Why `network://` is refused outside forwarding rules.
pub(crate) const NETWORK_ONLY_IN_RULES: &str =
    "network:// (the resolvers the network gave us, plain DNS) is allowed only in [[forward]] \
     rules, never as the default route; put it in a rule for the names it should answer, e.g. \
     [[forward]] domains = [\"lan\"] upstreams = [\"network://\"]";

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub hosts: HostsConfig,
    pub dhcp: DhcpConfig,
    pub upstream: UpstreamConfig,
    /// Forwarding rules, in file order (the forward stage picks the longest matching domain).
    pub forward: Vec<ForwardRule>,
    pub log: LogConfig,
    /// `[block]`: block and allow lists ([`crate::block`]).
    pub block: BlockSettings,
    pub metrics: MetricsConfig,
    pub resolver: ResolverConfig,
}

/// `[resolver]`: how answers are obtained and checked: DNSSEC validation, its trust anchors and
/// the zones exempt from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// `resolver.mode`: forward to upstreams (the default) or resolve from the root.
    pub mode: Mode,
    /// `resolver.root_hints`: a named.root file replacing the embedded root hints (recursive
    /// mode; read by `app::Plan::build`).
    pub root_hints: Option<PathBuf>,
    /// `resolver.query_port`: port of the authoritative servers (recursive mode).
    pub query_port: u16,
    /// `resolver.query_ipv6`: ask authoritative servers over IPv6 too (recursive mode).
    pub query_ipv6: bool,
    /// `resolver.qname_case_randomization`: 0x20 case randomisation of the names in queries to
    /// authoritative servers (recursive mode; off by default, as unbound's `use-caps-for-id`).
    pub qname_case_randomization: bool,
    pub dnssec: DnssecMode,
    /// Trust anchor files (DS or DNSKEY records in zone-file form, as unbound's
    /// `trust-anchor-file`), absolute or relative to the config file. Empty: the IANA root
    /// anchors embedded from `certs/root-anchors.txt`.
    pub trust_anchors: Vec<PathBuf>,
    /// Negative trust anchors (RFC 7646): zones whose answers are not validated (treated as
    /// insecure), for zones known to be broken.
    pub insecure_domains: Vec<Name>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            mode: Mode::Forward,
            root_hints: None,
            query_port: knob::QUERY_PORT.default as u16,
            query_ipv6: true,
            qname_case_randomization: false,
            dnssec: DnssecMode::Validate,
            trust_anchors: Vec::new(),
            insecure_domains: Vec::new(),
        }
    }
}

/// `resolver.mode` / `--mode`: how names no forwarding rule matches are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Sent to `upstream.servers`.
    #[default]
    Forward,
    /// Resolved iteratively from the root ([`crate::recursor`]); `upstream.servers` is unused.
    Recursive,
}

impl Mode {
    pub const NAMES: &'static str = "forward or recursive";

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Forward => "forward",
            Mode::Recursive => "recursive",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forward" => Ok(Mode::Forward),
            "recursive" => Ok(Mode::Recursive),
            _ => Err(format!("{s:?} is not a mode (expected {})", Mode::NAMES)),
        }
    }
}

/// `resolver.dnssec` / `--dnssec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DnssecMode {
    /// Validate every answer from upstream (RFC 4035); bogus answers become SERVFAIL.
    #[default]
    Validate,
    /// No validation: answers pass as the upstream sent them (its AD bit included).
    Off,
}

impl DnssecMode {
    pub const NAMES: &'static str = "\"validate\" or \"off\"";

    pub fn as_str(self) -> &'static str {
        match self {
            DnssecMode::Validate => "validate",
            DnssecMode::Off => "off",
        }
    }
}

impl std::str::FromStr for DnssecMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "validate" => Ok(DnssecMode::Validate),
            "off" => Ok(DnssecMode::Off),
            _ => Err(format!(
                "{s:?} is not a DNSSEC mode (expected {})",
                DnssecMode::NAMES
            )),
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where to serve `GET /metrics`; off when `None` (the default).
    pub listen: Option<SocketAddr>,
}

/// Where the control socket is (`server.control_socket`, `--control-socket`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ControlSocket {
    /// Under the runtime directory (see `control::default_path`).
    #[default]
    Default,
    /// At this path.
    At(PathBuf),
    /// None (`""`).
    Off,
}

/// `[server]`: listeners, client access and resource limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// UDP and TCP are both served on each address. Never empty, no duplicates.
    pub listen: Vec<SocketAddr>,
    /// Client networks allowed to query; others get REFUSED. Never empty.
    pub allow: Vec<Cidr>,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    pub tcp_idle_timeout: Duration,
    pub max_tcp_connections: usize,
    pub max_tcp_pipeline: usize,
    pub max_udp_inflight: usize,
    pub max_udp_payload: u16,
    /// Bind listen addresses that are not (yet) on any interface (IP_FREEBIND): a LAN address
    /// whose interface comes up after dnsveil starts.
    pub freebind: bool,
    /// The control socket (`dnsveil stats`, `flush`, `reload`, `portal`).
    pub control_socket: ControlSocket,
    /// Concurrent TCP connections from one client (address, or IPv6 /64).
    pub max_tcp_connections_per_client: usize,
    /// A query not answered after this long is abandoned.
    pub query_timeout: Duration,
    /// Per-client rate limiting of UDP queries (off when its `qps` is 0).
    pub rate_limit: RateLimit,
    /// The operator's explicit consent to serve anyone from a public address (see
    /// [`Config::check_runnable`]).
    pub open_resolver: bool,
}

/// `server.rate_limit*`: a token bucket per client network for UDP queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Queries per second per client network; 0 = off.
    pub qps: u32,
    /// Bucket size; never 0 (an absent or zero `rate_limit_burst` means `qps`).
    pub burst: u32,
    /// Every `slip`-th limited query gets TC=1; 0 = drop all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Most client networks tracked.
    pub clients: usize,
}

impl RateLimit {
    /// True when limiting is on.
    pub fn enabled(&self) -> bool {
        self.qps > 0
    }
}

/// `[dhcp]`: names from the DHCP server's lease file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The lease file (absolute or relative to the config file), or none.
    pub lease_file: Option<PathBuf>,
    /// How the file is written.
    pub format: LeaseFormat,
    /// The domain the host names are served under (`laptop` becomes `laptop.lan`).
    pub domain: Name,
    /// TTL of the answers, in seconds.
    pub ttl: u32,
}

/// `[cache]`: capacity, TTL clamps (all TTLs in seconds), serve-stale, prefetch and the cache file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Capacity in entries; 0 disables the cache.
    pub size: usize,
    /// Always `<= max_ttl`.
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
    pub servfail_ttl: u32,
    /// Answer from expired data when the upstreams fail or are late (RFC 8767).
    pub serve_stale: bool,
    /// Seconds past expiry an answer may be served stale.
    pub stale_max_age: u32,
    /// TTL of a stale answer, in seconds.
    pub stale_answer_ttl: u32,
    /// How long a query for stale data waits for its refresh; zero answers stale at once.
    pub client_timeout: Duration,
    /// Refresh popular entries before they expire.
    pub prefetch: bool,
    /// Where the cache is saved and restored from (absolute or relative to the config file), if
    /// anywhere.
    pub file: Option<PathBuf>,
    /// How often the cache file is rewritten while running; zero = only at shutdown.
    pub save_interval: Duration,
}

/// `[hosts]`: the hosts file and extra local records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsConfig {
    /// The hosts file to serve (absolute or relative to the config file), or none.
    pub file: Option<PathBuf>,
    /// TTL of answers from the hosts file, in seconds.
    pub ttl: u32,
    /// Local records, from zone-file lines (`router.lan. 300 IN A 192.168.1.1`); a line without
    /// a TTL gets [`LOCAL_RECORD_TTL`].
    pub records: Vec<Record>,
    /// Answer special-use names (`localhost`, private reverse zones, ...) here ([`crate::special`]).
    pub special_use: bool,
    /// With `special_use`, answer single-label names (`printer`, `wpad`) NXDOMAIN here too.
    pub single_label: bool,
    /// Search domains for single-label names (`printer` -> `printer.lan`), tried in order.
    pub search: Vec<Name>,
}

/// `[upstream]`: the default upstream servers and how they are used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// May be empty in a file (see [`Config::check_runnable`]); no duplicates.
    pub servers: Vec<UpstreamServer>,
    pub strategy: Strategy,
    /// Time budget of one client query across all attempts.
    pub timeout: Duration,
    /// Where `network://` (without a path of its own) and the captive-portal stage read the
    /// network's resolvers; `None`: the first found of `upstream::network::SOURCES`.
    pub network_resolv_conf: Option<PathBuf>,
    pub captive_portal: CaptivePortal,
}

/// `upstream.captive_portal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaptivePortal {
    /// Fail closed, no exception.
    Off,
    /// Connectivity-check names through the network's resolvers while the upstreams are
    /// unreachable, and `dnsveil portal` windows.
    #[default]
    Detect,
}

/// One upstream server and its connection options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamServer {
    pub url: UpstreamUrl,
    /// Addresses to connect to when the URL's host is a name. Non-empty exactly when the URL is
    /// `tls://` or `https://` with a host name (an IP host or a plain upstream needs none).
    pub bootstrap: Vec<IpAddr>,
    /// An extra PEM CA file trusted for this upstream, in addition to the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// SPKI pins: if non-empty, the server's certificate chain must contain one of these keys.
    pub pins: Vec<SpkiPin>,
    /// How DoH queries are sent (only meaningful for `https://`).
    pub doh_method: DohMethod,
}

impl UpstreamServer {
    /// An upstream with no options (no bootstrap, CA or pins).
    pub fn new(url: UpstreamUrl) -> Self {
        UpstreamServer {
            url,
            bootstrap: Vec::new(),
            ca_file: None,
            pins: Vec::new(),
            doh_method: DohMethod::Post,
        }
    }

    /// The socket addresses to connect to: the URL's own address, or each bootstrap address with the
    /// URL's port.
    pub fn connect_addrs(&self) -> Vec<SocketAddr> {
        let port = match &self.url {
            UpstreamUrl::Udp(a) | UpstreamUrl::Tcp(a) => return vec![*a],
            // Read from the network's resolv.conf at query time.
            UpstreamUrl::Network { .. } => return Vec::new(),
            UpstreamUrl::Tls { port, .. } | UpstreamUrl::Https { port, .. } => *port,
        };
        match self.url.host_ip() {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => self
                .bootstrap
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect(),
        }
    }

    /// What the transport layer needs to build this upstream, each exchange limited to `timeout`.
    /// The one conversion from the config's view of an upstream to the transport's: `run` and
    /// `dnsveil query` both use it.
    pub fn spec(&self, timeout: Duration) -> UpstreamSpec {
        UpstreamSpec {
            url: self.url.clone(),
            bootstrap: self.connect_addrs(),
            ca_file: self.ca_file.clone(),
            pins: self.pins.iter().map(|p| *p.as_bytes()).collect(),
            doh_get: self.doh_method == DohMethod::Get,
            timeout,
        }
    }
}

/// A SHA-256 digest of a certificate's SubjectPublicKeyInfo (written in base64, as stubby's
/// `tls_pubkey_pinset` and HPKP's `pin-sha256`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for SpkiPin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| {
                format!("{s:?} is not base64 (expected the base64 SHA-256 of the SPKI)")
            })?;
        let digest: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "{s:?} decodes to {} bytes (expected a 32-byte SHA-256 digest, 44 base64 characters)",
                b.len()
            )
        })?;
        Ok(SpkiPin(digest))
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::Engine;
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

/// How the upstream pool picks a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Lowest smoothed latency, with occasional exploration of the others.
    #[default]
    Fastest,
    /// The first healthy server in list order; the next on failure.
    Ordered,
    /// Hedged: a second server is asked when the first has not answered within its usual latency.
    Parallel,
}

impl Strategy {
    pub const NAMES: &'static str = "fastest, ordered or parallel";

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fastest => "fastest",
            Strategy::Ordered => "ordered",
            Strategy::Parallel => "parallel",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fastest" => Ok(Strategy::Fastest),
            "ordered" => Ok(Strategy::Ordered),
            "parallel" => Ok(Strategy::Parallel),
            _ => Err(format!(
                "{s:?} is not a strategy (expected {})",
                Strategy::NAMES
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP method of DNS-over-HTTPS queries (RFC 8484 section 4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DohMethod {
    /// `application/dns-message` body (the default).
    #[default]
    Post,
    /// `?dns=` base64url with message ID 0 (cache-friendly for HTTP caches).
    Get,
}

/// A forwarding rule: names at or below any of `domains` go to `upstreams`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardRule {
    /// Never empty, never the root; a domain appears in at most one rule.
    pub domains: Vec<Name>,
    /// Never empty. Plain `udp://`/`tcp://` is allowed here because the operator named it.
    pub upstreams: Vec<UpstreamServer>,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub level: LogLevel,
    /// Log every query (at `info`). Off by default for privacy.
    pub queries: bool,
    /// Write the query lines to this file instead of the log (implies `queries`).
    pub queries_file: Option<PathBuf>,
}

/// A tracing level name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const NAMES: &'static str = "error, warn, info, debug or trace";

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "{s:?} is not a log level (expected {})",
                LogLevel::NAMES
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a configuration was rejected.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{origin}: line {line}, column {column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key has a bad value, is unknown or is missing. `key` is a path (`server.listen[1]`) or a
    /// command-line flag (`--upstream`).
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
    /// A local record (`hosts.records[i]`) does not parse.
    #[error("{origin}: {key}: {line:?}: {source}")]
    Record {
        origin: String,
        key: String,
        line: String,
        #[source]
        source: WireError,
    },
    /// An extra CA file (`...ca_file` or `--ca-file`) holds no usable certificate.
    #[error(
        "{origin}: {key}: {source}; it must hold the PEM certificates of the CAs to trust \
         (-----BEGIN CERTIFICATE----- blocks)"
    )]
    CaFile {
        origin: String,
        key: String,
        #[source]
        source: Box<UpstreamError>,
    },
}

impl ConfigError {
    /// The offending key path or flag, when the error has one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. }
            | ConfigError::Record { key, .. }
            | ConfigError::CaFile { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    fn flag(flag: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: "command line".into(),
            key: flag.into(),
            message: message.into(),
        }
    }
}

/// Settings given on the command line; each one present replaces the config's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen` (replaces `server.listen`).
    pub listen: Vec<SocketAddr>,
    /// `--allow` (replaces `server.allow`).
    pub allow: Vec<Cidr>,
    /// `--upstream` (replaces `upstream.servers`).
    pub upstreams: Vec<UpstreamUrl>,
    /// `--bootstrap`: addresses for the `--upstream` URLs given by host name.
    pub bootstrap: Vec<IpAddr>,
    /// `--ca-file`: an extra CA for every `--upstream`.
    pub ca_file: Option<PathBuf>,
    pub strategy: Option<Strategy>,
    pub threads: Option<u64>,
    pub cache_size: Option<u64>,
    /// `--serve-stale on|off`.
    pub serve_stale: Option<bool>,
    /// `--prefetch on|off`.
    pub prefetch: Option<bool>,
    /// `--cache-file` (an empty path disables the cache file).
    pub cache_file: Option<PathBuf>,
    /// `--hosts` (an empty path disables the hosts file).
    pub hosts: Option<PathBuf>,
    pub log_level: Option<LogLevel>,
    /// `--log-queries` (only switches logging on).
    pub log_queries: bool,
    /// `--rate-limit QPS` (replaces `server.rate_limit`; 0 = off).
    pub rate_limit: Option<u64>,
    /// `--blocklist FILE|URL` (replaces `block.lists`).
    pub blocklists: Vec<String>,
    /// `--allowlist FILE` (replaces `block.allow`).
    pub allowlists: Vec<String>,
    /// `--metrics ADDR:PORT`: serve the Prometheus endpoint there.
    pub metrics: Option<SocketAddr>,
    /// `--control-socket PATH`; "" turns the socket off.
    pub control_socket: Option<PathBuf>,
    /// `--dnssec validate|off` (replaces `resolver.dnssec`).
    pub dnssec: Option<DnssecMode>,
    /// `--mode forward|recursive` (replaces `resolver.mode`).
    pub mode: Option<Mode>,
    /// `--root-hints FILE` (replaces `resolver.root_hints`).
    pub root_hints: Option<PathBuf>,
    /// `--query-port N` (replaces `resolver.query_port`).
    pub query_port: Option<u64>,
    /// `--qname-case-randomization on|off` (replaces `resolver.qname_case_randomization`).
    pub qname_case_randomization: Option<bool>,
    /// `--trust-anchor FILE` (repeatable; replaces `resolver.trust_anchor`).
    pub trust_anchors: Vec<PathBuf>,
    /// `--insecure-domain NAME` (repeatable; replaces `resolver.insecure_domains`).
    pub insecure_domains: Vec<Name>,
}

impl Config {
    /// Parses and validates TOML text. `origin` names it in errors; relative paths in it are taken
    /// relative to `base_dir`.
    pub fn from_toml(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        spec::parse(text, origin, base_dir)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, &path.display().to_string(), base)
    }

    /// The embedded default configuration ([`EMBEDDED_DEFAULT`]).
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::from_toml(EMBEDDED_DEFAULT, "embedded default config", Path::new("/"))
    }

    /// Applies command-line overrides, with the same checks as the file. On error the config is
    /// unchanged.
    pub fn apply(&mut self, o: Overrides) -> Result<(), ConfigError> {
        if !o.listen.is_empty() {
            spec::check_listen(&o.listen).map_err(|m| ConfigError::flag("--listen", m))?;
        }
        let servers = if o.upstreams.is_empty() {
            let unused = |flag: &str| {
                ConfigError::flag(
                    flag,
                    "applies to the --upstream URLs given on the command line; add --upstream",
                )
            };
            if !o.bootstrap.is_empty() {
                return Err(unused("--bootstrap"));
            }
            if o.ca_file.is_some() {
                return Err(unused("--ca-file"));
            }
            None
        } else {
            Some(cli_upstreams(&o)?)
        };
        let threads = o
            .threads
            .map(|t| knob::THREADS.check(t))
            .transpose()
            .map_err(|m| ConfigError::flag("--threads", m))?;
        let rate_limit = o
            .rate_limit
            .map(|n| knob::RATE_LIMIT.check(n))
            .transpose()
            .map_err(|m| ConfigError::flag("--rate-limit", m))?;
        let cache_size = o
            .cache_size
            .map(|n| knob::CACHE_SIZE.check(n))
            .transpose()
            .map_err(|m| ConfigError::flag("--cache-size", m))?;
        let query_port = o
            .query_port
            .map(|n| knob::QUERY_PORT.check(n))
            .transpose()
            .map_err(|m| ConfigError::flag("--query-port", m))?;
        if let Some(path) = &o.root_hints {
            if !path.is_file() {
                return Err(ConfigError::flag(
                    "--root-hints",
                    format!(
                        "{} is not a readable file (expected a root hints file in named.root format)",
                        path.display()
                    ),
                ));
            }
        }

        if !o.listen.is_empty() {
            self.server.listen = o.listen;
        }
        if !o.allow.is_empty() {
            self.server.allow = o.allow;
        }
        if let Some(servers) = servers {
            self.upstream.servers = servers;
        }
        if let Some(s) = o.strategy {
            self.upstream.strategy = s;
        }
        if let Some(t) = threads {
            self.server.threads = t as usize;
        }
        if let Some(n) = cache_size {
            self.cache.size = n as usize;
        }
        if let Some(on) = o.serve_stale {
            self.cache.serve_stale = on;
        }
        if let Some(on) = o.prefetch {
            self.cache.prefetch = on;
        }
        if let Some(f) = o.cache_file {
            self.cache.file = (!f.as_os_str().is_empty()).then_some(f);
        }
        if let Some(h) = o.hosts {
            self.hosts.file = (!h.as_os_str().is_empty()).then_some(h);
        }
        if let Some(l) = o.log_level {
            self.log.level = l;
        }
        self.log.queries |= o.log_queries;
        if let Some(qps) = rate_limit {
            let old = self.server.rate_limit;
            self.server.rate_limit.qps = qps as u32;
            // A burst that followed the old rate follows the new one.
            if old.burst == old.qps || old.burst == 0 {
                self.server.rate_limit.burst = qps as u32;
            }
        }
        let cwd = Path::new("");
        if !o.blocklists.is_empty() {
            self.block.lists = spec::block_sources(&o.blocklists, "--blocklist", false, cwd)
                .map_err(|(k, m)| ConfigError::flag(&k, m))?;
        }
        if !o.allowlists.is_empty() {
            self.block.allow = spec::block_sources(&o.allowlists, "--allowlist", false, cwd)
                .map_err(|(k, m)| ConfigError::flag(&k, m))?;
        }
        if let Some(a) = o.metrics {
            self.metrics.listen = Some(a);
        }
        if let Some(p) = o.control_socket {
            self.server.control_socket = if p.as_os_str().is_empty() {
                ControlSocket::Off
            } else {
                ControlSocket::At(p)
            };
        }
        if let Some(m) = o.dnssec {
            self.resolver.dnssec = m;
        }
        if let Some(m) = o.mode {
            self.resolver.mode = m;
        }
        if let Some(p) = o.root_hints {
            self.resolver.root_hints = Some(p);
        }
        if let Some(p) = query_port {
            self.resolver.query_port = p as u16;
        }
        if let Some(on) = o.qname_case_randomization {
            self.resolver.qname_case_randomization = on;
        }
        if !o.trust_anchors.is_empty() {
            self.resolver.trust_anchors = o.trust_anchors;
        }
        if !o.insecure_domains.is_empty() {
            self.resolver.insecure_domains = o.insecure_domains;
        }
        Ok(())
    }

    /// Checks what `run` needs beyond a valid file: at least one default upstream. dnsveil never
    /// guesses an upstream, least of all a plaintext one.
    pub fn check_runnable(&self) -> Result<(), ConfigError> {
        if self.resolver.mode == Mode::Forward && self.upstream.servers.is_empty() {
            return Err(ConfigError::Invalid {
                origin: "config".into(),
                key: "upstream.servers".into(),
                message: "no upstream server is configured; add one to [upstream] servers \
                          (e.g. servers = [\"tls://dns.quad9.net\"] with bootstrap addresses) or \
                          pass --upstream URL, or resolve from the root with [resolver] \
                          mode = \"recursive\" (--mode recursive)"
                    .into(),
            });
        }
        self.check_open_resolver()
    }

    /// A listener that the internet may reach (a public address, or the wildcard `0.0.0.0`/`::`,
    /// which includes any public address the machine has) with an allow-list that admits every
    /// address (`0.0.0.0/0` or `::/0`) is an open resolver: anyone may use it, and a spoofed source
    /// turns it into an amplifier against a victim. That needs `server.open_resolver = true`.
    fn check_open_resolver(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.open_resolver {
            return Ok(());
        }
        let Some(open) = s.allow.iter().find(|c| c.prefix() == 0) else {
            return Ok(());
        };
        let Some(public) = s.listen.iter().find(|a| is_public_listener(a.ip())) else {
            return Ok(());
        };
        Err(ConfigError::Invalid {
            origin: "config".into(),
            key: "server.allow".into(),
            message: format!(
                "{open} admits every client and dnsveil would listen on {public}, which the \
                 internet may reach: that is an open resolver, which anyone can use and which \
                 spoofed queries turn into an amplifier against third parties. Allow only your \
                 networks (e.g. server.allow = [\"192.168.1.0/24\", \"fd00::/8\"] or --allow), \
                 listen on a LAN address, or, if an open resolver is really intended, set \
                 server.open_resolver = true (and consider server.rate_limit)"
            ),
        })
    }

    /// Legal but questionable settings, to be logged as warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in self.upstream.servers.iter().enumerate() {
            if let Some(ip) = s.url.host_ip().filter(|_| !s.url.is_encrypted()) {
                if !is_local(ip) {
                    out.push(format!(
                        "upstream.servers[{i}]: {} is a plaintext upstream on a public address; \
                         queries to it are neither encrypted nor authenticated",
                        s.url
                    ));
                }
            }
        }
        let beyond_loopback = self.server.listen.iter().find(|a| !a.ip().is_loopback());
        if let Some(addr) = beyond_loopback {
            if self.server.allow.iter().any(|c| c.prefix() == 0) {
                out.push(format!(
                    "server.allow contains a /0 network and dnsveil listens on {addr}: anyone \
                     who can reach it may use it (open resolvers are abused for amplification)"
                ));
            } else if self.server.allow.iter().all(is_loopback_net) {
                out.push(format!(
                    "dnsveil listens on {addr}, but server.allow admits only loopback clients, so \
                     every other client gets REFUSED; add the networks to serve to server.allow \
                     (e.g. \"192.168.1.0/24\") or --allow"
                ));
            }
        }
        out
    }

    /// A short human summary (for `check-config`).
    pub fn summary(&self) -> String {
        let listen: Vec<String> = self.server.listen.iter().map(|a| a.to_string()).collect();
        let ups: Vec<String> = self
            .upstream
            .servers
            .iter()
            .map(|s| s.url.to_string())
            .collect();
        let mut s = format!("listen: {}\n", listen.join(", "));
        if self.resolver.mode == Mode::Recursive {
            s += &format!(
                "mode: recursive (root hints {}, query port {}, IPv6 {}, 0x20 {}; upstream.servers \
                 unused)\n",
                self.resolver
                    .root_hints
                    .as_ref()
                    .map_or("embedded".into(), |p| p.display().to_string()),
                self.resolver.query_port,
                if self.resolver.query_ipv6 { "on" } else { "off" },
                if self.resolver.qname_case_randomization {
                    "on"
                } else {
                    "off"
                }
            );
        }
        s += &format!(
            "upstreams ({}): {}\n",
            self.upstream.strategy,
            if ups.is_empty() {
                "none".into()
            } else {
                ups.join(", ")
            }
        );
        s += &format!("forwarding rules: {}\n", self.forward.len());
        let on_off = |on: bool| if on { "on" } else { "off" };
        s += &if self.cache.size == 0 {
            "cache: off\n".to_string()
        } else {
            format!(
                "cache: {} entries, serve-stale {}, prefetch {}, file {}\n",
                self.cache.size,
                on_off(self.cache.serve_stale),
                on_off(self.cache.prefetch),
                self.cache
                    .file
                    .as_ref()
                    .map_or("none".into(), |p| p.display().to_string())
            )
        };
        s += &format!(
            "hosts: {}, {} local record(s), special-use names {}, single-label names {}\n",
            self.hosts
                .file
                .as_ref()
                .map_or("no file".into(), |p| p.display().to_string()),
            self.hosts.records.len(),
            on_off(self.hosts.special_use),
            if self.hosts.special_use && self.hosts.single_label {
                "local"
            } else {
                "forwarded"
            }
        );
        if let Some(f) = &self.dhcp.lease_file {
            s += &format!(
                "dhcp names: {} under {}\n",
                f.display(),
                self.dhcp.domain.to_string().trim_end_matches('.')
            );
        }
        let rl = &self.server.rate_limit;
        s += &if rl.enabled() {
            format!(
                "rate limit: {} queries/s per client (burst {}, slip {}, /{} and /{})\n",
                rl.qps, rl.burst, rl.slip, rl.ipv4_prefix, rl.ipv6_prefix
            )
        } else {
            "rate limit: off\n".to_string()
        };
        if !self.block.lists.is_empty() {
            s += &format!(
                "block: {} list(s), {} allow list(s), answer {}\n",
                self.block.lists.len(),
                self.block.allow.len(),
                match self.block.answer {
                    crate::block::AnswerMode::NxDomain => "nxdomain",
                    crate::block::AnswerMode::Null => "null",
                }
            );
        }
        s
    }
}

/// The `--upstream` list with `--bootstrap` and `--ca-file` attached.
fn cli_upstreams(o: &Overrides) -> Result<Vec<UpstreamServer>, ConfigError> {
    if o.upstreams.len() > MAX_UPSTREAMS {
        return Err(ConfigError::flag(
            "--upstream",
            format!("at most {MAX_UPSTREAMS} upstreams are allowed"),
        ));
    }
    if o.bootstrap.len() > MAX_BOOTSTRAP {
        return Err(ConfigError::flag(
            "--bootstrap",
            format!("at most {MAX_BOOTSTRAP} addresses are allowed"),
        ));
    }
    if let Some(ca) = &o.ca_file {
        spec::check_ca_file(ca, "command line", "--ca-file")?;
    }
    let mut servers: Vec<UpstreamServer> = Vec::new();
    let mut any_named = false;
    for url in &o.upstreams {
        if url.is_network() {
            return Err(ConfigError::flag("--upstream", NETWORK_ONLY_IN_RULES));
        }
        if servers.iter().any(|s| &s.url == url) {
            return Err(ConfigError::flag(
                "--upstream",
                format!("{url} is given twice"),
            ));
        }
        let mut s = UpstreamServer::new(url.clone());
        if url.is_encrypted() {
            s.ca_file.clone_from(&o.ca_file);
            if url.host_ip().is_none() {
                any_named = true;
                if o.bootstrap.is_empty() {
                    return Err(ConfigError::flag(
                        "--upstream",
                        format!(
                            "{url} has a host name; give its IP addresses with --bootstrap IP \
                             (dnsveil never resolves upstream names in plaintext) or use an IP \
                             address as the host"
                        ),
                    ));
                }
                s.bootstrap.clone_from(&o.bootstrap);
            }
        }
        servers.push(s);
    }
    if !o.bootstrap.is_empty() && !any_named {
        return Err(ConfigError::flag(
            "--bootstrap",
            "no tls:// or https:// --upstream has a host name, so the addresses would be unused",
        ));
    }
    if o.ca_file.is_some() && !servers.iter().any(|s| s.url.is_encrypted()) {
        return Err(ConfigError::flag(
            "--ca-file",
            "no --upstream is tls:// or https://, so the CA would be unused",
        ));
    }
    Ok(servers)
}

/// Whether a listener on `ip` may be reachable from the internet: the wildcard address (which
/// takes in every address of the machine) or any address that is not loopback, private,
/// link-local or CGNAT.
fn is_public_listener(ip: IpAddr) -> bool {
    ip.is_unspecified() || !is_local(ip)
}

/// Whether every address of `net` is a loopback address.
fn is_loopback_net(net: &Cidr) -> bool {
    match net.addr() {
        IpAddr::V4(v4) => v4.is_loopback() && net.prefix() >= 8,
        IpAddr::V6(v6) => {
            (v6.is_loopback() && net.prefix() == 128)
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() && net.prefix() >= 104)
        }
    }
}

/// Loopback, private (RFC 1918, RFC 4193), link-local or CGNAT: where a plain LAN resolver lives.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_loopback()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config::from_toml(
            "[upstream]\nservers = [\"udp://127.0.0.1:5300\"]\n",
            "test",
            Path::new("/"),
        )
        .unwrap()
    }

    #[test]
    fn overrides_replace_lists_and_attach_bootstrap() {
        let mut c = base();
        c.apply(Overrides {
            listen: vec!["127.0.0.1:5353".parse().unwrap()],
            upstreams: vec![
                "tls://dns.quad9.net".parse().unwrap(),
                "udp://192.168.1.1".parse().unwrap(),
            ],
            bootstrap: vec!["9.9.9.9".parse().unwrap()],
            threads: Some(2),
            cache_size: Some(0),
            hosts: Some(PathBuf::new()),
            log_queries: true,
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.upstream.servers.len(), 2);
        assert_eq!(
            c.upstream.servers[0].connect_addrs(),
            vec!["9.9.9.9:853".parse().unwrap()]
        );
        assert!(c.upstream.servers[1].bootstrap.is_empty());
        assert_eq!((c.server.threads, c.cache.size), (2, 0));
        assert_eq!(c.hosts.file, None);
        assert!(c.log.queries);
    }

    #[test]
    fn override_errors_name_the_flag() {
        let cases: Vec<(Overrides, &str)> = vec![
            (
                Overrides {
                    upstreams: vec!["https://dns.example/dns-query".parse().unwrap()],
                    ..Overrides::default()
                },
                "--upstream",
            ),
            (
                Overrides {
                    bootstrap: vec!["9.9.9.9".parse().unwrap()],
                    ..Overrides::default()
                },
                "--bootstrap",
            ),
            (
                Overrides {
                    upstreams: vec!["tls://9.9.9.9".parse().unwrap()],
                    bootstrap: vec!["9.9.9.9".parse().unwrap()],
                    ..Overrides::default()
                },
                "--bootstrap",
            ),
            (
                Overrides {
                    upstreams: vec!["tls://9.9.9.9".parse().unwrap()],
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..Overrides::default()
                },
                "--ca-file",
            ),
            (
                Overrides {
                    threads: Some(5000),
                    ..Overrides::default()
                },
                "--threads",
            ),
            (
                Overrides {
                    listen: vec![
                        "127.0.0.1:53".parse().unwrap(),
                        "127.0.0.1:53".parse().unwrap(),
                    ],
                    ..Overrides::default()
                },
                "--listen",
            ),
        ];
        for (o, flag) in cases {
            let err = base().apply(o.clone()).unwrap_err();
            assert_eq!(err.key(), Some(flag), "{o:?}: {err}");
        }
    }

    #[test]
    fn rate_limit_flag_replaces_the_rate_and_a_following_burst() {
        let mut c = base();
        assert!(!c.server.rate_limit.enabled());
        c.apply(Overrides {
            rate_limit: Some(100),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(
            (c.server.rate_limit.qps, c.server.rate_limit.burst),
            (100, 100)
        );
        let mut explicit = Config::from_toml(
            "[server]\nrate_limit = 10\nrate_limit_burst = 500\n",
            "test",
            Path::new("/"),
        )
        .unwrap();
        explicit
            .apply(Overrides {
                rate_limit: Some(0),
                ..Overrides::default()
            })
            .unwrap();
        assert!(!explicit.server.rate_limit.enabled(), "0 turns it off");
        assert_eq!(
            explicit.server.rate_limit.burst, 500,
            "an explicit burst stays"
        );
        let err = base()
            .apply(Overrides {
                rate_limit: Some(2_000_000),
                ..Overrides::default()
            })
            .unwrap_err();
        assert_eq!(err.key(), Some("--rate-limit"));
    }

    fn serving(listen: &[&str], allow: &[&str]) -> Config {
        let mut c = base();
        c.server.listen = listen.iter().map(|a| a.parse().unwrap()).collect();
        c.server.allow = allow.iter().map(|a| a.parse().unwrap()).collect();
        c
    }

    #[test]
    fn open_resolvers_need_consent_and_loopback_only_lists_warn() {
        for (listen, allow, refused) in [
            ("0.0.0.0:53", "0.0.0.0/0", true),
            ("[::]:53", "::/0", true),
            ("198.51.100.1:53", "::/0", true),
            ("192.168.1.1:53", "0.0.0.0/0", false),
            ("127.0.0.1:53", "0.0.0.0/0", false),
            ("0.0.0.0:53", "192.168.0.0/16", false),
        ] {
            let mut c = serving(&[listen], &[allow]);
            let result = c.check_runnable();
            assert_eq!(result.is_err(), refused, "{listen} {allow}: {result:?}");
            if let Err(e) = result {
                assert_eq!(e.key(), Some("server.allow"));
            }
            c.server.open_resolver = true;
            assert!(c.check_runnable().is_ok());
        }
        let lan = |allow: &[&str]| serving(&["192.168.1.1:53"], allow).warnings();
        assert_eq!(lan(&["127.0.0.0/8", "::1/128"]).len(), 1);
        assert!(lan(&["127.0.0.0/8", "::1/128"])[0].contains("only loopback"));
        assert_eq!(lan(&["127.0.0.1", "::ffff:127.0.0.1/128"]).len(), 1);
        assert!(lan(&["127.0.0.0/8", "192.168.1.0/24"]).is_empty());
        assert!(lan(&["127.0.0.0/7"]).is_empty(), "wider than loopback");
        assert!(serving(&["127.0.0.1:53"], &["127.0.0.0/8"])
            .warnings()
            .is_empty());
    }

    #[test]
    fn runnable_needs_an_upstream() {
        let c = Config::from_toml("", "test", Path::new("/")).unwrap();
        let err = c.check_runnable().unwrap_err();
        assert_eq!(err.key(), Some("upstream.servers"));
        assert!(base().check_runnable().is_ok());
    }

    #[test]
    fn warns_about_public_plaintext_upstreams() {
        let mut c = base();
        assert!(c.warnings().is_empty());
        c.upstream.servers = vec![UpstreamServer::new("udp://8.8.8.8".parse().unwrap())];
        assert_eq!(c.warnings().len(), 1);
        c.upstream.servers = vec![UpstreamServer::new("udp://[fd00::1]".parse().unwrap())];
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn an_upstream_becomes_the_transport_spec() {
        let c = Config::from_toml(
            "[upstream]\nservers = [{ url = \"https://dns.example/q\", bootstrap = [\"192.0.2.1\"], \
             pins = [\"QHSD5qwsK4PZb3aU+n7oKaoMD69Z7+yh2LvWDkwgGho=\"], method = \"get\" }]\n",
            "test",
            Path::new("/"),
        )
        .unwrap();
        let server = &c.upstream.servers[0];
        let spec = server.spec(Duration::from_millis(700));
        assert_eq!(spec.url, server.url);
        assert_eq!(spec.bootstrap, vec!["192.0.2.1:443".parse().unwrap()]);
        assert_eq!(spec.pins, vec![*server.pins[0].as_bytes()]);
        assert!(spec.doh_get);
        assert_eq!(spec.ca_file, None);
        assert_eq!(spec.timeout, Duration::from_millis(700));
    }

    #[test]
    fn spki_pins_parse_and_print() {
        let pin = "QHSD5qwsK4PZb3aU+n7oKaoMD69Z7+yh2LvWDkwgGho=";
        assert_eq!(pin.parse::<SpkiPin>().unwrap().to_string(), pin);
        assert!("QUJD".parse::<SpkiPin>().is_err());
        assert!("not base64!".parse::<SpkiPin>().is_err());
    }
}
