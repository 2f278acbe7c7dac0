//! Recurrent models assembled from the rules of `lrp-layers`: LSTM and GRU
//! cells, one or two directions, stacked layers, attention pooling
//! (`context`, `additive`, `dot`, `general`) and a linear head on the final
//! state, the context, or both.
//!
//! Every model runs in three passes over a batch of sequences of any
//! lengths, packed by step ([`Packing`]): [`Model::forward_batch`] keeps a
//! [`ForwardTrace`] per sequence (sharing the batch's packed trace) of
//! exactly what the backward passes need; [`Model::lrp_batch`] and
//! [`Model::gradient_batch`] consume them, one backward pass per batch, and
//! [`Model::forward`], [`Model::lrp`] and [`Model::gradient`] are the same
//! on a batch of one. Each step of each direction is one matrix product for
//! all sequences still running, and every product goes through
//! `lrp_core::linalg::gemm`, so a sequence's numbers do not depend on its
//! batch. The backward passes share one mechanism: the relevance (or
//! gradient) that reaches each position of a layer's output is a board into
//! which every reader of that position adds its message (the head into the
//! final state, the attention pooling into every position, the layer above
//! into its inputs), and the recurrence adds its own as it walks back.
//!
//! A model is an open chain of [`Stage`]s, each with the same three
//! passes: behind an optional [`Embedding`], any stages whose [`Port`]s fit,
//! such as the [`Encoder`] (stacked [`RecurrentLayer`]s of one or two
//! directions), a pooling from positions to sequences ([`FinalState`] or
//! [`AttentionPooling`]) and a head ([`Linear`]), and stages of another
//! crate anywhere, also in front of the encoder. [`Model::builder`]
//! assembles a chain in code, and [`Model::from_config`] through it;
//! [`Model::with_encoder`] and [`Model::with_pooling_and_head`] swap parts
//! of a model. A recurrent cell is a [`StepCell`], the plugin point for new
//! cells: it writes one step, and the library runs it over time, in both
//! directions, over packed batches, and as the cell of a decoder
//! ([`Seq2Seq::with_decoder_cell`]). The built-in LSTM, GRU and
//! reset-before GRU are step cells; `examples/extend` adds a peephole LSTM
//! and a minGRU from outside. [`RecurrentCell`] is the low-level trait under
//! it, for a cell that owns its time loop.
//!
//! ```text
//! tokens -> [embedding] -> x [E, N] -> layer 1 .. layer k -> h [D, N]
//!                                            pooling: final state | mean | max [D, S] | attention [D or 2D, S]
//!                                            -> head -> scores [C, S]
//!                                            or, per step: each position [D, N] -> head -> outputs [C, N]
//! ```
#![deny(missing_docs)]

pub mod activation;
mod attention;
mod attribution;
mod buffers;
pub mod canonize;
mod cell;
pub mod config;
mod conv;
mod encoder;
mod error;
pub mod faithfulness;
mod layouts;
mod linear;
pub mod mamba;
mod model;
mod packing;
mod pooling;
pub mod seq2seq;
mod stage;
mod tensors;
pub mod xlstm;

pub use attention::{Attention, AttentionTrace};
pub use attribution::{Attribution, Cost, Method};
pub use cell::{
    add_product, add_transposed_product, column, dense, interpolate, operations, project, CellShape, CellUpdate,
    CellUpdateRelevance, GruCell, GruResetBeforeCell, Interpolation, InterpolationRelevance, Leftovers, LinearSteps,
    LstmCell, MinGruCell, MinLstmCell, RecurrentCell, State, StateMut, Step, StepCell, StepForward, StepGradient,
    StepLrp, StepTrace,
};
pub use config::ModelConfig;
pub use conv::{conv_site, Conv1d, Conv1dTrace, MaxPool1d, MaxPool1dTrace, Relu, Window};
pub use encoder::{Encoder, EncoderTrace, LayerTrace, RecurrentLayer};
pub use error::Error;
pub use linear::Linear;
pub use model::{tensor_manifest, Explanation, ForwardTrace, Model, ModelBuilder};
pub use packing::Packing;
pub use pooling::{EachPosition, MaxPooling, MaxPoolingTrace, MeanPooling, StepHead};
pub use seq2seq::{Seq2Seq, Seq2SeqConfig, Seq2SeqExplanation, Seq2SeqTrace};
pub use stage::{AttentionPooling, AttentionPoolingTrace, Backward, Embedding, FinalState, Per, Port, Stage};
pub use tensors::{expect_shape, Manifest, Tensor, Tensors};
