//! The resolv.conf reader of network:// must not panic on any input and stays within its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::upstream::network::fuzz_resolv_conf(data);
});
