//! Any packet as the answer to a 0x20 query (recursive mode): matching its question and writing
//! the asked case back into it must not panic, and may change nothing but letter case.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::recursor::fuzzing::answer_case(data);
});
