//! Fetching lists over HTTPS, with the list host's addresses asked of dnsveil's own chain.
//!
//! ```text
//!   refresher (every refresh_secs) --for each URL--> host: Chain::lookup A, AAAA (cache, hosts,
//!     forwarder: the encrypted upstreams; never the OS resolver, never plaintext to the internet)
//!     --> TCP + TLS (webpki roots + block.ca_file, tls.rs) --> HTTP/2 or HTTP/1.1 GET
//!     --> 200, body <= MAX_LIST_BYTES --> last good copy on disk (load::write_copy)
//!     --> rebuild the index off to the side --> Blocker::swap
//!   a failed fetch: warning, the last good copy stays and is used
//! ```
//!
//! Limitations: redirects are not followed (configure the final URL; a 3xx is reported with its
//! `Location`); no conditional requests (`If-Modified-Since`): every refresh downloads the list.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use thiserror::Error;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::handler::{Chain, Lookup};
use crate::upstream::{tls, UpstreamError};
use crate::wire::{Name, QueryFlags, Question, RData, RType};

use super::load::{self, BlockSettings, ListUrl, MAX_LIST_BYTES};
use super::Blocker;

/// Time limit of one fetch: resolving, connecting, and the whole body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Time limit of the TCP connect and TLS handshake, per address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a list could not be fetched.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The host name could not be resolved through the chain.
    #[error("resolving {host}: {detail}")]
    Resolve { host: String, detail: String },
    /// TCP or TLS failed (certificate checks included).
    #[error("{0}")]
    Connect(#[source] UpstreamError),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[source] hyper::Error),
    /// The request could not be built from the URL.
    #[error("bad request: {0}")]
    Request(#[source] http::Error),
    /// The server answered with another status than 200.
    #[error("HTTP status {status}{}", location.as_ref().map_or(String::new(), |l| format!(" (redirect to {l}: configure that URL)")))]
    Status {
        status: http::StatusCode,
        location: Option<String>,
    },
    /// The body is larger than [`MAX_LIST_BYTES`], or broke off.
    #[error("body: {0}")]
    Body(String),
    /// The whole fetch took longer than [`FETCH_TIMEOUT`].
    #[error("no list within {0:?}")]
    Timeout(Duration),
}

/// Fetches `url`: its body, or why not.
pub async fn fetch(
    url: &ListUrl,
    resolver: &Chain,
    ca_file: Option<&Path>,
) -> Result<Vec<u8>, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(url, resolver, ca_file))
        .await
        .map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
}

async fn fetch_inner(
    url: &ListUrl,
    resolver: &Chain,
    ca_file: Option<&Path>,
) -> Result<Vec<u8>, FetchError> {
    let addrs = resolve(url, resolver).await?;
    let mut opts = tls::TlsOptions::new(url.host());
    opts.extra_ca_pem = ca_file.map(Path::to_path_buf);
    opts.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let config = tls::client_config(&opts).map_err(FetchError::Connect)?;
    let server_name = opts.server_name().map_err(FetchError::Connect)?;
    let stream = tls::connect(
        &addrs,
        &TlsConnector::from(config),
        &server_name,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(FetchError::Connect)?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let authority = if url.port() == 443 {
        host_for_uri(url.host())
    } else {
        format!("{}:{}", host_for_uri(url.host()), url.port())
    };
    let io = TokioIo::new(stream);
    let response = if h2 {
        let request = http::Request::get(format!("https://{authority}{}", url.path()))
            .header(http::header::USER_AGENT, "dnsveil")
            .body(Empty::<Bytes>::new())
            .map_err(FetchError::Request)?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(FetchError::Http)?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(FetchError::Http)?
    } else {
        let request = http::Request::get(url.path())
            .header(http::header::HOST, authority)
            .header(http::header::USER_AGENT, "dnsveil")
            .body(Empty::<Bytes>::new())
            .map_err(FetchError::Request)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(FetchError::Http)?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(FetchError::Http)?
    };
    if response.status() != http::StatusCode::OK {
        return Err(FetchError::Status {
            status: response.status(),
            location: response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(String::from),
        });
    }
    let body = Limited::new(response.into_body(), MAX_LIST_BYTES as usize)
        .collect()
        .await
        .map_err(|e| FetchError::Body(e.to_string()))?;
    Ok(body.to_bytes().to_vec())
}

fn host_for_uri(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The addresses of `url`'s host: the address itself, or the A and AAAA records the chain gives.
async fn resolve(url: &ListUrl, resolver: &Chain) -> Result<Vec<SocketAddr>, FetchError> {
    if let Ok(ip) = url.host().parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, url.port())]);
    }
    let err = |detail: String| FetchError::Resolve {
        host: url.host().to_string(),
        detail,
    };
    let name: Name = url.host().parse().map_err(|e| err(format!("{e}")))?;
    let mut addrs = Vec::new();
    let mut last = String::from("no address records");
    for rtype in [RType::A, RType::AAAA] {
        let lookup = Lookup {
            question: Question::new(name.clone(), rtype),
            flags: QueryFlags::default(),
        };
        match resolver.lookup(&lookup).await {
            Ok(answer) => match answer.message() {
                Ok(m) => addrs.extend(m.answers.iter().filter_map(|r| match r.data {
                    RData::A(ip) => Some(SocketAddr::new(ip.into(), url.port())),
                    RData::Aaaa(ip) => Some(SocketAddr::new(ip.into(), url.port())),
                    _ => None,
                })),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
    }
    if addrs.is_empty() {
        return Err(err(last));
    }
    Ok(addrs)
}

/// Fetches every URL list (keeping the last good copy of each that fails), then reloads the
/// index; every `settings.refresh`, and at once when `now` is notified. The first round fetches
/// only the lists whose copy is missing or older than the refresh interval (a restart does not
/// download everything again).
pub async fn refresh_loop(
    blocker: Arc<Blocker>,
    settings: Arc<BlockSettings>,
    resolver: Chain,
    now: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut first = true;
    loop {
        let mut fetched = 0;
        for url in settings.urls() {
            let path = settings.copy_path(url);
            if first && is_fresh(&path, settings.refresh) {
                continue;
            }
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = fetch(url, &resolver, settings.ca_file.as_deref()) => r,
            };
            match result {
                Ok(body) => {
                    let len = body.len();
                    let written = {
                        let path = path.clone();
                        tokio::task::spawn_blocking(move || load::write_copy(&path, &body)).await
                    };
                    match written {
                        Ok(Ok(())) => {
                            info!(list = %url, bytes = len, copy = %path.display(), "block list fetched");
                            fetched += 1;
                        }
                        Ok(Err(e)) => warn!(list = %url, copy = %path.display(), error = %e,
                            "block list fetched but its copy cannot be written; keeping the last good copy"),
                        Err(e) => warn!(list = %url, error = %e, "block list copy write failed"),
                    }
                }
                Err(e) => warn!(list = %url, error = %e,
                    "block list fetch failed; keeping the last good copy"),
            }
        }
        if !first || fetched > 0 {
            super::reload(&blocker, &settings).await;
        }
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(settings.refresh) => {}
            _ = now.notified() => {}
        }
    }
}

/// Whether the copy at `path` was written less than `refresh` ago.
fn is_fresh(path: &Path, refresh: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < refresh)
}
