//! `dnsveil query`: one question to one upstream, printed like dig, so an upstream can be tried
//! before it goes into a config.
//!
//! ```text
//!   NAME TYPE + --upstream URL/--ca/--bootstrap --> UpstreamServer --spec--> UpstreamSpec
//!        --build_transport--> Upstream
//!        --query (EDNS, DO if --dnssec)--> checked answer --format--> dig-like text
//! ```
//!
//! The transport is the one `run` would use (same TLS verification, pinning, padding, answer
//! checks), so a query that works here works in the daemon. Without `--upstream` the first
//! upstream of the embedded default configuration is asked.
//!
//! Limitations: one upstream and one question per run; no retries (a failure is reported as it
//! is, which is the point of a test); names are printed in presentation format without dig's
//! column alignment.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

use crate::clock::WallClock;
use crate::config::{Config, ConfigError, UpstreamServer};
use crate::dnssec::TrustAnchors;
use crate::handler::{
    Answer, BoxFuture, Chain, Handler, HandlerError, HandlerResult, Next, Origin, Protocol,
    Request, Verdict,
};
use crate::upstream::{
    self, forwarding_flags, Transport, Upstream, UpstreamError, UpstreamSpec, UpstreamUrl,
};
use crate::validate::Validator;
use crate::wire::edns::{ede, EdnsOption};
use crate::wire::{Edns, Message, Name, RType, Record};

/// Time limit of the query when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to ask, and where.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    pub name: Name,
    pub qtype: RType,
    /// The upstream and its connection options.
    pub spec: UpstreamSpec,
    /// Set the DO bit (RFC 3225), asking for DNSSEC records.
    pub dnssec: bool,
    /// Validate the answer with these trust anchors (`--dnssec validate`), and say what
    /// validation concluded.
    pub validate: Option<TrustAnchors>,
}

/// An answer and how it was obtained.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub answer: Message,
    /// From sending the query to the checked answer, connection set-up included.
    pub elapsed: Duration,
    /// The upstream's URL.
    pub server: String,
    /// What validation concluded, when asked to validate.
    pub verdict: Option<Verdict>,
}

/// Why `dnsveil query` could not ask, or got no answer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The embedded default configuration does not load (a defect of the build).
    #[error("embedded config: {0}")]
    EmbeddedConfig(ConfigError),
    /// The embedded default configuration names no upstream.
    #[error("the embedded config has no upstream")]
    NoDefaultUpstream,
    /// The runtime for the query could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The upstream could not be set up or did not answer.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Validation could not finish (a DS or DNSKEY lookup failed, or was answered with an error).
    #[error("validation failed: {0}")]
    Validation(String),
}

/// The spec for `url` given on the command line: `bootstrap` addresses (with the URL's port) and
/// an extra CA.
pub fn spec_for(
    url: UpstreamUrl,
    bootstrap: &[IpAddr],
    ca_file: Option<PathBuf>,
    timeout: Duration,
) -> UpstreamSpec {
    UpstreamServer {
        bootstrap: bootstrap.to_vec(),
        ca_file,
        ..UpstreamServer::new(url)
    }
    .spec(timeout)
}

/// The first upstream of the embedded default configuration, with its bootstrap addresses.
pub fn default_spec(timeout: Duration) -> Result<UpstreamSpec, QueryError> {
    let config = Config::embedded().map_err(QueryError::EmbeddedConfig)?;
    let server = config
        .upstream
        .servers
        .first()
        .ok_or(QueryError::NoDefaultUpstream)?;
    Ok(server.spec(timeout))
}

/// Sends the question and returns the checked answer (validated, with `--dnssec validate`).
pub async fn run(opts: &QueryOptions) -> Result<Outcome, QueryError> {
    let transport: Arc<dyn Transport> = upstream::build_transport(&opts.spec)?;
    // The transport enforces `timeout`; the upstream's own limit is only a safety net.
    let upstream = Arc::new(Upstream::new(
        transport,
        opts.spec.timeout + Duration::from_millis(500),
    ));
    let mut q = Message::query(opts.name.clone(), opts.qtype);
    q.edns = Some(Edns {
        dnssec_ok: opts.dnssec || opts.validate.is_some(),
        ..Edns::default()
    });
    let start = Instant::now();
    let server = upstream.url().to_string();
    let Some(anchors) = &opts.validate else {
        let answer = upstream.query(&q).await?;
        return Ok(Outcome {
            answer,
            elapsed: start.elapsed(),
            server,
            verdict: None,
        });
    };
    // The daemon's validator, with this one upstream behind it for the answer and for DS and
    // DNSKEY.
    let ask: Arc<dyn Handler> = Arc::new(Ask(upstream.clone()));
    let validator = Validator::new(
        anchors.clone(),
        Vec::new(),
        Chain::new(vec![ask.clone()]),
        WallClock::system(),
    );
    let chain = Chain::new(vec![Arc::new(validator), ask]);
    let request = Request {
        query: q.clone(),
        client: None,
        protocol: Protocol::Udp,
    };
    let (answer, verdict) = match chain.handle(&request).await {
        Ok(a) => {
            let verdict = a.verdict().clone();
            let message = a
                .message()
                .map_err(|e| QueryError::Validation(e.to_string()))?;
            (message, verdict)
        }
        Err(HandlerError::Bogus(b)) => {
            // Show what the upstream says, without checking, next to why it is bogus.
            q.header.checking_disabled = true;
            (upstream.query(&q).await?, Verdict::Bogus(b))
        }
        Err(HandlerError::Upstream(cause)) => {
            return Err(match cause.downcast_ref::<UpstreamError>() {
                Some(e) => QueryError::Upstream(e.clone()),
                None => QueryError::Validation(cause.to_string()),
            })
        }
        Err(e) => return Err(QueryError::Validation(e.to_string())),
    };
    Ok(Outcome {
        answer,
        elapsed: start.elapsed(),
        server,
        verdict: Some(verdict),
    })
}

/// The one upstream of `dnsveil query` as a stage of a chain.
struct Ask(Arc<Upstream>);

impl Handler for Ask {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(async move {
            let question = req.query.question().ok_or(HandlerError::Unanswered)?;
            let reply = self
                .0
                .ask(question, forwarding_flags(&req.query))
                .await
                .map_err(HandlerError::upstream)?;
            Ok(Answer::checked(
                reply.wire,
                Origin::Upstream,
                Verdict::Unchecked,
            ))
        })
    }

    fn name(&self) -> &'static str {
        "query"
    }
}

/// The verdict line `dnsveil query --dnssec validate` prints.
pub fn format_verdict(verdict: &Verdict, answer: &Message) -> String {
    let ede = answer
        .edns
        .as_ref()
        .and_then(|e| e.extended_errors().next().map(|(code, _)| code));
    let named = |code: u16| match ede::name(code) {
        Some(name) => format!("EDE {code} {name}"),
        None => format!("EDE {code}"),
    };
    match verdict {
        Verdict::Secure => ";; DNSSEC: secure\n".into(),
        Verdict::Insecure => match ede {
            Some(code) => format!(";; DNSSEC: insecure ({})\n", named(code)),
            None => ";; DNSSEC: insecure\n".into(),
        },
        Verdict::Bogus(b) => format!(
            ";; DNSSEC: bogus ({}): {}\n",
            named(b.reason.ede()),
            b.detail
        ),
        Verdict::Indeterminate => {
            ";; DNSSEC: indeterminate (no trust anchor covers the name)\n".into()
        }
        Verdict::Unchecked => ";; DNSSEC: not validated\n".into(),
    }
}

/// The answer as dig prints it: header, EDNS, the sections, then timing and server.
pub fn format(outcome: &Outcome) -> String {
    let m = &outcome.answer;
    let h = &m.header;
    let mut out = String::new();
    let _ = writeln!(
        out,
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
        h.opcode,
        m.rcode(),
        h.id
    );
    let flags: Vec<&str> = [
        (h.response, "qr"),
        (h.authoritative, "aa"),
        (h.truncated, "tc"),
        (h.recursion_desired, "rd"),
        (h.recursion_available, "ra"),
        (h.authentic_data, "ad"),
        (h.checking_disabled, "cd"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    let _ = writeln!(
        out,
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags.join(" "),
        m.questions.len(),
        m.answers.len(),
        m.authority.len(),
        m.additional.len() + usize::from(m.edns.is_some()),
    );
    if let Some(edns) = &m.edns {
        out.push_str("\n;; OPT PSEUDOSECTION:\n");
        let _ = writeln!(
            out,
            "; EDNS: version: {}, flags:{}; udp: {}",
            edns.version,
            if edns.dnssec_ok { " do" } else { "" },
            edns.udp_payload
        );
        for opt in &edns.options {
            out.push_str(&format_option(opt));
            out.push('\n');
        }
    }
    out.push_str("\n;; QUESTION SECTION:\n");
    for q in &m.questions {
        let _ = writeln!(out, ";{}\t\t{}\t{}", q.name, q.qclass, q.qtype);
    }
    for (title, records) in [
        ("ANSWER", &m.answers),
        ("AUTHORITY", &m.authority),
        ("ADDITIONAL", &m.additional),
    ] {
        if records.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n;; {title} SECTION:");
        for r in records.iter() {
            out.push_str(&format_record(r));
            out.push('\n');
        }
    }
    if let Some(v) = &outcome.verdict {
        out.push('\n');
        out.push_str(&format_verdict(v, m));
    }
    let _ = writeln!(out, "\n;; Query time: {} ms", outcome.elapsed.as_millis());
    let _ = writeln!(out, ";; SERVER: {}", outcome.server);
    out
}

/// A record line, tab-separated like dig's (owner, TTL, class, type, data).
fn format_record(r: &Record) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        r.name,
        r.ttl,
        r.class,
        r.rtype(),
        r.data
    )
}

/// One EDNS option line of the OPT pseudosection.
fn format_option(opt: &EdnsOption) -> String {
    match opt {
        EdnsOption::ExtendedError {
            info_code,
            extra_text,
        } => {
            let mut s = format!("; EDE: {info_code}");
            if let Some(name) = ede::name(*info_code) {
                s += &format!(" ({name})");
            }
            if !extra_text.is_empty() {
                s += &format!(": ({extra_text})");
            }
            s
        }
        EdnsOption::Padding(n) => format!("; PADDING: {n} octets"),
        EdnsOption::Cookie { .. } => "; COOKIE".into(),
        EdnsOption::ClientSubnet(c) => {
            format!("; CLIENT-SUBNET: /{}/{}", c.source_prefix, c.scope_prefix)
        }
        EdnsOption::Unknown { code, data } => format!("; OPT={code}: {} octets", data.len()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::wire::{RData, Rcode};

    #[test]
    fn formats_like_dig() {
        let mut q = Message::query("www.example.com".parse().unwrap(), RType::A);
        q.header.id = 4242;
        q.edns = Some(Edns {
            dnssec_ok: true,
            ..Edns::default()
        });
        let mut m = Message::response_to(&q);
        m.answers.push(Record::new(
            "www.example.com".parse().unwrap(),
            300,
            RData::A([192, 0, 2, 1].into()),
        ));
        m.set_rcode(Rcode::NXDOMAIN);
        m.edns
            .as_mut()
            .unwrap()
            .options
            .push(EdnsOption::ExtendedError {
                info_code: ede::NETWORK_ERROR,
                extra_text: "timed out".into(),
            });
        let text = format(&Outcome {
            answer: m,
            elapsed: Duration::from_millis(12),
            server: "tls://127.0.0.1:853".into(),
            verdict: None,
        });
        let expected = "\
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 4242
;; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags: do; udp: 1232
; EDE: 23 (Network Error): (timed out)

;; QUESTION SECTION:
;www.example.com.\t\tIN\tA

;; ANSWER SECTION:
www.example.com.\t300\tIN\tA\t192.0.2.1

;; Query time: 12 ms
;; SERVER: tls://127.0.0.1:853
";
        assert_eq!(text, expected);
    }

    #[test]
    fn specs_from_flags_and_the_embedded_default() {
        let spec = spec_for(
            "tls://dns.example:8853".parse().unwrap(),
            &["192.0.2.53".parse().unwrap()],
            Some("/ca.pem".into()),
            DEFAULT_TIMEOUT,
        );
        assert_eq!(spec.bootstrap, ["192.0.2.53:8853".parse().unwrap()]);
        assert_eq!(spec.ca_file, Some(PathBuf::from("/ca.pem")));

        let default = default_spec(DEFAULT_TIMEOUT).unwrap();
        assert!(default.url.is_encrypted(), "never a plaintext default");
        assert!(!default.bootstrap.is_empty());
        assert!(upstream::build_transport(&default).is_ok());
    }
}
