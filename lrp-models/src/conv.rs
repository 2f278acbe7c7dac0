//! A convolutional front end: 1-D convolution over time ([`Conv1d`]), a
//! [`Relu`] and max-pooling over time ([`MaxPool1d`]), as stages in front
//! of the encoder (`Conv1d → ReLU → MaxPool → LSTM → head`).
//!
//! ## LRP
//! A convolution is a linear step: unfold the input `x` `[C_in, T]` into
//! `U` `[C_in K, T']`, whose column `t` holds the `K` taps of every input
//! channel that output position `t` reads (`U[c K + k, t] =
//! x[c, t s − p + k d]`, zero where that falls in the padding), and the
//! convolution is `Y = W U + b` with `W` `[C_out, C_in K]` (PyTorch's
//! `nn.Conv1d` weight `[C_out, C_in, K]`, row-major). Its relevance is the
//! relevance of that product under the linear rule at [`conv_site`],
//! computed by the same block rules as every other linear step, and then
//! folded back: each input position gets the sum of the relevance of its
//! copies in `U`. What lands on padding (a rule that gives relevance to
//! zero inputs, such as flat or w², does) has no input to go to and is
//! unexplained. The ReLU passes relevance on unchanged; the max-pooling
//! gives each window's relevance to its winner (`docs/rules.md`).
//!
//! ## Lengths
//! A window of `K` taps with stride `s`, padding `p` and dilation `d` turns
//! `T` positions into `T' = floor((T + 2p − d (K − 1) − 1) / s) + 1`
//! ([`Window::output_length`], PyTorch's formula); the stages behind see
//! the batch packed with those lengths ([`Stage::output_length`],
//! [`Packing::resized`]), and a sequence too short to leave a position is
//! refused in one line.

use lrp_core::{Block, BlockConnection, BlockInput, BlockMut, BlockStep, Float};
use lrp_layers::{Composite, Operation, Site, CONV};
use nalgebra::{DMatrix, DVector};

use crate::packing::Packing;
use crate::stage::{Backward, Port, Stage};
use crate::tensors::{Manifest, Ordered};
use crate::Error;

/// The site of every [`Conv1d`] of a model (`--rules` key `conv`): one
/// linear step, the unfolded product, whose role is a projection.
pub fn conv_site() -> Site {
    Site::new(CONV, Operation::Projection("kernel"))
}

/// How a window slides over time: stride `s`, zero padding `p` on both
/// ends, dilation `d` (PyTorch's arguments of `nn.Conv1d` and
/// `nn.MaxPool1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Size `K` of the window (taps).
    pub kernel: usize,
    /// Step `s` between outputs.
    pub stride: usize,
    /// Positions `p` added at each end.
    pub padding: usize,
    /// Step `d` between taps.
    pub dilation: usize,
}

impl Window {
    /// A window of `kernel` taps, stride 1, no padding, dilation 1.
    pub fn new(kernel: usize) -> Self {
        Self {
            kernel,
            stride: 1,
            padding: 0,
            dilation: 1,
        }
    }

    /// A window of `kernel` taps, stride 1, dilation `dilation`, padded so
    /// that the output is as long as the input (`p = d (K − 1) / 2`, `K`
    /// odd when `d` is).
    pub fn same(kernel: usize, dilation: usize) -> Self {
        Self {
            kernel,
            stride: 1,
            padding: dilation.saturating_mul(kernel.saturating_sub(1)) / 2,
            dilation,
        }
    }

    /// The output length `T' = floor((T + 2p − d (K − 1) − 1) / s) + 1`
    /// of an input of `t` positions (0 when the window does not fit).
    pub fn output_length(&self, t: usize) -> usize {
        let reach = self.dilation.saturating_mul(self.kernel.saturating_sub(1)) + 1;
        let padded = t.saturating_add(2usize.saturating_mul(self.padding));
        if padded < reach || self.stride == 0 {
            0
        } else {
            (padded - reach) / self.stride + 1
        }
    }

    /// The input position tap `k` of output `t` reads, or `None` in the
    /// padding of an input of `len` positions.
    fn source(&self, t: usize, k: usize, len: usize) -> Option<usize> {
        (t * self.stride + k * self.dilation)
            .checked_sub(self.padding)
            .filter(|&i| i < len)
    }

    /// Refuses a window without taps or a stride or dilation of 0, and for
    /// a `pooling` window padding of more than half its reach
    /// `d (K − 1) + 1` (PyTorch's limit for pooling; a convolution's
    /// padding is free, as in PyTorch).
    fn check(&self, what: &str, pooling: bool) -> Result<(), Error> {
        let reach = self
            .dilation
            .saturating_mul(self.kernel.saturating_sub(1))
            .saturating_add(1);
        let padding_fits = !pooling || self.padding <= reach / 2;
        if self.kernel > 0 && self.stride > 0 && self.dilation > 0 && padding_fits {
            return Ok(());
        }
        let limit = if pooling {
            " and padding at most half of dilation x (kernel - 1) + 1"
        } else {
            ""
        };
        Err(Error::Config {
            key: what.into(),
            message: format!(
                "kernel {}, stride {}, padding {} and dilation {}: kernel, stride and dilation must be at least 1{limit}",
                self.kernel, self.stride, self.padding, self.dilation
            ),
        })
    }
}

/// A 1-D convolution over time, `[C_in, N] -> [C_out, N]`:
/// `y[o, t] = b[o] + sum_{c, k} W[o, c, k] x[c, t s − p + k d]`
/// (PyTorch's `nn.Conv1d` on `[C_in, T]`, zero padding), explained with
/// the linear rule at [`conv_site`] on the unfolded product (module docs).
///
/// ## Parameters
/// - `weight`: `[C_out, C_in K]`, PyTorch's `[C_out, C_in, K]` read
///   row-major (column `c K + k` is tap `k` of input channel `c`)
/// - `bias`: `[C_out]`, or `None`
///
/// ```
/// use lrp_layers::Composite;
/// use lrp_models::{Conv1d, FinalState, Linear, Model, Relu, Window};
/// use nalgebra::{DMatrix, DVector};
/// // 2 channels in, 3 out, a kernel of 3 with "same" padding.
/// let weight = DMatrix::from_fn(3, 6, |o, j| ((o * 7 + j * 3) % 5) as f64 / 5.0 - 0.4);
/// let conv = Conv1d::new(weight, 2, Some(DVector::from_element(3, 0.1)), Window::same(3, 1))?;
/// let model = Model::<f64>::builder(2)
///     .stage(conv)
///     .stage(Relu::new(3))
///     .stage(FinalState::new(3, 1))
///     .stage(Linear::new(DMatrix::from_element(1, 3, 1.0), None)?)
///     .build()?;
/// let trace = model.forward(DMatrix::from_fn(2, 5, |c, t| (c as f64 + 1.0) * (t as f64 - 2.0) / 3.0))?;
/// let e = model.lrp(&trace, 0, &Composite::epsilon(0.0, 1.0)?)?;
/// let total = e.input_relevance.total() + e.unexplained_relevance;
/// assert!((total - trace.scores()[0]).abs() < 1e-12);
/// // A stride of 0 does not slide.
/// let stuck = Window { stride: 0, ..Window::same(3, 1) };
/// let err = Conv1d::new(DMatrix::<f64>::zeros(3, 6), 2, None, stuck).unwrap_err();
/// assert!(err.to_string().starts_with("config: conv1d: kernel 3, stride 0"));
/// # Ok::<(), lrp_models::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Conv1d<T: Float> {
    weight: DMatrix<T>,
    bias: Option<DVector<T>>,
    in_channels: usize,
    window: Window,
}

/// A batch through a [`Conv1d`]: the unfolded input `U` `[C_in K, N']`
/// and the output `[C_out, N']`, packed as `packing` (`N'` positions).
#[derive(Debug)]
pub struct Conv1dTrace<T: Float> {
    packing: Packing,
    unfolded: DMatrix<T>,
    output: DMatrix<T>,
}

impl<T: Float> Conv1d<T> {
    /// The convolution of `weight` `[C_out, C_in K]` over `in_channels`
    /// channels with `bias` `[C_out]` (or none), sliding as `window`
    /// (whose `kernel` is `K`). An error when the shapes do not fit or the
    /// window does not slide.
    pub fn new(
        weight: DMatrix<T>,
        in_channels: usize,
        bias: Option<DVector<T>>,
        window: Window,
    ) -> Result<Self, Error> {
        window.check("conv1d", false)?;
        let taps = in_channels.saturating_mul(window.kernel);
        if weight.ncols() != taps || in_channels == 0 || weight.nrows() == 0 {
            return Err(Error::PartShape {
                part: format!(
                    "the weight of a 1-D convolution over {in_channels} channels with a kernel of {}",
                    window.kernel
                ),
                expected: vec![weight.nrows().max(1), taps.max(1)],
                found: vec![weight.nrows(), weight.ncols()],
            });
        }
        if let Some(b) = &bias {
            if b.len() != weight.nrows() {
                return Err(Error::PartShape {
                    part: format!("the bias of a 1-D convolution of {} output channels", weight.nrows()),
                    expected: vec![weight.nrows()],
                    found: vec![b.len()],
                });
            }
        }
        Ok(Self {
            weight,
            bias,
            in_channels,
            window,
        })
    }

    /// The tensors of a PyTorch `nn.Conv1d` called `name` (`{name}.weight`
    /// `[C_out, C_in, K]`, and `{name}.bias` `[C_out]` when it has one), in
    /// the order [`Conv1d`] reads them.
    ///
    /// ```
    /// use lrp_models::Conv1d;
    /// let names = Conv1d::<f64>::pytorch_tensors("front.0", 8, 3, 5, true);
    /// assert_eq!(names, vec![("front.0.weight".to_string(), vec![8, 3, 5]), ("front.0.bias".to_string(), vec![8])]);
    /// ```
    pub fn pytorch_tensors(name: &str, out_channels: usize, in_channels: usize, kernel: usize, bias: bool) -> Manifest {
        let mut names = vec![(format!("{name}.weight"), vec![out_channels, in_channels, kernel])];
        if bias {
            names.push((format!("{name}.bias"), vec![out_channels]));
        }
        names
    }

    /// The layer from its [`Conv1d::pytorch_tensors`], checked and in
    /// order: the weight `[C_out, C_in, K]` read row-major as `[C_out, C_in K]`.
    pub(crate) fn from_pytorch(
        tensors: &mut Ordered,
        in_channels: usize,
        bias: bool,
        window: Window,
    ) -> Result<Self, Error> {
        let weight = tensors.raw()?;
        let rows = weight.shape.first().copied().unwrap_or(0);
        let columns = weight.values.len().checked_div(rows).unwrap_or(0);
        let weight = DMatrix::from_row_iterator(rows, columns, weight.values.into_iter().map(T::of_f64));
        let bias = if bias { Some(tensors.vector()?) } else { None };
        Self::new(weight, in_channels, bias, window)
    }

    /// `W`, `[C_out, C_in K]`.
    pub fn weight(&self) -> &DMatrix<T> {
        &self.weight
    }

    /// How the kernel slides.
    pub fn window(&self) -> Window {
        self.window
    }

    fn taps(&self) -> usize {
        self.in_channels * self.window.kernel
    }

    /// `U` `[C_in K, N']` of a packed input `[C_in, N]` (`packing`), packed
    /// as `out` (`N'`).
    fn unfold(&self, packing: &Packing, out: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let k_taps = self.window.kernel;
        let mut unfolded = DMatrix::zeros(self.taps(), out.columns());
        for slot in 0..packing.sequences() {
            let len = packing.length(slot);
            for t in 0..out.length(slot) {
                let col = out.column(t, slot);
                for k in 0..k_taps {
                    if let Some(src) = self.window.source(t, k, len) {
                        let from = packing.column(src, slot);
                        for c in 0..self.in_channels {
                            unfolded[(c * k_taps + k, col)] = input[(c, from)];
                        }
                    }
                }
            }
        }
        unfolded
    }

    /// Adds the columns of `unfolded` `[C_in K, N']` (packed as `out`)
    /// that belong to `slot` back onto the input positions they were
    /// copied from, into `into` `[C_in, N]` (packed as `packing`); returns
    /// the sum of what fell on padding.
    fn fold_into(
        &self,
        packing: &Packing,
        out: &Packing,
        slot: usize,
        unfolded: &DMatrix<T>,
        into: &mut DMatrix<T>,
    ) -> T {
        let k_taps = self.window.kernel;
        let len = packing.length(slot);
        let mut on_padding = T::zero();
        for t in 0..out.length(slot) {
            let col = out.column(t, slot);
            for k in 0..k_taps {
                match self.window.source(t, k, len) {
                    Some(src) => {
                        let to = packing.column(src, slot);
                        for c in 0..self.in_channels {
                            into[(c, to)] += unfolded[(c * k_taps + k, col)];
                        }
                    }
                    None => {
                        for c in 0..self.in_channels {
                            on_padding += unfolded[(c * k_taps + k, col)];
                        }
                    }
                }
            }
        }
        on_padding
    }
}

impl<T: Float> Stage<T> for Conv1d<T> {
    type Trace = Conv1dTrace<T>;

    fn name(&self) -> String {
        "the 1-D convolution".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.in_channels)
    }

    fn output(&self) -> Port {
        Port::positions(self.weight.nrows())
    }

    /// One product `W U + b` for every output position of the batch.
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Conv1dTrace<T> {
        let out = packing
            .resized(|len| self.window.output_length(len))
            .expect("a window's output length grows with its input's");
        let unfolded = self.unfold(packing, &out, input);
        let (rows, n) = (self.weight.nrows(), unfolded.ncols());
        let mut output = DMatrix::zeros(rows, n);
        let bias = self.bias.as_ref().map_or(&[][..], |b| b.as_slice());
        crate::cell::project(
            &self.weight,
            bias,
            Block::of(&unfolded, 0, unfolded.nrows(), 0, n),
            BlockMut::of(&mut output, 0, rows, 0, n),
        );
        Conv1dTrace {
            packing: out,
            unfolded,
            output,
        }
    }

    fn output_of<'t>(&self, trace: &'t Conv1dTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    /// The rule at [`conv_site`] on `Y = W U + b` for the whole batch as
    /// one block, then each explained sequence's unfolded relevance folded
    /// back onto its positions.
    fn lrp(
        &self,
        trace: &Conv1dTrace<T>,
        _input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let rule = context.rules.rule_at(&conv_site());
        let (taps, rows, n) = (self.taps(), self.weight.nrows(), trace.unfolded.ncols());
        let groups = [BlockInput {
            input: Block::of(&trace.unfolded, 0, taps, 0, n),
            connection: BlockConnection::Dense(self.weight.as_view()),
        }];
        let step = BlockStep {
            groups: &groups,
            bias: self.bias.as_ref().map(|b| Block::broadcast(b.as_slice(), n)),
            output: Block::of(&trace.output, 0, rows, 0, n),
        };
        let mut relevance_unfolded = DMatrix::zeros(taps, n);
        let mut unexplained = vec![T::zero(); n];
        rule.redistribute_block(
            &step,
            Block::of(relevance_out, 0, rows, 0, n),
            &mut [BlockMut::of(&mut relevance_unfolded, 0, taps, 0, n)],
            &mut unexplained,
            &mut context.workspace,
        );
        let (packing, out) = (context.packing, &trace.packing);
        for slot in context.explained() {
            let lost = self.fold_into(packing, out, slot, &relevance_unfolded, relevance_in);
            let per_column: T = (0..out.length(slot))
                .map(|t| unexplained[out.column(t, slot)])
                .fold(T::zero(), |a, b| a + b);
            context.leftovers.unexplained[slot] += lost + per_column;
        }
    }

    /// `δU = Wᵀ δY`, folded back (the padding's share is dropped).
    fn gradient(
        &self,
        packing: &Packing,
        trace: &Conv1dTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let mut grad_unfolded = DMatrix::zeros(self.taps(), grad_out.ncols());
        grad_unfolded.gemm_tr(T::one(), &self.weight, grad_out, T::zero());
        for slot in 0..packing.sequences() {
            self.fold_into(packing, &trace.packing, slot, &grad_unfolded, grad_in);
        }
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        rules.rule_at(&conv_site()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![conv_site()]
    }

    fn trace_numbers_per_position(&self) -> usize {
        self.taps() + self.weight.nrows()
    }

    fn output_length(&self, length: usize) -> usize {
        self.window.output_length(length)
    }
}

/// `y = max(0, x)` at every position, `[W, N] -> [W, N]`. Relevance
/// passes it unchanged (`R(x) = R(y)`, the usual treatment of an
/// element-wise activation in LRP); the gradient is `1` where `x > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relu {
    width: usize,
}

impl Relu {
    /// A ReLU over `width` values per position.
    pub fn new(width: usize) -> Self {
        Self { width }
    }
}

impl<T: Float> Stage<T> for Relu {
    /// The outputs `[W, N]`.
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the ReLU".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::positions(self.width)
    }

    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        input.map(|x| if x > T::zero() { x } else { T::zero() })
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<T>) -> &'t DMatrix<T> {
        trace
    }

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
        grad_in.zip_zip_apply(input, grad_out, |g, x, d| {
            if x > T::zero() {
                *g += d;
            }
        });
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (relevance passes the ReLU unchanged)".into()
    }
}

/// Max-pooling over time of each channel, `[W, N] -> [W, N']`:
/// `y[c, t] = max_k x[c, t s − p + k d]` over the taps inside the sequence
/// (PyTorch's `nn.MaxPool1d`, whose padding never wins). LRP and the
/// gradient go to the winner of each window, the first of tied taps
/// (`docs/rules.md`: winner takes all).
///
/// ```
/// use lrp_models::{MaxPool1d, Window};
/// // nn.MaxPool1d(2): windows of 2, stride 2.
/// assert!(MaxPool1d::new(2, Window { stride: 2, ..Window::new(2) }).is_ok());
/// // Padding past half the window would make windows of padding only.
/// let err = MaxPool1d::new(2, Window { padding: 2, ..Window::new(3) }).unwrap_err();
/// assert!(err.to_string().starts_with("config: max-pool: kernel 3, stride 1, padding 2"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool1d {
    width: usize,
    window: Window,
}

/// The winner of a window that holds no position of its sequence.
const NO_WINNER: usize = usize::MAX;

/// A batch through a [`MaxPool1d`]: the outputs `[W, N']` (packed as
/// `packing`) and, per output, the column of the input that won.
#[derive(Debug)]
pub struct MaxPool1dTrace<T: Float> {
    packing: Packing,
    output: DMatrix<T>,
    winners: DMatrix<usize>,
}

impl<T: Float> MaxPool1dTrace<T> {
    /// The packed input column whose value output `(c, col)` took (`None`
    /// for a window that fell on padding only).
    pub fn winner(&self, c: usize, col: usize) -> Option<usize> {
        Some(self.winners[(c, col)]).filter(|&w| w != NO_WINNER)
    }
}

impl MaxPool1d {
    /// Max-pooling of `width` channels over `window`; an error when the
    /// window does not slide or is padded past half its reach.
    pub fn new(width: usize, window: Window) -> Result<Self, Error> {
        window.check("max-pool", true)?;
        Ok(Self { width, window })
    }
}

impl<T: Float> Stage<T> for MaxPool1d {
    type Trace = MaxPool1dTrace<T>;

    fn name(&self) -> String {
        "the max-pooling over time".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::positions(self.width)
    }

    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> MaxPool1dTrace<T> {
        let out = packing
            .resized(|len| self.window.output_length(len))
            .expect("a window's output length grows with its input's");
        let n = out.columns();
        let mut output = DMatrix::zeros(self.width, n);
        let mut winners = DMatrix::from_element(self.width, n, 0usize);
        for slot in 0..packing.sequences() {
            let len = packing.length(slot);
            for t in 0..out.length(slot) {
                let col = out.column(t, slot);
                let taps: Vec<usize> = (0..self.window.kernel)
                    .filter_map(|k| self.window.source(t, k, len))
                    .map(|src| packing.column(src, slot))
                    .collect();
                // A dilated window over a sequence shorter than its
                // dilation can fall on padding only: its output is 0 and
                // has no winner.
                let Some((&first, rest)) = taps.split_first() else {
                    winners.column_mut(col).fill(NO_WINNER);
                    continue;
                };
                for c in 0..self.width {
                    let mut best = first;
                    for &from in rest {
                        // Strictly larger: the first of tied taps wins.
                        if input[(c, from)] > input[(c, best)] {
                            best = from;
                        }
                    }
                    winners[(c, col)] = best;
                    output[(c, col)] = input[(c, best)];
                }
            }
        }
        MaxPool1dTrace {
            packing: out,
            output,
            winners,
        }
    }

    fn output_of<'t>(&self, trace: &'t MaxPool1dTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    fn lrp(
        &self,
        trace: &MaxPool1dTrace<T>,
        _input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let out = &trace.packing;
        for slot in context.explained() {
            for t in 0..out.length(slot) {
                let col = out.column(t, slot);
                for c in 0..self.width {
                    match trace.winner(c, col) {
                        Some(from) => relevance_in[(c, from)] += relevance_out[(c, col)],
                        None => context.leftovers.unexplained[slot] += relevance_out[(c, col)],
                    }
                }
            }
        }
    }

    fn gradient(
        &self,
        _packing: &Packing,
        trace: &MaxPool1dTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        for col in 0..grad_out.ncols() {
            for c in 0..self.width {
                if let Some(from) = trace.winner(c, col) {
                    grad_in[(c, from)] += grad_out[(c, col)];
                }
            }
        }
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (the winner of each window takes all)".into()
    }

    fn trace_numbers_per_position(&self) -> usize {
        2 * self.width
    }

    fn output_length(&self, length: usize) -> usize {
        self.window.output_length(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_length_follows_pytorchs_formula() {
        let w = Window {
            kernel: 3,
            stride: 2,
            padding: 1,
            dilation: 2,
        };
        // floor((10 + 2 - 4 - 1) / 2) + 1 = 4
        assert_eq!(w.output_length(10), 4);
        assert_eq!(Window::new(5).output_length(4), 0);
        assert_eq!(Window::same(5, 2).output_length(7), 7);
    }

    #[test]
    fn a_convolution_padded_past_its_kernel_leaves_the_paddings_share_unexplained() {
        // Kernel 1, padding 2: T = 2 gives T' = 6; the outer four outputs read padding only.
        let conv = Conv1d::new(
            DMatrix::from_row_slice(1, 1, &[2.0]),
            1,
            Some(DVector::from_element(1, 0.5)),
            Window {
                padding: 2,
                ..Window::new(1)
            },
        )
        .unwrap();
        let packing = Packing::new(&[2]);
        let x = DMatrix::from_row_slice(1, 2, &[1.0, -3.0]);
        let trace = Stage::forward(&conv, &packing, &x);
        assert_eq!(trace.output.as_slice(), &[0.5, 0.5, 2.5, -5.5, 0.5, 0.5]);
        // Epsilon, bias factor 1: each real output's relevance goes whole
        // to its input; the bias-only outputs give theirs to the padding.
        let rules = Composite::epsilon(0.0, 1.0).unwrap();
        let mut context = Backward::new(&packing, &rules, vec![true]);
        let mut r_in = DMatrix::<f64>::zeros(1, 2);
        Stage::lrp(
            &conv,
            &trace,
            &x,
            &DMatrix::from_element(1, 6, 1.0),
            &mut r_in,
            &mut context,
        );
        assert!((r_in[0] - 1.0).abs() < 1e-15 && (r_in[1] - 1.0).abs() < 1e-15);
        assert!((context.leftovers.unexplained[0] - 4.0).abs() < 1e-15);
    }

    #[test]
    fn max_pooling_keeps_the_first_of_tied_taps_and_sends_relevance_there() {
        // One channel, sequences of lengths 3 and 1: columns (t0 s0, t0 s1, t1 s0, t2 s0).
        let packing = Packing::new(&[3, 1]);
        let x = DMatrix::from_row_slice(1, 4, &[5.0, -1.0, 5.0, 2.0]);
        let pool = MaxPool1d::new(1, Window::same(3, 1)).unwrap();
        let trace = Stage::<f64>::forward(&pool, &packing, &x);
        // Windows of s0: {5, 5} -> t0, {5, 5, 2} -> t0, {5, 2} -> t1.
        assert_eq!(trace.output.as_slice(), &[5.0, -1.0, 5.0, 5.0]);
        assert_eq!(trace.winners.as_slice(), &[0, 1, 0, 2]);
        let rules = Composite::epsilon(0.0, 1.0).unwrap();
        let mut context = Backward::new(&packing, &rules, vec![true, true]);
        let r_out = DMatrix::from_row_slice(1, 4, &[1.0, 2.0, 4.0, 8.0]);
        let mut r_in = DMatrix::zeros(1, 4);
        Stage::lrp(&pool, &trace, &x, &r_out, &mut r_in, &mut context);
        assert_eq!(r_in.as_slice(), &[5.0, 2.0, 8.0, 0.0]);
    }
}
