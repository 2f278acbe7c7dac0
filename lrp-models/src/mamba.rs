//! Mamba (v1) language models: the block of Gu and Dao (2023) as a
//! [`Stage`] of the engine, the RMSNorm around it, and the whole model as
//! an ordinary chain `token ids -> the embedding -> Mamba block x L -> the
//! final RMSNorm -> the per-step head` ([`mamba_model`]), read from the
//! tensors of a Hugging Face `transformers` `MambaForCausalLM`.
//!
//! ## The block, per position `t` of a sequence (`H` model width, `Di`
//! inner width, `S` state size, `R` time-step rank, `K` kernel)
//! ```text
//! h_t   = w_norm ⊙ x_t · ρ_t,           ρ_t = (mean(x_t²) + eps)^(-1/2)
//! [v; z] = W_in h_t (+ b_in)                                 [2 Di]
//! c_t   = Σ_j w_conv[:, j] ⊙ v_{t-K+1+j} (+ b_conv)          causal, depthwise
//! u_t   = c_t ⊙ σ(c_t)                                       SiLU
//! [δ; B_t; C_t] = W_x u_t                                    [R + 2S]
//! Δ_t   = softplus(W_dt δ + b_dt)                            [Di]
//! s_t   = exp(Δ_t ⊗ A) ⊙ s_{t-1} + (Δ_t ⊗ B_t) ⊙ u_t          [Di, S], A = -exp(A_log)
//! y_t   = s_t C_t + D ⊙ u_t                                  [Di]
//! o_t   = x_t + W_out (y_t ⊙ SiLU(z_t)) (+ b_out)             [H]
//! ```
//!
//! ## Rules (MambaLRP, Jafari et al. 2024; `docs/rules.md`, "Mamba")
//! SiLU's σ, the RMSNorm scale `ρ`, and `Δ`, `Ā = exp(Δ ⊗ A)`,
//! `B̄ = Δ ⊗ B` and `C` are constants, so that the block is linear in
//! `x` and `v` along the relevance path; relevance passes SiLU and the
//! norm unchanged, the scan's two linear steps (the state update and the
//! read-out) and the projections, the convolution and the residual sum
//! take the composite's linear rules, and the output gate `y ⊙ SiLU(z)`
//! gives half of its relevance to `y` and half to `z`.

use lrp_core::{Connection, Float, InputGroup, LinearStep};
use lrp_layers::{Composite, Direction, Operation, Site};
use nalgebra::{DMatrix, DMatrixView, DVector};

use crate::activation::sigmoid;
use crate::packing::Packing;
use crate::stage::{Backward, Port, Stage};
use crate::tensors::{check_against_manifest, Manifest, Ordered, Tensors};
use crate::{Embedding, Error, Linear, Model, StepHead};

/// The residual sums of every Mamba block (`--rules` key `residual`).
pub const RESIDUAL: &str = "residual";

/// The largest width, inner width, state size, kernel, rank, vocabulary
/// and layer count a Mamba config may give (each), so that a config
/// cannot ask for unbounded memory before its weights are read.
const MAX_SIZE: usize = 1 << 20;
/// The most layers a Mamba config may give.
const MAX_LAYERS: usize = 4096;

/// The shape of a Mamba language model: the keys of a `transformers`
/// `MambaConfig` that the computation depends on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MambaConfig {
    /// `V`, rows of the embedding and of the head.
    pub vocab_size: usize,
    /// `H`, the model width.
    pub hidden_size: usize,
    /// `Di`, the inner width (`expand * H`).
    pub intermediate_size: usize,
    /// `S`, the state size per inner unit.
    pub state_size: usize,
    /// `L`, the number of blocks.
    pub num_hidden_layers: usize,
    /// `K`, the convolution's kernel size.
    pub conv_kernel: usize,
    /// `R`, the rank of the time-step projection.
    pub time_step_rank: usize,
    /// The RMSNorms' `eps`.
    pub layer_norm_epsilon: f64,
    /// Biases on `in_proj` and `out_proj`.
    pub use_bias: bool,
    /// A bias on the convolution.
    pub use_conv_bias: bool,
    /// The head is the embedding (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
}

impl MambaConfig {
    /// Checks every size (positive, within limits) and `eps` (finite,
    /// `>= 0`): one error naming the first key that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let sizes = [
            ("vocab_size", self.vocab_size, MAX_SIZE),
            ("hidden_size", self.hidden_size, MAX_SIZE),
            ("intermediate_size", self.intermediate_size, MAX_SIZE),
            ("state_size", self.state_size, MAX_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("conv_kernel", self.conv_kernel, MAX_SIZE),
            ("time_step_rank", self.time_step_rank, MAX_SIZE),
        ];
        for (key, value, limit) in sizes {
            if value == 0 || value > limit {
                return Err(Error::Config {
                    key: key.into(),
                    message: format!("{value} is not between 1 and {limit}"),
                });
            }
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon >= 0.0) {
            return Err(Error::Config {
                key: "layer_norm_epsilon".into(),
                message: format!("{} is not a finite number >= 0", self.layer_norm_epsilon),
            });
        }
        Ok(())
    }

    /// Every tensor of the model as `transformers` names it in
    /// `model.safetensors`, with its shape, in the order the model is
    /// built from them.
    pub fn tensor_manifest(&self) -> Manifest {
        let (v, h, di, s, r, k) = (
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.state_size,
            self.time_step_rank,
            self.conv_kernel,
        );
        let mut names: Manifest = vec![("backbone.embeddings.weight".into(), vec![v, h])];
        for layer in 0..self.num_hidden_layers {
            let p = format!("backbone.layers.{layer}.");
            let m = format!("{p}mixer.");
            let mut add = |name: String, shape: Vec<usize>| names.push((name, shape));
            add(format!("{p}norm.weight"), vec![h]);
            add(format!("{m}in_proj.weight"), vec![2 * di, h]);
            if self.use_bias {
                add(format!("{m}in_proj.bias"), vec![2 * di]);
            }
            add(format!("{m}conv1d.weight"), vec![di, 1, k]);
            if self.use_conv_bias {
                add(format!("{m}conv1d.bias"), vec![di]);
            }
            add(format!("{m}x_proj.weight"), vec![r + 2 * s, di]);
            add(format!("{m}dt_proj.weight"), vec![di, r]);
            add(format!("{m}dt_proj.bias"), vec![di]);
            add(format!("{m}A_log"), vec![di, s]);
            add(format!("{m}D"), vec![di]);
            add(format!("{m}out_proj.weight"), vec![h, di]);
            if self.use_bias {
                add(format!("{m}out_proj.bias"), vec![h]);
            }
        }
        names.push(("backbone.norm_f.weight".into(), vec![h]));
        if !self.tie_word_embeddings {
            names.push(("lm_head.weight".into(), vec![v, h]));
        }
        names
    }
}

/// A Mamba language model from its config and its tensors (named as
/// [`MambaConfig::tensor_manifest`] says; every name, shape and value
/// checked first): `token ids -> the embedding -> Mamba block x L -> the
/// final RMSNorm -> the per-step head`, whose outputs at position `t` are
/// the next-token logits after `t`.
///
/// ```
/// use lrp_layers::Composite;
/// use lrp_models::mamba::{mamba_model, MambaConfig};
/// use lrp_models::{Tensor, Tensors};
///
/// let config = MambaConfig {
///     vocab_size: 7, hidden_size: 3, intermediate_size: 6, state_size: 2, num_hidden_layers: 2,
///     conv_kernel: 3, time_step_rank: 1, layer_norm_epsilon: 1e-5,
///     use_bias: false, use_conv_bias: true, tie_word_embeddings: true,
/// };
/// let mut tensors = Tensors::new();
/// for (k, (name, shape)) in config.tensor_manifest().into_iter().enumerate() {
///     let n: usize = shape.iter().product();
///     let values = (0..n).map(|i| ((i * 7 + k * 3) % 11) as f64 / 11.0 - 0.4).collect();
///     tensors.insert(name, Tensor { shape, values });
/// }
/// let model = mamba_model::<f64>(&config, tensors)?;
/// let trace = model.forward(model.embed(&[3, 1, 4])?)?; // the logits after "3 1 4"
/// assert_eq!(trace.position(), Some(2));
/// let target = trace.predicted();
/// // Bias factor 1, eps 0: the relevance of the tokens is the logit.
/// let e = model.lrp(&trace, target, &Composite::epsilon(0.0, 1.0)?)?;
/// let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
/// assert!((total - trace.scores()[target]).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn mamba_model<T: Float>(config: &MambaConfig, tensors: Tensors) -> Result<Model<T>, Error> {
    config.validate()?;
    let mut ordered = check_against_manifest(&config.tensor_manifest(), tensors)?;
    let embedding = ordered.matrix::<T>()?; // [V, H]
    let eps = T::of_f64(config.layer_norm_epsilon);
    let mut chain = Model::builder_with_embedding(Embedding::new(embedding.transpose())?);
    for _ in 0..config.num_hidden_layers {
        chain = chain.stage(MambaBlock::from_ordered(config, &mut ordered, eps)?);
    }
    let norm_f = RmsNorm::new(ordered.vector::<T>()?, eps);
    let head = if config.tie_word_embeddings {
        embedding
    } else {
        ordered.matrix::<T>()?
    };
    chain
        .stage(norm_f)
        .stage(StepHead::new(Linear::new(head, None)?))
        .build()
}

/// `y = w ⊙ x · ρ(x)`, `ρ(x) = (mean(x²) + eps)^(-1/2)`, at every position
/// `[H, N] -> [H, N]`. LRP holds `ρ` constant (MambaLRP): `y` is `x`
/// times a diagonal, and each `y_i` gives its relevance to `x_i`.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsNorm<T: Float> {
    weight: DVector<T>,
    eps: T,
}

/// The forward pass of an [`RmsNorm`].
#[derive(Debug)]
pub struct RmsNormTrace<T: Float> {
    /// `ρ` per column `[N]`.
    scale: Vec<T>,
    /// `[H, N]`.
    output: DMatrix<T>,
}

impl<T: Float> RmsNorm<T> {
    /// The norm of scale `weight` `[H]` and stabiliser `eps`.
    pub fn new(weight: DVector<T>, eps: T) -> Self {
        Self { weight, eps }
    }

    /// `ρ(x)` of one column.
    fn scale(&self, x: &[T]) -> T {
        let mean = x.iter().fold(T::zero(), |acc, &v| acc + v * v) / T::of_f64(x.len() as f64);
        T::one() / (mean + self.eps).sqrt()
    }

    /// Writes the norm of every column of `x` into `out`; returns `ρ` per column.
    pub(crate) fn apply(&self, x: &DMatrix<T>, out: &mut DMatrix<T>) -> Vec<T> {
        let mut scales = Vec::with_capacity(x.ncols());
        for (col, (xc, mut oc)) in x.column_iter().zip(out.column_iter_mut()).enumerate() {
            let _ = col;
            let rho = self.scale(xc.as_slice());
            for ((o, &v), &w) in oc.iter_mut().zip(xc.iter()).zip(self.weight.iter()) {
                *o = w * (v * rho);
            }
            scales.push(rho);
        }
        scales
    }

    /// Adds the gradient of the norm at `x` (`ρ` per column) for `grad_out` into `grad_in`.
    pub(crate) fn add_gradient(&self, x: &DMatrix<T>, scales: &[T], grad_out: &DMatrix<T>, grad_in: &mut DMatrix<T>) {
        let n = T::of_f64(self.weight.len() as f64);
        for col in 0..x.ncols() {
            let (xc, gc) = (x.column(col), grad_out.column(col));
            let rho = scales[col];
            // d/dx_i: w_i g_i ρ - x_i ρ³ / n · Σ_k x_k w_k g_k.
            let dot = (0..xc.len()).fold(T::zero(), |acc, k| acc + xc[k] * self.weight[k] * gc[k]);
            let common = rho * rho * rho * dot / n;
            for i in 0..xc.len() {
                grad_in[(i, col)] += self.weight[i] * gc[i] * rho - xc[i] * common;
            }
        }
    }
}

impl<T: Float> Stage<T> for RmsNorm<T> {
    type Trace = RmsNormTrace<T>;

    fn name(&self) -> String {
        "the final RMSNorm".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.weight.len())
    }

    fn output(&self) -> Port {
        Port::positions(self.weight.len())
    }

    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> RmsNormTrace<T> {
        let mut output = DMatrix::zeros(input.nrows(), input.ncols());
        let scale = self.apply(input, &mut output);
        RmsNormTrace { scale, output }
    }

    fn output_of<'t>(&self, trace: &'t RmsNormTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    /// `ρ` constant: each output's relevance goes to its own input.
    fn lrp(
        &self,
        _trace: &RmsNormTrace<T>,
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
        trace: &RmsNormTrace<T>,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        self.add_gradient(input, &trace.scale, grad_out, grad_in);
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (the scale is a constant; relevance passes unchanged)".into()
    }
}

/// One Mamba block with its pre-norm and its residual sum, at every
/// position of a packed batch, `[H, N] -> [H, N]` (module docs).
///
/// ## Parameters
/// - `in_proj`: `[2 Di, H]` (+ bias `[2 Di]`); `conv`: taps `[Di, K]`
///   (+ bias `[Di]`); `x_proj`: `[R + 2S, Di]`; `dt_proj`: `[Di, R]` and
///   bias `[Di]`; `a = -exp(A_log)`: `[Di, S]`; `d`: `[Di]`; `out_proj`:
///   `[H, Di]` (+ bias `[H]`)
#[derive(Debug, Clone, PartialEq)]
pub struct MambaBlock<T: Float> {
    norm: RmsNorm<T>,
    in_proj: Linear<T>,
    /// Column `j` is tap `j` of every channel: `c_t = Σ_j taps[:, j] ⊙ v_{t-K+1+j}`.
    taps: DMatrix<T>,
    conv_bias: Option<DVector<T>>,
    x_proj: DMatrix<T>,
    dt_proj: DMatrix<T>,
    dt_bias: DVector<T>,
    /// `A = -exp(A_log)`, `[Di, S]`.
    a: DMatrix<T>,
    d: DVector<T>,
    out_proj: Linear<T>,
}

/// The forward pass of a [`MambaBlock`] over a packed batch (`N` columns).
#[derive(Debug)]
pub struct MambaTrace<T: Float> {
    /// The norm's `ρ` per column.
    scale: Vec<T>,
    /// `h` `[H, N]`.
    normed: DMatrix<T>,
    /// `[v; z]` `[2 Di, N]`.
    xz: DMatrix<T>,
    /// The convolution's outputs `c` `[Di, N]`.
    conv: DMatrix<T>,
    /// `u = SiLU(c)` `[Di, N]`.
    u: DMatrix<T>,
    /// `[δ; B; C]` `[R + 2S, N]`.
    projected: DMatrix<T>,
    /// `W_dt δ + b_dt` `[Di, N]`.
    dt_raw: DMatrix<T>,
    /// `Δ` `[Di, N]`.
    dt: DMatrix<T>,
    /// The states `s_t` `[Di S, N]`, unit-major (`d S + s`).
    states: DMatrix<T>,
    /// `y` `[Di, N]`.
    y: DMatrix<T>,
    /// `SiLU(z)` `[Di, N]`.
    gate: DMatrix<T>,
    /// `y ⊙ SiLU(z)` `[Di, N]`.
    gated: DMatrix<T>,
    /// `W_out (y ⊙ SiLU(z)) (+ b)` `[H, N]`.
    mixed: DMatrix<T>,
    /// `x + mixed` `[H, N]`.
    output: DMatrix<T>,
}

/// Column `c` of `m`, as a slice.
pub(crate) fn column<T: Float>(m: &DMatrix<T>, c: usize) -> &[T] {
    let rows = m.nrows();
    &m.as_slice()[c * rows..(c + 1) * rows]
}

/// Column `c` of `m`, as a mutable slice.
pub(crate) fn column_mut<T: Float>(m: &mut DMatrix<T>, c: usize) -> &mut [T] {
    let rows = m.nrows();
    &mut m.as_mut_slice()[c * rows..(c + 1) * rows]
}

/// LRP through the residual sum `out = x + branch` of one column under
/// `rule` (site `residual`): *adds* `x`'s share into `to[0]` and the
/// branch's into `to[1]`; returns the unexplained relevance.
pub(crate) fn split_residual<T: Float>(
    rule: &dyn lrp_core::LinearRule<T>,
    [x, branch]: [&[T]; 2],
    out: &[T],
    relevance_out: &[T],
    to: [&mut [T]; 2],
    workspace: &mut lrp_core::Workspace<T>,
) -> T {
    let groups = [
        InputGroup {
            input: x,
            connection: Connection::Identity,
        },
        InputGroup {
            input: branch,
            connection: Connection::Identity,
        },
    ];
    let step = LinearStep {
        groups: &groups,
        bias: None,
        output: out,
    };
    let [to_x, to_branch] = to;
    rule.redistribute(&step, relevance_out, &mut [to_x, to_branch], workspace)
}

/// `target += values`, element by element.
pub(crate) fn add_into<T: Float>(target: &mut [T], values: &[T]) {
    for (t, &v) in target.iter_mut().zip(values) {
        *t += v;
    }
}

/// `x σ(x)`.
pub(crate) fn silu<T: Float>(x: T) -> T {
    x * sigmoid(x)
}

/// `ln(1 + e^x)`, linear above 20 as PyTorch's.
fn softplus<T: Float>(x: T) -> T {
    if x > T::of_f64(20.0) {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// `out = W x (+ b)` for every column.
pub(crate) fn project<T: Float>(linear: &Linear<T>, x: &DMatrix<T>) -> DMatrix<T> {
    let mut out = DMatrix::zeros(linear.weight.nrows(), x.ncols());
    out.gemm(T::one(), &linear.weight, x, T::zero());
    if let Some(b) = &linear.bias {
        for mut col in out.column_iter_mut() {
            col += b;
        }
    }
    out
}

impl<T: Float> MambaBlock<T> {
    /// The block's tensors in manifest order (see [`MambaConfig::tensor_manifest`]).
    fn from_ordered(config: &MambaConfig, tensors: &mut Ordered, eps: T) -> Result<Self, Error> {
        let norm = RmsNorm::new(tensors.vector()?, eps);
        let in_weight = tensors.matrix()?;
        let in_bias = if config.use_bias { Some(tensors.vector()?) } else { None };
        // Stored [Di, 1, K]: row-major, so row d holds channel d's taps.
        let conv = tensors.raw()?;
        let (di, k) = (config.intermediate_size, config.conv_kernel);
        let taps = DMatrix::from_row_iterator(di, k, conv.values.into_iter().map(T::of_f64));
        let conv_bias = if config.use_conv_bias {
            Some(tensors.vector()?)
        } else {
            None
        };
        let x_proj = tensors.matrix()?;
        let dt_proj = tensors.matrix()?;
        let dt_bias = tensors.vector()?;
        let a = tensors.matrix::<T>()?.map(|v| -v.exp());
        let d = tensors.vector()?;
        let out_weight = tensors.matrix()?;
        let out_bias = if config.use_bias { Some(tensors.vector()?) } else { None };
        Ok(Self {
            norm,
            in_proj: Linear::new(in_weight, in_bias)?,
            taps,
            conv_bias,
            x_proj,
            dt_proj,
            dt_bias,
            a,
            d,
            out_proj: Linear::new(out_weight, out_bias)?,
        })
    }

    fn hidden(&self) -> usize {
        self.in_proj.weight.ncols()
    }

    fn inner(&self) -> usize {
        self.a.nrows()
    }

    fn state(&self) -> usize {
        self.a.ncols()
    }

    fn rank(&self) -> usize {
        self.dt_proj.ncols()
    }

    fn kernel(&self) -> usize {
        self.taps.ncols()
    }

    /// The columns `(t', j)` that feed the convolution's output at step `t`
    /// of `slot`: input step `t' = t - K + 1 + j >= 0` through tap `j`.
    fn conv_inputs<'p>(
        &self,
        packing: &'p Packing,
        t: usize,
        slot: usize,
    ) -> impl Iterator<Item = (usize, usize)> + 'p {
        let k = self.kernel();
        (0..k).filter_map(move |j| {
            let back = k - 1 - j;
            (t >= back).then(|| (packing.column(t - back, slot), j))
        })
    }

    /// The sites of the block's linear steps, for recurrent layer `layer`.
    fn site(layer: usize, operation: Operation) -> Site {
        Site::encoder(layer, Direction::Forward, operation)
    }
}

/// `Ā = exp(Δ_d A_d)` and `B̄ = Δ_d B` of unit `d` of one column, into
/// `abar` and `bbar` (`[S]` each).
fn discretized<T: Float>(dt: T, a_row: impl Iterator<Item = T>, b: &[T], abar: &mut [T], bbar: &mut [T]) {
    for ((ab, a), (bb, &bs)) in abar.iter_mut().zip(a_row).zip(bbar.iter_mut().zip(b)) {
        *ab = (dt * a).exp();
        *bb = dt * bs;
    }
}

impl<T: Float> Stage<T> for MambaBlock<T> {
    type Trace = MambaTrace<T>;

    fn name(&self) -> String {
        "a Mamba block".into()
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
        let (h, di, s, r) = (self.hidden(), self.inner(), self.state(), self.rank());
        4 * h + 9 * di + di * s + r + 2 * s
    }

    fn forward(&self, packing: &Packing, x: &DMatrix<T>) -> MambaTrace<T> {
        let (di, s, r, n) = (self.inner(), self.state(), self.rank(), x.ncols());
        let mut normed = DMatrix::zeros(x.nrows(), n);
        let scale = self.norm.apply(x, &mut normed);
        let xz = project(&self.in_proj, &normed);
        // The causal depthwise convolution, then SiLU.
        let mut conv = DMatrix::zeros(di, n);
        for t in 0..packing.steps() {
            for slot in 0..packing.active(t) {
                let col = packing.column(t, slot);
                for c in 0..di {
                    let mut sum = self.conv_bias.as_ref().map_or(T::zero(), |b| b[c]);
                    for (from, j) in self.conv_inputs(packing, t, slot) {
                        sum += self.taps[(c, j)] * xz[(c, from)];
                    }
                    conv[(c, col)] = sum;
                }
            }
        }
        let u = conv.map(silu);
        let mut projected = DMatrix::zeros(self.x_proj.nrows(), n);
        projected.gemm(T::one(), &self.x_proj, &u, T::zero());
        let mut dt_raw = DMatrix::zeros(di, n);
        dt_raw.gemm(T::one(), &self.dt_proj, &projected.rows(0, r), T::zero());
        for mut col in dt_raw.column_iter_mut() {
            col += &self.dt_bias;
        }
        let dt = dt_raw.map(softplus);
        // The selective scan over the packed batch: step by step, every
        // running sequence's column; nothing is allocated per step.
        let mut states = DMatrix::zeros(di * s, n);
        let mut y = DMatrix::zeros(di, n);
        for t in 0..packing.steps() {
            for slot in 0..packing.active(t) {
                let col = packing.column(t, slot);
                let prev = (t > 0).then(|| packing.column(t - 1, slot));
                for d in 0..di {
                    let (delta, ud) = (dt[(d, col)], u[(d, col)]);
                    let mut yd = T::zero();
                    for k in 0..s {
                        let abar = (delta * self.a[(d, k)]).exp();
                        let bbar = delta * projected[(r + k, col)];
                        let before = prev.map_or(T::zero(), |p| states[(d * s + k, p)]);
                        let state = abar * before + bbar * ud;
                        states[(d * s + k, col)] = state;
                        yd += state * projected[(r + s + k, col)];
                    }
                    y[(d, col)] = yd + self.d[d] * ud;
                }
            }
        }
        let gate = xz.rows(di, di).map(silu);
        let gated = y.component_mul(&gate);
        let mixed = project(&self.out_proj, &gated);
        let output = x + &mixed;
        MambaTrace {
            scale,
            normed,
            xz,
            conv,
            u,
            projected,
            dt_raw,
            dt,
            states,
            y,
            gate,
            gated,
            mixed,
            output,
        }
    }

    fn output_of<'t>(&self, trace: &'t MambaTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    fn lrp(
        &self,
        trace: &MambaTrace<T>,
        x: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let (h, di, s, r) = (self.hidden(), self.inner(), self.state(), self.rank());
        let layer = context.layer;
        let rules = context.rules;
        let residual_rule = rules.rule_at(&Site::new(RESIDUAL, Operation::Accumulation));
        let out_rule = rules.rule_at(&Self::site(layer, Operation::Projection("out_proj")));
        let readout_rule = rules.rule_at(&Self::site(layer, Operation::Projection("readout")));
        let state_rule = rules.rule_at(&Self::site(layer, Operation::Accumulation));
        let conv_rule = rules.rule_at(&Self::site(layer, Operation::Projection("conv1d")));
        let in_rule = rules.rule_at(&Self::site(layer, Operation::Projection("in_proj")));
        let packing = context.packing;
        let half = T::of_f64(0.5);
        // Buffers reused over the whole pass: per column, and the scan's.
        let n = x.ncols();
        let mut r_mixed = vec![T::zero(); h];
        let mut r_gated = vec![T::zero(); di];
        let mut r_h = vec![T::zero(); h];
        let mut r_y = DMatrix::<T>::zeros(di, n);
        let mut r_xz = DMatrix::<T>::zeros(2 * di, n);
        let mut r_u = DMatrix::<T>::zeros(di, n);
        let mut r_state = vec![T::zero(); di * s];
        let mut r_before = vec![T::zero(); di * s];
        let mut abar = vec![T::zero(); s];
        let mut bbar = vec![T::zero(); s];
        let zeros = vec![T::zero(); di * s];
        let mut conv_inputs = Vec::with_capacity(self.kernel());
        let mut conv_messages = vec![T::zero(); di * self.kernel()];
        for slot in context.explained() {
            let len = packing.length(slot);
            let mut unexplained = T::zero();
            // The residual sum, out_proj, and the gate's half-half split.
            for t in 0..len {
                let col = packing.column(t, slot);
                r_mixed.fill(T::zero());
                unexplained += split_residual(
                    residual_rule,
                    [column(x, col), column(&trace.mixed, col)],
                    column(&trace.output, col),
                    column(relevance_out, col),
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
                for (d, &rg) in r_gated.iter().enumerate() {
                    let share = rg * half;
                    r_y[(d, col)] = share;
                    // SiLU(z) passes its half to z unchanged (σ constant).
                    r_xz[(di + d, col)] = share;
                }
            }
            // The scan backwards: the read-out, then the state update.
            r_state.fill(T::zero());
            for t in (0..len).rev() {
                let col = packing.column(t, slot);
                let projected = column(&trace.projected, col);
                let (b, c) = (&projected[r..r + s], &projected[r + s..r + 2 * s]);
                let states = column(&trace.states, col);
                let before = match t {
                    0 => &zeros[..],
                    _ => column(&trace.states, packing.column(t - 1, slot)),
                };
                let (u, y, r_y) = (column(&trace.u, col), column(&trace.y, col), column(&r_y, col));
                r_before.fill(T::zero());
                for d in 0..di {
                    let unit = d * s..(d + 1) * s;
                    let mut r_ud = [T::zero()];
                    // y_d = C · s_d + D_d u_d.
                    let groups = [
                        InputGroup {
                            input: &states[unit.clone()],
                            connection: Connection::Dense(DMatrixView::from_slice(c, 1, s)),
                        },
                        InputGroup {
                            input: &u[d..d + 1],
                            connection: Connection::Dense(DMatrixView::from_slice(&self.d.as_slice()[d..d + 1], 1, 1)),
                        },
                    ];
                    let step = LinearStep {
                        groups: &groups,
                        bias: None,
                        output: &y[d..d + 1],
                    };
                    unexplained += readout_rule.redistribute(
                        &step,
                        &r_y[d..d + 1],
                        &mut [&mut r_state[unit.clone()], &mut r_ud],
                        &mut context.workspace,
                    );
                    // s_d = Ā_d ⊙ s_d(t-1) + B̄_d u_d.
                    discretized(
                        trace.dt[(d, col)],
                        self.a.row(d).iter().copied(),
                        b,
                        &mut abar,
                        &mut bbar,
                    );
                    let groups = [
                        InputGroup {
                            input: &before[unit.clone()],
                            connection: Connection::Diagonal(&abar),
                        },
                        InputGroup {
                            input: &u[d..d + 1],
                            connection: Connection::Dense(DMatrixView::from_slice(&bbar, s, 1)),
                        },
                    ];
                    let step = LinearStep {
                        groups: &groups,
                        bias: None,
                        output: &states[unit.clone()],
                    };
                    unexplained += state_rule.redistribute(
                        &step,
                        &r_state[unit.clone()],
                        &mut [&mut r_before[unit], &mut r_ud],
                        &mut context.workspace,
                    );
                    r_u[(d, col)] = r_ud[0];
                }
                std::mem::swap(&mut r_state, &mut r_before);
            }
            // What reached the zero initial state (nothing: its inputs are
            // zero), counted all the same.
            context.leftovers.initial_state[slot] += r_state.iter().fold(T::zero(), |acc, &v| acc + v);
            // SiLU after the convolution passes relevance unchanged; the
            // convolution is a linear step over up to K positions per output.
            for t in 0..len {
                let col = packing.column(t, slot);
                conv_inputs.clear();
                conv_inputs.extend(self.conv_inputs(packing, t, slot));
                let messages = &mut conv_messages[..di * conv_inputs.len()];
                messages.fill(T::zero());
                let groups: Vec<InputGroup<'_, T>> = conv_inputs
                    .iter()
                    .map(|&(from, j)| InputGroup {
                        input: &column(&trace.xz, from)[..di],
                        connection: Connection::Diagonal(column(&self.taps, j)),
                    })
                    .collect();
                let step = LinearStep {
                    groups: &groups,
                    bias: self.conv_bias.as_ref().map(|b| b.as_slice()),
                    output: column(&trace.conv, col),
                };
                let mut outs: Vec<&mut [T]> = messages.chunks_exact_mut(di).collect();
                unexplained += conv_rule.redistribute(&step, column(&r_u, col), &mut outs, &mut context.workspace);
                for (&(from, _), message) in conv_inputs.iter().zip(messages.chunks_exact(di)) {
                    add_into(&mut column_mut(&mut r_xz, from)[..di], message);
                }
            }
            // in_proj, then the norm (ρ constant: unchanged).
            for t in 0..len {
                let col = packing.column(t, slot);
                r_h.fill(T::zero());
                unexplained += self.in_proj.redistribute(
                    in_rule,
                    column(&trace.normed, col),
                    column(&trace.xz, col),
                    column(&r_xz, col),
                    &mut r_h,
                    &mut context.workspace,
                );
                add_into(column_mut(relevance_in, col), &r_h);
            }
            context.leftovers.unexplained[slot] += unexplained;
        }
    }

    fn gradient(
        &self,
        packing: &Packing,
        trace: &MambaTrace<T>,
        x: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let (di, s, r, n) = (self.inner(), self.state(), self.rank(), x.ncols());
        // The residual: straight through, and into the mixer.
        *grad_in += grad_out;
        let mut g_gated = DMatrix::zeros(di, n);
        g_gated.gemm_tr(T::one(), &self.out_proj.weight, grad_out, T::zero());
        let g_y = g_gated.component_mul(&trace.gate);
        let mut g_xz = DMatrix::zeros(2 * di, n);
        for col in 0..n {
            for d in 0..di {
                let z = trace.xz[(di + d, col)];
                let sg = sigmoid(z);
                let dsilu = sg * (T::one() + z * (T::one() - sg));
                g_xz[(di + d, col)] = g_gated[(d, col)] * trace.y[(d, col)] * dsilu;
            }
        }
        // The scan backwards, per sequence.
        let mut g_u = DMatrix::zeros(di, n);
        let mut g_proj = DMatrix::zeros(self.x_proj.nrows(), n);
        let mut g_dt = DMatrix::zeros(di, n);
        let mut g_state = vec![T::zero(); di * s];
        for slot in 0..packing.sequences() {
            g_state.iter_mut().for_each(|v| *v = T::zero());
            for t in (0..packing.length(slot)).rev() {
                let col = packing.column(t, slot);
                let prev = (t > 0).then(|| packing.column(t - 1, slot));
                for d in 0..di {
                    let gy = g_y[(d, col)];
                    let (delta, ud) = (trace.dt[(d, col)], trace.u[(d, col)]);
                    g_u[(d, col)] += gy * self.d[d];
                    for k in 0..s {
                        let i = d * s + k;
                        let state = trace.states[(i, col)];
                        let c = trace.projected[(r + s + k, col)];
                        let b = trace.projected[(r + k, col)];
                        g_proj[(r + s + k, col)] += gy * state;
                        let gs = g_state[i] + gy * c;
                        let abar = (delta * self.a[(d, k)]).exp();
                        let before = prev.map_or(T::zero(), |p| trace.states[(i, p)]);
                        // s = Ā s' + Δ B u, Ā = exp(Δ A).
                        g_dt[(d, col)] += gs * (before * abar * self.a[(d, k)] + b * ud);
                        g_proj[(r + k, col)] += gs * delta * ud;
                        g_u[(d, col)] += gs * delta * b;
                        g_state[i] = gs * abar;
                    }
                }
            }
        }
        // Δ = softplus(W_dt δ + b): into δ, the first R rows of the projection.
        let g_raw = g_dt.zip_map(
            &trace.dt_raw,
            |g, raw| {
                if raw > T::of_f64(20.0) {
                    g
                } else {
                    g * sigmoid(raw)
                }
            },
        );
        let mut g_delta = DMatrix::zeros(r, n);
        g_delta.gemm_tr(T::one(), &self.dt_proj, &g_raw, T::zero());
        let mut delta_rows = g_proj.rows_mut(0, r);
        delta_rows += &g_delta;
        g_u.gemm_tr(T::one(), &self.x_proj, &g_proj, T::one());
        // u = SiLU(c), then the convolution back onto v.
        let g_conv = g_u.zip_map(&trace.conv, |g, c| {
            let sg = sigmoid(c);
            g * sg * (T::one() + c * (T::one() - sg))
        });
        for t in 0..packing.steps() {
            for slot in 0..packing.active(t) {
                let col = packing.column(t, slot);
                for (from, j) in self.conv_inputs(packing, t, slot) {
                    for c in 0..di {
                        g_xz[(c, from)] += self.taps[(c, j)] * g_conv[(c, col)];
                    }
                }
            }
        }
        let mut g_h = DMatrix::zeros(self.hidden(), n);
        g_h.gemm_tr(T::one(), &self.in_proj.weight, &g_xz, T::zero());
        self.norm.add_gradient(x, &trace.scale, &g_h, grad_in);
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        let site = Self::site(0, Operation::Projection("in_proj"));
        format!(
            "{} (MambaLRP: SiLU's sigma, the norm's scale, Delta, A-bar, B-bar and C constant; the gate split half-half)",
            rules.rule_at(&site).name()
        )
    }

    fn sites(&self) -> Vec<Site> {
        vec![
            Self::site(0, Operation::Projection("in_proj")),
            Self::site(0, Operation::Projection("conv1d")),
            Self::site(0, Operation::Accumulation),
            Self::site(0, Operation::Projection("readout")),
            Self::site(0, Operation::Projection("out_proj")),
            Site::new(RESIDUAL, Operation::Accumulation),
        ]
    }
}
