//! The vocabulary every other lrp crate speaks: what relevance is, what a
//! linear step and a gate product look like to a rule, and the two traits a
//! rule implements.
//!
//! Layer-wise Relevance Propagation sends a prediction score backwards through
//! a network and splits it among the inputs. Every recurrent model lrp
//! explains is built from three operations (see `docs/rules.md`): linear steps
//! (weight matrices, element-wise sums, attention pooling), element-wise
//! nonlinearities (relevance passes unchanged), and gate x signal products.
//! A [`LinearRule`] decides how the relevance of a [`LinearStep`]'s outputs is
//! split over its inputs; a [`GateRule`] decides how the relevance of a
//! product is split between the gate and the signal. Both are object safe, so
//! a composite can hold one `Box<dyn ...>` per layer role, and a crate outside
//! this workspace can implement a new rule and hand it to the models without
//! touching the library.
//!
//! The engine runs many sequences at once, so a rule also sees each step as
//! a [`BlockStep`], one column per sequence; its default form hands each
//! column to [`LinearRule::redistribute`], so a rule written for one sequence
//! needs nothing more. [`linalg::gemm`] is the engine's one matrix product
//! and [`simd::wide`] its run-time choice of wider vectors.
//!
//! Relevance travels backwards as messages that add up per position: a
//! hidden state may hear from the recurrence, the attention pooling, the head
//! and the layer above. [`Relevance`] is that per-position buffer, a
//! `[T, D]` board every consumer adds into.
#![deny(missing_docs)]

mod block;
mod error;
mod float;
pub mod linalg;
mod relevance;
mod rule;
pub mod simd;
mod step;
mod text;

pub use block::{Block, BlockConnection, BlockInput, BlockMut, BlockStep};
pub use error::Error;
pub use float::Float;
pub use relevance::Relevance;
pub use rule::{for_each_column, GateRule, LinearRule, Workspace};
pub use step::{Connection, InputGroup, LinearStep};
pub use text::{needs_escape, printable, thousands};

/// Re-exported so that rule authors use the same nalgebra as lrp.
pub use nalgebra;
