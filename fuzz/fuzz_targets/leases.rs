//! The DHCP lease-file parser must not panic on any input, in any format, and must stay within its
//! caps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::hosts::leases::fuzz_leases(data);
});
