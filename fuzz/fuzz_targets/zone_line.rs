//! The zone-line parser must not panic; what it accepts must print and parse back to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::wire::fuzzing::zone_line(data);
});
