//! Upstream addresses written as URLs: `udp://IP[:PORT]`, `tcp://IP[:PORT]`, `tls://HOST[:PORT]`,
//! `https://HOST[:PORT]/PATH`, and `network://[PATH]`, the resolvers the network gave us.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A parsed upstream URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamUrl {
    /// Plain DNS over UDP (with TCP on truncation). Only for explicitly configured LAN servers.
    Udp(SocketAddr),
    /// Plain DNS over TCP.
    Tcp(SocketAddr),
    /// DNS-over-TLS (RFC 7858); `host` is a DNS name or an IP address, checked against the certificate.
    Tls { host: String, port: u16 },
    /// DNS-over-HTTPS (RFC 8484).
    Https {
        host: String,
        port: u16,
        path: String,
    },
    /// The network's own resolvers, read from a resolv.conf: `PATH` (`network:///etc/resolv.conf`)
    /// or, with none, the first found of `network::SOURCES`. Plain DNS; forwarding rules only.
    Network { path: Option<std::path::PathBuf> },
}

impl UpstreamUrl {
    /// True for the encrypted transports.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, UpstreamUrl::Tls { .. } | UpstreamUrl::Https { .. })
    }

    /// The host as an IP address, when it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        match self {
            UpstreamUrl::Udp(a) | UpstreamUrl::Tcp(a) => Some(a.ip()),
            UpstreamUrl::Tls { host, .. } | UpstreamUrl::Https { host, .. } => host.parse().ok(),
            UpstreamUrl::Network { .. } => None,
        }
    }

    /// True for `network://`, which only forwarding rules may use.
    pub fn is_network(&self) -> bool {
        matches!(self, UpstreamUrl::Network { .. })
    }
}

/// Splits `host[:port]`, accepting `[v6]:port` and bare IPv6 addresses.
fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("unexpected {after:?} after ']'")),
        };
        return Ok((host.to_string(), port));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok((s.to_string(), default_port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.to_string(),
            p.parse().map_err(|_| format!("bad port {p:?}"))?,
        )),
        None => Ok((s.to_string(), default_port)),
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && (host.parse::<IpAddr>().is_ok()
            || host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            }))
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("{s:?} is not a URL (expected udp://, tcp://, tls:// or https://)")
        })?;
        match scheme {
            "udp" | "tcp" => {
                let (host, port) = split_host_port(rest, 53)?;
                let ip: IpAddr = host.parse().map_err(|_| {
                    format!("{s:?}: plain upstreams take an IP address, not a host name")
                })?;
                let addr = SocketAddr::new(ip, port);
                Ok(if scheme == "udp" {
                    UpstreamUrl::Udp(addr)
                } else {
                    UpstreamUrl::Tcp(addr)
                })
            }
            "tls" => {
                let (host, port) = split_host_port(rest.trim_end_matches('/'), 853)?;
                if !valid_host(&host) {
                    return Err(format!("{s:?}: {host:?} is not a host name or IP address"));
                }
                Ok(UpstreamUrl::Tls { host, port })
            }
            "https" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/dns-query"),
                };
                let (host, port) = split_host_port(authority, 443)?;
                if !valid_host(&host) {
                    return Err(format!("{s:?}: {host:?} is not a host name or IP address"));
                }
                Ok(UpstreamUrl::Https {
                    host,
                    port,
                    path: path.to_string(),
                })
            }
            "network" => {
                if !(rest.is_empty() || rest.starts_with('/')) {
                    return Err(format!(
                        "{s:?}: network:// takes no host, only an optional resolv.conf path \
                         (network:///etc/resolv.conf)"
                    ));
                }
                Ok(UpstreamUrl::Network {
                    path: (!rest.is_empty()).then(|| rest.into()),
                })
            }
            other => Err(format!(
                "{s:?}: unknown scheme {other:?} (expected udp, tcp, tls, https or network)"
            )),
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        match self {
            UpstreamUrl::Udp(a) => write!(f, "udp://{a}"),
            UpstreamUrl::Tcp(a) => write!(f, "tcp://{a}"),
            UpstreamUrl::Network { path: None } => write!(f, "network://"),
            UpstreamUrl::Network { path: Some(p) } => write!(f, "network://{}", p.display()),
            UpstreamUrl::Tls { host: h, port } => write!(f, "tls://{}:{port}", host(h)),
            UpstreamUrl::Https {
                host: h,
                port,
                path,
            } => write!(f, "https://{}:{port}{path}", host(h)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            "udp://192.168.1.1".parse(),
            Ok(UpstreamUrl::Udp("192.168.1.1:53".parse().unwrap()))
        );
        assert_eq!(
            "tcp://[::1]:5300".parse(),
            Ok(UpstreamUrl::Tcp("[::1]:5300".parse().unwrap()))
        );
        assert_eq!(
            "tls://dns.quad9.net".parse(),
            Ok(UpstreamUrl::Tls {
                host: "dns.quad9.net".into(),
                port: 853
            })
        );
        assert_eq!(
            "https://1.1.1.1/dns-query".parse(),
            Ok(UpstreamUrl::Https {
                host: "1.1.1.1".into(),
                port: 443,
                path: "/dns-query".into()
            })
        );
        assert_eq!(
            "https://[2606:4700::1111]:8443/q"
                .parse::<UpstreamUrl>()
                .unwrap()
                .to_string(),
            "https://[2606:4700::1111]:8443/q"
        );
        assert!("udp://router.lan".parse::<UpstreamUrl>().is_err());
        assert!("ftp://x".parse::<UpstreamUrl>().is_err());
        assert!("8.8.8.8".parse::<UpstreamUrl>().is_err());
        assert!("tls://bad host".parse::<UpstreamUrl>().is_err());
    }
}
