//! New parts for lrp, written outside its workspace with nothing but its
//! public API: the proof that a new architecture is new parts on the one
//! engine, not a change to it.
//!
//! - [`PeepholeCell`], a peephole LSTM: a [`lrp_models::StepCell`], one
//!   step forwards, one step of LRP and one of the gradient. The library
//!   runs it over time, in both directions, over packed batches, and as the
//!   cell of a decoder.
//! - [`LayerNorm`], a stage in front of the encoder.
//!
//! The tests (`tests/`) check each for conservation (bias factor 1, eps 0)
//! and for gradients against central differences, and run a step cell as
//! the decoder of an encoder–decoder (the library's minGRU, which began
//! here as an example and is now built in: a cell written outside needs no
//! change to move in).
#![deny(missing_docs)]

mod layer_norm;
mod peephole;

pub use layer_norm::LayerNorm;
pub use peephole::PeepholeCell;
