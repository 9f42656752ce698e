//! Whole messages (RFC 1035 section 4): parsing every section and building them back.
//!
//! Parsing is strict: counts must match the data, nothing may trail the last record, at most one
//! OPT record and only in the additional section with the root as owner (RFC 6891 section 6.1.1).
//! Building owns compression and the size limit: [`Message::encode_limited`] leaves out the
//! additional records of an answer that does not fit, then the NS-only authority section of a
//! positive one, and if that is not enough turns it into a truncated (TC=1) one that carries only
//! the question and OPT.

use super::builder::{MessageBuilder, MAX_MESSAGE_LEN};
use super::edns::Edns;
use super::error::{Result, WireError};
use super::header::{Header, HEADER_LEN};
use super::name::Name;
use super::rdata::RData;
use super::reader::Reader;
use super::types::{Class, Opcode, RType, Rcode};

/// A question (RFC 1035 section 4.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Question {
    pub name: Name,
    pub qtype: RType,
    pub qclass: Class,
}

impl Question {
    /// An IN-class question.
    pub fn new(name: Name, qtype: RType) -> Self {
        Question {
            name,
            qtype,
            qclass: Class::IN,
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Question> {
        let name = Name::read(r)?;
        Ok(Question {
            name,
            qtype: RType(r.u16()?),
            qclass: Class(r.u16()?),
        })
    }

    fn write(&self, b: &mut MessageBuilder) {
        b.put_name(&self.name, true);
        b.put_u16(self.qtype.0);
        b.put_u16(self.qclass.0);
    }
}

/// A resource record (RFC 1035 section 4.1.3). Its type is its data's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub class: Class,
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    /// An IN-class record.
    pub fn new(name: Name, ttl: u32, data: RData) -> Self {
        Record {
            name,
            class: Class::IN,
            ttl,
            data,
        }
    }

    /// The record's type.
    pub fn rtype(&self) -> RType {
        self.data.rtype()
    }

    /// Appends the whole record.
    pub fn write(&self, b: &mut MessageBuilder) -> Result<()> {
        b.put_name(&self.name, true);
        b.put_u16(self.rtype().0);
        b.put_u16(self.class.0);
        b.put_u32(self.ttl);
        let len_at = b.len();
        b.put_u16(0);
        self.data.write(b)?;
        let len = b.len() - len_at - 2;
        if len > u16::MAX as usize {
            return Err(WireError::MessageTooLarge);
        }
        b.patch_u16(len_at, len as u16);
        Ok(())
    }
}

/// What a record read from a section turned out to be.
enum Entry {
    Record(Record),
    Opt(Edns),
}

fn read_entry(r: &mut Reader<'_>) -> Result<Entry> {
    let name = Name::read(r)?;
    let rtype = RType(r.u16()?);
    if rtype == RType::OPT {
        if !name.is_root() {
            return Err(WireError::BadOpt("OPT owner is not the root"));
        }
        return Ok(Entry::Opt(Edns::read_after_type(r)?));
    }
    let class = Class(r.u16()?);
    let ttl = r.u32()?;
    let rdlen = r.u16()? as usize;
    let mut rd = r.sub(rdlen)?;
    let data = RData::read(rtype, &mut rd)?;
    rd.expect_end()?;
    Ok(Entry::Record(Record {
        name,
        class,
        ttl,
        data,
    }))
}

/// A parsed DNS message. Header counts are recomputed on encode; the OPT record lives in `edns`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    pub edns: Option<Edns>,
}

/// The sections [`Message::encode_limited`] writes.
#[derive(Clone, Copy)]
enum Sections {
    All,
    /// Without the additional records (the OPT record stays).
    NoAdditional,
    /// The answer section only (and the OPT record).
    AnswerOnly,
    /// Header with TC=1, question and OPT record.
    Truncated,
}

impl Message {
    /// Parses a complete message; trailing octets are an error.
    pub fn parse(msg: &[u8]) -> Result<Message> {
        let header = Header::parse(msg)?;
        let mut r = Reader::new(msg);
        r.take(HEADER_LEN)?;
        // Each question needs at least 5 octets and each record 11: reject absurd counts before
        // reserving anything.
        let min = header.qdcount as usize * 5
            + (header.ancount as usize + header.nscount as usize + header.arcount as usize) * 11;
        if min > r.remaining() {
            return Err(WireError::ShortRead {
                offset: HEADER_LEN,
                needed: min - r.remaining(),
            });
        }
        let mut m = Message {
            header,
            ..Message::default()
        };
        m.questions.reserve(header.qdcount as usize);
        for _ in 0..header.qdcount {
            m.questions.push(Question::read(&mut r)?);
        }
        for (count, section) in [
            (header.ancount, 0),
            (header.nscount, 1),
            (header.arcount, 2),
        ] {
            for _ in 0..count {
                match read_entry(&mut r)? {
                    Entry::Record(rec) => match section {
                        0 => m.answers.push(rec),
                        1 => m.authority.push(rec),
                        _ => m.additional.push(rec),
                    },
                    Entry::Opt(e) => {
                        if section != 2 {
                            return Err(WireError::BadOpt("OPT outside the additional section"));
                        }
                        if m.edns.is_some() {
                            return Err(WireError::BadOpt("more than one OPT record"));
                        }
                        m.edns = Some(e);
                    }
                }
            }
        }
        r.expect_end()?;
        Ok(m)
    }

    /// A recursive query for `name`/`qtype` with a zero ID.
    pub fn query(name: Name, qtype: RType) -> Message {
        let mut m = Message::default();
        m.header.recursion_desired = true;
        m.questions.push(Question::new(name, qtype));
        m
    }

    /// An empty response to `query`: same ID, opcode, question, RD and CD; QR and RA set; EDNS
    /// present (with our payload size) if the query had it, echoing DO.
    pub fn response_to(query: &Message) -> Message {
        let mut m = Message::default();
        m.header.id = query.header.id;
        m.header.response = true;
        m.header.opcode = query.header.opcode;
        m.header.recursion_desired = query.header.recursion_desired;
        m.header.checking_disabled = query.header.checking_disabled;
        m.header.recursion_available = true;
        m.questions = query.questions.clone();
        m.edns = query.edns.as_ref().map(|e| Edns {
            dnssec_ok: e.dnssec_ok,
            ..Edns::default()
        });
        m
    }

    /// The first question, if any.
    pub fn question(&self) -> Option<&Question> {
        self.questions.first()
    }

    /// The full response code, joining the header's 4 bits with EDNS's 8.
    pub fn rcode(&self) -> Rcode {
        Rcode::from_parts(
            self.header.rcode_low,
            self.edns.as_ref().map_or(0, |e| e.ext_rcode),
        )
    }

    /// Sets the response code; an extended one (above 15) needs EDNS, which is added if missing.
    pub fn set_rcode(&mut self, rcode: Rcode) {
        self.header.rcode_low = rcode.low();
        if rcode.high() != 0 {
            self.edns.get_or_insert_with(Edns::default).ext_rcode = rcode.high();
        } else if let Some(e) = &mut self.edns {
            e.ext_rcode = 0;
        }
    }

    /// True for a standard query (opcode QUERY).
    pub fn is_query_opcode(&self) -> bool {
        self.header.opcode == Opcode::QUERY
    }

    /// Encodes the message with compression and correct counts.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.encode_limited(MAX_MESSAGE_LEN)
    }

    /// Encodes the message within `limit` octets. If it does not fit, the additional records go
    /// first (RFC 2181 section 9: TC is not set merely because additional-section data, such as glue
    /// or the RRSIGs of additional RRsets (RFC 4035 section 3.1.1), did not fit), then, for an answer
    /// with records in its answer section, an authority section of NS records only; if it still
    /// does not fit, the copy holds only the header with TC=1, the question and the OPT record (a
    /// client retries over TCP rather than use a partial RRset).
    pub fn encode_limited(&self, limit: usize) -> Result<Vec<u8>> {
        let limit = limit.clamp(HEADER_LEN, MAX_MESSAGE_LEN);
        let full = self.encode_sections(Sections::All)?;
        if full.len() <= limit {
            return Ok(full);
        }
        if !self.additional.is_empty() {
            let lean = self.encode_sections(Sections::NoAdditional)?;
            if lean.len() <= limit {
                return Ok(lean);
            }
        }
        // A positive answer can also do without an authority section that is only the zone's NS
        // set (nsd leaves it out the same way). Anything else there is needed: the SOA of a negative
        // answer (RFC 2308, also after a CNAME), the NSEC/NSEC3 proof of a wildcard answer and
        // RRSIGs (RFC 4035 section 3.1.1 asks for TC when those do not fit).
        if !self.answers.is_empty()
            && !self.authority.is_empty()
            && self.authority.iter().all(|r| r.rtype() == RType::NS)
        {
            let lean = self.encode_sections(Sections::AnswerOnly)?;
            if lean.len() <= limit {
                return Ok(lean);
            }
        }
        let short = self.encode_sections(Sections::Truncated)?;
        if short.len() > limit {
            return Err(WireError::MessageTooLarge);
        }
        Ok(short)
    }

    fn encode_sections(&self, sections: Sections) -> Result<Vec<u8>> {
        let count = |n: usize| u16::try_from(n).map_err(|_| WireError::MessageTooLarge);
        let mut header = self.header;
        header.qdcount = count(self.questions.len())?;
        let edns_count = usize::from(self.edns.is_some());
        let (answers, authority, additional): (&[Record], &[Record], &[Record]) = match sections {
            Sections::All => (&self.answers, &self.authority, &self.additional),
            Sections::NoAdditional => (&self.answers, &self.authority, &[]),
            Sections::AnswerOnly => (&self.answers, &[], &[]),
            Sections::Truncated => {
                header.truncated = true;
                (&[], &[], &[])
            }
        };
        header.ancount = count(answers.len())?;
        header.nscount = count(authority.len())?;
        header.arcount = count(additional.len() + edns_count)?;
        let mut b = MessageBuilder::new();
        b.put_bytes(&header.to_bytes());
        for q in &self.questions {
            q.write(&mut b);
        }
        for rec in answers.iter().chain(authority).chain(additional) {
            rec.write(&mut b)?;
        }
        if let Some(e) = &self.edns {
            e.write(&mut b);
        }
        if b.len() > MAX_MESSAGE_LEN {
            return Err(WireError::MessageTooLarge);
        }
        Ok(b.finish())
    }
}
