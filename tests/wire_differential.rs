//! Differential test of our wire codec against hickory-proto 0.24.
//!
//! A seeded generator builds several thousand messages (random names with odd octets and shared
//! suffixes, random mixes of every typed record, unknown types, EDNS with options). Each message
//! goes both ways:
//!
//! ```text
//!   ours --encode--> bytes --hickory parse--> compare with the original   (forward)
//!   ours --convert--> hickory --hickory emit--> bytes --our parse--> compare (reverse)
//! ```
//!
//! The comparison is field by field (header, questions, owner names, types, classes, TTLs, RDATA
//! contents, EDNS fields and options). Names compare case-insensitively, because both encoders
//! compress case-insensitively (a compressed name takes the case of the earlier name it points to)
//! and hickory lower-cases some RDATA names it writes in canonical form.
//!
//! The generator stays inside what hickory 0.24 represents faithfully; each restriction below is a
//! hickory quirk, not a property of the wire format, and our own round-trip tests cover the rest:
//! - DNAME has no typed form in hickory 0.24: compared as opaque octets (our uncompressed name).
//! - CAA: hickory keeps only the critical bit of the flags, requires tags of 1..=15 alphanumerics,
//!   and parses `issue`/`issuewild` values into a name plus key-values (so those get plain
//!   `caN.example.net` values and are compared through hickory's parsed name).
//! - SVCB: hickory 0.24 reads and writes ECH with an extra 2-octet length prefix from an old draft
//!   (generated ECH values carry that prefix, and are compared with it); it writes unknown keys'
//!   values with an extra length octet (expected in the reverse direction only); it orders keys by
//!   its enum, so one record never mixes private-use keys (65280+) with other unknown keys; alpn
//!   ids must be UTF-8 for it.
//! - DNSKEY: hickory keeps only the Zone, Revoke and SEP flag bits and requires protocol 3.
//! - DS digest types 1..=5 and NSEC3/NSEC3PARAM hash algorithm 1 with flags 0/1 only.
//! - EDNS: hickory keeps options in a map (order and duplicates lost: codes are distinct and
//!   compared as a set), clamps nothing we generate (payload >= 512), drops the Z flag bits (we
//!   generate 0) and types the RFC 6975 options 5-7 lossily (not generated).
//! - The header Z bit is dropped by hickory (generated 0); opcodes are the ones hickory knows.
//! - Unknown types avoid 65305, which hickory 0.24 takes for its private ANAME type.
//! - hickory 0.24 compresses SVCB/HTTPS target names (RFC 9460 section 2.2 forbids it); our reader
//!   accepts that deliberately, so the reverse direction covers it rather than avoiding it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use dnsveil::wire::edns::{code, ClientSubnet};
use dnsveil::wire::rdata::svc_key;
use dnsveil::wire::{
    Class, Edns, EdnsOption, Header, Message, Name, Nsec3, Opcode, Question, RData, RType, Rcode,
    Record, Rrsig, Soa, Svcb, TypeBitmap,
};

use hickory_proto::op as hop;
use hickory_proto::rr as hrr;
use hickory_proto::rr::dnssec::rdata as hsec;
use hickory_proto::rr::dnssec::{Algorithm, DigestType, Nsec3HashAlgorithm};
use hickory_proto::rr::rdata as hrd;
use hickory_proto::rr::rdata::svcb as hsvcb;
use hickory_proto::serialize::binary::BinEncodable;

const MESSAGES: usize = 4000;

// ---------------------------------------------------------------------------------------------
// Generation (our types).

struct Gen {
    rng: StdRng,
    pool: Vec<Name>,
}

impl Gen {
    fn label(&mut self) -> Vec<u8> {
        let len = if self.rng.gen_bool(0.85) {
            self.rng.gen_range(1..=12)
        } else {
            self.rng.gen_range(13..=63)
        };
        (0..len)
            .map(|_| match self.rng.gen_range(0..10) {
                0..=5 => b"abcdefghijklmnopqrstuvwxyz0123456789-_"[self.rng.gen_range(0..38)],
                6 => self.rng.gen_range(b'A'..=b'Z'),
                7 => *[b'.', b'\\', b' ', b'"', b'*', b';', b'(', b'@', 0, 0xff]
                    .get(self.rng.gen_range(0..10))
                    .unwrap_or(&b'x'),
                _ => self.rng.gen(),
            })
            .collect()
    }

    fn name(&mut self) -> Name {
        let near_limit = self.rng.gen_bool(0.02);
        let (mut labels, base): (Vec<Vec<u8>>, Option<Name>) =
            if !self.pool.is_empty() && self.rng.gen_bool(0.4) && !near_limit {
                let base = self.pool[self.rng.gen_range(0..self.pool.len())].clone();
                let extra = self.rng.gen_range(0..=2);
                ((0..extra).map(|_| self.label()).collect(), Some(base))
            } else {
                let count = if near_limit {
                    8
                } else {
                    self.rng.gen_range(0..=5)
                };
                ((0..count).map(|_| self.label()).collect(), None)
            };
        if near_limit {
            for l in labels.iter_mut() {
                l.resize(63, b'z');
            }
        }
        let base_labels: Vec<Vec<u8>> = base
            .map(|b| b.labels().map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        labels.extend(base_labels);
        // Keep within 255 octets by dropping leading labels.
        while labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1 > 255 {
            labels.remove(0);
        }
        let name = Name::from_labels(labels.iter().map(Vec::as_slice)).expect("valid name");
        if self.pool.len() < 64 {
            self.pool.push(name.clone());
        } else {
            let i = self.rng.gen_range(0..64);
            self.pool[i] = name.clone();
        }
        name
    }

    fn bytes(&mut self, max: usize) -> Box<[u8]> {
        let len = self.rng.gen_range(0..=max);
        (0..len).map(|_| self.rng.gen()).collect()
    }

    fn types(&mut self) -> TypeBitmap {
        let n = self.rng.gen_range(0..=6);
        TypeBitmap::new((0..n).map(|_| match self.rng.gen_range(0..4) {
            0 => RType(self.rng.gen()),
            _ => RType(self.rng.gen_range(1..=300)),
        }))
    }

    fn svcb(&mut self) -> Svcb {
        let mut params: Vec<(u16, Box<[u8]>)> = Vec::new();
        for key in 0..=6u16 {
            if !self.rng.gen_bool(0.35) {
                continue;
            }
            let value: Vec<u8> = match key {
                svc_key::MANDATORY => (0..self.rng.gen_range(1..=3))
                    .flat_map(|_| self.rng.gen_range(1u16..=6).to_be_bytes())
                    .collect(),
                svc_key::ALPN => {
                    let mut v = Vec::new();
                    for _ in 0..self.rng.gen_range(1..=3) {
                        let len = self.rng.gen_range(1..=10);
                        v.push(len as u8);
                        v.extend((0..len).map(|_| self.rng.gen_range(0x20u8..0x7f)));
                    }
                    v
                }
                svc_key::NO_DEFAULT_ALPN => vec![],
                svc_key::PORT => self.rng.gen::<u16>().to_be_bytes().to_vec(),
                svc_key::IPV4HINT => (0..self.rng.gen_range(1..=3) * 4)
                    .map(|_| self.rng.gen())
                    .collect(),
                svc_key::ECH => {
                    // hickory 0.24's ECH carries its own length prefix (see the module docs).
                    let data = self.bytes(20);
                    let mut v = (data.len() as u16).to_be_bytes().to_vec();
                    v.extend_from_slice(&data);
                    v
                }
                _ => (0..self.rng.gen_range(1..=2) * 16)
                    .map(|_| self.rng.gen())
                    .collect(),
            };
            params.push((key, value.into()));
        }
        let unknown_range = if self.rng.gen_bool(0.5) {
            7..=65279u16
        } else {
            65280..=65534u16
        };
        let mut unknown: Vec<u16> = (0..self.rng.gen_range(0..=2))
            .map(|_| self.rng.gen_range(unknown_range.clone()))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        for key in unknown {
            let v = self.bytes(20);
            params.push((key, v));
        }
        Svcb {
            priority: self.rng.gen(),
            target: self.name(),
            params,
        }
    }

    fn rdata(&mut self) -> RData {
        match self.rng.gen_range(0..20) {
            0 => RData::A(Ipv4Addr::from(self.rng.gen::<u32>())),
            1 => RData::Aaaa(Ipv6Addr::from(self.rng.gen::<u128>())),
            2 => RData::Ns(self.name()),
            3 => RData::Cname(self.name()),
            4 => RData::Dname(self.name()),
            5 => RData::Ptr(self.name()),
            6 => RData::Soa(Soa {
                mname: self.name(),
                rname: self.name(),
                serial: self.rng.gen(),
                refresh: self.rng.gen(),
                retry: self.rng.gen(),
                expire: self.rng.gen(),
                minimum: self.rng.gen(),
            }),
            7 => RData::Mx {
                preference: self.rng.gen(),
                exchange: self.name(),
            },
            8 => {
                let n = self.rng.gen_range(1..=4);
                RData::Txt(
                    (0..n)
                        .map(|_| {
                            if self.rng.gen_bool(0.05) {
                                self.bytes(255)
                                    .iter()
                                    .copied()
                                    .chain([7u8; 255])
                                    .take(255)
                                    .collect()
                            } else {
                                self.bytes(40)
                            }
                        })
                        .collect(),
                )
            }
            9 => RData::Srv {
                priority: self.rng.gen(),
                weight: self.rng.gen(),
                port: self.rng.gen(),
                target: self.name(),
            },
            10 => {
                let flags = if self.rng.gen() { 128 } else { 0 };
                if self.rng.gen_bool(0.4) {
                    let tag: &[u8] = if self.rng.gen() {
                        b"issue"
                    } else {
                        b"issuewild"
                    };
                    RData::Caa {
                        flags,
                        tag: tag.into(),
                        value: format!("ca{}.example.net", self.rng.gen_range(0..100))
                            .into_bytes()
                            .into(),
                    }
                } else {
                    let len = self.rng.gen_range(1..=15);
                    let mut tag: Vec<u8> = (0..len)
                        .map(|_| {
                            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                [self.rng.gen_range(0..62)]
                        })
                        .collect();
                    if ["issue", "issuewild", "iodef"]
                        .iter()
                        .any(|k| k.as_bytes().eq_ignore_ascii_case(&tag))
                    {
                        tag.push(b'x');
                    }
                    RData::Caa {
                        flags,
                        tag: tag.into(),
                        value: self.bytes(30),
                    }
                }
            }
            11 => RData::Svcb(self.svcb()),
            12 => RData::Https(self.svcb()),
            13 => RData::Ds {
                key_tag: self.rng.gen(),
                algorithm: self.rng.gen(),
                digest_type: self.rng.gen_range(1..=5),
                digest: self.bytes(48),
            },
            14 => {
                let mut flags = 0;
                for bit in [0x0100u16, 0x0080, 0x0001] {
                    if self.rng.gen() {
                        flags |= bit;
                    }
                }
                RData::Dnskey {
                    flags,
                    protocol: 3,
                    algorithm: self.rng.gen(),
                    public_key: self.bytes(64),
                }
            }
            15 => RData::Rrsig(Rrsig {
                type_covered: RType(self.rng.gen()),
                algorithm: self.rng.gen(),
                labels: self.rng.gen(),
                original_ttl: self.rng.gen(),
                expiration: self.rng.gen(),
                inception: self.rng.gen(),
                key_tag: self.rng.gen(),
                signer_name: self.name(),
                signature: self.bytes(64),
            }),
            16 => RData::Nsec {
                next: self.name(),
                types: self.types(),
            },
            17 => RData::Nsec3(Nsec3 {
                hash_algorithm: 1,
                flags: self.rng.gen_range(0..=1),
                iterations: self.rng.gen(),
                salt: self.bytes(8),
                next_hashed_owner: (0..self.rng.gen_range(1..=32))
                    .map(|_| self.rng.gen())
                    .collect(),
                types: self.types(),
            }),
            18 => RData::Nsec3Param {
                hash_algorithm: 1,
                flags: self.rng.gen_range(0..=1),
                iterations: self.rng.gen(),
                salt: self.bytes(8),
            },
            _ => RData::Unknown {
                rtype: RType(match self.rng.gen() {
                    // hickory 0.24 gives the private-use code 65305 to ANAME.
                    true => self.rng.gen_range(65280..=65534u16).max(65306),
                    false => self.rng.gen_range(1000..=30000),
                }),
                data: self.bytes(30),
            },
        }
    }

    fn record(&mut self) -> Record {
        let class = match self.rng.gen_range(0..10) {
            0 => Class::CH,
            1 => Class(self.rng.gen_range(5..=253)),
            _ => Class::IN,
        };
        Record {
            name: self.name(),
            class,
            ttl: self.rng.gen(),
            data: self.rdata(),
        }
    }

    fn edns(&mut self) -> Edns {
        let mut codes: Vec<u16> = vec![];
        let mut options = vec![];
        let candidates = [
            code::CLIENT_SUBNET,
            code::COOKIE,
            code::PADDING,
            code::EXTENDED_ERROR,
            self.rng.gen_range(20..=65000),
        ];
        for c in candidates {
            if codes.contains(&c) || !self.rng.gen_bool(0.4) {
                continue;
            }
            codes.push(c);
            options.push(match c {
                code::CLIENT_SUBNET => {
                    let v6 = self.rng.gen();
                    let max = if v6 { 128 } else { 32 };
                    let source_prefix: u8 = self.rng.gen_range(0..=max);
                    let mut address: Vec<u8> = (0..usize::from(source_prefix).div_ceil(8))
                        .map(|_| self.rng.gen())
                        .collect();
                    if source_prefix % 8 != 0 {
                        if let Some(last) = address.last_mut() {
                            *last &= 0xFFu8 << (8 - source_prefix % 8);
                        }
                    }
                    EdnsOption::ClientSubnet(ClientSubnet {
                        family: if v6 { 2 } else { 1 },
                        source_prefix,
                        scope_prefix: self.rng.gen_range(0..=source_prefix),
                        address: address.into(),
                    })
                }
                code::COOKIE => EdnsOption::Cookie {
                    client: self.rng.gen(),
                    server: if self.rng.gen() {
                        Box::new([])
                    } else {
                        (0..self.rng.gen_range(8..=32))
                            .map(|_| self.rng.gen())
                            .collect()
                    },
                },
                code::PADDING => EdnsOption::Padding(self.rng.gen_range(0..=40)),
                code::EXTENDED_ERROR => EdnsOption::ExtendedError {
                    info_code: self.rng.gen_range(0..=30),
                    extra_text: (0..self.rng.gen_range(0..=12))
                        .map(|_| self.rng.gen_range(b' '..=b'~') as char)
                        .collect(),
                },
                c => EdnsOption::Unknown {
                    code: c,
                    data: self.bytes(16),
                },
            });
        }
        Edns {
            udp_payload: self.rng.gen_range(512..=u16::MAX),
            ext_rcode: 0,
            version: if self.rng.gen_bool(0.9) {
                0
            } else {
                self.rng.gen()
            },
            dnssec_ok: self.rng.gen(),
            z: 0,
            options,
        }
    }

    fn message(&mut self) -> Message {
        let opcodes = [
            Opcode::QUERY,
            Opcode::STATUS,
            Opcode::NOTIFY,
            Opcode::UPDATE,
        ];
        let mut m = Message {
            header: Header {
                id: self.rng.gen(),
                response: self.rng.gen(),
                opcode: opcodes[self.rng.gen_range(0..opcodes.len())],
                authoritative: self.rng.gen(),
                truncated: self.rng.gen(),
                recursion_desired: self.rng.gen(),
                recursion_available: self.rng.gen(),
                z: false,
                authentic_data: self.rng.gen(),
                checking_disabled: self.rng.gen(),
                ..Header::default()
            },
            ..Message::default()
        };
        for _ in 0..self.rng.gen_range(0..=2) {
            let qclass = [Class::IN, Class::CH, Class::ANY][self.rng.gen_range(0..3)];
            m.questions.push(Question {
                name: self.name(),
                qtype: RType(self.rng.gen()),
                qclass,
            });
        }
        m.answers = (0..self.rng.gen_range(0..=8))
            .map(|_| self.record())
            .collect();
        m.authority = (0..self.rng.gen_range(0..=4))
            .map(|_| self.record())
            .collect();
        m.additional = (0..self.rng.gen_range(0..=4))
            .map(|_| self.record())
            .collect();
        if self.rng.gen_bool(0.6) {
            m.edns = Some(self.edns());
            // Extended RCODEs (BADVERS, BADCOOKIE, ...) need EDNS.
            m.set_rcode(Rcode(self.rng.gen_range(0..=30)));
        } else {
            m.set_rcode(Rcode(self.rng.gen_range(0..=15)));
        }
        m
    }
}

// ---------------------------------------------------------------------------------------------
// Conversion to hickory (the reverse direction's input).

fn h_name(n: &Name) -> hrr::Name {
    if n.is_root() {
        return hrr::Name::root();
    }
    hrr::Name::from_labels(n.labels()).expect("hickory accepts the name")
}

fn h_svcb(s: &Svcb) -> hrd::SVCB {
    let params = s
        .params
        .iter()
        .map(|(key, v)| {
            let k = hsvcb::SvcParamKey::from(*key);
            let value = match *key {
                svc_key::MANDATORY => hsvcb::SvcParamValue::Mandatory(hsvcb::Mandatory(
                    v.chunks(2)
                        .map(|c| hsvcb::SvcParamKey::from(u16::from_be_bytes([c[0], c[1]])))
                        .collect(),
                )),
                svc_key::ALPN => {
                    let mut ids = vec![];
                    let mut rest = &v[..];
                    while let Some((&len, tail)) = rest.split_first() {
                        let (id, after) = tail.split_at(usize::from(len));
                        ids.push(String::from_utf8(id.to_vec()).expect("ASCII alpn"));
                        rest = after;
                    }
                    hsvcb::SvcParamValue::Alpn(hsvcb::Alpn(ids))
                }
                svc_key::NO_DEFAULT_ALPN => hsvcb::SvcParamValue::NoDefaultAlpn,
                svc_key::PORT => hsvcb::SvcParamValue::Port(u16::from_be_bytes([v[0], v[1]])),
                svc_key::IPV4HINT => hsvcb::SvcParamValue::Ipv4Hint(hsvcb::IpHint(
                    v.chunks(4)
                        .map(|c| hrd::A(Ipv4Addr::new(c[0], c[1], c[2], c[3])))
                        .collect(),
                )),
                svc_key::ECH => hsvcb::SvcParamValue::EchConfig(hsvcb::EchConfig(v[2..].to_vec())),
                svc_key::IPV6HINT => hsvcb::SvcParamValue::Ipv6Hint(hsvcb::IpHint(
                    v.chunks(16)
                        .map(|c| {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(c);
                            hrd::AAAA(Ipv6Addr::from(o))
                        })
                        .collect(),
                )),
                _ => hsvcb::SvcParamValue::Unknown(hsvcb::Unknown(v.to_vec())),
            };
            (k, value)
        })
        .collect();
    hrd::SVCB::new(s.priority, h_name(&s.target), params)
}

fn h_types(t: &TypeBitmap) -> Vec<hrr::RecordType> {
    t.0.iter().map(|r| hrr::RecordType::from(r.0)).collect()
}

fn h_rdata(d: &RData) -> Option<hrr::RData> {
    use hrr::RData as H;
    Some(match d {
        RData::A(a) => H::A(hrd::A(*a)),
        RData::Aaaa(a) => H::AAAA(hrd::AAAA(*a)),
        RData::Ns(n) => H::NS(hrd::NS(h_name(n))),
        RData::Cname(n) => H::CNAME(hrd::CNAME(h_name(n))),
        RData::Ptr(n) => H::PTR(hrd::PTR(h_name(n))),
        RData::Dname(n) => H::Unknown {
            code: hrr::RecordType::from(39),
            rdata: hrd::NULL::with(n.as_wire().to_vec()),
        },
        RData::Soa(s) => H::SOA(hrd::SOA::new(
            h_name(&s.mname),
            h_name(&s.rname),
            s.serial,
            s.refresh as i32,
            s.retry as i32,
            s.expire as i32,
            s.minimum,
        )),
        RData::Mx {
            preference,
            exchange,
        } => H::MX(hrd::MX::new(*preference, h_name(exchange))),
        RData::Txt(strings) => H::TXT(hrd::TXT::from_bytes(
            strings.iter().map(|s| &s[..]).collect(),
        )),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => H::SRV(hrd::SRV::new(*priority, *weight, *port, h_name(target))),
        RData::Caa { flags, tag, value } => {
            let critical = flags & 0x80 != 0;
            let tag_s = String::from_utf8(tag.to_vec()).expect("alphanumeric tag");
            match tag_s.as_str() {
                "issue" | "issuewild" => {
                    let issuer = std::str::from_utf8(value).expect("ASCII issuer");
                    let name = hrr::Name::from_ascii(issuer).expect("issuer name");
                    if tag_s == "issue" {
                        H::CAA(hrd::CAA::new_issue(critical, Some(name), vec![]))
                    } else {
                        H::CAA(hrd::CAA::new_issuewild(critical, Some(name), vec![]))
                    }
                }
                _ => H::CAA(hrd::CAA {
                    issuer_critical: critical,
                    tag: hrd::caa::Property::Unknown(tag_s),
                    value: hrd::caa::Value::Unknown(value.to_vec()),
                }),
            }
        }
        RData::Svcb(s) => H::SVCB(h_svcb(s)),
        RData::Https(s) => H::HTTPS(hrd::HTTPS(h_svcb(s))),
        RData::Ds {
            key_tag,
            algorithm,
            digest_type,
            digest,
        } => H::DNSSEC(hsec::DNSSECRData::DS(hsec::DS::new(
            *key_tag,
            Algorithm::from_u8(*algorithm),
            DigestType::from_u8(*digest_type).expect("known digest type"),
            digest.to_vec(),
        ))),
        RData::Dnskey {
            flags,
            algorithm,
            public_key,
            ..
        } => H::DNSSEC(hsec::DNSSECRData::DNSKEY(hsec::DNSKEY::new(
            flags & 0x0100 != 0,
            flags & 0x0001 != 0,
            flags & 0x0080 != 0,
            Algorithm::from_u8(*algorithm),
            public_key.to_vec(),
        ))),
        RData::Rrsig(s) => H::DNSSEC(hsec::DNSSECRData::RRSIG(hsec::RRSIG::new(
            hrr::RecordType::from(s.type_covered.0),
            Algorithm::from_u8(s.algorithm),
            s.labels,
            s.original_ttl,
            s.expiration,
            s.inception,
            s.key_tag,
            h_name(&s.signer_name),
            s.signature.to_vec(),
        ))),
        RData::Nsec { next, types } => H::DNSSEC(hsec::DNSSECRData::NSEC(hsec::NSEC::new(
            h_name(next),
            h_types(types),
        ))),
        RData::Nsec3(n) => H::DNSSEC(hsec::DNSSECRData::NSEC3(hsec::NSEC3::new(
            Nsec3HashAlgorithm::from_u8(n.hash_algorithm).expect("SHA-1"),
            n.flags & 1 != 0,
            n.iterations,
            n.salt.to_vec(),
            n.next_hashed_owner.to_vec(),
            h_types(&n.types),
        ))),
        RData::Nsec3Param {
            hash_algorithm,
            flags,
            iterations,
            salt,
        } => H::DNSSEC(hsec::DNSSECRData::NSEC3PARAM(hsec::NSEC3PARAM::new(
            Nsec3HashAlgorithm::from_u8(*hash_algorithm).expect("SHA-1"),
            flags & 1 != 0,
            *iterations,
            salt.to_vec(),
        ))),
        RData::Unknown { rtype, data } => {
            if data.is_empty() {
                return None;
            }
            H::Unknown {
                code: hrr::RecordType::from(rtype.0),
                rdata: hrd::NULL::with(data.to_vec()),
            }
        }
    })
}

fn h_record(r: &Record) -> hrr::Record {
    let mut rec = match h_rdata(&r.data) {
        Some(d) => hrr::Record::from_rdata(h_name(&r.name), r.ttl, d),
        None => hrr::Record::with(h_name(&r.name), hrr::RecordType::from(r.rtype().0), r.ttl),
    };
    rec.set_dns_class(hrr::DNSClass::from(r.class.0));
    rec
}

fn h_option(o: &EdnsOption) -> hrd::opt::EdnsOption {
    match o {
        EdnsOption::ClientSubnet(cs) => {
            let ip = cs.ip().expect("IPv4 or IPv6");
            hrd::opt::EdnsOption::Subnet(hrd::opt::ClientSubnet::new(
                ip,
                cs.source_prefix,
                cs.scope_prefix,
            ))
        }
        other => hrd::opt::EdnsOption::Unknown(other.code(), option_data(other)),
    }
}

fn h_message(m: &Message) -> hop::Message {
    let mut h = hop::Message::new();
    h.set_id(m.header.id)
        .set_message_type(if m.header.response {
            hop::MessageType::Response
        } else {
            hop::MessageType::Query
        })
        .set_op_code(hop::OpCode::from_u8(m.header.opcode.0).expect("known opcode"))
        .set_authoritative(m.header.authoritative)
        .set_truncated(m.header.truncated)
        .set_recursion_desired(m.header.recursion_desired)
        .set_recursion_available(m.header.recursion_available)
        .set_authentic_data(m.header.authentic_data)
        .set_checking_disabled(m.header.checking_disabled);
    let rcode = m.rcode();
    h.set_response_code(hop::ResponseCode::from(rcode.high(), rcode.low()));
    for q in &m.questions {
        let mut hq = hop::Query::query(h_name(&q.name), hrr::RecordType::from(q.qtype.0));
        hq.set_query_class(hrr::DNSClass::from(q.qclass.0));
        h.add_query(hq);
    }
    for r in &m.answers {
        h.add_answer(h_record(r));
    }
    for r in &m.authority {
        h.add_name_server(h_record(r));
    }
    for r in &m.additional {
        h.add_additional(h_record(r));
    }
    if let Some(e) = &m.edns {
        let mut he = hop::Edns::new();
        he.set_max_payload(e.udp_payload)
            .set_version(e.version)
            .set_dnssec_ok(e.dnssec_ok);
        for o in &e.options {
            he.options_mut().insert(h_option(o));
        }
        h.set_edns(he);
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Comparison.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    /// Ours encoded, hickory parsed: `ours` is the original.
    Forward,
    /// Hickory encoded, ours parsed: `ours` is what we parsed.
    Reverse,
}

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn same_name(ours: &Name, theirs: &hrr::Name) -> Check {
    let a: Vec<&[u8]> = ours.labels().collect();
    let b: Vec<&[u8]> = theirs.iter().collect();
    ensure(
        theirs.is_fqdn()
            && a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| x.eq_ignore_ascii_case(y)),
        || format!("name {ours} vs {theirs:?}"),
    )
}

/// Our encoding of the option's data, as it is on the wire.
fn option_data(o: &EdnsOption) -> Vec<u8> {
    match o {
        EdnsOption::ClientSubnet(cs) => {
            let mut v = cs.family.to_be_bytes().to_vec();
            v.push(cs.source_prefix);
            v.push(cs.scope_prefix);
            v.extend_from_slice(&cs.address);
            v
        }
        EdnsOption::Cookie { client, server } => [&client[..], server].concat(),
        EdnsOption::Padding(n) => vec![0; usize::from(*n)],
        EdnsOption::ExtendedError {
            info_code,
            extra_text,
        } => [&info_code.to_be_bytes()[..], extra_text.as_bytes()].concat(),
        EdnsOption::Unknown { data, .. } => data.to_vec(),
    }
}

fn same_svcb(ours: &Svcb, theirs: &hrd::SVCB, dir: Dir) -> Check {
    ensure(ours.priority == theirs.svc_priority(), || {
        "SVCB priority".into()
    })?;
    same_name(&ours.target, theirs.target_name())?;
    let tp = theirs.svc_params();
    ensure(ours.params.len() == tp.len(), || {
        format!("SVCB param count {:?} vs {tp:?}", ours.params)
    })?;
    for ((key, value), (tk, tv)) in ours.params.iter().zip(tp) {
        ensure(*key == u16::from(*tk), || {
            format!("SvcParamKey {key} vs {tk:?}")
        })?;
        let theirs_wire: Vec<u8> = match tv {
            hsvcb::SvcParamValue::Mandatory(m) => {
                m.0.iter()
                    .flat_map(|k| u16::from(*k).to_be_bytes())
                    .collect()
            }
            hsvcb::SvcParamValue::Alpn(a) => {
                a.0.iter()
                    .flat_map(|id| std::iter::once(id.len() as u8).chain(id.bytes()))
                    .collect()
            }
            hsvcb::SvcParamValue::NoDefaultAlpn => vec![],
            hsvcb::SvcParamValue::Port(p) => p.to_be_bytes().to_vec(),
            hsvcb::SvcParamValue::Ipv4Hint(h) => h.0.iter().flat_map(|a| a.0.octets()).collect(),
            hsvcb::SvcParamValue::Ipv6Hint(h) => h.0.iter().flat_map(|a| a.0.octets()).collect(),
            // hickory 0.24 quirk: its ECH value has a length prefix of its own.
            hsvcb::SvcParamValue::EchConfig(e) => {
                [&(e.0.len() as u16).to_be_bytes()[..], &e.0].concat()
            }
            // hickory 0.24 quirk: it writes unknown values with an extra length octet.
            hsvcb::SvcParamValue::Unknown(u) if dir == Dir::Reverse => {
                [&[u.0.len() as u8][..], &u.0].concat()
            }
            hsvcb::SvcParamValue::Unknown(u) => u.0.clone(),
        };
        ensure(**value == *theirs_wire, || {
            format!("SvcParam {key}: {value:?} vs {tv:?}")
        })?;
    }
    Ok(())
}

fn same_types(ours: &TypeBitmap, theirs: &[hrr::RecordType]) -> Check {
    let mut t: Vec<u16> = theirs.iter().map(|r| u16::from(*r)).collect();
    t.sort_unstable();
    t.dedup();
    let o: Vec<u16> = ours.0.iter().map(|r| r.0).collect();
    ensure(o == t, || format!("type bitmap {o:?} vs {t:?}"))
}

fn same_rdata(ours: &RData, theirs: Option<&hrr::RData>, dir: Dir) -> Check {
    use hrr::RData as H;
    let Some(theirs) = theirs else {
        return ensure(
            matches!(ours, RData::Unknown { data, .. } if data.is_empty()),
            || format!("hickory has no data for {ours:?}"),
        );
    };
    let mismatch = || format!("{ours:?} vs {theirs:?}");
    match (ours, theirs) {
        (RData::A(a), H::A(b)) => ensure(*a == b.0, mismatch),
        (RData::Aaaa(a), H::AAAA(b)) => ensure(*a == b.0, mismatch),
        (RData::Ns(a), H::NS(b)) => same_name(a, &b.0),
        (RData::Cname(a), H::CNAME(b)) => same_name(a, &b.0),
        (RData::Ptr(a), H::PTR(b)) => same_name(a, &b.0),
        (RData::Dname(a), H::Unknown { code, rdata }) => ensure(
            u16::from(*code) == 39 && rdata.anything() == a.as_wire(),
            mismatch,
        ),
        (RData::Soa(a), H::SOA(b)) => {
            same_name(&a.mname, b.mname())?;
            same_name(&a.rname, b.rname())?;
            ensure(
                a.serial == b.serial()
                    && a.refresh == b.refresh() as u32
                    && a.retry == b.retry() as u32
                    && a.expire == b.expire() as u32
                    && a.minimum == b.minimum(),
                mismatch,
            )
        }
        (
            RData::Mx {
                preference,
                exchange,
            },
            H::MX(b),
        ) => {
            ensure(*preference == b.preference(), mismatch)?;
            same_name(exchange, b.exchange())
        }
        (RData::Txt(a), H::TXT(b)) => ensure(a[..] == *b.txt_data(), mismatch),
        (
            RData::Srv {
                priority,
                weight,
                port,
                target,
            },
            H::SRV(b),
        ) => {
            ensure(
                *priority == b.priority() && *weight == b.weight() && *port == b.port(),
                mismatch,
            )?;
            same_name(target, b.target())
        }
        (RData::Caa { flags, tag, value }, H::CAA(b)) => {
            ensure((flags & 0x80 != 0) == b.issuer_critical(), mismatch)?;
            ensure(
                tag.eq_ignore_ascii_case(b.tag().as_str().as_bytes()),
                mismatch,
            )?;
            match b.value() {
                hrd::caa::Value::Issuer(Some(name), kv) if kv.is_empty() => {
                    let shown = name.to_string();
                    ensure(
                        shown.trim_end_matches('.').as_bytes() == &value[..],
                        mismatch,
                    )
                }
                hrd::caa::Value::Unknown(bytes) => ensure(bytes[..] == value[..], mismatch),
                _ => Err(mismatch()),
            }
        }
        (RData::Svcb(a), H::SVCB(b)) => same_svcb(a, b, dir),
        (RData::Https(a), H::HTTPS(b)) => same_svcb(a, &b.0, dir),
        (ours, H::DNSSEC(d)) => match (ours, d) {
            (
                RData::Ds {
                    key_tag,
                    algorithm,
                    digest_type,
                    digest,
                },
                hsec::DNSSECRData::DS(b),
            ) => ensure(
                *key_tag == b.key_tag()
                    && *algorithm == u8::from(b.algorithm())
                    && *digest_type == u8::from(b.digest_type())
                    && digest[..] == *b.digest(),
                mismatch,
            ),
            (
                RData::Dnskey {
                    flags,
                    protocol,
                    algorithm,
                    public_key,
                },
                hsec::DNSSECRData::DNSKEY(b),
            ) => ensure(
                *flags == b.flags()
                    && *protocol == 3
                    && *algorithm == u8::from(b.algorithm())
                    && public_key[..] == *b.public_key(),
                mismatch,
            ),
            (RData::Rrsig(a), hsec::DNSSECRData::RRSIG(b)) => {
                ensure(
                    a.type_covered.0 == u16::from(b.type_covered())
                        && a.algorithm == u8::from(b.algorithm())
                        && a.labels == b.num_labels()
                        && a.original_ttl == b.original_ttl()
                        && a.expiration == b.sig_expiration()
                        && a.inception == b.sig_inception()
                        && a.key_tag == b.key_tag()
                        && a.signature[..] == *b.sig(),
                    mismatch,
                )?;
                same_name(&a.signer_name, b.signer_name())
            }
            (RData::Nsec { next, types }, hsec::DNSSECRData::NSEC(b)) => {
                same_name(next, b.next_domain_name())?;
                same_types(types, b.type_bit_maps())
            }
            (RData::Nsec3(a), hsec::DNSSECRData::NSEC3(b)) => {
                ensure(
                    a.hash_algorithm == u8::from(b.hash_algorithm())
                        && (a.flags & 1 != 0) == b.opt_out()
                        && a.flags & 0xFE == 0
                        && a.iterations == b.iterations()
                        && a.salt[..] == *b.salt()
                        && a.next_hashed_owner[..] == *b.next_hashed_owner_name(),
                    mismatch,
                )?;
                same_types(&a.types, b.type_bit_maps())
            }
            (
                RData::Nsec3Param {
                    hash_algorithm,
                    flags,
                    iterations,
                    salt,
                },
                hsec::DNSSECRData::NSEC3PARAM(b),
            ) => ensure(
                *hash_algorithm == u8::from(b.hash_algorithm())
                    && (flags & 1 != 0) == b.opt_out()
                    && *iterations == b.iterations()
                    && salt[..] == *b.salt(),
                mismatch,
            ),
            _ => Err(mismatch()),
        },
        (RData::Unknown { rtype, data }, H::Unknown { code, rdata }) => ensure(
            rtype.0 == u16::from(*code) && data[..] == *rdata.anything(),
            mismatch,
        ),
        _ => Err(mismatch()),
    }
}

fn same_record(ours: &Record, theirs: &hrr::Record, dir: Dir) -> Check {
    same_name(&ours.name, theirs.name())?;
    ensure(ours.rtype().0 == u16::from(theirs.record_type()), || {
        format!("type {} vs {:?}", ours.rtype(), theirs.record_type())
    })?;
    ensure(ours.class.0 == u16::from(theirs.dns_class()), || {
        format!("class {} vs {:?}", ours.class, theirs.dns_class())
    })?;
    ensure(ours.ttl == theirs.ttl(), || {
        format!("TTL {} vs {}", ours.ttl, theirs.ttl())
    })?;
    same_rdata(&ours.data, theirs.data(), dir).map_err(|e| format!("{}: {e}", ours.name))
}

fn same_section(ours: &[Record], theirs: &[hrr::Record], dir: Dir, what: &str) -> Check {
    ensure(ours.len() == theirs.len(), || {
        format!("{what}: {} records vs {}", ours.len(), theirs.len())
    })?;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        same_record(a, b, dir).map_err(|e| format!("{what}[{i}]: {e}"))?;
    }
    Ok(())
}

fn same_message(ours: &Message, theirs: &hop::Message, dir: Dir) -> Check {
    let (h, th) = (&ours.header, theirs.header());
    ensure(
        h.id == th.id()
            && h.response == (th.message_type() == hop::MessageType::Response)
            && h.opcode.0 == u8::from(th.op_code())
            && h.authoritative == th.authoritative()
            && h.truncated == th.truncated()
            && h.recursion_desired == th.recursion_desired()
            && h.recursion_available == th.recursion_available()
            && h.authentic_data == th.authentic_data()
            && h.checking_disabled == th.checking_disabled(),
        || format!("header {h:?} vs {th:?}"),
    )?;
    ensure(ours.rcode().0 == u16::from(theirs.response_code()), || {
        format!("rcode {} vs {:?}", ours.rcode(), theirs.response_code())
    })?;
    ensure(ours.questions.len() == theirs.queries().len(), || {
        "question count".into()
    })?;
    for (q, tq) in ours.questions.iter().zip(theirs.queries()) {
        same_name(&q.name, tq.name())?;
        ensure(
            q.qtype.0 == u16::from(tq.query_type()) && q.qclass.0 == u16::from(tq.query_class()),
            || format!("question {q:?} vs {tq:?}"),
        )?;
    }
    same_section(&ours.answers, theirs.answers(), dir, "answer")?;
    same_section(&ours.authority, theirs.name_servers(), dir, "authority")?;
    same_section(&ours.additional, theirs.additionals(), dir, "additional")?;
    match (&ours.edns, theirs.extensions()) {
        (None, None) => Ok(()),
        (Some(e), Some(te)) => {
            ensure(
                e.udp_payload == te.max_payload()
                    && e.version == te.version()
                    && e.dnssec_ok == te.dnssec_ok(),
                || format!("EDNS {e:?} vs {te:?}"),
            )?;
            let ours_opts: BTreeMap<u16, Vec<u8>> = e
                .options
                .iter()
                .map(|o| (o.code(), option_data(o)))
                .collect();
            let theirs_opts: BTreeMap<u16, Vec<u8>> = te
                .options()
                .as_ref()
                .values()
                .map(|o| match o {
                    hrd::opt::EdnsOption::Subnet(cs) => {
                        let bytes = cs.to_bytes().expect("hickory encodes ECS");
                        (code::CLIENT_SUBNET, bytes)
                    }
                    hrd::opt::EdnsOption::Unknown(c, d) => (*c, d.clone()),
                    other => (0, format!("{other:?}").into_bytes()),
                })
                .collect();
            ensure(e.options.len() == ours_opts.len(), || {
                "duplicate option codes".into()
            })?;
            ensure(ours_opts == theirs_opts, || {
                format!("EDNS options {ours_opts:?} vs {theirs_opts:?}")
            })
        }
        (a, b) => Err(format!("EDNS {a:?} vs {b:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

fn corpus() -> Vec<Message> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(0x0d15_ea5e),
        pool: Vec::new(),
    };
    (0..MESSAGES).map(|_| g.message()).collect()
}

/// Counts records per type so the test proves it covered every one.
fn coverage(msgs: &[Message]) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for m in msgs {
        for r in m.answers.iter().chain(&m.authority).chain(&m.additional) {
            let key = match &r.data {
                RData::Unknown { .. } => "unknown".to_string(),
                d => d.rtype().to_string(),
            };
            *c.entry(key).or_insert(0) += 1;
        }
        if let Some(e) = &m.edns {
            for o in &e.options {
                *c.entry(format!("option{}", o.code())).or_insert(0) += 1;
            }
        }
    }
    c
}

fn assert_covered(msgs: &[Message]) {
    let c = coverage(msgs);
    let want = [
        "A",
        "AAAA",
        "NS",
        "CNAME",
        "DNAME",
        "PTR",
        "SOA",
        "MX",
        "TXT",
        "SRV",
        "CAA",
        "SVCB",
        "HTTPS",
        "DS",
        "DNSKEY",
        "RRSIG",
        "NSEC",
        "NSEC3",
        "NSEC3PARAM",
        "unknown",
        "option8",
        "option10",
        "option12",
        "option15",
    ];
    for w in want {
        assert!(
            c.get(w).copied().unwrap_or(0) >= 50,
            "too few {w} in the corpus: {c:?}"
        );
    }
}

#[test]
fn hickory_parses_what_we_encode() {
    let msgs = corpus();
    assert_covered(&msgs);
    let mut failures = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let bytes = m.encode().expect("our encoder");
        // Our own round trip first: the corpus must be valid for us too.
        let back = Message::parse(&bytes).unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(back.answers, m.answers, "message {i}");
        match hop::Message::from_vec(&bytes) {
            Ok(theirs) => {
                if let Err(e) = same_message(m, &theirs, Dir::Forward) {
                    failures.push(format!("message {i}: {e}"));
                }
            }
            Err(e) => failures.push(format!("message {i}: hickory cannot parse it: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {MESSAGES} differ; first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn we_parse_what_hickory_encodes() {
    let msgs = corpus();
    let mut failures = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let theirs = h_message(m);
        let bytes = theirs.to_vec().expect("hickory encodes");
        match Message::parse(&bytes) {
            Ok(ours) => {
                if let Err(e) = same_message(&ours, &theirs, Dir::Reverse) {
                    failures.push(format!("message {i}: {e}"));
                }
            }
            Err(e) => failures.push(format!("message {i}: we cannot parse it: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {MESSAGES} differ; first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// The comparison itself must notice differences, or the two tests above prove nothing.
#[test]
fn the_comparison_detects_changes() {
    let msgs = corpus();
    let mut checked = 0;
    for m in msgs.iter().filter(|m| !m.answers.is_empty()).take(200) {
        let theirs = hop::Message::from_vec(&m.encode().expect("encode")).expect("hickory parse");
        assert!(same_message(m, &theirs, Dir::Forward).is_ok());
        let mut changed = m.clone();
        changed.answers[0].ttl ^= 1;
        assert!(same_message(&changed, &theirs, Dir::Forward).is_err());
        let mut changed = m.clone();
        let name = changed.answers[0].name.prepend(b"x");
        if let Ok(n) = name {
            changed.answers[0].name = n;
            assert!(same_message(&changed, &theirs, Dir::Forward).is_err());
        }
        let mut changed = m.clone();
        changed.answers[0].data = match &changed.answers[0].data {
            RData::A(a) => RData::A(Ipv4Addr::from(u32::from(*a) ^ 1)),
            _ => RData::A(Ipv4Addr::LOCALHOST),
        };
        assert!(same_message(&changed, &theirs, Dir::Forward).is_err());
        checked += 1;
    }
    assert!(checked >= 100);
    let _ = IpAddr::V4(Ipv4Addr::LOCALHOST);
}
