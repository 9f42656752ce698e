//! Test-only signing: zone keys generated at test time with ring (Ed25519, ECDSA P-256/P-384)
//! and RRSIGs made over RRsets, so the window, label and limit cases need no checked-in
//! signatures that expire.
#![allow(clippy::unwrap_used, dead_code)]

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::key::{flags, Dnskey};
use crate::wire::{signed_data, Name, RData, Record, Rrsig};

/// A moment for generated signatures: 2030-01-01.
pub const NOW: u32 = 1_893_456_000;
/// An hour.
pub const HOUR: u32 = 3600;

/// A zone key with its private half.
pub struct TestKey {
    pub record: Record,
    signer: Signer,
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair, SystemRandom),
}

impl TestKey {
    /// A new Ed25519 KSK (flags 257) of `zone`.
    pub fn ed25519(zone: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        TestKey::new(zone, 257, 15, &public, Signer::Ed25519(pair))
    }

    /// The Ed25519 key of this 32-octet seed (as RFC 8080's example private keys are given).
    pub fn ed25519_from_seed(zone: &str, seed: &[u8]) -> TestKey {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        TestKey::new(zone, 257, 15, &public, Signer::Ed25519(pair))
    }

    /// A new ECDSA P-256 ZSK (flags 256) of `zone`.
    pub fn p256(zone: &str) -> TestKey {
        TestKey::ecdsa(zone, 13, &signature::ECDSA_P256_SHA256_FIXED_SIGNING)
    }

    /// A new ECDSA P-384 ZSK (flags 256) of `zone`.
    pub fn p384(zone: &str) -> TestKey {
        TestKey::ecdsa(zone, 14, &signature::ECDSA_P384_SHA384_FIXED_SIGNING)
    }

    fn ecdsa(zone: &str, algorithm: u8, alg: &'static signature::EcdsaSigningAlgorithm) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        // ring gives 0x04 || x || y; DNSSEC publishes x || y.
        let public = pair.public_key().as_ref()[1..].to_vec();
        TestKey::new(zone, 256, algorithm, &public, Signer::Ecdsa(pair, rng))
    }

    fn new(zone: &str, flags: u16, algorithm: u8, public: &[u8], signer: Signer) -> TestKey {
        let record = Record::new(
            zone.parse().unwrap(),
            3600,
            RData::Dnskey {
                flags,
                protocol: 3,
                algorithm,
                public_key: public.into(),
            },
        );
        TestKey { record, signer }
    }

    /// The same key with other flags (the private half still signs).
    pub fn with_flags(mut self, new: u16) -> TestKey {
        if let RData::Dnskey { flags, .. } = &mut self.record.data {
            *flags = new;
        }
        self
    }

    /// The key without its zone key bit.
    pub fn without_zone_bit(self) -> TestKey {
        let f = self.dnskey().flags & !flags::ZONE;
        self.with_flags(f)
    }

    pub fn dnskey(&self) -> Dnskey<'_> {
        Dnskey::from_record(&self.record).unwrap()
    }

    pub fn tag(&self) -> u16 {
        self.dnskey().key_tag()
    }

    pub fn zone(&self) -> &Name {
        &self.record.name
    }

    /// An unsigned RRSIG for `rrset` by this key, valid from `inception` to `expiration`:
    /// labels from the owner, original TTL from the records. Change fields, then [`Self::sign`].
    pub fn rrsig(&self, rrset: &[Record], inception: u32, expiration: u32) -> Rrsig {
        let owner = &rrset[0].name;
        Rrsig {
            type_covered: rrset[0].rtype(),
            algorithm: self.dnskey().algorithm,
            labels: (owner.label_count() - usize::from(owner.is_wildcard())) as u8,
            original_ttl: rrset[0].ttl,
            expiration,
            inception,
            key_tag: self.tag(),
            signer_name: self.zone().clone(),
            signature: Box::new([]),
        }
    }

    /// The RRSIG record `sig` makes over `rrset` once signed with this key.
    pub fn sign(&self, rrset: &[Record], mut sig: Rrsig) -> Record {
        sig.signature = self.sign_bytes(&signed_data(&sig, rrset).unwrap()).into();
        Record {
            name: rrset[0].name.clone(),
            class: rrset[0].class,
            ttl: rrset[0].ttl,
            data: RData::Rrsig(sig),
        }
    }

    /// An RRSIG record over `rrset` valid for an hour either side of [`NOW`].
    pub fn sign_now(&self, rrset: &[Record]) -> Record {
        self.sign(rrset, self.rrsig(rrset, NOW - HOUR, NOW + HOUR))
    }

    pub fn sign_bytes(&self, data: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Ed25519(pair) => pair.sign(data).as_ref().to_vec(),
            Signer::Ecdsa(pair, rng) => pair.sign(rng, data).unwrap().as_ref().to_vec(),
        }
    }
}

/// A record from zone text.
pub fn rec(line: &str) -> Record {
    crate::wire::parse_record_line(line, 3600).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// `n` distinct DNSKEY records with `key`'s tag and algorithm: `key` itself first, then copies
/// with two public key octets of the same parity swapped (the tag sums even and odd offsets
/// apart, so the sum stays). Only the first is a real key: the rest play KeyTrap's colliding keys.
pub fn same_tag_variants(key: &Record, n: usize) -> Vec<Record> {
    let RData::Dnskey {
        flags,
        protocol,
        algorithm,
        public_key,
    } = &key.data
    else {
        panic!("not a DNSKEY: {key}");
    };
    let mut out = vec![key.clone()];
    let mut i = 0;
    while out.len() < n {
        let mut k = public_key.to_vec();
        assert!(i + 2 < k.len(), "not enough octets for {n} variants");
        if k[i] != k[i + 2] {
            k.swap(i, i + 2);
            out.push(Record::new(
                key.name.clone(),
                key.ttl,
                RData::Dnskey {
                    flags: *flags,
                    protocol: *protocol,
                    algorithm: *algorithm,
                    public_key: k.into(),
                },
            ));
        }
        i += 1;
    }
    let tag = Dnskey::from_record(key).unwrap().key_tag();
    for (j, r) in out.iter().enumerate() {
        assert_eq!(Dnskey::from_record(r).unwrap().key_tag(), tag);
        assert!(out[..j].iter().all(|o| o != r), "variants differ");
    }
    out
}
