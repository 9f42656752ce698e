//! The DNSSEC algorithms and DS digest types we validate, and the one place that calls ring.
//!
//! ```text
//!   DNSKEY public key + signed octets + RRSIG signature --verify_signature--> Ok | CryptoError
//!   canonical owner | DNSKEY RDATA --DigestType::digest--> DS digest
//! ```
//!
//! Signature algorithms (IANA "DNS Security Algorithm Numbers"):
//!
//! | code | name               | here          | ring                                            |
//! |------|--------------------|---------------|-------------------------------------------------|
//! | 5    | RSASHA1            | not trusted   | `RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY`   |
//! | 7    | RSASHA1-NSEC3-SHA1 | not trusted   | the same                                        |
//! | 8    | RSASHA256          | validated     | `RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY` |
//! | 10   | RSASHA512          | validated     | `RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY` |
//! | 13   | ECDSAP256SHA256    | validated     | `ECDSA_P256_SHA256_FIXED`                        |
//! | 14   | ECDSAP384SHA384    | validated     | `ECDSA_P384_SHA384_FIXED`                        |
//! | 15   | ED25519            | validated     | `ED25519`                                       |
//!
//! Anything else (DSA, GOST, ED448, private algorithms) is unknown to us. An algorithm we do not
//! validate makes a zone insecure, not bogus (RFC 4035 section 5.2, RFC 6840 section 5.2): the
//! zone's DS records then list nothing we can use, and the validator treats it as unsigned.
//!
//! **SHA-1 signatures (algorithms 5 and 7).** RFC 8624 (2019) said validators MUST validate them.
//! RFC 9905 (October 2025, "Deprecating the Use of SHA-1 in DNSSEC Signature Algorithms") keeps
//! that for implementations ("MUST continue to support validation using these algorithms") but
//! tells operators of validating resolvers they "MUST treat DNSSEC signing algorithms RSASHA1 and
//! RSASHA1-NSEC3-SHA1 as unsupported, rendering responses insecure if they cannot be validated by
//! other supported signing algorithms", and likewise DS records of those algorithms. dnsveil is
//! both the implementation and, for its users, the operator, so it follows both halves: the
//! verification is implemented and tested ([`Algorithm::RsaSha1`], [`Algorithm::RsaSha1Nsec3Sha1`]
//! verify through [`verify_signature`]), but [`Algorithm::is_validated`] is false for them, so the
//! validator treats them as it treats any unsupported algorithm (insecure, EDE 1). unbound
//! behaves the same where the system crypto library refuses SHA-1 signatures, as RHEL 9's
//! default policy does (unbound PR #660, "Sha1 runtime insecure"); its default build still
//! validates them. A SHA-1-only zone gets answers without AD, never SERVFAIL, and never AD either:
//! a signature scheme the IETF now calls unfit to sign with cannot make data secure.
//!
//! DS digest types (IANA "Digest Algorithms"): 2 (SHA-256) and 4 (SHA-384) are validated, and 1
//! (SHA-1) too, for validation only: RFC 9905 leaves the DS digest registry as it was ("Use for
//! DNSSEC Validation" of SHA-1 unchanged), and a DS digest is a second-preimage target, which
//! SHA-1's known collision attacks do not reach. The validator ignores SHA-1 DS records when the
//! same DS set has a stronger digest (RFC 4509 section 3), see [`super::key::match_ds`].
//!
//! Key formats: RSA public keys are RFC 3110 section 2 (exponent length in one octet, or a zero
//! octet and two octets; the exponent; the modulus); ring wants the modulus and exponent apart and
//! without leading zeros. ECDSA keys are the bare x || y (RFC 6605 section 4), where ring wants the
//! SEC 1 uncompressed point, 0x04 || x || y; ECDSA signatures are the fixed-width r || s (RFC 6605
//! section 4), ring's `*_FIXED` form. Ed25519 keys and signatures are the raw 32 and 64 octets
//! (RFC 8080 sections 3 and 4).
//!
//! Limitations:
//! - RSA keys must have a modulus of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits and an exponent
//!   below 2^33 (ring's bound). RFC 3110 allows 512 bits; ring refuses to verify below 1024, and
//!   such a key cannot be trusted today anyway. A signature by a shorter key fails as a bad key
//!   (the answer is bogus), where unbound would still accept it.
//! - ED448 (16) is not validated: ring has no Ed448. A zone signed only with it is insecure.

use ring::digest;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use thiserror::Error;

/// The smallest RSA modulus we verify with, in bits: what ring's `*_FOR_LEGACY_USE_ONLY` RSA
/// verifiers accept (its ordinary ones start at 2048, which would refuse 1024-bit zone signing
/// keys still in use).
pub const MIN_RSA_BITS: usize = 1024;

/// The largest RSA modulus we verify with, in bits (RFC 3110 section 2, RFC 5702 section 2). ring
/// would go to 8192; a larger key costs more per verification and no DNSSEC key is that large.
pub const MAX_RSA_BITS: usize = 4096;

/// A DNSSEC signature algorithm this module can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// 5, RSA/SHA-1 (RFC 3110): implemented, treated as unsupported (RFC 9905).
    RsaSha1,
    /// 7, RSA/SHA-1 with NSEC3 (RFC 5155): implemented, treated as unsupported (RFC 9905).
    RsaSha1Nsec3Sha1,
    /// 8, RSA/SHA-256 (RFC 5702).
    RsaSha256,
    /// 10, RSA/SHA-512 (RFC 5702).
    RsaSha512,
    /// 13, ECDSA P-256 with SHA-256 (RFC 6605).
    EcdsaP256Sha256,
    /// 14, ECDSA P-384 with SHA-384 (RFC 6605).
    EcdsaP384Sha384,
    /// 15, Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    /// Every algorithm this module can verify, in code order.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::RsaSha1,
        Algorithm::RsaSha1Nsec3Sha1,
        Algorithm::RsaSha256,
        Algorithm::RsaSha512,
        Algorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384,
        Algorithm::Ed25519,
    ];

    /// The algorithm with this IANA code, if we implement it (whether or not we validate with it).
    pub fn from_code(code: u8) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The algorithm with this code if the validator uses it: the implemented ones minus the
    /// SHA-1 ones (see the module docs). `None` means "unsupported": insecure, not bogus.
    pub fn validated(code: u8) -> Option<Algorithm> {
        Algorithm::from_code(code).filter(|a| a.is_validated())
    }

    /// The IANA code.
    pub fn code(self) -> u8 {
        match self {
            Algorithm::RsaSha1 => 5,
            Algorithm::RsaSha1Nsec3Sha1 => 7,
            Algorithm::RsaSha256 => 8,
            Algorithm::RsaSha512 => 10,
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::EcdsaP384Sha384 => 14,
            Algorithm::Ed25519 => 15,
        }
    }

    /// The IANA mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::RsaSha1 => "RSASHA1",
            Algorithm::RsaSha1Nsec3Sha1 => "RSASHA1-NSEC3-SHA1",
            Algorithm::RsaSha256 => "RSASHA256",
            Algorithm::RsaSha512 => "RSASHA512",
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::EcdsaP384Sha384 => "ECDSAP384SHA384",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    /// Whether the validator relies on this algorithm: false for the SHA-1 algorithms, which
    /// RFC 9905 section 2 tells validating resolvers to treat as unsupported.
    pub fn is_validated(self) -> bool {
        !matches!(self, Algorithm::RsaSha1 | Algorithm::RsaSha1Nsec3Sha1)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.mnemonic(), self.code())
    }
}

/// A DS digest type this module computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestType {
    /// 1, SHA-1 (RFC 4034 section 5.1.3): for validation only.
    Sha1,
    /// 2, SHA-256 (RFC 4509).
    Sha256,
    /// 4, SHA-384 (RFC 6605 section 2).
    Sha384,
}

impl DigestType {
    /// The digest type with this IANA code, if we compute it.
    pub fn from_code(code: u8) -> Option<DigestType> {
        match code {
            1 => Some(DigestType::Sha1),
            2 => Some(DigestType::Sha256),
            4 => Some(DigestType::Sha384),
            _ => None,
        }
    }

    /// The IANA code.
    pub fn code(self) -> u8 {
        match self {
            DigestType::Sha1 => 1,
            DigestType::Sha256 => 2,
            DigestType::Sha384 => 4,
        }
    }

    /// The length of a digest of this type, in octets.
    pub fn output_len(self) -> usize {
        self.ring().output_len()
    }

    /// The digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = digest::Context::new(self.ring());
        for part in parts {
            ctx.update(part);
        }
        ctx.finish().as_ref().to_vec()
    }

    fn ring(self) -> &'static digest::Algorithm {
        match self {
            DigestType::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            DigestType::Sha256 => &digest::SHA256,
            DigestType::Sha384 => &digest::SHA384,
        }
    }
}

/// Why a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The DNSKEY's public key is not a well-formed key of its algorithm.
    #[error("malformed {0} public key")]
    BadKey(Algorithm),
    /// An RSA modulus outside [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`].
    #[error("RSA key of {0} bits (we verify {MIN_RSA_BITS} to {MAX_RSA_BITS})")]
    RsaKeySize(usize),
    /// The signature does not match the key and the data (or is not even the right length).
    #[error("signature does not verify")]
    BadSignature,
}

/// Verifies `signature` over `message` with a DNSKEY's `public_key` of `algorithm`. This is the
/// only call into ring's signature code; [`super::verify`] counts each call it makes against the
/// query's [`Budget`](super::verify::Budget).
pub fn verify_signature(
    algorithm: Algorithm,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    let bad = |_| CryptoError::BadSignature;
    match algorithm {
        Algorithm::RsaSha1
        | Algorithm::RsaSha1Nsec3Sha1
        | Algorithm::RsaSha256
        | Algorithm::RsaSha512 => {
            let (n, e) = rsa_components(algorithm, public_key)?;
            let params = match algorithm {
                Algorithm::RsaSha256 => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                Algorithm::RsaSha512 => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
                _ => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .map_err(bad)
        }
        Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaP384Sha384 => {
            let (coords, verifier) = if algorithm == Algorithm::EcdsaP256Sha256 {
                (64, &signature::ECDSA_P256_SHA256_FIXED)
            } else {
                (96, &signature::ECDSA_P384_SHA384_FIXED)
            };
            if public_key.len() != coords {
                return Err(CryptoError::BadKey(algorithm));
            }
            // SEC 1 uncompressed point: 0x04 || x || y.
            let mut point = [0u8; 97];
            point[0] = 4;
            point[1..=coords].copy_from_slice(public_key);
            UnparsedPublicKey::new(verifier, &point[..=coords])
                .verify(message, signature)
                .map_err(bad)
        }
        Algorithm::Ed25519 => {
            if public_key.len() != 32 {
                return Err(CryptoError::BadKey(algorithm));
            }
            UnparsedPublicKey::new(&signature::ED25519, public_key)
                .verify(message, signature)
                .map_err(bad)
        }
    }
}

/// Splits an RFC 3110 RSA public key into modulus and exponent, without leading zero octets, and
/// checks the modulus size.
fn rsa_components(algorithm: Algorithm, key: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let bad = CryptoError::BadKey(algorithm);
    let (exp_len, rest) = match key {
        [0, hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
        [len, rest @ ..] if *len != 0 => (usize::from(*len), rest),
        _ => return Err(bad),
    };
    if exp_len == 0 || rest.len() <= exp_len {
        return Err(bad);
    }
    let (e, n) = rest.split_at(exp_len);
    let (e, n) = (strip_leading_zeros(e), strip_leading_zeros(n));
    let Some(&top) = n.first() else {
        return Err(bad);
    };
    if e.is_empty() {
        return Err(bad);
    }
    let bits = n.len() * 8 - top.leading_zeros() as usize;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(CryptoError::RsaKeySize(bits));
    }
    Ok((n, e))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_sha1_is_not_validated() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_code(a.code()), Some(a));
        }
        let validated: Vec<u8> = (0..=255u8)
            .filter(|&c| Algorithm::validated(c).is_some())
            .collect();
        assert_eq!(validated, [8, 10, 13, 14, 15]);
        assert_eq!(Algorithm::from_code(5), Some(Algorithm::RsaSha1));
        assert_eq!(Algorithm::validated(5), None);
        assert_eq!(Algorithm::validated(7), None);
        // DSA, ECC-GOST, ED448, private algorithms: unknown.
        for code in [3, 6, 12, 16, 253, 254] {
            assert_eq!(Algorithm::from_code(code), None);
        }
        assert_eq!(Algorithm::RsaSha256.to_string(), "RSASHA256 (8)");
    }

    #[test]
    fn digest_types_and_lengths() {
        let got: Vec<(u8, usize)> = (0..=255u8)
            .filter_map(DigestType::from_code)
            .map(|d| (d.code(), d.output_len()))
            .collect();
        assert_eq!(got, [(1, 20), (2, 32), (4, 48)]);
        // FIPS 180 "abc" vectors, split across parts.
        let abc = DigestType::Sha256.digest(&[b"a", b"bc"]);
        assert_eq!(
            abc[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(abc) starts ba7816bf"
        );
        assert_eq!(
            DigestType::Sha1.digest(&[b"abc"])[..4],
            [0xa9, 0x99, 0x3e, 0x36]
        );
        assert_eq!(
            DigestType::Sha384.digest(&[b"abc"])[..4],
            [0xcb, 0x00, 0x75, 0x3f]
        );
    }

    #[test]
    fn rsa_keys_are_split_per_rfc_3110() {
        let mut key = vec![3, 1, 0, 1];
        key.extend([0xC0; 128]);
        let (n, e) = rsa_components(Algorithm::RsaSha256, &key).unwrap();
        assert_eq!((n.len(), e), (128, &[1, 0, 1][..]));

        // The long form: a zero octet, then a two-octet exponent length.
        let mut long = vec![0, 0, 3, 1, 0, 1];
        long.extend([0xC0; 128]);
        assert_eq!(rsa_components(Algorithm::RsaSha256, &long).unwrap().1, e);

        // Leading zeros go (ring refuses them); what is left must still be 1024 bits or more.
        let mut padded = vec![4, 0, 1, 0, 1, 0];
        padded.extend([0xC0; 128]);
        assert_eq!(
            rsa_components(Algorithm::RsaSha256, &padded).unwrap(),
            (&[0xC0; 128][..], &[1, 0, 1][..])
        );
        let mut short = vec![3, 1, 0, 1, 0x7F];
        short.extend([0xFF; 127]);
        assert_eq!(
            rsa_components(Algorithm::RsaSha256, &short),
            Err(CryptoError::RsaKeySize(1023))
        );
        let mut huge = vec![3, 1, 0, 1];
        huge.extend([0xFF; 513]);
        assert_eq!(
            rsa_components(Algorithm::RsaSha256, &huge),
            Err(CryptoError::RsaKeySize(4104))
        );
        let bad = CryptoError::BadKey(Algorithm::RsaSha512);
        for key in [
            &[][..],
            &[0],
            &[0, 0],
            &[0, 0, 0, 1],
            &[3, 1, 0, 1],
            &[5, 1, 0],
            &[1, 0, 0xFF],
        ] {
            assert_eq!(
                rsa_components(Algorithm::RsaSha512, key),
                Err(bad),
                "{key:?}"
            );
        }
    }

    #[test]
    fn malformed_keys_and_signatures_fail_without_panicking() {
        for a in Algorithm::ALL {
            for key in [&[][..], &[0u8; 31], &[0xFF; 64], &[1u8; 97]] {
                assert!(verify_signature(a, key, b"data", &[0; 64]).is_err(), "{a}");
            }
        }
        assert_eq!(
            verify_signature(Algorithm::Ed25519, &[0; 33], b"x", &[0; 64]),
            Err(CryptoError::BadKey(Algorithm::Ed25519))
        );
        assert_eq!(
            verify_signature(Algorithm::EcdsaP384Sha384, &[0; 64], b"x", &[0; 96]),
            Err(CryptoError::BadKey(Algorithm::EcdsaP384Sha384))
        );
    }
}
