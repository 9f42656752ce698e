//! dnsveil: an encrypted DNS stub resolver proxy.
//!
//! ```text
//!  client --UDP/TCP--> server --> Chain: block -> cache -> hosts/local -> special-use names
//!    ^                               ^              -> forwarding rules -> default upstream
//!    |                               |                 (or, in recursive mode, -> recursor)
//!    |                               |                                          |
//!    |                               +-- Answer: wire bytes, origin, verdict <--+
//!    |                                   (stored by the cache with its verdict)
//!    +-- wire::response::write: the client's response, written once from those bytes
//!   cache refresher (prefetch, serve-stale refreshes): Chain::lookup of the stages after the
//!   cache, a question and its flags, no client
//! ```
//!
//! Layers, with dependencies pointing one way: `server -> handler -> wire`; the handlers (`block`,
//! `cache`, `hosts`, `special`, `forward`) use `handler` and `wire`; `block` fetches lists with
//! `upstream::tls`; `forward -> upstream -> wire`;
//! `clock` (the time of day, injectable) depends on nothing and anything may use it. `dnssec`
//! (trust anchors and signature verification with ring, no I/O) uses `wire` and states its
//! results as `handler` verdicts, for the validating stage to come. `recursor` (iterative
//! resolution from the root) is a handler too: `recursor -> upstream::plain, handler, wire`. `app`
//! composes them from a validated `config::Config`; nothing imports `app`.
#![forbid(unsafe_code)]
// The library exists for the binary and its tests; its docs are read with private items included
// (`cargo doc --document-private-items`, checked in CI), so module docs may link to private
// modules that say how a part works.
#![allow(rustdoc::private_intra_doc_links)]

pub mod app;
pub mod block;
pub mod cache;
pub mod clock;
pub mod config;
pub mod dnssec;
pub mod forward;
pub mod handler;
pub mod hosts;
pub mod logging;
pub mod notify;
pub mod query;
pub mod recursor;
pub mod server;
pub mod special;
pub mod upstream;
pub mod validate;
pub mod wire;
