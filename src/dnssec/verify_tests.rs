//! Tests of `verify`: known answers from the RFCs (each must fail with one octet changed), then
//! the checks and limits on keys and signatures made at test time, then (ignored) the cost of a
//! verification per algorithm.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine;

use super::*;
use crate::dnssec::algorithm::{verify_signature, Algorithm, CryptoError, DigestType};
use crate::dnssec::key::{flags, Dnskey};
use crate::dnssec::testkit::{rec, same_tag_variants, TestKey, HOUR, NOW};
use crate::dnssec::vectors as v;
use crate::wire::{Class, RData, RType};

fn rrsig_of(r: &Record) -> &Rrsig {
    match &r.data {
        RData::Rrsig(s) => s,
        _ => panic!("not an RRSIG: {r}"),
    }
}

fn with_rrsig(r: &Record, f: impl FnOnce(&mut Rrsig)) -> Record {
    let mut r = r.clone();
    if let RData::Rrsig(s) = &mut r.data {
        f(s);
    }
    r
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn budget() -> Budget {
    Budget::per_query()
}

/// A known answer: the RRset verifies with the key at `now`; changing one octet anywhere in the
/// signed data, in the signature, or in a record's data makes it fail.
fn known_answer(key: &str, rrset: &[&str], rrsig: &str, now: u32, algorithm: Algorithm) {
    let key = rec(key);
    let rrset: Vec<Record> = rrset.iter().map(|l| rec(l)).collect();
    let rrsig = rec(rrsig);
    let sig = rrsig_of(&rrsig);
    let mut b = budget();
    let ok =
        verify_rrsig(&rrset, &rrsig, &key, now, &mut b).unwrap_or_else(|e| panic!("{rrsig}: {e}"));
    assert_eq!(ok.algorithm, algorithm);
    assert_eq!(ok.key_tag, Dnskey::from_record(&key).unwrap().key_tag());
    assert_eq!(ok.signer, key.name);
    assert_eq!(b.used(), 1);

    let data = signed_data(sig, &rrset).unwrap();
    let public = Dnskey::from_record(&key).unwrap().public_key;
    assert_eq!(
        verify_signature(algorithm, public, &data, &sig.signature),
        Ok(())
    );
    for i in [0, 3, 17, data.len() / 2, data.len() - 1] {
        let mut bad = data.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            verify_signature(algorithm, public, &bad, &sig.signature),
            Err(CryptoError::BadSignature),
            "{algorithm}: signed data octet {i} changed"
        );
    }
    for i in [0, sig.signature.len() / 2, sig.signature.len() - 1] {
        let mut bad = sig.signature.to_vec();
        bad[i] ^= 0x80;
        assert_eq!(
            verify_signature(algorithm, public, &data, &bad),
            Err(CryptoError::BadSignature),
            "{algorithm}: signature octet {i} changed"
        );
        let tampered = with_rrsig(&rrsig, |s| s.signature = bad.clone().into());
        assert!(matches!(
            verify_rrsig(&rrset, &tampered, &key, now, &mut b),
            Err(VerifyError::BadSignature { .. })
        ));
    }
    // A record's data changed by one octet: another signed data.
    let mut other = rrset.clone();
    other[0].data = match &other[0].data {
        RData::A(a) => RData::A((u32::from(*a) ^ 1).into()),
        RData::Mx {
            preference,
            exchange,
        } => RData::Mx {
            preference: preference ^ 1,
            exchange: exchange.clone(),
        },
        RData::Dnskey {
            flags,
            protocol,
            algorithm,
            public_key,
        } => {
            let mut k = public_key.to_vec();
            k[20] ^= 1;
            RData::Dnskey {
                flags: *flags,
                protocol: *protocol,
                algorithm: *algorithm,
                public_key: k.into(),
            }
        }
        d => panic!("no tamper for {d:?}"),
    };
    let err = verify_rrsig(&other, &rrsig, &key, now, &mut b).unwrap_err();
    assert!(
        matches!(err, VerifyError::BadSignature { .. }),
        "{algorithm}: {err}"
    );
    assert_eq!(err.reason(), Some(BogusReason::Other));
}

#[test]
fn rfc_5702_rsasha512() {
    known_answer(
        v::RFC5702_RSASHA512_DNSKEY,
        &[v::RFC5702_A],
        v::RFC5702_RSASHA512_RRSIG,
        v::RFC5702_NOW,
        Algorithm::RsaSha512,
    );
}

#[test]
fn rfc_5702_rsasha256_key_of_512_bits_is_refused() {
    // The RFC's RSASHA256 example key is too short for ring (and for trust): bogus, saying why.
    let err = verify_rrsig(
        &[rec(v::RFC5702_A)],
        &rec(v::RFC5702_RSASHA256_RRSIG),
        &rec(v::RFC5702_RSASHA256_DNSKEY),
        v::RFC5702_NOW,
        &mut budget(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature {
            key_tag: 9033,
            cause: CryptoError::RsaKeySize(512)
        }
    );
    assert!(err.to_string().contains("RSA key of 512 bits"));
}

#[test]
fn rsasha256_root_2019_and_net_2021() {
    // KSK-2017 signing the root DNSKEY RRset (2048 bits, exponent 65537).
    known_answer(
        v::ROOT_KSK_2017,
        &[v::ROOT_KSK_2017, v::ROOT_ZSK_2019],
        v::ROOT_DNSKEY_RRSIG_2019,
        v::ROOT_2019_NOW,
        Algorithm::RsaSha256,
    );
    // net.'s KSK (exponent 3), over an RRset given in the other order: canonical order is ours.
    known_answer(
        v::NET_KSK_2021,
        &[v::NET_ZSK_2021, v::NET_KSK_2021],
        v::NET_DNSKEY_RRSIG_2021,
        v::NET_2021_NOW,
        Algorithm::RsaSha256,
    );
}

#[test]
fn rfc_6605_ecdsa_p256_and_p384() {
    known_answer(
        v::RFC6605_P256_DNSKEY,
        &[v::RFC6605_A],
        v::RFC6605_P256_RRSIG,
        v::RFC6605_NOW,
        Algorithm::EcdsaP256Sha256,
    );
    known_answer(
        v::RFC6605_P384_DNSKEY,
        &[v::RFC6605_A],
        v::RFC6605_P384_RRSIG,
        v::RFC6605_NOW,
        Algorithm::EcdsaP384Sha384,
    );
}

#[test]
fn rfc_8080_ed25519_with_erratum_4935() {
    known_answer(
        v::RFC8080_ED25519_DNSKEY,
        &[v::RFC8080_MX],
        v::RFC8080_ED25519_RRSIG,
        v::RFC8080_NOW,
        Algorithm::Ed25519,
    );
    // The RFC's private key gives its public key, and (Ed25519 being deterministic) signing the
    // erratum's RRSIG reproduces its signature octet for octet.
    let mx = [rec(v::RFC8080_MX)];
    let rrsig = rec(v::RFC8080_ED25519_RRSIG);
    let key = TestKey::ed25519_from_seed("example.com", &b64(v::RFC8080_ED25519_PRIVATE));
    assert_eq!(key.record, rec(v::RFC8080_ED25519_DNSKEY));
    let mine = key.sign(&mx, rrsig_of(&rrsig).clone());
    assert_eq!(mine, rrsig);
    // The signatures the RFC prints were made with a labels field of 3: they verify over that
    // data and not over the correct one.
    for (seed, dnskey, printed, tag) in [
        (
            v::RFC8080_ED25519_PRIVATE,
            v::RFC8080_ED25519_DNSKEY,
            v::RFC8080_ED25519_PRINTED_SIGNATURE,
            3613,
        ),
        (
            v::RFC8080_ED25519_PRIVATE_2,
            v::RFC8080_ED25519_DNSKEY_2,
            v::RFC8080_ED25519_PRINTED_SIGNATURE_2,
            35217,
        ),
    ] {
        let key = TestKey::ed25519_from_seed("example.com", &b64(seed));
        assert_eq!(key.record, rec(dnskey));
        assert_eq!(key.tag(), tag);
        let template = |labels| Rrsig {
            labels,
            key_tag: tag,
            ..rrsig_of(&rrsig).clone()
        };
        let public = key.dnskey().public_key.to_vec();
        let printed = b64(printed);
        let over = |labels| signed_data(&template(labels), &mx).unwrap();
        assert!(verify_signature(Algorithm::Ed25519, &public, &over(3), &printed).is_ok());
        assert!(verify_signature(Algorithm::Ed25519, &public, &over(2), &printed).is_err());
        let signed = key.sign(&mx, template(2));
        assert!(verify_rrsig(&mx, &signed, &key.record, v::RFC8080_NOW, &mut budget()).is_ok());
    }
}

#[test]
fn rfc_4035_rsasha1_wildcard_verifies_but_is_not_trusted() {
    // RFC 4035 B.6: a.z.w.example MX, expanded from *.w.example (labels 2), RSASHA1.
    let key = rec(v::RFC4035_ZSK);
    let mx = [rec(v::RFC4035_WILDCARD_MX)];
    let rrsig = rec(v::RFC4035_WILDCARD_RRSIG);
    let sig = rrsig_of(&rrsig);
    let k = Dnskey::from_record(&key).unwrap();
    assert_eq!(k.key_tag(), 38519);
    // The signature covers the wildcard owner; our signed data rebuilds it from the labels.
    let data = signed_data(sig, &mx).unwrap();
    let star: Name = "*.w.example".parse().unwrap();
    assert!(data.windows(star.wire_len()).any(|w| w == star.as_wire()));
    for alg in [Algorithm::RsaSha1, Algorithm::RsaSha1Nsec3Sha1] {
        assert_eq!(
            verify_signature(alg, k.public_key, &data, &sig.signature),
            Ok(())
        );
        let mut bad = data.clone();
        bad[data.len() - 3] ^= 0x20;
        assert!(verify_signature(alg, k.public_key, &bad, &sig.signature).is_err());
        let mut bad = sig.signature.to_vec();
        bad[5] ^= 1;
        assert!(verify_signature(alg, k.public_key, &data, &bad).is_err());
    }
    // The wrong hash is not accepted either.
    assert!(verify_signature(Algorithm::RsaSha256, k.public_key, &data, &sig.signature).is_err());
    // RFC 9905: SHA-1 signatures make nothing secure; the zone is treated as unsigned.
    let mut b = budget();
    let err = verify_rrsig(&mx, &rrsig, &key, v::RFC4035_NOW, &mut b).unwrap_err();
    assert_eq!(err, VerifyError::UnsupportedAlgorithm);
    assert!(err.is_insecure());
    assert_eq!(err.verdict(), Verdict::Insecure);
    assert_eq!(err.ede(), ede::UNSUPPORTED_DNSKEY_ALGORITHM);
    assert_eq!(
        b.used(),
        0,
        "no verification spent on an unsupported algorithm"
    );
}

// --- Checks of RFC 4035 section 5.3.1, on keys made at test time ---

fn a_rrset(owner: &str) -> Vec<Record> {
    vec![
        rec(&format!("{owner} 300 IN A 192.0.2.1")),
        rec(&format!("{owner} 300 IN A 192.0.2.2")),
    ]
}

#[test]
fn a_generated_signature_verifies_in_any_order_and_case() {
    for key in [
        TestKey::ed25519("example.com"),
        TestKey::p256("example.com"),
        TestKey::p384("example.com"),
    ] {
        let rrset = a_rrset("www.example.com");
        let sig = key.sign_now(&rrset);
        let mut shuffled: Vec<Record> = rrset.iter().rev().cloned().collect();
        for r in &mut shuffled {
            r.name = "WWW.Example.COM".parse().unwrap();
        }
        let mut b = budget();
        let ok = verify_rrset(
            &shuffled,
            std::slice::from_ref(&sig),
            std::slice::from_ref(&key.record),
            NOW,
            &mut b,
        )
        .unwrap();
        assert_eq!((ok.ttl, ok.wildcard, ok.key_tag), (300, None, key.tag()));
        // A duplicate record changes nothing (RFC 4034 section 6.3).
        shuffled.push(shuffled[0].clone());
        assert!(verify_rrset(
            &shuffled,
            &[sig],
            std::slice::from_ref(&key.record),
            NOW,
            &mut b
        )
        .is_ok());
    }
}

#[test]
fn validity_window_in_serial_arithmetic_with_skew() {
    let key = TestKey::ed25519("example.com");
    let rrset = a_rrset("www.example.com");
    let keys = [key.record.clone()];
    let (inception, expiration) = (NOW - HOUR, NOW + HOUR);
    let sig = key.sign(&rrset, key.rrsig(&rrset, inception, expiration));
    let at = |now: u32| {
        verify_rrset(
            &rrset,
            std::slice::from_ref(&sig),
            &keys,
            now,
            &mut budget(),
        )
    };

    assert!(at(inception).is_ok() && at(expiration).is_ok());
    // Within the skew either side: accepted; a signature past its expiration is cached for 0 s.
    assert!(at(inception - CLOCK_SKEW).is_ok());
    assert_eq!(at(expiration + CLOCK_SKEW).unwrap().ttl, 0);
    let early = at(inception - CLOCK_SKEW - 1).unwrap_err();
    assert_eq!(
        early,
        VerifyError::NotYetValid {
            inception,
            now: inception - CLOCK_SKEW - 1
        }
    );
    assert_eq!(early.reason(), Some(BogusReason::SignatureNotYetValid));
    let late = at(expiration + CLOCK_SKEW + 1).unwrap_err();
    assert!(matches!(late, VerifyError::Expired { .. }));
    assert_eq!(late.reason(), Some(BogusReason::SignatureExpired));
    assert_eq!(late.ede(), ede::SIGNATURE_EXPIRED);

    // Inception after expiration.
    let backwards = key.sign(&rrset, key.rrsig(&rrset, expiration, inception));
    assert_eq!(
        verify_rrset(&rrset, &[backwards], &keys, NOW, &mut budget()),
        Err(VerifyError::Mismatch(Mismatch::Window {
            inception: expiration,
            expiration: inception
        }))
    );

    // A window across the 2^32 wrap (the year 2106): serial arithmetic, not integer order.
    let wrap = key.sign(&rrset, key.rrsig(&rrset, u32::MAX - HOUR, HOUR));
    let now = 10;
    let ok = verify_rrset(
        &rrset,
        std::slice::from_ref(&wrap),
        &keys,
        now,
        &mut budget(),
    )
    .unwrap();
    assert_eq!(ok.ttl, 300);
    assert!(verify_rrset(
        &rrset,
        std::slice::from_ref(&wrap),
        &keys,
        u32::MAX,
        &mut budget()
    )
    .is_ok());
    assert!(matches!(
        verify_rrset(&rrset, &[wrap], &keys, 2 * HOUR, &mut budget()),
        Err(VerifyError::Expired { .. })
    ));
}

#[test]
fn serial_order() {
    assert!(serial_lt(1, 2) && !serial_lt(2, 1) && !serial_lt(5, 5));
    assert!(serial_lt(u32::MAX, 0), "0 follows 2^32 - 1");
    assert!(serial_lt(u32::MAX - 10, 10));
    assert!(!serial_lt(10, u32::MAX - 10));
    // 2^31 apart: unordered.
    assert!(!serial_lt(0, 0x8000_0000) && !serial_lt(0x8000_0000, 0));
    assert!(serial_lt(0, 0x7FFF_FFFF));
}

#[test]
fn ttl_is_the_smallest_of_records_original_ttl_and_time_left() {
    let key = TestKey::p256("example.com");
    let keys = [key.record.clone()];
    let mut rrset = a_rrset("www.example.com");
    rrset[1].ttl = 200;
    let mut sig = key.rrsig(&rrset, NOW - HOUR, NOW + 1000);
    sig.original_ttl = 250;
    let signed = key.sign(&rrset, sig);
    let at = |now, rrset: &[Record]| {
        verify_rrset(
            rrset,
            std::slice::from_ref(&signed),
            &keys,
            now,
            &mut budget(),
        )
        .unwrap()
        .ttl
    };
    assert_eq!(at(NOW, &rrset), 200);
    assert_eq!(at(NOW + 900, &rrset), 100, "seconds until expiration");
    let mut long = rrset.clone();
    for r in &mut long {
        r.ttl = 86400;
    }
    assert_eq!(at(NOW, &long), 250, "original TTL");
}

#[test]
fn wildcard_expansion_is_reported() {
    let key = TestKey::ed25519("example.com");
    let keys = [key.record.clone()];
    // An answer for a.b.example.com synthesised from *.example.com: labels 2.
    let rrset = a_rrset("a.b.example.com");
    let mut sig = key.rrsig(&rrset, NOW - HOUR, NOW + HOUR);
    sig.labels = 2;
    let signed = key.sign(&rrset, sig.clone());
    let ok = verify_rrset(&rrset, &[signed], &keys, NOW, &mut budget()).unwrap();
    let w = ok.wildcard.unwrap();
    assert_eq!(w.closest_encloser, "example.com".parse().unwrap());
    assert_eq!(w.next_closer, "b.example.com".parse().unwrap());
    assert_eq!(w.source().unwrap(), "*.example.com".parse().unwrap());

    // The same signature over the wildcard owner itself: no expansion.
    let literal = a_rrset("*.example.com");
    let signed = key.sign(&literal, sig.clone());
    let ok = verify_rrset(&literal, &[signed], &keys, NOW, &mut budget()).unwrap();
    assert_eq!(ok.wildcard, None);

    // Labels above the owner's count (the '*' does not count).
    for (owner, labels) in [("www.example.com", 4), ("*.example.com", 3)] {
        let rrset = a_rrset(owner);
        let mut sig = key.rrsig(&rrset, NOW - HOUR, NOW + HOUR);
        sig.labels = labels;
        let signed = key.sign(&rrset, sig);
        let err = verify_rrset(&rrset, &[signed], &keys, NOW, &mut budget()).unwrap_err();
        assert!(
            matches!(err, VerifyError::Mismatch(Mismatch::Labels { .. })),
            "{owner}: {err}"
        );
        assert_eq!(err.reason(), Some(BogusReason::Other));
    }
}

#[test]
fn signer_must_be_the_zone_and_enclose_the_owner() {
    let key = TestKey::ed25519("example.com");
    let keys = [key.record.clone()];
    let rrset = a_rrset("www.example.com");
    // Signed with the right key but naming another signer.
    let mut sig = key.rrsig(&rrset, NOW - HOUR, NOW + HOUR);
    sig.signer_name = "com".parse().unwrap();
    let err = verify_rrset(&rrset, &[key.sign(&rrset, sig)], &keys, NOW, &mut budget());
    assert_eq!(err, Err(VerifyError::Mismatch(Mismatch::Signer)));
    // A name outside the signer's zone.
    let outside = a_rrset("www.example.org");
    let err = verify_rrset(
        &outside,
        &[key.sign_now(&outside)],
        &keys,
        NOW,
        &mut budget(),
    );
    assert_eq!(
        err,
        Err(VerifyError::Mismatch(Mismatch::OwnerOutsideSigner))
    );
    // An RRSIG of another owner or class.
    let sig = key.sign_now(&rrset);
    let mut moved = sig.clone();
    moved.name = "mail.example.com".parse().unwrap();
    let mut chaos = sig;
    chaos.class = Class::CH;
    for s in [moved, chaos] {
        assert_eq!(
            verify_rrset(&rrset, &[s], &keys, NOW, &mut budget()),
            Err(VerifyError::Mismatch(Mismatch::Owner))
        );
    }
}

#[test]
fn keys_must_match_and_be_zone_keys() {
    let rrset = a_rrset("www.example.com");
    // No zone key bit: EDE 11.
    let key = TestKey::ed25519("example.com").without_zone_bit();
    let err = verify_rrset(
        &rrset,
        &[key.sign_now(&rrset)],
        std::slice::from_ref(&key.record),
        NOW,
        &mut budget(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::NoZoneKeyBit {
            zone: key.zone().clone(),
            key_tag: key.tag()
        }
    );
    assert_eq!(err.ede(), ede::NO_ZONE_KEY_BIT_SET);
    // Revoked: never used.
    let key = TestKey::ed25519("example.com").with_flags(257 | flags::REVOKE);
    let err = verify_rrset(
        &rrset,
        &[key.sign_now(&rrset)],
        std::slice::from_ref(&key.record),
        NOW,
        &mut budget(),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::NoMatchingKey { .. }), "{err}");
    // Signed by a key not in the set: EDE 9.
    let (signer, other) = (TestKey::p256("example.com"), TestKey::p256("example.com"));
    let err = verify_rrset(
        &rrset,
        &[signer.sign_now(&rrset)],
        std::slice::from_ref(&other.record),
        NOW,
        &mut budget(),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::NoMatchingKey { .. }));
    assert_eq!(err.reason(), Some(BogusReason::DnskeyMissing));
    assert_eq!(
        verify_rrset(&rrset, &[signer.sign_now(&rrset)], &[], NOW, &mut budget())
            .unwrap_err()
            .reason(),
        Some(BogusReason::DnskeyMissing)
    );
}

#[test]
fn missing_signatures() {
    let key = TestKey::ed25519("example.com");
    let keys = [key.record.clone()];
    let rrset = a_rrset("www.example.com");
    let err = verify_rrset(&rrset, &[], &keys, NOW, &mut budget()).unwrap_err();
    assert_eq!(
        err,
        VerifyError::NoSignatures {
            owner: rrset[0].name.clone(),
            rtype: RType::A
        }
    );
    assert_eq!(err.ede(), ede::RRSIGS_MISSING);
    // An RRSIG for another type does not count.
    let txt = [rec("www.example.com 300 IN TXT hello")];
    let err = verify_rrset(&rrset, &[key.sign_now(&txt)], &keys, NOW, &mut budget());
    assert!(matches!(err, Err(VerifyError::NoSignatures { .. })));
    // Not one RRset.
    let mixed = [rrset[0].clone(), txt[0].clone()];
    assert_eq!(
        verify_rrset(&mixed, &[], &keys, NOW, &mut budget()),
        Err(VerifyError::Mismatch(Mismatch::NotOneRrset))
    );
    assert_eq!(
        verify_rrset(&[], &[], &keys, NOW, &mut budget()),
        Err(VerifyError::Mismatch(Mismatch::NotOneRrset))
    );
}

#[test]
fn unsupported_algorithms_are_insecure_unless_the_zone_has_supported_keys() {
    let rrset = a_rrset("www.example.com");
    // An ED448 key (algorithm 16) and an RRSIG by it: nothing we can check. Insecure.
    let ed448 = rec("example.com 3600 IN DNSKEY 257 3 16 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let tag = Dnskey::from_record(&ed448).unwrap().key_tag();
    let sig = rec(&format!(
        "www.example.com 300 IN RRSIG A 16 3 300 {} {} {tag} example.com AAAA",
        NOW + HOUR,
        NOW - HOUR
    ));
    let mut b = budget();
    let err = verify_rrset(
        &rrset,
        std::slice::from_ref(&sig),
        std::slice::from_ref(&ed448),
        NOW,
        &mut b,
    )
    .unwrap_err();
    assert_eq!(err, VerifyError::UnsupportedAlgorithm);
    assert_eq!(err.verdict(), Verdict::Insecure);
    // With an Ed25519 key in the zone as well, an RRSIG by it is required: RRSIGs missing.
    let key = TestKey::ed25519("example.com");
    let err = verify_rrset(
        &rrset,
        std::slice::from_ref(&sig),
        &[ed448.clone(), key.record.clone()],
        NOW,
        &mut b,
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::NoUsableSignature { .. }),
        "{err}"
    );
    assert_eq!(err.reason(), Some(BogusReason::RrsigsMissing));
    // ... and with it, the set verifies (RFC 6840 section 5.11: any one algorithm will do).
    assert!(verify_rrset(
        &rrset,
        &[sig, key.sign_now(&rrset)],
        &[ed448, key.record.clone()],
        NOW,
        &mut b
    )
    .is_ok());
    assert_eq!(b.used(), 1);
}

#[test]
fn the_most_advanced_failure_is_reported() {
    let key = TestKey::ed25519("example.com");
    let keys = [key.record.clone()];
    let rrset = a_rrset("www.example.com");
    let stranger = TestKey::ed25519("example.com");
    let expired = key.sign(&rrset, key.rrsig(&rrset, NOW - 3 * HOUR, NOW - 2 * HOUR));
    let unknown_key = stranger.sign_now(&rrset);
    let bad = with_rrsig(&key.sign_now(&rrset), |s| s.original_ttl += 1);
    let other_signer = with_rrsig(&key.sign_now(&rrset), |s| {
        s.signer_name = "com".parse().unwrap()
    });
    let run = |sigs: &[Record]| verify_rrset(&rrset, sigs, &keys, NOW, &mut budget()).unwrap_err();
    assert!(matches!(
        run(&[other_signer.clone(), unknown_key.clone()]),
        VerifyError::NoMatchingKey { .. }
    ));
    assert!(matches!(
        run(&[unknown_key.clone(), expired.clone(), other_signer]),
        VerifyError::Expired { .. }
    ));
    assert!(matches!(
        run(&[expired, bad, unknown_key]),
        VerifyError::BadSignature { .. }
    ));
}

// --- KeyTrap limits ---

#[test]
fn budget_exhaustion_is_bogus_after_n_verifications() {
    let key = TestKey::p256("example.com");
    let keys = [key.record.clone()];
    let mut b = Budget::new(3);
    for i in 0..3 {
        let rrset = a_rrset(&format!("host{i}.example.com"));
        assert!(verify_rrset(&rrset, &[key.sign_now(&rrset)], &keys, NOW, &mut b).is_ok());
    }
    assert_eq!((b.used(), b.remaining(), b.is_exhausted()), (3, 0, true));
    let rrset = a_rrset("host3.example.com");
    let err = verify_rrset(&rrset, &[key.sign_now(&rrset)], &keys, NOW, &mut b).unwrap_err();
    assert_eq!(err, VerifyError::BudgetExhausted { limit: 3 });
    assert_eq!(err.reason(), Some(BogusReason::Other));
    assert_eq!(err.ede(), ede::DNSSEC_BOGUS);
    assert!(matches!(err.verdict(), Verdict::Bogus(ref b) if b.detail.contains("more than 3")));
    // Exhaustion mid-RRset stops there: the good RRSIG after a bad one is not reached.
    let mut b = Budget::new(1);
    let bad = with_rrsig(&key.sign_now(&rrset), |s| s.original_ttl += 1);
    let err = verify_rrset(&rrset, &[bad, key.sign_now(&rrset)], &keys, NOW, &mut b);
    assert_eq!(err, Err(VerifyError::BudgetExhausted { limit: 1 }));
    assert_eq!(Budget::default(), Budget::new(MAX_VERIFICATIONS_PER_QUERY));
}

#[test]
fn at_most_eight_rrsigs_are_tried_per_rrset() {
    let key = TestKey::ed25519("example.com");
    let keys = [key.record.clone()];
    let rrset = a_rrset("www.example.com");
    let good = key.sign_now(&rrset);
    // Plausible RRSIGs that fail only at the signature: each costs a verification.
    let bad: Vec<Record> = (1..=MAX_RRSIGS_PER_RRSET as u32)
        .map(|i| with_rrsig(&good, |s| s.original_ttl += i))
        .collect();
    // The good one eighth: verified, after seven failures.
    let mut sigs = bad[..MAX_RRSIGS_PER_RRSET - 1].to_vec();
    sigs.push(good.clone());
    let mut b = budget();
    assert!(verify_rrset(&rrset, &sigs, &keys, NOW, &mut b).is_ok());
    assert_eq!(b.used(), 8);
    // The good one ninth: never tried.
    let mut sigs = bad.clone();
    sigs.push(good);
    let mut b = budget();
    let err = verify_rrset(&rrset, &sigs, &keys, NOW, &mut b).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }));
    assert_eq!(b.used(), MAX_RRSIGS_PER_RRSET as u32);
    // RRSIGs that fail the cheap checks do not count: 20 expired ones, then the good one.
    let expired = key.sign(&rrset, key.rrsig(&rrset, NOW - 3 * HOUR, NOW - 2 * HOUR));
    let mut sigs = vec![expired; 20];
    sigs.push(key.sign_now(&rrset));
    let mut b = budget();
    assert!(verify_rrset(&rrset, &sigs, &keys, NOW, &mut b).is_ok());
    assert_eq!(b.used(), 1);
}

#[test]
fn at_most_two_keys_are_tried_per_key_tag() {
    let key = TestKey::ed25519("example.com");
    let rrset = a_rrset("www.example.com");
    let sig = key.sign_now(&rrset);
    // Three keys with the same tag and algorithm; the real one last: not tried.
    let mut keys = same_tag_variants(&key.record, 3);
    keys.rotate_left(1);
    let mut b = budget();
    let err = verify_rrset(&rrset, std::slice::from_ref(&sig), &keys, NOW, &mut b).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    assert_eq!(b.used(), MAX_KEYS_PER_TAG as u32);
    // Second: found.
    keys.swap(1, 2);
    let mut b = budget();
    assert!(verify_rrset(&rrset, std::slice::from_ref(&sig), &keys, NOW, &mut b).is_ok());
    assert_eq!(b.used(), 2);
    // KeyTrap's shape: many keys with the RRSIGs' tag (none of them the signer) and many RRSIGs
    // naming them. At most 8 x 2 verifications.
    let many = &same_tag_variants(&key.record, 12)[1..];
    let sigs = vec![sig; 30];
    let mut b = budget();
    assert!(verify_rrset(&rrset, &sigs, many, NOW, &mut b).is_err());
    assert_eq!(
        b.used(),
        (MAX_RRSIGS_PER_RRSET * MAX_KEYS_PER_TAG) as u32,
        "bounded work per RRset"
    );
}

// --- DNSKEY RRsets and DS records ---

#[test]
fn dnskey_rrset_is_authenticated_by_a_ds_named_key_only() {
    let ksk = TestKey::ed25519("example.com");
    let zsk = TestKey::p256("example.com");
    let dnskeys = [ksk.record.clone(), zsk.record.clone()];
    let ds = Record::new(
        ksk.zone().clone(),
        3600,
        RData::Ds {
            key_tag: ksk.tag(),
            algorithm: 15,
            digest_type: 2,
            digest: ksk
                .dnskey()
                .ds_digest(ksk.zone(), DigestType::Sha256)
                .into(),
        },
    );
    let ds_set = [ds.clone()];
    let by_ksk = ksk.sign_now(&dnskeys);
    let by_zsk = zsk.sign_now(&dnskeys);
    let mut b = budget();
    let ok = verify_dnskey_rrset(
        &dnskeys,
        &[by_zsk.clone(), by_ksk.clone()],
        &ds_set,
        NOW,
        &mut b,
    )
    .unwrap();
    assert_eq!(ok.key_tag, ksk.tag());
    // Signed only by the ZSK, which no DS names: not authenticated (and no verification spent).
    let before = b.used();
    let err = verify_dnskey_rrset(&dnskeys, &[by_zsk], &ds_set, NOW, &mut b).unwrap_err();
    assert!(matches!(err, VerifyError::NoMatchingKey { .. }), "{err}");
    assert_eq!(b.used(), before);
    // A DS that matches no key.
    let mut wrong = ds.clone();
    if let RData::Ds { digest, .. } = &mut wrong.data {
        digest[0] ^= 1;
    }
    let err = verify_dnskey_rrset(
        &dnskeys,
        std::slice::from_ref(&by_ksk),
        &[wrong],
        NOW,
        &mut b,
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::NoKeyForDs {
            zone: ksk.zone().clone()
        }
    );
    assert_eq!(err.reason(), Some(BogusReason::DnskeyMissing));
    // No DS records at all: bogus too (only a denial proof makes a zone without DS insecure).
    assert_eq!(
        verify_dnskey_rrset(&dnskeys, std::slice::from_ref(&by_ksk), &[], NOW, &mut b),
        Err(VerifyError::NoKeyForDs {
            zone: ksk.zone().clone()
        })
    );
    // Only unsupported DS records: insecure, with the EDE that says why.
    let mut sha1_alg = ds.clone();
    let mut gost = ds;
    if let RData::Ds { algorithm, .. } = &mut sha1_alg.data {
        *algorithm = 5;
    }
    if let RData::Ds { digest_type, .. } = &mut gost.data {
        *digest_type = 3;
    }
    let err = verify_dnskey_rrset(
        &dnskeys,
        std::slice::from_ref(&by_ksk),
        &[sha1_alg],
        NOW,
        &mut b,
    );
    assert_eq!(err, Err(VerifyError::UnsupportedAlgorithm));
    let err = verify_dnskey_rrset(&dnskeys, &[by_ksk], &[gost], NOW, &mut b).unwrap_err();
    assert_eq!(err, VerifyError::UnsupportedDigest);
    assert_eq!(
        (err.verdict(), err.ede()),
        (Verdict::Insecure, ede::UNSUPPORTED_DS_DIGEST_TYPE)
    );
    // Once trusted, the whole set verifies the zone's data, signed by the ZSK.
    let rrset = a_rrset("www.example.com");
    assert!(verify_rrset(&rrset, &[zsk.sign_now(&rrset)], &dnskeys, NOW, &mut b).is_ok());
}

#[test]
fn every_error_maps_to_one_reason() {
    let n: Name = "example.com".parse().unwrap();
    let cases = [
        (
            VerifyError::NoSignatures {
                owner: n.clone(),
                rtype: RType::A,
            },
            Some(BogusReason::RrsigsMissing),
        ),
        (
            VerifyError::NoUsableSignature {
                owner: n.clone(),
                rtype: RType::A,
            },
            Some(BogusReason::RrsigsMissing),
        ),
        (
            VerifyError::Mismatch(Mismatch::Signer),
            Some(BogusReason::Other),
        ),
        (
            VerifyError::NoMatchingKey {
                zone: n.clone(),
                key_tag: 1,
                algorithm: 13,
            },
            Some(BogusReason::DnskeyMissing),
        ),
        (
            VerifyError::NoKeyForDs { zone: n.clone() },
            Some(BogusReason::DnskeyMissing),
        ),
        (
            VerifyError::NoZoneKeyBit {
                zone: n,
                key_tag: 1,
            },
            Some(BogusReason::NoZoneKeyBit),
        ),
        (
            VerifyError::Expired {
                expiration: 1,
                now: 2,
            },
            Some(BogusReason::SignatureExpired),
        ),
        (
            VerifyError::NotYetValid {
                inception: 2,
                now: 1,
            },
            Some(BogusReason::SignatureNotYetValid),
        ),
        (
            VerifyError::BadSignature {
                key_tag: 1,
                cause: CryptoError::BadSignature,
            },
            Some(BogusReason::Other),
        ),
        (
            VerifyError::Encoding(crate::wire::WireError::MessageTooLarge),
            Some(BogusReason::Other),
        ),
        (
            VerifyError::BudgetExhausted { limit: 1 },
            Some(BogusReason::Other),
        ),
        (VerifyError::UnsupportedAlgorithm, None),
        (VerifyError::UnsupportedDigest, None),
    ];
    for (err, reason) in cases {
        assert_eq!(err.reason(), reason, "{err}");
        match err.verdict() {
            Verdict::Bogus(b) => {
                assert_eq!(Some(b.reason), reason);
                assert_eq!(&*b.detail, err.to_string());
                assert_eq!(err.ede(), b.reason.ede());
            }
            Verdict::Insecure => assert!(reason.is_none() && err.is_insecure()),
            v => panic!("{err}: {v:?}"),
        }
    }
}

/// The cost of one verification per algorithm with ring, on this machine:
/// `cargo test --release -- --ignored dnssec_verify_cost --nocapture`. Indicative only when the
/// machine is busy or the run is niced.
#[test]
#[ignore = "a measurement, not a test: run with --release --ignored --nocapture"]
fn dnssec_verify_cost() {
    let cases = [
        (
            "RSASHA256 2048 bits (root KSK)",
            v::ROOT_KSK_2017,
            vec![v::ROOT_KSK_2017, v::ROOT_ZSK_2019],
            v::ROOT_DNSKEY_RRSIG_2019,
        ),
        (
            "RSASHA256 2048 bits, e = 3 (net.)",
            v::NET_KSK_2021,
            vec![v::NET_KSK_2021, v::NET_ZSK_2021],
            v::NET_DNSKEY_RRSIG_2021,
        ),
        (
            "RSASHA512 1024 bits (RFC 5702)",
            v::RFC5702_RSASHA512_DNSKEY,
            vec![v::RFC5702_A],
            v::RFC5702_RSASHA512_RRSIG,
        ),
        (
            "RSASHA1 1024 bits (RFC 4035)",
            v::RFC4035_ZSK,
            vec![v::RFC4035_WILDCARD_MX],
            v::RFC4035_WILDCARD_RRSIG,
        ),
        (
            "ECDSAP256SHA256 (RFC 6605)",
            v::RFC6605_P256_DNSKEY,
            vec![v::RFC6605_A],
            v::RFC6605_P256_RRSIG,
        ),
        (
            "ECDSAP384SHA384 (RFC 6605)",
            v::RFC6605_P384_DNSKEY,
            vec![v::RFC6605_A],
            v::RFC6605_P384_RRSIG,
        ),
        (
            "ED25519 (RFC 8080)",
            v::RFC8080_ED25519_DNSKEY,
            vec![v::RFC8080_MX],
            v::RFC8080_ED25519_RRSIG,
        ),
    ];
    println!("ring signature verifications per second (one thread):");
    for (name, key, rrset, rrsig) in cases {
        let key = rec(key);
        let rrset: Vec<Record> = rrset.iter().map(|l| rec(l)).collect();
        let rrsig = rec(rrsig);
        let sig = rrsig_of(&rrsig);
        let k = Dnskey::from_record(&key).unwrap();
        let alg = Algorithm::from_code(k.algorithm).unwrap();
        let data = signed_data(sig, &rrset).unwrap();
        assert!(verify_signature(alg, k.public_key, &data, &sig.signature).is_ok());
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_millis(500) {
            for _ in 0..10 {
                let r = verify_signature(alg, k.public_key, &data, &sig.signature);
                std::hint::black_box(r).unwrap();
            }
            n += 10;
        }
        let per_sec = f64::from(n) / start.elapsed().as_secs_f64();
        println!(
            "  {name:<36} {per_sec:>9.0}/s  {:>7.1} us each",
            1e6 / per_sec
        );
    }
}

#[test]
fn a_signature_verified_before_costs_no_verification_when_remembered() {
    let memo = std::sync::Arc::new(crate::dnssec::memo::VerifiedSignatures::new());
    let key = TestKey::p256("example.com");
    let rrset = a_rrset("www.example.com");
    let sig = key.sign_now(&rrset);
    let keys = std::slice::from_ref(&key.record);
    let check = |b: &mut Budget| verify_rrset(&rrset, std::slice::from_ref(&sig), keys, NOW, b);
    let mut first = Budget::remembering(memo.clone());
    assert!(check(&mut first).is_ok());
    assert_eq!((first.used(), memo.len()), (1, 1));
    let mut again = Budget::remembering(memo.clone());
    assert!(check(&mut again).is_ok());
    assert_eq!(again.used(), 0, "remembered: no public-key work");
    // Without the memo every verification is paid, and a memo never makes a bad one pass.
    let mut plain = budget();
    assert!(check(&mut plain).is_ok());
    assert_eq!(plain.used(), 1);
    let mut tampered = sig.clone();
    if let RData::Rrsig(s) = &mut tampered.data {
        s.signature[0] ^= 1;
    }
    let mut b = Budget::remembering(memo.clone());
    assert!(verify_rrset(&rrset, &[tampered], keys, NOW, &mut b).is_err());
    assert_eq!((b.used(), memo.len()), (1, 1));
    // The window is checked before the memo: an expired signature fails though remembered.
    let mut late = Budget::remembering(memo);
    assert!(matches!(
        verify_rrset(
            &rrset,
            std::slice::from_ref(&sig),
            keys,
            u32::MAX / 2 + NOW,
            &mut late
        ),
        Err(VerifyError::Expired { .. } | VerifyError::NotYetValid { .. })
    ));
}
