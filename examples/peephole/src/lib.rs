//! A peephole LSTM (Gers & Schmidhuber 2000) written outside the library,
//! against [`lrp_models::RecurrentCell`] only: the proof that a new cell
//! needs no change to any `lrp-*` crate. [`PeepholeCell`] is one direction
//! of a layer; wrap it in a [`lrp_models::RecurrentLayer`], stack layers in
//! an [`lrp_models::Encoder`] and put that into a model with
//! [`lrp_models::Model::with_encoder`] (or use [`peephole_encoder`]).
//!
//! ```
//! use lrp_example_peephole::PeepholeCell;
//! use lrp_layers::{Absolute, Composite};
//! use lrp_models::{tensor_manifest, Encoder, Model, ModelConfig, RecurrentLayer, Tensor, Tensors};
//! use nalgebra::{DMatrix, DVector};
//!
//! // A built-in model to take the head from: an LSTM, E = 3, H = 4, 2 classes.
//! let config: ModelConfig = serde_json::from_value(serde_json::json!({
//!     "format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
//!     "encoder": {"cell": "lstm", "input_size": 3, "hidden_size": 4},
//!     "head": {"input": "last", "num_classes": 2}
//! }))?;
//! let mut tensors = Tensors::new();
//! for (name, shape) in tensor_manifest(&config)? {
//!     let values = (0..shape.iter().product()).map(|k| (k % 7) as f64 / 10.0 - 0.3).collect();
//!     tensors.insert(name, Tensor { shape, values });
//! }
//! let lstm = Model::<f64>::from_config(config, tensors)?;
//!
//! // Its encoder replaced by one peephole direction of the same widths.
//! let w = |r, c| DMatrix::from_fn(r, c, |i, j| ((i * 3 + j) % 5) as f64 / 10.0 - 0.2);
//! let p = DVector::from_element(4, 0.3);
//! let cell = PeepholeCell::new(w(16, 3), w(16, 4), DVector::zeros(16), [p.clone(), p.clone(), p])?;
//! let model = lstm.with_encoder(Encoder::new(vec![RecurrentLayer::unidirectional(cell)])?)?;
//!
//! let trace = model.forward(DMatrix::from_fn(3, 5, |e, t| (e + t) as f64 / 10.0))?;
//! // A gate rule that feeds the gates, so relevance crosses the peepholes.
//! let rules = Composite::epsilon(0.0, 1.0)?.with_gate_rule(Absolute);
//! let e = model.lrp(&trace, trace.predicted(), &rules)?;
//! let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
//! assert!((total - e.score).abs() <= 1e-10 * e.score.abs());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```text
//! i   = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
//! f   = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
//! g   = tanh(W_g x_t + U_g h_{t-1} + b_g)
//! c_t = f ⊙ c_{t-1} + i ⊙ g
//! o   = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)
//! h_t = o ⊙ tanh(c_t)
//! ```
//!
//! ## LRP
//! The rules are the LSTM's, at the same sites (`Projection("i" | "f" |
//! "g" | "o")`, `Accumulation`, `Product("o" | "f" | "i")`): `h = o tanh(c)`
//! and the two products by the gate rule, `c_t` as an accumulation step, and
//! `g`'s pre-activation as a projection step over `x_t` and `h_{t-1}`. Under
//! the default gate rule (signal-take-all) the gates receive nothing, their
//! steps are skipped, and the peepholes play no part in the explanation.
//! When the gate rule feeds a gate, its pre-activation is one linear step
//! over **three** input groups: `x_t`, `h_{t-1}` and the peephole input
//! (`c_{t-1}` for `i` and `f`, `c_t` for `o`), so the fan-in `N` of the
//! bias-factor convention is `E + 2H`.
//!
//! *The peephole connection.* `p ⊙ c` is a diagonal linear map, passed to
//! the rules as `BlockConnection::Diagonal(p)`: one edge per cell, with
//! weight `p_k`, so every rule reads it right (flat gives the peephole one
//! edge per output, w-square weighs it by `p_k²`). The built-in block rules
//! take a step with a diagonal group column by column.
//!
//! *Where the peephole relevance goes.* What a gate step gives its peephole
//! group is relevance of a cell state, and joins that state's relevance
//! before the state is split: `o` reads `c_t`, so `o`'s step runs *before*
//! the accumulation step `c_t = f c_{t-1} + i g` and adds into `R(c_t)`; `i`
//! and `f` read `c_{t-1}`, so their steps add into the relevance carried
//! back to `c_{t-1}` (beside `f ⊙ c_{t-1}`'s share), and at the first step
//! into the zero initial state's leftovers. Every step conserves, so the
//! cell does: input + initial-state + unexplained relevance = what arrived
//! (with `eps = 0`, bias factor 1).
#![deny(missing_docs)]

mod cell;

pub use cell::{peephole_encoder, PeepholeCell, PeepholeTrace};
