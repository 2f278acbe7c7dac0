//! xLSTM language models (the mLSTM stack of `transformers`' `xlstm`
//! model, Beck et al. 2024): one [`Stage`] per block, and the whole model
//! as an ordinary chain `token ids -> the embedding -> xLSTM block x L ->
//! the final RMSNorm -> the per-step head -> the logit soft cap`
//! ([`xlstm_model`]), read from the tensors of an `xLSTMForCausalLM`.
//!
//! ## The block, per position `t` of a sequence (`H` model width, `NH`
//! heads of query/key width `dk` and value width `dv`, `F` the
//! feed-forward width, `cap(z) = c·tanh(z / c)`)
//! ```text
//! h_t  = w_1 ⊙ x_t · ρ_t                                 RMSNorm, ρ = (mean(x²) + eps)^(-1/2)
//! q, k, v, o = W_q h, W_k h, W_v h, W_o h                 per head: q, k [dk], v [dv]
//! ĩ, f̃ = cap(W_i h + b_i), cap(W_f h + b_f)               per head, scalars
//! m_t  = max(log σ(f̃) + m_{t-1}, ĩ),  m_0 = 0           the stabiliser
//! f'   = exp(log σ(f̃) + m_{t-1} - m_t),  i' = exp(ĩ - m_t)
//! C_t  = f' C_{t-1} + i' k vᵀ,  n_t = f' n_{t-1} + i' k   [dk, dv], [dk]
//! c_t  = C_tᵀ q̂ / (max(|q̂·n_t|, exp(-m_t)) + eps)         q̂ = q / √dk
//! u_t  = w_mh ⊙ (c_t - mean(c_t)) · ρ'_t                 LayerNorm per head
//! y_t  = x_t + W_out (σ(o) ⊙ u_t)
//! out  = y_t + W_down (SiLU(W_gate h') ⊙ W_up h'),  h' = w_2 ⊙ y_t · ρ''_t
//! ```
//! and after the blocks `logits = cap_out(W_head (w_f ⊙ x ρ))`.
//!
//! Unrolled, `c_t = Σ_{s<=t} A_ts v_s` with the weights
//! `A_ts = exp(ĩ_s + F_t - F_s - m_t) (q̂_t·k_s) / den_t` (`F` the running
//! sum of `log σ(f̃)`): an attention whose weights come from the gates.
//!
//! ## Rules (`docs/rules.md`, "xLSTM")
//! The gates, the stabiliser, the denominator `den_t` and the norms'
//! scales `ρ` are constants; the LayerNorm's mean subtraction stays a
//! linear step. The cell's sum `c_t = Σ_s A_ts v_s` takes the linear rule
//! of its accumulation site, and each term `A_ts ⊙ v_s` the gate rule of
//! the product site `qk`: signal-take-all by default (the query–key
//! products are connection weights and the value takes their relevance),
//! `half` for AttnLRP (half to `v_s`, half to `q̂_t·k_s`, whose terms
//! split half to `q` and half to `k`). The feed-forward's `SiLU(gate)` is
//! a gate, so `up` takes all of its relevance; the logit soft cap passes
//! relevance unchanged; the residual sums and projections take the
//! composite's linear rules.

use lrp_core::{Connection, Float, GateRule, InputGroup, LinearStep};
use lrp_layers::{Composite, Direction, Operation, Site};
use nalgebra::{DMatrix, DMatrixView};

use crate::activation::sigmoid;
use crate::mamba::{add_into, column, column_mut, project, silu, split_residual, RmsNorm, RESIDUAL};
use crate::packing::Packing;
use crate::stage::{Backward, Port, Stage};
use crate::tensors::{check_against_manifest, Manifest, Ordered, Tensors};
use crate::{Embedding, Error, Linear, Model, StepHead};

/// The largest width, head count, vocabulary or feed-forward width a
/// config may give (each).
const MAX_SIZE: usize = 1 << 20;
/// The most blocks a config may give.
const MAX_LAYERS: usize = 4096;

/// The shape of an xLSTM language model: the keys of a `transformers`
/// `xLSTMConfig` that the computation depends on, the derived widths
/// computed as `transformers`' layers compute them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct XlstmConfig {
    /// `V`, rows of the embedding and of the head.
    pub vocab_size: usize,
    /// `H`, the model width.
    pub hidden_size: usize,
    /// `NH`, the mLSTM heads.
    pub num_heads: usize,
    /// `NH dk`: `int(H * qk_dim_factor)`.
    pub qk_dim: usize,
    /// `NH dv`: `int(H * v_dim_factor)`.
    pub v_dim: usize,
    /// `F`: `H * ffn_proj_factor` rounded up to a multiple of
    /// `ffn_round_up_to_multiple_of`.
    pub ffn_dim: usize,
    /// `L`, the number of blocks.
    pub num_hidden_layers: usize,
    /// The norms' `eps`.
    pub norm_eps: f64,
    /// The `eps` added to the cell's denominator.
    pub eps: f64,
    /// The cap `c` of the input and forget gates' pre-activations.
    pub gate_soft_cap: Option<f64>,
    /// The cap of the logits.
    pub output_logit_soft_cap: Option<f64>,
}

impl XlstmConfig {
    /// Checks every size (positive, within limits, the heads dividing the
    /// widths), the `eps`s (finite, `>= 0`) and the caps (finite, `> 0`):
    /// one error naming the first key that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key: &str, message: String| Error::Config {
            key: key.into(),
            message,
        };
        let sizes = [
            ("vocab_size", self.vocab_size, MAX_SIZE),
            ("hidden_size", self.hidden_size, MAX_SIZE),
            ("num_heads", self.num_heads, MAX_SIZE),
            ("qk_dim_factor", self.qk_dim, MAX_SIZE),
            ("v_dim_factor", self.v_dim, MAX_SIZE),
            ("ffn_proj_factor", self.ffn_dim, MAX_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
        ];
        for (key, value, limit) in sizes {
            if value == 0 || value > limit {
                return Err(bad(key, format!("gives {value}, not between 1 and {limit}")));
            }
        }
        for (key, width) in [("qk_dim_factor", self.qk_dim), ("v_dim_factor", self.v_dim)] {
            if width % self.num_heads != 0 {
                return Err(bad(
                    key,
                    format!("gives width {width}, not a multiple of num_heads {}", self.num_heads),
                ));
            }
        }
        for (key, value) in [("norm_eps", self.norm_eps), ("eps", self.eps)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(bad(key, format!("{value} is not a finite number >= 0")));
            }
        }
        for (key, cap) in [
            ("gate_soft_cap", self.gate_soft_cap),
            ("output_logit_soft_cap", self.output_logit_soft_cap),
        ] {
            if let Some(c) = cap.filter(|c| !(c.is_finite() && *c > 0.0)) {
                return Err(bad(key, format!("{c} is not a finite number > 0")));
            }
        }
        Ok(())
    }

    /// Every tensor of the model as `transformers` names it in
    /// `model.safetensors`, with its shape, in the order the model is
    /// built from them.
    pub fn tensor_manifest(&self) -> Manifest {
        let (v, h, nh, qk, vd, f) = (
            self.vocab_size,
            self.hidden_size,
            self.num_heads,
            self.qk_dim,
            self.v_dim,
            self.ffn_dim,
        );
        let mut names: Manifest = vec![("backbone.embeddings.weight".into(), vec![v, h])];
        for layer in 0..self.num_hidden_layers {
            let b = format!("backbone.blocks.{layer}.");
            let m = format!("{b}mlstm_layer.");
            let mut add = |name: String, shape: Vec<usize>| names.push((name, shape));
            add(format!("{b}norm_mlstm.weight"), vec![h]);
            add(format!("{m}q.weight"), vec![qk, h]);
            add(format!("{m}k.weight"), vec![qk, h]);
            add(format!("{m}v.weight"), vec![vd, h]);
            add(format!("{m}ogate_preact.weight"), vec![vd, h]);
            add(format!("{m}igate_preact.weight"), vec![nh, h]);
            add(format!("{m}igate_preact.bias"), vec![nh]);
            add(format!("{m}fgate_preact.weight"), vec![nh, h]);
            add(format!("{m}fgate_preact.bias"), vec![nh]);
            add(format!("{m}multihead_norm.weight"), vec![vd]);
            add(format!("{m}out_proj.weight"), vec![h, vd]);
            add(format!("{b}norm_ffn.weight"), vec![h]);
            add(format!("{b}ffn.proj_up_gate.weight"), vec![f, h]);
            add(format!("{b}ffn.proj_up.weight"), vec![f, h]);
            add(format!("{b}ffn.proj_down.weight"), vec![h, f]);
        }
        names.push(("backbone.out_norm.weight".into(), vec![h]));
        names.push(("lm_head.weight".into(), vec![v, h]));
        names
    }
}

/// An xLSTM language model from its config and its tensors (named as
/// [`XlstmConfig::tensor_manifest`] says; every name, shape and value
/// checked first): `token ids -> the embedding -> xLSTM block x L -> the
/// final RMSNorm -> the per-step head -> the logit soft cap`, whose outputs
/// at position `t` are the next-token logits after `t`.
///
/// ```
/// use lrp_layers::Composite;
/// use lrp_models::xlstm::{xlstm_model, XlstmConfig};
/// use lrp_models::{Tensor, Tensors};
///
/// let config = XlstmConfig {
///     vocab_size: 7, hidden_size: 3, num_heads: 2, qk_dim: 2, v_dim: 4, ffn_dim: 5,
///     num_hidden_layers: 2, norm_eps: 1e-6, eps: 1e-6,
///     gate_soft_cap: Some(15.0), output_logit_soft_cap: Some(30.0),
/// };
/// let mut tensors = Tensors::new();
/// for (k, (name, shape)) in config.tensor_manifest().into_iter().enumerate() {
///     let n: usize = shape.iter().product();
///     let values = (0..n).map(|i| ((i * 7 + k * 3) % 11) as f64 / 11.0 - 0.4).collect();
///     tensors.insert(name, Tensor { shape, values });
/// }
/// let model = xlstm_model::<f64>(&config, tensors)?;
/// let trace = model.forward(model.embed(&[3, 1, 4])?)?; // the logits after "3 1 4"
/// let target = trace.predicted();
/// // Bias factor 1, eps 0: the relevance of the tokens is the (capped) logit.
/// let e = model.lrp(&trace, target, &Composite::epsilon(0.0, 1.0)?)?;
/// let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
/// assert!((total - trace.scores()[target]).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn xlstm_model<T: Float>(config: &XlstmConfig, tensors: Tensors) -> Result<Model<T>, Error> {
    config.validate()?;
    let mut ordered = check_against_manifest(&config.tensor_manifest(), tensors)?;
    let embedding = ordered.matrix::<T>()?; // [V, H]
    let eps = T::of_f64(config.norm_eps);
    let mut chain = Model::builder_with_embedding(Embedding::new(embedding.transpose())?);
    for _ in 0..config.num_hidden_layers {
        chain = chain.stage(XlstmBlock::from_ordered(config, &mut ordered)?);
    }
    let out_norm = RmsNorm::new(ordered.vector::<T>()?, eps);
    let head = ordered.matrix::<T>()?;
    let vocab = head.nrows();
    chain = chain.stage(out_norm).stage(StepHead::new(Linear::new(head, None)?));
    if let Some(cap) = config.output_logit_soft_cap {
        chain = chain.stage(SoftCap {
            cap: T::of_f64(cap),
            width: vocab,
        });
    }
    chain.build()
}

/// `c·tanh(z / c)`.
fn soft_cap<T: Float>(z: T, cap: T) -> T {
    cap * (z / cap).tanh()
}

/// `d/dz c·tanh(z / c) = 1 - tanh²(z / c)`.
fn soft_cap_slope<T: Float>(z: T, cap: T) -> T {
    let th = (z / cap).tanh();
    T::one() - th * th
}

/// `log σ(x)`, computed without overflow.
fn log_sigmoid<T: Float>(x: T) -> T {
    let negative_part = if x < T::zero() { x } else { T::zero() };
    negative_part - (-x.abs()).exp().ln_1p()
}

/// The logit soft cap `y = c·tanh(z / c)` at every position
/// `[V, N] -> [V, N]`. LRP passes relevance through unchanged (the cap is
/// `z` times its own ratio `y / z`, a constant).
#[derive(Debug, Clone, PartialEq)]
pub struct SoftCap<T: Float> {
    cap: T,
    width: usize,
}

impl<T: Float> Stage<T> for SoftCap<T> {
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the logit soft cap".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::positions(self.width)
    }

    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        input.map(|z| soft_cap(z, self.cap))
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<T>) -> &'t DMatrix<T> {
        trace
    }

    /// Unchanged: the ratio `y / z` is a constant.
    fn lrp(
        &self,
        _trace: &DMatrix<T>,
        _input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        _context: &mut Backward<'_, T>,
    ) {
        *relevance_in += relevance_out;
    }

    fn gradient(
        &self,
        _packing: &Packing,
        _trace: &DMatrix<T>,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        for ((g_in, &g), &z) in grad_in.iter_mut().zip(grad_out.iter()).zip(input.iter()) {
            *g_in += g * soft_cap_slope(z, self.cap);
        }
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (the cap's ratio is a constant; relevance passes unchanged)".into()
    }
}

/// One xLSTM block (the mLSTM layer and the gated feed-forward, each with
/// its pre-norm and residual sum), at every position of a packed batch,
/// `[H, N] -> [H, N]` (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct XlstmBlock<T: Float> {
    norm_mlstm: RmsNorm<T>,
    q: Linear<T>,
    k: Linear<T>,
    v: Linear<T>,
    ogate: Linear<T>,
    igate: Linear<T>,
    fgate: Linear<T>,
    /// The multi-head LayerNorm's weight `[NH dv]`.
    head_norm_weight: Vec<T>,
    out_proj: Linear<T>,
    norm_ffn: RmsNorm<T>,
    up_gate: Linear<T>,
    up: Linear<T>,
    down: Linear<T>,
    heads: usize,
    norm_eps: T,
    eps: T,
    gate_cap: Option<T>,
}

/// The forward pass of an [`XlstmBlock`] over a packed batch (`N` columns).
#[derive(Debug)]
pub struct XlstmTrace<T: Float> {
    /// The mLSTM pre-norm's `ρ` per column.
    scale: Vec<T>,
    /// `h` `[H, N]`.
    normed: DMatrix<T>,
    /// `q`, `k` `[NH dk, N]`, `v`, `o` `[NH dv, N]`.
    q: DMatrix<T>,
    k: DMatrix<T>,
    v: DMatrix<T>,
    o: DMatrix<T>,
    /// The gates' pre-activations before and after the cap `[NH, N]`.
    i_raw: DMatrix<T>,
    f_raw: DMatrix<T>,
    i_pre: DMatrix<T>,
    f_pre: DMatrix<T>,
    /// The stabiliser `m_t` `[NH, N]`.
    m: DMatrix<T>,
    /// `q̂·n_t` `[NH, N]`.
    dot: DMatrix<T>,
    /// The denominator `max(|q̂·n_t|, exp(-m_t)) + eps` `[NH, N]`.
    den: DMatrix<T>,
    /// The memories `C_t` `[NH dk dv, N]`, head-major, then row-major.
    memory: DMatrix<T>,
    /// The normalisers `n_t` `[NH dk, N]`.
    normaliser: DMatrix<T>,
    /// The cell's outputs `c_t` `[NH dv, N]`.
    cell: DMatrix<T>,
    /// The LayerNorm's `ρ'` `[NH, N]`.
    head_scale: DMatrix<T>,
    /// `u` `[NH dv, N]`.
    head_normed: DMatrix<T>,
    /// `σ(o) ⊙ u` `[NH dv, N]`.
    gated: DMatrix<T>,
    /// `W_out (σ(o) ⊙ u)` `[H, N]`.
    mixed: DMatrix<T>,
    /// `y = x + mixed` `[H, N]`.
    mid: DMatrix<T>,
    /// The feed-forward pre-norm's `ρ''` per column.
    ffn_scale: Vec<T>,
    /// `h'` `[H, N]`.
    ffn_normed: DMatrix<T>,
    /// `W_gate h'`, `W_up h'` `[F, N]`.
    gate: DMatrix<T>,
    up: DMatrix<T>,
    /// `SiLU(gate) ⊙ up` `[F, N]`.
    act: DMatrix<T>,
    /// `W_down act` `[H, N]`.
    ffn_out: DMatrix<T>,
    /// `y + ffn_out` `[H, N]`.
    output: DMatrix<T>,
}

impl<T: Float> XlstmBlock<T> {
    /// The block's tensors in manifest order (see [`XlstmConfig::tensor_manifest`]).
    fn from_ordered(config: &XlstmConfig, tensors: &mut Ordered) -> Result<Self, Error> {
        let norm_eps = T::of_f64(config.norm_eps);
        let norm_mlstm = RmsNorm::new(tensors.vector()?, norm_eps);
        let q = Linear::new(tensors.matrix()?, None)?;
        let k = Linear::new(tensors.matrix()?, None)?;
        let v = Linear::new(tensors.matrix()?, None)?;
        let ogate = Linear::new(tensors.matrix()?, None)?;
        let igate_weight = tensors.matrix()?;
        let igate = Linear::new(igate_weight, Some(tensors.vector()?))?;
        let fgate_weight = tensors.matrix()?;
        let fgate = Linear::new(fgate_weight, Some(tensors.vector()?))?;
        let head_norm_weight = tensors.vector::<T>()?.as_slice().to_vec();
        let out_proj = Linear::new(tensors.matrix()?, None)?;
        let norm_ffn = RmsNorm::new(tensors.vector()?, norm_eps);
        let up_gate = Linear::new(tensors.matrix()?, None)?;
        let up = Linear::new(tensors.matrix()?, None)?;
        let down = Linear::new(tensors.matrix()?, None)?;
        Ok(Self {
            norm_mlstm,
            q,
            k,
            v,
            ogate,
            igate,
            fgate,
            head_norm_weight,
            out_proj,
            norm_ffn,
            up_gate,
            up,
            down,
            heads: config.num_heads,
            norm_eps,
            eps: T::of_f64(config.eps),
            gate_cap: config.gate_soft_cap.map(T::of_f64),
        })
    }

    fn hidden(&self) -> usize {
        self.q.weight.ncols()
    }

    /// `dk`, the query/key width of one head.
    fn key_width(&self) -> usize {
        self.q.weight.nrows() / self.heads
    }

    /// `dv`, the value width of one head.
    fn value_width(&self) -> usize {
        self.v.weight.nrows() / self.heads
    }

    fn ffn_width(&self) -> usize {
        self.up.weight.nrows()
    }

    /// The sites of the block's steps, for recurrent layer `layer`.
    fn site(layer: usize, operation: Operation) -> Site {
        Site::encoder(layer, Direction::Forward, operation)
    }

    /// The gate pre-activation `z` after the soft cap.
    fn capped(&self, z: T) -> T {
        self.gate_cap.map_or(z, |c| soft_cap(z, c))
    }

    /// The cell's weight `A_ts / (q̂_t·k_s)` of head `j`: `exp(ĩ_s + F_t -
    /// F_s - m_t) / den_t`, from the running sums `f_sum` of `log σ(f̃)`.
    fn decay(trace: &XlstmTrace<T>, j: usize, (col_t, col_s): (usize, usize), f_sum: (T, T)) -> T {
        (trace.i_pre[(j, col_s)] + f_sum.0 - f_sum.1 - trace.m[(j, col_t)]).exp() / trace.den[(j, col_t)]
    }
}

impl<T: Float> Stage<T> for XlstmBlock<T> {
    type Trace = XlstmTrace<T>;

    fn name(&self) -> String {
        "an xLSTM block".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.hidden())
    }

    fn output(&self) -> Port {
        Port::positions(self.hidden())
    }

    fn recurrent_layers(&self) -> usize {
        1
    }

    fn trace_numbers_per_position(&self) -> usize {
        let (h, nh, dk, dv, f) = (
            self.hidden(),
            self.heads,
            self.key_width(),
            self.value_width(),
            self.ffn_width(),
        );
        7 * h + 3 * nh * dk + 6 * nh * dv + 9 * nh + nh * dk * dv + 3 * f
    }

    fn forward(&self, packing: &Packing, x: &DMatrix<T>) -> XlstmTrace<T> {
        let (n, nh, dk, dv) = (x.ncols(), self.heads, self.key_width(), self.value_width());
        let mut normed = DMatrix::zeros(x.nrows(), n);
        let scale = self.norm_mlstm.apply(x, &mut normed);
        let (q, k, v, o) = (
            project(&self.q, &normed),
            project(&self.k, &normed),
            project(&self.v, &normed),
            project(&self.ogate, &normed),
        );
        let (i_raw, f_raw) = (project(&self.igate, &normed), project(&self.fgate, &normed));
        let i_pre = i_raw.map(|z| self.capped(z));
        let f_pre = f_raw.map(|z| self.capped(z));
        let mut m = DMatrix::zeros(nh, n);
        let mut dot = DMatrix::zeros(nh, n);
        let mut den = DMatrix::zeros(nh, n);
        let mut memory = DMatrix::zeros(nh * dk * dv, n);
        let mut normaliser = DMatrix::zeros(nh * dk, n);
        let mut cell = DMatrix::zeros(nh * dv, n);
        let query_scale = T::one() / T::of_f64(dk as f64).sqrt();
        // The recurrence, per sequence and head, from C_0 = 0, n_0 = 0, m_0 = 0.
        for slot in 0..packing.sequences() {
            for t in 0..packing.length(slot) {
                let col = packing.column(t, slot);
                let prev = (t > 0).then(|| packing.column(t - 1, slot));
                for j in 0..nh {
                    let m_prev = prev.map_or(T::zero(), |p| m[(j, p)]);
                    let log_f = log_sigmoid(f_pre[(j, col)]);
                    let m_new = (log_f + m_prev).max(i_pre[(j, col)]);
                    let f_act = (log_f + m_prev - m_new).exp();
                    let i_act = (i_pre[(j, col)] - m_new).exp();
                    let mut qn = T::zero();
                    for a in 0..dk {
                        let key = k[(j * dk + a, col)];
                        let before = prev.map_or(T::zero(), |p| normaliser[(j * dk + a, p)]);
                        let n_new = f_act * before + i_act * key;
                        normaliser[(j * dk + a, col)] = n_new;
                        qn += q[(j * dk + a, col)] * query_scale * n_new;
                        for d in 0..dv {
                            let at = (j * dk + a) * dv + d;
                            let before = prev.map_or(T::zero(), |p| memory[(at, p)]);
                            memory[(at, col)] = f_act * before + i_act * key * v[(j * dv + d, col)];
                        }
                    }
                    let denominator = qn.abs().max((-m_new).exp()) + self.eps;
                    for d in 0..dv {
                        let mut numerator = T::zero();
                        for a in 0..dk {
                            numerator += q[(j * dk + a, col)] * query_scale * memory[((j * dk + a) * dv + d, col)];
                        }
                        cell[(j * dv + d, col)] = numerator / denominator;
                    }
                    m[(j, col)] = m_new;
                    dot[(j, col)] = qn;
                    den[(j, col)] = denominator;
                }
            }
        }
        // LayerNorm per head, then the output gate, out_proj and the residual.
        let mut head_scale = DMatrix::zeros(nh, n);
        let mut head_normed = DMatrix::zeros(nh * dv, n);
        let width = T::of_f64(dv as f64);
        for col in 0..n {
            for j in 0..nh {
                let part = &column(&cell, col)[j * dv..(j + 1) * dv];
                let mean = part.iter().fold(T::zero(), |acc, &c| acc + c) / width;
                let var = part.iter().fold(T::zero(), |acc, &c| acc + (c - mean) * (c - mean)) / width;
                let rho = T::one() / (var + self.norm_eps).sqrt();
                head_scale[(j, col)] = rho;
                for d in 0..dv {
                    let i = j * dv + d;
                    head_normed[(i, col)] = self.head_norm_weight[i] * ((cell[(i, col)] - mean) * rho);
                }
            }
        }
        let gated = head_normed.zip_map(&o, |u, o| sigmoid(o) * u);
        let mixed = project(&self.out_proj, &gated);
        let mid = x + &mixed;
        // The gated feed-forward and its residual.
        let mut ffn_normed = DMatrix::zeros(x.nrows(), n);
        let ffn_scale = self.norm_ffn.apply(&mid, &mut ffn_normed);
        let gate = project(&self.up_gate, &ffn_normed);
        let up = project(&self.up, &ffn_normed);
        let act = gate.zip_map(&up, |g, u| silu(g) * u);
        let ffn_out = project(&self.down, &act);
        let output = &mid + &ffn_out;
        XlstmTrace {
            scale,
            normed,
            q,
            k,
            v,
            o,
            i_raw,
            f_raw,
            i_pre,
            f_pre,
            m,
            dot,
            den,
            memory,
            normaliser,
            cell,
            head_scale,
            head_normed,
            gated,
            mixed,
            mid,
            ffn_scale,
            ffn_normed,
            gate,
            up,
            act,
            ffn_out,
            output,
        }
    }

    fn output_of<'t>(&self, trace: &'t XlstmTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    fn lrp(
        &self,
        trace: &XlstmTrace<T>,
        x: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let (h, nh, dk, dv, f) = (
            self.hidden(),
            self.heads,
            self.key_width(),
            self.value_width(),
            self.ffn_width(),
        );
        let layer = context.layer;
        let rules = context.rules;
        let residual_rule = rules.rule_at(&Site::new(RESIDUAL, Operation::Accumulation));
        let rule = |name: &'static str| rules.rule_at(&Self::site(layer, Operation::Projection(name)));
        let (q_rule, k_rule, v_rule) = (rule("q"), rule("k"), rule("v"));
        let (norm_rule, out_rule, up_rule, down_rule) = (
            rule("multihead_norm"),
            rule("out_proj"),
            rule("proj_up"),
            rule("proj_down"),
        );
        let sum_rule = rules.rule_at(&Self::site(layer, Operation::Accumulation));
        let product_rule: &dyn GateRule<T> = rules.gate_rule_at(&Self::site(layer, Operation::Product("qk")));
        let packing = context.packing;
        let query_scale = T::one() / T::of_f64(dk as f64).sqrt();
        let inv_width = T::one() / T::of_f64(dv as f64);
        let n = x.ncols();
        // Buffers reused over the whole pass.
        let mut r_mid = DMatrix::<T>::zeros(h, n);
        let mut r_cell = DMatrix::<T>::zeros(nh * dv, n);
        let mut r_q = DMatrix::<T>::zeros(nh * dk, n);
        let mut r_k = DMatrix::<T>::zeros(nh * dk, n);
        let mut r_v = DMatrix::<T>::zeros(nh * dv, n);
        let mut r_ffn = vec![T::zero(); h];
        let mut r_act = vec![T::zero(); f];
        let mut r_h = vec![T::zero(); h];
        let mut r_mixed = vec![T::zero(); h];
        let mut r_gated = vec![T::zero(); nh * dv];
        let mut norm_map = DMatrix::<T>::zeros(dv, dv);
        let (mut to_gate, mut to_signal) = (vec![T::zero(); dv], vec![T::zero(); dv]);
        let (mut q_scaled, mut products) = (vec![T::zero(); dk], vec![T::zero(); dk]);
        let (mut weights, mut r_product) = (vec![T::zero(); dk], vec![T::zero(); dk]);
        let (mut r_to_q, mut r_to_k) = (vec![T::zero(); dk], vec![T::zero(); dk]);
        let mut f_sum = Vec::new();
        let (mut term_weights, mut messages) = (Vec::new(), Vec::new());
        for slot in context.explained() {
            let len = packing.length(slot);
            let mut unexplained = T::zero();
            // Per position: the feed-forward and its residual, the mLSTM's
            // residual, out_proj, the output gate (a constant) and the
            // multi-head LayerNorm (its scale a constant).
            for t in 0..len {
                let col = packing.column(t, slot);
                r_ffn.fill(T::zero());
                unexplained += split_residual(
                    residual_rule,
                    [column(&trace.mid, col), column(&trace.ffn_out, col)],
                    column(&trace.output, col),
                    column(relevance_out, col),
                    [column_mut(&mut r_mid, col), &mut r_ffn],
                    &mut context.workspace,
                );
                r_act.fill(T::zero());
                unexplained += self.down.redistribute(
                    down_rule,
                    column(&trace.act, col),
                    column(&trace.ffn_out, col),
                    &r_ffn,
                    &mut r_act,
                    &mut context.workspace,
                );
                // SiLU(gate) is the gate: up takes all of the relevance.
                r_h.fill(T::zero());
                unexplained += self.up.redistribute(
                    up_rule,
                    column(&trace.ffn_normed, col),
                    column(&trace.up, col),
                    &r_act,
                    &mut r_h,
                    &mut context.workspace,
                );
                // The norm's scale is a constant: relevance passes to y unchanged.
                add_into(column_mut(&mut r_mid, col), &r_h);
                r_mixed.fill(T::zero());
                unexplained += split_residual(
                    residual_rule,
                    [column(x, col), column(&trace.mixed, col)],
                    column(&trace.mid, col),
                    column(&r_mid, col),
                    [column_mut(relevance_in, col), &mut r_mixed],
                    &mut context.workspace,
                );
                r_gated.fill(T::zero());
                unexplained += self.out_proj.redistribute(
                    out_rule,
                    column(&trace.gated, col),
                    column(&trace.mixed, col),
                    &r_mixed,
                    &mut r_gated,
                    &mut context.workspace,
                );
                // σ(o) is a constant gate: u takes all; then per head
                // u = diag(w) ρ' (I - 1 1ᵀ / dv) c, a linear step.
                for j in 0..nh {
                    let rho = trace.head_scale[(j, col)];
                    for r in 0..dv {
                        let w = self.head_norm_weight[j * dv + r] * rho;
                        for c in 0..dv {
                            let centring = if r == c { T::one() - inv_width } else { -inv_width };
                            norm_map[(r, c)] = w * centring;
                        }
                    }
                    let part = j * dv..(j + 1) * dv;
                    let groups = [InputGroup {
                        input: &column(&trace.cell, col)[part.clone()],
                        connection: Connection::Dense(norm_map.as_view()),
                    }];
                    let step = LinearStep {
                        groups: &groups,
                        bias: None,
                        output: &column(&trace.head_normed, col)[part.clone()],
                    };
                    let target = &mut column_mut(&mut r_cell, col)[part.clone()];
                    target.fill(T::zero());
                    unexplained += norm_rule.redistribute(&step, &r_gated[part], &mut [target], &mut context.workspace);
                }
            }
            // The cell: c_t = Σ_s A_ts v_s per head, A_ts the gates' decay
            // times q̂_t·k_s over the (constant) denominator.
            for j in 0..nh {
                f_sum.clear();
                let mut running = T::zero();
                for t in 0..len {
                    running += log_sigmoid(trace.f_pre[(j, packing.column(t, slot))]);
                    f_sum.push(running);
                }
                for t in 0..len {
                    let col_t = packing.column(t, slot);
                    let (keys, values) = (j * dk..(j + 1) * dk, j * dv..(j + 1) * dv);
                    for (qs, &qv) in q_scaled.iter_mut().zip(&column(&trace.q, col_t)[keys.clone()]) {
                        *qs = qv * query_scale;
                    }
                    term_weights.clear();
                    for s in 0..=t {
                        let col_s = packing.column(s, slot);
                        let qk = q_scaled
                            .iter()
                            .zip(&column(&trace.k, col_s)[keys.clone()])
                            .fold(T::zero(), |acc, (&a, &b)| acc + a * b);
                        let weight = qk * Self::decay(trace, j, (col_t, col_s), (f_sum[t], f_sum[s]));
                        term_weights.extend(std::iter::repeat_n(weight, dv));
                    }
                    messages.clear();
                    messages.resize((t + 1) * dv, T::zero());
                    let groups: Vec<InputGroup<'_, T>> = (0..=t)
                        .map(|s| InputGroup {
                            input: &column(&trace.v, packing.column(s, slot))[values.clone()],
                            connection: Connection::Diagonal(&term_weights[s * dv..(s + 1) * dv]),
                        })
                        .collect();
                    let step = LinearStep {
                        groups: &groups,
                        bias: None,
                        output: &column(&trace.cell, col_t)[values.clone()],
                    };
                    let mut rows: Vec<&mut [T]> = messages.chunks_exact_mut(dv).collect();
                    unexplained += sum_rule.redistribute(
                        &step,
                        &column(&r_cell, col_t)[values.clone()],
                        &mut rows,
                        &mut context.workspace,
                    );
                    // Each term A_ts ⊙ v_s: the product rule splits it.
                    for s in 0..=t {
                        let col_s = packing.column(s, slot);
                        let signal = &column(&trace.v, col_s)[values.clone()];
                        product_rule.split(
                            &term_weights[s * dv..(s + 1) * dv],
                            signal,
                            &messages[s * dv..(s + 1) * dv],
                            &mut to_gate,
                            &mut to_signal,
                        );
                        add_into(&mut column_mut(&mut r_v, col_s)[values.clone()], &to_signal);
                        if !product_rule.gate_receives_relevance() {
                            continue;
                        }
                        // A_ts = Σ_a (decay) q̂_a k_a: a sum of products of
                        // two signals, each split by the same rule.
                        let r_weight = to_gate.iter().fold(T::zero(), |acc, &r| acc + r);
                        let decay = Self::decay(trace, j, (col_t, col_s), (f_sum[t], f_sum[s]));
                        let key = &column(&trace.k, col_s)[keys.clone()];
                        for a in 0..dk {
                            products[a] = q_scaled[a] * key[a];
                        }
                        weights.fill(decay);
                        let weight = [term_weights[s * dv]];
                        let groups = [InputGroup {
                            input: &products,
                            connection: Connection::Dense(DMatrixView::from_slice(&weights, 1, dk)),
                        }];
                        let step = LinearStep {
                            groups: &groups,
                            bias: None,
                            output: &weight,
                        };
                        r_product.fill(T::zero());
                        unexplained +=
                            sum_rule.redistribute(&step, &[r_weight], &mut [&mut r_product], &mut context.workspace);
                        product_rule.split(&q_scaled, key, &r_product, &mut r_to_q, &mut r_to_k);
                        add_into(&mut column_mut(&mut r_q, col_t)[keys.clone()], &r_to_q);
                        add_into(&mut column_mut(&mut r_k, col_s)[keys.clone()], &r_to_k);
                    }
                }
            }
            // q, k and v back to h, and through the norm (its scale a constant).
            for t in 0..len {
                let col = packing.column(t, slot);
                r_h.fill(T::zero());
                for (linear, rule, out, r) in [
                    (&self.q, q_rule, &trace.q, &r_q),
                    (&self.k, k_rule, &trace.k, &r_k),
                    (&self.v, v_rule, &trace.v, &r_v),
                ] {
                    if column(r, col).iter().all(|&v| v == T::zero()) {
                        continue;
                    }
                    unexplained += linear.redistribute(
                        rule,
                        column(&trace.normed, col),
                        column(out, col),
                        column(r, col),
                        &mut r_h,
                        &mut context.workspace,
                    );
                }
                add_into(column_mut(relevance_in, col), &r_h);
            }
            context.leftovers.unexplained[slot] += unexplained;
        }
    }

    fn gradient(
        &self,
        packing: &Packing,
        trace: &XlstmTrace<T>,
        x: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let (n, nh, dk, dv) = (x.ncols(), self.heads, self.key_width(), self.value_width());
        let query_scale = T::one() / T::of_f64(dk as f64).sqrt();
        // The feed-forward's residual, then the feed-forward into y.
        let mut g_mid = grad_out.clone();
        let mut g_act = DMatrix::zeros(self.ffn_width(), n);
        g_act.gemm_tr(T::one(), &self.down.weight, grad_out, T::zero());
        let g_up = g_act.zip_map(&trace.gate, |g, z| g * silu(z));
        let mut g_gate = g_act.component_mul(&trace.up);
        for (g, &z) in g_gate.iter_mut().zip(trace.gate.iter()) {
            let s = sigmoid(z);
            *g *= s * (T::one() + z * (T::one() - s));
        }
        let mut g_ffn_normed = DMatrix::zeros(self.hidden(), n);
        g_ffn_normed.gemm_tr(T::one(), &self.up.weight, &g_up, T::zero());
        g_ffn_normed.gemm_tr(T::one(), &self.up_gate.weight, &g_gate, T::one());
        self.norm_ffn
            .add_gradient(&trace.mid, &trace.ffn_scale, &g_ffn_normed, &mut g_mid);
        // The mLSTM's residual, out_proj, the output gate.
        *grad_in += &g_mid;
        let mut g_gated = DMatrix::zeros(self.v.weight.nrows(), n);
        g_gated.gemm_tr(T::one(), &self.out_proj.weight, &g_mid, T::zero());
        let g_o = g_gated.zip_zip_map(&trace.head_normed, &trace.o, |g, u, o| {
            let s = sigmoid(o);
            g * u * s * (T::one() - s)
        });
        let g_head_normed = g_gated.zip_map(&trace.o, |g, o| g * sigmoid(o));
        // The LayerNorm per head: g_c = ρ' (g' - mean(g') - ĉ mean(g' ĉ)),
        // g' = w ⊙ g_u, ĉ = u / w the normalised values.
        let mut g_cell = DMatrix::zeros(nh * dv, n);
        let width = T::of_f64(dv as f64);
        for col in 0..n {
            for j in 0..nh {
                let rho = trace.head_scale[(j, col)];
                let part = &column(&trace.cell, col)[j * dv..(j + 1) * dv];
                let mean = part.iter().fold(T::zero(), |acc, &c| acc + c) / width;
                let (mut mean_g, mut mean_gc) = (T::zero(), T::zero());
                for (d, &c) in part.iter().enumerate() {
                    let i = j * dv + d;
                    let g = g_head_normed[(i, col)] * self.head_norm_weight[i];
                    mean_g += g / width;
                    mean_gc += g * (c - mean) * rho / width;
                }
                for (d, &c) in part.iter().enumerate() {
                    let i = j * dv + d;
                    let g = g_head_normed[(i, col)] * self.head_norm_weight[i];
                    g_cell[(i, col)] = rho * (g - mean_g - (c - mean) * rho * mean_gc);
                }
            }
        }
        // The recurrence backwards, per sequence and head.
        let mut g_q = DMatrix::zeros(nh * dk, n);
        let mut g_k = DMatrix::zeros(nh * dk, n);
        let mut g_v = DMatrix::zeros(nh * dv, n);
        let mut g_i = DMatrix::zeros(nh, n);
        let mut g_f = DMatrix::zeros(nh, n);
        let mut g_memory = vec![T::zero(); dk * dv];
        let mut g_norm = vec![T::zero(); dk];
        for slot in 0..packing.sequences() {
            for j in 0..nh {
                g_memory.fill(T::zero());
                g_norm.fill(T::zero());
                let mut g_m_carry = T::zero();
                for t in (0..packing.length(slot)).rev() {
                    let col = packing.column(t, slot);
                    let prev = (t > 0).then(|| packing.column(t - 1, slot));
                    let (m_new, den, dot) = (trace.m[(j, col)], trace.den[(j, col)], trace.dot[(j, col)]);
                    let m_prev = prev.map_or(T::zero(), |p| trace.m[(j, p)]);
                    let f_pre = trace.f_pre[(j, col)];
                    let i_pre = trace.i_pre[(j, col)];
                    let log_f = log_sigmoid(f_pre);
                    let f_act = (log_f + m_prev - m_new).exp();
                    let i_act = (i_pre - m_new).exp();
                    // c = num / den.
                    let mut g_den = T::zero();
                    for d in 0..dv {
                        let i = j * dv + d;
                        g_den -= g_cell[(i, col)] * trace.cell[(i, col)] / den;
                    }
                    let mut g_m = g_m_carry;
                    let mut g_dot = T::zero();
                    if dot.abs() >= (-m_new).exp() {
                        g_dot = g_den * dot.sign_or_one();
                    } else {
                        g_m -= g_den * (-m_new).exp();
                    }
                    for a in 0..dk {
                        let qa = trace.q[(j * dk + a, col)] * query_scale;
                        let mut g_qa = g_dot * trace.normaliser[(j * dk + a, col)];
                        for d in 0..dv {
                            let g_num = g_cell[(j * dv + d, col)] / den;
                            g_qa += trace.memory[((j * dk + a) * dv + d, col)] * g_num;
                            g_memory[a * dv + d] += qa * g_num;
                        }
                        g_q[(j * dk + a, col)] = g_qa * query_scale;
                        g_norm[a] += g_dot * qa;
                    }
                    // C_t = f' C_{t-1} + i' k vᵀ, n_t = f' n_{t-1} + i' k.
                    let (mut g_f_act, mut g_i_act) = (T::zero(), T::zero());
                    for a in 0..dk {
                        let key = trace.k[(j * dk + a, col)];
                        let n_before = prev.map_or(T::zero(), |p| trace.normaliser[(j * dk + a, p)]);
                        g_f_act += g_norm[a] * n_before;
                        g_i_act += g_norm[a] * key;
                        let mut g_key = g_norm[a];
                        for d in 0..dv {
                            let g_c = g_memory[a * dv + d];
                            let value = trace.v[(j * dv + d, col)];
                            let c_before = prev.map_or(T::zero(), |p| trace.memory[((j * dk + a) * dv + d, p)]);
                            g_f_act += g_c * c_before;
                            g_i_act += g_c * key * value;
                            g_key += g_c * value;
                            g_v[(j * dv + d, col)] += i_act * g_c * key;
                            g_memory[a * dv + d] = f_act * g_c;
                        }
                        g_k[(j * dk + a, col)] = i_act * g_key;
                        g_norm[a] *= f_act;
                    }
                    // f' = exp(log σ(f̃) + m_{t-1} - m_t), i' = exp(ĩ - m_t).
                    let mut g_log_f = g_f_act * f_act;
                    g_m_carry = g_f_act * f_act;
                    g_m -= g_f_act * f_act + g_i_act * i_act;
                    let mut g_ipre = g_i_act * i_act;
                    // m_t = max(log σ(f̃) + m_{t-1}, ĩ).
                    if log_f + m_prev >= i_pre {
                        g_log_f += g_m;
                        g_m_carry += g_m;
                    } else {
                        g_ipre += g_m;
                    }
                    g_f[(j, col)] = g_log_f * (T::one() - sigmoid(f_pre));
                    g_i[(j, col)] = g_ipre;
                }
            }
        }
        // The gate caps, then every projection back onto h, and the norm.
        if let Some(cap) = self.gate_cap {
            g_i.zip_apply(&trace.i_raw, |g, z| *g *= soft_cap_slope(z, cap));
            g_f.zip_apply(&trace.f_raw, |g, z| *g *= soft_cap_slope(z, cap));
        }
        let mut g_h = DMatrix::zeros(self.hidden(), n);
        for (linear, g) in [
            (&self.q, &g_q),
            (&self.k, &g_k),
            (&self.v, &g_v),
            (&self.ogate, &g_o),
            (&self.igate, &g_i),
            (&self.fgate, &g_f),
        ] {
            g_h.gemm_tr(T::one(), &linear.weight, g, T::one());
        }
        self.norm_mlstm.add_gradient(x, &trace.scale, &g_h, grad_in);
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        let site = Self::site(0, Operation::Projection("v"));
        let product = rules.gate_rule_at(&Self::site(0, Operation::Product("qk")));
        format!(
            "{} (xLSTM: the gates, the stabiliser, the denominator and the norms' scales constant; \
             q.k weights x v by {}; up takes the feed-forward's relevance)",
            rules.rule_at(&site).name(),
            product.name()
        )
    }

    fn sites(&self) -> Vec<Site> {
        let mut sites: Vec<Site> = ["q", "k", "v", "multihead_norm", "out_proj", "proj_up", "proj_down"]
            .into_iter()
            .map(|name| Self::site(0, Operation::Projection(name)))
            .collect();
        sites.push(Self::site(0, Operation::Accumulation));
        sites.push(Self::site(0, Operation::Product("qk")));
        sites.push(Site::new(RESIDUAL, Operation::Accumulation));
        sites
    }
}
