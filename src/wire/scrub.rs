//! Scrubbing an upstream's answer: only the records that answer the question go on, to the cache
//! and to the client.
//!
//! ```text
//!   question + parsed answer --scrub--> answer:     the chain from QNAME (CNAME, DNAME + its CNAME)
//!                                |                  and the QTYPE data at its end, with RRSIGs
//!                                |      authority:  SOA and NS at or above the chain's end, NSEC and
//!                                |                  NSEC3 inside those zones, with RRSIGs
//!                                |      additional: A/AAAA of names kept NS/MX/SRV/SVCB/HTTPS records
//!                                |                  point at, with RRSIGs; the OPT record untouched
//!                                \--> ScrubError: chain too long, loop, two CNAMEs for one name
//! ```
//!
//! Why: an upstream (or whoever got a packet past the ID, port and question checks) can add
//! records to an answer that have nothing to do with the question: an A record for another domain
//! in the answer section, NS records and glue for another domain in the authority and additional
//! sections. Our cache keys whole answers by question, so such a record cannot become the answer to
//! another name here, but it reaches the client, and a caching client (dnsmasq, systemd-resolved, a
//! resolver forwarding to us) may believe it. CNAME chains that loop or run on for a hundred links
//! cost every client that follows them and mean nothing a client can use.
//!
//! The rules, for a NOERROR or NXDOMAIN answer (nothing else carries data a client may use: an
//! error response keeps its header, question and OPT record and loses every record):
//! - Records of another class than the question's are dropped.
//! - Answer section: the chain is walked from QNAME, in any order the records come in. At each
//!   name on it:
//!   - a DNAME whose owner is a proper ancestor of the name applies (RFC 6672 section 2.3: a DNAME
//!     never redirects its own owner name). It is kept, and so is a CNAME for the name whose target
//!     is the substitution (section 2.2). A missing CNAME is synthesised, with the DNAME's TTL as an
//!     authoritative server gives it (section 3.1), and one that points elsewhere is replaced by
//!     it: a recursive server must synthesise for clients that do not know DNAME (section 3.4). A
//!     substitution longer than 255 octets (the server owed us YXDOMAIN) does not apply: the chain
//!     ends there.
//!   - else a CNAME owned by the name is kept and followed, unless QTYPE is CNAME (RFC 1034 section
//!     4.3.2, step 3a). An alias has no other data (RFC 1034 section 3.6.2, RFC 2181 section 10.1):
//!     anything else there is dropped, except for QTYPE ANY; two CNAMEs with different targets are
//!     [`ScrubError::ConflictingCnames`].
//!   - else the chain ends: the records of type QTYPE at the name (any type for ANY) are kept.
//!
//!   More than [`MAX_CNAME_CHAIN`] links is [`ScrubError::ChainTooLong`]; a target already on the
//!   chain is [`ScrubError::Loop`]. An RRSIG is kept when its owner and type covered are those of a
//!   kept record, so a validating client still gets the signatures it needs (RFC 4035 section 3.1.1)
//!   and a synthesised CNAME stays unsigned, as RFC 6672 section 5.1 expects. Everything else in
//!   the section is dropped.
//! - Authority section: an SOA or NS record is kept when its owner is the last name of the chain
//!   or an ancestor of it: the zone the answer or its denial comes from (for a negative answer,
//!   RFC 2308 section 3). NSEC and NSEC3 records are kept at or below the owner of such an SOA or NS,
//!   or below the signer of a kept answer RRSIG (the proof of a wildcard answer, RFC 4035 section
//!   3.1.3.3, comes from the zone that signed it); with their RRSIGs. Everything else (NS of
//!   other domains, DS, anything else) is dropped.
//! - Additional section: A and AAAA records are kept when their owner is the target of a kept NS,
//!   MX, SRV, SVCB or HTTPS record (the additional section processing of RFC 1035 sections 3.3.9
//!   and 3.3.11, RFC 2782, RFC 9460 section 4), with their RRSIGs. Everything else is dropped. The
//!   OPT record lives in [`Message::edns`] and is not touched.
//!
//! Why these rules and not unbound's: unbound's scrubber (`iterator/iter_scrub.c`) first normalises
//! (the same chain walk, additional records only for NS/MX/SRV targets) and then drops everything
//! outside the zone of the server it asked, because it knows which zone that server answers for. A
//! forwarder does not: its upstream answers for every zone. The chain stands in for that
//! knowledge: whatever the upstream says about names the answer does not lead to is dropped, and
//! an NS or SOA must sit above where the answer ended.
//!
//! [`MAX_CNAME_CHAIN`] is 11, unbound's default limit on query restarts (`max-query-restarts`; a
//! restart is a new query for a CNAME target it has no answer for yet); BIND allowed 16 for years.
//! We take the lower figure: it is what the most widely deployed validating resolver enforces,
//! chains in real use (CDN aliases) have two to four links, and every link is work that each
//! client following the chain repeats.
//!
//! [`ScrubError`] is not a [`super::WireError`]: those say a message is malformed (FORMERR); here it
//! parsed and is well-formed, and we decline to use its data. The caller turns it into SERVFAIL.
//! On an error the message is left as it was.
//!
//! Limitations: without zone cuts, an upstream can still vouch for an ancestor of the names in the
//! answer (an NS record for `com.` in the answer to `www.example.com.`), as a resolver a forwarder
//! trusts can; the data on the chain itself is believed (only DNSSEC validation, done by clients,
//! can check it); a DNAME that applies wins over a CNAME, never the other way round; NAPTR
//! replacement names get no additional records.

use std::collections::HashSet;

use thiserror::Error;

use super::message::{Message, Question, Record};
use super::name::Name;
use super::rdata::RData;
use super::types::{Class, RType, Rcode};

/// Most CNAME links (synthesised ones included) followed from the question name; one more is
/// [`ScrubError::ChainTooLong`].
pub const MAX_CNAME_CHAIN: usize = 11;

/// Why an answer cannot be used at all. The answer is well-formed; it is its data we refuse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScrubError {
    /// The chain from the question name has more than [`MAX_CNAME_CHAIN`] links.
    #[error("CNAME chain longer than {MAX_CNAME_CHAIN} links")]
    ChainTooLong,
    /// A CNAME (or DNAME substitution) leads back to a name already on the chain.
    #[error("CNAME loop: {0} is already on the chain")]
    Loop(Name),
    /// One name has CNAMEs to different targets (RFC 2181 section 10.1 allows one).
    #[error("{0} has CNAMEs to different targets")]
    ConflictingCnames(Name),
}

/// What scrubbing changed, for the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// Records removed from the three sections.
    pub dropped: usize,
    /// CNAMEs synthesised from DNAMEs.
    pub synthesized: usize,
}

/// Removes from `answer` every record that does not answer `question` (see the module docs), or
/// refuses the answer. Header counts are updated; on an error `answer` is unchanged.
pub fn scrub(answer: &mut Message, question: &Question) -> Result<Scrubbed, ScrubError> {
    if !matches!(answer.rcode(), Rcode::NOERROR | Rcode::NXDOMAIN) {
        let dropped = answer.answers.len() + answer.authority.len() + answer.additional.len();
        answer.answers.clear();
        answer.authority.clear();
        answer.additional.clear();
        set_counts(answer);
        return Ok(Scrubbed {
            dropped,
            synthesized: 0,
        });
    }
    let qclass = question.qclass;
    let chain = walk_chain(&answer.answers, question)?;
    let mut answer_keep = chain.keep;
    keep_covering_rrsigs(&answer.answers, &mut answer_keep, qclass);

    // Zones the answer vouches for: the signers of kept answer RRSIGs (where the signer is an
    // ancestor of what it signed, as RFC 4035 section 5.3.1 requires), then the owners of kept SOA
    // and NS records.
    let mut zones: Vec<Name> = Vec::new();
    for (r, _) in answer.answers.iter().zip(&answer_keep).filter(|(_, k)| **k) {
        if let RData::Rrsig(sig) = &r.data {
            if r.name.is_subdomain_of(&sig.signer_name) && !zones.contains(&sig.signer_name) {
                zones.push(sig.signer_name.clone());
            }
        }
    }
    let last = chain.names.last().unwrap_or(&question.name);
    let authority_keep = authority_rules(&answer.authority, last, &mut zones, qclass);

    let mut targets: HashSet<&Name> = HashSet::new();
    let kept_answers = answer.answers.iter().zip(&answer_keep).filter(|(_, k)| **k);
    let kept_authority = answer
        .authority
        .iter()
        .zip(&authority_keep)
        .filter(|(_, k)| **k);
    // Without additional records there is nothing to look the targets up for.
    let wanted = if answer.additional.is_empty() {
        None
    } else {
        Some(kept_answers.chain(kept_authority))
    };
    for (r, _) in wanted.into_iter().flatten() {
        if let Some(t) = additional_target(r) {
            targets.insert(t);
        }
    }
    let mut additional_keep: Vec<bool> = answer
        .additional
        .iter()
        .map(|r| {
            in_class(r, qclass)
                && matches!(r.rtype(), RType::A | RType::AAAA)
                && targets.contains(&r.name)
        })
        .collect();
    keep_covering_rrsigs(&answer.additional, &mut additional_keep, qclass);

    let synthesized = chain.synthesized.len();
    let before = answer.answers.len() + answer.authority.len() + answer.additional.len();
    answer.answers = rebuild_answers(
        std::mem::take(&mut answer.answers),
        &answer_keep,
        chain.synthesized,
    );
    retain_marked(&mut answer.authority, &authority_keep);
    retain_marked(&mut answer.additional, &additional_keep);
    set_counts(answer);
    let after = answer.answers.len() + answer.authority.len() + answer.additional.len();
    Ok(Scrubbed {
        dropped: (before + synthesized).saturating_sub(after),
        synthesized,
    })
}

/// The chain through the answer section.
struct Chain {
    /// The names on the chain, from QNAME to the last target.
    names: Vec<Name>,
    /// Which answer records are kept (before RRSIGs are matched).
    keep: Vec<bool>,
    /// CNAMEs synthesised from DNAMEs, each with the index of its DNAME (it is written after it).
    synthesized: Vec<(usize, Record)>,
}

/// Walks the chain from the question name (see the module docs) and marks what it keeps.
fn walk_chain(answers: &[Record], q: &Question) -> Result<Chain, ScrubError> {
    let mut keep = vec![false; answers.len()];
    let mut synthesized = Vec::new();
    let mut names = vec![q.name.clone()];
    let mut sname = q.name.clone();
    loop {
        let cnames: Vec<(usize, &Name)> = records_at(answers, &sname, q.qclass)
            .filter_map(|(i, r)| match &r.data {
                RData::Cname(target) => Some((i, target)),
                _ => None,
            })
            .collect();
        let next = if let Some((d, alias)) = applicable_dname(answers, &sname, q.qclass) {
            keep[d] = true;
            if !cnames.is_empty() && cnames.iter().all(|(_, t)| **t == alias) {
                for (i, _) in &cnames {
                    keep[*i] = true;
                }
            } else {
                let dname = &answers[d];
                let cname = Record {
                    name: sname.clone(),
                    class: dname.class,
                    ttl: dname.ttl,
                    data: RData::Cname(alias.clone()),
                };
                synthesized.push((d, cname));
            }
            if q.qtype == RType::CNAME {
                break;
            }
            alias
        } else if cnames.is_empty() || q.qtype == RType::CNAME {
            for (i, r) in records_at(answers, &sname, q.qclass) {
                if q.qtype == RType::ANY || r.rtype() == q.qtype {
                    keep[i] = true;
                }
            }
            break;
        } else {
            let target = cnames[0].1;
            if cnames.iter().any(|(_, t)| *t != target) {
                return Err(ScrubError::ConflictingCnames(sname.clone()));
            }
            for (i, r) in records_at(answers, &sname, q.qclass) {
                keep[i] = r.rtype() == RType::CNAME || q.qtype == RType::ANY;
            }
            target.clone()
        };
        if names.contains(&next) {
            return Err(ScrubError::Loop(next));
        }
        // `names` holds one name more than the links followed so far.
        if names.len() > MAX_CNAME_CHAIN {
            return Err(ScrubError::ChainTooLong);
        }
        sname = next.clone();
        names.push(next);
    }
    Ok(Chain {
        names,
        keep,
        synthesized,
    })
}

/// The records of the question's class owned by `sname`, with their indexes.
fn records_at<'a>(
    answers: &'a [Record],
    sname: &'a Name,
    qclass: Class,
) -> impl Iterator<Item = (usize, &'a Record)> + 'a {
    answers
        .iter()
        .enumerate()
        .filter(move |(_, r)| in_class(r, qclass) && r.name == *sname)
}

/// The first DNAME in `answers` that applies to `sname` (its owner a proper ancestor of `sname`,
/// the substitution no longer than a name may be): its index and the name it substitutes.
fn applicable_dname(answers: &[Record], sname: &Name, qclass: Class) -> Option<(usize, Name)> {
    answers.iter().enumerate().find_map(|(i, r)| match &r.data {
        RData::Dname(target) if in_class(r, qclass) && r.name != *sname => {
            substitute(sname, &r.name, target).map(|alias| (i, alias))
        }
        _ => None,
    })
}

/// `sname` with its suffix `owner` replaced by `target` (RFC 6672 section 2.2), if `sname` lies
/// below `owner` and the result fits into 255 octets.
fn substitute(sname: &Name, owner: &Name, target: &Name) -> Option<Name> {
    if !sname.is_subdomain_of(owner) {
        return None;
    }
    let prefix = &sname.as_wire()[..sname.wire_len() - owner.wire_len()];
    let mut wire = Vec::with_capacity(prefix.len() + target.wire_len());
    wire.extend_from_slice(prefix);
    wire.extend_from_slice(target.as_wire());
    Name::from_wire(&wire).ok()
}

/// The authority rules (see the module docs); adds the owners of kept SOA and NS records to
/// `zones`.
fn authority_rules(
    authority: &[Record],
    last: &Name,
    zones: &mut Vec<Name>,
    qclass: Class,
) -> Vec<bool> {
    let mut keep: Vec<bool> = authority
        .iter()
        .map(|r| {
            in_class(r, qclass)
                && matches!(r.rtype(), RType::SOA | RType::NS)
                && last.is_subdomain_of(&r.name)
        })
        .collect();
    // Distinct ancestors of the chain's names only, so a flood of records cannot make this list
    // (and the NSEC check below, a scan of it per record) long.
    for (r, _) in authority.iter().zip(&keep).filter(|(_, k)| **k) {
        if !zones.contains(&r.name) {
            zones.push(r.name.clone());
        }
    }
    for (r, k) in authority.iter().zip(keep.iter_mut()) {
        if in_class(r, qclass)
            && matches!(r.rtype(), RType::NSEC | RType::NSEC3)
            && zones.iter().any(|z| r.name.is_subdomain_of(z))
        {
            *k = true;
        }
    }
    keep_covering_rrsigs(authority, &mut keep, qclass);
    keep
}

/// Marks the RRSIGs whose owner and type covered are those of a kept record.
fn keep_covering_rrsigs(records: &[Record], keep: &mut [bool], qclass: Class) {
    // Most answers carry no signature: no set to build then.
    if !records.iter().any(|r| r.rtype() == RType::RRSIG) {
        return;
    }
    let kept: HashSet<(&Name, RType)> = records
        .iter()
        .zip(keep.iter())
        .filter(|(r, k)| **k && r.rtype() != RType::RRSIG)
        .map(|(r, _)| (&r.name, r.rtype()))
        .collect();
    for (r, k) in records.iter().zip(keep.iter_mut()) {
        if let RData::Rrsig(sig) = &r.data {
            if in_class(r, qclass) && kept.contains(&(&r.name, sig.type_covered)) {
                *k = true;
            }
        }
    }
}

/// The name whose addresses may travel in the additional section with `r`, if any.
fn additional_target(r: &Record) -> Option<&Name> {
    match &r.data {
        RData::Ns(target) => Some(target),
        RData::Mx { exchange, .. } => Some(exchange),
        RData::Srv { target, .. } => Some(target),
        // "." as the target of a service-mode record means the owner itself (RFC 9460 section 2.5).
        RData::Svcb(s) | RData::Https(s) if s.target.is_root() => Some(&r.name),
        RData::Svcb(s) | RData::Https(s) => Some(&s.target),
        _ => None,
    }
}

/// True when `r` is of the question's class (any class for a QCLASS ANY question).
fn in_class(r: &Record, qclass: Class) -> bool {
    qclass == Class::ANY || r.class == qclass
}

/// The kept answer records in their order, each synthesised CNAME right after its DNAME.
fn rebuild_answers(
    answers: Vec<Record>,
    keep: &[bool],
    mut synthesized: Vec<(usize, Record)>,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(answers.len() + synthesized.len());
    // Chain order need not be answer order; a stable sort keeps the chain order of the CNAMEs one
    // DNAME synthesised.
    synthesized.sort_by_key(|(d, _)| *d);
    let mut synthesized = synthesized.into_iter().peekable();
    for (i, (r, k)) in answers.into_iter().zip(keep).enumerate() {
        if *k {
            out.push(r);
        }
        while let Some((_, cname)) = synthesized.next_if(|(d, _)| *d == i) {
            out.push(cname);
        }
    }
    out
}

/// Keeps the records marked in `keep`.
fn retain_marked(records: &mut Vec<Record>, keep: &[bool]) {
    let mut marks = keep.iter();
    records.retain(|_| marks.next().copied().unwrap_or(false));
}

/// Header counts to match the sections (the OPT record counts in the additional section).
fn set_counts(m: &mut Message) {
    let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    m.header.ancount = count(m.answers.len());
    m.header.nscount = count(m.authority.len());
    m.header.arcount = count(m.additional.len() + usize::from(m.edns.is_some()));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::wire::edns::Edns;
    use crate::wire::{parse_record_line, RData, RType, Rcode, Record};

    fn rr(line: &str) -> Record {
        parse_record_line(line, 300).unwrap()
    }

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    /// An RRSIG at `owner` covering `covered`, signed by `signer` (the signature itself is junk:
    /// nothing here validates).
    fn sig(owner: &str, covered: &str, signer: &str) -> Record {
        rr(&format!(
            "{owner} 300 IN RRSIG {covered} 8 2 300 20300101000000 20200101000000 4242 {signer} AAECAwQFBgcICQ=="
        ))
    }

    /// An answer to `qname`/`qtype` with these sections (as presentation lines) and an OPT record.
    fn answer(
        qname: &str,
        qtype: RType,
        rcode: Rcode,
        answers: &[Record],
        authority: &[Record],
        additional: &[Record],
    ) -> (Message, Question) {
        let q = Question::new(name(qname), qtype);
        let mut m = Message::response_to(&Message::query(name(qname), qtype));
        m.edns = Some(Edns {
            udp_payload: 1232,
            dnssec_ok: true,
            ..Edns::default()
        });
        m.set_rcode(rcode);
        m.answers = answers.to_vec();
        m.authority = authority.to_vec();
        m.additional = additional.to_vec();
        (m, q)
    }

    fn owners(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {}", r.name, r.rtype()))
            .collect()
    }

    /// A chain of `links` CNAMEs from `c0.chain.test` to `c{links}.chain.test`, which has an A.
    fn chain(links: usize) -> Vec<Record> {
        let mut v: Vec<Record> = (0..links)
            .map(|i| rr(&format!("c{i}.chain.test. CNAME c{}.chain.test.", i + 1)))
            .collect();
        v.push(rr(&format!("c{links}.chain.test. A 192.0.2.1")));
        v
    }

    #[test]
    fn an_out_of_zone_record_in_the_answer_section_is_dropped() {
        let (mut m, q) = answer(
            "poison.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("victim.example. A 6.6.6.6"),
                rr("poison.test. A 192.0.2.1"),
                rr("www.victim.example. A 6.6.6.6"),
            ],
            &[],
            &[],
        );
        let done = scrub(&mut m, &q).unwrap();
        assert_eq!(owners(&m.answers), ["poison.test. A"]);
        assert_eq!(done.dropped, 2);
        assert_eq!(m.header.ancount, 1);
    }

    #[test]
    fn unrelated_ns_and_glue_are_dropped_and_the_zone_s_own_kept() {
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[rr("www.example.test. A 192.0.2.1")],
            &[
                rr("example.test. NS ns1.example.test."),
                rr("victim.example. NS ns.evil.example."),
                rr("www.example.test.sub. NS ns1.example.test."),
                rr("example.test. DS 1 8 2 AABBCCDD"),
            ],
            &[
                rr("ns1.example.test. A 192.0.2.53"),
                rr("ns1.example.test. AAAA 2001:db8::53"),
                rr("ns.evil.example. A 6.6.6.6"),
                rr("victim.example. A 6.6.6.6"),
                rr("ns1.example.test. TXT \"not an address\""),
            ],
        );
        let opt = m.edns.clone();
        let done = scrub(&mut m, &q).unwrap();
        assert_eq!(owners(&m.answers), ["www.example.test. A"]);
        assert_eq!(owners(&m.authority), ["example.test. NS"]);
        assert_eq!(
            owners(&m.additional),
            ["ns1.example.test. A", "ns1.example.test. AAAA"]
        );
        assert_eq!(m.edns, opt, "the OPT record is not touched");
        assert_eq!(done.dropped, 6);
    }

    #[test]
    fn a_chain_past_the_limit_is_an_error() {
        let (mut m, q) = answer(
            "c0.chain.test",
            RType::A,
            Rcode::NOERROR,
            &chain(100),
            &[],
            &[],
        );
        let before = m.clone();
        assert_eq!(scrub(&mut m, &q), Err(ScrubError::ChainTooLong));
        assert_eq!(m, before, "an answer that fails is left as it was");

        // The limit itself is fine, one more link is not.
        let (mut m, q) = answer(
            "c0.chain.test",
            RType::A,
            Rcode::NOERROR,
            &chain(MAX_CNAME_CHAIN),
            &[],
            &[],
        );
        assert_eq!(scrub(&mut m, &q).map(|d| d.dropped), Ok(0));
        assert_eq!(m.answers.len(), MAX_CNAME_CHAIN + 1);
        let (mut m, q) = answer(
            "c0.chain.test",
            RType::A,
            Rcode::NOERROR,
            &chain(MAX_CNAME_CHAIN + 1),
            &[],
            &[],
        );
        assert_eq!(scrub(&mut m, &q), Err(ScrubError::ChainTooLong));
    }

    #[test]
    fn a_cname_loop_is_an_error() {
        let (mut m, q) = answer(
            "a.loop.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("a.loop.test. CNAME b.loop.test."),
                rr("b.loop.test. CNAME A.LOOP.test."),
            ],
            &[],
            &[],
        );
        assert_eq!(
            scrub(&mut m, &q),
            Err(ScrubError::Loop(name("a.loop.test")))
        );
        let (mut m, q) = answer(
            "self.loop.test",
            RType::AAAA,
            Rcode::NOERROR,
            &[rr("self.loop.test. CNAME self.loop.test.")],
            &[],
            &[],
        );
        assert_eq!(
            scrub(&mut m, &q),
            Err(ScrubError::Loop(name("self.loop.test")))
        );
    }

    #[test]
    fn a_cname_with_two_targets_is_an_error() {
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("www.example.test. CNAME a.example.test."),
                rr("www.example.test. CNAME b.example.test."),
                rr("a.example.test. A 192.0.2.1"),
                rr("b.example.test. A 6.6.6.6"),
            ],
            &[],
            &[],
        );
        assert_eq!(
            scrub(&mut m, &q),
            Err(ScrubError::ConflictingCnames(name("www.example.test")))
        );
    }

    #[test]
    fn a_three_step_chain_across_zones_is_kept_intact() {
        let records = [
            rr("www.one.test. CNAME edge.two.example."),
            sig("www.one.test.", "CNAME", "one.test."),
            rr("edge.two.example. CNAME Host.Three.NET."),
            rr("host.three.net. CNAME final.three.net."),
            rr("final.three.net. A 192.0.2.7"),
            rr("final.three.net. A 192.0.2.8"),
            sig("final.three.net.", "A", "three.net."),
        ];
        let (mut m, q) = answer(
            "WWW.one.test",
            RType::A,
            Rcode::NOERROR,
            &records,
            &[
                rr("three.net. NS ns.three.net."),
                rr("one.test. NS ns.one.test."),
            ],
            &[
                rr("ns.three.net. A 192.0.2.53"),
                rr("ns.one.test. A 192.0.2.54"),
            ],
        );
        let done = scrub(&mut m, &q).unwrap();
        assert_eq!(m.answers, records, "the whole chain, in its order");
        // The zone the answer comes from is the last name's.
        assert_eq!(owners(&m.authority), ["three.net. NS"]);
        assert_eq!(owners(&m.additional), ["ns.three.net. A"]);
        assert_eq!(
            done,
            Scrubbed {
                dropped: 2,
                synthesized: 0
            }
        );
    }

    #[test]
    fn unrelated_types_at_the_question_name_are_dropped() {
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("www.example.test. A 192.0.2.1"),
                rr("www.example.test. MX 10 mail.victim.example."),
                sig("www.example.test.", "MX", "example.test."),
                rr("www.example.test. TXT \"x\""),
            ],
            &[],
            &[rr("mail.victim.example. A 6.6.6.6")],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(owners(&m.answers), ["www.example.test. A"]);
        assert!(
            m.additional.is_empty(),
            "the dropped MX vouches for nothing"
        );

        // Asked for MX, the exchange's address is the additional data it is.
        let (mut m, q) = answer(
            "example.test",
            RType::MX,
            Rcode::NOERROR,
            &[rr("example.test. MX 10 mail.example.test.")],
            &[],
            &[
                rr("mail.example.test. A 192.0.2.25"),
                sig("mail.example.test.", "A", "example.test."),
                rr("other.example.test. A 192.0.2.26"),
            ],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(
            owners(&m.additional),
            ["mail.example.test. A", "mail.example.test. RRSIG"]
        );
    }

    #[test]
    fn data_beside_a_cname_is_dropped_and_cname_questions_are_not_followed() {
        let records = [
            rr("alias.example.test. A 6.6.6.6"),
            rr("alias.example.test. CNAME www.example.test."),
            rr("www.example.test. A 192.0.2.1"),
        ];
        let (mut m, q) = answer(
            "alias.example.test",
            RType::A,
            Rcode::NOERROR,
            &records,
            &[],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(m.answers, records[1..]);

        let (mut m, q) = answer(
            "alias.example.test",
            RType::CNAME,
            Rcode::NOERROR,
            &records,
            &[],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(m.answers, records[1..2]);
    }

    #[test]
    fn rrsigs_are_kept_with_the_sets_they_cover() {
        let (mut m, q) = answer(
            "www.example.test",
            RType::AAAA,
            Rcode::NOERROR,
            &[
                rr("www.example.test. CNAME host.example.test."),
                sig("www.example.test.", "CNAME", "example.test."),
                sig("www.example.test.", "AAAA", "example.test."),
                rr("host.example.test. AAAA 2001:db8::1"),
                sig("host.example.test.", "AAAA", "example.test."),
                sig("host.example.test.", "A", "example.test."),
                sig("victim.example.", "AAAA", "victim.example."),
            ],
            &[
                rr("example.test. NS ns.example.test."),
                sig("example.test.", "NS", "example.test."),
                sig("example.test.", "SOA", "example.test."),
            ],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(
            owners(&m.answers),
            [
                "www.example.test. CNAME",
                "www.example.test. RRSIG",
                "host.example.test. AAAA",
                "host.example.test. RRSIG",
            ]
        );
        let covered: Vec<RType> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::Rrsig(s) => Some(s.type_covered),
                _ => None,
            })
            .collect();
        assert_eq!(covered, [RType::CNAME, RType::AAAA]);
        assert_eq!(
            owners(&m.authority),
            ["example.test. NS", "example.test. RRSIG"]
        );
    }

    #[test]
    fn a_negative_answer_keeps_its_soa_and_denial_proofs() {
        let authority = [
            rr("example.test. SOA ns1.example.test. hostmaster.example.test. 1 3600 900 604800 60"),
            sig("example.test.", "SOA", "example.test."),
            rr("mope.example.test. NSEC www.example.test. A RRSIG NSEC"),
            sig("mope.example.test.", "NSEC", "example.test."),
            rr("example.test. NSEC a.example.test. NS SOA RRSIG NSEC DNSKEY"),
            sig("example.test.", "NSEC", "example.test."),
        ];
        let mut with_junk = authority.to_vec();
        with_junk.push(rr(
            "victim.example. SOA ns.evil.example. h.evil.example. 1 3600 900 604800 86400",
        ));
        with_junk.push(rr("a.victim.example. NSEC z.victim.example. A"));
        with_junk.push(rr("victim.example. NS ns.evil.example."));
        let (mut m, q) = answer(
            "nope.example.test",
            RType::A,
            Rcode::NXDOMAIN,
            &[],
            &with_junk,
            &[rr("ns.evil.example. A 6.6.6.6")],
        );
        let done = scrub(&mut m, &q).unwrap();
        assert_eq!(m.authority, authority);
        assert!(m.additional.is_empty());
        assert_eq!(done.dropped, 4);

        // NODATA at the end of a chain: the SOA of the target's zone stays.
        let (mut m, q) = answer(
            "www.one.test",
            RType::AAAA,
            Rcode::NOERROR,
            &[rr("www.one.test. CNAME v4only.two.example.")],
            &[
                rr("two.example. SOA ns.two.example. h.two.example. 1 3600 900 604800 60"),
                rr("b0.two.example. NSEC3 1 0 0 - 2t7b4g4vsa5smi47k61mv5bv1a22bojr A RRSIG"),
                rr("one.test. SOA ns.one.test. h.one.test. 1 3600 900 604800 60"),
            ],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            owners(&m.authority),
            ["two.example. SOA", "b0.two.example. NSEC3"]
        );
    }

    #[test]
    fn a_wildcard_answer_keeps_its_proof_from_the_signing_zone() {
        let (mut m, q) = answer(
            "x.wild.example.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("x.wild.example.test. A 192.0.2.9"),
                sig("x.wild.example.test.", "A", "example.test."),
            ],
            &[
                rr("w.example.test. NSEC y.wild.example.test. A RRSIG NSEC"),
                sig("w.example.test.", "NSEC", "example.test."),
                rr("w.victim.example. NSEC y.victim.example. A RRSIG NSEC"),
            ],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(
            owners(&m.authority),
            ["w.example.test. NSEC", "w.example.test. RRSIG"]
        );
    }

    #[test]
    fn a_dname_and_its_cname_are_kept_and_a_missing_or_wrong_cname_synthesized() {
        let dname = rr("example.test. 600 IN DNAME example.net.");
        let dsig = sig("example.test.", "DNAME", "example.test.");
        let good = rr("www.example.test. 600 IN CNAME www.example.net.");
        let target = rr("www.example.net. A 192.0.2.80");
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[dname.clone(), dsig.clone(), good.clone(), target.clone()],
            &[
                rr("example.net. NS ns.example.net."),
                rr("example.test. NS ns.example.test."),
            ],
            &[],
        );
        assert_eq!(
            scrub(&mut m, &q),
            Ok(Scrubbed {
                dropped: 1,
                synthesized: 0
            })
        );
        assert_eq!(
            m.answers,
            [dname.clone(), dsig.clone(), good.clone(), target.clone()]
        );
        assert_eq!(owners(&m.authority), ["example.net. NS"]);

        // No CNAME (a DNAME-only server): one is synthesized with the DNAME's TTL, after it.
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[dname.clone(), target.clone()],
            &[],
            &[],
        );
        assert_eq!(scrub(&mut m, &q).map(|d| d.synthesized), Ok(1));
        assert_eq!(m.answers, [dname.clone(), good.clone(), target.clone()]);

        // A CNAME that contradicts the DNAME is replaced, and the place it pointed to dropped.
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[
                dname.clone(),
                rr("www.example.test. CNAME victim.example."),
                sig("www.example.test.", "CNAME", "example.test."),
                rr("victim.example. A 6.6.6.6"),
                target.clone(),
            ],
            &[],
            &[],
        );
        assert_eq!(
            scrub(&mut m, &q),
            Ok(Scrubbed {
                dropped: 3,
                synthesized: 1
            })
        );
        assert_eq!(m.answers, [dname.clone(), good, target.clone()]);
    }

    #[test]
    fn a_dname_applies_only_strictly_below_its_owner() {
        // At its own name a DNAME redirects nothing (RFC 6672 section 2.3): for an A question it is
        // unrelated data.
        let (mut m, q) = answer(
            "example.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("example.test. DNAME example.net."),
                rr("example.test. A 192.0.2.1"),
                rr("sub.example.test. DNAME example.net."),
            ],
            &[],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(owners(&m.answers), ["example.test. A"]);

        // Asked for the DNAME itself, it is the answer.
        let (mut m, q) = answer(
            "example.test",
            RType::DNAME,
            Rcode::NOERROR,
            &[rr("example.test. DNAME example.net.")],
            &[],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(owners(&m.answers), ["example.test. DNAME"]);

        // A substitution longer than 255 octets (the server owed us YXDOMAIN) ends the chain.
        let long = format!(
            "{}.example.test",
            ["a".repeat(63), "b".repeat(63), "c".repeat(60)].join(".")
        );
        let (mut m, q) = answer(
            &long,
            RType::A,
            Rcode::NOERROR,
            &[rr(&format!("example.test. DNAME {}.net.", "d".repeat(62)))],
            &[],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert!(m.answers.is_empty());
    }

    #[test]
    fn a_dname_loop_is_caught_by_the_chain_rules() {
        // Each substitution lands below the DNAME again: the chain grows until a limit stops it.
        let (mut m, q) = answer(
            "x.example.test",
            RType::A,
            Rcode::NOERROR,
            &[rr("example.test. DNAME y.example.test.")],
            &[],
            &[],
        );
        assert_eq!(scrub(&mut m, &q), Err(ScrubError::ChainTooLong));
        // Two DNAMEs pointing at each other's subtree: a loop.
        let (mut m, q) = answer(
            "x.one.test",
            RType::A,
            Rcode::NOERROR,
            &[
                rr("one.test. DNAME two.test."),
                rr("two.test. DNAME one.test."),
            ],
            &[],
            &[],
        );
        assert_eq!(scrub(&mut m, &q), Err(ScrubError::Loop(name("x.one.test"))));
    }

    #[test]
    fn records_of_another_class_are_dropped() {
        let mut ch = rr("www.example.test. A 192.0.2.2");
        ch.class = crate::wire::Class::CH;
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::NOERROR,
            &[rr("www.example.test. A 192.0.2.1"), ch],
            &[],
            &[],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(m.answers, [rr("www.example.test. A 192.0.2.1")]);
    }

    #[test]
    fn an_error_response_keeps_no_records() {
        let (mut m, q) = answer(
            "www.example.test",
            RType::A,
            Rcode::SERVFAIL,
            &[rr("victim.example. A 6.6.6.6")],
            &[rr("victim.example. NS ns.evil.example.")],
            &[rr("ns.evil.example. A 6.6.6.6")],
        );
        let opt = m.edns.clone();
        assert_eq!(scrub(&mut m, &q).map(|d| d.dropped), Ok(3));
        assert!(m.answers.is_empty() && m.authority.is_empty() && m.additional.is_empty());
        assert_eq!(m.edns, opt);
        assert_eq!(m.rcode(), Rcode::SERVFAIL);
    }

    #[test]
    fn any_keeps_every_type_at_the_chain_s_names() {
        let (mut m, q) = answer(
            "example.test",
            RType::ANY,
            Rcode::NOERROR,
            &[
                rr("example.test. A 192.0.2.1"),
                rr("example.test. MX 10 mail.example.test."),
                rr("example.test. TXT \"v=spf1 -all\""),
                rr("victim.example. A 6.6.6.6"),
            ],
            &[],
            &[rr("mail.example.test. A 192.0.2.25")],
        );
        scrub(&mut m, &q).unwrap();
        assert_eq!(
            owners(&m.answers),
            ["example.test. A", "example.test. MX", "example.test. TXT"]
        );
        assert_eq!(owners(&m.additional), ["mail.example.test. A"]);
    }
}
