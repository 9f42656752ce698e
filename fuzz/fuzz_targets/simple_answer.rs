//! The wire check of an answer's simple shape must not panic and must never accept what the full
//! parse and scrubbing would refuse or change.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::wire::fuzzing::simple_answer(data);
});
