//! The DNS wire format: bytes in, typed messages out, and back.
//!
//! ```text
//!   &[u8] --Reader--> Header, Name, RData --> Message          (parse: bounds-checked, strict)
//!   &[u8] --QueryView--> question + EDNS info                  (fast path: no allocation)
//!   Message --MessageBuilder--> Vec<u8>                        (encode: compression, size limit, TC)
//!   &[u8] --scan--> record offsets                             (cache: patch TTLs in place)
//!   Message + Question --scrub--> the records that answer it   (upstream answers: chain, zone)
//!   &[u8] + Question --simple--> checked, nothing to scrub      (upstream answers' common shape)
//!   Record --canonical--> octets a DNSSEC signature covers     (RFC 4034 section 6)
//!   "name TTL IN TYPE rdata" <--zone--> Record                 (presentation format)
//! ```
//!
//! This module knows nothing of sockets, tasks or time. Everything here takes hostile input: no
//! panic, no unbounded loop (compression pointers are capped and must point backwards) and no
//! allocation larger than the packet justifies.
//!
//! Limitations: no TSIG/SIG(0), no zone transfer specifics; DNS classes other than IN are carried but
//! not interpreted.

pub mod builder;
pub mod canonical;
pub mod edns;
pub mod error;
pub mod fit;
pub mod header;
pub mod message;
pub mod name;
pub mod query;
pub mod rdata;
pub mod reader;
pub mod response;
pub mod scan;
pub mod scrub;
pub mod simple;
pub mod types;
pub mod zone;

#[doc(hidden)]
pub mod fuzzing;

pub use builder::MessageBuilder;
pub use canonical::{canonical_rdata_cmp, signed_data};
pub use edns::{ClientSubnet, Edns, EdnsOption};
pub use error::WireError;
pub use header::{Header, HEADER_LEN};
pub use message::{Message, QueryFlags, Question, Record};
pub use name::{LowerName, Name};
pub use query::{EdnsInfo, QueryView};
pub use rdata::{Nsec3, RData, Rrsig, Soa, Svcb, TypeBitmap};
pub use reader::Reader;
pub use types::{Class, Opcode, RType, Rcode};
pub use zone::parse_record_line;
