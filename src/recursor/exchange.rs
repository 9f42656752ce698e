//! One query to one authoritative server: UDP from a fresh random port with a random ID, TCP when
//! the answer is truncated, and once more without EDNS when the server rejects it.
//!
//! The transport is [`UdpTransport`] (see `upstream::plain` for the spoofing defences: a connected
//! socket on an OS-chosen random port per query, datagrams that do not answer ID and question
//! ignored until the deadline, TC=1 retried over TCP within the same deadline), and the answer is
//! checked by [`check_answer_to`] (QR, ID, opcode, question). Queries go out with RD=0, an EDNS
//! payload of 1232 octets (DNS flag day 2020) and DO as the client asked.
//!
//! EDNS fallback (RFC 6891 section 7): a FORMERR or NOTIMP to a query with an OPT record is asked
//! again without one; the server is remembered as such ([`super::servers::ServerTable`]).
//!
//! 0x20 ([`super::case`]): with `case` on and letters in the name, the query's name goes out in
//! random case and a UDP answer must return it octet for octet. When only answers in another case
//! came before the deadline, the question is asked again at once without randomisation, and
//! [`Exchanged::case_kept`] tells the caller to remember the server as one that does not keep it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::case;
use crate::upstream::plain::{PlainOptions, UdpTransport};
use crate::upstream::{check_answer_to, BadAnswer, UpstreamError};
use crate::wire::edns::DEFAULT_PAYLOAD;
use crate::wire::types::Opcode;
use crate::wire::{Message, Name, QueryFlags, Question, Rcode, HEADER_LEN};

/// What came back, and how.
#[derive(Debug)]
pub struct Exchanged {
    pub msg: Message,
    pub rtt: Duration,
    /// False when the answer came to a query without EDNS (the server failed it).
    pub edns: bool,
    /// False when the server answered a randomised-case query only in another case, and the
    /// answer came to a query asked again without randomisation.
    pub case_kept: bool,
}

/// How one question is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskOptions {
    pub dnssec_ok: bool,
    /// Send an OPT record (off for a server known to fail EDNS).
    pub edns: bool,
    /// 0x20 case randomisation (off for a server known not to keep case).
    pub case: bool,
    /// Wait this long for each attempt.
    pub timeout: Duration,
}

/// Asks `server` `q` (see [`AskOptions`]), falling back for servers that fail EDNS or 0x20.
pub async fn ask(
    server: SocketAddr,
    q: &Question,
    opts: AskOptions,
) -> Result<Exchanged, UpstreamError> {
    let case = opts.case && case::has_letters(&q.name);
    let first = match once(server, q, opts.dnssec_ok, opts.edns, case, opts.timeout).await {
        Err(UpstreamError::BadAnswer(BadAnswer::QuestionCase)) => {
            debug!(%server, "answer in another case: asking again without 0x20");
            let mut again = once(server, q, opts.dnssec_ok, opts.edns, false, opts.timeout).await?;
            again.case_kept = false;
            again
        }
        other => other?,
    };
    if opts.edns && matches!(first.msg.rcode(), Rcode::FORMERR | Rcode::NOTIMP) {
        let case = case && first.case_kept;
        let mut second = once(server, q, false, false, case, opts.timeout).await?;
        second.edns = false;
        second.case_kept = first.case_kept;
        return Ok(second);
    }
    Ok(first)
}

async fn once(
    server: SocketAddr,
    q: &Question,
    dnssec_ok: bool,
    edns: bool,
    case: bool,
    timeout: Duration,
) -> Result<Exchanged, UpstreamError> {
    let flags = QueryFlags {
        recursion_desired: false,
        checking_disabled: false,
        dnssec_ok,
    };
    // `rand::random` draws from the thread-local CSPRNG.
    let id = rand::random::<u16>();
    let payload = edns.then_some(DEFAULT_PAYLOAD);
    let mut wire = Message::encode_outgoing(q, flags, id, payload);
    // A new socket per query: every authoritative server sees our ports (see `plain`).
    let mut transport = UdpTransport::new(
        server,
        PlainOptions {
            timeout,
            reuse_udp: false,
        },
    );
    // The encoder writes the question's name first and uncompressed, right after the header.
    let random = match wire.get_mut(HEADER_LEN..HEADER_LEN + q.name.wire_len()) {
        Some(name) if case => {
            case::randomize(name, &mut rand::thread_rng());
            transport = transport.exact_case();
            Name::from_wire(name).ok()
        }
        _ => None,
    };
    let started = Instant::now();
    // The transport bounds the whole exchange (UDP wait and TCP retry) by `timeout`, and fails
    // with `BadAnswer::QuestionCase` when only answers in another case came: one timer per
    // exchange. (A second one around it here was the same deadline twice, and each timer that
    // expires before the runtime's next planned wake-up costs a wake-up of its thread.)
    let mut raw = transport.exchange_udp(&wire).await?;
    let rtt = started.elapsed();
    if random.is_some() {
        case::restore_question(&mut raw, &q.name);
    }
    let mut msg = check_answer_to(std::slice::from_ref(q), id, Opcode::QUERY, &raw)?;
    if let Some(random) = random {
        case::restore_owners(&mut msg, &random, &q.name);
    }
    Ok(Exchanged {
        msg,
        rtt,
        edns,
        case_kept: true,
    })
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

    /// How a fake server answers: with the question in lower case, or with a forged answer whose
    /// question is in another case first and the true one after it.
    #[derive(Clone, Copy)]
    enum CaseServer {
        Lowercases,
        ForgesFirst,
    }

    /// A fake server answering every A query with 192.0.2.1 (forgeries: 6.6.6.6); it sends the
    /// questions it was asked down `asked`.
    fn case_server(how: CaseServer) -> (SocketAddr, std::sync::mpsc::Receiver<Name>) {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let answer = |q: &Message, name: Name, ip: &str| {
                let mut r = Message::response_to(q);
                r.header.authoritative = true;
                r.questions[0].name = name.clone();
                let line = format!("{name} 60 A {ip}");
                r.answers = vec![crate::wire::parse_record_line(&line, 60).unwrap()];
                r.encode().unwrap()
            };
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let q = Message::parse(&buf[..n]).unwrap();
                let name = q.questions[0].name.clone();
                tx.send(name.clone()).unwrap();
                match how {
                    CaseServer::Lowercases => {
                        sock.send_to(&answer(&q, name.to_lowercase(), "192.0.2.1"), from)
                            .unwrap();
                    }
                    CaseServer::ForgesFirst => {
                        let mut flipped = name.as_wire().to_vec();
                        for b in flipped.iter_mut() {
                            if b.is_ascii_lowercase() {
                                b.make_ascii_uppercase()
                            } else if b.is_ascii_uppercase() {
                                b.make_ascii_lowercase()
                            }
                        }
                        let flipped = Name::from_wire(&flipped).unwrap();
                        sock.send_to(&answer(&q, flipped, "6.6.6.6"), from).unwrap();
                        sock.send_to(&answer(&q, name, "192.0.2.1"), from).unwrap();
                    }
                }
            }
        });
        (addr, rx)
    }

    fn case_opts() -> AskOptions {
        AskOptions {
            dnssec_ok: false,
            edns: true,
            case: true,
            timeout: Duration::from_millis(300),
        }
    }

    fn address(m: &Message) -> String {
        match &m.answers[..] {
            [r] => match r.data {
                crate::wire::RData::A(a) => a.to_string(),
                _ => panic!("{m:?}"),
            },
            _ => panic!("{m:?}"),
        }
    }

    #[tokio::test]
    async fn an_answer_in_another_case_is_dropped_and_the_true_one_taken() {
        let (server, asked) = case_server(CaseServer::ForgesFirst);
        let q = Question::new("www.Example.test".parse::<Name>().unwrap(), RType::A);
        let ex = ask(server, &q, case_opts()).await.unwrap();
        assert_eq!(address(&ex.msg), "192.0.2.1");
        assert!(ex.case_kept);
        // The server saw our random case; we see the case we asked in, in the question and the
        // owner name (compressed into the question).
        let sent = asked.recv().unwrap();
        assert!(sent.eq_ignore_case(&q.name));
        assert_eq!(ex.msg.questions[0].name.as_wire(), q.name.as_wire());
        assert_eq!(ex.msg.answers[0].name.as_wire(), q.name.as_wire());
        // Without 0x20 the forgery wins: this is what the exact match is for.
        let plain = AskOptions {
            case: false,
            ..case_opts()
        };
        let ex = ask(server, &q, plain).await.unwrap();
        assert_eq!(address(&ex.msg), "6.6.6.6");
    }

    #[tokio::test]
    async fn a_server_that_lowercases_is_asked_again_without_randomisation() {
        let (server, asked) = case_server(CaseServer::Lowercases);
        // 26 letters: a random spelling that is all lower case is a 2^-26 chance.
        let q = Question::new(
            "abcdefghijklm.nopqrstuvwxyz".parse::<Name>().unwrap(),
            RType::A,
        );
        let ex = ask(server, &q, case_opts()).await.unwrap();
        assert_eq!(address(&ex.msg), "192.0.2.1");
        assert!(!ex.case_kept, "the caller is told to remember the server");
        let first = asked.recv().unwrap();
        let second = asked.recv().unwrap();
        assert_ne!(first.as_wire(), q.name.as_wire(), "randomised first");
        assert_eq!(second.as_wire(), q.name.as_wire(), "then as asked");
        // A name without letters is sent as it is, and accepted.
        let digits = Question::new("1.2.0.192".parse::<Name>().unwrap(), RType::A);
        let ex = ask(server, &digits, case_opts()).await.unwrap();
        assert!(ex.case_kept);
        assert_eq!(asked.recv().unwrap().as_wire(), digits.name.as_wire());
    }

    #[tokio::test]
    async fn a_server_that_fails_edns_is_asked_again_without_it() {
        let server = edns_intolerant_server();
        let q = Question::new("www.example".parse::<Name>().unwrap(), RType::A);
        let opts = AskOptions {
            dnssec_ok: true,
            edns: true,
            case: false,
            timeout: Duration::from_secs(2),
        };
        let ex = ask(server, &q, opts).await.unwrap();
        assert_eq!(ex.msg.rcode(), Rcode::NOERROR);
        assert!(!ex.edns && ex.msg.edns.is_none());
        // Asked without EDNS from the start, one exchange does it.
        let opts = AskOptions {
            edns: false,
            ..opts
        };
        let ex = ask(server, &q, opts).await.unwrap();
        assert_eq!(ex.msg.rcode(), Rcode::NOERROR);
    }
}
