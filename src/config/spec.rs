//! The config file as written: serde structures (every one `deny_unknown_fields`) and their
//! conversion into the validated [`Config`].
//!
//! The spec keeps values close to the text (strings, `i64` for numbers) so that the conversion, not
//! serde, judges them: a negative `threads` gets "out of range (expected 0 to 1024 ...)" rather than
//! serde's "expected u32". serde errors (unknown or missing keys, wrong types, TOML syntax) carry
//! their key path through `serde_path_to_error` and their line through the TOML span.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::knob::{self, Knob};
use super::{
    CacheConfig, CaptivePortal, Config, ConfigError, ControlSocket, DhcpConfig, DnssecMode,
    DohMethod, ForwardRule, HostsConfig, LogConfig, LogLevel, MetricsConfig, Mode, RateLimit,
    ResolverConfig, ServerConfig, SpkiPin, Strategy, UpstreamConfig, UpstreamServer,
    LOCAL_RECORD_TTL, MAX_BOOTSTRAP, MAX_LISTEN, MAX_UPSTREAMS,
};
use crate::block::{AnswerMode, BlockSettings, ListSource};
use crate::server::acl::Cidr;
use crate::upstream::{tls, UpstreamUrl};
use crate::wire::{parse_record_line, Name};

/// Listen addresses when `server.listen` is absent.
const DEFAULT_LISTEN: [&str; 2] = ["127.0.0.1:53", "[::1]:53"];
/// Client networks when `server.allow` is absent: loopback only.
const DEFAULT_ALLOW: [&str; 2] = ["127.0.0.0/8", "::1/128"];
/// The hosts file when `hosts.file` is absent.
const DEFAULT_HOSTS_FILE: &str = "/etc/hosts";

/// Parses and validates a config text.
pub(super) fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::new(text);
    let file: FileSpec =
        serde_path_to_error::deserialize(de).map_err(|e| serde_error(e, text, origin))?;
    let cx = Cx { origin, base_dir };
    file.validate(&cx)
}

/// Checks a listen list from any source; the error names the offending entry's index.
pub(super) fn check_listen(list: &[SocketAddr]) -> Result<(), String> {
    if list.is_empty() {
        return Err("no listen address (expected e.g. \"127.0.0.1:53\")".into());
    }
    if list.len() > MAX_LISTEN {
        return Err(format!("at most {MAX_LISTEN} listen addresses are allowed"));
    }
    if let Some(i) = first_duplicate(list) {
        return Err(format!("{} is listed twice", list[i]));
    }
    Ok(())
}

/// Checks that `path` names a readable regular file.
fn check_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a regular file", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Checks that `path`, given at `key`, names a CA file the TLS layer can use (see
/// [`tls::check_ca_file`]).
pub(super) fn check_ca_file(path: &Path, origin: &str, key: &str) -> Result<(), ConfigError> {
    check_file(path).map_err(|message| ConfigError::Invalid {
        origin: origin.to_string(),
        key: key.to_string(),
        message,
    })?;
    tls::check_ca_file(path).map_err(|source| ConfigError::CaFile {
        origin: origin.to_string(),
        key: key.to_string(),
        source: Box::new(source),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    server: ServerSpec,
    #[serde(default)]
    cache: CacheSpec,
    #[serde(default)]
    hosts: HostsSpec,
    #[serde(default)]
    dhcp: DhcpSpec,
    #[serde(default)]
    upstream: UpstreamSpec,
    #[serde(default)]
    forward: Vec<ForwardSpec>,
    #[serde(default)]
    log: LogSpec,
    #[serde(default)]
    block: BlockSpec,
    #[serde(default)]
    metrics: MetricsSpec,
    #[serde(default)]
    resolver: ResolverSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BlockSpec {
    #[serde(default)]
    lists: Vec<String>,
    #[serde(default)]
    allow: Vec<String>,
    answer: Option<String>,
    ttl: Option<i64>,
    refresh_secs: Option<i64>,
    cache_dir: Option<String>,
    ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolverSpec {
    /// `"forward"` (default) or `"recursive"`.
    mode: Option<String>,
    /// A named.root file replacing the embedded root hints (recursive mode).
    root_hints: Option<String>,
    query_port: Option<i64>,
    query_ipv6: Option<bool>,
    qname_case_randomization: Option<bool>,
    dnssec: Option<String>,
    trust_anchor: Option<OneOrMany>,
    #[serde(default)]
    insecure_domains: Vec<String>,
}

/// A string, or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSpec {
    listen: Option<Vec<String>>,
    allow: Option<Vec<String>>,
    threads: Option<i64>,
    tcp_idle_timeout_secs: Option<i64>,
    max_tcp_connections: Option<i64>,
    max_tcp_pipeline: Option<i64>,
    max_udp_inflight: Option<i64>,
    max_udp_payload: Option<i64>,
    freebind: Option<bool>,
    control_socket: Option<String>,
    max_tcp_connections_per_client: Option<i64>,
    rate_limit: Option<i64>,
    rate_limit_burst: Option<i64>,
    rate_limit_slip: Option<i64>,
    rate_limit_ipv4_prefix: Option<i64>,
    rate_limit_ipv6_prefix: Option<i64>,
    rate_limit_clients: Option<i64>,
    query_timeout_secs: Option<i64>,
    open_resolver: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DhcpSpec {
    lease_file: Option<String>,
    format: Option<String>,
    domain: Option<String>,
    ttl: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheSpec {
    size: Option<i64>,
    min_ttl: Option<i64>,
    max_ttl: Option<i64>,
    negative_max_ttl: Option<i64>,
    servfail_ttl: Option<i64>,
    serve_stale: Option<bool>,
    stale_max_age: Option<i64>,
    stale_answer_ttl: Option<i64>,
    client_timeout_ms: Option<i64>,
    prefetch: Option<bool>,
    cache_file: Option<String>,
    save_interval_secs: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostsSpec {
    file: Option<String>,
    ttl: Option<i64>,
    special_use: Option<bool>,
    single_label: Option<bool>,
    #[serde(default)]
    search: Vec<String>,
    #[serde(default)]
    records: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpstreamSpec {
    #[serde(default)]
    servers: Vec<ServerEntry>,
    strategy: Option<String>,
    timeout_ms: Option<i64>,
    network_resolv_conf: Option<String>,
    captive_portal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardSpec {
    domains: Vec<String>,
    upstreams: Vec<ServerEntry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogSpec {
    level: Option<String>,
    queries: Option<bool>,
    queries_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsSpec {
    listen: Option<String>,
}

/// An upstream: a bare URL string, or a table with the URL and its options.
enum ServerEntry {
    Url(String),
    Table(ServerTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    url: String,
    #[serde(default)]
    bootstrap: Vec<String>,
    ca_file: Option<String>,
    #[serde(default)]
    pins: Vec<String>,
    method: Option<String>,
}

impl<'de> Deserialize<'de> for ServerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ServerEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an upstream URL string or a table with a `url` key")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ServerEntry, E> {
                Ok(ServerEntry::Url(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServerEntry, A::Error> {
                ServerTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ServerEntry::Table)
            }
        }

        d.deserialize_any(EntryVisitor)
    }
}

/// Where the text came from, for errors and relative paths.
struct Cx<'a> {
    origin: &'a str,
    base_dir: &'a Path,
}

impl Cx<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn knob(&self, k: Knob, v: Option<i64>) -> Result<u64, ConfigError> {
        k.resolve(v).map_err(|m| self.err(k.key, m))
    }

    fn path(&self, p: &str) -> PathBuf {
        self.base_dir.join(p)
    }
}

impl FileSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<Config, ConfigError> {
        let upstream = self.upstream.validate(cx)?;
        let mut forward = Vec::with_capacity(self.forward.len());
        let mut routed: Vec<(Name, usize)> = Vec::new();
        for (i, f) in self.forward.into_iter().enumerate() {
            forward.push(f.validate(cx, i, &mut routed)?);
        }
        Ok(Config {
            server: self.server.validate(cx)?,
            cache: self.cache.validate(cx)?,
            hosts: self.hosts.validate(cx)?,
            dhcp: self.dhcp.validate(cx)?,
            upstream,
            forward,
            log: self.log.validate(cx)?,
            block: self.block.validate(cx)?,
            metrics: MetricsConfig {
                listen: match self.metrics.listen.as_deref() {
                    None | Some("") => None,
                    Some(s) => Some(parse_listen(s).map_err(|m| cx.err("metrics.listen", m))?),
                },
            },
            resolver: self.resolver.validate(cx)?,
        })
    }
}

impl ResolverSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<ResolverConfig, ConfigError> {
        let dnssec = match self.dnssec.as_deref() {
            None => DnssecMode::default(),
            Some(s) => s.parse().map_err(|m| cx.err("resolver.dnssec", m))?,
        };
        let files = match self.trust_anchor {
            None => Vec::new(),
            Some(OneOrMany::One(f)) => vec![f],
            Some(OneOrMany::Many(v)) => v,
        };
        let mut trust_anchors = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let path = cx.path(f);
            check_file(&path).map_err(|m| {
                cx.err(
                    format!("resolver.trust_anchor[{i}]"),
                    format!("{m} (expected a file of DS or DNSKEY records in zone-file form)"),
                )
            })?;
            trust_anchors.push(path);
        }
        let mut insecure_domains = Vec::with_capacity(self.insecure_domains.len());
        for (i, d) in self.insecure_domains.iter().enumerate() {
            let name: Name = d.parse().map_err(|e| {
                cx.err(
                    format!("resolver.insecure_domains[{i}]"),
                    format!("{d:?} is not a domain name: {e}"),
                )
            })?;
            insecure_domains.push(name);
        }
        let mode = match self.mode.as_deref() {
            None => Mode::default(),
            Some(m) => m.parse().map_err(|e| cx.err("resolver.mode", e))?,
        };
        let root_hints = match self.root_hints.as_deref() {
            None => None,
            Some("") => {
                return Err(cx.err(
                    "resolver.root_hints",
                    "empty path (remove the key to use the embedded root hints)",
                ))
            }
            Some(p) => Some(cx.path(p)),
        };
        Ok(ResolverConfig {
            mode,
            root_hints,
            query_port: cx.knob(knob::QUERY_PORT, self.query_port)? as u16,
            query_ipv6: self.query_ipv6.unwrap_or(true),
            qname_case_randomization: self.qname_case_randomization.unwrap_or(false),
            dnssec,
            trust_anchors,
            insecure_domains,
        })
    }
}

impl ServerSpec {
    fn validate(mut self, cx: &Cx<'_>) -> Result<ServerConfig, ConfigError> {
        let rate_limit = rate_limit(cx, &self)?;
        let listen_text = self
            .listen
            .take()
            .unwrap_or_else(|| DEFAULT_LISTEN.map(String::from).to_vec());
        let mut listen = Vec::with_capacity(listen_text.len());
        for (i, s) in listen_text.iter().enumerate() {
            listen.push(parse_listen(s).map_err(|m| cx.err(format!("server.listen[{i}]"), m))?);
        }
        if let Err(m) = check_listen(&listen) {
            let key = match first_duplicate(&listen) {
                Some(i) => format!("server.listen[{i}]"),
                None => "server.listen".into(),
            };
            return Err(cx.err(key, m));
        }

        let allow_text = self
            .allow
            .take()
            .unwrap_or_else(|| DEFAULT_ALLOW.map(String::from).to_vec());
        if allow_text.is_empty() {
            return Err(cx.err(
                "server.allow",
                "an empty list lets no client query (expected networks such as \
                 [\"127.0.0.0/8\", \"::1/128\"])",
            ));
        }
        let mut allow = Vec::with_capacity(allow_text.len());
        for (i, s) in allow_text.iter().enumerate() {
            allow.push(
                s.parse::<Cidr>()
                    .map_err(|m| cx.err(format!("server.allow[{i}]"), m))?,
            );
        }

        Ok(ServerConfig {
            listen,
            allow,
            threads: cx.knob(knob::THREADS, self.threads)? as usize,
            tcp_idle_timeout: Duration::from_secs(
                cx.knob(knob::TCP_IDLE_TIMEOUT_SECS, self.tcp_idle_timeout_secs)?,
            ),
            max_tcp_connections: cx.knob(knob::MAX_TCP_CONNECTIONS, self.max_tcp_connections)?
                as usize,
            max_tcp_pipeline: cx.knob(knob::MAX_TCP_PIPELINE, self.max_tcp_pipeline)? as usize,
            max_udp_inflight: cx.knob(knob::MAX_UDP_INFLIGHT, self.max_udp_inflight)? as usize,
            max_udp_payload: cx.knob(knob::MAX_UDP_PAYLOAD, self.max_udp_payload)? as u16,
            freebind: self.freebind.unwrap_or(false),
            control_socket: match self.control_socket.as_deref() {
                None => ControlSocket::Default,
                Some("") => ControlSocket::Off,
                Some(p) => ControlSocket::At(cx.path(p)),
            },
            max_tcp_connections_per_client: cx.knob(
                knob::MAX_TCP_CONNECTIONS_PER_CLIENT,
                self.max_tcp_connections_per_client,
            )? as usize,
            rate_limit,
            query_timeout: Duration::from_secs(
                cx.knob(knob::QUERY_TIMEOUT_SECS, self.query_timeout_secs)?,
            ),
            open_resolver: self.open_resolver.unwrap_or(false),
        })
    }
}

fn rate_limit(cx: &Cx<'_>, s: &ServerSpec) -> Result<RateLimit, ConfigError> {
    let qps = cx.knob(knob::RATE_LIMIT, s.rate_limit)? as u32;
    let burst = match cx.knob(knob::RATE_LIMIT_BURST, s.rate_limit_burst)? as u32 {
        0 => qps,
        b => b,
    };
    Ok(RateLimit {
        qps,
        burst,
        slip: cx.knob(knob::RATE_LIMIT_SLIP, s.rate_limit_slip)? as u32,
        ipv4_prefix: cx.knob(knob::RATE_LIMIT_IPV4_PREFIX, s.rate_limit_ipv4_prefix)? as u8,
        ipv6_prefix: cx.knob(knob::RATE_LIMIT_IPV6_PREFIX, s.rate_limit_ipv6_prefix)? as u8,
        clients: cx.knob(knob::RATE_LIMIT_CLIENTS, s.rate_limit_clients)? as usize,
    })
}

/// The DHCP names' domain when `dhcp.domain` is absent.
const DEFAULT_DHCP_DOMAIN: &str = "lan";

impl DhcpSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<DhcpConfig, ConfigError> {
        let lease_file = match self.lease_file.as_deref() {
            None | Some("") => None,
            Some(p) => Some(cx.path(p)),
        };
        let format = match self.format.as_deref() {
            None => super::LeaseFormat::default(),
            Some(f) => f.parse().map_err(|m| cx.err("dhcp.format", m))?,
        };
        let text = self.domain.as_deref().unwrap_or(DEFAULT_DHCP_DOMAIN);
        let domain: Name = text.parse().map_err(|e| {
            cx.err(
                "dhcp.domain",
                format!("{text:?} is not a domain name: {e} (expected e.g. \"lan\")"),
            )
        })?;
        if domain.is_root() {
            return Err(cx.err(
                "dhcp.domain",
                "the root is not a domain for host names (expected e.g. \"lan\" or \"home.arpa\")",
            ));
        }
        Ok(DhcpConfig {
            lease_file,
            format,
            domain,
            ttl: cx.knob(knob::DHCP_TTL, self.ttl)? as u32,
        })
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        if s.parse::<IpAddr>().is_ok() {
            format!("{s:?} has no port (expected e.g. \"127.0.0.1:53\" or \"[::1]:53\")")
        } else {
            format!("{s:?} is not an address:port (expected e.g. \"127.0.0.1:53\" or \"[::1]:53\")")
        }
    })
}

impl CacheSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<CacheConfig, ConfigError> {
        let min_ttl = cx.knob(knob::MIN_TTL, self.min_ttl)? as u32;
        let max_ttl = cx.knob(knob::MAX_TTL, self.max_ttl)? as u32;
        if min_ttl > max_ttl {
            return Err(cx.err(
                knob::MIN_TTL.key,
                format!("{min_ttl} is above cache.max_ttl ({max_ttl}); min_ttl must not exceed it"),
            ));
        }
        let file = match self.cache_file.as_deref() {
            None | Some("") => None,
            Some(p) => Some(cx.path(p)),
        };
        Ok(CacheConfig {
            size: cx.knob(knob::CACHE_SIZE, self.size)? as usize,
            min_ttl,
            max_ttl,
            negative_max_ttl: cx.knob(knob::NEGATIVE_MAX_TTL, self.negative_max_ttl)? as u32,
            servfail_ttl: cx.knob(knob::SERVFAIL_TTL, self.servfail_ttl)? as u32,
            serve_stale: self.serve_stale.unwrap_or(true),
            stale_max_age: cx.knob(knob::STALE_MAX_AGE, self.stale_max_age)? as u32,
            stale_answer_ttl: cx.knob(knob::STALE_ANSWER_TTL, self.stale_answer_ttl)? as u32,
            client_timeout: Duration::from_millis(
                cx.knob(knob::CLIENT_TIMEOUT_MS, self.client_timeout_ms)?,
            ),
            prefetch: self.prefetch.unwrap_or(true),
            file,
            save_interval: Duration::from_secs(
                cx.knob(knob::SAVE_INTERVAL_SECS, self.save_interval_secs)?,
            ),
        })
    }
}

/// Most lists in `block.lists` and in `block.allow`, each.
pub(super) const MAX_BLOCK_LISTS: usize = 256;

/// Parses block or allow list entries (`key` is `block.lists` or `block.allow`, or a flag).
pub(super) fn block_sources(
    texts: &[String],
    key: &str,
    indexed: bool,
    base: &Path,
) -> Result<Vec<ListSource>, (String, String)> {
    if texts.len() > MAX_BLOCK_LISTS {
        return Err((
            key.to_string(),
            format!("at most {MAX_BLOCK_LISTS} lists are allowed"),
        ));
    }
    let mut out: Vec<ListSource> = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        let k = if indexed {
            format!("{key}[{i}]")
        } else {
            key.to_string()
        };
        let source = ListSource::parse(t, base).map_err(|m| (k.clone(), m))?;
        if out.contains(&source) {
            return Err((k, format!("{t:?} is listed twice")));
        }
        out.push(source);
    }
    Ok(out)
}

/// `block.answer`'s values.
pub(super) fn parse_answer_mode(s: &str) -> Result<AnswerMode, String> {
    match s {
        "nxdomain" => Ok(AnswerMode::NxDomain),
        "null" => Ok(AnswerMode::Null),
        _ => Err(format!(
            "{s:?} is not an answer mode (expected \"nxdomain\" or \"null\")"
        )),
    }
}

impl BlockSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<BlockSettings, ConfigError> {
        let sources = |texts: &[String], key: &str| {
            block_sources(texts, key, true, cx.base_dir).map_err(|(k, m)| cx.err(k, m))
        };
        let lists = sources(&self.lists, "block.lists")?;
        let allow = sources(&self.allow, "block.allow")?;
        let answer = match self.answer.as_deref() {
            None => AnswerMode::default(),
            Some(s) => parse_answer_mode(s).map_err(|m| cx.err("block.answer", m))?,
        };
        let cache_dir = match self.cache_dir.as_deref() {
            None => None,
            Some("") => return Err(cx.err("block.cache_dir", "empty path (expected a directory)")),
            Some(p) => Some(cx.path(p)),
        };
        let ca_file = match self.ca_file.as_deref() {
            None | Some("") => None,
            Some(p) => {
                let path = cx.path(p);
                check_ca_file(&path, cx.origin, "block.ca_file")?;
                Some(path)
            }
        };
        Ok(BlockSettings {
            lists,
            allow,
            answer,
            ttl: cx.knob(knob::BLOCK_TTL, self.ttl)? as u32,
            refresh: Duration::from_secs(cx.knob(knob::BLOCK_REFRESH_SECS, self.refresh_secs)?),
            cache_dir,
            ca_file,
        })
    }
}

impl HostsSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<HostsConfig, ConfigError> {
        let file = match self.file.as_deref() {
            None => Some(PathBuf::from(DEFAULT_HOSTS_FILE)),
            Some("") => None,
            Some(p) => Some(cx.path(p)),
        };
        let mut records = Vec::with_capacity(self.records.len());
        for (i, line) in self.records.into_iter().enumerate() {
            let key = format!("hosts.records[{i}]");
            if line.trim().is_empty() {
                return Err(cx.err(
                    key,
                    "empty record (expected a zone-file line such as \
                     \"router.lan. 300 IN A 192.168.1.1\")",
                ));
            }
            match parse_record_line(&line, LOCAL_RECORD_TTL) {
                Ok(record) => records.push(record),
                Err(source) => {
                    return Err(ConfigError::Record {
                        origin: cx.origin.to_string(),
                        key,
                        line,
                        source,
                    })
                }
            }
        }
        Ok(HostsConfig {
            file,
            ttl: cx.knob(knob::HOSTS_TTL, self.ttl)? as u32,
            records,
            special_use: self.special_use.unwrap_or(true),
            single_label: self.single_label.unwrap_or(true),
            search: {
                let mut out = Vec::with_capacity(self.search.len());
                for (i, d) in self.search.iter().enumerate() {
                    let name: Name = d.parse().map_err(|e| {
                        cx.err(
                            format!("hosts.search[{i}]"),
                            format!("{d:?} is not a domain name: {e}"),
                        )
                    })?;
                    if name.is_root() || out.contains(&name) || out.len() == 8 {
                        return Err(cx.err(
                            format!("hosts.search[{i}]"),
                            format!("{d:?}: the root, a repeat, or more than 8 search domains"),
                        ));
                    }
                    out.push(name);
                }
                out
            },
        })
    }
}

impl UpstreamSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<UpstreamConfig, ConfigError> {
        let strategy = match self.strategy.as_deref() {
            None => Strategy::default(),
            Some(s) => s.parse().map_err(|m| cx.err("upstream.strategy", m))?,
        };
        let timeout_ms = cx.knob(knob::UPSTREAM_TIMEOUT_MS, self.timeout_ms)?;
        let servers = server_list(cx, "upstream.servers", self.servers, true)?;
        if let Some(i) = servers.iter().position(|s| s.url.is_network()) {
            return Err(cx.err(
                format!("upstream.servers[{i}]"),
                super::NETWORK_ONLY_IN_RULES,
            ));
        }
        let captive_portal = match self.captive_portal.as_deref() {
            None | Some("detect") => CaptivePortal::Detect,
            Some("off") => CaptivePortal::Off,
            Some(other) => {
                return Err(cx.err(
                    "upstream.captive_portal",
                    format!(
                        "{other:?} is not a captive-portal mode (expected \"off\" or \"detect\")"
                    ),
                ))
            }
        };
        Ok(UpstreamConfig {
            network_resolv_conf: self
                .network_resolv_conf
                .filter(|p| !p.is_empty())
                .map(|p| cx.path(&p)),
            captive_portal,
            servers,
            strategy,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

impl ForwardSpec {
    fn validate(
        self,
        cx: &Cx<'_>,
        index: usize,
        routed: &mut Vec<(Name, usize)>,
    ) -> Result<ForwardRule, ConfigError> {
        let key = format!("forward[{index}]");
        if self.domains.is_empty() {
            return Err(cx.err(
                format!("{key}.domains"),
                "empty list (expected domains such as [\"lan\", \"168.192.in-addr.arpa\"])",
            ));
        }
        let mut domains = Vec::with_capacity(self.domains.len());
        for (i, d) in self.domains.iter().enumerate() {
            let dkey = format!("{key}.domains[{i}]");
            let name: Name = d
                .parse()
                .map_err(|e| cx.err(&dkey, format!("{d:?} is not a domain name: {e}")))?;
            if name.is_root() {
                return Err(cx.err(
                    &dkey,
                    "the root matches every name; put default upstreams in [upstream] servers",
                ));
            }
            if let Some((_, other)) = routed.iter().find(|(n, _)| *n == name) {
                let whom = if *other == index {
                    "this rule".to_string()
                } else {
                    format!("forward[{other}]")
                };
                return Err(cx.err(&dkey, format!("{d:?} is already routed by {whom}")));
            }
            routed.push((name.clone(), index));
            domains.push(name);
        }
        let upstreams = server_list(cx, &format!("{key}.upstreams"), self.upstreams, false)?;
        Ok(ForwardRule { domains, upstreams })
    }
}

impl LogSpec {
    fn validate(self, cx: &Cx<'_>) -> Result<LogConfig, ConfigError> {
        let level = match self.level.as_deref() {
            None => LogLevel::default(),
            Some(s) => s.parse().map_err(|m| cx.err("log.level", m))?,
        };
        Ok(LogConfig {
            level,
            queries: self.queries.unwrap_or(false),
            queries_file: self
                .queries_file
                .filter(|p| !p.is_empty())
                .map(|p| cx.path(&p)),
        })
    }
}

/// Validates a list of upstreams at `key`. The default list may be empty (`run` checks that
/// separately); a forwarding rule's may not.
fn server_list(
    cx: &Cx<'_>,
    key: &str,
    entries: Vec<ServerEntry>,
    may_be_empty: bool,
) -> Result<Vec<UpstreamServer>, ConfigError> {
    if entries.is_empty() && !may_be_empty {
        return Err(cx.err(
            key,
            "empty list (expected upstream URLs such as [\"udp://192.168.1.1:53\"])",
        ));
    }
    if entries.len() > MAX_UPSTREAMS {
        return Err(cx.err(
            key,
            format!("at most {MAX_UPSTREAMS} upstreams are allowed"),
        ));
    }
    let mut out: Vec<UpstreamServer> = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let ekey = format!("{key}[{i}]");
        let server = upstream_server(cx, &ekey, e)?;
        if let Some(j) = out.iter().position(|s| s.url == server.url) {
            return Err(cx.err(ekey, format!("{} is the same as {key}[{j}]", server.url)));
        }
        out.push(server);
    }
    Ok(out)
}

fn upstream_server(
    cx: &Cx<'_>,
    key: &str,
    entry: ServerEntry,
) -> Result<UpstreamServer, ConfigError> {
    let (table, url_key) = match entry {
        ServerEntry::Url(url) => (
            ServerTable {
                url,
                bootstrap: Vec::new(),
                ca_file: None,
                pins: Vec::new(),
                method: None,
            },
            key.to_string(),
        ),
        ServerEntry::Table(t) => (t, format!("{key}.url")),
    };
    let url: UpstreamUrl = table.url.parse().map_err(|m| cx.err(&url_key, m))?;
    let mut server = UpstreamServer::new(url.clone());
    let only_encrypted = |opt: &str| {
        cx.err(
            format!("{key}.{opt}"),
            format!("{url} is plain DNS; {opt} applies only to tls:// and https:// upstreams"),
        )
    };

    if !table.bootstrap.is_empty() {
        if !url.is_encrypted() {
            return Err(only_encrypted("bootstrap"));
        }
        if url.host_ip().is_some() {
            return Err(cx.err(
                format!("{key}.bootstrap"),
                format!("{url} already names an IP address; remove bootstrap"),
            ));
        }
        if table.bootstrap.len() > MAX_BOOTSTRAP {
            return Err(cx.err(
                format!("{key}.bootstrap"),
                format!("at most {MAX_BOOTSTRAP} addresses are allowed"),
            ));
        }
        for (i, b) in table.bootstrap.iter().enumerate() {
            let ip: IpAddr = b.parse().map_err(|_| {
                cx.err(
                    format!("{key}.bootstrap[{i}]"),
                    format!(
                        "{b:?} is not an IP address (expected e.g. \"9.9.9.9\" or \"2620:fe::fe\")"
                    ),
                )
            })?;
            server.bootstrap.push(ip);
        }
    }
    if url.is_encrypted() && url.host_ip().is_none() && server.bootstrap.is_empty() {
        return Err(cx.err(
            key,
            format!(
                "{url} has a host name but no bootstrap addresses; write it as \
                 {{ url = \"{}\", bootstrap = [\"IP\", ...] }} (dnsveil never resolves upstream \
                 names in plaintext) or use an IP address as the host",
                table.url
            ),
        ));
    }

    if let Some(ca) = &table.ca_file {
        if !url.is_encrypted() {
            return Err(only_encrypted("ca_file"));
        }
        let path = cx.path(ca);
        check_ca_file(&path, cx.origin, &format!("{key}.ca_file"))?;
        server.ca_file = Some(path);
    }

    if !table.pins.is_empty() && !url.is_encrypted() {
        return Err(only_encrypted("pins"));
    }
    for (i, p) in table.pins.iter().enumerate() {
        let pin: SpkiPin = p
            .parse()
            .map_err(|m| cx.err(format!("{key}.pins[{i}]"), m))?;
        server.pins.push(pin);
    }

    if let Some(m) = &table.method {
        if !matches!(url, UpstreamUrl::Https { .. }) {
            return Err(cx.err(
                format!("{key}.method"),
                format!("{url} is not https://; method applies only to DNS-over-HTTPS"),
            ));
        }
        server.doh_method = match m.as_str() {
            "post" => DohMethod::Post,
            "get" => DohMethod::Get,
            _ => {
                return Err(cx.err(
                    format!("{key}.method"),
                    format!("{m:?} is not a method (expected \"post\" or \"get\")"),
                ))
            }
        };
    }
    Ok(server)
}

/// The index of the first element equal to an earlier one.
fn first_duplicate<T: Eq + std::hash::Hash>(list: &[T]) -> Option<usize> {
    let mut seen = HashSet::with_capacity(list.len());
    list.iter().position(|x| !seen.insert(x))
}

/// Turns a serde/TOML error into a [`ConfigError`] naming the key path and line.
fn serde_error(
    e: serde_path_to_error::Error<toml::de::Error>,
    text: &str,
    origin: &str,
) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let (line, column) = inner
        .span()
        .map_or((1, 1), |span| line_column(text, span.start));
    let message = inner
        .message()
        .trim()
        .replace('\n', "; ")
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected a list");
    if path == "." {
        return ConfigError::Syntax {
            origin: origin.to_string(),
            line,
            column,
            message,
        };
    }
    ConfigError::Invalid {
        origin: origin.to_string(),
        key: path,
        message: format!("{message} (line {line}, column {column})"),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> ConfigError {
        parse(text, "t.toml", Path::new("/")).unwrap_err()
    }

    #[test]
    fn special_use_names_can_be_turned_off() {
        let c = parse("[hosts]\nspecial_use = false\n", "t.toml", Path::new("/")).unwrap();
        assert!(!c.hosts.special_use);
        let e = parse_err("[hosts]\nspecial_use = \"no\"\n").to_string();
        assert!(e.contains("special_use"), "{e}");
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = parse("", "t.toml", Path::new("/")).unwrap();
        assert_eq!(
            c.server.listen,
            vec![
                "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(c.server.allow.len(), 2);
        assert_eq!(c.server.max_udp_payload, 1232);
        assert_eq!(c.server.tcp_idle_timeout, Duration::from_secs(10));
        assert_eq!(c.cache.size, 100_000);
        assert!(c.cache.serve_stale && c.cache.prefetch);
        assert_eq!(
            (c.cache.stale_max_age, c.cache.stale_answer_ttl),
            (86_400, 30)
        );
        assert_eq!(c.cache.client_timeout, Duration::from_millis(1800));
        assert_eq!(c.cache.file, None);
        assert_eq!(c.cache.save_interval, Duration::from_secs(300));
        assert_eq!(c.hosts.file, Some(PathBuf::from("/etc/hosts")));
        assert!(c.hosts.special_use);
        assert_eq!(c.upstream.timeout, Duration::from_millis(3000));
        assert_eq!(c.upstream.strategy, Strategy::Fastest);
        assert!(c.upstream.servers.is_empty() && c.forward.is_empty());
        assert_eq!(c.log.level, LogLevel::Info);
        assert!(!c.log.queries);
    }

    #[test]
    fn serde_errors_carry_key_path_and_line() {
        let e = parse_err("[server]\nthreads = 2\nlisten = [\"127.0.0.1:53\", 5]\n");
        assert_eq!(e.key(), Some("server.listen[1]"));
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse_err("[cache]\nsize = \"big\"\n");
        assert!(e.to_string().contains("expected an integer"), "{e}");
        let e =
            parse_err("[upstream]\nservers = [{ url = \"udp://10.0.0.1\", bootstrapp = [] }]\n");
        assert_eq!(e.key(), Some("upstream.servers[0].bootstrapp"), "{e}");
        assert!(e.to_string().contains("unknown key `bootstrapp`"), "{e}");
        let e = parse_err("[server\n");
        assert!(matches!(e, ConfigError::Syntax { line: 1, .. }), "{e}");
    }

    #[test]
    fn local_records_are_parsed_here() {
        let c = parse(
            "[hosts]\nrecords = [\"router.lan A 192.168.1.1\", \"nas.lan. 60 IN AAAA ::1\"]\n",
            "t.toml",
            Path::new("/"),
        )
        .unwrap();
        let ttls: Vec<u32> = c.hosts.records.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [LOCAL_RECORD_TTL, 60]);
        assert_eq!(c.hosts.records[0].name, "router.lan".parse().unwrap());

        let e = parse_err("[hosts]\nrecords = [\"router.lan TXT\", \"x.lan A 1.2.3.4.5\"]\n");
        assert!(matches!(e, ConfigError::Record { .. }), "{e:?}");
        assert_eq!(e.key(), Some("hosts.records[0]"));
        assert!(
            e.to_string()
                .starts_with("t.toml: hosts.records[0]: \"router.lan TXT\": "),
            "{e}"
        );
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\ncdé f", 9), (2, 6));
        assert_eq!(line_column("x", 0), (1, 1));
    }
}
