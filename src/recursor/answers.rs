//! The answers the recursor got from authoritative servers, by question, for their TTL: a CNAME
//! target or a name server's address resolved for one client query answers the next query that
//! needs it without asking again, as unbound's message and RRset caches do. The shared cache in
//! front of the chain keeps whole client answers keyed by the client's question; this one keeps
//! the steps a client answer was made of (the answer for each name of a CNAME chain, each name
//! server address lookup), which the shared cache never sees.
//!
//! A step is kept for the smallest TTL of its answer records, or for a negative answer the
//! smaller of its SOA's TTL and MINIMUM (RFC 2308 section 5), capped at [`MAX_ANSWER_TTL`] and
//! [`MAX_NEGATIVE_TTL`]; a step without either is not kept. What comes back has its TTLs counted
//! down. Bounded at [`MAX_ANSWERS`] entries (expired ones go first, then everything); one std
//! mutex, never held across an `.await`. A step is kept behind an `Arc`: storing it and
//! finding it copy no records; the caller copies the ones it uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::wire::name::MAX_NAME_LEN;
use crate::wire::{Message, Name, Question, RData, Rcode, Record};

/// Most steps kept.
pub const MAX_ANSWERS: usize = 50_000;
/// Longest a positive step is kept.
pub const MAX_ANSWER_TTL: Duration = Duration::from_secs(86_400);
/// Longest a negative step is kept.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3_600);

/// Steps by (name, type, DO): the lower-cased wire name, the type's two octets and the DO bit,
/// in one slice, so that a lookup builds its key on the stack.
type Key = Box<[u8]>;

/// Longest key: a name and three octets.
const MAX_KEY: usize = MAX_NAME_LEN + 3;

/// Steps by (name, type, DO).
#[derive(Default)]
pub struct AnswerCache {
    /// Never held across an `.await`.
    map: Mutex<HashMap<Key, Arc<Step>>>,
}

/// One step as kept: shared with the resolution that made it and with every later hit, never
/// copied whole (a hit copies only the records it uses, with their TTLs counted down).
#[derive(Debug)]
pub struct Step {
    pub msg: Message,
    /// The zone whose server answered.
    pub zone: Name,
    expires: Instant,
}

/// A step found, and what is left of its time.
#[derive(Debug)]
pub struct Hit {
    pub step: Arc<Step>,
    /// Seconds left: the cap on every TTL handed out from it.
    pub left: u32,
}

impl Hit {
    /// A fresh step, at its full TTLs.
    pub fn fresh(step: Arc<Step>) -> Hit {
        Hit {
            step,
            left: u32::MAX,
        }
    }

    /// `records` (a section of the step) with their TTLs counted down.
    pub fn copy<'a>(&'a self, records: &'a [Record]) -> impl Iterator<Item = Record> + 'a {
        records.iter().map(|r| Record {
            ttl: r.ttl.min(self.left),
            ..r.clone()
        })
    }
}

/// The key of `q` with `dnssec_ok`, written into `buf`; its length.
fn key(q: &Question, dnssec_ok: bool, buf: &mut [u8; MAX_KEY]) -> usize {
    q.name.with_lower(|name| {
        let n = name.len();
        buf[..n].copy_from_slice(name);
        buf[n..n + 2].copy_from_slice(&q.qtype.0.to_be_bytes());
        buf[n + 2] = u8::from(dnssec_ok);
        n + 3
    })
}

/// How long `msg` may be kept, if at all.
fn lifetime(msg: &Message) -> Option<Duration> {
    if msg.rcode() == Rcode::NOERROR && !msg.answers.is_empty() {
        let ttl = msg.answers.iter().map(|r| r.ttl).min()?;
        return Some(Duration::from_secs(u64::from(ttl)).min(MAX_ANSWER_TTL));
    }
    if !matches!(msg.rcode(), Rcode::NOERROR | Rcode::NXDOMAIN) {
        return None;
    }
    msg.authority.iter().find_map(|r| match &r.data {
        RData::Soa(soa) => {
            Some(Duration::from_secs(u64::from(r.ttl.min(soa.minimum))).min(MAX_NEGATIVE_TTL))
        }
        _ => None,
    })
}

impl AnswerCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The step for `q`, and how long it has left.
    pub fn get(&self, q: &Question, dnssec_ok: bool, now: Instant) -> Option<Hit> {
        let mut buf = [0u8; MAX_KEY];
        let len = key(q, dnssec_ok, &mut buf);
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let step = map.get(&buf[..len])?;
        let left = step
            .expires
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        let left = u32::try_from(left.as_secs()).unwrap_or(u32::MAX);
        Some(Hit {
            step: step.clone(),
            left,
        })
    }

    /// Keeps `msg`, the answer of `zone`'s servers to `q` (see the module docs for how long), and
    /// hands it back shared (also when it is not kept).
    pub fn put(
        &self,
        q: &Question,
        dnssec_ok: bool,
        msg: Message,
        zone: Name,
        now: Instant,
    ) -> Arc<Step> {
        let ttl = lifetime(&msg).filter(|t| !t.is_zero());
        let step = Arc::new(Step {
            msg,
            zone,
            expires: now + ttl.unwrap_or_default(),
        });
        if ttl.is_none() {
            return step;
        }
        let mut buf = [0u8; MAX_KEY];
        let len = key(q, dnssec_ok, &mut buf);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ANSWERS {
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_ANSWERS {
                map.clear();
            }
        }
        map.insert(buf[..len].into(), step.clone());
        step
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{parse_record_line, RType};

    fn msg(answers: &[&str], authority: &[&str], rcode: Rcode) -> Message {
        let mut m = Message::default();
        m.header.response = true;
        m.set_rcode(rcode);
        m.answers = answers
            .iter()
            .map(|l| parse_record_line(l, 60).unwrap())
            .collect();
        m.authority = authority
            .iter()
            .map(|l| parse_record_line(l, 60).unwrap())
            .collect();
        m
    }

    #[test]
    fn steps_live_for_their_ttl_counted_down() {
        let c = AnswerCache::new();
        let now = Instant::now();
        let zone: Name = "example".parse().unwrap();
        let q = Question::new("www.example".parse().unwrap(), RType::A);
        let m = msg(
            &["www.example 300 A 192.0.2.1", "www.example 100 A 192.0.2.2"],
            &[],
            Rcode::NOERROR,
        );
        c.put(&q, false, m, zone.clone(), now);
        let hit = c.get(&q, false, now + Duration::from_secs(40)).unwrap();
        assert_eq!(hit.step.zone, zone);
        let got: Vec<Record> = hit.copy(&hit.step.msg.answers).collect();
        assert_eq!(got[0].ttl, 60);
        assert_eq!(got[1].ttl, 60);
        // The name's case does not matter.
        let upper = Question::new("WWW.Example".parse().unwrap(), RType::A);
        assert!(c.get(&upper, false, now).is_some());
        let aaaa = Question::new("www.example".parse().unwrap(), RType::AAAA);
        assert!(
            c.get(&aaaa, false, now).is_none(),
            "the type is part of the key"
        );
        assert!(c.get(&q, true, now).is_none(), "DO is part of the key");
        assert!(c.get(&q, false, now + Duration::from_secs(100)).is_none());
    }

    #[test]
    fn negative_steps_follow_their_soa_and_errors_are_not_kept() {
        let c = AnswerCache::new();
        let now = Instant::now();
        let zone: Name = "example".parse().unwrap();
        let q = Question::new("none.example".parse().unwrap(), RType::A);
        let soa = "example 600 SOA ns.example. h.example. 1 2 3 4 30";
        c.put(
            &q,
            false,
            msg(&[], &[soa], Rcode::NXDOMAIN),
            zone.clone(),
            now,
        );
        assert!(c.get(&q, false, now + Duration::from_secs(29)).is_some());
        assert!(c.get(&q, false, now + Duration::from_secs(30)).is_none());
        let other = Question::new("x.example".parse().unwrap(), RType::A);
        c.put(
            &other,
            false,
            msg(&[], &[], Rcode::NOERROR),
            zone.clone(),
            now,
        );
        c.put(
            &other,
            false,
            msg(&[], &[soa], Rcode::SERVFAIL),
            zone.clone(),
            now,
        );
        assert!(c.get(&other, false, now).is_none());
    }
}
