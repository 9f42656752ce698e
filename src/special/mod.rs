//! Special-use names answered here, never forwarded: the loopback names, the reverse zones of
//! private and special addresses, and the top-level names no public server has anything for.
//!
//! ```text
//!   Request --name in a special zone?--yes--> synthesised answer, NXDOMAIN or NODATA --> client
//!                                      \--no--> next handler (forwarding rules)
//! ```
//!
//! Why: with an encrypted public upstream, every such query would tell that resolver which local
//! names and private addresses this network uses, and could only come back negative (or, for
//! `localhost`, wrong). RFC 6761 asks caching servers to answer `localhost` names with loopback
//! addresses (section 6.3) and `invalid` names with NXDOMAIN (section 6.4); RFC 6303 lists the
//! reverse zones of private and special addresses that every resolver should serve itself, empty;
//! RFC 7686 (`onion`) and RFC 8375 (`home.arpa`) ask the same. The set is unbound's default local
//! zones, less `test.` (this project's own tests use `.test` zones on local servers), plus three
//! kinds of name a laptop leaks otherwise:
//!
//! - `local` and every name below it: multicast DNS names (RFC 6762 section 22.1 asks caching
//!   servers to answer them negatively at once, never to send them to unicast DNS servers). Only
//!   an mDNS responder (avahi, systemd-resolved) can answer them; `printer.local` sent to a public
//!   resolver tells it what is on this network and can only come back NXDOMAIN.
//! - `use-application-dns.net`: Mozilla's canary name. NXDOMAIN for it tells Firefox not to turn
//!   on its own DNS-over-HTTPS, so it keeps using the system resolver, which is this one, with its
//!   local names, rules and cache.
//! - Single-label names (`printer`, `wpad`, `nas`): what a program asks when a search list did
//!   not qualify a name. No public server has an address for them, and `wpad` answered by the
//!   wrong party is a proxy hijack. They are answered NXDOMAIN here, except the DNS
//!   infrastructure types of a top-level domain (SOA, NS, DS, DNSKEY and the DNSSEC records): `com
//!   DS` is a real question a validator asks, and its answer is public. A forwarding rule whose
//!   domain is the name (a rule for `lan` or `corp`) or contains it (a rule for the root) sends the
//!   name there instead, and the hosts stage (before this one) still answers `printer` from
//!   /etc/hosts. `hosts.single_label = false` passes them on.
//!
//! A forwarding rule wins: a zone that a rule's domain equals or contains is left out, and a name at
//! or below a rule's domain inside a zone is passed on, so `168.192.in-addr.arpa` forwarded to the
//! router (the example the forwarding rules exist for) reaches the router, and a VPN's rule for
//! `1.10.in-addr.arpa` takes those names while the rest of 10/8 stays here. The hosts stage runs
//! before this one, so /etc/hosts entries (`localhost`, `1.0.0.127.in-addr.arpa`) keep their
//! addresses. `hosts.special_use = false` turns the stage off.
//!
//! Answers: NOERROR or NXDOMAIN with AA=0 and RA=1, like the hosts stage; negative ones carry the
//! zone's synthetic SOA (`localhost. nobody.invalid.`, as unbound's) in the authority section. TTLs
//! are 0, as for hosts-file answers: nothing is cached (here or downstream), so a name added to
//! /etc/hosts later, or a forwarding rule added before a restart that restores the cache, takes
//! effect at once; answering here again costs less than an upstream query would.
//!
//! Limitations: only class IN; zone apexes have an SOA but no NS record; no DNSSEC proofs (a DO=1
//! client gets the same unsigned answer, as from unbound's local zones).

use std::net::{Ipv4Addr, Ipv6Addr};

use tracing::debug;

use crate::handler::{
    local_answer, Answer, BoxFuture, Handler, HandlerError, HandlerResult, Next, Request, Verdict,
};
use crate::wire::{Class, Message, Name, RData, RType, Rcode, Record, Soa};

/// TTL of synthesised records and of the SOA (also its minimum, the negative TTL): see the module
/// docs.
pub const TTL: u32 = 0;

/// What a zone answers.
#[derive(Clone, Debug)]
enum Kind {
    /// `localhost` and every name below it: A 127.0.0.1 and AAAA ::1 (RFC 6761 section 6.3).
    Loopback,
    /// Only its SOA and, with `ptr`, PTR `localhost.` at that name (a loopback address's reverse
    /// name). The apex, `ptr` and the names between them exist; any other name below is NXDOMAIN.
    Static { ptr: Option<Name> },
    /// Nothing exists, not even the apex: NXDOMAIN for every name (Mozilla's canary).
    Nonexistent,
}

/// One special zone.
#[derive(Clone, Debug)]
struct Zone {
    apex: Name,
    kind: Kind,
}

/// The zones served when nothing overrides them.
fn default_zones() -> Vec<Zone> {
    let empty = |apex: &str| {
        Some(Zone {
            apex: apex.parse().ok()?,
            kind: Kind::Static { ptr: None },
        })
    };
    let v4_loopback = Name::reverse_of(Ipv4Addr::LOCALHOST.into());
    let v6_loopback = Name::reverse_of(Ipv6Addr::LOCALHOST.into());
    let mut zones: Vec<Option<Zone>> = vec![
        empty("localhost").map(|z| Zone {
            kind: Kind::Loopback,
            ..z
        }),
        Some(Zone {
            apex: v4_loopback.trim_to(3),
            kind: Kind::Static {
                ptr: Some(v4_loopback),
            },
        }),
        Some(Zone {
            apex: v6_loopback.clone(),
            kind: Kind::Static {
                ptr: Some(v6_loopback),
            },
        }),
        // RFC 6761 section 6.4, RFC 7686, RFC 8375.
        empty("invalid"),
        empty("onion"),
        empty("home.arpa"),
        // RFC 6762 section 22.1: multicast DNS names.
        empty("local"),
        // Mozilla's DoH canary: NXDOMAIN keeps Firefox on the system resolver.
        empty("use-application-dns.net").map(|z| Zone {
            kind: Kind::Nonexistent,
            ..z
        }),
        // RFC 6303 section 4: private (RFC 1918), "this network", link-local, documentation,
        // broadcast; ::, unique local, link-local, documentation.
        empty("10.in-addr.arpa"),
        empty("168.192.in-addr.arpa"),
        empty("0.in-addr.arpa"),
        empty("254.169.in-addr.arpa"),
        empty("2.0.192.in-addr.arpa"),
        empty("100.51.198.in-addr.arpa"),
        empty("113.0.203.in-addr.arpa"),
        empty("255.255.255.255.in-addr.arpa"),
        Some(Zone {
            apex: Name::reverse_of(Ipv6Addr::UNSPECIFIED.into()),
            kind: Kind::Static { ptr: None },
        }),
        empty("d.f.ip6.arpa"),
        empty("8.e.f.ip6.arpa"),
        empty("9.e.f.ip6.arpa"),
        empty("a.e.f.ip6.arpa"),
        empty("b.e.f.ip6.arpa"),
        empty("8.b.d.0.1.0.0.2.ip6.arpa"),
    ];
    // 172.16.0.0/12 (RFC 1918) and the shared address space 100.64.0.0/10 (RFC 7793).
    zones.extend((16..32).map(|n| empty(&format!("{n}.172.in-addr.arpa"))));
    zones.extend((64..128).map(|n| empty(&format!("{n}.100.in-addr.arpa"))));
    // Every entry is a valid name (a test checks that none is lost).
    zones.into_iter().flatten().collect()
}

/// The special-use names stage.
pub struct SpecialNames {
    zones: Vec<Zone>,
    /// The top-level domains of `zones` (`localhost`, `arpa`, ...): a name under none of them, as
    /// nearly every name asked is, is passed on after these few comparisons.
    tops: Vec<Name>,
    /// Forwarding rules' domains inside a served zone: names at or below them are passed on.
    carved_out: Vec<Name>,
    /// Whether single-label names are answered here (see the module docs).
    single_label: bool,
    /// Forwarding rules' domains: a single-label name at or below one of them is passed on.
    forwarded: Vec<Name>,
    /// Search domains: a single-label name is looked up below each, in order (`hosts.search`).
    search: Vec<Name>,
    soa: Soa,
    localhost: Name,
}

/// Types a single-label name is still asked upstream for: a top-level domain's public zone data,
/// which validators and diagnostics ask for.
const TLD_INFRASTRUCTURE: [RType; 10] = [
    RType::SOA,
    RType::NS,
    RType::DS,
    RType::DNSKEY,
    RType::RRSIG,
    RType::NSEC,
    RType::NSEC3,
    RType::NSEC3PARAM,
    RType::CDS,
    RType::CDNSKEY,
];

impl SpecialNames {
    /// The default zones, less every zone that one of `forwarded` (a forwarding rule's domains)
    /// equals or contains; a rule's domain inside a zone carves its names out of it. Either way
    /// those names go where the rule sends them. Single-label names are answered too.
    pub fn new(forwarded: &[Name]) -> SpecialNames {
        SpecialNames::with_single_label(forwarded, true)
    }

    /// [`SpecialNames::new`], with single-label names answered here only if `single_label`.
    pub fn with_single_label(forwarded: &[Name], single_label: bool) -> SpecialNames {
        let zones: Vec<Zone> = default_zones()
            .into_iter()
            .filter(|z| {
                let overridden = forwarded.iter().any(|d| z.apex.is_subdomain_of(d));
                if overridden {
                    debug!(zone = %z.apex, "special-use zone left to a forwarding rule");
                }
                !overridden
            })
            .collect();
        let carved_out = forwarded
            .iter()
            .filter(|d| zones.iter().any(|z| d.is_subdomain_of(&z.apex)))
            .cloned()
            .collect();
        let mut tops: Vec<Name> = Vec::new();
        for z in &zones {
            let top = z.apex.trim_to(1);
            if !tops.iter().any(|t| t.eq_ignore_case(&top)) {
                tops.push(top);
            }
        }
        let name = |s: &str| s.parse().unwrap_or_else(|_| Name::root());
        SpecialNames {
            zones,
            tops,
            carved_out,
            single_label,
            forwarded: forwarded.to_vec(),
            search: Vec::new(),
            soa: Soa {
                mname: name("localhost"),
                rname: name("nobody.invalid"),
                serial: 1,
                refresh: 3600,
                retry: 1200,
                expire: 604_800,
                minimum: TTL,
            },
            localhost: name("localhost"),
        }
    }

    /// With these search domains, a single-label name (`printer`) is looked up as `printer.DOMAIN`
    /// through the stages after this one, each domain in order, and the first that exists answers
    /// with a CNAME from the name to it; only when none does is the name NXDOMAIN.
    pub fn with_search(mut self, search: Vec<Name>) -> SpecialNames {
        self.search = search;
        self
    }

    /// Zones served.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// True when no zone is served.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The response for a query, or `None` to pass it on.
    fn answer(&self, query: &Message) -> Option<Message> {
        let q = query.question()?;
        if q.qclass != Class::IN || query.questions.len() != 1 || !query.is_query_opcode() {
            return None;
        }
        if q.name.label_count() == 1 && self.single_label {
            if let Some(response) = self.single_label_answer(query, &q.name, q.qtype) {
                return Some(response);
            }
        }
        if !self.tops.iter().any(|t| q.name.is_subdomain_of(t)) {
            return None;
        }
        let z = self
            .zones
            .iter()
            .find(|z| q.name.is_subdomain_of(&z.apex))?;
        if self.carved_out.iter().any(|d| q.name.is_subdomain_of(d)) {
            return None;
        }
        let at_apex = q.name.label_count() == z.apex.label_count();
        let mut response = Message::response_to(query);
        response.header.authoritative = false;
        let soa = Record::new(z.apex.clone(), TTL, RData::Soa(self.soa.clone()));
        let wants = |t: RType| q.qtype == t || q.qtype == RType::ANY;
        let mut answers = Vec::new();
        let exists = match &z.kind {
            Kind::Loopback => {
                if wants(RType::A) {
                    answers.push(RData::A(Ipv4Addr::LOCALHOST));
                }
                if wants(RType::AAAA) {
                    answers.push(RData::Aaaa(Ipv6Addr::LOCALHOST));
                }
                true
            }
            Kind::Static { ptr } => {
                let ptr = ptr.as_ref();
                if ptr.is_some_and(|p| q.name.eq_ignore_case(p)) && wants(RType::PTR) {
                    answers.push(RData::Ptr(self.localhost.clone()));
                }
                // The names between the apex and the PTR's exist (empty non-terminals, RFC 8020:
                // an NXDOMAIN there would deny the name below).
                at_apex || ptr.is_some_and(|p| p.is_subdomain_of(&q.name))
            }
            Kind::Nonexistent => false,
        };
        if at_apex && wants(RType::SOA) {
            response.answers.push(soa.clone());
        }
        response.answers.extend(
            answers
                .into_iter()
                .map(|data| Record::new(q.name.clone(), TTL, data)),
        );
        if !exists {
            response.set_rcode(Rcode::NXDOMAIN);
        }
        if response.answers.is_empty() {
            response.authority.push(soa);
        }
        Some(response)
    }

    /// NXDOMAIN for a single-label `name`, unless a zone of ours, a forwarding rule or the type
    /// (a top-level domain's zone data) says otherwise. The negative answer carries an SOA at the
    /// root, the closest zone that surely exists, with a TTL of 0 like every answer here.
    fn single_label_answer(&self, query: &Message, name: &Name, qtype: RType) -> Option<Message> {
        if TLD_INFRASTRUCTURE.contains(&qtype)
            || self.zones.iter().any(|z| name.is_subdomain_of(&z.apex))
            || self.forwarded.iter().any(|d| name.is_subdomain_of(d))
        {
            return None;
        }
        let mut response = Message::response_to(query);
        response.header.authoritative = false;
        response.set_rcode(Rcode::NXDOMAIN);
        response
            .authority
            .push(Record::new(Name::root(), TTL, RData::Soa(self.soa.clone())));
        Some(response)
    }
}

impl SpecialNames {
    /// The single-label `name` looked up below each search domain through `next`: the first
    /// answer that is not NXDOMAIN, with a CNAME from `name` to the qualified name in front (TTL
    /// 0); `None` when no domain has it (or the answers cannot be used).
    async fn search_below(&self, req: &Request, next: Next<'_>) -> Option<HandlerResult> {
        let q = req.query.question()?;
        for domain in &self.search {
            let Ok(qualified) = domain.prepend(q.name.labels().next()?) else {
                continue;
            };
            let mut query = req.query.clone();
            query.questions[0].name = qualified.clone();
            let sub = Request {
                query,
                client: req.client,
                protocol: req.protocol,
            };
            // The qualified name may be special itself (`printer.local`): answered here then.
            let result = match self.answer(&sub.query) {
                Some(local) => local_answer(&local),
                None => next.run(&sub).await,
            };
            let answer = match result {
                Ok(a) if a.rcode() != Rcode::NXDOMAIN => a,
                Ok(_) => continue,
                Err(e) => return Some(Err(e)),
            };
            let Ok(found) = answer.message() else {
                continue;
            };
            let mut response = Message::response_to(&req.query);
            response.set_rcode(found.rcode());
            response.header.authentic_data = false;
            response.answers.push(Record::new(
                q.name.clone(),
                TTL,
                RData::Cname(qualified.clone()),
            ));
            response.answers.extend(found.answers);
            response.authority = found.authority;
            debug!(name = %q.name, as_name = %qualified, "single-label name found below a search domain");
            return Some(
                Answer::from_message(&response, answer.origin(), Verdict::Unchecked)
                    .map(|a| match answer.upstream() {
                        Some(u) => a.with_upstream(u.into()),
                        None => a,
                    })
                    .map_err(HandlerError::internal),
            );
        }
        None
    }

    async fn resolve(&self, req: &Request, next: Next<'_>) -> HandlerResult {
        let searchable = !self.search.is_empty()
            && req.query.question().is_some_and(|q| {
                q.name.label_count() == 1
                    && self.single_label
                    && self
                        .single_label_answer(&req.query, &q.name, q.qtype)
                        .is_some()
            });
        if searchable {
            if let Some(found) = self.search_below(req, next).await {
                return found;
            }
        }
        match self.answer(&req.query) {
            Some(response) => {
                debug!(rcode = %response.rcode(), "answered as a special-use name");
                local_answer(&response)
            }
            None => next.run(req).await,
        }
    }
}

impl Handler for SpecialNames {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        if self.search.is_empty() {
            // The common case stays free of an async block.
            return match self.answer(&req.query) {
                Some(response) => {
                    debug!(rcode = %response.rcode(), "answered as a special-use name");
                    Box::pin(std::future::ready(local_answer(&response)))
                }
                None => next.run(req),
            };
        }
        Box::pin(self.resolve(req, next))
    }

    fn name(&self) -> &'static str {
        "special-use"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn ask(s: &SpecialNames, name: &str, qtype: RType) -> Option<Message> {
        s.answer(&Message::query(n(name), qtype))
    }

    fn data(m: &Message) -> Vec<RData> {
        m.answers.iter().map(|r| r.data.clone()).collect()
    }

    #[test]
    fn localhost_names_are_loopback() {
        let s = SpecialNames::new(&[]);
        for name in [
            "localhost",
            "LocalHost",
            "printer.localhost",
            "a.b.localhost",
        ] {
            let m = ask(&s, name, RType::A).unwrap();
            assert_eq!(m.rcode(), Rcode::NOERROR);
            assert_eq!(data(&m), [RData::A(Ipv4Addr::LOCALHOST)], "{name}");
            assert_eq!(m.answers[0].name, n(name));
            assert!(!m.header.authoritative && m.header.recursion_available);
            let m = ask(&s, name, RType::AAAA).unwrap();
            assert_eq!(data(&m), [RData::Aaaa(Ipv6Addr::LOCALHOST)]);
            // Other types: NODATA with the SOA, so that it is cached (RFC 2308).
            let m = ask(&s, name, RType::MX).unwrap();
            assert_eq!(m.rcode(), Rcode::NOERROR);
            assert!(m.answers.is_empty());
            assert_eq!(m.authority[0].rtype(), RType::SOA);
            assert_eq!(m.authority[0].name, n("localhost"));
        }
        // ANY at the apex: the addresses and the SOA; below it, the addresses.
        let types = |m: Message| m.answers.iter().map(|r| r.rtype()).collect::<Vec<_>>();
        let any = types(ask(&s, "localhost", RType::ANY).unwrap());
        assert_eq!(any, [RType::SOA, RType::A, RType::AAAA]);
        let any = types(ask(&s, "x.localhost", RType::ANY).unwrap());
        assert_eq!(any, [RType::A, RType::AAAA]);
        // Not a subdomain on a label boundary.
        assert!(ask(&s, "notlocalhost.example", RType::A).is_none());
        assert!(ask(&s, "localhost.example.com", RType::A).is_none());
    }

    #[test]
    fn loopback_reverse_names_point_at_localhost() {
        let s = SpecialNames::new(&[]);
        let m = ask(&s, "1.0.0.127.in-addr.arpa", RType::PTR).unwrap();
        assert_eq!(data(&m), [RData::Ptr(n("localhost"))]);
        let v6 = format!("1{}.ip6.arpa", ".0".repeat(31));
        let m = ask(&s, &v6, RType::PTR).unwrap();
        assert_eq!(data(&m), [RData::Ptr(n("localhost"))]);
        // Below ::1's name nothing exists.
        let below = ask(&s, &format!("x.{v6}"), RType::PTR).unwrap();
        assert_eq!(below.rcode(), Rcode::NXDOMAIN);
        // Another loopback address has no name.
        let m = ask(&s, "2.0.0.127.in-addr.arpa", RType::PTR).unwrap();
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert_eq!(m.authority[0].name, n("127.in-addr.arpa"));
        // The names above 1.0.0.127 exist, empty.
        for name in [
            "127.in-addr.arpa",
            "0.127.in-addr.arpa",
            "0.0.127.in-addr.arpa",
        ] {
            let m = ask(&s, name, RType::PTR).unwrap();
            assert_eq!((m.rcode(), m.answers.len()), (Rcode::NOERROR, 0), "{name}");
        }
        assert_eq!(
            ask(&s, "1.1.0.0.127.in-addr.arpa", RType::PTR)
                .unwrap()
                .rcode(),
            Rcode::NXDOMAIN
        );
    }

    #[test]
    fn private_reverse_zones_and_special_domains_are_empty() {
        let s = SpecialNames::new(&[]);
        for name in [
            "1.1.168.192.in-addr.arpa",
            "4.3.2.10.in-addr.arpa",
            "1.0.16.172.in-addr.arpa",
            "1.0.31.172.in-addr.arpa",
            "1.0.64.100.in-addr.arpa",
            "1.1.254.169.in-addr.arpa",
            "x.invalid",
            "invalid",
            "abc.onion",
            "printer.home.arpa",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        ] {
            let m = ask(&s, name, RType::PTR).unwrap();
            let apex = &m.authority[0].name;
            let want = if name == apex.to_string().trim_end_matches('.') {
                Rcode::NOERROR
            } else {
                Rcode::NXDOMAIN
            };
            assert_eq!(m.rcode(), want, "{name}");
            assert!(m.answers.is_empty());
            assert!(n(name).is_subdomain_of(apex));
            let RData::Soa(soa) = &m.authority[0].data else {
                panic!("SOA expected")
            };
            assert_eq!(soa.minimum, TTL);
        }
        // The apex answers its SOA.
        let m = ask(&s, "10.in-addr.arpa", RType::SOA).unwrap();
        assert_eq!((m.rcode(), m.answers.len()), (Rcode::NOERROR, 1));
        // Public space is not special: 172.15 and 172.32 are outside 172.16/12, 100.63 and
        // 100.128 outside 100.64/10.
        for name in [
            "1.0.15.172.in-addr.arpa",
            "1.0.32.172.in-addr.arpa",
            "1.0.63.100.in-addr.arpa",
            "1.0.128.100.in-addr.arpa",
            "8.8.8.8.in-addr.arpa",
            "www.example.com",
            "notlocal.example",
        ] {
            assert!(ask(&s, name, RType::PTR).is_none(), "{name}");
        }
        // Only class IN.
        let mut ch = Message::query(n("localhost"), RType::TXT);
        ch.questions[0].qclass = Class::CH;
        assert!(s.answer(&ch).is_none());
    }

    #[test]
    fn forwarding_rules_win() {
        let s = SpecialNames::new(&[
            n("168.192.in-addr.arpa"),
            n("1.10.in-addr.arpa"),
            n("arpa."),
        ]);
        // Every reverse zone is under a rule for "arpa", so only the others remain.
        assert!(ask(&s, "1.1.168.192.in-addr.arpa", RType::PTR).is_none());
        assert!(ask(&s, "1.1.1.10.in-addr.arpa", RType::PTR).is_none());
        assert!(ask(&s, "1.0.0.127.in-addr.arpa", RType::PTR).is_none());
        assert!(ask(&s, "localhost", RType::A).is_some());
        // A rule inside a zone (a VPN's 10.1/16) takes its own names only; the rest of the zone
        // is still answered here, not sent to the default upstream.
        let s = SpecialNames::new(&[n("1.10.in-addr.arpa")]);
        assert!(ask(&s, "9.9.1.10.in-addr.arpa", RType::PTR).is_none());
        assert!(ask(&s, "1.10.in-addr.arpa", RType::PTR).is_none());
        let m = ask(&s, "9.9.9.10.in-addr.arpa", RType::PTR).unwrap();
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert!(ask(&s, "1.1.168.192.in-addr.arpa", RType::PTR).is_some());
        assert_eq!(SpecialNames::new(&[]).len(), s.len());
        // A rule for a zone itself takes it whole.
        let s = SpecialNames::new(&[n("10.in-addr.arpa")]);
        assert!(ask(&s, "9.9.9.10.in-addr.arpa", RType::PTR).is_none());
        assert_eq!(SpecialNames::new(&[]).len() - s.len(), 1);
    }

    #[test]
    fn every_listed_zone_is_served() {
        // 23 listed one by one, 16 for 172.16/12, 64 for 100.64/10.
        let s = SpecialNames::new(&[]);
        assert_eq!(s.len(), 23 + 16 + 64);
        let tops: Vec<String> = s.tops.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            tops,
            [
                "localhost.",
                "arpa.",
                "invalid.",
                "onion.",
                "local.",
                "net."
            ]
        );
    }

    #[test]
    fn mdns_names_and_the_doh_canary_are_nxdomain() {
        let s = SpecialNames::new(&[]);
        for name in [
            "printer.local",
            "a.b.LOCAL",
            "use-application-dns.net",
            "x.use-application-dns.net",
        ] {
            for qtype in [RType::A, RType::AAAA, RType::SRV, RType::TXT] {
                let m = ask(&s, name, qtype).unwrap();
                assert_eq!(m.rcode(), Rcode::NXDOMAIN, "{name} {qtype}");
                assert!(m.answers.is_empty());
                assert_eq!(m.authority[0].rtype(), RType::SOA);
            }
        }
        // The canary's apex does not exist either; `local` itself is an empty zone apex.
        let m = ask(&s, "use-application-dns.net", RType::SOA).unwrap();
        assert_eq!(m.rcode(), Rcode::NXDOMAIN);
        assert_eq!(ask(&s, "local", RType::A).unwrap().rcode(), Rcode::NOERROR);
        // Other .net names are not ours.
        assert!(ask(&s, "application-dns.net", RType::A).is_none());
        assert!(ask(&s, "www.example.net", RType::A).is_none());
        // A rule for the VPN's `local` domain (some networks misuse it) takes the names.
        let s = SpecialNames::new(&[n("corp.local")]);
        assert!(ask(&s, "fs.corp.local", RType::A).is_none());
        assert!(ask(&s, "printer.local", RType::A).is_some());
    }

    #[test]
    fn single_label_names_are_nxdomain_unless_a_rule_or_the_type_says_otherwise() {
        let s = SpecialNames::new(&[]);
        for name in ["printer", "WPAD", "nas"] {
            for qtype in [RType::A, RType::AAAA, RType::ANY, RType::MX, RType::HTTPS] {
                let m = ask(&s, name, qtype).unwrap();
                assert_eq!(m.rcode(), Rcode::NXDOMAIN, "{name} {qtype}");
                assert!(m.answers.is_empty());
                assert!(m.authority[0].name.is_root());
                assert_eq!(m.authority[0].ttl, TTL);
            }
        }
        // A top-level domain's zone data goes upstream (validators ask `com DS`).
        for qtype in TLD_INFRASTRUCTURE {
            assert!(ask(&s, "com", qtype).is_none(), "{qtype}");
        }
        // Two labels or more, and the root, are not single-label names.
        assert!(ask(&s, "printer.lan", RType::A).is_none());
        assert!(s.answer(&Message::query(Name::root(), RType::A)).is_none());
        // Our own single-label zones keep their answers.
        let m = ask(&s, "localhost", RType::A).unwrap();
        assert_eq!(data(&m), [RData::A(Ipv4Addr::LOCALHOST)]);
        // A rule for the name, or for the root, forwards it.
        let s = SpecialNames::new(&[n("lan")]);
        assert!(ask(&s, "lan", RType::A).is_none());
        assert!(ask(&s, "printer", RType::A).is_some());
        let s = SpecialNames::new(&[Name::root()]);
        assert!(ask(&s, "printer", RType::A).is_none());
        // Turned off: passed on.
        let s = SpecialNames::with_single_label(&[], false);
        assert!(ask(&s, "printer", RType::A).is_none());
        assert!(ask(&s, "printer.local", RType::A).is_some());
    }
}
