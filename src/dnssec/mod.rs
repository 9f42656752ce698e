//! DNSSEC validation (RFC 4033, 4034, 4035, with RFC 6840's clarifications; NSEC3 RFC 5155): pure
//! code over [`crate::wire`] and ring, with no I/O of its own, shared by the forwarding and the
//! recursive modes. Trust anchors, key tags and DS digests, RRSIG verification, and what verified
//! NSEC and NSEC3 records prove.
//!
//! ```text
//!   TrustAnchors (certs/root-anchors.txt or a file)        anchor.rs
//!        | closest(zone) -> ZoneAnchor::verify_dnskeys
//!        v
//!   root DNSKEY RRset, trusted --verify_rrset--> DS RRset of the child, trusted      verify.rs
//!        --verify_dnskey_rrset (match_ds: which keys the DS records name)-->         key.rs
//!   child DNSKEY RRset, trusted --verify_rrset--> answer RRset: VerifiedRrset { ttl, wildcard }
//!        |                                          or VerifyError -> Verdict (Bogus + EDE, Insecure)
//!   every signature check goes through algorithm::verify_signature (ring), counted by a Budget
//! ```
//!
//! Why it is built this way:
//! - Pure functions over `wire` types and ring, no I/O of their own and no clock: the validating
//!   stage fetches DNSKEY and DS records (through the lookup API, so over the same encrypted
//!   upstreams) and passes them in with the time (`now`, seconds since the epoch modulo 2^32, from
//!   [`crate::clock::WallClock`]); the recursor can use the same functions. Tests run it all on
//!   fixed data at fixed times.
//! - One error enum for this layer, [`VerifyError`], whose variants map one-to-one to the
//!   [`BogusReason`](crate::handler::answer::BogusReason)s a client sees as Extended DNS Errors
//!   (RFC 8914), plus the two "unsupported" outcomes that mean insecure (RFC 4035 section 5.2).
//!   Anchor files have their own, [`AnchorError`], naming the file and line.
//! - Every amount of work an attacker controls is bounded by a named constant (KeyTrap,
//!   CVE-2023-50387): [`MAX_RRSIGS_PER_RRSET`], [`MAX_KEYS_PER_TAG`] and, per client query,
//!   [`MAX_VERIFICATIONS_PER_QUERY`] through a [`Budget`] the caller passes by `&mut`. Past a
//!   limit the answer is bogus, not retried.
//! - The algorithm policy (which algorithms make data secure, SHA-1 per RFC 9905) lives in one
//!   place, [`algorithm`], with the reasons.
//!
//! - [`denial`] decides what verified NSEC and NSEC3 records prove (RFC 4035 section 5.4, RFC 5155
//!   section 8, RFC 6840 section 4, RFC 9276, RFC 8198), including the no-closer-name proof a
//!   wildcard answer needs ([`VerifiedRrset::wildcard`] says when).
//!
//! What is not here yet: the validating stage itself (walking the chain from an anchor through the
//! lookup API, caching keys and verdicts, answering with EDEs).
//!
//! Limitations: see each module. In short: RSA keys of 1024 to 4096 bits only; no ED448; no
//! RFC 5011 anchor maintenance; a fixed clock skew of [`CLOCK_SKEW`] seconds.

pub mod algorithm;
pub mod anchor;
pub mod denial;
pub mod key;
pub mod memo;
pub mod verify;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod vectors;

pub use algorithm::{verify_signature, Algorithm, CryptoError, DigestType};
pub use anchor::{AnchorError, AnchorErrorKind, TrustAnchors, ZoneAnchor};
pub use key::{match_ds, Dnskey, Ds, DsMatch, MAX_KEYS_PER_TAG};
pub use verify::{
    serial_lt, verify_dnskey_rrset, verify_rrset, verify_rrsig, Budget, Mismatch, VerifiedRrset,
    VerifyError, WildcardExpansion, CLOCK_SKEW, MAX_RRSIGS_PER_RRSET, MAX_VERIFICATIONS_PER_QUERY,
};
