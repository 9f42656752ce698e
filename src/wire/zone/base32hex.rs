//! Base32 with the "extended hex" alphabet (RFC 4648 section 7), unpadded, the form of NSEC3 hashed
//! owner names (RFC 5155 section 3.3). The base64 crate the rest of the module uses has no such
//! alphabet, and a dozen lines do not justify another dependency, so it lives here with its test
//! vectors.

/// Base32 with the "extended hex" alphabet (RFC 4648 section 7), upper case, without padding.
pub fn base32hex_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut acc: u16 = 0;
    let mut bits = 0;
    for &b in data {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[usize::from((acc >> bits) & 0x1F)] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[usize::from((acc << (5 - bits)) & 0x1F)] as char);
    }
    out
}

/// Decodes unpadded base32hex in either case. `None` for bad characters, an impossible length or
/// non-zero leftover bits (so that every accepted text encodes back to itself, up to case).
pub fn base32hex_decode(text: &str) -> Option<Vec<u8>> {
    if !matches!(text.len() % 8, 0 | 2 | 4 | 5 | 7) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u16 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'V' => c - b'A' + 10,
            b'a'..=b'v' => c - b'a' + 10,
            _ => return None,
        };
        acc = (acc << 5) | u16::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base32hex_matches_rfc4648_vectors() {
        // RFC 4648 section 10, without padding.
        let vectors = [
            ("", ""),
            ("f", "CO"),
            ("fo", "CPNG"),
            ("foo", "CPNMU"),
            ("foob", "CPNMUOG"),
            ("fooba", "CPNMUOJ1"),
            ("foobar", "CPNMUOJ1E8"),
        ];
        for (plain, enc) in vectors {
            assert_eq!(base32hex_encode(plain.as_bytes()), enc);
            assert_eq!(base32hex_decode(enc).unwrap(), plain.as_bytes());
            assert_eq!(
                base32hex_decode(&enc.to_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
        assert!(base32hex_decode("C").is_none());
        assert!(base32hex_decode("CP").is_none(), "non-zero leftover bits");
        assert!(base32hex_decode("CW").is_none());
        assert!(base32hex_decode("CO==").is_none());
    }
}
