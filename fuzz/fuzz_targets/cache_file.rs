//! The cache-file reader (warm restarts) must not panic on any file and must stay within the cache.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::cache::fuzz_cache_file(data);
});
