//! A counting relay for DNS over UDP and TCP: it listens where a test's resolver sends its queries,
//! counts every query, and passes it to the real server behind it (or, as a black hole, to
//! nothing). Counting here sees exactly what reached the "server", independently of the resolver's
//! own idea of what it sent.
//!
//! Threads, not tasks: the relays serve the real dnsveil binary, which runs in another process.
//! They live until the test process ends (their sockets are closed then).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Queries counted by one relay.
#[derive(Clone, Default)]
pub struct Counts {
    pub udp: Arc<AtomicUsize>,
    pub tcp: Arc<AtomicUsize>,
    /// The question names of the UDP queries, in wire form, as they arrived (letter case kept).
    pub names: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.udp.load(Ordering::SeqCst) + self.tcp.load(Ordering::SeqCst)
    }
    pub fn tcp(&self) -> usize {
        self.tcp.load(Ordering::SeqCst)
    }
    /// The question names of the UDP queries so far, in wire form.
    pub fn names(&self) -> Vec<Vec<u8>> {
        self.names.lock().expect("names").clone()
    }
}

/// What a relay does to UDP answers, to play servers that handle letter case (0x20) badly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mangle {
    /// Passes answers as they are.
    None,
    /// Lowercases the question name of every answer (a server that does not keep case).
    LowercaseQuestion,
    /// Before passing the true answer, sends a forged one: the question with every letter's
    /// case flipped, AA=1, and one A record 6.6.6.6 for it (a spoofer who guessed port and ID).
    ForgeFlippedCase,
}

/// The question name of a message, in wire form (uncompressed, right after the header).
pub fn question_name(msg: &[u8]) -> Option<&[u8]> {
    let mut end = 12;
    loop {
        let len = *msg.get(end)? as usize;
        if len > 63 {
            return None;
        }
        end += 1 + len;
        if len == 0 {
            return msg.get(12..end);
        }
    }
}

fn lowercase_question(answer: &mut [u8]) {
    if let Some(len) = question_name(answer).map(<[u8]>::len) {
        answer[12..12 + len].make_ascii_lowercase();
    }
}

/// The forged answer of [`Mangle::ForgeFlippedCase`] to `query`.
fn forged_answer(query: &[u8]) -> Option<Vec<u8>> {
    let name_len = question_name(query)?.len();
    let mut out = query.get(..12 + name_len + 4)?.to_vec();
    for b in &mut out[12..12 + name_len] {
        if b.is_ascii_alphabetic() {
            *b ^= 0x20;
        }
    }
    out[2] = 0x84 | (out[2] & 0x79); // QR=1, AA=1, opcode and RD kept
    out[3] = 0; // RA=0, rcode NOERROR
    out[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    // The owner points at the question; type A, class IN, TTL 300, 6.6.6.6.
    out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 6, 6, 6, 6]);
    Some(out)
}

/// Relays `listen` (UDP and TCP) to `backend`; with no backend, counts and never answers.
pub fn start(listen: SocketAddr, backend: Option<SocketAddr>) -> Counts {
    start_mangling(listen, backend, Mangle::None)
}

/// As [`start`], with UDP answers changed as `mangle` says (TCP answers pass unchanged).
pub fn start_mangling(listen: SocketAddr, backend: Option<SocketAddr>, mangle: Mangle) -> Counts {
    let counts = Counts::default();
    let udp = UdpSocket::bind(listen).unwrap_or_else(|e| panic!("bind udp {listen}: {e}"));
    let tcp = TcpListener::bind(listen).unwrap_or_else(|e| panic!("bind tcp {listen}: {e}"));
    let c = counts.udp.clone();
    let names = counts.names.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, client)) = udp.recv_from(&mut buf) {
            c.fetch_add(1, Ordering::SeqCst);
            if let Some(name) = question_name(&buf[..n]) {
                names.lock().expect("names").push(name.to_vec());
            }
            let Some(backend) = backend else { continue };
            let query = buf[..n].to_vec();
            let reply_sock = udp.try_clone().expect("clone udp");
            if mangle == Mangle::ForgeFlippedCase {
                if let Some(forged) = forged_answer(&query) {
                    let _ = reply_sock.send_to(&forged, client);
                }
            }
            std::thread::spawn(move || {
                let up = UdpSocket::bind((listen.ip(), 0)).expect("bind upstream side");
                up.set_read_timeout(Some(Duration::from_secs(3))).ok();
                if up.send_to(&query, backend).is_err() {
                    return;
                }
                let mut answer = vec![0u8; 65535];
                if let Ok((m, _)) = up.recv_from(&mut answer) {
                    if mangle == Mangle::LowercaseQuestion {
                        lowercase_question(&mut answer[..m]);
                    }
                    let _ = reply_sock.send_to(&answer[..m], client);
                }
            });
        }
    });
    let c = counts.tcp.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in tcp.incoming() {
            let Ok(conn) = conn else { continue };
            match backend {
                // A black hole: hold the connection, never answer.
                None => {
                    c.fetch_add(1, Ordering::SeqCst);
                    held.push(conn);
                }
                Some(backend) => {
                    let c = c.clone();
                    std::thread::spawn(move || relay_tcp(conn, backend, c));
                }
            }
        }
    });
    counts
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn write_frame(s: &mut TcpStream, msg: &[u8]) -> Option<()> {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).ok()
}

fn relay_tcp(mut client: TcpStream, backend: SocketAddr, count: Arc<AtomicUsize>) {
    client.set_read_timeout(Some(Duration::from_secs(10))).ok();
    while let Some(query) = read_frame(&mut client) {
        count.fetch_add(1, Ordering::SeqCst);
        let Ok(mut up) = TcpStream::connect_timeout(&backend, Duration::from_secs(3)) else {
            return;
        };
        up.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let Some(answer) = write_frame(&mut up, &query).and_then(|_| read_frame(&mut up)) else {
            return;
        };
        if write_frame(&mut client, &answer).is_none() {
            return;
        }
    }
}
