//! TLS client settings for the encrypted transports: the only place that builds a rustls
//! `ClientConfig`.
//!
//! ```text
//!   TlsOptions --client_config--> ClientConfig (ring, TLS 1.2 + 1.3, resumption)
//!                                    \-- PinningVerifier: webpki (roots + extra CA), then SPKI pins
//!   addrs --connect--> TCP --TLS handshake (SNI, verification)--> TlsStream
//! ```
//!
//! Authentication follows RFC 8310's strict profile: certificate verification is always on, against
//! the upstream's host name (or IP address, checked against the certificate's IP SANs), with the
//! Mozilla roots from `webpki-roots` plus an optional extra CA from a PEM file. An optional pin set
//! (SHA-256 of the SubjectPublicKeyInfo, as RFC 7858 section 4.2 and stubby's `tls_pubkey_pinset`)
//! is checked *after* normal verification succeeds; a mismatch fails the handshake. There is no
//! opportunistic mode and no way to switch verification off.
//!
//! Sessions are resumed (RFC 8446 section 2.2, RFC 5077) from an in-memory cache per config, so a
//! reconnect after an idle close costs no certificate exchange.
//!
//! Limitations: pins are matched against the end-entity certificate only. Intermediates sent by a
//! server are not necessarily part of the path webpki verified (rustls does not expose that path),
//! and anyone can staple a public intermediate certificate to a chain, so matching them would let
//! a pin be satisfied by a certificate the server merely sent. Pin the server's own key. No OCSP
//! or CRL checks.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{BadConfig, CaFileProblem, ConnectCause, PinProblem, UpstreamError};

/// How many servers' sessions one config remembers for resumption.
const SESSION_CACHE_SIZE: usize = 32;

/// The largest extra-CA PEM file we read (a bundle of a few hundred certificates).
const MAX_CA_FILE: u64 = 4 << 20;

/// How one upstream's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// The DNS name or IP literal (without brackets) sent as SNI (names only) and verified against
    /// the certificate's SANs.
    pub server_name: String,
    /// A PEM file of CA certificates trusted in addition to webpki-roots.
    pub extra_ca_pem: Option<PathBuf>,
    /// SHA-256 digests of acceptable SubjectPublicKeyInfos of the end-entity certificate; empty
    /// means no pinning.
    pub spki_pins: Vec<[u8; 32]>,
    /// ALPN protocols to offer, most preferred first (`h2` for DoH, `dot` or nothing for DoT).
    pub alpn: Vec<Vec<u8>>,
}

impl TlsOptions {
    /// Options for `server_name` with the default roots, no pins and no ALPN.
    pub fn new(server_name: impl Into<String>) -> Self {
        TlsOptions {
            server_name: server_name.into(),
            extra_ca_pem: None,
            spki_pins: Vec::new(),
            alpn: Vec::new(),
        }
    }

    /// The name to verify, as rustls wants it.
    pub fn server_name(&self) -> Result<ServerName<'static>, UpstreamError> {
        let host = self
            .server_name
            .trim_start_matches('[')
            .trim_end_matches(']');
        ServerName::try_from(host.to_string())
            .map_err(|_| UpstreamError::Config(BadConfig::ServerName(self.server_name.clone())))
    }
}

/// Builds the client config for one upstream: ring provider, TLS 1.3 and 1.2, webpki verification
/// (plus pins), session resumption, and the options' ALPN list.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, UpstreamError> {
    opts.server_name()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &opts.extra_ca_pem {
        add_ca_file(&mut roots, path)?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| UpstreamError::Config(BadConfig::Verifier(e)))?;
    let verifier = Arc::new(PinningVerifier {
        inner: webpki,
        pins: opts.spki_pins.clone(),
    });

    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| UpstreamError::Config(BadConfig::Versions(e)))?
        .dangerous() // only to install PinningVerifier, which runs webpki first
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = opts.alpn.clone();
    config.resumption =
        Resumption::store(Arc::new(ClientSessionMemoryCache::new(SESSION_CACHE_SIZE)));
    Ok(Arc::new(config))
}

/// Parses a pin: the base64 SHA-256 digest of a SubjectPublicKeyInfo, as stubby writes it
/// (`value:` of `tls_pubkey_pinset`). A `sha256/` or `pin-sha256=` prefix and quotes are accepted.
pub fn parse_pin(s: &str) -> Result<[u8; 32], UpstreamError> {
    let t = s.trim();
    let t = t
        .strip_prefix("sha256/")
        .or_else(|| t.strip_prefix("pin-sha256="))
        .unwrap_or(t)
        .trim_matches('"');
    let bad = |problem| {
        UpstreamError::Config(BadConfig::Pin {
            pin: s.to_string(),
            problem,
        })
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|e| bad(PinProblem::Base64(e)))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(PinProblem::Length(b.len())))
}

/// The pin of a DER certificate: SHA-256 of its SubjectPublicKeyInfo. A certificate that does not
/// parse as X.509 DER is `BadEncoding`.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], CertificateError> {
    let spki = spki_of(cert_der).ok_or(CertificateError::BadEncoding)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}

/// Formats a pin as stubby writes it.
pub fn format_pin(pin: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(pin)
}

/// Opens a TCP connection to the first of `addrs` that answers and completes a TLS handshake on it,
/// the whole attempt per address bounded by `timeout`. Never resolves names.
pub async fn connect(
    addrs: &[SocketAddr],
    connector: &TlsConnector,
    server_name: &ServerName<'static>,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, UpstreamError> {
    let mut last = UpstreamError::Config(BadConfig::NoAddress);
    for &addr in addrs {
        let attempt = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| UpstreamError::connect(addr, e))?;
            // Queries are small and latency-bound; TLS already coalesces each write into a record.
            let _ = tcp.set_nodelay(true);
            connector
                .connect(server_name.clone(), tcp)
                .await
                .map_err(|e| handshake_error(addr, e))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "TLS connect failed");
                last = e;
            }
            Err(_) => {
                tracing::debug!(%addr, timeout_ms = timeout.as_millis() as u64, "TLS connect timed out");
                last = UpstreamError::Connect {
                    addr,
                    cause: ConnectCause::Timeout(timeout),
                };
            }
        }
    }
    Err(last)
}

/// The shortest and longest wait before reconnecting after failed connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How long to wait before the next connection attempt after `failures` consecutive failed ones:
/// nothing before the first failure, then 250 ms doubling up to 10 s. While it runs, queries fail
/// at once with the last error, so a pool moves on to another upstream instead of waiting.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => BACKOFF_MIN
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(BACKOFF_MAX),
    }
}

/// Connection counters of one encrypted transport, for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Completed TLS handshakes, full and resumed.
    pub handshakes: u64,
    /// Those of `handshakes` that resumed an earlier session.
    pub resumed: u64,
    /// Failed connection attempts (TCP or TLS).
    pub connect_failures: u64,
    /// Connections dropped after an error, a stall or a server close while queries were waiting.
    pub dropped: u64,
    /// Queries sent again on a fresh connection after their connection died.
    pub retried: u64,
}

/// The live, shared form of [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub handshakes: AtomicU64,
    pub resumed: AtomicU64,
    pub connect_failures: AtomicU64,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a finished handshake, full or resumed.
    pub fn handshake(&self, stream: &TlsStream<TcpStream>) {
        Self::bump(&self.handshakes);
        if stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            Self::bump(&self.resumed);
        }
    }

    pub fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            handshakes: get(&self.handshakes),
            resumed: get(&self.resumed),
            connect_failures: get(&self.connect_failures),
            dropped: get(&self.dropped),
            retried: get(&self.retried),
        }
    }
}

/// Maps a handshake failure: certificate and protocol problems are `Tls`, the rest `Connect`.
fn handshake_error(addr: SocketAddr, e: io::Error) -> UpstreamError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => UpstreamError::Tls {
            addr,
            error: tls.clone(),
        },
        None => UpstreamError::Connect {
            addr,
            cause: ConnectCause::Handshake(Arc::new(e)),
        },
    }
}

/// Reads an extra CA file and takes each of its certificates as a trust anchor, as
/// [`client_config`] does, so that the config layer can reject a bad file before anything starts.
pub fn check_ca_file(path: &Path) -> Result<(), UpstreamError> {
    add_ca_file(&mut RootCertStore::empty(), path)
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), UpstreamError> {
    for cert in read_pem_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| ca_file_error(path, CaFileProblem::Rejected(e)))?;
    }
    Ok(())
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamError> {
    let io = |e| ca_file_error(path, CaFileProblem::Io(Arc::new(e)));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_CA_FILE {
        return Err(ca_file_error(
            path,
            CaFileProblem::TooLarge {
                len: meta.len(),
                max: MAX_CA_FILE,
            },
        ));
    }
    // Read once at configuration time, before any query is served.
    let pem = std::fs::read(path).map_err(io)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    if certs.is_empty() {
        return Err(ca_file_error(path, CaFileProblem::NoCertificate));
    }
    Ok(certs)
}

fn ca_file_error(path: &std::path::Path, problem: CaFileProblem) -> UpstreamError {
    UpstreamError::Config(BadConfig::CaFile {
        path: path.to_path_buf(),
        problem,
    })
}

/// Runs the webpki verifier, then checks the end-entity certificate's SPKI against the pin set.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

/// The error a pin mismatch reports (inside `rustls::Error::InvalidCertificate`).
struct PinMismatch(String);

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SPKI pin mismatch: certificate key is sha256/{}", self.0)
    }
}

/// rustls shows `CertificateError::Other` with `Debug`: make that the readable message too.
impl fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.pins.is_empty() {
            return Ok(verified);
        }
        let pin = spki_sha256(end_entity).map_err(rustls::Error::InvalidCertificate)?;
        if self.pins.contains(&pin) {
            return Ok(verified);
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(PinMismatch(format_pin(&pin)))),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// DER tags we walk through (X.690 section 8; RFC 5280 section 4.1).
const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;
const TAG_VERSION: u8 = 0xA0; // [0] EXPLICIT, constructed

/// One DER element: its tag, its contents, the whole encoding, and what follows it.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

/// Reads one DER TLV with a single-octet tag and a definite length of at most 4 octets.
fn read_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None; // multi-octet tags never occur in the fields we walk
    }
    let (&first, mut after_len) = after_tag.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 {
            return None; // indefinite length (BER only) or absurdly long
        }
        let octets = after_len.get(..n)?;
        after_len = &after_len[n..];
        octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize)
    };
    let contents = after_len.get(..len)?;
    let header_len = input.len() - after_len.len();
    Some(Tlv {
        tag,
        contents,
        whole: &input[..header_len + len],
        rest: &after_len[len..],
    })
}

/// Reads a TLV that must carry `tag`.
fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    read_tlv(input).filter(|t| t.tag == tag)
}

/// The encoded SubjectPublicKeyInfo (tag and length included) of an X.509 certificate:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }`.
fn spki_of(cert: &[u8]) -> Option<&[u8]> {
    let certificate = expect(cert, TAG_SEQUENCE)?;
    let tbs = expect(certificate.contents, TAG_SEQUENCE)?;
    let mut fields = tbs.contents;
    if let Some(version) = read_tlv(fields).filter(|t| t.tag == TAG_VERSION) {
        fields = version.rest;
    }
    fields = expect(fields, TAG_INTEGER)?.rest; // serialNumber
    for _ in 0..4 {
        fields = expect(fields, TAG_SEQUENCE)?.rest; // signature, issuer, validity, subject
    }
    Some(expect(fields, TAG_SEQUENCE)?.whole)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure
mod tests {
    use super::*;

    fn test_cert() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["dns.test".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key.public_key_der())
    }

    #[test]
    fn spki_is_found_in_a_real_certificate() {
        let (der, spki) = test_cert();
        assert_eq!(spki_of(&der), Some(spki.as_slice()));
        let want = ring::digest::digest(&ring::digest::SHA256, &spki);
        assert_eq!(spki_sha256(&der).unwrap().as_slice(), want.as_ref());
    }

    #[test]
    fn malformed_der_is_rejected_without_panic() {
        let (der, _) = test_cert();
        for len in 0..der.len() {
            assert_eq!(spki_of(&der[..len]), None, "truncated at {len}");
        }
        assert!(spki_sha256(b"not a certificate").is_err());
        // Indefinite length, oversized length octets, and a length past the end.
        assert!(read_tlv(&[0x30, 0x80, 0, 0]).is_none());
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read_tlv(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_none());
        assert!(read_tlv(&[0x30, 0x03, 1, 2]).is_none());
        let tlv = read_tlv(&[0x02, 0x81, 0x01, 7, 9]).unwrap();
        assert_eq!(
            (tlv.tag, tlv.contents, tlv.whole, tlv.rest),
            (2, &[7u8][..], &[2u8, 0x81, 1, 7][..], &[9u8][..])
        );
        // Random bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let buf: Vec<u8> = (0..64)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = spki_of(&buf);
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(7), Duration::from_secs(10));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn pins_parse_in_the_usual_spellings() {
        let pin = [0xAB; 32];
        let b64 = format_pin(&pin);
        assert_eq!(parse_pin(&b64).unwrap(), pin);
        assert_eq!(parse_pin(&format!("sha256/{b64}")).unwrap(), pin);
        assert_eq!(parse_pin(&format!("pin-sha256=\"{b64}\"")).unwrap(), pin);
        assert_eq!(parse_pin(&format!("  {b64}\n")).unwrap(), pin);
        let problem = |s: &str| match parse_pin(s) {
            Err(UpstreamError::Config(BadConfig::Pin { pin, problem })) if pin == s => problem,
            other => panic!("{s:?}: {other:?}"),
        };
        assert!(matches!(problem("not base64!"), PinProblem::Base64(_)));
        assert_eq!(problem("AAAA"), PinProblem::Length(3));
        assert_eq!(problem(""), PinProblem::Length(0));
    }

    #[test]
    fn config_is_built_with_extra_ca_and_rejects_bad_input() {
        let mut opts = TlsOptions::new("dns.test");
        opts.alpn = vec![b"h2".to_vec()];
        let cfg = client_config(&opts).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);

        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        check_ca_file(&ca_path).unwrap();
        opts.extra_ca_pem = Some(ca_path);
        assert!(client_config(&opts).is_ok());

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here").unwrap();
        assert!(matches!(
            check_ca_file(&empty),
            Err(UpstreamError::Config(BadConfig::CaFile { .. }))
        ));
        opts.extra_ca_pem = Some(empty.clone());
        match client_config(&opts) {
            Err(UpstreamError::Config(BadConfig::CaFile { path, problem })) => {
                assert_eq!(path, empty);
                assert!(matches!(problem, CaFileProblem::NoCertificate), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        opts.extra_ca_pem = Some(dir.path().join("missing.pem"));
        match client_config(&opts) {
            Err(e @ UpstreamError::Config(BadConfig::CaFile { .. })) => {
                let text = e.to_string();
                assert!(text.contains("missing.pem: "), "{text}");
                let not_found = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
                assert!(
                    text.contains("No such file") || text.contains(&not_found),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }

        assert!(TlsOptions::new("bad name!").server_name().is_err());
        assert!(TlsOptions::new("::1").server_name().is_ok());
        assert!(TlsOptions::new("[::1]").server_name().is_ok());
        assert!(TlsOptions::new("127.0.0.1").server_name().is_ok());
    }
}
