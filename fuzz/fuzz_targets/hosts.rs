//! The hosts-file parser must not panic on any input and must stay within its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::hosts::fuzz_hosts(data);
});
