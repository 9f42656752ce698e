//! The one error type of the wire layer.
//!
//! Every way a packet can be malformed maps to a variant here; the server turns any of them into FORMERR
//! (when a header could be read) or a silent drop.

use thiserror::Error;

/// Why bytes could not be read as (or written into) a DNS message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The data ended before the structure did.
    #[error("message truncated: needed {needed} more bytes at offset {offset}")]
    ShortRead { offset: usize, needed: usize },
    /// A label longer than 63 octets.
    #[error("label longer than 63 octets")]
    LabelTooLong,
    /// A name longer than 255 octets in wire form.
    #[error("name longer than 255 octets")]
    NameTooLong,
    /// A compression pointer that points forward, at itself, or loops.
    #[error("bad compression pointer at offset {0}")]
    BadPointer(usize),
    /// Too many compression pointers followed while reading one name.
    #[error("too many compression pointers")]
    PointerLoop,
    /// A label type other than normal (0b00) or pointer (0b11).
    #[error("unsupported label type 0x{0:02x}")]
    BadLabelType(u8),
    /// Record data whose length does not match its declared RDLENGTH or its type's layout.
    #[error("bad record data for type {rtype}: {reason}")]
    BadRdata { rtype: u16, reason: &'static str },
    /// Bytes left over after the last section, or inside a length-delimited field.
    #[error("trailing data after message")]
    TrailingData,
    /// More than one OPT record, or OPT outside the additional section or not at the root.
    #[error("malformed OPT record: {0}")]
    BadOpt(&'static str),
    /// Presentation-format text (a name or record in zone syntax) that does not parse.
    #[error("bad presentation format: {0}")]
    BadText(String),
    /// A message that would not fit into 65535 octets.
    #[error("message too large")]
    MessageTooLarge,
}

/// Result alias for the wire layer.
pub type Result<T, E = WireError> = std::result::Result<T, E>;
