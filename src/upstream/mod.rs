//! Upstream resolvers: where a query goes when no local stage can answer it.
//!
//! ```text
//!   forward handler --Message--> Upstream (validate) --bytes--> Transport (udp/tcp/tls/https)
//! ```
//!
//! A [`Transport`] moves wire bytes to one server and back: connection reuse, pipelining, framing,
//! TLS. [`Upstream`] wraps any transport with the checks every answer must pass before we believe it
//! (random ID, matching ID and question, sane size), so no transport can forget them.

pub mod doh;
pub mod dot;
pub mod padding;
pub mod plain;
pub mod tls;
pub mod url;

pub use url::UpstreamUrl;

use std::time::Duration;

use thiserror::Error;

use crate::handler::BoxFuture;

/// Why an exchange with an upstream failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("HTTP error: {0}")]
    Http(String),
    /// The answer does not belong to our query (wrong ID, question or source) or does not parse.
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// Too many queries are already waiting on this upstream.
    #[error("upstream overloaded")]
    Overloaded,
    /// The upstream URL or its options are unusable.
    #[error("bad upstream configuration: {0}")]
    Config(String),
}

/// Moves one query's wire bytes to a server and returns the response's wire bytes.
///
/// The transport may rewrite the message ID on the wire (to multiplex several queries on one
/// connection) but must return the response with the ID of `query` restored.
pub trait Transport: Send + Sync + 'static {
    /// One exchange. Bounded in time by the transport's own timeout.
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>>;

    /// The upstream's URL, for logs and metrics.
    fn url(&self) -> &str;
}
