//! DNSSEC validation (RFC 4033, 4034, 4035; NSEC3 RFC 5155): pure code over [`crate::wire`] and
//! ring, with no I/O of its own, shared by the forwarding and the recursive modes.
//!
//! ```text
//!   answer records + RRSIGs --(signature checks: verified RRsets)--> denial --> Secure / Insecure /
//!   NSEC / NSEC3 (verified)  ------------------------------------->           Bogus (+ EDE)
//! ```
//!
//! Why a module of its own: the validator decides what a client may trust, so it takes its input
//! as values (records, keys, the time) and returns typed verdicts, which makes every rule testable
//! with records written as zone text and keeps network behaviour (fetching keys, retries, caching)
//! with the callers. Each part states the RFC sections it implements and its limits; every bound on
//! work an attacker could inflate is a named constant.
//!
//! Dependencies: [`crate::wire`] for records and names, ring for digests, and the verdict types
//! of [`crate::handler::answer`] that its errors map to; nothing depends on a transport.
//!
//! Parts: [`denial`] decides what verified NSEC and NSEC3 records prove (RFC 4035 section 5.4,
//! RFC 5155 section 8, RFC 6840 section 4, RFC 9276, RFC 8198).
//!
//! Limitations: the chain of trust (anchors, keys, signatures) is not here yet; [`denial`] takes
//! records whose signatures the caller has already checked.

pub mod denial;
