//! Signatures already verified. A DNSSEC answer is often judged more than once: the target of a
//! CNAME is validated in the chain's answer and again when a client asks for it, a name in the
//! shared cache's two keys (DO and not) twice, a zone's DNSKEY RRset by every cold query that
//! races to it. Unbound avoids the repeat with its RRset cache, which keeps each RRset's security
//! status; here the validator keeps a bounded set of digests of (algorithm, public key, signed
//! data, signature) that ring has verified, so that meeting the same signature again costs one
//! SHA-256 (about a microsecond) instead of a public-key operation (tens of microseconds for
//! ECDSA P-256).
//!
//! Whether a signature verifies depends on nothing but those four inputs, so an entry stays true
//! for as long as it is kept: every other check of an RRSIG (owner, signer, key tag, validity
//! window against the clock) still runs each time, in [`super::verify`], before this set is
//! consulted. Only successes are kept. A failed verification is paid again, and counted against
//! the query's [`Budget`](super::verify::Budget) as before, so the KeyTrap limits are unchanged;
//! a hit is not counted (it costs no public-key work). An attacker who makes us verify many
//! signatures of its own only evicts entries: the set is bounded by [`MAX_VERIFIED`] and emptied
//! when full.

use std::collections::HashSet;
use std::sync::Mutex;

use ring::digest::{Context, SHA256};

/// Most signatures remembered (32 bytes each, plus the set's own overhead: about 2 MiB at most).
pub const MAX_VERIFIED: usize = 32_768;

/// The digest that names one verification.
pub type Verification = [u8; 32];

/// Digests of the verifications that succeeded. One std mutex, held for a set operation only.
#[derive(Default)]
pub struct VerifiedSignatures {
    set: Mutex<HashSet<Verification>>,
}

impl std::fmt::Debug for VerifiedSignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedSignatures")
            .field("len", &self.len())
            .finish()
    }
}

/// The digest of a verification of `signature` over `message` with `public_key` of DNSSEC
/// algorithm number `algorithm`. Each variable-length part is preceded by its length, so no two
/// different inputs run together into the same bytes.
pub fn verification(
    algorithm: u8,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Verification {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[algorithm]);
    for part in [public_key, message, signature] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl VerifiedSignatures {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when this verification succeeded before (and is still remembered).
    pub fn contains(&self, v: &Verification) -> bool {
        self.lock().contains(v)
    }

    /// Remembers a verification that succeeded.
    pub fn insert(&self, v: Verification) {
        let mut set = self.lock();
        if set.len() >= MAX_VERIFIED {
            set.clear();
        }
        set.insert(v);
    }

    /// Verifications remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Verification>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_changes_the_digest() {
        let base = verification(13, b"key", b"data", b"sig");
        assert_eq!(base, verification(13, b"key", b"data", b"sig"));
        for other in [
            verification(8, b"key", b"data", b"sig"),
            verification(13, b"kex", b"data", b"sig"),
            verification(13, b"key", b"datb", b"sig"),
            verification(13, b"key", b"data", b"sih"),
            // The same bytes cut elsewhere.
            verification(13, b"keyd", b"ata", b"sig"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn the_set_is_bounded() {
        let memo = VerifiedSignatures::new();
        for i in 0..MAX_VERIFIED as u32 + 10 {
            memo.insert(verification(13, &i.to_be_bytes(), b"", b""));
        }
        assert!(memo.len() <= MAX_VERIFIED);
        assert!(memo.contains(&verification(
            13,
            &(MAX_VERIFIED as u32 + 9).to_be_bytes(),
            b"",
            b""
        )));
    }
}
