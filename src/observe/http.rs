//! The metrics endpoint: a minimal HTTP/1.1 responder for `GET /metrics`, one request per
//! connection.
//!
//! ```text
//!   permit (at most MAX_CONNECTIONS) --accept--> read the head (<= MAX_HEAD octets, READ_TIMEOUT)
//!     --"GET /metrics"--> 200 + prometheus::render(snapshot)  --other path--> 404  --other method--> 405
//!     --> Connection: close
//! ```
//!
//! Why not hyper's server: a scraper sends one small GET every few seconds; what it needs is a
//! request line, a status line and a body. A hand-written responder bounded in connections, bytes
//! and time is a few dozen lines and adds no feature to a dependency. The endpoint is off by
//! default and meant for loopback or a trusted network: it has no authentication, like most
//! exporters (unbound's and dnsdist's included); the counters say how much was asked, not what.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{prometheus, Sources};

/// Concurrent connections; a scraper uses one.
pub const MAX_CONNECTIONS: usize = 8;
/// Longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time allowed to send the request head, and to take the response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // The permit comes before the accept: at the cap, connections wait in the backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if tokio::time::timeout(READ_TIMEOUT * 2, respond(stream, &sources))
                .await
                .is_err()
            {
                debug!(%peer, "metrics client too slow; closed");
            }
        });
    }
}

/// Reads one request head and answers it.
async fn respond(mut stream: TcpStream, sources: &Sources) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() >= MAX_HEAD {
            break false;
        }
        match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
            Ok(Ok(n)) => head.extend_from_slice(&buf[..n.min(MAX_HEAD - head.len())]),
        }
    };
    let (status, content_type, body) = if !complete {
        ("400 Bad Request", "text/plain", "bad request\n".to_string())
    } else {
        route(&head, sources)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The status, content type and body for a request head.
fn route(head: &[u8], sources: &Sources) -> (&'static str, &'static str, String) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            prometheus::CONTENT_TYPE,
            prometheus::render(&sources.snapshot()),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain",
            "dnsveil: metrics at /metrics\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    }
}
