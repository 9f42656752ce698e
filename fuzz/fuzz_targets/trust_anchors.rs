//! See `dnsveil::dnssec::fuzzing::anchors`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::dnssec::fuzzing::anchors(data);
});
