//! A test PKI and in-process DoT and DoH servers on loopback, with knobs for misbehaving.
//!
//! The servers answer with canned responses built by our own wire types (NOERROR with empty
//! sections, NXDOMAIN for names whose first label is `nx`) and count what they see: accepted TCP
//! connections, finished TLS handshakes, queries, closed connections. Each server stops when its
//! handle is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use dnsveil::wire::{Message, Rcode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A server certificate chain and its key.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ServerCert {
    fn clone(&self) -> Self {
        ServerCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ServerCert {
    /// The SPKI pin of the end-entity certificate.
    pub fn pin(&self) -> [u8; 32] {
        dnsveil::upstream::tls::spki_sha256(&self.chain[0]).expect("certificate parses")
    }
}

/// A test CA (written to a PEM file for `TlsOptions::extra_ca_pem`) and server certificates for
/// every failure case.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// PEM file of the trusted test CA.
    pub ca_file: PathBuf,
    /// `dns.test`, 127.0.0.1 and ::1, signed by the test CA.
    pub good: ServerCert,
    /// Same names, expired in 2001.
    pub expired: ServerCert,
    /// Same names, signed by a CA nobody trusts.
    pub unknown_ca: ServerCert,
    /// Only `dns.test`, no IP SAN.
    pub name_only: ServerCert,
}

fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "dnsveil tests");
    dn.push(rcgen::DnType::CommonName, cn);
    dn
}

fn ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = dn(cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    (params.self_signed(&key).expect("CA"), key)
}

fn leaf(
    issuer: &(rcgen::Certificate, rcgen::KeyPair),
    with_ips: bool,
    expired: bool,
) -> ServerCert {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["dns.test".to_string()]).expect("params");
    if with_ips {
        params.subject_alt_names.extend([
            rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            rcgen::SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]);
    }
    params.distinguished_name = dn("dns.test");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).expect("leaf");
    ServerCert {
        chain: vec![cert.der().clone(), issuer.0.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

impl Pki {
    /// A fresh PKI generated with rcgen.
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let trusted = ca("dnsveil test CA");
        let stranger = ca("dnsveil unknown test CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, trusted.0.pem()).expect("write CA");
        Pki {
            ca_file,
            good: leaf(&trusted, true, false),
            expired: leaf(&trusted, true, true),
            unknown_ca: leaf(&stranger, true, false),
            name_only: leaf(&trusted, false, false),
            _dir: dir,
        }
    }

    /// The PKI committed in certs/test (made by certs/gen-test-pki.sh); `name_only` is `good`.
    pub fn committed() -> Pki {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/test");
        let load = |name: &str| {
            let pem = std::fs::read(root.join(format!("{name}.pem"))).expect("cert file");
            let chain = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = std::fs::read(root.join(format!("{name}.key"))).expect("key file");
            let key = rustls_pemfile::private_key(&mut key.as_slice())
                .expect("key parses")
                .expect("a key");
            ServerCert { chain, key }
        };
        Pki {
            ca_file: root.join("ca.pem"),
            good: load("server"),
            expired: load("expired"),
            unknown_ca: load("other"),
            name_only: load("server"),
            _dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

fn server_config(cert: &ServerCert, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What a test server counts.
#[derive(Default)]
pub struct Counts {
    /// TCP connections accepted.
    pub accepted: AtomicUsize,
    /// TLS handshakes completed.
    pub handshakes: AtomicUsize,
    /// Connections that have ended.
    pub closed: AtomicUsize,
    /// Queries (DoT frames or DoH requests) received.
    pub queries: AtomicUsize,
    /// Signalled whenever `closed` or `queries` changes.
    pub changed: Notify,
    /// Lengths of the DNS queries received.
    pub query_lengths: Mutex<Vec<usize>>,
}

impl Counts {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    /// Waits (at most 5 s) until `n` connections have ended.
    pub async fn wait_closed(&self, n: usize) {
        self.wait_for(&self.closed, n, "connections to close").await
    }

    /// Waits (at most 5 s) until `n` queries have arrived.
    pub async fn wait_queries(&self, n: usize) {
        self.wait_for(&self.queries, n, "queries to arrive").await
    }

    async fn wait_for(&self, counter: &AtomicUsize, n: usize, what: &str) {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if Self::get(counter) >= n {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            panic!("timed out waiting for {n} {what}");
        }
    }

    fn saw_query(&self, len: usize) {
        self.query_lengths.lock().expect("lock").push(len);
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn closed(&self) {
        self.closed.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

/// The canned answer to a query: NOERROR, or NXDOMAIN for a first label `nx`; no records.
pub fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::parse(query).ok()?;
    let mut r = Message::response_to(&q);
    let nx = q
        .question()
        .and_then(|q| {
            q.name
                .labels()
                .next()
                .map(|l| l.eq_ignore_ascii_case(b"nx"))
        })
        .unwrap_or(false);
    r.set_rcode(if nx { Rcode::NXDOMAIN } else { Rcode::NOERROR });
    r.encode().ok()
}

/// How the DoT server behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotMode {
    /// Answer each query at once.
    Answer,
    /// Wait for this many queries on a connection, then answer them in reverse order.
    Reverse(usize),
    /// The first connection reads one query and closes without answering; later ones answer.
    CloseFirst,
    /// Read queries and never answer.
    Stall,
    /// The first connection stalls; later ones answer.
    StallFirst,
    /// Answer every query with a frame of five junk octets.
    Garbage,
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn accepted(&self) -> usize {
        Counts::get(&self.counts.accepted)
    }

    pub fn handshakes(&self) -> usize {
        Counts::get(&self.counts.handshakes)
    }

    pub fn queries(&self) -> usize {
        Counts::get(&self.counts.queries)
    }
}

async fn listen(ip: IpAddr) -> TcpListener {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind loopback")
}

/// Starts a DoT server on 127.0.0.1.
pub async fn dot_server(cert: &ServerCert, mode: DotMode) -> TestServer {
    dot_server_on(IpAddr::V4(Ipv4Addr::LOCALHOST), cert, mode).await
}

/// Starts a DoT server on a loopback address.
pub async fn dot_server_on(ip: IpAddr, cert: &ServerCert, mode: DotMode) -> TestServer {
    assert!(ip.is_loopback(), "tests use loopback only");
    let listener = listen(ip).await;
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server_config(cert, &[]));
    let counts = Arc::new(Counts::default());
    let first = Arc::new(AtomicBool::new(true));
    let c = counts.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let is_first = first.swap(false, Ordering::SeqCst);
            let (acceptor, c) = (acceptor.clone(), c.clone());
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    c.handshakes.fetch_add(1, Ordering::SeqCst);
                    serve_dot(stream, mode, is_first, &c).await;
                }
                c.closed();
            });
        }
    });
    TestServer { addr, counts, task }
}

async fn serve_dot<S>(mut stream: S, mode: DotMode, first: bool, counts: &Counts)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        counts.saw_query(query.len());
        let replies: Vec<Vec<u8>> = match mode {
            DotMode::Answer => answer(&query).into_iter().collect(),
            DotMode::CloseFirst if first => {
                let _ = stream.shutdown().await;
                return;
            }
            DotMode::CloseFirst => answer(&query).into_iter().collect(),
            DotMode::Stall => continue,
            DotMode::StallFirst if first => continue,
            DotMode::StallFirst => answer(&query).into_iter().collect(),
            DotMode::Garbage => vec![vec![1, 2, 3, 4, 5]],
            DotMode::Reverse(n) => {
                held.extend(answer(&query));
                if held.len() < n {
                    continue;
                }
                held.drain(..).rev().collect()
            }
        };
        let mut out = Vec::new();
        for r in replies {
            out.extend_from_slice(&(r.len() as u16).to_be_bytes());
            out.extend_from_slice(&r);
        }
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// How the DoH server behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DohMode {
    /// Answer GET and POST properly.
    Answer,
    /// Answer with this status (and a proper body).
    Status(u16),
    /// Answer 200 with this content type.
    ContentType(&'static str),
    /// Answer 200 application/dns-message with a body of 70000 octets (Content-Length set).
    Oversize,
    /// The same, sent in chunks without a Content-Length.
    OversizeChunked,
    /// The first connection is torn down when its first request arrives; later ones answer.
    CloseFirst,
    /// Never answer.
    Stall,
    /// Never answer on the first connection; later ones answer.
    StallFirst,
}

/// A request as the DoH server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// The DNS ID of the query carried.
    pub id: Option<u16>,
}

/// A running DoH server and the requests it saw.
pub struct DohServer {
    pub server: TestServer,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

/// Starts a DoH server (HTTP/2 only, ALPN h2) on 127.0.0.1 answering at `/dns-query`.
pub async fn doh_server(cert: &ServerCert, mode: DohMode) -> DohServer {
    let listener = listen(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server_config(cert, &[b"h2"]));
    let counts = Arc::new(Counts::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let first = Arc::new(AtomicBool::new(true));
    let (c, s) = (counts.clone(), seen.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let is_first = first.swap(false, Ordering::SeqCst);
            let (acceptor, c, s) = (acceptor.clone(), c.clone(), s.clone());
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    c.handshakes.fetch_add(1, Ordering::SeqCst);
                    serve_doh(stream, mode, is_first, c.clone(), s).await;
                }
                c.closed();
            });
        }
    });
    DohServer {
        server: TestServer { addr, counts, task },
        seen,
    }
}

async fn serve_doh<S>(
    stream: S,
    mode: DohMode,
    first: bool,
    counts: Arc<Counts>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let k = kill.clone();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (counts, seen, kill) = (counts.clone(), seen.clone(), k.clone());
        async move {
            let response = handle_doh(req, mode, first, &counts, &seen, &kill).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
    }
}

async fn handle_doh(
    req: Request<hyper::body::Incoming>,
    mode: DohMode,
    first: bool,
    counts: &Counts,
    seen: &Mutex<Vec<SeenRequest>>,
    kill: &Notify,
) -> Response<BoxBody<Bytes, std::convert::Infallible>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let content_type = header("content-type");
    let accept = header("accept");
    let params: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let query = if method == "GET" {
        params.get("dns").and_then(|d| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(d)
                .ok()
        })
    } else {
        req.into_body()
            .collect()
            .await
            .ok()
            .map(|b| b.to_bytes().to_vec())
    };
    let query = query.unwrap_or_default();
    counts.saw_query(query.len());
    seen.lock().expect("lock").push(SeenRequest {
        method,
        path,
        content_type,
        accept,
        id: (query.len() >= 2).then(|| u16::from_be_bytes([query[0], query[1]])),
    });
    let reply = |status: u16, ctype: &str, body: Vec<u8>| {
        Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)).boxed())
            .expect("response")
    };
    let Some(body) = answer(&query) else {
        return reply(400, "text/plain", b"bad query".to_vec());
    };
    match mode {
        DohMode::Answer => reply(200, "application/dns-message", body),
        DohMode::Status(code) => reply(code, "application/dns-message", body),
        DohMode::ContentType(ctype) => reply(200, ctype, body),
        DohMode::Oversize => {
            let mut big = body;
            big.resize(70_000, 0);
            reply(200, "application/dns-message", big)
        }
        DohMode::OversizeChunked => {
            let chunks = (0..10).map(|_| Bytes::from(vec![0u8; 7_000])).collect();
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/dns-message")
                .body(Chunks(chunks).boxed())
                .expect("response")
        }
        DohMode::CloseFirst if first => {
            kill.notify_one();
            std::future::pending().await
        }
        DohMode::CloseFirst => reply(200, "application/dns-message", body),
        DohMode::Stall => std::future::pending().await,
        DohMode::StallFirst if first => std::future::pending().await,
        DohMode::StallFirst => reply(200, "application/dns-message", body),
    }
}

/// A body of several chunks with no known length (so no Content-Length header is sent).
struct Chunks(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// What the list server serves: `Some(body)` with status 200, `None` with 503.
pub type ListBody = Arc<Mutex<Option<Vec<u8>>>>;

/// Starts an HTTPS server on 127.0.0.1 (HTTP/1.1, ALPN `http/1.1`) that answers every GET with
/// `body`; each request counts as a query.
pub async fn list_server(cert: &ServerCert, body: ListBody) -> TestServer {
    let listener = listen(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(server_config(cert, &[b"http/1.1"]));
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, c, body) = (acceptor.clone(), c.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                c.handshakes.fetch_add(1, Ordering::SeqCst);
                let service =
                    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let (c, body) = (c.clone(), body.clone());
                        async move {
                            c.saw_query(0);
                            let current = body.lock().expect("lock").clone();
                            let response = match current {
                                Some(b) => Response::new(Full::new(Bytes::from(b))),
                                None => {
                                    let mut r = Response::new(Full::new(Bytes::new()));
                                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                    r
                                }
                            };
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestServer { addr, counts, task }
}
