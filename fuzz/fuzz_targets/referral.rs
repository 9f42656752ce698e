//! Judge any parsed packet as an authoritative server's response (recursive mode): no panic, and a
//! referral or answer never reaches outside the zone asked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::recursor::fuzzing::referral(data);
});
