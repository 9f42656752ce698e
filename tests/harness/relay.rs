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
use std::sync::Arc;
use std::time::Duration;

/// Queries counted by one relay.
#[derive(Clone, Default)]
pub struct Counts {
    pub udp: Arc<AtomicUsize>,
    pub tcp: Arc<AtomicUsize>,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.udp.load(Ordering::SeqCst) + self.tcp.load(Ordering::SeqCst)
    }
    pub fn tcp(&self) -> usize {
        self.tcp.load(Ordering::SeqCst)
    }
}

/// Relays `listen` (UDP and TCP) to `backend`; with no backend, counts and never answers.
pub fn start(listen: SocketAddr, backend: Option<SocketAddr>) -> Counts {
    let counts = Counts::default();
    let udp = UdpSocket::bind(listen).unwrap_or_else(|e| panic!("bind udp {listen}: {e}"));
    let tcp = TcpListener::bind(listen).unwrap_or_else(|e| panic!("bind tcp {listen}: {e}"));
    let c = counts.udp.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, client)) = udp.recv_from(&mut buf) {
            c.fetch_add(1, Ordering::SeqCst);
            let Some(backend) = backend else { continue };
            let query = buf[..n].to_vec();
            let reply_sock = udp.try_clone().expect("clone udp");
            std::thread::spawn(move || {
                let up = UdpSocket::bind((listen.ip(), 0)).expect("bind upstream side");
                up.set_read_timeout(Some(Duration::from_secs(3))).ok();
                if up.send_to(&query, backend).is_err() {
                    return;
                }
                let mut answer = vec![0u8; 65535];
                if let Ok((m, _)) = up.recv_from(&mut answer) {
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
