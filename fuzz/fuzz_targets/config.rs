//! Arbitrary bytes as `config.json`: parse, validate, list the tensors it
//! needs; never a panic, never an allocation sized by the config.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let here = std::path::Path::new("config.json");
    if let Ok(config) = lrp_io::parse_config(here, data) {
        if config.validate().is_ok() {
            let _ = lrp_models::tensor_manifest(&config);
        }
    }
});
