//! One query to one authoritative server: UDP from a fresh random port with a random ID, TCP when
//! the answer is truncated, and once more without EDNS when the server rejects it.
//!
//! The transport is [`UdpTransport`] (see `upstream::plain` for the spoofing defences: a connected
//! socket on an OS-chosen random port per query, datagrams that do not answer ID and question
//! ignored until the deadline, TC=1 retried over TCP within the same deadline), and the answer is
//! checked by [`check_answer`] (QR, ID, opcode, question). Queries go out with RD=0, an EDNS
//! payload of 1232 octets (DNS flag day 2020) and DO as the client asked.
//!
//! EDNS fallback (RFC 6891 section 7): a FORMERR or NOTIMP to a query with an OPT record is asked
//! again without one; the server is remembered as such ([`super::servers::ServerTable`]).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::upstream::plain::{PlainOptions, UdpTransport};
use crate::upstream::{check_answer, BadQuery, Transport, UpstreamError};
use crate::wire::edns::DEFAULT_PAYLOAD;
use crate::wire::{Message, QueryFlags, Question, Rcode};

/// What came back, and how.
#[derive(Debug)]
pub struct Exchanged {
    pub msg: Message,
    pub rtt: Duration,
    /// False when the answer came to a query without EDNS (the server failed it).
    pub edns: bool,
}

/// Asks `server` `q` within `timeout` (each attempt), with EDNS unless `edns` is false.
pub async fn ask(
    server: SocketAddr,
    q: &Question,
    dnssec_ok: bool,
    edns: bool,
    timeout: Duration,
) -> Result<Exchanged, UpstreamError> {
    let first = once(server, q, dnssec_ok, edns, timeout).await?;
    if edns && matches!(first.msg.rcode(), Rcode::FORMERR | Rcode::NOTIMP) {
        let mut second = once(server, q, false, false, timeout).await?;
        second.edns = false;
        return Ok(second);
    }
    Ok(first)
}

async fn once(
    server: SocketAddr,
    q: &Question,
    dnssec_ok: bool,
    edns: bool,
    timeout: Duration,
) -> Result<Exchanged, UpstreamError> {
    let flags = QueryFlags {
        recursion_desired: false,
        checking_disabled: false,
        dnssec_ok,
    };
    // `rand::random` draws from the thread-local CSPRNG.
    let mut sent = Message::outgoing(q, flags, rand::random::<u16>(), DEFAULT_PAYLOAD);
    if !edns {
        sent.edns = None;
    }
    let wire = sent
        .encode()
        .map_err(|e| UpstreamError::BadQuery(BadQuery::Encode(e)))?;
    // A new socket per query: every authoritative server sees our ports (see `plain`).
    let transport = UdpTransport::new(
        server,
        PlainOptions {
            timeout,
            reuse_udp: false,
        },
    );
    let started = Instant::now();
    let raw = tokio::time::timeout(timeout, transport.exchange(&wire))
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))??;
    let rtt = started.elapsed();
    let msg = check_answer(&sent, &raw)?;
    Ok(Exchanged { msg, rtt, edns })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{Name, RType};

    /// A server that answers FORMERR to any query with an OPT record, and NOERROR with AA to one
    /// without; returns its address.
    fn edns_intolerant_server() -> SocketAddr {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let q = Message::parse(&buf[..n]).unwrap();
                let mut r = Message::response_to(&q);
                r.header.authoritative = true;
                if q.edns.is_some() {
                    r.edns = None;
                    r.set_rcode(Rcode::FORMERR);
                }
                sock.send_to(&r.encode().unwrap(), from).unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_server_that_fails_edns_is_asked_again_without_it() {
        let server = edns_intolerant_server();
        let q = Question::new("www.example".parse::<Name>().unwrap(), RType::A);
        let ex = ask(server, &q, true, true, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(ex.msg.rcode(), Rcode::NOERROR);
        assert!(!ex.edns && ex.msg.edns.is_none());
        // Asked without EDNS from the start, one exchange does it.
        let ex = ask(server, &q, true, false, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(ex.msg.rcode(), Rcode::NOERROR);
    }
}
