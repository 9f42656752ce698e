//! DNSKEY and DS records: key tags, flags, DS digests, and which keys of a DNSKEY set a DS set
//! authenticates.
//!
//! ```text
//!   DNSKEY RDATA --key_tag (RFC 4034 appendix B)--> 16-bit tag
//!   owner (canonical) | DNSKEY RDATA --digest (RFC 4034 section 5.1.4)--> DS digest
//!   DS set + DNSKEY set --match_ds (RFC 4035 section 5.2)--> Keys | Unsupported | NoMatch
//! ```
//!
//! A DS record names its key by tag and algorithm; a tag is a 16-bit checksum, not an identity,
//! so several keys can share one, and a zone can publish many on purpose. KeyTrap
//! (CVE-2023-50387) used exactly that to make validators hash and verify with every colliding key:
//! here at most [`MAX_KEYS_PER_TAG`] keys are tried per DS record (and per RRSIG, in
//! [`super::verify`]); a legitimate zone needs one, two during an unlucky rollover.
//!
//! The keys a DS record may point to are zone keys (flags bit 7, RFC 4034 section 5.2: "If the
//! DNSKEY flags do not indicate a DNSSEC zone key, the DS RR (and the DNSKEY RR it references)
//! MUST NOT be used in the validation process"), of protocol 3 (RFC 4034 section 2.1.2), and not
//! revoked (RFC 5011 section 2.1: a revoked key is used for nothing but validating its own
//! revocation, which only RFC 5011 anchor maintenance needs). The SEP flag (bit 15) is a hint for
//! humans and tools and plays no part in validation (RFC 4034 section 2.1.1, RFC 6840 section
//! 5.3), but is exposed.
//!
//! Limitations: no RFC 5011 trust anchor maintenance (a revoked key is simply never used); the
//! number of DS records in a set is not capped here: each costs at most [`MAX_KEYS_PER_TAG`]
//! digests, and the set is bounded by the message it came in.

use super::algorithm::{Algorithm, DigestType};
use crate::wire::{Name, RData, RType, Record};

/// The most DNSKEYs tried for one key tag and algorithm, per DS record and per RRSIG (KeyTrap,
/// CVE-2023-50387). Two: the key meant, plus room for one accidental collision (two keys of a
/// zone share a tag about once in 65536 key pairs, more often during rollovers with many keys).
pub const MAX_KEYS_PER_TAG: usize = 2;

/// The only valid DNSKEY protocol field (RFC 4034 section 2.1.2).
pub const DNSKEY_PROTOCOL: u8 = 3;

/// DNSKEY flag bits (RFC 4034 section 2.1.1, RFC 5011 section 3, RFC 3757).
pub mod flags {
    /// Bit 7: a DNSSEC zone key. Only zone keys verify RRSIGs and match DS records.
    pub const ZONE: u16 = 0x0100;
    /// Bit 8: revoked (RFC 5011 section 3).
    pub const REVOKE: u16 = 0x0080;
    /// Bit 15: secure entry point, by convention the key the parent's DS points to.
    pub const SEP: u16 = 0x0001;
}

/// A view of DNSKEY record data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dnskey<'a> {
    pub flags: u16,
    pub protocol: u8,
    pub algorithm: u8,
    pub public_key: &'a [u8],
}

impl<'a> Dnskey<'a> {
    /// The DNSKEY fields of `data`, or `None` for another type.
    pub fn from_rdata(data: &'a RData) -> Option<Dnskey<'a>> {
        match data {
            RData::Dnskey {
                flags,
                protocol,
                algorithm,
                public_key,
            } => Some(Dnskey {
                flags: *flags,
                protocol: *protocol,
                algorithm: *algorithm,
                public_key,
            }),
            _ => None,
        }
    }

    /// The DNSKEY fields of a record, or `None` for another type.
    pub fn from_record(record: &'a Record) -> Option<Dnskey<'a>> {
        Dnskey::from_rdata(&record.data)
    }

    /// The RDATA in wire form: flags, protocol, algorithm, public key.
    pub fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.public_key.len());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.push(self.protocol);
        out.push(self.algorithm);
        out.extend_from_slice(self.public_key);
        out
    }

    /// The key tag (RFC 4034 appendix B).
    pub fn key_tag(&self) -> u16 {
        if self.algorithm == 1 {
            // RSA/MD5 (appendix B.1): the most significant 16 of the modulus' least significant
            // 24 bits, i.e. the third- and second-to-last octets of the key.
            let k = self.public_key;
            return match k.len() {
                n if n >= 3 => u16::from_be_bytes([k[n - 3], k[n - 2]]),
                _ => 0,
            };
        }
        key_tag(&self.rdata())
    }

    /// True when the zone key bit is set.
    pub fn is_zone_key(&self) -> bool {
        self.flags & flags::ZONE != 0
    }

    /// True when the secure entry point bit is set.
    pub fn is_sep(&self) -> bool {
        self.flags & flags::SEP != 0
    }

    /// True when the REVOKE bit is set.
    pub fn is_revoked(&self) -> bool {
        self.flags & flags::REVOKE != 0
    }

    /// True for a key that may verify signatures and match DS records: a zone key of protocol 3,
    /// not revoked.
    pub fn is_usable(&self) -> bool {
        self.is_zone_key() && !self.is_revoked() && self.protocol == DNSKEY_PROTOCOL
    }

    /// The DS digest of this key at `owner` (RFC 4034 section 5.1.4): the digest of the owner's
    /// canonical (lower-case, uncompressed) wire form followed by the DNSKEY RDATA.
    pub fn ds_digest(&self, owner: &Name, digest: DigestType) -> Vec<u8> {
        digest.digest(&[owner.to_lowercase().as_wire(), &self.rdata()])
    }
}

/// The key tag of DNSKEY RDATA in wire form (RFC 4034 appendix B, with the carry folded back in
/// once as its reference code does; erratum 4552 explains the prose). Algorithm 1's special case
/// is [`Dnskey::key_tag`]'s.
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for pair in rdata.chunks(2) {
        ac += u32::from(pair[0]) << 8;
        if let Some(&low) = pair.get(1) {
            ac += u32::from(low);
        }
    }
    ac += (ac >> 16) & 0xFFFF;
    (ac & 0xFFFF) as u16
}

/// A view of DS record data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ds<'a> {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: &'a [u8],
}

impl<'a> Ds<'a> {
    /// The DS fields of `data`, or `None` for another type.
    pub fn from_rdata(data: &'a RData) -> Option<Ds<'a>> {
        match data {
            RData::Ds {
                key_tag,
                algorithm,
                digest_type,
                digest,
            } => Some(Ds {
                key_tag: *key_tag,
                algorithm: *algorithm,
                digest_type: *digest_type,
                digest,
            }),
            _ => None,
        }
    }

    /// True when the validator can use this record: an algorithm it validates and a digest type
    /// it computes (RFC 4035 section 5.2, RFC 6840 section 5.2).
    pub fn is_usable(&self) -> bool {
        Algorithm::validated(self.algorithm).is_some()
            && DigestType::from_code(self.digest_type).is_some()
    }

    /// True when this DS record, at `owner`, describes `key`: same tag and algorithm, and the
    /// digest matches. Costs one digest when the tag and algorithm match.
    pub fn matches(&self, owner: &Name, key: &Dnskey<'_>) -> bool {
        let Some(digest_type) = DigestType::from_code(self.digest_type) else {
            return false;
        };
        self.key_tag == key.key_tag()
            && self.algorithm == key.algorithm
            && self.digest.len() == digest_type.output_len()
            && key.ds_digest(owner, digest_type) == self.digest
    }
}

/// What a DS set says about a DNSKEY set (RFC 4035 section 5.2).
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DsMatch<'a> {
    /// These keys of the set (zone keys, not revoked) match a usable DS record: a signature by
    /// one of them over the DNSKEY RRset authenticates the whole set.
    Keys(Vec<&'a Record>),
    /// No DS record has an algorithm we validate: the zone is insecure (RFC 4035 section 5.2,
    /// RFC 6840 section 5.2, and RFC 9905 for the SHA-1 algorithms).
    UnsupportedAlgorithm,
    /// Some DS record has an algorithm we validate, but none of those has a digest type we
    /// compute: insecure as well.
    UnsupportedDigest,
    /// Usable DS records exist but no key of the set matches one: bogus.
    NoMatch,
}

/// Which keys of `dnskeys` (the DNSKEY RRset of the zone the DS records are for) the DS set
/// `ds_set` authenticates.
///
/// An empty DS set is [`DsMatch::NoMatch`]: a zone without DS records is insecure only when a
/// denial proves that no DS exists, and that is not this function's call to make (failing closed
/// keeps a stripped DS RRset from turning into a downgrade).
///
/// Only DS records with a validated algorithm and a computed digest type count; when the set has
/// a SHA-256 or SHA-384 record, its SHA-1 records are ignored (RFC 4509 section 3: they would
/// let an attacker able to forge SHA-1 downgrade the delegation). For each DS record at most
/// [`MAX_KEYS_PER_TAG`] keys with its tag and algorithm are hashed. Keys and DS records whose
/// owner is not the DS records' zone are ignored.
pub fn match_ds<'a>(ds_set: &[Record], dnskeys: &'a [Record]) -> DsMatch<'a> {
    let all: Vec<(&Name, Ds<'_>)> = ds_set
        .iter()
        .filter_map(|r| Some((&r.name, Ds::from_rdata(&r.data)?)))
        .collect();
    if all.is_empty() {
        return DsMatch::NoMatch;
    }
    if !all
        .iter()
        .any(|(_, ds)| Algorithm::validated(ds.algorithm).is_some())
    {
        return DsMatch::UnsupportedAlgorithm;
    }
    let usable: Vec<&(&Name, Ds<'_>)> = all.iter().filter(|(_, ds)| ds.is_usable()).collect();
    if usable.is_empty() {
        return DsMatch::UnsupportedDigest;
    }
    let strong = usable
        .iter()
        .any(|(_, ds)| ds.digest_type != DigestType::Sha1.code());
    let mut keys: Vec<&'a Record> = Vec::new();
    for (owner, ds) in usable {
        if strong && ds.digest_type == DigestType::Sha1.code() {
            continue;
        }
        let candidates = dnskeys
            .iter()
            .filter(|r| r.rtype() == RType::DNSKEY && r.name == **owner)
            .filter_map(|r| Some((r, Dnskey::from_record(r)?)))
            .filter(|(_, k)| k.algorithm == ds.algorithm && k.is_usable())
            .filter(|(_, k)| k.key_tag() == ds.key_tag)
            .take(MAX_KEYS_PER_TAG);
        for (record, key) in candidates {
            if ds.matches(owner, &key) && !keys.iter().any(|k| std::ptr::eq(*k, record)) {
                keys.push(record);
            }
        }
    }
    if keys.is_empty() {
        DsMatch::NoMatch
    } else {
        DsMatch::Keys(keys)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dnssec::{testkit, vectors};
    use crate::wire::parse_record_line;

    fn rec(line: &str) -> Record {
        parse_record_line(line, 3600).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn rfc_4034_section_5_4_key_tag_and_sha1_ds() {
        let key = rec(vectors::RFC4034_DNSKEY);
        let ds = rec(vectors::RFC4034_DS);
        let k = Dnskey::from_record(&key).unwrap();
        assert_eq!(k.key_tag(), 60485);
        assert!(k.is_zone_key() && !k.is_sep() && !k.is_revoked());
        let d = Ds::from_rdata(&ds.data).unwrap();
        assert_eq!(
            k.ds_digest(&key.name, DigestType::Sha1),
            d.digest,
            "SHA-1 digest of dskey.example.com's key"
        );
        // The owner is hashed lower-cased.
        let upper: Name = "DSKEY.Example.COM".parse().unwrap();
        assert_eq!(k.ds_digest(&upper, DigestType::Sha1), d.digest);
        assert!(d.matches(&ds.name, &k));
        // One octet of the key changed: another digest (and another tag).
        let mut other = k.public_key.to_vec();
        other[10] ^= 1;
        let k2 = Dnskey {
            public_key: &other,
            ..k
        };
        assert_ne!(k2.ds_digest(&key.name, DigestType::Sha1), d.digest);
        assert!(!d.matches(&ds.name, &k2));
        // Algorithm 5 is not validated: the DS set alone makes the zone insecure.
        assert_eq!(
            match_ds(&[ds], std::slice::from_ref(&key)),
            DsMatch::UnsupportedAlgorithm
        );
    }

    #[test]
    fn rfc_key_tags() {
        for (line, tag) in [
            (vectors::RFC5702_RSASHA256_DNSKEY, 9033),
            (vectors::RFC5702_RSASHA512_DNSKEY, 3740),
            (vectors::RFC6605_P256_DNSKEY, 55648),
            (vectors::RFC6605_P384_DNSKEY, 10771),
            (vectors::RFC8080_ED25519_DNSKEY, 3613),
            (vectors::ROOT_KSK_2017, 20326),
            (vectors::ROOT_KSK_2024, 38696),
        ] {
            let r = rec(line);
            assert_eq!(Dnskey::from_record(&r).unwrap().key_tag(), tag, "{line}");
        }
    }

    #[test]
    fn key_tag_folds_the_carry_once() {
        // Erratum 4552: the pairs sum to 261893 (low 16 bits 65285); folding the carry gives 65288.
        assert_eq!(
            key_tag(&[0xFF, 0xFF, 0xFF, 8, 0xFF, 0xFF, 0xFF, 0xFF]),
            65288
        );
        // Not a reduction modulo 65535: this RDATA sums to exactly 65535.
        assert_eq!(key_tag(&[0, 0, 0, 8, 0xFF, 0xF7]), 65535);
        // Odd offsets are added unshifted, even ones shifted; a trailing odd octet counts high.
        assert_eq!(key_tag(&[0, 0, 3, 8]), (3 << 8) + 8);
        assert_eq!(key_tag(&[0, 0, 0, 0, 1]), 1 << 8);
        assert_eq!(key_tag(&[]), 0);
        // Algorithm 1 reads its tag from the key's end.
        let md5 = Dnskey {
            flags: 256,
            protocol: 3,
            algorithm: 1,
            public_key: &[9, 9, 0xAB, 0xCD, 0xEF],
        };
        assert_eq!(md5.key_tag(), 0xABCD);
    }

    #[test]
    fn ds_digests_of_rfc_6605_and_8080_examples() {
        for (key, ds) in [
            (vectors::RFC6605_P256_DNSKEY, vectors::RFC6605_P256_DS),
            (vectors::RFC6605_P384_DNSKEY, vectors::RFC6605_P384_DS),
            (vectors::RFC8080_ED25519_DNSKEY, vectors::RFC8080_ED25519_DS),
            (vectors::ROOT_KSK_2017, vectors::ROOT_DS_2017),
            (vectors::ROOT_KSK_2024, vectors::ROOT_DS_2024),
        ] {
            let (key, ds) = (rec(key), rec(ds));
            let keys = std::slice::from_ref(&key);
            assert_eq!(
                match_ds(std::slice::from_ref(&ds), keys),
                DsMatch::Keys(vec![&key]),
                "{ds}"
            );
            let mut bad = ds.clone();
            if let RData::Ds { digest, .. } = &mut bad.data {
                digest[0] ^= 0x80;
            }
            assert_eq!(match_ds(&[bad], keys), DsMatch::NoMatch, "{ds}");
        }
    }

    fn ds_for(key: &Record, digest: DigestType) -> Record {
        let k = Dnskey::from_record(key).unwrap();
        Record::new(
            key.name.clone(),
            3600,
            RData::Ds {
                key_tag: k.key_tag(),
                algorithm: k.algorithm,
                digest_type: digest.code(),
                digest: k.ds_digest(&key.name, digest).into(),
            },
        )
    }

    fn with_flags(key: &Record, flags: u16) -> Record {
        let mut r = key.clone();
        if let RData::Dnskey { flags: f, .. } = &mut r.data {
            *f = flags;
        }
        r
    }

    #[test]
    fn only_usable_keys_and_records_match() {
        let key = rec(vectors::RFC6605_P256_DNSKEY);
        // The DS computed for a key without the zone bit: the key must not be used.
        for flags in [0x0001, 0x0101 | flags::REVOKE] {
            let k = with_flags(&key, flags);
            let ds = ds_for(&k, DigestType::Sha256);
            assert_eq!(
                match_ds(&[ds], std::slice::from_ref(&k)),
                DsMatch::NoMatch,
                "flags {flags:#x}"
            );
        }
        // Protocol other than 3.
        let mut p = key.clone();
        if let RData::Dnskey { protocol, .. } = &mut p.data {
            *protocol = 2;
        }
        let ds = ds_for(&p, DigestType::Sha256);
        assert_eq!(match_ds(&[ds], std::slice::from_ref(&p)), DsMatch::NoMatch);
        // A key of another owner.
        let mut elsewhere = key.clone();
        elsewhere.name = "example.org".parse().unwrap();
        let ds = ds_for(&key, DigestType::Sha256);
        assert_eq!(
            match_ds(std::slice::from_ref(&ds), &[elsewhere]),
            DsMatch::NoMatch
        );
        // SHA-384 and SHA-1 digests work as well.
        for d in [DigestType::Sha384, DigestType::Sha1] {
            assert_eq!(
                match_ds(&[ds_for(&key, d)], std::slice::from_ref(&key)),
                DsMatch::Keys(vec![&key])
            );
        }
    }

    #[test]
    fn unsupported_algorithms_and_digests_make_the_zone_insecure() {
        let key = rec(vectors::RFC6605_P256_DNSKEY);
        let keys = std::slice::from_ref(&key);
        let mut ds = ds_for(&key, DigestType::Sha256);
        let set = |ds: &Record, alg: u8, dt: u8| {
            let mut r = ds.clone();
            if let RData::Ds {
                algorithm,
                digest_type,
                ..
            } = &mut r.data
            {
                *algorithm = alg;
                *digest_type = dt;
            }
            r
        };
        assert_eq!(match_ds(&[], keys), DsMatch::NoMatch, "fails closed");
        assert_eq!(
            match_ds(&[set(&ds, 16, 2), set(&ds, 5, 2)], keys),
            DsMatch::UnsupportedAlgorithm
        );
        assert_eq!(
            match_ds(&[set(&ds, 13, 3), set(&ds, 16, 2)], keys),
            DsMatch::UnsupportedDigest
        );
        // One usable record is enough for the set to count.
        assert_eq!(
            match_ds(&[set(&ds, 16, 2), ds.clone()], keys),
            DsMatch::Keys(vec![&key])
        );
        // A usable record that matches nothing: bogus, even next to unsupported ones.
        if let RData::Ds { key_tag, .. } = &mut ds.data {
            *key_tag ^= 1;
        }
        assert_eq!(
            match_ds(&[set(&ds, 16, 2), ds.clone()], keys),
            DsMatch::NoMatch
        );
    }

    #[test]
    fn sha1_ds_records_are_ignored_next_to_stronger_ones() {
        let a = rec(vectors::RFC6605_P256_DNSKEY);
        let b = rec(vectors::RFC6605_P384_DNSKEY);
        let keys = [a.clone(), b.clone()];
        let sha1_a = ds_for(&a, DigestType::Sha1);
        let sha256_b = ds_for(&b, DigestType::Sha256);
        assert_eq!(
            match_ds(std::slice::from_ref(&sha1_a), &keys),
            DsMatch::Keys(vec![&keys[0]])
        );
        // With a SHA-256 record in the set, the SHA-1 one no longer counts.
        assert_eq!(
            match_ds(&[sha1_a, sha256_b], &keys),
            DsMatch::Keys(vec![&keys[1]])
        );
    }

    #[test]
    fn at_most_two_keys_are_hashed_per_tag() {
        // Three keys share one tag and algorithm: only the first two are tried, so a DS for the
        // third finds nothing.
        let base = rec(vectors::RFC8080_ED25519_DNSKEY);
        let colliding = testkit::same_tag_variants(&base, 3);
        for (i, want_match) in [(0, true), (1, true), (2, false)] {
            let ds = ds_for(&colliding[i], DigestType::Sha256);
            let got = match_ds(&[ds], &colliding);
            if want_match {
                assert_eq!(got, DsMatch::Keys(vec![&colliding[i]]), "key {i}");
            } else {
                assert_eq!(got, DsMatch::NoMatch, "key {i}");
            }
        }
    }
}
