//! The fast-path query reader and the record scanner must not panic and must agree with the full parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::wire::fuzzing::query_view(data);
});
