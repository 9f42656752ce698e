//! dnsveil: an encrypted DNS stub resolver proxy.
//!
//! ```text
//!  client --UDP/TCP--> server --> Chain: block -> cache -> hosts/local -> DHCP leases
//!    ^   (allow-list, rate limit,    ^     -> special-use names -> captive portal -> validator
//!    |    connection caps)           |     -> forwarding rules -> default upstream
//!    |                               |        (or, in recursive mode, after the rules -> recursor)
//!    |                               |                                          |
//!    |                               +-- Answer: wire bytes, origin, verdict <--+
//!    |                                   (stored by the cache with its verdict)
//!    +-- wire::response::write: the client's response, written once from those bytes
//!   cache refresher (prefetch, serve-stale refreshes): Chain::lookup of the stages after the
//!   cache, a question and its flags, no client
//!   server --every response--> metrics::QueryCounters (+ the query log); observe reads them with
//!   the cache's and the pools' figures for GET /metrics, the control socket and STATUS=
//! ```
//!
//! Layers, with dependencies pointing one way: `server -> handler -> wire`; the handlers (`block`,
//! `cache`, `hosts` with its DHCP lease names, `special`, `forward`) use `handler` and `wire`; `block`
//! fetches lists with `upstream::tls`; `forward -> upstream -> wire`;
//! `clock` (the time of day, injectable) depends on nothing and anything may use it. `dnssec`
//! (trust anchors and signature verification with ring, no I/O) uses `wire` and states its
//! results as `handler` verdicts; `validate` (the validating stage) uses `dnssec` and `handler`. `app`
//! composes them from a validated `config::Config`; nothing imports `app`. `metrics` (counters)
//! depends on `handler` and `wire` only, so anything may record into it; `observe` (reading the
//! counters, the Prometheus endpoint) and `control` (the control socket) sit beside `app`, above
//! the layers they read; `portal` is a stage over `upstream`. `recursor` (iterative resolution from the root) is a
//! stage too: `recursor -> upstream::plain, handler, wire`.
#![forbid(unsafe_code)]
// The library exists for the binary and its tests; its docs are read with private items included
// (`cargo doc --document-private-items`, checked in CI), so module docs may link to private
// modules that say how a part works.
#![allow(rustdoc::private_intra_doc_links)]

pub mod app;
pub mod batch;
pub mod block;
pub mod cache;
pub mod clock;
pub mod config;
pub mod control;
pub mod dnssec;
pub mod forward;
pub mod handler;
pub mod hosts;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod portal;
pub mod query;
pub mod recursor;
pub mod server;
pub mod special;
pub mod upstream;
pub mod validate;
pub mod wire;
