//! Arbitrary text through the tokenizer and a vocabulary lookup.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tokens = lrp_io::tokenize(text);
    assert!(tokens.iter().all(|t| !t.is_empty() && !t.chars().any(char::is_whitespace)), "{tokens:?}");
    let vocab = lrp_io::Vocab::parse("<unk>\nthe\nfilm\n's\nn't\n", Some("<unk>"), true)
        .expect("the fixed vocabulary is valid");
    let _ = vocab.ids(&tokens);
});
