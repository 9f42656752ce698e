//! Feed any bytes, in pieces, to the DoT connection's frame reader: it must yield exactly the
//! length-prefixed frames they hold, within its buffer bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dnsveil::upstream::frames::fuzz_frames(data);
});
