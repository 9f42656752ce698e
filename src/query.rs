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

use crate::config::{Config, ConfigError, UpstreamServer};
use crate::upstream::{self, Transport, Upstream, UpstreamError, UpstreamSpec, UpstreamUrl};
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
}

/// An answer and how it was obtained.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub answer: Message,
    /// From sending the query to the checked answer, connection set-up included.
    pub elapsed: Duration,
    /// The upstream's URL.
    pub server: String,
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

/// Sends the question and returns the checked answer.
pub async fn run(opts: &QueryOptions) -> Result<Outcome, UpstreamError> {
    let transport: Arc<dyn Transport> = upstream::build_transport(&opts.spec)?;
    // The transport enforces `timeout`; the upstream's own limit is only a safety net.
    let upstream = Upstream::new(transport, opts.spec.timeout + Duration::from_millis(500));
    let mut q = Message::query(opts.name.clone(), opts.qtype);
    q.edns = Some(Edns {
        dnssec_ok: opts.dnssec,
        ..Edns::default()
    });
    let start = Instant::now();
    let answer = upstream.query(&q).await?;
    Ok(Outcome {
        answer,
        elapsed: start.elapsed(),
        server: upstream.url().to_string(),
    })
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
