//! Whole messages (RFC 1035 section 4): parsing every section and building them back.
//!
//! Parsing is strict: counts must match the data, nothing may trail the last record, at most one
//! OPT record and only in the additional section with the root as owner (RFC 6891 section 6.1.1).
//! Building owns compression and the size limit: [`Message::encode_limited`] leaves out the
//! additional records of an answer that does not fit, then the NS-only authority section of a
//! positive one, and if that is not enough turns it into a truncated (TC=1) one that carries only
//! the question and OPT.

use super::builder::{MessageBuilder, MAX_MESSAGE_LEN};
use super::edns::{opt_head, Edns, DO_BIT, OPT_FIXED_LEN};
use super::error::{Result, WireError};
use super::fit::{Fit, Layout};
use super::header::{Header, HEADER_LEN};
use super::name::{Name, NameBuf};
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

/// The bits of a query that say what it is for: RD (RFC 1035: recursion wanted), CD (RFC 4035
/// section 3.2.2: the asker validates itself) and DO (RFC 3225: DNSSEC records wanted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueryFlags {
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub dnssec_ok: bool,
}

impl QueryFlags {
    /// A query for a validator: recursion, DNSSEC records, and no checking by the upstream, which
    /// would hide a bogus answer behind a SERVFAIL.
    pub const VALIDATION: QueryFlags = QueryFlags {
        recursion_desired: true,
        checking_disabled: true,
        dnssec_ok: true,
    };
    /// An iterative query to an authoritative server: no recursion.
    pub const ITERATION: QueryFlags = QueryFlags {
        recursion_desired: false,
        checking_disabled: false,
        dnssec_ok: true,
    };

    /// The flags of a client's query.
    pub fn of(query: &Message) -> QueryFlags {
        QueryFlags {
            recursion_desired: query.header.recursion_desired,
            checking_disabled: query.header.checking_disabled,
            dnssec_ok: query.edns.as_ref().is_some_and(|e| e.dnssec_ok),
        }
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
    // The owner is read on the stack first: an OPT record's (the root) is never kept.
    let mut owner = NameBuf::new();
    owner.read_from(r)?;
    let rtype = RType(r.u16()?);
    if rtype == RType::OPT {
        if !owner.is_root() {
            return Err(WireError::BadOpt("OPT owner is not the root"));
        }
        return Ok(Entry::Opt(Edns::read_after_type(r)?));
    }
    let name = Name::from(&owner);
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

/// Most records of one section [`Message::parse`] makes room for before reading them.
const RESERVE_MAX: usize = 64;

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
        // Each section's room is reserved once (growing it from empty cost an allocation per
        // doubling), up to RESERVE_MAX records: a forged count fails at the first record that is
        // not there, having reserved little. The additional section's last record is usually
        // the OPT record, which goes to `edns`.
        let room = |count: u16| usize::from(count).min(RESERVE_MAX);
        m.questions.reserve(room(header.qdcount));
        m.answers.reserve(room(header.ancount));
        m.authority.reserve(room(header.nscount));
        m.additional.reserve(room(header.arcount.saturating_sub(1)));
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

    /// A query for `question` built for its purpose: the ID, the `flags`, and an OPT record of our
    /// own (`payload`, DO as the flags say, no options) whatever the asker sent.
    pub fn outgoing(question: &Question, flags: QueryFlags, id: u16, payload: u16) -> Message {
        Message {
            header: Header {
                id,
                recursion_desired: flags.recursion_desired,
                checking_disabled: flags.checking_disabled,
                ..Header::default()
            },
            questions: vec![question.clone()],
            edns: Some(Edns {
                udp_payload: payload,
                dnssec_ok: flags.dnssec_ok,
                ..Edns::default()
            }),
            ..Message::default()
        }
    }

    /// The wire form of [`Message::outgoing`] (without its OPT record when `payload` is None),
    /// written straight into one buffer of the right size: a query is a header, one question and
    /// at most an OPT record, so it needs neither a message value nor the builder and its
    /// compression table (a name alone is never compressed). Octet for octet the same as
    /// `Message::outgoing(..).encode()` (tested below).
    pub fn encode_outgoing(
        question: &Question,
        flags: QueryFlags,
        id: u16,
        payload: Option<u16>,
    ) -> Vec<u8> {
        let header = Header {
            id,
            recursion_desired: flags.recursion_desired,
            checking_disabled: flags.checking_disabled,
            qdcount: 1,
            arcount: u16::from(payload.is_some()),
            ..Header::default()
        };
        let name = question.name.as_wire();
        let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 4 + OPT_FIXED_LEN);
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&question.qtype.0.to_be_bytes());
        out.extend_from_slice(&question.qclass.0.to_be_bytes());
        if let Some(payload) = payload {
            let flags = if flags.dnssec_ok { DO_BIT } else { 0 };
            out.extend_from_slice(&opt_head(payload, 0, 0, flags, 0));
        }
        out
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

    /// Encodes the message within `limit` octets. What does not fit is cut by the rule of
    /// [`crate::wire::fit`] (additional records first, then an authority section of NS records only
    /// for a positive answer, else TC=1 with header, question and OPT record), from one encoding of
    /// the whole message: removing later sections leaves the octets of earlier ones as they are.
    pub fn encode_limited(&self, limit: usize) -> Result<Vec<u8>> {
        let limit = limit.clamp(HEADER_LEN, MAX_MESSAGE_LEN);
        let (full, layout) = self.encode_with_layout()?;
        let fit = layout.fit(limit).ok_or(WireError::MessageTooLarge)?;
        if fit == Fit::Whole {
            if full.len() > MAX_MESSAGE_LEN {
                return Err(WireError::MessageTooLarge);
            }
            return Ok(full);
        }
        let (kept, [an, ns, ar]) = layout.kept(fit);
        let opt_at = full.len() - layout.opt;
        let mut out = Vec::with_capacity(layout.head + kept + layout.opt);
        out.extend_from_slice(&full[..layout.head + kept]);
        out.extend_from_slice(&full[opt_at..]);
        let mut header = self.header;
        header.qdcount =
            u16::try_from(self.questions.len()).map_err(|_| WireError::MessageTooLarge)?;
        header.truncated = fit == Fit::Truncated;
        header.ancount = an;
        header.nscount = ns;
        header.arcount = ar + u16::from(self.edns.is_some());
        out[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        Ok(out)
    }

    /// Encodes the whole message (it may exceed a message's maximum; the caller cuts or refuses
    /// it) and measures its parts for [`Layout::fit`].
    fn encode_with_layout(&self) -> Result<(Vec<u8>, Layout)> {
        let count = |n: usize| u16::try_from(n).map_err(|_| WireError::MessageTooLarge);
        let mut header = self.header;
        header.qdcount = count(self.questions.len())?;
        header.ancount = count(self.answers.len())?;
        header.nscount = count(self.authority.len())?;
        header.arcount = count(self.additional.len() + usize::from(self.edns.is_some()))?;
        let mut b = MessageBuilder::new();
        b.put_bytes(&header.to_bytes());
        for q in &self.questions {
            q.write(&mut b);
        }
        let head = b.len();
        let mut mark = head;
        let mut lengths = [0usize; 3];
        for (len, section) in
            lengths
                .iter_mut()
                .zip([&self.answers, &self.authority, &self.additional])
        {
            for rec in section {
                rec.write(&mut b)?;
            }
            *len = b.len() - mark;
            mark = b.len();
        }
        if let Some(e) = &self.edns {
            e.write(&mut b);
        }
        let [answer, authority, additional] = lengths;
        let full = b.finish();
        let layout = Layout {
            head,
            answer,
            authority,
            additional,
            opt: full.len() - mark,
            ancount: header.ancount,
            nscount: header.nscount,
            arcount: count(self.additional.len())?,
            authority_ns_only: self.authority.iter().all(|r| r.rtype() == RType::NS),
        };
        Ok((full, layout))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_outgoing_query_written_directly_is_the_encoded_message() {
        for name in [".", "www.Example.test", "a.b.c.d.e.f.g.h"] {
            for (rd, cd, dnssec_ok) in [
                (false, false, false),
                (true, true, true),
                (false, false, true),
            ] {
                let q = Question::new(name.parse().unwrap(), RType::AAAA);
                let flags = QueryFlags {
                    recursion_desired: rd,
                    checking_disabled: cd,
                    dnssec_ok,
                };
                let mut m = Message::outgoing(&q, flags, 0xBEEF, 1232);
                assert_eq!(
                    Message::encode_outgoing(&q, flags, 0xBEEF, Some(1232)),
                    m.encode().unwrap()
                );
                m.edns = None;
                assert_eq!(
                    Message::encode_outgoing(&q, flags, 0xBEEF, None),
                    m.encode().unwrap()
                );
            }
        }
    }
}
