//! The convolutional front end (`Conv1d → ReLU → MaxPool1d → LSTM →
//! Linear`) against PyTorch (`tests/fixtures/conv/cnn_lstm.json`, written
//! by `tools/make_conv_fixtures.py`), against the formulas of its rules
//! written again here, and against central differences and a
//! modified-gradient oracle that share no code with the library.

use lrp_layers::{Composite, RuleParameters};
use lrp_models::{
    Backward, Conv1d, FinalState, Linear, LstmCell, MaxPool1d, MeanPooling, Model, Packing, RecurrentLayer, Relu,
    Stage, Window,
};
use lrp_tests::assert_close;
use nalgebra::{DMatrix, DVector};
use serde_json::Value;

use crate::oracle::{sigmoid, tanh_ratio};

fn fixture() -> Value {
    let path = lrp_tests::fixture("conv/cnn_lstm.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture is committed")).expect("JSON")
}

/// Every number of a nested JSON array, in reading order.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(numbers).collect(),
        other => vec![other.as_f64().expect("a number")],
    }
}

/// A `[rows, cols]` JSON array of arrays as a matrix.
fn matrix(v: &Value) -> DMatrix<f64> {
    let rows = v.as_array().expect("rows").len();
    let values = numbers(v);
    DMatrix::from_row_slice(rows, values.len() / rows, &values)
}

/// A `[T, C]` JSON array as the engine's `[C, T]`.
fn sequence(v: &Value) -> DMatrix<f64> {
    matrix(v).transpose()
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("a count") as usize
}

/// The window of a `conv` or `pool` entry.
fn window(v: &Value) -> Window {
    Window {
        kernel: usize_of(&v["kernel"]),
        stride: usize_of(&v["stride"]),
        padding: usize_of(&v["padding"]),
        dilation: v.get("dilation").map_or(1, usize_of),
    }
}

/// The parts of the fixture's model.
struct Parts {
    conv: Conv1d<f64>,
    pool: MaxPool1d,
    lstm: LstmCell<f64>,
    head: Linear<f64>,
}

fn parts(f: &Value) -> Parts {
    let c = &f["conv"];
    let weight = &c["weight"]; // [C_out, C_in, K]
    let (c_out, c_in) = (weight.as_array().unwrap().len(), weight[0].as_array().unwrap().len());
    let kernel = usize_of(&c["kernel"]);
    let conv = Conv1d::new(
        DMatrix::from_row_slice(c_out, c_in * kernel, &numbers(weight)),
        c_in,
        Some(DVector::from_vec(numbers(&c["bias"]))),
        window(c),
    )
    .unwrap();
    let pool = MaxPool1d::new(c_out, window(&f["pool"])).unwrap();
    let l = &f["lstm"];
    let lstm = LstmCell::new(
        matrix(&l["weight_ih_l0"]),
        matrix(&l["weight_hh_l0"]),
        DVector::from_vec(numbers(&l["bias"])),
    )
    .unwrap();
    let head = Linear::new(
        matrix(&f["head"]["weight"]),
        Some(DVector::from_vec(numbers(&f["head"]["bias"]))),
    )
    .unwrap();
    Parts { conv, pool, lstm, head }
}

fn cnn_lstm(f: &Value) -> Model<f64> {
    let p = parts(f);
    let hidden = matrix(&f["lstm"]["weight_hh_l0"]).ncols();
    Model::builder(3)
        .stage(p.conv)
        .stage(Relu::new(4))
        .stage(p.pool)
        .stage(RecurrentLayer::unidirectional(p.lstm))
        .stage(FinalState::new(hidden, 1))
        .stage(p.head)
        .build()
        .unwrap()
}

fn inputs(f: &Value) -> Vec<DMatrix<f64>> {
    f["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| sequence(&c["input"]))
        .collect()
}

#[test]
fn the_front_end_and_the_model_compute_what_pytorch_computes() {
    let f = fixture();
    let p = parts(&f);
    let xs = inputs(&f);
    // Both sequences in one packed batch, as the model runs them.
    let packing = Packing::new(&xs.iter().map(|x| x.ncols()).collect::<Vec<_>>());
    let mut packed = DMatrix::zeros(3, packing.columns());
    for (slot, x) in xs.iter().enumerate() {
        packing.scatter_add(&mut packed, slot, x);
    }
    // Each stage sees the batch packed with its own lengths (11, 8 -> 5, 3 -> 3, 2).
    let conv = Stage::forward(&p.conv, &packing, &packed);
    let conv_packing = packing.resized(|len| p.conv.window().output_length(len)).unwrap();
    assert_eq!((conv_packing.length(0), conv_packing.length(1)), (5, 3));
    let relu = Stage::<f64>::forward(&Relu::new(4), &conv_packing, Stage::output_of(&p.conv, &conv));
    let pooled = Stage::<f64>::forward(&p.pool, &conv_packing, &relu);
    let pool_packing = conv_packing
        .resized(|len| Stage::<f64>::output_length(&p.pool, len))
        .unwrap();
    assert_eq!((pool_packing.length(0), pool_packing.length(1)), (3, 2));
    for (slot, case) in f["cases"].as_array().unwrap().iter().enumerate() {
        let want_conv = sequence(&case["conv_relu"]);
        assert_close(
            "conv + relu",
            conv_packing.gather(&relu, slot).as_slice(),
            want_conv.as_slice(),
            1e-12,
        );
        let want_pool = sequence(&case["pooled"]);
        let got_pool = pool_packing.gather(Stage::<f64>::output_of(&p.pool, &pooled), slot);
        assert_close("pooled", got_pool.as_slice(), want_pool.as_slice(), 1e-10);
    }
    let model = cnn_lstm(&f);
    assert_eq!(
        model.describe(),
        "3 values per position -> the 1-D convolution -> the ReLU -> the max-pooling over time -> a lstm layer -> the final state -> the head -> 2 values per sequence"
    );
    for (trace, case) in model.forward_batch(xs).into_iter().zip(f["cases"].as_array().unwrap()) {
        assert_close(
            "scores",
            trace.unwrap().scores().as_slice(),
            &numbers(&case["scores"]),
            1e-12,
        );
    }
}

#[test]
fn a_sequence_the_convolution_would_leave_empty_is_refused_in_one_line() {
    let model = cnn_lstm(&fixture());
    // Padded to 4 positions, shorter than the dilated kernel's reach of 5.
    let err = model.forward(DMatrix::from_element(3, 2, 0.5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input: a sequence of 2 positions is too short for stage 1 of 6 (the 1-D convolution), which would leave no position"
    );
    // 3 positions: 1 after the convolution, 1 after the pooling.
    assert!(model.forward(DMatrix::from_element(3, 3, 0.5)).is_ok());
}

#[test]
fn relevance_is_conserved_through_the_convolution_the_relu_and_the_pooling() {
    let f = fixture();
    let model = cnn_lstm(&f);
    let p = RuleParameters {
        eps: 0.0,
        bias_factor: 1.0,
        ..RuleParameters::default()
    };
    for spec in [
        "*=epsilon",
        "conv=zplus",
        "conv=alpha-beta",
        "conv=gamma",
        "conv=flat",
        "conv=wsquare",
    ] {
        let rules = Composite::preset("epsilon", &p).unwrap().with_rules(spec, &p).unwrap();
        for x in inputs(&f) {
            let trace = model.forward(x).unwrap();
            for target in 0..2 {
                let e = model.lrp(&trace, target, &rules).unwrap();
                let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
                assert!(
                    (total - trace.scores()[target]).abs() < 1e-10,
                    "{spec}: {total} vs {}",
                    trace.scores()[target]
                );
            }
        }
    }
}

#[test]
fn the_pooling_gives_each_windows_relevance_to_its_winner_and_conserves_it() {
    // Max-pooling, a mean over time and a head without bias: everything
    // that reaches the pooling reaches the inputs.
    let pool = MaxPool1d::new(2, Window::same(3, 1)).unwrap();
    let model = Model::<f64>::builder(2)
        .stage(pool)
        .stage(MeanPooling::new(2))
        .stage(Linear::new(DMatrix::from_row_slice(1, 2, &[1.5, -0.5]), None).unwrap())
        .build()
        .unwrap();
    let x = DMatrix::from_row_slice(2, 5, &[0.3, 2.0, -1.0, 0.5, 0.4, 1.0, 1.0, -2.0, 3.0, 0.0]);
    let trace = model.forward(x).unwrap();
    let e = model.lrp(&trace, 0, &Composite::epsilon(0.0, 1.0).unwrap()).unwrap();
    assert!((e.input_relevance.total() - trace.scores()[0]).abs() < 1e-12);
    // Channel 0, windows {0.3, 2}, {0.3, 2, -1}, {2, -1, 0.5}, {-1, 0.5, 0.4}, {0.5, 0.4}:
    // winners t1, t1, t1, t3, t3; each output carries 1.5 / 5 of relevance per unit of its value.
    let r0: Vec<f64> = (0..5).map(|t| e.input_relevance.position(t).unwrap()[0]).collect();
    let unit = 1.5 / 5.0;
    assert_close(
        "channel 0",
        &r0,
        &[0.0, 3.0 * 2.0 * unit, 0.0, 2.0 * 0.5 * unit, 0.0],
        1e-12,
    );
    // Channel 1 ties at t0, t1 (1.0, 1.0): the first wins.
    let r1: Vec<f64> = (0..5).map(|t| e.input_relevance.position(t).unwrap()[1]).collect();
    let unit = -0.5 / 5.0;
    assert_close("channel 1", &r1, &[2.0 * unit, 0.0, 0.0, 3.0 * 3.0 * unit, 0.0], 1e-10);
}

/// `U` `[C_in K, T]` of one sequence `x` `[C_in, T]`, written from the
/// definition.
fn unfold(x: &DMatrix<f64>, window: Window) -> DMatrix<f64> {
    let (c_in, len, k) = (x.nrows(), x.ncols(), window.kernel);
    DMatrix::from_fn(c_in * k, window.output_length(len), |row, t| {
        let (c, tap) = (row / k, row % k);
        let src = (t * window.stride + tap * window.dilation) as isize - window.padding as isize;
        if src >= 0 && (src as usize) < len {
            x[(c, src as usize)]
        } else {
            0.0
        }
    })
}

#[test]
fn the_convolution_is_explained_by_epsilon_on_the_unfolded_product() {
    let f = fixture();
    let p = parts(&f);
    let x = inputs(&f).remove(0);
    let (eps, bias_factor) = (0.05, 0.5);
    let packing = Packing::new(&[x.ncols()]);
    let trace = Stage::forward(&p.conv, &packing, &x);
    let window = p.conv.window();
    let out_len = window.output_length(x.ncols());
    let relevance_out = DMatrix::from_fn(4, out_len, |o, t| ((o * 3 + t * 5) % 7) as f64 / 7.0 - 0.3);
    let rules = Composite::epsilon(eps, bias_factor).unwrap();
    let mut context = Backward::new(&packing, &rules, vec![true]);
    let mut got = DMatrix::zeros(3, x.ncols());
    Stage::lrp(&p.conv, &trace, &x, &relevance_out, &mut got, &mut context);
    let (leftovers, _) = context.finish();

    // R_i = sum_j (z_ij + bf (b_j + eps s_j) / N) / (z_j + eps s_j) R_j on
    // Y = W U + b, then each copy in U back to its position.
    let c = &f["conv"];
    let w = DMatrix::from_row_slice(4, 9, &numbers(&c["weight"]));
    let b = numbers(&c["bias"]);
    let u = unfold(&x, p.conv.window());
    let n = 9.0;
    let mut want = DMatrix::zeros(3, x.ncols());
    let mut on_padding = 0.0;
    for t in 0..out_len {
        for j in 0..4 {
            let z_j: f64 = (0..9).map(|i| w[(j, i)] * u[(i, t)]).sum::<f64>() + b[j];
            let s = if z_j >= 0.0 { 1.0 } else { -1.0 };
            for i in 0..9 {
                let share = (w[(j, i)] * u[(i, t)] + bias_factor * (b[j] + eps * s) / n) / (z_j + eps * s)
                    * relevance_out[(j, t)];
                let (ch, tap) = (i / 3, i % 3);
                let src = (t * window.stride + tap * window.dilation) as isize - window.padding as isize;
                if src >= 0 && (src as usize) < x.ncols() {
                    want[(ch, src as usize)] += share;
                } else {
                    on_padding += share;
                }
            }
        }
    }
    assert_close("epsilon", got.as_slice(), want.as_slice(), 1e-10);
    // With bias factor 0.5 the padding's copies carry a share of the bias,
    // which has no input to go to (what eps and the rest of the bias absorb
    // is not counted as unexplained, as everywhere).
    assert!(on_padding.abs() > 1e-6);
    assert!((leftovers.unexplained[0] - on_padding).abs() < 1e-12);
}

#[test]
fn the_gradient_is_the_central_difference_of_the_score() {
    let f = fixture();
    let model = cnn_lstm(&f);
    for x in inputs(&f) {
        let trace = model.forward(x.clone()).unwrap();
        for target in 0..2 {
            let g = model.gradient(&trace, target).unwrap();
            let h = 1e-6;
            for i in 0..x.nrows() {
                for t in 0..x.ncols() {
                    let mut plus = x.clone();
                    plus[(i, t)] += h;
                    let mut minus = x.clone();
                    minus[(i, t)] -= h;
                    let s = |x: DMatrix<f64>| model.forward(x).unwrap().scores()[target];
                    let numeric = (s(plus) - s(minus)) / (2.0 * h);
                    assert!(
                        (g[(i, t)] - numeric).abs() < 1e-7 * (1.0 + numeric.abs()),
                        "d s{target} / d x[{i}, {t}]: {} vs {numeric}",
                        g[(i, t)]
                    );
                }
            }
        }
    }
}

/// Input relevance of signal-take-all LRP at eps 0, bias factor 0, as
/// `x ⊙ g` with `g` the modified gradient (`tests/tests/oracle.rs`): every
/// gate a constant, each nonlinearity `f` passing back `f(z) / z`, each
/// max-pooling window its winner's, written from the fixture's tensors.
fn oracle(f: &Value, x: &DMatrix<f64>, target: usize) -> DMatrix<f64> {
    let c = &f["conv"];
    let window = window(c);
    let pool = self::window(&f["pool"]);
    let w_conv = DMatrix::from_row_slice(4, 9, &numbers(&c["weight"]));
    let b_conv = DVector::from_vec(numbers(&c["bias"]));
    // Forward: conv, ReLU, pooling (first of tied taps), LSTM.
    let u = unfold(x, window);
    let (conv_len, len) = (u.ncols(), pool.output_length(u.ncols()));
    let mut z = &w_conv * &u;
    for mut col in z.column_iter_mut() {
        col += &b_conv;
    }
    let a = z.map(|v| v.max(0.0));
    let mut winner = DMatrix::from_element(4, len, 0usize);
    let mut pooled = DMatrix::zeros(4, len);
    for ch in 0..4 {
        for t in 0..len {
            // Taps t s - p + k inside the sequence, in order.
            let start = (t * pool.stride) as isize - pool.padding as isize;
            let taps = start.max(0) as usize..((start + pool.kernel as isize) as usize).min(conv_len);
            let mut best = taps.start;
            for s in taps {
                if a[(ch, s)] > a[(ch, best)] {
                    best = s;
                }
            }
            winner[(ch, t)] = best;
            pooled[(ch, t)] = a[(ch, best)];
        }
    }
    let l = &f["lstm"];
    let (w_ih, w_hh, bias) = (
        matrix(&l["weight_ih_l0"]),
        matrix(&l["weight_hh_l0"]),
        DVector::from_vec(numbers(&l["bias"])),
    );
    let hidden = w_hh.ncols();
    let (mut h, mut cell) = (DVector::zeros(hidden), DVector::zeros(hidden));
    // Per step: i, f, o, the candidate's pre-activation, c_t.
    let mut steps = Vec::new();
    for t in 0..len {
        let pre = &w_ih * pooled.column(t) + &w_hh * &h + &bias;
        let gate = |k: usize| pre.rows(k * hidden, hidden).map(sigmoid);
        let (i, fg, o) = (gate(0), gate(1), gate(3));
        let zg = pre.rows(2 * hidden, hidden).into_owned();
        cell = fg.component_mul(&cell) + i.component_mul(&zg.map(f64::tanh));
        h = o.component_mul(&cell.map(f64::tanh));
        steps.push((i, fg, o, zg, cell.clone()));
    }
    // Modified backward.
    let w_head = matrix(&f["head"]["weight"]);
    let mut g_h = w_head.row(target).transpose();
    let mut g_c = DVector::zeros(hidden);
    let mut g_pooled = DMatrix::zeros(4, len);
    for t in (0..len).rev() {
        let (i, fg, o, zg, c_t) = &steps[t];
        // h = o * tanh(c): the signal takes all, tanh passes tanh(c)/c.
        g_c += o.component_mul(&c_t.map(tanh_ratio)).component_mul(&g_h);
        // c = f c_prev + i tanh(zg): each product's signal takes its term's share.
        let g_zg = i.component_mul(&zg.map(tanh_ratio)).component_mul(&g_c);
        let w_g = w_ih.rows(2 * hidden, hidden);
        let u_g = w_hh.rows(2 * hidden, hidden);
        g_pooled.set_column(t, &(w_g.transpose() * &g_zg));
        g_h = u_g.transpose() * &g_zg;
        g_c = fg.component_mul(&g_c);
    }
    // Pooling: winner takes all; ReLU: relu(z)/z; conv: W^T, folded back.
    let mut g_a = DMatrix::zeros(4, conv_len);
    for ch in 0..4 {
        for t in 0..len {
            g_a[(ch, winner[(ch, t)])] += g_pooled[(ch, t)];
        }
    }
    let g_z = g_a.zip_map(&z, |g, z| if z > 0.0 { g } else { 0.0 });
    let g_u = w_conv.transpose() * g_z;
    let mut g_x = DMatrix::zeros(3, x.ncols());
    for t in 0..conv_len {
        for row in 0..9 {
            let (ch, tap) = (row / 3, row % 3);
            let src = (t * window.stride + tap * window.dilation) as isize - window.padding as isize;
            if src >= 0 && (src as usize) < x.ncols() {
                g_x[(ch, src as usize)] += g_u[(row, t)];
            }
        }
    }
    x.component_mul(&g_x)
}

#[test]
fn lrp_at_eps_0_and_bias_factor_0_is_input_times_the_modified_gradient() {
    let f = fixture();
    let model = cnn_lstm(&f);
    let rules = Composite::epsilon(0.0, 0.0).unwrap();
    for x in inputs(&f) {
        let trace = model.forward(x.clone()).unwrap();
        for target in 0..2 {
            let e = model.lrp(&trace, target, &rules).unwrap();
            let want = oracle(&f, &x, target);
            let got: Vec<f64> = (0..x.ncols())
                .flat_map(|t| e.input_relevance.position(t).unwrap().to_vec())
                .collect();
            let scale = want.amax().max(1e-12);
            for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                assert!((g - w).abs() < 1e-9 * scale, "[{k}]: {g} vs {w}");
            }
        }
    }
}
