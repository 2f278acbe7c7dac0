//! Arbitrary bytes as a `.npy` input file: an error or sequences, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lrp_io::parse_sequences(std::path::Path::new("input.npy"), data);
});
