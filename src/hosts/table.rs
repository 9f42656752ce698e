//! Lookup tables for hosts-file entries and local records, and the answer logic over both.
//!
//! Answers (for class IN only):
//! - A/AAAA for a name in the hosts file; PTR for the reverse name (RFC 1035 section 3.5,
//!   RFC 3596 section 2.5) of an address in the hosts file, naming the first name of the first line
//!   that lists the address (as glibc does).
//! - A name the hosts file or the local records know, asked for a type they do not hold (AAAA for a
//!   name with only IPv4 addresses, MX, ...), is NOERROR with no answer (NODATA), never a query
//!   upstream: a local name must not leak.
//! - Local records answer by exact name and type; a local CNAME answers every type but CNAME and
//!   ANY with the CNAME, followed by whatever the local data holds for its target (at most
//!   [`MAX_CHAIN`] links).
//! - Unknown names are not answered here (`None`), so the chain goes on.
//!
//! Limitations: no wildcard or subtree matching (a name matches exactly, as in hosts files); a CNAME
//! whose target is not local is returned alone; NODATA carries no SOA, so downstream caches treat
//! it as uncacheable (RFC 2308 section 5).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::parse::HostsLine;
use crate::wire::{Class, LowerName, Message, Name, RData, RType, Record};

/// Most CNAME links followed through local data.
pub const MAX_CHAIN: usize = 8;
/// Most addresses kept per name and family (a hostile file could list millions).
pub const MAX_ADDRS_PER_NAME: usize = 64;

/// The addresses of one host name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Addrs {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

/// The hosts file as lookup tables.
#[derive(Clone, Debug, Default)]
pub struct HostsTable {
    names: HashMap<LowerName, Addrs>,
    reverse: HashMap<LowerName, Name>,
}

impl HostsTable {
    /// Builds the tables from parsed lines. Returns the table and how many addresses were dropped
    /// because a name had too many.
    pub fn build(lines: &[HostsLine]) -> (HostsTable, usize) {
        let mut t = HostsTable::default();
        let mut dropped = 0;
        for line in lines {
            for name in &line.names {
                let addrs = t.names.entry(LowerName::from(name)).or_default();
                let added = match line.addr {
                    IpAddr::V4(a) => push_capped(&mut addrs.v4, a),
                    IpAddr::V6(a) => push_capped(&mut addrs.v6, a),
                };
                if !added {
                    dropped += 1;
                }
            }
            if let Some(first) = line.names.first() {
                t.reverse
                    .entry(LowerName::from(Name::reverse_of(line.addr)))
                    .or_insert_with(|| first.clone());
            }
        }
        (t, dropped)
    }

    /// Number of distinct names.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Number of distinct addresses (reverse names).
    pub fn address_count(&self) -> usize {
        self.reverse.len()
    }
}

/// Appends `v` unless present or the list is full; false when it was dropped for the cap.
fn push_capped<T: PartialEq>(list: &mut Vec<T>, v: T) -> bool {
    if list.contains(&v) {
        return true;
    }
    if list.len() >= MAX_ADDRS_PER_NAME {
        return false;
    }
    list.push(v);
    true
}

/// Local records from the config, by owner name.
#[derive(Clone, Debug, Default)]
pub struct LocalRecords {
    by_name: HashMap<LowerName, Vec<Record>>,
}

impl LocalRecords {
    /// Indexes the records by owner.
    pub fn new(records: Vec<Record>) -> Self {
        let mut by_name: HashMap<LowerName, Vec<Record>> = HashMap::new();
        for r in records {
            by_name.entry(LowerName::from(&r.name)).or_default().push(r);
        }
        LocalRecords { by_name }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    /// True without records.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The response to `query` from the hosts table and local records (not authoritative: we are not
/// the zone's server), or `None` to pass it on: not a single IN question of a standard query, or
/// a name neither knows. Shared by the hosts file and the DHCP lease names.
pub fn answer(
    hosts: &HostsTable,
    local: &LocalRecords,
    query: &Message,
    ttl: u32,
) -> Option<Message> {
    let q = query.question()?;
    if q.qclass != Class::IN || query.questions.len() != 1 || !query.is_query_opcode() {
        return None;
    }
    let records = lookup(hosts, local, &q.name, q.qtype, ttl)?;
    let mut response = Message::response_to(query);
    response.header.authoritative = false;
    response.answers = records;
    Some(response)
}

/// The answer records for `name`/`qtype` from local records and the hosts table: `None` when
/// neither knows the name, `Some(vec![])` for NODATA. Hosts-file records get `ttl`.
pub fn lookup(
    hosts: &HostsTable,
    local: &LocalRecords,
    name: &Name,
    qtype: RType,
    ttl: u32,
) -> Option<Vec<Record>> {
    let mut out = records_at(hosts, local, name, qtype, ttl)?;
    // Follow a CNAME through local data, bounded and without revisiting a name.
    let mut seen = vec![LowerName::from(name)];
    while qtype != RType::CNAME && qtype != RType::ANY && seen.len() <= MAX_CHAIN {
        let Some(RData::Cname(target)) = out.last().map(|r| &r.data) else {
            break;
        };
        let key = LowerName::from(target);
        if seen.contains(&key) {
            break;
        }
        let target = target.clone();
        seen.push(key);
        match records_at(hosts, local, &target, qtype, ttl) {
            Some(more) => out.extend(more),
            None => break,
        }
    }
    Some(out)
}

/// The records at exactly `name` (one step, no chasing).
fn records_at(
    hosts: &HostsTable,
    local: &LocalRecords,
    name: &Name,
    qtype: RType,
    ttl: u32,
) -> Option<Vec<Record>> {
    // Without any data (no hosts file, no local records) there is nothing to look up, and no
    // key to build.
    if local.by_name.is_empty() && hosts.names.is_empty() && hosts.reverse.is_empty() {
        return None;
    }
    let key = LowerName::from(name);
    let recs = local.by_name.get(&key);
    let addrs = hosts.names.get(&key);
    let ptr = hosts.reverse.get(&key);
    if recs.is_none() && addrs.is_none() && ptr.is_none() {
        return None;
    }
    let mut out = Vec::new();
    if let Some(recs) = recs {
        let cname = recs.iter().find(|r| r.rtype() == RType::CNAME);
        if let (Some(cname), false) = (cname, qtype == RType::CNAME || qtype == RType::ANY) {
            out.push(cname.clone());
            return Some(out);
        }
        out.extend(
            recs.iter()
                .filter(|r| qtype == RType::ANY || r.rtype() == qtype)
                .cloned(),
        );
    }
    if let Some(addrs) = addrs {
        if qtype == RType::A || qtype == RType::ANY {
            out.extend(
                addrs
                    .v4
                    .iter()
                    .map(|a| Record::new(name.clone(), ttl, RData::A(*a))),
            );
        }
        if qtype == RType::AAAA || qtype == RType::ANY {
            out.extend(
                addrs
                    .v6
                    .iter()
                    .map(|a| Record::new(name.clone(), ttl, RData::Aaaa(*a))),
            );
        }
    }
    if let Some(target) = ptr {
        if qtype == RType::PTR || qtype == RType::ANY {
            out.push(Record::new(name.clone(), ttl, RData::Ptr(target.clone())));
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::hosts::parse::parse_hosts;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn table(text: &str) -> HostsTable {
        HostsTable::build(&parse_hosts(text.as_bytes()).lines).0
    }

    fn data(out: Option<Vec<Record>>) -> Option<Vec<RData>> {
        out.map(|v| v.into_iter().map(|r| r.data).collect())
    }

    #[test]
    fn addresses_ptr_and_nodata() {
        let t = table(
            "192.168.1.10 router.lan router\n\
             192.168.1.11 router.lan\n\
             192.168.1.10 other.lan\n\
             2001:db8::1 v6only\n\
             0.0.0.0 blocked.example\n",
        );
        let local = LocalRecords::default();
        let a = |n: &str, q: RType| data(lookup(&t, &local, &name(n), q, 0));
        assert_eq!(
            a("ROUTER.lan", RType::A),
            Some(vec![
                RData::A("192.168.1.10".parse().unwrap()),
                RData::A("192.168.1.11".parse().unwrap())
            ])
        );
        assert_eq!(a("router.lan", RType::AAAA), Some(vec![]));
        assert_eq!(a("router.lan", RType::MX), Some(vec![]));
        assert_eq!(a("v6only", RType::A), Some(vec![]));
        assert_eq!(
            a("v6only", RType::AAAA),
            Some(vec![RData::Aaaa("2001:db8::1".parse().unwrap())])
        );
        assert_eq!(
            a("blocked.example", RType::A),
            Some(vec![RData::A(Ipv4Addr::UNSPECIFIED)])
        );
        // The first name of the first line with the address.
        assert_eq!(
            a("10.1.168.192.in-addr.arpa", RType::PTR),
            Some(vec![RData::Ptr(name("router.lan"))])
        );
        assert_eq!(a("10.1.168.192.in-addr.arpa", RType::A), Some(vec![]));
        assert_eq!(a("12.1.168.192.in-addr.arpa", RType::PTR), None);
        assert_eq!(a("unknown.lan", RType::A), None);
        assert_eq!(a("lan", RType::A), None);
        assert_eq!(t.name_count(), 5);
        assert_eq!(t.address_count(), 4);
    }

    #[test]
    fn local_records_and_cnames() {
        let t = table("10.0.0.5 nas.lan\n");
        let local = LocalRecords::new(vec![
            Record::new(name("files.lan"), 60, RData::Cname(name("nas.lan"))),
            Record::new(name("loop1.lan"), 60, RData::Cname(name("loop2.lan"))),
            Record::new(name("loop2.lan"), 60, RData::Cname(name("loop1.lan"))),
            Record::new(name("out.lan"), 60, RData::Cname(name("example.com"))),
            Record::new(
                name("nas.lan"),
                300,
                RData::Txt(vec![b"hi".to_vec().into()]),
            ),
            Record::new(name("mail.lan"), 300, RData::A("10.0.0.9".parse().unwrap())),
        ]);
        assert_eq!(local.len(), 6);
        let a = |n: &str, q: RType| data(lookup(&t, &local, &name(n), q, 7));
        assert_eq!(
            a("files.lan", RType::A),
            Some(vec![
                RData::Cname(name("nas.lan")),
                RData::A("10.0.0.5".parse().unwrap())
            ])
        );
        assert_eq!(
            a("files.lan", RType::CNAME),
            Some(vec![RData::Cname(name("nas.lan"))])
        );
        assert_eq!(
            a("nas.lan", RType::TXT),
            Some(vec![RData::Txt(vec![b"hi".to_vec().into()])])
        );
        assert_eq!(a("mail.lan", RType::AAAA), Some(vec![]));
        assert_eq!(
            a("loop1.lan", RType::A),
            Some(vec![
                RData::Cname(name("loop2.lan")),
                RData::Cname(name("loop1.lan"))
            ])
        );
        assert_eq!(
            a("out.lan", RType::A),
            Some(vec![RData::Cname(name("example.com"))])
        );
        // Hosts records take the configured TTL, local ones keep their own.
        let recs = lookup(&t, &local, &name("files.lan"), RType::A, 7).unwrap();
        assert_eq!((recs[0].ttl, recs[1].ttl), (60, 7));
        assert_eq!(recs[1].name, name("nas.lan"));
    }

    #[test]
    fn addresses_per_name_are_capped() {
        let text: String = (0..MAX_ADDRS_PER_NAME + 3)
            .map(|i| format!("10.0.{}.{} same\n", i / 256, i % 256))
            .collect();
        let (t, dropped) = HostsTable::build(&parse_hosts(text.as_bytes()).lines);
        assert_eq!(dropped, 3);
        let got = lookup(&t, &LocalRecords::default(), &name("same"), RType::A, 0).unwrap();
        assert_eq!(got.len(), MAX_ADDRS_PER_NAME);
    }
}
