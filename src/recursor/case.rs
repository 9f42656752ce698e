//! 0x20 case randomisation (draft-vixie-dnsext-dns0x20; unbound's `use-caps-for-id`): each letter
//! of the name in an outgoing iterative query gets a random case, and a UDP answer counts only if
//! its question comes back octet for octet (`upstream::plain::UdpTransport::exact_case`). An
//! off-path spoofer must then guess one bit per letter on top of the source port and the ID.
//!
//! ```text
//!   query wire:  \x03www\x07example\x04test\x00 --randomize--> \x03wWw\x07ExAMplE\x04tEsT\x00
//!   answer:      question must be wWw.ExAMplE.tEsT exactly (else dropped, keep waiting)
//!                --restore_question--> the question's octets back to the asked case, so every
//!                compression pointer into it (owner names) reads the asked case as well
//!                --restore_owners--> owner names written out uncompressed in our random case too
//! ```
//!
//! The asked case (the client's, or the minimised name cut from it) is what the rest of the
//! recursor, its caches and the client see: the random case never leaves the exchange.
//!
//! Fallback: a server that answers with the question in another case (most often lowercased) is
//! remembered per address ([`super::servers::ServerTable::set_no_case`], bounded and expiring with
//! the server's other statistics) and asked without randomisation from then on; the query that
//! found it out is asked again at once without it (see `exchange::ask`). Names without letters
//! (the root, `1.2.0.192.in-addr.arpa`) are sent as they are.
//!
//! Limitations: names inside RDATA written out uncompressed by the server in our random case
//! (a CNAME pointing at the question's own name, say) keep that case; they are the same names
//! (RFC 4343) and caches key them case-insensitively.

use rand::RngCore;

use crate::wire::{Message, Name, HEADER_LEN};

/// True when `name` has an ASCII letter, so that randomising its case adds entropy.
pub fn has_letters(name: &Name) -> bool {
    name.as_wire().iter().any(u8::is_ascii_alphabetic)
}

/// Gives each ASCII letter of `wire`, an uncompressed wire-format name, a random case (one random
/// bit per letter). Length octets are at most 63 and so never letters: the name stays valid.
pub fn randomize(wire: &mut [u8], rng: &mut impl RngCore) {
    let mut bits = 0u64;
    let mut left = 0u32;
    for b in wire.iter_mut().filter(|b| b.is_ascii_alphabetic()) {
        if left == 0 {
            bits = rng.next_u64();
            left = 64;
        }
        if bits & 1 == 1 {
            b.make_ascii_uppercase();
        } else {
            b.make_ascii_lowercase();
        }
        bits >>= 1;
        left -= 1;
    }
}

/// Writes `asked` (the name in the case it was asked in) over the first question's name in `raw`,
/// an answer, when the two are equal ignoring case; returns whether it did. Compressed names that
/// point into the question then read the asked case too. Anything malformed is left alone (the
/// answer's own checks reject it).
pub fn restore_question(raw: &mut [u8], asked: &Name) -> bool {
    let asked = asked.as_wire();
    let qdcount = raw.get(4..6).map(|c| u16::from_be_bytes([c[0], c[1]]));
    if qdcount != Some(1) {
        return false;
    }
    match raw.get_mut(HEADER_LEN..HEADER_LEN + asked.len()) {
        Some(q) if q.eq_ignore_ascii_case(asked) => {
            q.copy_from_slice(asked);
            true
        }
        _ => false,
    }
}

/// Gives record owner names that are `sent` (the randomised name) or one of its ancestors, written
/// out in exactly `sent`'s random case, the case of `asked` instead.
pub fn restore_owners(msg: &mut Message, sent: &Name, asked: &Name) {
    let (sent, asked) = (sent.as_wire(), asked.as_wire());
    if sent == asked || sent.len() != asked.len() {
        return;
    }
    let records = msg
        .answers
        .iter_mut()
        .chain(msg.authority.iter_mut())
        .chain(msg.additional.iter_mut());
    for r in records {
        let Some(off) = sent.len().checked_sub(r.name.wire_len()) else {
            continue;
        };
        if r.name.as_wire() == &sent[off..] {
            // Same length, same labels, only the case differs: still a valid name.
            if let Ok(name) = Name::from_wire(&asked[off..]) {
                r.name = name;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{parse_record_line, Question, RType};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn randomizing_changes_only_the_case_of_letters() {
        let mut rng = StdRng::seed_from_u64(7);
        let name = n("www.example-1.test");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let mut wire = name.as_wire().to_vec();
            randomize(&mut wire, &mut rng);
            let random = Name::from_wire(&wire).unwrap();
            assert!(random.eq_ignore_case(&name), "{random}");
            assert_eq!(wire.len(), name.wire_len());
            // Digits, hyphens and length octets are untouched.
            for (a, b) in wire.iter().zip(name.as_wire()) {
                assert!(a == b || (a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b)));
            }
            seen.insert(wire);
        }
        // 14 letters: 64 draws give (nearly always) 64 different spellings; a constant case
        // would give one.
        assert!(seen.len() > 60, "{}", seen.len());
    }

    #[test]
    fn long_names_use_more_than_64_random_bits() {
        let label = "a".repeat(63);
        let name = n(&format!("{label}.{label}.{label}"));
        let mut wire = name.as_wire().to_vec();
        randomize(&mut wire, &mut StdRng::seed_from_u64(1));
        let tail_upper = wire[130..]
            .iter()
            .filter(|b| b.is_ascii_uppercase())
            .count();
        assert!(
            tail_upper > 10,
            "the letters past the 64th are randomised too"
        );
    }

    #[test]
    fn names_without_letters_are_left_as_they_are() {
        for s in [".", "1.2.0.192.in-addr.arpa", "4.3.2.1"] {
            let name = n(s);
            let mut wire = name.as_wire().to_vec();
            randomize(&mut wire, &mut StdRng::seed_from_u64(3));
            let letters = has_letters(&name);
            assert_eq!(letters, s.contains("arpa"), "{s}");
            if !letters {
                assert_eq!(wire, name.as_wire());
            }
        }
    }

    #[test]
    fn the_asked_case_comes_back_into_the_question_and_owner_names() {
        let asked = n("www.Example.test");
        let sent = n("wWW.exAMPle.TeSt");
        let q = Question::new(sent.clone(), RType::A);
        let mut answer = Message::response_to(&Message::query(q.name.clone(), q.qtype));
        answer.answers = vec![parse_record_line("wWW.exAMPle.TeSt A 192.0.2.1", 60).unwrap()];
        let mut raw = answer.encode().unwrap();
        assert!(restore_question(&mut raw, &asked));
        let mut back = Message::parse(&raw).unwrap();
        assert_eq!(back.questions[0].name.as_wire(), asked.as_wire());
        // The owner was compressed into the question: it reads the asked case already.
        assert_eq!(back.answers[0].name.as_wire(), asked.as_wire());
        // An owner written out in the random case (no compression), and an ancestor of it.
        back.answers[0].name = sent.clone();
        back.authority = vec![parse_record_line("exAMPle.TeSt NS ns.other.", 60).unwrap()];
        back.additional = vec![parse_record_line("ns.other. A 192.0.2.2", 60).unwrap()];
        restore_owners(&mut back, &sent, &asked);
        assert_eq!(back.answers[0].name.as_wire(), asked.as_wire());
        assert_eq!(
            back.authority[0].name.as_wire(),
            n("Example.test").as_wire()
        );
        assert_eq!(back.additional[0].name.as_wire(), n("ns.other").as_wire());
        // Another name in the question is not touched.
        let mut other = Message::response_to(&Message::query(n("www.other.test"), RType::A))
            .encode()
            .unwrap();
        let before = other.clone();
        assert!(!restore_question(&mut other, &asked));
        assert_eq!(other, before);
        // Garbage is not touched either.
        let mut short = vec![0u8; 5];
        assert!(!restore_question(&mut short, &asked));
    }
}
