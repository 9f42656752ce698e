//! Domain names (RFC 1035 section 3.1, RFC 4343 for case, RFC 4034 section 6.1 for canonical order).
//!
//! A [`Name`] can only be made by a fallible parser, so every value holds a valid, absolute,
//! uncompressed wire-format name: labels of at most 63 octets, at most 255 octets in all, ending with
//! the root label. Case is preserved (answers echo the client's spelling) but equality, hashing and
//! ordering ignore ASCII case. [`LowerName`] is the lower-cased twin used as a cache and lookup key.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::str::FromStr;

use super::error::{Result, WireError};
use super::header::HEADER_LEN;
use super::reader::Reader;

/// Longest name in wire form, root label included (RFC 1035 section 2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Most compression pointers followed while reading one name. A valid name has at most 127 labels, so
/// more hops than that can only be a loop or an attack.
pub const MAX_POINTER_HOPS: usize = 128;

/// An absolute domain name in uncompressed wire form.
#[derive(Clone)]
pub struct Name {
    wire: Box<[u8]>,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Self {
        Name {
            wire: Box::new([0u8]),
        }
    }

    /// Validates an uncompressed wire-format name that must fill `wire` exactly.
    pub fn from_wire(wire: &[u8]) -> Result<Self> {
        let len = validate_uncompressed(wire)?;
        if len != wire.len() {
            return Err(WireError::TrailingData);
        }
        Ok(Name { wire: wire.into() })
    }

    /// Reads a possibly compressed name at the reader's position, following pointers backwards
    /// through the whole message. The reader ends up just past the name's first pointer or root label.
    ///
    /// The name is gathered on the stack and copied into one allocation of its exact length (a
    /// growing `Vec` shrunk into a box cost a `realloc` per name, and names are most of what a
    /// parse allocates).
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        let mut buf = NameBuf::new();
        buf.read_from(r)?;
        Ok(Name::from(&buf))
    }

    /// Reads a name that must not be compressed (RFC 3597 section 4: names in the RDATA of newer types,
    /// e.g. RRSIG signer and NSEC next name, are never compressed; we accept decompression on read
    /// only for the types RFC 3597 lists as "well-known").
    pub fn read_uncompressed(r: &mut Reader<'_>) -> Result<Self> {
        let start = r.position();
        let rest = &r.message()[start..start + r.remaining()];
        let len = validate_uncompressed(rest)?;
        let wire = r.take(len)?;
        Ok(Name { wire: wire.into() })
    }

    /// Builds a name from labels (most specific first); the root label is added.
    pub fn from_labels<'a, I: IntoIterator<Item = &'a [u8]>>(labels: I) -> Result<Self> {
        let mut wire = Vec::with_capacity(32);
        for label in labels {
            if label.is_empty() {
                return Err(WireError::BadText("empty label".into()));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(WireError::LabelTooLong);
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        Ok(Name {
            wire: wire.into_boxed_slice(),
        })
    }

    /// The uncompressed wire form, root label included.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// Length of the wire form.
    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// Labels from the most specific to the TLD; the root label is not included.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            wire: &self.wire,
            pos: 0,
        }
    }

    /// Number of labels, not counting the root (so `.` has 0 and `example.com.` has 2).
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// True when the first label is `*` (RFC 4592).
    pub fn is_wildcard(&self) -> bool {
        self.wire.len() > 2 && self.wire[0] == 1 && self.wire[1] == b'*'
    }

    /// The same name with ASCII letters lower-cased.
    pub fn to_lowercase(&self) -> Name {
        Name {
            wire: self.wire.to_ascii_lowercase().into_boxed_slice(),
        }
    }

    /// Calls `f` with the lower-cased wire form of the name, made on the stack: the key to look
    /// it up in a table keyed by [`LowerName`] (which borrows as `[u8]`) without allocating one.
    pub fn with_lower<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut lower = [0u8; MAX_NAME_LEN];
        let n = self.wire.len().min(MAX_NAME_LEN);
        for (l, b) in lower.iter_mut().zip(&self.wire[..n]) {
            *l = b.to_ascii_lowercase();
        }
        f(&lower[..n])
    }

    /// True when the two names are equal ignoring ASCII case.
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.wire.eq_ignore_ascii_case(&other.wire)
    }

    /// True when `self` equals `zone` or lies below it (label-aligned, case-insensitive).
    pub fn is_subdomain_of(&self, zone: &Name) -> bool {
        wire_is_subdomain(&self.wire, &zone.wire)
    }

    /// The reverse-mapping name of an address: `4.3.2.1.in-addr.arpa.` for 1.2.3.4 (RFC 1035
    /// section 3.5), 32 nibbles under `ip6.arpa.` for IPv6 (RFC 3596 section 2.5).
    pub fn reverse_of(ip: IpAddr) -> Name {
        let text = match ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(a) => {
                let mut s = String::with_capacity(72);
                for byte in a.octets().iter().rev() {
                    for nibble in [byte & 0x0F, byte >> 4] {
                        s.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
                        s.push('.');
                    }
                }
                s.push_str("ip6.arpa.");
                s
            }
        };
        // Always a valid name: at most 34 short labels.
        text.parse().unwrap_or_else(|_| Name::root())
    }

    /// The name with its first label removed, or `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        if self.is_root() {
            return None;
        }
        let skip = 1 + self.wire[0] as usize;
        Some(Name {
            wire: self.wire[skip..].into(),
        })
    }

    /// The last `n` labels of this name (plus the root): `www.example.com.` trimmed to 2 is `example.com.`.
    /// Returns the name itself when it has `n` labels or fewer. One allocation.
    pub fn trim_to(&self, n: usize) -> Name {
        let count = self.label_count();
        let mut skip = 0;
        for _ in n..count {
            skip += 1 + self.wire[skip] as usize;
        }
        Name {
            wire: self.wire[skip..].into(),
        }
    }

    /// Prepends one label: `prepend(b"*")` on `example.com.` gives `*.example.com.`.
    pub fn prepend(&self, label: &[u8]) -> Result<Name> {
        if label.is_empty() {
            return Err(WireError::BadText("empty label".into()));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(WireError::LabelTooLong);
        }
        let mut wire = Vec::with_capacity(self.wire.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
        wire.extend_from_slice(&self.wire);
        if wire.len() > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        Ok(Name {
            wire: wire.into_boxed_slice(),
        })
    }

    /// Canonical ordering of RFC 4034 section 6.1: labels compared right to left, each as a
    /// lower-cased octet string.
    pub fn canonical_cmp(&self, other: &Name) -> Ordering {
        let a: Vec<&[u8]> = self.labels().collect();
        let b: Vec<&[u8]> = other.labels().collect();
        for (la, lb) in a.iter().rev().zip(b.iter().rev()) {
            let ord = la
                .iter()
                .map(u8::to_ascii_lowercase)
                .cmp(lb.iter().map(u8::to_ascii_lowercase));
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.len().cmp(&b.len())
    }
}

/// Writes the presentation form (RFC 1035 section 5.1) with `\.`, `\\` and `\DDD` escapes.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &c in label {
                match c {
                    b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                        write!(f, "\\{}", c as char)?
                    }
                    0x21..=0x7e => write!(f, "{}", c as char)?,
                    _ => write!(f, "\\{:03}", c)?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Parses presentation format. Names are always absolute: a missing final dot is implied.
impl FromStr for Name {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self> {
        if s == "." {
            return Ok(Name::root());
        }
        if s.is_empty() {
            return Err(WireError::BadText("empty name".into()));
        }
        let bytes = s.as_bytes();
        let mut wire = Vec::with_capacity(s.len() + 2);
        let mut label = Vec::with_capacity(MAX_LABEL_LEN);
        let mut i = 0;
        let mut ended_with_dot = false;
        while i < bytes.len() {
            ended_with_dot = false;
            let c = bytes[i];
            match c {
                b'.' => {
                    push_label(&mut wire, &label)?;
                    label.clear();
                    ended_with_dot = true;
                    i += 1;
                }
                b'\\' => {
                    let rest = &bytes[i + 1..];
                    if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                        let v = (rest[0] - b'0') as u32 * 100
                            + (rest[1] - b'0') as u32 * 10
                            + (rest[2] - b'0') as u32;
                        if v > 255 {
                            return Err(WireError::BadText(format!("escape \\{} out of range", v)));
                        }
                        label.push(v as u8);
                        i += 4;
                    } else if rest.first().is_some_and(u8::is_ascii_digit) {
                        // RFC 1035 section 5.1: a digit after `\` starts a three-digit `\DDD`.
                        return Err(WireError::BadText(
                            "escape \\DDD needs exactly three digits".into(),
                        ));
                    } else if let Some(&e) = rest.first() {
                        label.push(e);
                        i += 2;
                    } else {
                        return Err(WireError::BadText("dangling backslash".into()));
                    }
                }
                _ => {
                    label.push(c);
                    i += 1;
                }
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(WireError::LabelTooLong);
            }
        }
        if !ended_with_dot {
            push_label(&mut wire, &label)?;
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        Ok(Name {
            wire: wire.into_boxed_slice(),
        })
    }
}

fn push_label(wire: &mut Vec<u8>, label: &[u8]) -> Result<()> {
    if label.is_empty() {
        return Err(WireError::BadText("empty label".into()));
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    Ok(())
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.eq_ignore_case(other)
    }
}

impl Eq for Name {}

impl Hash for Name {
    /// The lower-cased wire form, as one slice: equal names (ignoring case) hash alike, and a
    /// [`LowerName`] of the name hashes the same. One write instead of one per octet: a keyed
    /// hasher (SipHash) pays per call, and names are hashed on every cache and table lookup.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.with_lower(|lower| lower.hash(state));
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.canonical_cmp(other)
    }
}

/// Iterator over a name's labels, most specific first.
pub struct Labels<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.wire.get(self.pos)? as usize;
        if len == 0 {
            return None;
        }
        let label = &self.wire[self.pos + 1..self.pos + 1 + len];
        self.pos += 1 + len;
        Some(label)
    }
}

/// A name known to be lower-case: the key for caches and lookup tables.
///
/// It hashes and compares as its wire form, a `[u8]` (so a table keyed by it can be searched
/// with a slice of lower-cased wire octets, see [`std::borrow::Borrow`]), and as the [`Name`] it
/// holds.
#[derive(Clone, PartialOrd, Ord, Debug)]
pub struct LowerName(Name);

impl PartialEq for LowerName {
    fn eq(&self, other: &Self) -> bool {
        self.as_wire() == other.as_wire()
    }
}

impl Eq for LowerName {}

impl Hash for LowerName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_wire().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for LowerName {
    fn borrow(&self) -> &[u8] {
        self.as_wire()
    }
}

impl LowerName {
    /// The lower-cased wire form.
    pub fn as_wire(&self) -> &[u8] {
        self.0.as_wire()
    }

    /// The name itself.
    pub fn name(&self) -> &Name {
        &self.0
    }
}

impl From<&Name> for LowerName {
    fn from(n: &Name) -> Self {
        LowerName(n.to_lowercase())
    }
}

impl From<Name> for LowerName {
    /// Lower-cases the name in place (no allocation).
    fn from(mut n: Name) -> Self {
        n.wire.make_ascii_lowercase();
        LowerName(n)
    }
}

impl fmt::Display for LowerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Checks an uncompressed name at the start of `wire`; returns its length.
fn validate_uncompressed(wire: &[u8]) -> Result<usize> {
    let mut pos = 0;
    loop {
        let len = *wire.get(pos).ok_or(WireError::ShortRead {
            offset: pos,
            needed: 1,
        })? as usize;
        match len & 0xC0 {
            0x00 => {}
            0xC0 => return Err(WireError::BadPointer(pos)),
            t => return Err(WireError::BadLabelType(t as u8)),
        }
        if pos + 1 + len > wire.len() {
            return Err(WireError::ShortRead {
                offset: pos,
                needed: pos + 1 + len - wire.len(),
            });
        }
        pos += 1 + len;
        if pos > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        if len == 0 {
            return Ok(pos);
        }
    }
}

/// [`Name::is_subdomain_of`] over two valid uncompressed wire names: `zone` is a suffix of `name`
/// (ignoring ASCII case) that starts on one of `name`'s label boundaries.
pub(crate) fn wire_is_subdomain(name: &[u8], zone: &[u8]) -> bool {
    let (a, b) = (name, zone);
    if b.len() > a.len() {
        return false;
    }
    let off = a.len() - b.len();
    if !a[off..].eq_ignore_ascii_case(b) {
        return false;
    }
    // The suffix must start on a label boundary of `name`.
    let mut pos = 0;
    while pos < off {
        pos += 1 + a[pos] as usize;
    }
    pos == off
}

/// Reads a possibly compressed name at the reader's position with exactly [`Name::read`]'s rules
/// (and leaves the reader where that would), and says whether it equals `target`, an
/// uncompressed wire name, ASCII case ignored: a comparison with nothing copied.
pub(crate) fn read_equals(r: &mut Reader<'_>, target: &[u8]) -> Result<bool> {
    let mut cmp = Compare {
        target,
        len: 0,
        equal: true,
    };
    read_into(r, &mut cmp)?;
    Ok(cmp.equal && cmp.len == target.len())
}

/// A [`NameSink`] that compares what it is given with a name instead of keeping it.
struct Compare<'t> {
    target: &'t [u8],
    len: usize,
    equal: bool,
}

impl NameSink for Compare<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        self.equal = self.equal
            && self
                .target
                .get(self.len..end)
                .is_some_and(|t| t.eq_ignore_ascii_case(bytes));
        self.len = end;
    }
}

/// Where [`read_into`] puts the labels it reads (it checks the length before each push).
trait NameSink {
    fn len(&self) -> usize;
    fn push(&mut self, bytes: &[u8]);
}

impl NameSink for NameBuf {
    fn len(&self) -> usize {
        NameBuf::len(self)
    }

    fn push(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A name read from a message into a buffer on the stack: valid and uncompressed like a
/// [`Name`], without its allocation. For names that are only looked at (compared, checked) or
/// kept only sometimes ([`Name::from`] makes the kept ones).
pub struct NameBuf {
    buf: [u8; MAX_NAME_LEN],
    len: usize,
}

impl NameBuf {
    /// An empty buffer, to read into with [`NameBuf::read_from`].
    pub fn new() -> Self {
        NameBuf {
            buf: [0; MAX_NAME_LEN],
            len: 0,
        }
    }

    /// Reads a possibly compressed name as [`Name::read`] does, in place of what the buffer
    /// held (filled in place: the buffer is too large to be returned by value cheaply).
    pub fn read_from(&mut self, r: &mut Reader<'_>) -> Result<()> {
        self.len = 0;
        read_into(r, self)
    }

    /// The uncompressed wire form.
    pub fn as_wire(&self) -> &[u8] {
        self.as_slice()
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.len == 1
    }

    /// True when the two names are equal ignoring ASCII case.
    pub fn eq_ignore_case(&self, other: &NameBuf) -> bool {
        self.as_slice().eq_ignore_ascii_case(other.as_slice())
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Appends `octets`; the caller has checked that they fit ([`MAX_NAME_LEN`]).
    fn extend_from_slice(&mut self, octets: &[u8]) {
        let end = self.len + octets.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(octets);
            self.len = end;
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl From<&NameBuf> for Name {
    fn from(b: &NameBuf) -> Name {
        Name {
            wire: b.as_slice().into(),
        }
    }
}

/// Reads a possibly compressed name into `out` (uncompressed), advancing `r` past it.
fn read_into(r: &mut Reader<'_>, out: &mut impl NameSink) -> Result<()> {
    let msg = r.message();
    let mut pos = r.position();
    let mut resume: Option<usize> = None;
    let mut hops = 0;
    // Pointers must go strictly backwards, which together with the hop cap rules out loops.
    let mut lowest_target = pos;
    loop {
        let len = *msg.get(pos).ok_or(WireError::ShortRead {
            offset: pos,
            needed: 1,
        })?;
        match len & 0xC0 {
            0x00 => {
                let len = len as usize;
                let end = pos + 1 + len;
                if end > msg.len() || (resume.is_none() && end > r.position() + r.remaining()) {
                    return Err(WireError::ShortRead {
                        offset: pos,
                        needed: 1 + len,
                    });
                }
                if out.len() + 1 + len > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                out.push(&msg[pos..end]);
                pos = end;
                if len == 0 {
                    break;
                }
            }
            0xC0 => {
                let lo = *msg.get(pos + 1).ok_or(WireError::ShortRead {
                    offset: pos,
                    needed: 2,
                })?;
                if resume.is_none() && pos + 2 > r.position() + r.remaining() {
                    return Err(WireError::ShortRead {
                        offset: pos,
                        needed: 2,
                    });
                }
                let target = (((len & 0x3F) as usize) << 8) | lo as usize;
                // A pointer must point at an earlier name (RFC 1035 section 4.1.4), and no name
                // starts inside the 12-octet header.
                if target >= lowest_target || target < HEADER_LEN {
                    return Err(WireError::BadPointer(pos));
                }
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(WireError::PointerLoop);
                }
                if resume.is_none() {
                    resume = Some(pos + 2);
                }
                lowest_target = target;
                pos = target;
            }
            t => return Err(WireError::BadLabelType(t)),
        }
    }
    r.seek(resume.unwrap_or(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn names_hash_alike_ignoring_case_and_lower_names_as_their_octets() {
        use std::collections::hash_map::RandomState;
        use std::collections::HashMap;
        use std::hash::BuildHasher;
        let s = RandomState::new();
        let (a, b) = (n("WwW.Example.TEST"), n("www.example.test"));
        assert_eq!(s.hash_one(&a), s.hash_one(&b));
        assert_ne!(s.hash_one(&a), s.hash_one(n("www.example.tesu")));
        let lower = LowerName::from(&a);
        assert_eq!(s.hash_one(&lower), s.hash_one(lower.as_wire()));
        assert_eq!(
            s.hash_one(&lower),
            s.hash_one(&b),
            "a name and its LowerName"
        );
        assert_eq!(lower, LowerName::from(&b));
        // A table keyed by LowerName is searched with octets.
        let mut m: HashMap<LowerName, u8> = HashMap::new();
        m.insert(LowerName::from(n("example.test")), 1);
        assert_eq!(m.get(&lower.as_wire()[4..]), Some(&1));
        assert_eq!(m.get(lower.as_wire()), None);
    }

    #[test]
    fn parses_and_prints_presentation_format() {
        assert_eq!(n("www.Example.com").to_string(), "www.Example.com.");
        assert_eq!(n(".").to_string(), ".");
        assert_eq!(n("a\\.b.c.").label_count(), 2);
        assert_eq!(n("a\\.b.c.").to_string(), "a\\.b.c.");
        assert_eq!(n("\\000x.").as_wire(), &[2, 0, b'x', 0]);
        assert_eq!(n("\\000x.").to_string(), "\\000x.");
        assert!("a..b".parse::<Name>().is_err());
        assert!("\\256".parse::<Name>().is_err());
        assert!("a\\1.b".parse::<Name>().is_err());
        assert!("a\\12x.b".parse::<Name>().is_err());
        assert!(format!("{}.com", "a".repeat(64)).parse::<Name>().is_err());
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(long.parse::<Name>().is_err());
    }

    #[test]
    fn equality_and_hash_ignore_case() {
        use std::collections::hash_map::DefaultHasher;
        let (a, b) = (n("WWW.example.COM"), n("www.EXAMPLE.com"));
        assert_eq!(a, b);
        let h = |x: &Name| {
            let mut s = DefaultHasher::new();
            x.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&a), h(&b));
        assert_eq!(a.as_wire()[1], b'W');
    }

    #[test]
    fn subdomains_are_label_aligned() {
        assert!(n("www.example.com").is_subdomain_of(&n("example.com")));
        assert!(n("example.com").is_subdomain_of(&n("EXAMPLE.com")));
        assert!(n("example.com").is_subdomain_of(&Name::root()));
        assert!(!n("badexample.com").is_subdomain_of(&n("example.com")));
        assert!(!n("com").is_subdomain_of(&n("example.com")));
    }

    #[test]
    fn canonical_order_matches_rfc4034() {
        // The example list of RFC 4034 section 6.1, in order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        for w in names.windows(2) {
            assert_eq!(n(w[0]).cmp(&n(w[1])), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    /// `body` after a 12-octet header (all zero), as names sit in a message.
    fn in_message(body: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8; HEADER_LEN];
        msg.extend_from_slice(body);
        msg
    }

    /// The stack reader and the comparing reader follow `Name::read`'s rules and stop where it
    /// stops, on good and bad names alike.
    #[test]
    fn stack_and_comparing_reads_agree_with_name_read() {
        let mut body = vec![7];
        body.extend_from_slice(b"example");
        body.extend_from_slice(&[3, b'c', b'o', b'm', 0]);
        body.extend_from_slice(&[3, b'W', b'w', b'W', 0xC0, 12]);
        body.extend_from_slice(&[0xC0, 25, 0xC0, 99, 0xC0, 14]);
        let msg = in_message(&body);
        for at in [12, 25, 31, 33, 35, 5] {
            let read = |r: &mut Reader<'_>| r.seek(at).map(|()| r.position());
            let mut r = Reader::new(&msg);
            let name = read(&mut r)
                .and_then(|_| Name::read(&mut r))
                .map(|n| (n, r.position()));
            let mut r = Reader::new(&msg);
            let buf = read(&mut r).and_then(|_| {
                let mut b = NameBuf::new();
                b.read_from(&mut r).map(|()| (b, r.position()))
            });
            match (&name, &buf) {
                (Ok((n, p)), Ok((b, q))) => {
                    assert_eq!(n.as_wire(), b.as_wire());
                    assert_eq!(p, q);
                }
                (Err(_), Err(_)) => {}
                _ => panic!("Name::read and NameBuf::read_from disagree at {at}"),
            }
            for target in [
                "www.example.com",
                "WWW.EXAMPLE.COM",
                "example.com",
                "www.example",
                ".",
            ] {
                let target = n(target);
                let mut r = Reader::new(&msg);
                let same = read(&mut r).and_then(|_| read_equals(&mut r, target.as_wire()));
                match &name {
                    Ok((n, p)) => {
                        assert_eq!(same.unwrap(), *n == target, "{at} {target}");
                        assert_eq!(r.position(), *p);
                    }
                    Err(_) => assert!(same.is_err()),
                }
            }
        }
    }

    #[test]
    fn decompression_follows_backward_pointers_only() {
        // "example.com" at 12, then "www" + pointer to 12 at 25.
        let mut body = vec![7];
        body.extend_from_slice(b"example");
        body.extend_from_slice(&[3, b'c', b'o', b'm', 0]);
        body.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12]);
        let msg = in_message(&body);
        let mut r = Reader::new(&msg);
        r.seek(25).unwrap();
        let name = Name::read(&mut r).unwrap();
        assert_eq!(name.to_string(), "www.example.com.");
        assert_eq!(r.position(), msg.len());

        let fails_at = |body: &[u8], at: usize| {
            let msg = in_message(body);
            let mut r = Reader::new(&msg);
            r.seek(at).unwrap();
            Name::read(&mut r).is_err()
        };
        // A pointer to itself.
        assert!(fails_at(&[0xC0, 12], 12));
        // A forward pointer.
        assert!(fails_at(&[0xC0, 14, 0], 12));
        // Two pointers that point at each other.
        assert!(fails_at(&[0xC0, 14, 0xC0, 12], 14));
        // Pointers into the header, where no name starts (one of them would read "\000.").
        assert!(fails_at(&[3, b'a', b'b', b'c', 0xC0, 4], 12));
        assert!(fails_at(&[0xC0, 2], 12));
        assert!(fails_at(&[0xC0, 11], 12));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            Name::reverse_of("192.168.1.10".parse().unwrap()).to_string(),
            "10.1.168.192.in-addr.arpa."
        );
        assert_eq!(
            Name::reverse_of("2001:db8::567:89ab".parse().unwrap()).to_string(),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn helpers() {
        let name = n("www.example.com");
        assert_eq!(name.parent().unwrap(), n("example.com"));
        assert_eq!(name.trim_to(1), n("com"));
        assert_eq!(name.trim_to(5), name);
        assert_eq!(Name::root().parent(), None);
        assert!(name.prepend(b"*").unwrap().is_wildcard());
        assert_eq!(LowerName::from(&n("A.B")).as_wire(), n("a.b").as_wire());
    }
}
