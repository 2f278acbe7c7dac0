//! Arbitrary bytes as a `.npz` archive (inputs, and the reference layout's weights).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lrp_io::parse_sequences(std::path::Path::new("input.npz"), data);
});
