//! Rules for linear steps `z_j = sum_i w_ij x_i + b_j`.
//!
//! [`Epsilon`] is the rule of the spec and has its own fast path (one
//! transposed matrix product per input group). The others distribute each
//! output's relevance in proportion to a per-edge share `q_ij`,
//!
//! ```text
//! R_i = sum_j q_ij / (sum_i' q_i'j) * R_j
//! ```
//!
//! and differ only in the share (zennit builds its rules the same way, from
//! small parts). They ignore the bias, so they conserve relevance exactly
//! except at an output whose shares sum to zero, whose relevance is
//! returned as unexplained.

mod epsilon;
mod proportional;

pub use epsilon::Epsilon;
pub use proportional::{AlphaBeta, Flat, Gamma, WSquare, ZPlus};
