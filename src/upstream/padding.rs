//! EDNS(0) padding of outgoing queries (RFC 7830) with the block-length policy of RFC 8467.
//!
//! Encryption hides a query's content but not its length, and the length of a DNS query says a lot
//! about the name in it. RFC 8467 section 4.1 recommends that clients pad every query to a multiple
//! of 128 octets, which this module does for the DoT and DoH transports.
//!
//! The work is done on the wire bytes with [`crate::wire::scan`] (no record data is decoded), so it
//! works for any query the forwarder sends:
//!
//! - an existing Padding option is dropped and a fresh one of the right length appended to the OPT
//!   record's options; the other options keep their order;
//! - a query without an OPT record gets one (payload [`DEFAULT_PAYLOAD`], no flags) carrying only
//!   the padding.
//!
//! Limitations: a message signed with TSIG or SIG(0) is returned unchanged (padding would break the
//! signature; RFC 8467 leaves signed messages to their signer), and so is anything that does not
//! scan as a DNS message or would grow past 65535 octets. Responses are never padded here: padding
//! replies is the server's job.

use crate::wire::edns::{code, opt_head, DEFAULT_PAYLOAD, OPT_FIXED_LEN};
use crate::wire::scan::{self, Section};
use crate::wire::{Header, RType};

/// The block length RFC 8467 section 4.1 recommends for queries.
pub const QUERY_BLOCK: usize = 128;

/// RR types whose presence means the message is signed and must not be modified.
const TSIG: u16 = 250;
const SIG: u16 = 24;

/// Octets of an option header (code and length).
const OPTION_HEADER_LEN: usize = 4;

/// Returns `query` padded with an EDNS Padding option so its length is a multiple of `block`.
///
/// A `block` below 2 disables padding. Input that cannot be padded safely (see the module docs) is
/// returned as an unchanged copy, never an error: padding is a privacy measure, not a validity
/// check, and the upstream layer validates everything it sends.
pub fn pad_query(query: &[u8], block: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(padded_len_bound(query.len(), block));
    pad_query_into(query, block, &mut out);
    out
}

/// Room enough for [`pad_query`]'s result from a query of `len` octets (an OPT record added, the
/// Padding option's header, up to the next multiple of `block`), so it is written without growing.
pub fn padded_len_bound(len: usize, block: usize) -> usize {
    (len + OPTION_HEADER_LEN + OPT_FIXED_LEN).next_multiple_of(block.max(1))
}

/// [`pad_query`], appending the result to `out` (a transport's frame, after its length prefix).
pub fn pad_query_into(query: &[u8], block: usize, out: &mut Vec<u8>) {
    if block < 2 || !plan(query, block, out) {
        out.extend_from_slice(query);
    }
}

/// Appends the padded message to `out` and returns true, or returns false (`out` untouched) if
/// `query` must be left alone. Nothing is allocated but `out`'s growth.
fn plan(query: &[u8], block: usize, out: &mut Vec<u8>) -> bool {
    let Ok(header) = Header::parse(query) else {
        return false;
    };
    let Ok(records) = scan::Records::new(query) else {
        return false;
    };
    let mut opt = None;
    for span in records {
        let Ok(span) = span else {
            return false;
        };
        if span.rtype.0 == TSIG || span.rtype.0 == SIG {
            return false;
        }
        if span.rtype == RType::OPT && span.section == Section::Additional {
            if opt.is_some() {
                return false;
            }
            opt = Some(span);
        }
    }

    // The message is assembled as prefix + kept options + padding option + suffix.
    let (prefix, kept, suffix, add_opt) = match &opt {
        Some(span) => {
            // The prefix ends just before RDLENGTH: the new length is written in its place.
            let rdata = &query[span.rdata.clone()];
            let Some(kept) = options_without_padding(rdata, |_| {}) else {
                return false;
            };
            (
                &query[..span.rdata.start - 2],
                Some((rdata, kept)),
                &query[span.rdata.end..],
                false,
            )
        }
        None => {
            if header.arcount == u16::MAX {
                return false;
            }
            (query, None, &[][..], true)
        }
    };
    let kept_len = kept.map_or(0, |(_, len)| len);

    let opt_head_len = if add_opt { OPT_FIXED_LEN } else { 2 };
    let unpadded = prefix.len() + opt_head_len + kept_len + OPTION_HEADER_LEN + suffix.len();
    let pad = (block - unpadded % block) % block;
    let total = unpadded + pad;
    let rdlength = kept_len + OPTION_HEADER_LEN + pad;
    if total > u16::MAX as usize || rdlength > u16::MAX as usize {
        return false;
    }

    out.reserve(total);
    let at = out.len();
    out.extend_from_slice(prefix);
    if add_opt {
        // ARCOUNT is at offset 10; checked above that it cannot overflow.
        let arcount = header.arcount + 1;
        out[at + 10..at + 12].copy_from_slice(&arcount.to_be_bytes());
        out.extend_from_slice(&opt_head(DEFAULT_PAYLOAD, 0, 0, 0, rdlength as u16));
    } else {
        out.extend_from_slice(&(rdlength as u16).to_be_bytes());
    }
    if let Some((rdata, _)) = kept {
        options_without_padding(rdata, |option| out.extend_from_slice(option));
    }
    out.extend_from_slice(&code::PADDING.to_be_bytes());
    out.extend_from_slice(&(pad as u16).to_be_bytes());
    out.resize(out.len() + pad, 0);
    out.extend_from_slice(suffix);
    debug_assert_eq!(out.len() - at, total);
    true
}

/// Hands every option of the OPT RDATA but Padding to `keep`, whole (code, length, data), and
/// returns their total length, or `None` if the options do not frame.
fn options_without_padding(rdata: &[u8], mut keep: impl FnMut(&[u8])) -> Option<usize> {
    let mut kept = 0;
    let mut pos = 0;
    while pos < rdata.len() {
        let head = rdata.get(pos..pos + OPTION_HEADER_LEN)?;
        let option = u16::from_be_bytes([head[0], head[1]]);
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let end = pos + OPTION_HEADER_LEN + len;
        let whole = rdata.get(pos..end)?;
        if option != code::PADDING {
            keep(whole);
            kept += whole.len();
        }
        pos = end;
    }
    Some(kept)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure
mod tests {
    use super::*;
    use crate::wire::{Edns, EdnsOption, Message, Name};

    fn query(name: &str, edns: Option<Edns>) -> Vec<u8> {
        let mut m = Message::query(name.parse::<Name>().unwrap(), RType::A);
        m.header.id = 0xBEEF;
        m.edns = edns;
        m.encode().unwrap()
    }

    fn padding_len(msg: &Message) -> Option<u16> {
        msg.edns.as_ref()?.options.iter().find_map(|o| match o {
            EdnsOption::Padding(n) => Some(*n),
            _ => None,
        })
    }

    #[test]
    fn adds_opt_when_missing_and_pads_to_block() {
        let q = query("example.com", None);
        let padded = pad_query(&q, QUERY_BLOCK);
        assert_eq!(padded.len(), 128);
        let m = Message::parse(&padded).unwrap();
        assert_eq!(m.header.id, 0xBEEF);
        assert_eq!(m.header.arcount, 1);
        assert_eq!(m.questions, Message::parse(&q).unwrap().questions);
        let edns = m.edns.as_ref().unwrap();
        assert_eq!(edns.udp_payload, DEFAULT_PAYLOAD);
        assert!(!edns.dnssec_ok);
        assert_eq!(edns.options.len(), 1);
        // 12 header + 17 question + 11 OPT + 4 option header = 44; 84 octets of padding.
        assert_eq!(padding_len(&m), Some(84));
    }

    #[test]
    fn keeps_other_options_and_flags_and_replaces_old_padding() {
        let edns = Edns {
            udp_payload: 4096,
            dnssec_ok: true,
            options: vec![
                EdnsOption::Padding(3),
                EdnsOption::Cookie {
                    client: [7; 8],
                    server: Box::new([]),
                },
                EdnsOption::Padding(5),
            ],
            ..Edns::default()
        };
        let q = query("www.example.org", Some(edns));
        let padded = pad_query(&q, QUERY_BLOCK);
        assert_eq!(padded.len() % 128, 0);
        let m = Message::parse(&padded).unwrap();
        let e = m.edns.as_ref().unwrap();
        assert_eq!(e.udp_payload, 4096);
        assert!(e.dnssec_ok);
        assert_eq!(e.options.len(), 2);
        assert!(matches!(e.options[0], EdnsOption::Cookie { client, .. } if client == [7; 8]));
        assert!(matches!(e.options[1], EdnsOption::Padding(_)));
        // Padding an already padded query is stable.
        assert_eq!(pad_query(&padded, QUERY_BLOCK), padded);
    }

    #[test]
    fn every_length_lands_on_a_block_boundary() {
        for len in 1..=200 {
            let name = "a".repeat(len % 60 + 1) + "." + &"b".repeat(len / 60 + 1);
            let q = query(
                &name,
                if len % 2 == 0 {
                    Some(Edns::default())
                } else {
                    None
                },
            );
            for block in [2, 16, 128, 468] {
                let padded = pad_query(&q, block);
                assert_eq!(padded.len() % block, 0, "name {name} block {block}");
                assert!(padded.len() >= q.len());
                assert!(padded.len() < q.len() + OPT_FIXED_LEN + OPTION_HEADER_LEN + block);
                let m = Message::parse(&padded).unwrap();
                assert!(padding_len(&m).is_some());
            }
        }
    }

    #[test]
    fn zero_padding_option_when_exactly_on_boundary() {
        // Find a query that is exactly one block once the option header is added.
        let q = query("example.com", Some(Edns::default()));
        let unpadded_len = q.len() + OPTION_HEADER_LEN;
        let padded = pad_query(&q, unpadded_len);
        assert_eq!(padded.len(), unpadded_len);
        assert_eq!(padding_len(&Message::parse(&padded).unwrap()), Some(0));
    }

    #[test]
    fn opt_in_the_middle_of_additional_is_handled() {
        // Header with ARCOUNT=2: OPT first, then an (opaque) A record that must survive unchanged.
        let mut q = query("example.com", Some(Edns::default()));
        q[11] = 2;
        let tail = [
            0u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1, // . A IN 60 192.0.2.1
        ];
        q.extend_from_slice(&tail);
        let padded = pad_query(&q, QUERY_BLOCK);
        assert_eq!(padded.len(), 128);
        assert!(padded.ends_with(&tail));
        let spans = scan::records(&padded).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].rtype, RType::OPT);
        assert_eq!(spans[1].rtype, RType::A);
    }

    #[test]
    fn unpaddable_input_is_returned_unchanged() {
        assert_eq!(pad_query(b"short", 128), b"short");
        assert_eq!(pad_query(&[], 128), Vec::<u8>::new());
        let q = query("example.com", None);
        assert_eq!(pad_query(&q, 0), q);
        assert_eq!(pad_query(&q, 1), q);
        // A TSIG-signed message (record type 250 in the additional section) is left alone.
        let mut signed = q.clone();
        signed[11] = 1;
        signed.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
        assert_eq!(pad_query(&signed, 128), signed);
        // Malformed options inside the OPT record.
        let mut bad = query("example.com", Some(Edns::default()));
        let n = bad.len();
        bad[n - 1] = 2; // RDLENGTH 2, but an option needs 4 octets
        bad.extend_from_slice(&[0, 12]);
        assert_eq!(pad_query(&bad, 128), bad);
        // Truncations of a valid query never panic.
        let q = query("www.example.org", Some(Edns::default()));
        for i in 0..q.len() {
            let _ = pad_query(&q[..i], 128);
        }
    }

    #[test]
    fn refuses_to_grow_past_the_maximum_message_size() {
        // 12 header + 65520 octets of junk "question" can't be expressed, so build a valid message
        // near the limit from an OPT record with a large unknown option instead.
        let edns = Edns {
            options: vec![EdnsOption::Unknown {
                code: 65001,
                data: vec![0; 65_480].into_boxed_slice(),
            }],
            ..Edns::default()
        };
        let q = query("example.com", Some(edns));
        assert!(q.len() > 65_500);
        assert_eq!(pad_query(&q, 128), q);
    }
}
