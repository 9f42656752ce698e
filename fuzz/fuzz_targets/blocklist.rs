//! The block-list parser and index must not panic on any input, and every block rule must match
//! its own name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::block::fuzz_blocklist(data);
});
