//! Blocking: names on block lists are answered here, never forwarded; allow lists win.
//!
//! ```text
//!   server --QueryView--> Blocker::answer_fast_in_chain --> cache, screened by Check (generation g)
//!        hit stamped g ------------------------------------------------------------> answer as is
//!        hit on a blocked answer stored under g ---------------------------> answer as is (Local)
//!        hit not stamped g --> qname or a CNAME target blocked? --no--> stamp g --> answer as is
//!                                                             \--yes--> store blocked answer, g
//!        miss (or a blocked answer of another generation) --> qname blocked? --yes--> same
//!                                                                           \--no--> slow path
//!   server --Request----> Blocker::handle --blocked?--yes--> NXDOMAIN | 0.0.0.0/::, EDE 15
//!                                   \--no--> cache --> ... --> forwarder --answer--> CNAME check
//!   lists (files, HTTPS URLs) --load (off to the side)--> Index --swap Arc, new g--> Blocker
//!                      ^ SIGHUP, every refresh_secs; URLs fetched through our own chain (fetch)
//! ```
//!
//! Why in front of the cache: a list change (a reload) must take effect for every name at once,
//! including names the cache already holds, and a blocked name must never reach an upstream.
//!
//! Why the cache is asked first on the fast path: with a large list, probing the [`index`] for
//! every suffix of every query name touches cache lines spread over megabytes (the tag bytes
//! alone are two octets per name), which at a moderate query rate are cold every time; that was
//! most of what a list of a million names added to a cached answer. So every index has a
//! generation (unique in the process, new at every swap, and at every change of the answer mode
//! or TTL), and the stage hands the cache a [`Screen`] ([`Check`]) with it: a cache entry records
//! the generation whose check it last passed (the question name not blocked, no CNAME target
//! blocked, allow lists applied), and a hit on an entry that carries the current generation is
//! answered without touching the index or walking the answer. Any other hit (a new entry, or the
//! first since a reload) is checked under the cache's shard lock and stamped if it passes. A
//! reload thus takes effect for cached names at once, at the price of one check per entry.
//!
//! Why blocked answers are stored in the cache too: a blocked name asked first of the cache is a
//! cache miss (hashing the key) and then the index's probe over cold memory, which made a blocked
//! answer dearer than a cached one. So on a miss, or on an entry that fails the check, the cache
//! asks the check for its own answer ([`Screen::own_answer`]): the blocked response, written once
//! for an EDNS client with the Extended DNS Error naming the list, stored as an entry marked as
//! the blocker's own under the current generation (it replaces an entry that failed), and
//! answered. The next ask is one cache hit and nothing else: the cache's one response writer
//! puts in the client's ID, spelling, flags and OPT record (none, so no Extended DNS Error, for a
//! client without EDNS), and counts the TTL down from `block.ttl`. Such an entry is answered as
//! [`Origin::Local`], so the metrics and the query log count it as a local answer, not a cache
//! hit (nor does the cache's own hit counter); it is answered only on the screened fast path
//! and only under its generation: the slow path's cache misses it (so a stale one can never
//! reach the slow path's CNAME check, which would pass it as a "not blocked, no CNAME" answer),
//! and a reload, a new answer mode or TTL, or the blocker's removal makes it a miss at once. It
//! is never prefetched, refreshed upstream, answered stale, or written to the cache file; when
//! its TTL has counted down to 0 it is renewed in place (under the same generation the blocker
//! would write the same bytes again). A flood of distinct blocked names takes at most a quarter
//! of each cache shard (past that they are answered from the index, not stored), and those
//! entries are never marked referenced, so the eviction's second chance is for the other entries
//! only: the flood can displace at most a quarter of the cache, and what a household asks keeps
//! the rest (unbound answers local zones before its cache and stores nothing for them; storing
//! a bounded share is what buys the blocked answer the cost of a hit).
//!
//! A compact prefilter in front of the index (a Bloom filter of a few bits per name) was the
//! other way: it spares the probes of the slots and the arena, but not the cold line per suffix,
//! since a million names at eight bits are still a megabyte; the stamp touches nothing but the
//! entry the hit copies anyway.
//!
//! CNAME cloaking (a tracker behind a CNAME from a first-party name): an answer whose answer
//! section holds a CNAME whose target is blocked is replaced by the blocked answer. The check runs
//! on every answer from the slow path, and on every cached answer once per generation (above);
//! an answer without a CNAME costs one walk of its answer section.
//!
//! Sub-modules: [`parse`] (list formats), [`index`] (the compact name index), [`answer`] (the
//! blocked response and the CNAME check), [`load`] (lists to an index, the last-good copies of
//! fetched lists), [`fetch`] (HTTPS downloads), [`why`] (`dnsveil why`).
//!
//! Limitations: only class IN is blocked (other classes pass); DNAME records are not looked into
//! (the CNAME an upstream synthesises from one is); the old and new index are both in memory while
//! a reload swaps them. A cached answer that fails the check (a cloaked one, or one blocked since
//! it was stored) is replaced by the blocked answer, so a reload that unblocks the name asks the
//! upstream again. Only the fast path uses the stamps and the stored blocked answers: the slow
//! path checks every answer and writes every blocked answer from the index. Queries the cache
//! does not answer (meta types, EDNS versions other than 0) are blocked from the index each time.
//! A config reload applies `block.answer` and `block.ttl` ([`Blocker::set_answer`]); the lists
//! and the other block settings it leaves for a restart (SIGHUP re-reads the lists themselves).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tracing::{info, warn};

use crate::handler::{
    BoxFuture, FastNext, Handler, HandlerResult, Next, Origin, Request, Screen, Screened,
};
use crate::wire::edns::check_options;
use crate::wire::{Class, Opcode, QueryView, RType};

pub mod answer;
pub mod fetch;
pub mod index;
pub mod load;
pub mod parse;
pub mod why;

pub use answer::AnswerMode;
pub use index::{Hit, Index, Kind};
pub use load::{BlockSettings, ListSource, ListUrl, LoadError, LoadReport};

use answer::{blocked_answer, cloaked, write_blocked, Query, Why};

/// TTL of blocked answers when `block.ttl` is absent, in seconds.
pub const DEFAULT_TTL: u32 = 10;

/// The blocking stage.
pub struct Blocker {
    /// The current index and its generation; a reload builds a new index off to the side and
    /// swaps both. The lock is never held across an `.await`: the slow path clones the `Arc`, the
    /// fast path holds the read lock through its (synchronous) work, a swap holds the write lock
    /// for the swap only.
    current: RwLock<Current>,
    /// The UDP payload size our OPT record advertises.
    payload: u16,
}

/// An index, how blocked names are answered, and the generation both are screened under (see
/// the module docs): a change of any of them is a new generation, so that no blocked answer the
/// cache stored under the old one is served again.
#[derive(Clone)]
struct Current {
    index: Arc<Index>,
    generation: u32,
    mode: AnswerMode,
    ttl: u32,
}

/// The last generation handed out, for every blocker of the process: two indexes never share
/// one, so a cache entry stamped under one is checked again under any other.
static GENERATIONS: AtomicU32 = AtomicU32::new(0);

/// A generation no index has had yet: never 0 (the cache's "not checked") and below 2^31 (the
/// cache keeps its "own answer" flag beside it, [`Screen::generation`]). After 2^31 - 1 swaps the
/// numbers come round again; an entry stamped that many reloads ago has long expired.
fn next_generation() -> u32 {
    loop {
        let g = GENERATIONS.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & 0x7FFF_FFFF;
        if g != 0 {
            return g;
        }
    }
}

impl Blocker {
    /// A stage serving `index`.
    pub fn new(index: Index, mode: AnswerMode, ttl: u32, payload: u16) -> Blocker {
        Blocker {
            current: RwLock::new(Current {
                index: Arc::new(index),
                generation: next_generation(),
                mode,
                ttl,
            }),
            payload,
        }
    }

    /// The index in use.
    pub fn index(&self) -> Arc<Index> {
        self.current().index
    }

    /// What is in use: a clone, so that the lock is released at once.
    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `index` from now on (queries in flight finish with the old one), under a new
    /// generation: every answer the cache holds is checked against it before it is answered
    /// again.
    pub fn swap(&self, index: Index) {
        let index = Arc::new(index);
        self.replace(|c| Current { index, ..c.clone() });
    }

    /// Answers blocked names with `mode` and `ttl` from now on (a config reload), under a new
    /// generation if either changed: the blocked answers the cache stored under the old one are
    /// never served again.
    pub fn set_answer(&self, mode: AnswerMode, ttl: u32) {
        let c = self.current();
        if (c.mode, c.ttl) == (mode, ttl) {
            return;
        }
        info!(answer = ?mode, ttl, "block answer changed");
        self.replace(|c| Current {
            mode,
            ttl,
            ..c.clone()
        });
    }

    /// Swaps in what `new` makes of the current state, under a new generation.
    fn replace(&self, new: impl FnOnce(&Current) -> Current) {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let next = Current {
            generation: next_generation(),
            ..new(&guard)
        };
        let old = std::mem::replace(&mut *guard, next);
        drop(guard);
        // The old index is freed here, outside the lock, unless a query still holds it.
        drop(old);
    }

    fn fast(
        &self,
        view: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        next: FastNext<'_>,
    ) -> Option<Origin> {
        if !blockable(view.qtype, view.qclass) || view.header.opcode != Opcode::QUERY {
            return next.run(view, max_len, out);
        }
        // The read lock is held through the next stage's fast path and the lookups (no `.await`
        // here): cheaper than cloning the `Arc`, and a swap waits for it only that long.
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let index: &Index = &guard.index;
        if index.blocked() == 0 {
            drop(guard);
            return next.run(view, max_len, out);
        }
        let check = Check {
            index,
            generation: guard.generation,
            mode: guard.mode,
            ttl: guard.ttl,
            payload: self.payload,
        };
        // The next stage first: a cached answer that passed this generation's check, or this
        // generation's own blocked answer stored in the cache, is answered without touching the
        // index (see the module docs).
        let failed = match next.run_screened(view, max_len, out, &check) {
            Some(Screened::Passed(origin)) => return Some(origin),
            Some(Screened::Failed(_)) => true,
            // The cache asked the index already: not blocked.
            Some(Screened::Missed) => return None,
            None => false,
        };
        let cloak;
        let why = match index.blocking(view.qname) {
            Some(hit) => {
                // As the cache does: a query the slow path answers FORMERR is left to it.
                if view.edns.is_some_and(|e| e.has_options) && options_malformed(view) {
                    return None;
                }
                Why { hit, cname: None }
            }
            None if failed => {
                let (hit, target) = cloaked(index, out)?;
                cloak = target;
                Why {
                    hit,
                    cname: Some(cloak.as_wire()),
                }
            }
            // Not blocked, and nothing answered it on the fast path: the slow path.
            None => return None,
        };
        out.clear();
        let h = &view.header;
        let dnssec_ok = view.edns.is_some_and(|e| e.dnssec_ok);
        let q = Query {
            id: h.id,
            qname: view.qname,
            qtype: view.qtype,
            qclass: view.qclass,
            recursion_desired: h.recursion_desired,
            checking_disabled: h.checking_disabled,
            wants_ad: h.authentic_data || dnssec_ok,
            edns: view.edns.map(|e| e.dnssec_ok),
        };
        write_blocked(&q, &why, guard.mode, guard.ttl, self.payload, max_len, out)
            .then_some(Origin::Local)
    }

    async fn slow(&self, req: &Request, next: Next<'_>) -> HandlerResult {
        let m = &req.query;
        let question = match (m.question(), m.questions.len()) {
            (Some(q), 1) if m.is_query_opcode() && blockable(q.qtype, q.qclass) => q,
            _ => return next.run(req).await,
        };
        let Current {
            index, mode, ttl, ..
        } = self.current();
        if index.blocked() == 0 {
            return next.run(req).await;
        }
        let dnssec_ok = m.edns.as_ref().is_some_and(|e| e.dnssec_ok);
        let q = Query {
            id: m.header.id,
            qname: question.name.as_wire(),
            qtype: question.qtype,
            qclass: question.qclass,
            recursion_desired: m.header.recursion_desired,
            checking_disabled: m.header.checking_disabled,
            wants_ad: m.header.authentic_data || dnssec_ok,
            edns: m.edns.as_ref().map(|e| e.dnssec_ok),
        };
        let local = |why: Why<'_>| {
            blocked_answer(&q, &why, mode, ttl, self.payload).ok_or_else(|| {
                crate::handler::HandlerError::internal(std::io::Error::other(
                    "blocked answer does not fit",
                ))
            })
        };
        if let Some(hit) = index.blocking(question.name.as_wire()) {
            return local(Why { hit, cname: None });
        }
        let answer = next.run(req).await?;
        if let Some((hit, target)) = cloaked(&index, answer.wire()) {
            return local(Why {
                hit,
                cname: Some(target.as_wire()),
            });
        }
        Ok(answer)
    }
}

/// Builds a new index from `settings` on a blocking thread and swaps it in; on failure the
/// current index stays. Logs what was loaded. Returns whether the new index is in use.
pub async fn reload(blocker: &Blocker, settings: &Arc<BlockSettings>) -> bool {
    let s = settings.clone();
    match tokio::task::spawn_blocking(move || load::build_index(&s)).await {
        Ok(Ok((index, report))) => {
            blocker.swap(index);
            log_report(&report, true);
            true
        }
        Ok(Err(e)) => {
            warn!(error = %e, "block lists not reloaded; keeping the previous ones");
            false
        }
        Err(e) => {
            warn!(error = %e, "block list reload failed; keeping the previous ones");
            false
        }
    }
}

/// Logs a load (`reloaded`: not the first): one line in all, and one per list with unusable lines
/// or no copy yet.
pub fn log_report(r: &LoadReport, reloaded: bool) {
    let what = if reloaded {
        "block lists reloaded"
    } else {
        "block lists loaded"
    };
    info!(
        lists = r.lists.len(),
        blocked = r.blocked,
        allowed = r.allowed,
        index_bytes = r.heap_bytes,
        elapsed = ?r.elapsed,
        "{what}"
    );
    for l in &r.lists {
        if l.not_fetched {
            warn!(list = %l.name, key = %l.key, "block list not fetched yet; empty until its first fetch");
        }
        if let Some((line, why)) = l.first_unusable {
            warn!(
                list = %l.name,
                unusable = l.unusable,
                first_line = line,
                first_reason = why,
                "block list lines skipped"
            );
        }
    }
}

/// Fuzz body for the list parser and the index: any input, as a list, must load without panicking
/// and every block rule it gave must then block its own name; the same bytes as a query name and
/// as a response must be looked up without panicking.
#[doc(hidden)]
pub fn fuzz_blocklist(data: &[u8]) {
    let mut index = Index::new();
    let Some(list) = index.add_list("fuzz") else {
        return;
    };
    let mut report = load::ListReport::default();
    if load::add_text(&mut index, Kind::Block, list, data, &mut report).is_err() {
        return;
    }
    assert_eq!(index.blocked() + index.allowed(), report.added);
    for line in data.split(|&b| b == b'\n') {
        let Ok(text) = std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)) else {
            continue;
        };
        if let parse::Line::Block(names) = parse::parse_line(text) {
            for name in names {
                let (block, _) = index.explain(&name);
                assert!(
                    block.is_some(),
                    "{text:?}: its rule does not match its name"
                );
            }
        }
    }
    let _ = index.blocking(data);
    let _ = answer::cloaked(&index, data);
}

/// The blocker's [`Screen`]: an answer passes unless its question name is blocked or its CNAME
/// chain passes through a blocked name, under the index of one generation.
struct Check<'a> {
    index: &'a Index,
    generation: u32,
    mode: AnswerMode,
    ttl: u32,
    payload: u16,
}

impl Screen for Check<'_> {
    fn generation(&self) -> u32 {
        self.generation
    }

    fn passes(&self, query: &QueryView<'_>, answer: &[u8]) -> bool {
        self.index.blocking(query.qname).is_none() && cloaked(self.index, answer).is_none()
    }

    /// The blocked answer, for the cache to store under this generation: the question name's
    /// rule, else a rule on a CNAME target of `failed`; written for an EDNS client (so that the
    /// Extended DNS Error is stored) with ID 0 and no flags of the client's; `block.ttl` seconds.
    fn own_answer(&self, query: &QueryView<'_>, failed: &[u8], out: &mut Vec<u8>) -> Option<u32> {
        let cloak;
        let why = match self.index.blocking(query.qname) {
            Some(hit) => Why { hit, cname: None },
            None => {
                let (hit, target) = cloaked(self.index, failed)?;
                cloak = target;
                Why {
                    hit,
                    cname: Some(cloak.as_wire()),
                }
            }
        };
        let q = Query {
            id: 0,
            qname: query.qname,
            qtype: query.qtype,
            qclass: query.qclass,
            recursion_desired: false,
            checking_disabled: query.header.checking_disabled,
            wants_ad: false,
            edns: Some(false),
        };
        out.clear();
        let limit = usize::from(u16::MAX);
        write_blocked(&q, &why, self.mode, self.ttl, self.payload, limit, out).then_some(self.ttl)
    }
}

/// Whether a question of this type and class may be blocked: class IN, and not a meta type the
/// server refuses on its own (zone transfers, OPT).
fn blockable(qtype: RType, qclass: Class) -> bool {
    qclass == Class::IN && !matches!(qtype, RType::AXFR | RType::IXFR | RType::OPT)
}

fn options_malformed(view: &QueryView<'_>) -> bool {
    // QueryView has checked that the OPT record ends the packet, so its RDATA is the rest.
    view.raw
        .get(view.question_end + 11..)
        .map_or(true, |rdata| check_options(rdata).is_err())
}

impl Handler for Blocker {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(self.slow(req, next))
    }

    fn answer_fast_in_chain(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        next: FastNext<'_>,
    ) -> Option<Origin> {
        self.fast(query, max_len, out, next)
    }

    fn name(&self) -> &'static str {
        "block"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;
    use crate::handler::{local_answer, Chain, Protocol};
    use crate::wire::{Edns, Message, Name, RData, Rcode, Record};

    /// The stage after blocking: answers every name with a CNAME to `trk.example` and its address,
    /// on the slow path and on the fast path (as a cache hit would).
    struct Cloaking;

    fn cloaked_response(query: &Message) -> Message {
        let q = query.question().unwrap();
        let mut m = Message::response_to(query);
        let target: Name = "trk.example".parse().unwrap();
        m.answers.push(Record::new(
            q.name.clone(),
            60,
            RData::Cname(target.clone()),
        ));
        m.answers
            .push(Record::new(target, 60, RData::A([192, 0, 2, 9].into())));
        m
    }

    impl Handler for Cloaking {
        fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
            Box::pin(std::future::ready(local_answer(&cloaked_response(
                &req.query,
            ))))
        }
        fn answer_fast(
            &self,
            query: &QueryView<'_>,
            _max: usize,
            out: &mut Vec<u8>,
        ) -> Option<Origin> {
            let m = Message::parse(query.raw).unwrap();
            out.extend_from_slice(&cloaked_response(&m).encode().unwrap());
            Some(Origin::Cache)
        }
        fn name(&self) -> &'static str {
            "cloaking"
        }
    }

    fn chain(list: &str, mode: AnswerMode) -> Chain {
        let mut index = Index::new();
        let l = index.add_list("test.list").unwrap();
        let mut r = load::ListReport::default();
        load::add_text(&mut index, Kind::Block, l, list.as_bytes(), &mut r).unwrap();
        let blocker = Blocker::new(index, mode, 7, 1232);
        Chain::new(vec![Arc::new(blocker), Arc::new(Cloaking)])
    }

    fn query(name: &str, qtype: RType) -> Message {
        let mut q = Message::query(name.parse::<Name>().unwrap(), qtype);
        q.header.id = 99;
        q.edns = Some(Edns::default());
        q
    }

    fn ede_text(m: &Message) -> String {
        let (code, text) = m.edns.as_ref().unwrap().extended_errors().next().unwrap();
        assert_eq!(code, crate::wire::edns::ede::BLOCKED);
        text.to_string()
    }

    async fn slow(chain: &Chain, q: Message) -> Message {
        let req = Request {
            query: q,
            client: None,
            protocol: Protocol::Udp,
        };
        chain.handle(&req).await.unwrap().message().unwrap()
    }

    fn fast(chain: &Chain, q: &Message) -> Option<Message> {
        let wire = q.encode().unwrap();
        let view = QueryView::parse(&wire).unwrap();
        let mut out = Vec::new();
        chain
            .answer_fast(&view, 512, &mut out)
            .is_some()
            .then(|| Message::parse(&out).unwrap())
    }

    #[tokio::test]
    async fn blocked_names_and_cloaked_answers_on_both_paths() {
        let c = chain(
            "||ads.example^\n\n0.0.0.0 trk.example\n",
            AnswerMode::NxDomain,
        );
        let m = slow(&c, query("x.ads.example", RType::A)).await;
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert_eq!(
            ede_text(&m),
            "blocked: ads.example (list test.list, line 1)"
        );
        let f = fast(&c, &query("X.Ads.Example", RType::A)).unwrap();
        assert_eq!((f.rcode(), f.header.id), (Rcode::NXDOMAIN, 99));
        assert_eq!(f.questions[0].name.to_string(), "X.Ads.Example.");
        assert_eq!(
            ede_text(&f),
            "blocked: ads.example (list test.list, line 1)"
        );

        // Not blocked itself, but its CNAME leads to trk.example.
        let m = slow(&c, query("site.example", RType::A)).await;
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert!(m.answers.is_empty());
        assert_eq!(
            ede_text(&m),
            "blocked: CNAME target trk.example (list test.list, line 3)"
        );
        let f = fast(&c, &query("site.example", RType::A)).unwrap();
        assert_eq!(f.rcode(), Rcode::NXDOMAIN);
    }

    #[tokio::test]
    async fn null_answers_and_a_swapped_index() {
        let c = chain("ads.example\n", AnswerMode::Null);
        let f = fast(&c, &query("ads.example", RType::AAAA)).unwrap();
        assert_eq!(f.rcode(), Rcode::NOERROR);
        assert_eq!(
            f.answers[0].data,
            RData::Aaaa(std::net::Ipv6Addr::UNSPECIFIED)
        );
        assert_eq!(f.answers[0].ttl, 7);
        let m = slow(&c, query("ads.example", RType::TXT)).await;
        assert_eq!((m.rcode(), m.answers.len()), (Rcode::NOERROR, 0));
        // Without EDNS: no OPT record on the fast path.
        let mut plain = query("ads.example", RType::A);
        plain.edns = None;
        let f = fast(&c, &plain).unwrap();
        assert!(f.edns.is_none());
        assert_eq!(f.answers[0].data, RData::A(std::net::Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn a_swap_takes_effect_for_the_next_query() {
        let mut index = Index::new();
        index.add_list("empty").unwrap();
        let blocker = Arc::new(Blocker::new(index, AnswerMode::NxDomain, 7, 1232));
        let c = Chain::new(vec![blocker.clone(), Arc::new(Cloaking)]);
        let f = fast(&c, &query("ads.example", RType::A)).unwrap();
        assert_eq!(f.rcode(), Rcode::NOERROR);
        let mut index = Index::new();
        let l = index.add_list("new").unwrap();
        load::add_text(
            &mut index,
            Kind::Block,
            l,
            b"ads.example\n",
            &mut Default::default(),
        )
        .unwrap();
        blocker.swap(index);
        let f = fast(&c, &query("ads.example", RType::A)).unwrap();
        assert_eq!(f.rcode(), Rcode::NXDOMAIN);
    }

    /// An index of `block` and `allow` rules (list texts).
    fn index_of(block: &str, allow: &str) -> Index {
        let mut index = Index::new();
        let b = index.add_list("block.list").unwrap();
        let a = index.add_list("allow.list").unwrap();
        let mut r = load::ListReport::default();
        load::add_text(&mut index, Kind::Block, b, block.as_bytes(), &mut r).unwrap();
        load::add_text(&mut index, Kind::Allow, a, allow.as_bytes(), &mut r).unwrap();
        index
    }

    /// An upstream behind the cache: `site.example` is a CNAME to `cdn.example`, every other name
    /// an address; counts what it is asked.
    struct Upstream(std::sync::atomic::AtomicUsize);

    impl Handler for Upstream {
        fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let q = req.query.question().unwrap();
            let mut m = Message::response_to(&req.query);
            let mut owner = q.name.clone();
            if owner.to_string() == "site.example." {
                let target: Name = "cdn.example".parse().unwrap();
                m.answers
                    .push(Record::new(owner, 300, RData::Cname(target.clone())));
                owner = target;
            }
            m.answers
                .push(Record::new(owner, 300, RData::A([192, 0, 2, 1].into())));
            Box::pin(std::future::ready(
                crate::handler::Answer::from_message(
                    &m,
                    Origin::Upstream,
                    crate::handler::Verdict::Unchecked,
                )
                .map_err(crate::handler::HandlerError::internal),
            ))
        }
        fn name(&self) -> &'static str {
            "upstream"
        }
    }

    /// Blocker -> cache -> upstream, as the application composes them.
    fn cached_chain(index: Index) -> (Arc<Blocker>, Arc<Upstream>, Chain) {
        let (blocker, up, _, chain) = cached_chain_in(index, AnswerMode::NxDomain);
        (blocker, up, chain)
    }

    /// [`cached_chain`] answering blocked names with `mode`, and its cache.
    fn cached_chain_in(
        index: Index,
        mode: AnswerMode,
    ) -> (Arc<Blocker>, Arc<Upstream>, Arc<crate::cache::Cache>, Chain) {
        let blocker = Arc::new(Blocker::new(index, mode, 7, 1232));
        let cache = Arc::new(crate::cache::Cache::new(
            crate::cache::CacheConfig::default(),
        ));
        let up = Arc::new(Upstream(std::sync::atomic::AtomicUsize::new(0)));
        let chain = Chain::new(vec![blocker.clone(), cache.clone(), up.clone()]);
        (blocker, up, cache, chain)
    }

    #[tokio::test]
    async fn a_reload_takes_effect_for_cached_answers_at_once() {
        let (blocker, up, c) = cached_chain(index_of("unrelated.example\n", ""));
        for name in ["www.example", "site.example"] {
            assert_eq!(
                slow(&c, query(name, RType::A)).await.rcode(),
                Rcode::NOERROR
            );
        }
        assert_eq!(up.0.load(Ordering::SeqCst), 2);
        // Cached, and checked (then stamped) on their first fast-path hit.
        for _ in 0..2 {
            for name in ["www.example", "site.example"] {
                let f = fast(&c, &query(name, RType::A)).unwrap();
                assert_eq!((f.rcode(), f.answers.is_empty()), (Rcode::NOERROR, false));
            }
        }

        // The lists now block one cached name and the CNAME target of the other.
        blocker.swap(index_of("www.example\ncdn.example\n", ""));
        for _ in 0..2 {
            let f = fast(&c, &query("WWW.example", RType::A)).unwrap();
            assert_eq!((f.rcode(), f.answers.len()), (Rcode::NXDOMAIN, 0));
            assert_eq!(
                ede_text(&f),
                "blocked: www.example (list block.list, line 1)"
            );
            let f = fast(&c, &query("site.example", RType::A)).unwrap();
            assert_eq!((f.rcode(), f.answers.len()), (Rcode::NXDOMAIN, 0));
            assert_eq!(
                ede_text(&f),
                "blocked: CNAME target cdn.example (list block.list, line 2)"
            );
        }
        let m = slow(&c, query("www.example", RType::A)).await;
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert_eq!(
            up.0.load(Ordering::SeqCst),
            2,
            "nothing blocked went upstream"
        );

        // An allow list wins: the blocked answers that replaced the cached ones in the cache
        // are not served; the names are asked upstream again.
        blocker.swap(index_of(
            "www.example\ncdn.example\n",
            "www.example\ncdn.example\n",
        ));
        for name in ["www.example", "site.example"] {
            assert!(fast(&c, &query(name, RType::A)).is_none());
            let m = slow(&c, query(name, RType::A)).await;
            assert_eq!((m.rcode(), m.answers.is_empty()), (Rcode::NOERROR, false));
            let f = fast(&c, &query(name, RType::A)).unwrap();
            assert_eq!((f.rcode(), f.answers.is_empty()), (Rcode::NOERROR, false));
        }
        assert_eq!(up.0.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_blocked_answer_stored_in_the_cache_dies_with_its_generation() {
        let (blocker, up, cache, c) =
            cached_chain_in(index_of("ads.example\n", ""), AnswerMode::NxDomain);
        assert_eq!(
            fast(&c, &query("x.ads.example", RType::A)).unwrap().rcode(),
            Rcode::NXDOMAIN
        );
        assert_eq!(cache.len(), 1, "stored");
        assert_eq!(
            slow(&c, query("x.ads.example", RType::A)).await.rcode(),
            Rcode::NXDOMAIN
        );
        // Unblocked by a reload: the stored blocked answer is served on neither path (the slow
        // path's cache would otherwise hand it to the CNAME check, which passes it).
        blocker.swap(index_of("other.example\n", ""));
        assert!(fast(&c, &query("x.ads.example", RType::A)).is_none());
        assert_eq!(up.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            slow(&c, query("x.ads.example", RType::A)).await.rcode(),
            Rcode::NOERROR
        );
        assert_eq!(up.0.load(Ordering::SeqCst), 1);
    }

    /// The blocked answers of both modes, first from the index and then from the cache: the
    /// same bytes apart from the ID, with the Extended DNS Error naming the list.
    #[tokio::test]
    async fn blocked_answers_are_answered_from_the_cache_in_both_modes() {
        let cases = [
            (AnswerMode::NxDomain, RType::A, Rcode::NXDOMAIN, None),
            (
                AnswerMode::Null,
                RType::A,
                Rcode::NOERROR,
                Some(RData::A(std::net::Ipv4Addr::UNSPECIFIED)),
            ),
            (
                AnswerMode::Null,
                RType::AAAA,
                Rcode::NOERROR,
                Some(RData::Aaaa(std::net::Ipv6Addr::UNSPECIFIED)),
            ),
            (AnswerMode::Null, RType::TXT, Rcode::NOERROR, None),
        ];
        for (mode, qtype, rcode, data) in cases {
            let (_, up, cache, c) = cached_chain_in(index_of("ads.example\n", ""), mode);
            let first = fast(&c, &query("x.Ads.example", qtype)).unwrap();
            assert_eq!(cache.len(), 1);
            for _ in 0..2 {
                let mut q = query("X.ads.example", qtype);
                q.header.id = 4321;
                let f = fast(&c, &q).unwrap();
                assert_eq!(
                    (f.header.id, f.rcode()),
                    (4321, rcode),
                    "{mode:?} {qtype:?}"
                );
                assert_eq!(f.questions[0].name.to_string(), "X.ads.example.");
                assert_eq!(f.answers.first().map(|r| r.data.clone()), data);
                assert_eq!(
                    ede_text(&f),
                    "blocked: ads.example (list block.list, line 1)"
                );
                assert_eq!(f.answers.len(), first.answers.len());
                // Without EDNS: no OPT record, so no Extended DNS Error.
                let mut plain = query("x.ads.example", qtype);
                plain.edns = None;
                assert!(fast(&c, &plain).unwrap().edns.is_none());
            }
            // Never a cache hit in the cache's counters, never upstream.
            assert_eq!(cache.stats().hits, 0);
            assert_eq!(up.0.load(Ordering::SeqCst), 0);
        }
    }

    #[tokio::test]
    async fn a_new_answer_mode_is_a_new_generation() {
        let (blocker, _, _, c) =
            cached_chain_in(index_of("ads.example\n", ""), AnswerMode::NxDomain);
        for _ in 0..2 {
            let f = fast(&c, &query("ads.example", RType::A)).unwrap();
            assert_eq!(f.rcode(), Rcode::NXDOMAIN);
        }
        blocker.set_answer(AnswerMode::Null, 30);
        for _ in 0..2 {
            let f = fast(&c, &query("ads.example", RType::A)).unwrap();
            assert_eq!(f.rcode(), Rcode::NOERROR);
            assert_eq!(f.answers[0].data, RData::A(std::net::Ipv4Addr::UNSPECIFIED));
            assert_eq!(f.answers[0].ttl, 30);
        }
        let m = slow(&c, query("ads.example", RType::A)).await;
        assert_eq!((m.rcode(), m.answers[0].ttl), (Rcode::NOERROR, 30));
    }

    /// A cloaked answer (its CNAME target blocked) is replaced in the cache by the blocked
    /// answer naming the target.
    #[tokio::test]
    async fn a_cloaked_answer_is_replaced_by_its_blocked_answer() {
        let (_, up, cache, c) =
            cached_chain_in(index_of("cdn.example\n", ""), AnswerMode::NxDomain);
        let m = slow(&c, query("site.example", RType::A)).await;
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert_eq!(up.0.load(Ordering::SeqCst), 1);
        for _ in 0..3 {
            let f = fast(&c, &query("site.example", RType::A)).unwrap();
            assert_eq!(f.rcode(), Rcode::NXDOMAIN);
            assert_eq!(
                ede_text(&f),
                "blocked: CNAME target cdn.example (list block.list, line 1)"
            );
        }
        assert_eq!((cache.len(), cache.stats().hits), (1, 0));
    }

    #[test]
    fn fuzz_body_survives_odd_input() {
        for input in [
            &b""[..],
            b"\n\n",
            b"0.0.0.0 a.example b..example\n||x^\n@@||y.example^",
            b"\xff\x00\x01 \xfe",
            &[3, b'c', b'o', b'm', 0],
        ] {
            fuzz_blocklist(input);
        }
    }
}
