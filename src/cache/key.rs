//! The cache key: everything about a query that can change its answer.
//!
//! A key is the lower-cased question name in wire form, then QTYPE, QCLASS and one flag octet for
//! the DO bit (RFC 3225: DNSSEC records only when asked for) and the CD bit (RFC 4035 section 3.2.2:
//! a CD=1 answer may hold data a validator would have rejected). It is built in a fixed array on
//! the stack so that a cache hit allocates nothing; only an inserted entry copies it to the heap.

use crate::wire::name::MAX_NAME_LEN;
use crate::wire::{Class, Name, RType};

/// Longest key: a maximal name, QTYPE, QCLASS and the flag octet.
pub(crate) const MAX_KEY_LEN: usize = MAX_NAME_LEN + 5;

const FLAG_DO: u8 = 0x01;
const FLAG_CD: u8 = 0x02;

/// A cache key, on the stack.
#[derive(Clone)]
pub(crate) struct Key {
    buf: [u8; MAX_KEY_LEN],
    len: u16,
}

impl Key {
    /// The key for a question. `qname` is an uncompressed wire-format name (as a [`crate::wire::Name`]
    /// or a [`crate::wire::QueryView`] holds it); `None` if it cannot be one.
    pub(crate) fn new(
        qname: &[u8],
        qtype: RType,
        qclass: Class,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Option<Key> {
        let n = qname.len();
        if n == 0 || n > MAX_NAME_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_KEY_LEN];
        buf[..n].copy_from_slice(qname);
        // Length octets are at most 63, below 'A', so lower-casing the whole wire form only
        // touches label characters (RFC 4343: only ASCII letters fold).
        buf[..n].make_ascii_lowercase();
        buf[n..n + 2].copy_from_slice(&qtype.0.to_be_bytes());
        buf[n + 2..n + 4].copy_from_slice(&qclass.0.to_be_bytes());
        let mut flags = 0;
        if dnssec_ok {
            flags |= FLAG_DO;
        }
        if checking_disabled {
            flags |= FLAG_CD;
        }
        buf[n + 4] = flags;
        Some(Key {
            buf,
            len: (n + 5) as u16,
        })
    }

    /// The key's octets.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// The lower-cased question name.
    pub(crate) fn qname(&self) -> &[u8] {
        qname_of(self.as_bytes())
    }

    /// QTYPE and QCLASS as they appear on the wire after the question name.
    pub(crate) fn type_and_class(&self) -> &[u8] {
        type_and_class_of(self.as_bytes())
    }

    /// The question type.
    pub(crate) fn qtype(&self) -> RType {
        let tc = self.type_and_class();
        RType(u16::from_be_bytes([tc[0], tc[1]]))
    }

    /// True when the key is for a CD=1 query.
    pub(crate) fn checking_disabled(&self) -> bool {
        checking_disabled_of(self.as_bytes())
    }

    /// True when the key is for a DO=1 query.
    pub(crate) fn dnssec_ok(&self) -> bool {
        self.buf[self.len as usize - 1] & FLAG_DO != 0
    }

    /// A key read back from storage (a cache file): accepted only if it is exactly what
    /// [`Key::new`] builds for its own question: a valid, lower-cased, uncompressed name and no
    /// unknown flag bits (class and type are judged by the policy when the entry is rebuilt).
    pub(crate) fn from_stored(bytes: &[u8]) -> Option<Key> {
        if bytes.len() < 6 || bytes.len() > MAX_KEY_LEN {
            return None;
        }
        let flags = bytes[bytes.len() - 1];
        if flags & !(FLAG_DO | FLAG_CD) != 0 {
            return None;
        }
        let qname = qname_of(bytes);
        Name::from_wire(qname).ok()?;
        let tc = type_and_class_of(bytes);
        let key = Key::new(
            qname,
            RType(u16::from_be_bytes([tc[0], tc[1]])),
            Class(u16::from_be_bytes([tc[2], tc[3]])),
            flags & FLAG_DO != 0,
            flags & FLAG_CD != 0,
        )?;
        (key.as_bytes() == bytes).then_some(key)
    }
}

/// The question name of stored key octets.
pub(crate) fn qname_of(key: &[u8]) -> &[u8] {
    &key[..key.len() - 5]
}

/// QTYPE and QCLASS of stored key octets.
pub(crate) fn type_and_class_of(key: &[u8]) -> &[u8] {
    &key[key.len() - 5..key.len() - 1]
}

/// The CD flag of stored key octets.
pub(crate) fn checking_disabled_of(key: &[u8]) -> bool {
    key[key.len() - 1] & FLAG_CD != 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_and_separates_flags() {
        let upper = "WwW.ExAmple.COM".parse::<Name>().unwrap();
        let lower = "www.example.com".parse::<Name>().unwrap();
        let k = |n: &Name, t, d, c| Key::new(n.as_wire(), t, Class::IN, d, c).unwrap();
        assert_eq!(
            k(&upper, RType::A, false, false).as_bytes(),
            k(&lower, RType::A, false, false).as_bytes()
        );
        assert_eq!(k(&upper, RType::A, false, false).qname(), lower.as_wire());
        assert_ne!(
            k(&lower, RType::A, true, false).as_bytes(),
            k(&lower, RType::A, false, false).as_bytes()
        );
        assert_ne!(
            k(&lower, RType::A, false, true).as_bytes(),
            k(&lower, RType::A, false, false).as_bytes()
        );
        assert_ne!(
            k(&lower, RType::AAAA, false, false).as_bytes(),
            k(&lower, RType::A, false, false).as_bytes()
        );
        let cd = k(&lower, RType::AAAA, false, true);
        assert!(cd.checking_disabled());
        assert_eq!(cd.qtype(), RType::AAAA);
        assert!(Key::new(&[], RType::A, Class::IN, false, false).is_none());
        assert!(Key::new(&[0; 256], RType::A, Class::IN, false, false).is_none());
    }

    #[test]
    fn stored_keys_are_checked() {
        let n = "www.example.com".parse::<Name>().unwrap();
        let k = Key::new(n.as_wire(), RType::A, Class::IN, true, true).unwrap();
        assert!(k.dnssec_ok() && k.checking_disabled());
        let back = Key::from_stored(k.as_bytes()).unwrap();
        assert_eq!(back.as_bytes(), k.as_bytes());
        // Upper case, unknown flags, a broken name, a short key: all refused.
        let mut upper = k.as_bytes().to_vec();
        upper[1] = b'W';
        assert!(Key::from_stored(&upper).is_none());
        let mut flags = k.as_bytes().to_vec();
        *flags.last_mut().unwrap() |= 0x80;
        assert!(Key::from_stored(&flags).is_none());
        let mut broken = k.as_bytes().to_vec();
        broken[0] = 60;
        assert!(Key::from_stored(&broken).is_none());
        assert!(Key::from_stored(&[0, 0, 1, 0, 1]).is_none());
        assert!(Key::from_stored(&[]).is_none());
    }
}
