//! Why an exchange with an upstream failed, with the cause kept as a value.
//!
//! Each failure carries what caused it: the `io::Error` of a refused connection and the address
//! that refused it, the `rustls::Error` of a failed handshake, the status of a DoH answer, the
//! field of an answer that did not match our query. The forward stage passes the error up the
//! chain unchanged, and its text becomes the Extended DNS Error text the client sees (RFC 8914
//! EXTRA-TEXT), so the text says what failed and where:
//!
//! ```text
//!   connection failed: 127.0.0.1:853: Connection refused (os error 111)
//!   TLS error: 192.0.2.1:853: invalid peer certificate: UnknownIssuer
//!   bad answer: ID 4321 instead of 1234
//! ```
//!
//! Every type here is `Clone`, because one failure may reach several queries (those waiting on a
//! DoT connection that died, the callers of one DoH connection attempt); a cause that is not
//! `Clone` itself (`io::Error`, hyper's errors) is held in an `Arc`. The enums are
//! `#[non_exhaustive]`: transports to come (DNS over QUIC) will add causes.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::UpstreamUrl;
use crate::wire::{Opcode, WireError};

/// Why an exchange with an upstream failed.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// No answer within this time limit (the transport's, the upstream's or the pool's).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No connection to `addr`: refused, unreachable, or not set up in time.
    #[error("connection failed: {addr}: {cause}")]
    Connect {
        addr: SocketAddr,
        cause: ConnectCause,
    },
    /// The TLS handshake with `addr` failed on TLS itself: the certificate (or its pin), or the
    /// protocol.
    #[error("TLS error: {addr}: {error}")]
    Tls {
        addr: SocketAddr,
        error: rustls::Error,
    },
    /// Reading or writing a socket or an established connection failed.
    #[error("I/O error: {0}")]
    Io(Arc<io::Error>),
    /// The connection ended while the query was on it.
    #[error("connection lost: {0}")]
    Lost(Lost),
    /// A DoH exchange failed at the HTTP level.
    #[error("HTTP error: {0}")]
    Http(HttpError),
    /// The answer does not belong to our query (ID, question, source) or does not parse.
    #[error("bad answer: {0}")]
    BadAnswer(BadAnswer),
    /// The upstream answered REFUSED: it will not serve us.
    #[error("the upstream refused the query (REFUSED)")]
    Refused,
    /// The upstream's in-flight cap stayed full for the whole exchange timeout: queries are
    /// arriving faster than it answers.
    #[error("upstream overloaded")]
    Overloaded,
    /// Our own query could not be sent.
    #[error("cannot send the query: {0}")]
    BadQuery(BadQuery),
    /// The upstream URL or its options are unusable.
    #[error("bad upstream configuration: {0}")]
    Config(BadConfig),
    /// `network://`: the network gave no resolvers (none listed, or only loopback ones).
    #[error("the network's resolv.conf lists no usable resolver")]
    NoNetworkResolvers,
}

impl UpstreamError {
    /// An I/O failure on an established connection or socket.
    pub fn io(e: io::Error) -> Self {
        UpstreamError::Io(Arc::new(e))
    }

    /// An I/O failure on a stream (TCP, TLS): the server closing it before the answer is
    /// [`Lost::ServerClosed`].
    pub fn stream_io(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            UpstreamError::Lost(Lost::ServerClosed)
        } else {
            UpstreamError::io(e)
        }
    }

    /// A failed attempt to connect to `addr`.
    pub fn connect(addr: SocketAddr, e: io::Error) -> Self {
        UpstreamError::Connect {
            addr,
            cause: ConnectCause::Io(Arc::new(e)),
        }
    }
}

/// Why a connection could not be set up ([`UpstreamError::Connect`]).
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum ConnectCause {
    /// The connect call failed (refused, unreachable, no route...).
    #[error("{0}")]
    Io(Arc<io::Error>),
    /// The TLS handshake failed on I/O (the server closed or reset the connection), not on TLS.
    #[error("TLS handshake: {0}")]
    Handshake(Arc<io::Error>),
    /// TCP connect and TLS handshake together took longer than this.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// How a connection ended under a query ([`UpstreamError::Lost`]).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lost {
    /// The server closed it (end of stream).
    #[error("closed by the server")]
    ServerClosed,
    /// We closed it: the network changed, or it stalled.
    #[error("reset by dnsveil")]
    Reset,
    /// The task that drove the connection is gone (the transport is shutting down).
    #[error("transport stopped")]
    Stopped,
}

/// Why a DoH exchange failed at the HTTP level ([`UpstreamError::Http`]).
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The TLS handshake did not select HTTP/2 by ALPN (RFC 8484 section 5.2 wants HTTP/2).
    #[error("server did not negotiate HTTP/2 (ALPN h2)")]
    NoH2,
    /// The HTTP/2 connection preface and settings exchange failed.
    #[error("HTTP/2 handshake: {0}")]
    Handshake(Arc<h2::Error>),
    /// The HTTP/2 handshake took longer than this.
    #[error("HTTP/2 handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The request could not be built (a URI that does not take the query).
    #[error("building request: {0}")]
    BuildRequest(Arc<http::Error>),
    /// The request failed on the connection (stream reset, connection error).
    #[error("request failed: {0}")]
    Request(Arc<h2::Error>),
    /// A status other than 200.
    #[error("status {0}")]
    Status(http::StatusCode),
    /// A media type other than `application/dns-message` (the one the server sent, if any).
    #[error("content type {0:?}, not application/dns-message")]
    ContentType(Option<String>),
    /// A Content-Length above the largest answer we read.
    #[error("body of {len} octets exceeds {max}")]
    DeclaredTooLarge { len: u64, max: usize },
    /// A body that went on past the largest answer we read.
    #[error("body exceeds {max} octets")]
    BodyTooLarge { max: usize },
    /// The body stopped arriving (the stream or connection broke).
    #[error("reading body: {0}")]
    Body(Arc<dyn StdError + Send + Sync>),
}

/// The transport an answer came over, for [`BadAnswer`] texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    Tcp,
    Dot,
    Doh,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Tcp => "TCP",
            Via::Dot => "DoT",
            Via::Doh => "DoH",
        })
    }
}

/// Why an answer is not believed ([`UpstreamError::BadAnswer`]).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadAnswer {
    /// It is not a DNS message.
    #[error("does not parse: {0}")]
    Parse(WireError),
    /// QR=0: a query, not a response.
    #[error("QR=0")]
    NotResponse,
    /// Another message ID than the one we sent.
    #[error("ID {got} instead of {sent}")]
    Id { got: u16, sent: u16 },
    /// Another opcode than the one we sent.
    #[error("opcode {got} instead of {sent}")]
    Opcode { got: Opcode, sent: Opcode },
    /// Another question (name, type or class) than the one we asked.
    #[error("question differs")]
    Question,
    /// Over UDP with 0x20 case randomisation, only answers whose question differed from ours in
    /// letter case came before the deadline: a server that does not preserve case, or a spoofer.
    #[error("question came back in another letter case (0x20)")]
    QuestionCase,
    /// Shorter than a DNS header.
    #[error("{via} answer of {len} octets")]
    Short { via: Via, len: usize },
    /// A DoT frame that is not a DNS response: the stream is out of step.
    #[error("malformed {via} response ({len} octets)")]
    Malformed { via: Via, len: usize },
    /// Over a stream, an answer with another ID or question than the query on that stream.
    #[error("{via} answer does not match the query (ID or question)")]
    Mismatch { via: Via },
}

/// Why our query could not be sent ([`UpstreamError::BadQuery`]).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadQuery {
    /// A length outside what the transport can carry (a header's 12 to 65535 octets).
    #[error("a query of {0} octets")]
    Length(usize),
    /// The query does not encode.
    #[error("does not encode: {0}")]
    Encode(WireError),
    /// The query has no question to ask.
    #[error("has no question")]
    NoQuestion,
}

/// Why an upstream cannot be set up ([`UpstreamError::Config`]).
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum BadConfig {
    /// The URL's scheme is not the transport's.
    #[error("{url} is not a {want} URL")]
    Scheme {
        url: UpstreamUrl,
        want: &'static str,
    },
    /// A host name and no bootstrap address: reaching it would take plaintext DNS.
    #[error("{url}: host {host:?} needs bootstrap addresses")]
    NoBootstrap { url: UpstreamUrl, host: String },
    /// No address to connect to.
    #[error("no address to connect to")]
    NoAddress,
    /// The DoH URL does not make a request URI.
    #[error("{url}: bad request URI: {error}")]
    RequestUri {
        url: UpstreamUrl,
        error: Arc<http::uri::InvalidUri>,
    },
    /// The host is neither a DNS name nor an IP address rustls can verify.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// The extra CA file cannot be used.
    #[error("CA file {}: {problem}", path.display())]
    CaFile {
        path: PathBuf,
        problem: CaFileProblem,
    },
    /// rustls would not build a certificate verifier over the roots.
    #[error("certificate verifier: {0}")]
    Verifier(rustls::client::VerifierBuilderError),
    /// rustls would not take the TLS versions.
    #[error("TLS versions: {0}")]
    Versions(rustls::Error),
    /// An SPKI pin that is not a base64 SHA-256 digest.
    #[error("pin {pin:?} {problem}")]
    Pin { pin: String, problem: PinProblem },
    /// A pool without upstreams.
    #[error("an upstream group needs an upstream")]
    EmptyGroup,
}

/// What is wrong with an extra CA file ([`BadConfig::CaFile`]).
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum CaFileProblem {
    /// It cannot be read, or its PEM does not parse.
    #[error("{0}")]
    Io(Arc<io::Error>),
    /// Larger than we read.
    #[error("{len} octets, more than {max}")]
    TooLarge { len: u64, max: u64 },
    /// No certificate in it.
    #[error("no CERTIFICATE block in file")]
    NoCertificate,
    /// A certificate the root store rejects.
    #[error("{0}")]
    Rejected(rustls::Error),
}

/// What is wrong with an SPKI pin ([`BadConfig::Pin`]).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinProblem {
    #[error("is not base64: {0}")]
    Base64(base64::DecodeError),
    #[error("is {0} octets, a SHA-256 digest has 32")]
    Length(usize),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn texts_carry_the_cause_and_where() {
        let addr: SocketAddr = "127.0.0.1:853".parse().unwrap();
        let refused =
            UpstreamError::connect(addr, io::Error::from(io::ErrorKind::ConnectionRefused));
        let text = refused.to_string();
        assert!(
            text.starts_with("connection failed: 127.0.0.1:853: "),
            "{text}"
        );
        assert!(text.contains(&io::Error::from(io::ErrorKind::ConnectionRefused).to_string()));

        let tls = UpstreamError::Tls {
            addr,
            error: rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        };
        assert_eq!(
            tls.to_string(),
            "TLS error: 127.0.0.1:853: invalid peer certificate: UnknownIssuer"
        );

        let id = UpstreamError::BadAnswer(BadAnswer::Id { got: 1, sent: 2 });
        assert_eq!(id.to_string(), "bad answer: ID 1 instead of 2");
        let short = UpstreamError::BadAnswer(BadAnswer::Short {
            via: Via::Tcp,
            len: 5,
        });
        assert_eq!(short.to_string(), "bad answer: TCP answer of 5 octets");
        let lost = UpstreamError::Lost(Lost::ServerClosed);
        assert_eq!(lost.to_string(), "connection lost: closed by the server");
        let status = UpstreamError::Http(HttpError::Status(http::StatusCode::BAD_GATEWAY));
        assert_eq!(status.to_string(), "HTTP error: status 502 Bad Gateway");
        let timeout = UpstreamError::Connect {
            addr,
            cause: ConnectCause::Timeout(Duration::from_millis(1500)),
        };
        assert_eq!(
            timeout.to_string(),
            "connection failed: 127.0.0.1:853: timed out after 1.5s"
        );
        let pin = UpstreamError::Config(BadConfig::Pin {
            pin: "AAAA".into(),
            problem: PinProblem::Length(3),
        });
        assert_eq!(
            pin.to_string(),
            "bad upstream configuration: pin \"AAAA\" is 3 octets, a SHA-256 digest has 32"
        );
    }

    #[test]
    fn a_cause_is_shared_between_clones() {
        let e = UpstreamError::io(io::Error::other("boom"));
        let copy = e.clone();
        let (UpstreamError::Io(a), UpstreamError::Io(b)) = (&e, &copy) else {
            panic!("{e:?}");
        };
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(copy.to_string(), "I/O error: boom");
    }
}
