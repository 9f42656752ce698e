//! The resolution loop: from the deepest known zone cut down to the answer, restarting at CNAME
//! targets in other zones, with QNAME minimisation and every limit of [`super::limits`].
//!
//! ```text
//!   resolve(question) --> iterate(name) --> deepest cut (delegation cache, else prime the root)
//!        ^                   |  loop: ask the next minimised name of the zone's servers
//!        |                   |        (query_zone: server order, lame/dead handling, glueless NS
//!        |                   |         lookups through resolve itself, nested and bounded)
//!        |                   |   referral --> store the cut, go down
//!        |                   |   answer to a minimised name --> one label more (NXDOMAIN: full name)
//!        |                   +-- answer to the question --> (message, zone)
//!        +-- CNAME/DNAME chain leaving the zone: restart at its end (loop and length checked)
//! ```
//!
//! QNAME minimisation (RFC 9156, relaxed): the servers of a zone are asked for one label more than
//! the zone (type A, as unbound does), so the root and TLD servers never see the full name. The
//! first [`MINIMISE_ONE_LAB`] steps add one label each; later steps add more, so that at most
//! [`MAX_MINIMISE_COUNT`] minimised queries are sent (RFC 9156 section 2.3). Fallback for servers
//! that answer minimised queries wrongly: an NXDOMAIN, or a lame answer, to a minimised name stops
//! minimising for the query, and the full name is asked (the relaxed mode; the strict one would
//! trust the NXDOMAIN).
//!
//! DS is asked of the parent's servers (the query starts at the cut above the name; RFC 4035
//! section 4.2), DNSKEY and everything else of the zone's own. A DS RRset that came with a
//! referral (a parent's server sends it, with its RRSIGs, when DO is set) is kept as the answer to
//! that DS question, so the validator's lookup for it asks nothing more.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::time::Instant;
use tracing::debug;

use super::answers::{AnswerCache, Hit};
use super::caution::dont_query;
use super::deleg::{ttl, Delegation, DelegationCache, NsServer};
use super::exchange::{ask, AskOptions};
use super::flight::Flights;
use super::hints::RootHints;
use super::limits::{Budget, Limit, MAX_LOOKUP_DEPTH, MAX_NS_LOOKUPS_PER_DELEGATION};
use super::servers::ServerTable;
use super::step::{classify, Step};
use super::RecursorError;
use crate::handler::BoxFuture;
use crate::upstream::UpstreamError;
use crate::wire::name::MAX_NAME_LEN;
use crate::wire::scrub::{ScrubError, MAX_CNAME_CHAIN};
use crate::wire::{Message, Name, Question, RData, RType, Rcode, Record};

/// Most minimised queries per name (RFC 9156 section 2.3).
pub const MAX_MINIMISE_COUNT: usize = 10;
/// Minimised steps that add a single label (RFC 9156 section 2.3).
pub const MINIMISE_ONE_LAB: usize = 4;
/// How long a name server name whose address lookup failed is not looked up again.
pub const FAILED_LOOKUP_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How long the hints stand in for the root's NS set after priming failed.
pub const PRIME_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// What a resolution needs besides the question.
pub struct Resolver {
    pub hints: RootHints,
    pub deleg: DelegationCache,
    pub servers: ServerTable,
    /// Answers of authoritative servers by question (CNAME targets, name server addresses).
    pub answers: AnswerCache,
    /// The port of every authoritative server (53; a test hierarchy uses another).
    pub port: u16,
    pub ipv6: bool,
    /// 0x20 case randomisation on queries to servers not known to lose case ([`super::case`]).
    pub case_randomization: bool,
    /// Queries sent to authoritative servers since start.
    pub sent: AtomicU64,
    flights: Flights<FlightKey, Result<Step, RecursorError>>,
}

/// Identical in-flight questions to one zone share one exchange. The key: the zone's and the
/// name's lower-cased wire forms (each ends at its root label, so the pair reads one way only),
/// the type and DO, in one shared slice (one allocation; a clone is a count).
type FlightKey = Arc<[u8]>;

fn flight_key(zone: &Name, asked: &Question, dnssec_ok: bool) -> FlightKey {
    let mut key = [0u8; 2 * MAX_NAME_LEN + 3];
    let z = zone.with_lower(|z| {
        key[..z.len()].copy_from_slice(z);
        z.len()
    });
    let n = asked.name.with_lower(|n| {
        key[z..z + n.len()].copy_from_slice(n);
        z + n.len()
    });
    key[n..n + 2].copy_from_slice(&asked.qtype.0.to_be_bytes());
    key[n + 2] = u8::from(dnssec_ok);
    Arc::from(&key[..n + 3])
}

impl Resolver {
    pub fn new(hints: RootHints, port: u16, ipv6: bool) -> Resolver {
        Resolver {
            hints,
            deleg: DelegationCache::new(),
            servers: ServerTable::new(),
            answers: AnswerCache::new(),
            port,
            ipv6,
            case_randomization: false,
            sent: AtomicU64::new(0),
            flights: Flights::new(),
        }
    }

    /// Whether `ip` may be asked: its family is on, and with the embedded hints it is public
    /// ([`dont_query`]).
    fn usable(&self, ip: IpAddr) -> bool {
        (self.ipv6 || ip.is_ipv4()) && !(self.hints.embedded && dont_query(ip))
    }

    /// Resolves `q` within a fresh [`Budget`]: the answer as the client's answer section (the whole
    /// chain), the authority section of a negative answer, and the final response code.
    pub async fn resolve(&self, q: &Question, dnssec_ok: bool) -> Result<Message, RecursorError> {
        let budget = Budget::new(Instant::now());
        let work = self.resolve_in(q, dnssec_ok, &budget, 0);
        let result = match tokio::time::timeout_at(budget.deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(RecursorError::Limit(Limit::Time)),
        };
        debug!(
            name = %q.name,
            qtype = %q.qtype,
            upstream_queries = budget.queries_sent(),
            ok = result.is_ok(),
            "resolved"
        );
        result
    }

    fn resolve_in<'a>(
        &'a self,
        q: &'a Question,
        dnssec_ok: bool,
        budget: &'a Budget,
        depth: usize,
    ) -> BoxFuture<'a, Result<Message, RecursorError>> {
        Box::pin(async move {
            let mut chain: Vec<Record> = Vec::new();
            let mut seen: Vec<Name> = vec![q.name.clone()];
            let mut qname = q.name.clone();
            loop {
                let cur = Question {
                    name: qname.clone(),
                    qtype: q.qtype,
                    qclass: q.qclass,
                };
                let hit = match self.answers.get(&cur, dnssec_ok, Instant::now()) {
                    Some(hit) => hit,
                    None => {
                        let (msg, zone) = self.iterate(&cur, dnssec_ok, budget, depth).await?;
                        let step = self.answers.put(&cur, dnssec_ok, msg, zone, Instant::now());
                        Hit::fresh(step)
                    }
                };
                let (msg, zone) = (&hit.step.msg, &hit.step.zone);
                let end = chain_end(&msg.answers, &qname, q.qtype);
                let has_data = msg.answers.iter().any(|r| {
                    r.name.eq_ignore_case(&end) && (r.rtype() == q.qtype || q.qtype == RType::ANY)
                });
                let rcode = msg.rcode();
                chain.extend(hit.copy(&msg.answers));
                let links = chain.iter().filter(|r| r.rtype() == RType::CNAME).count();
                if links > MAX_CNAME_CHAIN {
                    return Err(RecursorError::Unusable(ScrubError::ChainTooLong));
                }
                // The chain's end is answered here when the zone's server said so: data, an
                // NXDOMAIN, or a NODATA with its SOA. A target in another zone, or below a cut
                // inside this one (the server sent a referral or nothing), is asked for anew.
                let proven_empty = msg.authority.iter().any(|r| r.rtype() == RType::SOA);
                let ask_again = !end.is_subdomain_of(zone) || !proven_empty;
                if end.eq_ignore_case(&qname) || has_data || rcode != Rcode::NOERROR || !ask_again {
                    let mut out = Message::default();
                    out.set_rcode(rcode);
                    let negative = rcode == Rcode::NXDOMAIN || !has_data;
                    out.answers = chain;
                    if negative {
                        out.authority = hit.copy(&msg.authority).collect();
                    }
                    return Ok(out);
                }
                if seen.iter().any(|s| s.eq_ignore_case(&end)) {
                    return Err(RecursorError::Unusable(ScrubError::Loop(end)));
                }
                seen.push(end.clone());
                qname = end;
            }
        })
    }

    /// Walks down from the deepest known cut to the zone that answers `q`.
    async fn iterate(
        &self,
        q: &Question,
        dnssec_ok: bool,
        budget: &Budget,
        depth: usize,
    ) -> Result<(Message, Name), RecursorError> {
        let start = if q.qtype == RType::DS {
            q.name.parent().unwrap_or_else(Name::root)
        } else {
            q.name.clone()
        };
        let mut deleg = match self.deleg.deepest(&start, Instant::now()) {
            Some(d) => d,
            None => self.prime(budget).await?,
        };
        let mut minimise = Minimiser::new(q.name.label_count(), deleg.zone.label_count());
        loop {
            let asked = minimise.next(q);
            let full = asked == *q;
            match self
                .query_zone(&deleg, &asked, dnssec_ok, budget, depth)
                .await
            {
                Ok(Step::Referral(mut r)) => {
                    budget.referral()?;
                    let now = Instant::now();
                    if dnssec_ok && !r.ds.is_empty() {
                        self.keep_referral_ds(&r.zone, std::mem::take(&mut r.ds), &deleg.zone, now);
                    }
                    let servers =
                        r.ns.iter()
                            .map(|name| NsServer {
                                name: name.clone(),
                                glue: r
                                    .glue
                                    .iter()
                                    .filter(|(g, ip)| g.eq_ignore_case(name) && self.usable(*ip))
                                    .map(|(_, ip)| *ip)
                                    .collect(),
                            })
                            .collect();
                    let d = Delegation {
                        zone: r.zone,
                        servers,
                        expires: now + ttl(r.ttl),
                    };
                    deleg = self.deleg.insert_if_absent(d, now);
                    minimise.at_zone(deleg.zone.label_count());
                }
                Ok(Step::Answer(msg)) if full => return Ok((msg, deleg.zone.clone())),
                Ok(Step::Answer(msg)) => {
                    if msg.rcode() == Rcode::NXDOMAIN {
                        minimise.give_up();
                    } else {
                        minimise.at_zone(asked.name.label_count());
                    }
                }
                // Lame answers are handled in query_zone; Unusable is an error there.
                Ok(Step::Lame(_)) | Ok(Step::Unusable(_)) => minimise.give_up(),
                Err(RecursorError::NoServer { .. }) if !full => minimise.give_up(),
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps the DS RRset (with its RRSIGs) that a server of `parent` sent with its referral to
    /// `cut` as the answer to (cut, DS) with DO set: what the parent's servers would answer that
    /// question (the validator checks it against the parent's keys either way), kept as unbound
    /// keeps it, so that validating the cut asks the parent nothing more.
    fn keep_referral_ds(&self, cut: &Name, ds: Vec<Record>, parent: &Name, now: Instant) {
        let mut msg = Message::default();
        msg.header.authoritative = true;
        msg.answers = ds;
        let q = Question::new(cut.clone(), RType::DS);
        self.answers.put(&q, true, msg, parent.clone(), now);
    }

    /// Asks the servers of `deleg` until one gives an answer or a referral. Identical questions
    /// in flight at once share one exchange.
    async fn query_zone(
        &self,
        deleg: &Delegation,
        asked: &Question,
        dnssec_ok: bool,
        budget: &Budget,
        depth: usize,
    ) -> Result<Step, RecursorError> {
        let key = flight_key(&deleg.zone, asked, dnssec_ok);
        self.flights
            .run(
                key,
                self.query_zone_alone(deleg, asked, dnssec_ok, budget, depth),
            )
            .await
    }

    async fn query_zone_alone(
        &self,
        deleg: &Delegation,
        asked: &Question,
        dnssec_ok: bool,
        budget: &Budget,
        depth: usize,
    ) -> Result<Step, RecursorError> {
        let now = Instant::now();
        let mut known: Vec<IpAddr> = Vec::with_capacity(2 * deleg.servers.len());
        let mut missing: Vec<&Name> = Vec::new();
        let mut add = |addrs: &[IpAddr]| {
            for &ip in addrs {
                if self.usable(ip) && !known.contains(&ip) {
                    known.push(ip);
                }
            }
        };
        for ns in &deleg.servers {
            if !ns.glue.is_empty() {
                add(&ns.glue);
            } else if !self.deleg.with_addresses(&ns.name, now, &mut add) {
                missing.push(&ns.name);
            }
        }
        let mut tried: Vec<IpAddr> = Vec::with_capacity(known.len());
        if let Some(step) = self
            .try_addrs(&known, &mut tried, deleg, asked, dnssec_ok, budget)
            .await?
        {
            return Ok(step);
        }
        // Glueless: look up the names without addresses, one at a time, until a server answers.
        // A name inside the zone itself without glue would need this very zone: skipped.
        let mut lookups = 0;
        for name in missing {
            if lookups >= MAX_NS_LOOKUPS_PER_DELEGATION || depth >= MAX_LOOKUP_DEPTH {
                break;
            }
            if name.is_subdomain_of(&deleg.zone) {
                continue;
            }
            lookups += 1;
            budget.ns_lookup()?;
            let addrs = self.ns_addresses(name, budget, depth + 1).await?;
            if let Some(step) = self
                .try_addrs(&addrs, &mut tried, deleg, asked, dnssec_ok, budget)
                .await?
            {
                return Ok(step);
            }
        }
        Err(RecursorError::NoServer {
            zone: deleg.zone.clone(),
        })
    }

    /// Tries `addrs` (in server order, skipping those in `tried`); None when none was of use.
    async fn try_addrs(
        &self,
        addrs: &[IpAddr],
        tried: &mut Vec<IpAddr>,
        deleg: &Delegation,
        asked: &Question,
        dnssec_ok: bool,
        budget: &Budget,
    ) -> Result<Option<Step>, RecursorError> {
        let order = self.servers.order(addrs, &deleg.zone, Instant::now());
        for ip in order {
            if tried.contains(&ip) {
                continue;
            }
            tried.push(ip);
            budget.query()?;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let plan = self.servers.plan(ip, Instant::now());
            let opts = AskOptions {
                dnssec_ok,
                edns: !plan.no_edns,
                case: self.case_randomization && !plan.no_case,
                timeout: plan.timeout,
            };
            let timeout = opts.timeout;
            let server = SocketAddr::new(ip, self.port);
            match ask(server, asked, opts).await {
                Ok(ex) => {
                    let now = Instant::now();
                    self.servers.answered(ip, ex.rtt, now);
                    if !ex.edns {
                        self.servers.set_no_edns(ip, now);
                    }
                    if !ex.case_kept {
                        debug!(%server, "server does not keep case: no 0x20 from now on");
                        self.servers.set_no_case(ip, now);
                    }
                    match classify(ex.msg, &deleg.zone, asked) {
                        Step::Lame(why) => {
                            debug!(%server, zone = %deleg.zone, ?why, "lame server");
                            self.servers.lame(ip, &deleg.zone, now);
                        }
                        Step::Unusable(e) => return Err(RecursorError::Unusable(e)),
                        step => return Ok(Some(step)),
                    }
                }
                Err(UpstreamError::Timeout(waited)) => {
                    debug!(%server, ?waited, "server timed out");
                    self.servers.timed_out(ip, waited, Instant::now());
                }
                Err(e @ (UpstreamError::Connect { .. } | UpstreamError::Io(_))) => {
                    debug!(%server, error = %e, "server unreachable");
                    self.servers.timed_out(ip, timeout, Instant::now());
                }
                Err(e) => {
                    debug!(%server, error = %e, "bad answer");
                    self.servers.lame(ip, &deleg.zone, Instant::now());
                }
            }
        }
        Ok(None)
    }

    /// The addresses of name server `name`, resolved (A, then AAAA when IPv6 is on and the name
    /// exists without an A record) and remembered; empty when it has none. Only a reached limit
    /// is an error.
    async fn ns_addresses(
        &self,
        name: &Name,
        budget: &Budget,
        depth: usize,
    ) -> Result<Vec<IpAddr>, RecursorError> {
        let now = Instant::now();
        if let Some(a) = self.deleg.addresses(name, now) {
            return Ok(a);
        }
        let mut found: Vec<IpAddr> = Vec::new();
        let mut min_ttl = u32::MAX;
        let types: &[RType] = if self.ipv6 {
            &[RType::A, RType::AAAA]
        } else {
            &[RType::A]
        };
        for &qtype in types {
            if !found.is_empty() {
                break;
            }
            if !budget.enter(name, qtype) {
                continue;
            }
            let q = Question::new(name.clone(), qtype);
            let result = self.resolve_in(&q, false, budget, depth).await;
            budget.leave(name, qtype);
            match result {
                // No such name: no AAAA either.
                Ok(msg) if msg.rcode() == Rcode::NXDOMAIN => break,
                Ok(msg) => {
                    for r in &msg.answers {
                        let ip = match r.data {
                            RData::A(a) => IpAddr::V4(a),
                            RData::Aaaa(a) => IpAddr::V6(a),
                            _ => continue,
                        };
                        min_ttl = min_ttl.min(r.ttl);
                        if self.usable(ip) && !found.contains(&ip) {
                            found.push(ip);
                        }
                    }
                }
                Err(RecursorError::Limit(l)) => return Err(RecursorError::Limit(l)),
                Err(e) => debug!(ns = %name, error = %e, "name server address lookup failed"),
            }
        }
        let keep = if found.is_empty() {
            FAILED_LOOKUP_TTL
        } else {
            ttl(min_ttl)
        };
        self.deleg
            .set_addresses(name, found.clone(), keep, Instant::now());
        Ok(found)
    }

    /// The root's NS set: asked of the hint servers (priming, RFC 8109) and stored for its TTL;
    /// when no hint server answers, the hints themselves stand in for [`PRIME_RETRY`].
    pub async fn prime(&self, budget: &Budget) -> Result<Arc<Delegation>, RecursorError> {
        let now = Instant::now();
        let hinted = Delegation {
            zone: Name::root(),
            servers: self
                .hints
                .servers
                .iter()
                .map(|s| NsServer {
                    name: s.name.clone(),
                    glue: s.addrs.clone(),
                })
                .collect(),
            expires: now + PRIME_RETRY,
        };
        let addrs: Vec<IpAddr> = hinted
            .servers
            .iter()
            .flat_map(|s| s.glue.iter().copied())
            .filter(|ip| self.ipv6 || ip.is_ipv4())
            .collect();
        let q = Question::new(Name::root(), RType::NS);
        let order = self.servers.order(&addrs, &Name::root(), now);
        for ip in order.into_iter().take(4) {
            budget.query()?;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let timeout = self.servers.timeout(ip, Instant::now());
            // The root's name has no letters: nothing to randomise.
            let opts = AskOptions {
                dnssec_ok: false,
                edns: true,
                case: false,
                timeout,
            };
            match ask(SocketAddr::new(ip, self.port), &q, opts).await {
                Ok(ex) => {
                    self.servers.answered(ip, ex.rtt, Instant::now());
                    if let Some(d) = primed(&ex.msg, |ip| self.usable(ip)) {
                        debug!(servers = d.servers.len(), "root primed");
                        return Ok(self.deleg.insert_if_absent(d, Instant::now()));
                    }
                    self.servers.lame(ip, &Name::root(), Instant::now());
                }
                Err(e) => {
                    debug!(%ip, error = %e, "priming query failed");
                    self.servers.timed_out(ip, timeout, Instant::now());
                }
            }
        }
        Ok(self.deleg.insert_if_absent(hinted, now))
    }
}

/// The root delegation from a priming response: the root's NS records with the addresses of their
/// names from the additional section (all inside the root's bailiwick).
fn primed(msg: &Message, usable: impl Fn(IpAddr) -> bool) -> Option<Delegation> {
    if msg.rcode() != Rcode::NOERROR || !msg.header.authoritative {
        return None;
    }
    let mut min_ttl = u32::MAX;
    let mut servers: Vec<NsServer> = Vec::new();
    for r in &msg.answers {
        if let RData::Ns(name) = &r.data {
            if r.name.is_root() && !servers.iter().any(|s| s.name.eq_ignore_case(name)) {
                min_ttl = min_ttl.min(r.ttl);
                servers.push(NsServer {
                    name: name.clone(),
                    glue: Vec::new(),
                });
            }
        }
    }
    for r in &msg.additional {
        let ip = match r.data {
            RData::A(a) => IpAddr::V4(a),
            RData::Aaaa(a) => IpAddr::V6(a),
            _ => continue,
        };
        if let Some(s) = servers.iter_mut().find(|s| s.name.eq_ignore_case(&r.name)) {
            if usable(ip) && !s.glue.contains(&ip) && s.glue.len() < 8 {
                s.glue.push(ip);
            }
        }
    }
    if !servers.iter().any(|s| !s.glue.is_empty()) {
        return None;
    }
    Some(Delegation {
        zone: Name::root(),
        servers,
        expires: Instant::now() + ttl(min_ttl),
    })
}

/// The name the CNAME chain from `name` in `answers` ends at (`name` itself without one).
fn chain_end(answers: &[Record], name: &Name, qtype: RType) -> Name {
    let mut cur = name.clone();
    if qtype == RType::CNAME {
        return cur;
    }
    for _ in 0..=MAX_CNAME_CHAIN {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::Cname(t) if r.name.eq_ignore_case(&cur) => Some(t.clone()),
            _ => None,
        });
        match next {
            Some(t) => cur = t,
            None => break,
        }
    }
    cur
}

/// Which name to ask next (RFC 9156 section 2.3).
#[derive(Debug)]
struct Minimiser {
    target: usize,
    /// Labels of the deepest name known to be no cut (or the current zone).
    known: usize,
    steps: usize,
    off: bool,
}

impl Minimiser {
    fn new(target: usize, zone: usize) -> Minimiser {
        Minimiser {
            target,
            known: zone,
            steps: 0,
            off: false,
        }
    }

    fn next(&mut self, q: &Question) -> Question {
        if self.off || self.known + 1 >= self.target {
            return q.clone();
        }
        let labels = if self.steps < MINIMISE_ONE_LAB {
            self.known + 1
        } else {
            let left = MAX_MINIMISE_COUNT.saturating_sub(self.steps);
            if left <= 1 {
                self.target
            } else {
                self.known + ((self.target - self.known) / left).max(1)
            }
        };
        self.steps += 1;
        if labels >= self.target {
            return q.clone();
        }
        Question::new(q.name.trim_to(labels), RType::A)
    }

    fn at_zone(&mut self, labels: usize) {
        self.known = self.known.max(labels);
    }

    fn give_up(&mut self) {
        self.off = true;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use super::super::hints::HintServer;
    use super::super::limits::{MAX_QUERY_TIME, MAX_UPSTREAM_QUERIES};
    use std::net::{Ipv4Addr, UdpSocket};

    /// UDP sockets on 127.0.0.2 and up, all on one port; each answers REFUSED when `refuse`, or
    /// never. Returns the port, the sockets' answering task handles and the hints naming them.
    fn servers(count: u8, refuse: bool) -> (u16, Vec<std::thread::JoinHandle<()>>, RootHints) {
        let first = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut socks = vec![first];
        for i in 3..2 + count {
            socks.push(UdpSocket::bind((Ipv4Addr::new(127, 0, 0, i), port)).unwrap());
        }
        let mut threads = Vec::new();
        let mut hints = Vec::new();
        for (i, sock) in socks.into_iter().enumerate() {
            hints.push(HintServer {
                name: format!("s{i}.roots").parse().unwrap(),
                addrs: vec![sock.local_addr().unwrap().ip()],
            });
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if !refuse {
                        continue;
                    }
                    let Ok(q) = Message::parse(&buf[..n]) else {
                        continue;
                    };
                    let mut r = Message::response_to(&q);
                    r.set_rcode(Rcode::REFUSED);
                    let _ = sock.send_to(&r.encode().unwrap(), from);
                }
            }));
        }
        let hints = RootHints {
            servers: hints,
            embedded: false,
        };
        (port, threads, hints)
    }

    #[tokio::test(start_paused = true)]
    async fn a_query_stops_at_its_time_limit() {
        // 40 silent servers at 400 ms each take longer than the limit.
        let (port, _threads, hints) = servers(40, false);
        let r = Resolver::new(hints, port, false);
        let started = Instant::now();
        let q = Question::new("www.example".parse().unwrap(), RType::A);
        let e = r.resolve(&q, false).await.unwrap_err();
        assert!(matches!(e, RecursorError::Limit(Limit::Time)), "{e}");
        assert_eq!(started.elapsed(), MAX_QUERY_TIME);
    }

    #[tokio::test]
    async fn a_query_stops_at_its_upstream_query_limit() {
        // Servers that all refuse, and a query that has already spent most of its budget (one
        // zone has at most MAX_NS_PER_ZONE servers, fewer than the cap): the walk ends at the cap.
        let (port, _threads, hints) = servers(32, true);
        let r = Resolver::new(hints, port, false);
        let budget = Budget::new(Instant::now());
        let spent = MAX_UPSTREAM_QUERIES - 10;
        for _ in 0..spent {
            budget.query().unwrap();
        }
        let q = Question::new("www.example".parse().unwrap(), RType::A);
        let e = r.resolve_in(&q, false, &budget, 0).await.unwrap_err();
        let sent = r.sent.load(Ordering::Relaxed);
        assert!(
            matches!(e, RecursorError::Limit(Limit::UpstreamQueries)),
            "{e} after {sent}"
        );
        assert_eq!(sent, 10);
    }

    #[test]
    fn minimisation_adds_one_label_then_more_within_its_count() {
        let name: Name = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.example"
            .parse()
            .unwrap();
        let q = Question::new(name.clone(), RType::AAAA);
        let mut m = Minimiser::new(name.label_count(), 0);
        let mut asked = Vec::new();
        loop {
            let next = m.next(&q);
            if next == q {
                break;
            }
            assert_eq!(next.qtype, RType::A);
            m.at_zone(next.name.label_count());
            asked.push(next.name.label_count());
        }
        assert_eq!(&asked[..4], &[1, 2, 3, 4]);
        assert!(asked.len() < MAX_MINIMISE_COUNT, "{asked:?}");
        assert!(asked.windows(2).all(|w| w[0] < w[1]));
        // Giving up asks the full name at once.
        let mut m = Minimiser::new(name.label_count(), 0);
        m.give_up();
        assert_eq!(m.next(&q), q);
        // A name one label below the zone is asked in full.
        let mut m = Minimiser::new(2, 1);
        assert_eq!(m.next(&q), q);
    }

    #[test]
    fn a_chain_is_followed_to_its_end() {
        let rec = |l: &str| crate::wire::parse_record_line(l, 60).unwrap();
        let answers = vec![
            rec("b.test CNAME c.test"),
            rec("a.test CNAME b.test"),
            rec("c.test A 192.0.2.1"),
        ];
        let a: Name = "A.test".parse().unwrap();
        assert_eq!(
            chain_end(&answers, &a, RType::A),
            "c.test".parse::<Name>().unwrap()
        );
        assert_eq!(chain_end(&answers, &a, RType::CNAME), a);
    }

    #[test]
    fn priming_takes_the_roots_ns_set_with_its_addresses() {
        let rec = |l: &str| crate::wire::parse_record_line(l, 60).unwrap();
        let mut m = Message::response_to(&Message::query(Name::root(), RType::NS));
        m.header.authoritative = true;
        m.answers = vec![rec(". 518400 NS a.root."), rec(". 518400 NS b.root.")];
        m.additional = vec![rec("a.root. A 127.0.0.2"), rec("b.root. A 198.41.0.4")];
        let d = primed(&m, |ip| !dont_query(ip)).unwrap();
        assert_eq!(d.servers.len(), 2);
        assert!(
            d.servers[0].glue.is_empty(),
            "loopback refused under caution"
        );
        assert_eq!(d.servers[1].glue.len(), 1);
        m.header.authoritative = false;
        assert!(primed(&m, |_| true).is_none());
    }
}
