//! Sends the slow path's UDP answers together: those that a runtime worker finishes in one run of
//! its ready tasks leave in one `sendmmsg` ([`super::udp_send`]) when it runs out of them.
//!
//! Why: under load an upstream's replies arrive in batches (one TLS record read brings every answer
//! a DoT connection has received), and each answer completes its own query's task. Sent one by
//! one, each answer would be a `sendto` of its own: a system call, and for a client that went back
//! to sleep between two of them, a wake-up of that client's thread (an inter-processor interrupt,
//! in a virtual machine an exit to the host). Together they share the call, and the client is woken
//! once for all of them, as the receive loop's cached answers are (`super::udp`).
//!
//! How: a task with an answer queues it; the first to find the queue empty waits with
//! [`tokio::task::yield_now`], which the scheduler resumes only after it has run every other ready
//! task (and polled for I/O once), and then sends whatever was queued by then. An answer sent
//! outside a runtime task (the first poll on the receive thread, `super::inline`, which may finish
//! a query against a quick local upstream) goes at once, and so does one whose caller knows of no
//! other query in flight (an idle server's lone miss): with nothing else that could answer
//! meanwhile, the wait would only cost that poll of the I/O driver.
//!
//! Every queued answer is sent: the waiting task sends them when it resumes, and if it is dropped
//! first (the runtime shutting down) its guard sends them from the drop. The queue is bounded: the
//! answer that fills it to [`MAX_QUEUED`] sends it at once (tasks of other workers can keep adding
//! to one socket's queue while the waiting task's worker is busy).

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::sys::socket::{MsgFlags, SockaddrStorage};
use tracing::debug;

use super::udp_send::{BatchSender, BATCH};

/// Most answers queued for one socket: four `sendmmsg` calls' worth.
pub(super) const MAX_QUEUED: usize = 4 * BATCH;

/// A listening UDP socket and the answers queued for it.
pub(super) struct Outbox {
    sock: Arc<UdpSocket>,
    queue: Mutex<Queue>,
}

struct Queue {
    outs: Vec<Vec<u8>>,
    dests: Vec<Option<SockaddrStorage>>,
    /// Whether a task waits to send what is queued (then a new answer only joins the queue).
    flusher: bool,
}

thread_local! {
    /// The send headers of this thread's flushes, for any outbox (they hold raw pointers, so they
    /// cannot travel with one between threads); made by the first flush, which also asks its socket
    /// whether the kernel knows UDP GSO (a kernel's answer, the same for every socket).
    static SENDER: RefCell<Option<BatchSender>> = const { RefCell::new(None) };
}

impl Outbox {
    pub(super) fn new(sock: Arc<UdpSocket>) -> Arc<Outbox> {
        Arc::new(Outbox {
            sock,
            queue: Mutex::new(Queue {
                outs: Vec::new(),
                dests: Vec::new(),
                flusher: false,
            }),
        })
    }

    /// Sends `bytes` to `dest`: from a task, together with the answers of the other tasks the
    /// worker runs before it runs out of ready ones (module docs); at once outside a runtime task,
    /// or when the caller knows of no other query in flight (`alone`) and none waits to be sent.
    pub(super) async fn send(&self, bytes: Vec<u8>, dest: SocketAddr, alone: bool) {
        let dest = SockaddrStorage::from(dest);
        if tokio::task::try_id().is_none() {
            send_one(self.sock.as_raw_fd(), &bytes, Some(&dest));
            return;
        }
        {
            let mut q = self.lock();
            if alone && q.outs.is_empty() {
                // Nobody to wait for: no other query could add an answer during the wait.
                drop(q);
                send_one(self.sock.as_raw_fd(), &bytes, Some(&dest));
                return;
            }
            q.outs.push(bytes);
            q.dests.push(Some(dest));
            if q.outs.len() >= MAX_QUEUED {
                // Full: sent now; a task already waiting sends what comes after.
                self.send_queued(&mut q);
                return;
            }
            if std::mem::replace(&mut q.flusher, true) {
                return;
            }
        }
        let _flush = FlushOnDrop(self);
        tokio::task::yield_now().await;
    }

    /// Sends everything queued; the task that waited to do so is done.
    fn flush(&self) {
        let mut q = self.lock();
        q.flusher = false;
        self.send_queued(&mut q);
    }

    /// Sends and empties the queue, [`BATCH`] answers per `sendmmsg` at most; a lone answer (an
    /// idle server's every answer) with a plain `sendto`, which costs a tenth of a batch's planning.
    fn send_queued(&self, q: &mut Queue) {
        let Queue { outs, dests, .. } = q;
        let fd = self.sock.as_raw_fd();
        if outs.len() <= 1 {
            if let (Some(bytes), Some(dest)) = (outs.first(), dests.first()) {
                send_one(fd, bytes, dest.as_ref());
            }
            outs.clear();
            dests.clear();
            return;
        }
        let batched = SENDER.try_with(|sender| {
            let mut sender = sender.borrow_mut();
            let sender = sender.get_or_insert_with(|| BatchSender::new(&*self.sock));
            for (outs, dests) in outs.chunks(BATCH).zip(dests.chunks(BATCH)) {
                sender.send(fd, outs, dests);
            }
        });
        // A drop while the thread's locals are being torn down (a runtime ending with its thread):
        // one datagram at a time.
        if batched.is_err() {
            for (bytes, dest) in outs.iter().zip(dests.iter()) {
                send_one(fd, bytes, dest.as_ref());
            }
        }
        outs.clear();
        dests.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing that can panic runs under this lock; recover from poisoning all the same.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One datagram, with a plain `sendto`.
fn send_one(fd: RawFd, bytes: &[u8], dest: Option<&SockaddrStorage>) {
    if let Some(dest) = dest {
        if let Err(e) = nix::sys::socket::sendto(fd, bytes, dest, MsgFlags::empty()) {
            debug!(error = %e, "udp send failed");
        }
    }
}

/// Sends the queue when the waiting task resumes, or when it is dropped before that.
struct FlushOnDrop<'a>(&'a Outbox);

impl Drop for FlushOnDrop<'_> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::super::udp_send::tests::receive_all;
    use super::*;
    use std::future::Future;

    fn pair() -> (Arc<Outbox>, UdpSocket) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        (Outbox::new(Arc::new(server)), client)
    }

    /// Polls `fut` once, with a waker that does nothing (the tests drop or finish what is pending).
    fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Answers of tasks that run one after another are queued until the last of them has run, and
    /// then all arrive (more than one `sendmmsg` holds).
    #[test]
    fn answers_of_one_run_wait_for_its_end_and_then_all_leave() {
        let rt = runtime();
        let (outbox, client) = pair();
        let to = client.local_addr().unwrap();
        let count = BATCH + 5;
        let queued_after_the_run = rt.block_on(async {
            let mut tasks: Vec<_> = (0..count)
                .map(|i| {
                    let outbox = outbox.clone();
                    tokio::spawn(async move {
                        outbox.send(vec![i as u8; 1 + i % 3], to, false).await;
                    })
                })
                .collect();
            // Spawned last, so it runs after every sender's first poll and before the first
            // sender resumes (the scheduler resumes a yielding task once its queue is empty).
            let o = outbox.clone();
            let checker = tokio::spawn(async move { o.lock().outs.len() });
            let queued = checker.await.unwrap();
            for t in tasks.drain(..) {
                t.await.unwrap();
            }
            queued
        });
        assert_eq!(
            queued_after_the_run, count,
            "nothing left before the run ended"
        );
        let mut got = receive_all(&client, count);
        got.sort();
        let mut want: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; 1 + i % 3]).collect();
        want.sort();
        assert_eq!(got, want);
        assert!(outbox.lock().outs.is_empty());
        assert!(!outbox.lock().flusher);
    }

    /// However many answers join the queue before the waiting task resumes, it never holds more
    /// than [`MAX_QUEUED`], and every answer arrives.
    #[test]
    fn the_queue_is_bounded() {
        let rt = runtime();
        let (outbox, client) = pair();
        let to = client.local_addr().unwrap();
        let count = MAX_QUEUED + 3;
        let o = outbox.clone();
        let most = rt.block_on(async move {
            tokio::spawn(async move {
                // The first answer's task waits (polled once, not resumed) while the rest join.
                let mut first = Box::pin(o.send(vec![0], to, false));
                assert!(poll_once(first.as_mut()).is_pending());
                let mut most = 1;
                for i in 1..count {
                    o.send(vec![i as u8], to, false).await;
                    most = most.max(o.lock().outs.len());
                }
                drop(first);
                most
            })
            .await
            .unwrap()
        });
        assert!(most < MAX_QUEUED, "the queue held {most}");
        let mut got = receive_all(&client, count);
        got.sort();
        assert_eq!(got, (0..count).map(|i| vec![i as u8]).collect::<Vec<_>>());
    }

    /// A task's lone answer leaves once the run ends.
    #[test]
    fn a_lone_answer_from_a_task_arrives() {
        let rt = runtime();
        let (outbox, client) = pair();
        let to = client.local_addr().unwrap();
        let o = outbox.clone();
        rt.block_on(async move {
            tokio::spawn(async move { o.send(b"alone".to_vec(), to, false).await }).await
        })
        .unwrap();
        assert_eq!(receive_all(&client, 1), vec![b"alone".to_vec()]);
        assert!(outbox.lock().outs.is_empty());
    }

    /// A task's answer with no other query in flight leaves in its first poll; one that is not
    /// alone, or that finds answers queued, waits for the run's end (and so keeps their order).
    #[test]
    fn an_answer_alone_leaves_without_waiting() {
        let rt = runtime();
        let (outbox, client) = pair();
        let to = client.local_addr().unwrap();
        let o = outbox.clone();
        let (alone, behind_a_queue) = rt.block_on(async move {
            tokio::spawn(async move {
                let alone =
                    poll_once(Box::pin(o.send(b"alone".to_vec(), to, true)).as_mut()).is_ready();
                let mut first = Box::pin(o.send(b"first".to_vec(), to, false));
                assert!(poll_once(first.as_mut()).is_pending());
                let behind_a_queue =
                    poll_once(Box::pin(o.send(b"second".to_vec(), to, true)).as_mut()).is_ready()
                        && o.lock().outs.len() == 2;
                drop(first);
                (alone, behind_a_queue)
            })
            .await
            .unwrap()
        });
        assert!(alone, "sent in its first poll");
        assert!(behind_a_queue, "joined the queue");
        assert_eq!(
            receive_all(&client, 3),
            vec![b"alone".to_vec(), b"first".to_vec(), b"second".to_vec()]
        );
    }

    /// Outside a runtime task (the receive thread's first poll) an answer leaves at once.
    #[test]
    fn outside_a_task_an_answer_leaves_at_once() {
        let (outbox, client) = pair();
        let to = client.local_addr().unwrap();
        let send = std::pin::pin!(outbox.send(b"now".to_vec(), to, false));
        assert!(poll_once(send).is_ready());
        assert_eq!(receive_all(&client, 1), vec![b"now".to_vec()]);
    }

    /// A waiting sender dropped before it resumes (a runtime shutting down) still sends the queue.
    #[test]
    fn a_dropped_waiter_sends_what_was_queued() {
        let rt = runtime();
        let (outbox, client) = pair();
        let to = client.local_addr().unwrap();
        let o = outbox.clone();
        rt.block_on(async move {
            tokio::spawn(async move {
                let mut first = Box::pin(o.send(b"first".to_vec(), to, false));
                assert!(
                    poll_once(first.as_mut()).is_pending(),
                    "the first answer waits for the run's end"
                );
                // A second answer joins the queue and returns at once.
                o.send(b"second".to_vec(), to, false).await;
                assert_eq!(o.lock().outs.len(), 2);
                drop(first);
                assert!(o.lock().outs.is_empty(), "sent by the waiter's drop");
            })
            .await
            .unwrap();
        });
        let mut got = receive_all(&client, 2);
        got.sort();
        assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
    }
}
