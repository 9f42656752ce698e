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
//! mutex, never held across an `.await`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::wire::{LowerName, Message, Name, Question, RData, RType, Rcode};

/// Most steps kept.
pub const MAX_ANSWERS: usize = 50_000;
/// Longest a positive step is kept.
pub const MAX_ANSWER_TTL: Duration = Duration::from_secs(86_400);
/// Longest a negative step is kept.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3_600);

type Key = (LowerName, RType, bool);

/// Steps by (name, type, DO).
#[derive(Default)]
pub struct AnswerCache {
    /// Never held across an `.await`.
    map: Mutex<HashMap<Key, (Message, Name, Instant)>>,
}

fn key(q: &Question, dnssec_ok: bool) -> Key {
    (LowerName::from(&q.name), q.qtype, dnssec_ok)
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

    /// The step for `q`, with its TTLs counted down, and the zone that answered it.
    pub fn get(&self, q: &Question, dnssec_ok: bool, now: Instant) -> Option<(Message, Name)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (msg, zone, expires) = map.get(&key(q, dnssec_ok))?;
        let left = expires
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        let left = u32::try_from(left.as_secs()).unwrap_or(u32::MAX);
        let mut msg = msg.clone();
        for r in msg
            .answers
            .iter_mut()
            .chain(msg.authority.iter_mut())
            .chain(msg.additional.iter_mut())
        {
            r.ttl = r.ttl.min(left);
        }
        Some((msg, zone.clone()))
    }

    /// Keeps `msg`, the answer of `zone`'s servers to `q` (see the module docs for how long).
    pub fn put(&self, q: &Question, dnssec_ok: bool, msg: &Message, zone: &Name, now: Instant) {
        let Some(ttl) = lifetime(msg).filter(|t| !t.is_zero()) else {
            return;
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ANSWERS {
            map.retain(|_, (_, _, exp)| *exp > now);
            if map.len() >= MAX_ANSWERS {
                map.clear();
            }
        }
        map.insert(key(q, dnssec_ok), (msg.clone(), zone.clone(), now + ttl));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::parse_record_line;

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
        c.put(&q, false, &m, &zone, now);
        let (got, z) = c.get(&q, false, now + Duration::from_secs(40)).unwrap();
        assert_eq!(z, zone);
        assert_eq!(got.answers[0].ttl, 60);
        assert_eq!(got.answers[1].ttl, 60);
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
        c.put(&q, false, &msg(&[], &[soa], Rcode::NXDOMAIN), &zone, now);
        assert!(c.get(&q, false, now + Duration::from_secs(29)).is_some());
        assert!(c.get(&q, false, now + Duration::from_secs(30)).is_none());
        let other = Question::new("x.example".parse().unwrap(), RType::A);
        c.put(&other, false, &msg(&[], &[], Rcode::NOERROR), &zone, now);
        c.put(
            &other,
            false,
            &msg(&[], &[soa], Rcode::SERVFAIL),
            &zone,
            now,
        );
        assert!(c.get(&other, false, now).is_none());
    }
}
