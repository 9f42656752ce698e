//! The netlink message reader of the network watcher must not panic on any input and stays within its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::upstream::netwatch::fuzz_netlink(data);
});
