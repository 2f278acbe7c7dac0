//! Arbitrary bytes as an ONNX file for `lrp import`, within limits small
//! enough for the fuzzer's memory cap: the wire-format pre-scan, the
//! decoder and the graph reader must refuse or accept, never panic or hang
//! (seed with `tests/fixtures/onnx/*/model.onnx`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut limits = lrp_io::Limits::default();
    limits.max_graph_nodes = 1_000;
    limits.max_graph_attributes = 2_000;
    limits.max_graph_entries = 10_000;
    let _ = lrp_io::onnx::import_onnx_bytes(std::path::Path::new("model.onnx"), data, &limits);
});
