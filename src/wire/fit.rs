//! What part of a response fits a size limit: the one truncation rule every response writer uses.
//!
//! ```text
//!   Layout (section lengths, counts) + limit --fit--> Whole | WithoutAdditional | AnswerOnly
//!                                                     | Truncated (TC=1: header, question, OPT)
//! ```
//!
//! The codec ([`crate::wire::Message::encode_limited`]) and the cache, which answers from stored
//! bytes, must cut an answer that does not fit in the same way, or a hit and a miss would differ.
//! So the rule lives here, over lengths only, and both measure their sections and ask it:
//!
//! 1. All of it, if it fits.
//! 2. Without the additional records: RFC 2181 section 9 sets TC only when the data the answer
//!    needs did not fit, and glue or the RRSIGs of additional RRsets (RFC 4035 section 3.1.1) are
//!    not needed.
//! 3. For a positive answer (records in its answer section), also without an authority section of
//!    NS records only, as nsd leaves it out. Anything else there is needed: the SOA of a negative
//!    answer (RFC 2308, also after a CNAME), NSEC/NSEC3 proofs and RRSIGs (RFC 4035 section 3.1.1
//!    asks for TC when those do not fit).
//! 4. Otherwise TC=1 with only the header, the question and the OPT record: a client retries over
//!    TCP rather than use a partial RRset.
//!
//! Removing later sections never changes the octets of earlier ones (compression pointers only
//! point backwards), so a writer cuts its full encoding instead of encoding again.
//!
//! The OPT record is never cut: it carries the client's EDNS state and any Extended DNS Error.

/// The lengths and counts of a response's parts, in octets as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Header and question.
    pub head: usize,
    /// The answer section's records.
    pub answer: usize,
    /// The authority section's records.
    pub authority: usize,
    /// The additional section's records, the OPT record not included.
    pub additional: usize,
    /// The OPT record (0 without EDNS).
    pub opt: usize,
    /// Records in the answer section.
    pub ancount: u16,
    /// Records in the authority section.
    pub nscount: u16,
    /// Records in the additional section, the OPT record not included.
    pub arcount: u16,
    /// Whether every authority record is of type NS.
    pub authority_ns_only: bool,
}

/// How much of a response is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Everything.
    Whole,
    /// All but the additional records.
    WithoutAdditional,
    /// The answer section only (no authority, no additional records).
    AnswerOnly,
    /// Header with TC=1, question and OPT only.
    Truncated,
}

impl Layout {
    /// The whole response's length.
    pub fn total(&self) -> usize {
        self.head + self.answer + self.authority + self.additional + self.opt
    }

    /// The largest part that fits `limit` (see the module docs), or None if not even the truncated
    /// form does.
    pub fn fit(&self, limit: usize) -> Option<Fit> {
        let total = self.total();
        if total <= limit {
            return Some(Fit::Whole);
        }
        if self.arcount > 0 && total - self.additional <= limit {
            return Some(Fit::WithoutAdditional);
        }
        if self.ancount > 0
            && self.nscount > 0
            && self.authority_ns_only
            && total - self.additional - self.authority <= limit
        {
            return Some(Fit::AnswerOnly);
        }
        (self.head + self.opt <= limit).then_some(Fit::Truncated)
    }

    /// Octets of the records (after the question) kept by `fit`, and the section counts written
    /// for them (ANCOUNT, NSCOUNT, ARCOUNT without the OPT record).
    pub fn kept(&self, fit: Fit) -> (usize, [u16; 3]) {
        match fit {
            Fit::Whole => (
                self.answer + self.authority + self.additional,
                [self.ancount, self.nscount, self.arcount],
            ),
            Fit::WithoutAdditional => (
                self.answer + self.authority,
                [self.ancount, self.nscount, 0],
            ),
            Fit::AnswerOnly => (self.answer, [self.ancount, 0, 0]),
            Fit::Truncated => (0, [0, 0, 0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            head: 30,
            answer: 100,
            authority: 50,
            additional: 40,
            opt: 11,
            ancount: 2,
            nscount: 2,
            arcount: 2,
            authority_ns_only: true,
        }
    }

    #[test]
    fn cuts_additional_then_ns_authority_then_truncates() {
        let l = layout();
        assert_eq!(l.total(), 231);
        assert_eq!(l.fit(231), Some(Fit::Whole));
        assert_eq!(l.fit(230), Some(Fit::WithoutAdditional));
        assert_eq!(l.fit(191), Some(Fit::WithoutAdditional));
        assert_eq!(l.fit(190), Some(Fit::AnswerOnly));
        assert_eq!(l.fit(141), Some(Fit::AnswerOnly));
        assert_eq!(l.fit(140), Some(Fit::Truncated));
        assert_eq!(l.fit(41), Some(Fit::Truncated));
        assert_eq!(l.fit(40), None);
        assert_eq!(l.kept(Fit::AnswerOnly), (100, [2, 0, 0]));
        assert_eq!(l.kept(Fit::WithoutAdditional), (150, [2, 2, 0]));
        assert_eq!(l.kept(Fit::Truncated), (0, [0, 0, 0]));
    }

    #[test]
    fn needed_authority_records_are_never_cut() {
        // A SOA or an NSEC proof: TC instead of dropping it.
        let soa = Layout {
            authority_ns_only: false,
            ..layout()
        };
        assert_eq!(soa.fit(190), Some(Fit::Truncated));
        // A referral-like answer without answer records keeps its NS set.
        let negative = Layout {
            ancount: 0,
            answer: 0,
            ..layout()
        };
        assert_eq!(
            negative.fit(negative.total() - negative.additional - 1),
            Some(Fit::Truncated)
        );
        // Nothing to drop in the additional section: straight on.
        let bare = Layout {
            additional: 0,
            arcount: 0,
            ..layout()
        };
        assert_eq!(bare.fit(bare.total() - 1), Some(Fit::AnswerOnly));
    }
}
