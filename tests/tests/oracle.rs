//! An oracle for LRP that shares no code with it: with eps 0 and bias
//! factor 0, signal-take-all LRP is gradient x input on a copy of the
//! network in which every gate value is a constant and every element-wise
//! nonlinearity `y = f(z)` passes back `f(z) / z` instead of `f'(z)`.
//!
//! Why: write each relevance as value x modified gradient, `R_v = v g_v`.
//! The epsilon rule at eps 0, bias factor 0 gives an input of a linear step
//! `R_i = sum_j x_i w_ij R_j / z_j = x_i sum_j w_ij g_j`, the ordinary
//! backward step; a nonlinearity passes its relevance on, `z g_z = f(z) g_f`;
//! a gate x signal product gives the signal everything,
//! `s g_s = (gate s) g_p`, that is `g_s = gate g_p` with the gate a
//! constant. The attention weights are connection weights, so the context
//! `sum_t a_t h_t` sends `a_t g_c` to `h_t`, and nothing reaches the score
//! function.
//!
//! The network here is written again from the PyTorch tensors (the module
//! of `tools/pytorch_models.py`): LSTM and GRU cells (the GRU also with
//! `"gru_reset": "before"`, where `r * h_{t-1}` is one more product whose
//! signal takes all; minGRU and minLSTM, whose gates read only the input),
//! one or two directions, one or two layers, every
//! attention kind and head input (the mean, the maximum and the per-step
//! head too). A
//! property test draws architectures and inputs and compares the input
//! relevance of `Model::lrp` with `x ⊙ g_x`, to 1e-9 of the largest
//! magnitude in play. (They agreed to 1e-13 when tried; the margin is for
//! the rare pre-activation near zero, where LRP divides by it and the
//! oracle does not, so their roundings part.)

use std::collections::HashMap;

use lrp_layers::Composite;
use lrp_models::{ModelConfig, Tensor};
use lrp_tests::{architecture, model_from, random_input, random_tensors};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

/// The tensors of a model by name, as matrices `[rows, cols]` (vectors are
/// one column).
struct Weights(HashMap<String, DMatrix<f64>>);

impl Weights {
    fn new(tensors: &[(String, Tensor)]) -> Self {
        Self(
            tensors
                .iter()
                .map(|(name, t)| {
                    let (rows, cols) = match t.shape[..] {
                        [rows, cols] => (rows, cols),
                        [len] => (len, 1),
                        _ => panic!("{name}: a matrix or a vector"),
                    };
                    (name.clone(), DMatrix::from_row_slice(rows, cols, &t.values))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> &DMatrix<f64> {
        self.0.get(name).unwrap_or_else(|| panic!("tensor {name}"))
    }

    fn vector(&self, name: &str) -> DVector<f64> {
        self.get(name).column(0).into_owned()
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `f(z) / z` of tanh, which tends to 1 at 0 (also the oracle of `conv.rs`).
pub(crate) fn tanh_ratio(z: f64) -> f64 {
    if z == 0.0 {
        1.0
    } else {
        z.tanh() / z
    }
}

/// One step of one direction, what the modified backward pass reads.
enum Step {
    /// Gates `i, f, o`, the candidate's pre-activation `z_g` and the cell
    /// state `c`.
    Lstm {
        i: DVector<f64>,
        f: DVector<f64>,
        o: DVector<f64>,
        zg: DVector<f64>,
        c: DVector<f64>,
    },
    /// Gates `r, z` and the candidate's pre-activation `a`.
    Gru {
        r: DVector<f64>,
        z: DVector<f64>,
        a: DVector<f64>,
    },
    /// The GRU that resets before its product (`"gru_reset": "before"`):
    /// the same values, `a = W_n x + b_n + U_n (r * h_prev)`.
    GruBefore {
        r: DVector<f64>,
        z: DVector<f64>,
        a: DVector<f64>,
    },
    /// minGRU and minLSTM, `h = keep h_prev + let_in h̃` with `h̃ = W_h x +
    /// b_h`: minGRU's `keep = 1 - z`, `let_in = z`; minLSTM's normalised
    /// `f'` and `i'`.
    Min { keep: DVector<f64>, let_in: DVector<f64> },
}

/// The gate blocks of each cell's `weight_ih`.
fn gates(cell: &str) -> usize {
    match cell {
        "lstm" => 4,
        "mingru" => 2,
        _ => 3,
    }
}

/// One direction of one layer over inputs `[E, T]` in processing order:
/// the states `[H, T]` and the steps.
fn run_direction(w: &Weights, cell: &str, prefix: &str, x: &DMatrix<f64>) -> (DMatrix<f64>, Vec<Step>) {
    let w_ih = w.get(&format!("encoder.weight_ih_{prefix}"));
    let b_ih = w.vector(&format!("encoder.bias_ih_{prefix}"));
    let h_size = w_ih.nrows() / gates(cell);
    // Min cells have no recurrent tensors: zeros stand in, unread.
    let recurrent = |name: &str, shape: (usize, usize)| {
        let name = format!("encoder.{name}_{prefix}");
        w.0.get(&name)
            .cloned()
            .unwrap_or_else(|| DMatrix::zeros(shape.0, shape.1))
    };
    let w_hh = &recurrent("weight_hh", (w_ih.nrows(), h_size));
    let b_hh = recurrent("bias_hh", (w_ih.nrows(), 1)).column(0).into_owned();
    let bias = &b_ih + &b_hh;
    let (mut h, mut c) = (DVector::zeros(h_size), DVector::zeros(h_size));
    let mut states = DMatrix::zeros(h_size, x.ncols());
    let mut steps = Vec::new();
    for t in 0..x.ncols() {
        let xt = x.column(t);
        let rows = |k: usize| k * h_size..(k + 1) * h_size;
        match cell {
            "mingru" | "minlstm" => {
                let pre = w_ih * xt + &b_ih;
                let part = |k: usize| DVector::from_column_slice(&pre.as_slice()[rows(k)]);
                let (keep, let_in) = if cell == "mingru" {
                    let z = part(0).map(sigmoid);
                    (z.map(|z| 1.0 - z), z)
                } else {
                    let (f, i) = (part(0).map(sigmoid), part(1).map(sigmoid));
                    let total = &f + &i;
                    (f.component_div(&total), i.component_div(&total))
                };
                let candidate = part(gates(cell) - 1);
                h = keep.component_mul(&h) + let_in.component_mul(&candidate);
                steps.push(Step::Min { keep, let_in });
            }
            "lstm" => {
                let pre = w_ih * xt + w_hh * &h + &bias;
                let gate =
                    |k: usize| DVector::from_iterator(h_size, pre.as_slice()[rows(k)].iter().map(|&v| sigmoid(v)));
                let (i, f, o) = (gate(0), gate(1), gate(3));
                let zg = DVector::from_column_slice(&pre.as_slice()[rows(2)]);
                let g = zg.map(f64::tanh);
                c = f.component_mul(&c) + i.component_mul(&g);
                h = o.component_mul(&c.map(f64::tanh));
                steps.push(Step::Lstm {
                    i,
                    f,
                    o,
                    zg,
                    c: c.clone(),
                });
            }
            "gru-before" => {
                // One bias per gate: the two PyTorch-named biases add.
                let gx = w_ih * xt + &b_ih + &b_hh;
                let gh = w_hh * &h;
                let part = |v: &DVector<f64>, k: usize| DVector::from_column_slice(&v.as_slice()[rows(k)]);
                let r = (part(&gx, 0) + part(&gh, 0)).map(sigmoid);
                let z = (part(&gx, 1) + part(&gh, 1)).map(sigmoid);
                let reset = r.component_mul(&h);
                let a = part(&gx, 2) + w_hh.rows(rows(2).start, h_size) * reset;
                let n = a.map(f64::tanh);
                h = (DVector::from_element(h_size, 1.0) - &z).component_mul(&n) + z.component_mul(&h);
                steps.push(Step::GruBefore { r, z, a });
            }
            _ => {
                let gx = w_ih * xt + &b_ih;
                let gh = w_hh * &h + &b_hh;
                let part = |v: &DVector<f64>, k: usize| DVector::from_column_slice(&v.as_slice()[rows(k)]);
                let r = (part(&gx, 0) + part(&gh, 0)).map(sigmoid);
                let z = (part(&gx, 1) + part(&gh, 1)).map(sigmoid);
                let a = part(&gx, 2) + r.component_mul(&part(&gh, 2));
                let n = a.map(f64::tanh);
                h = (DVector::from_element(h_size, 1.0) - &z).component_mul(&n) + z.component_mul(&h);
                steps.push(Step::Gru { r, z, a });
            }
        }
        states.set_column(t, &h);
    }
    (states, steps)
}

/// The modified backward pass of one direction: `g_out` `[H, T]` reaches
/// each state from outside the recurrence (processing order); returns the
/// modified gradient of the inputs `[E, T]`.
fn back_direction(w: &Weights, prefix: &str, x: &DMatrix<f64>, steps: &[Step], g_out: &DMatrix<f64>) -> DMatrix<f64> {
    let w_ih = w.get(&format!("encoder.weight_ih_{prefix}"));
    let h_size = g_out.nrows();
    let w_hh =
        &w.0.get(&format!("encoder.weight_hh_{prefix}"))
            .cloned()
            .unwrap_or_else(|| DMatrix::zeros(w_ih.nrows(), h_size));
    let rows = |k: usize| k * h_size..(k + 1) * h_size;
    let mut g_x = DMatrix::zeros(x.nrows(), x.ncols());
    let (mut g_h, mut g_c) = (DVector::zeros(h_size), DVector::<f64>::zeros(h_size));
    for t in (0..x.ncols()).rev() {
        g_h += g_out.column(t);
        match &steps[t] {
            Step::Lstm { i, f, o, zg, c } => {
                // h = o * tanh(c): the signal tanh(c) takes all, then tanh.
                let c_ratio = c.map(tanh_ratio);
                g_c += o.component_mul(&g_h).component_mul(&c_ratio);
                // c = f c_prev + i g: a sum of two products, signals take all.
                let g_g = i.component_mul(&g_c);
                let g_zg = g_g.component_mul(&zg.map(tanh_ratio));
                // z_g = W_g x + U_g h_prev + b: the gates get nothing.
                let w_g = w_ih.rows(rows(2).start, h_size);
                let u_g = w_hh.rows(rows(2).start, h_size);
                let mut column = g_x.column_mut(t);
                column += w_g.transpose() * &g_zg;
                g_h = u_g.transpose() * &g_zg;
                g_c = f.component_mul(&g_c);
            }
            Step::Min { keep, let_in } => {
                // h = keep h_prev + let_in h̃: signals take all; h̃ is the
                // last block of W_ih x + b, linear.
                let g_candidate = let_in.component_mul(&g_h);
                let w_n = w_ih.rows(w_ih.nrows() - h_size, h_size);
                let mut column = g_x.column_mut(t);
                column += w_n.transpose() * &g_candidate;
                g_h = keep.component_mul(&g_h);
            }
            Step::Gru { r, z, a } => {
                // h = (1 - z) n + z h_prev: products whose signals take all.
                let g_n = (DVector::from_element(h_size, 1.0) - z).component_mul(&g_h);
                let g_a = g_n.component_mul(&a.map(tanh_ratio));
                // a = W_n x + b_in + r (U_n h_prev + b_hn): r a constant.
                let w_n = w_ih.rows(rows(2).start, h_size);
                let u_n = w_hh.rows(rows(2).start, h_size);
                let mut column = g_x.column_mut(t);
                column += w_n.transpose() * &g_a;
                g_h = z.component_mul(&g_h) + u_n.transpose() * r.component_mul(&g_a);
            }
            Step::GruBefore { r, z, a } => {
                // As above, but the reset state s = r * h_prev is a product
                // whose signal h_prev takes all: g_h gets r * g_s.
                let g_n = (DVector::from_element(h_size, 1.0) - z).component_mul(&g_h);
                let g_a = g_n.component_mul(&a.map(tanh_ratio));
                let w_n = w_ih.rows(rows(2).start, h_size);
                let u_n = w_hh.rows(rows(2).start, h_size);
                let mut column = g_x.column_mut(t);
                column += w_n.transpose() * &g_a;
                let g_s = u_n.transpose() * &g_a;
                g_h = z.component_mul(&g_h) + r.component_mul(&g_s);
            }
        }
    }
    g_x
}

/// Columns of `m` in reverse order.
fn reversed(m: &DMatrix<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(m.nrows(), m.ncols(), |r, t| m[(r, m.ncols() - 1 - t)])
}

/// `x ⊙ g_x` for the score of `target` (at output `position`, for a
/// per-step head), by the modified gradient.
fn oracle_relevance(
    config: &ModelConfig,
    w: &Weights,
    x: &DMatrix<f64>,
    target: usize,
    position: usize,
) -> DMatrix<f64> {
    let enc = &config.encoder;
    let mut cell = format!("{:?}", enc.cell).to_lowercase();
    if cell == "gru" && enc.gru_reset() == lrp_models::config::GruReset::Before {
        cell = "gru-before".into();
    }
    let cell = cell.as_str();
    let h = enc.hidden_size;
    let dirs = if enc.bidirectional { 2 } else { 1 };
    let len = x.ncols();
    // Forward, layer by layer: each direction's states, in position order.
    let mut layer_inputs = vec![x.clone()];
    let mut runs = Vec::new();
    for k in 0..enc.num_layers {
        let input = layer_inputs[k].clone();
        let mut out = DMatrix::zeros(h * dirs, len);
        let mut layer = Vec::new();
        for d in 0..dirs {
            let prefix = format!("l{k}{}", if d == 1 { "_reverse" } else { "" });
            let seen = if d == 1 { reversed(&input) } else { input.clone() };
            let (states, steps) = run_direction(w, cell, &prefix, &seen);
            let in_order = if d == 1 { reversed(&states) } else { states.clone() };
            out.rows_mut(d * h, h).copy_from(&in_order);
            layer.push((prefix, seen, steps));
        }
        runs.push(layer);
        layer_inputs.push(out);
    }
    let top = layer_inputs.last().expect("layers").clone();
    let d = h * dirs;
    let mut last = DVector::zeros(d);
    last.rows_mut(0, h).copy_from(&top.view((0, len - 1), (h, 1)));
    if dirs == 2 {
        last.rows_mut(h, h).copy_from(&top.view((h, 0), (h, 1)));
    }
    let input_kind = format!("{:?}", config.head.input).to_lowercase();
    let weights = config.attention.as_ref().map(|att| {
        let kind = format!("{:?}", att.kind).to_lowercase();
        let e: Vec<f64> = (0..len)
            .map(|t| {
                let ht = top.column(t).into_owned();
                match kind.as_str() {
                    "context" => {
                        let u = (w.get("attention.proj.weight") * &ht + w.vector("attention.proj.bias")).map(f64::tanh);
                        u.dot(&w.vector("attention.query"))
                    }
                    "additive" => {
                        let u = (w.get("attention.key.weight") * &ht
                            + w.vector("attention.key.bias")
                            + w.get("attention.query.weight") * &last)
                            .map(f64::tanh);
                        (w.get("attention.score.weight") * u)[0]
                    }
                    "dot" => last.dot(&ht),
                    _ => last.dot(&(w.get("attention.bilinear.weight") * &ht)),
                }
            })
            .collect();
        let max = e.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = e.iter().map(|v| (v - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        exp.into_iter().map(|v| v / total).collect::<Vec<f64>>()
    });
    // Backward: the head's row of the target, split into context and last.
    let g_features = w.get("head.weight").row(target).transpose();
    // Mean, max and per-step heads read the positions directly: the mean
    // is a linear step with weights 1/T, the maximum hands each dimension
    // to its first winner, a per-step head reads one position.
    let mut g_top = DMatrix::zeros(d, len);
    match input_kind.as_str() {
        "mean" => {
            for t in 0..len {
                let mut column = g_top.column_mut(t);
                column += &g_features / len as f64;
            }
        }
        "max" => {
            for j in 0..d {
                let winner = (0..len).fold(0, |best, t| if top[(j, t)] > top[(j, best)] { t } else { best });
                g_top[(j, winner)] += g_features[j];
            }
        }
        "each" => {
            let mut column = g_top.column_mut(position);
            column += &g_features;
        }
        _ => {}
    }
    let (g_context, g_last) = match input_kind.as_str() {
        "last" => (None, g_features.clone()),
        "mean" | "max" | "each" => (None, DVector::zeros(d)),
        "context" => (Some(g_features.clone()), DVector::zeros(d)),
        _ => (
            Some(g_features.rows(0, d).into_owned()),
            g_features.rows(d, d).into_owned(),
        ),
    };
    if let (Some(g_context), Some(a)) = (g_context, &weights) {
        for (t, &a_t) in a.iter().enumerate() {
            let mut column = g_top.column_mut(t);
            column += &g_context * a_t;
        }
    }
    {
        let mut at_end = g_top.view_mut((0, len - 1), (h, 1));
        at_end += g_last.rows(0, h);
    }
    if dirs == 2 {
        let mut at_start = g_top.view_mut((h, 0), (h, 1));
        at_start += g_last.rows(h, h);
    }
    let mut g = g_top;
    for (k, layer) in runs.iter().enumerate().rev() {
        let mut below = DMatrix::zeros(layer_inputs[k].nrows(), len);
        for (dir, (prefix, seen, steps)) in layer.iter().enumerate() {
            let own = g.rows(dir * h, h).into_owned();
            let own = if dir == 1 { reversed(&own) } else { own };
            let g_in = back_direction(w, prefix, seen, steps, &own);
            below += if dir == 1 { reversed(&g_in) } else { g_in };
        }
        g = below;
    }
    x.component_mul(&g)
}

/// A config from drawn choices; `cell` 0 LSTM, 1 GRU, 2 the GRU that
/// resets before its product, 3 minGRU, 4 minLSTM.
fn drawn_config(cell: usize, bidirectional: bool, layers: usize, attention: usize, head: usize) -> ModelConfig {
    let attention = [
        None,
        Some(("context", 3)),
        Some(("additive", 3)),
        Some(("dot", 0)),
        Some(("general", 0)),
    ][attention];
    let head = match (attention.is_none(), head) {
        // Issue 15's heads, with or without an (unused) attention.
        (_, 3..) => ["mean", "max", "each"][head - 3],
        (true, _) => "last",
        (false, _) => ["last", "context", "context+last"][head],
    };
    let mut config = architecture(
        ["lstm", "gru", "gru", "mingru", "minlstm"][cell],
        bidirectional,
        layers,
        4,
        3,
        attention,
        head,
        3,
    );
    if cell == 2 {
        config.encoder.gru_reset = Some(lrp_models::config::GruReset::Before);
    }
    config
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn lrp_at_eps_0_is_input_times_the_modified_gradient(
        cell in 0usize..5,
        bidirectional in any::<bool>(),
        layers in 1usize..=2,
        attention in 0usize..5,
        head in 0usize..6,
        len in 1usize..8,
        seed in 0u64..1_000_000,
        target in 0usize..3,
        position in 0usize..8,
    ) {
        let config = drawn_config(cell, bidirectional, layers, attention, head);
        let tensors = random_tensors(&config, seed, 0.8);
        let weights = Weights::new(&tensors);
        let model = model_from(&config, tensors);
        let x = random_input(4, len, seed, 1.0);
        let position = position % len;
        let want = oracle_relevance(&config, &weights, &x, target, position);
        let trace = model.forward(x).unwrap();
        let trace = if model.is_per_step() { trace.at_position(position).unwrap() } else { trace };
        let explanation = model.lrp(&trace, target, &Composite::epsilon(0.0, 0.0).unwrap()).unwrap();
        let got = &explanation.input_relevance;
        // Relevance is [T, E] position-major; the oracle [E, T] column-major:
        // the same order in memory.
        let scale = want.iter().fold(explanation.score.abs(), |m, v| m.max(v.abs())).max(1e-300);
        for (k, (a, b)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
            prop_assert!(
                (a - b).abs() <= 1e-9 * scale,
                "{config:?}\nentry {k}: lrp {a:e}, oracle {b:e} (scale {scale:e})"
            );
        }
    }
}
