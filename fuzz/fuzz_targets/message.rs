//! Parse any bytes as a message; whatever parses must encode and parse back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::wire::fuzzing::message(data);
});
