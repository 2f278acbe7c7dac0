//! The poolings and the head beside the attention: the mean and the
//! maximum over positions (`head.input` `"mean"`, `"max"`), and the
//! per-step head (`"each"`): every position keeps its state
//! ([`EachPosition`]) and the head reads each one ([`StepHead`]).
//!
//! The rules are in `docs/rules.md` ("Mean and max pooling", "Per-step
//! heads"): the mean is a linear step with weights `1/T`, explained by the
//! rule at the pooling site; the maximum sends each dimension's relevance
//! to the position that won it.

use lrp_core::{Connection, Float, InputGroup, LinearStep};
use lrp_layers::{Composite, Site};
use nalgebra::DMatrix;

use crate::linear::Linear;
use crate::packing::Packing;
use crate::stage::{Backward, Port, Stage};

/// Copies the columns of the sequence in `slot` out of a packed `[D, N]`
/// matrix into `out` (`[D, T]`, column-major, position order).
fn gather_into<T: Float>(packing: &Packing, packed: &DMatrix<T>, slot: usize, out: &mut [T]) {
    let d = packed.nrows();
    for (t, chunk) in out.chunks_exact_mut(d).enumerate() {
        chunk.copy_from_slice(packed.column(packing.column(t, slot)).as_slice());
    }
}

/// The mean of every sequence's positions, `[D, N] -> [D, S]`:
/// `m = (1/T) sum_t h_t`.
///
/// LRP: one linear step whose connection weights are `1/T`
/// (`Connection::Pooling`, as the attention context with uniform
/// weights), explained by the rule at `Site::attention()` (the pooling
/// site; epsilon in every preset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanPooling {
    width: usize,
}

impl MeanPooling {
    /// The mean of positions of `width` values.
    pub fn new(width: usize) -> Self {
        Self { width }
    }
}

impl<T: Float> Stage<T> for MeanPooling {
    /// The means `[D, S]`.
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the mean pooling".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::sequences(self.width)
    }

    /// Sums in position order, then one division by `T` (as `torch.mean`
    /// is written: the sum, then the quotient).
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let mut out = DMatrix::zeros(self.width, packing.sequences());
        for slot in 0..packing.sequences() {
            let mut column = out.column_mut(slot);
            let len = packing.length(slot);
            for t in 0..len {
                column += input.column(packing.column(t, slot));
            }
            if len > 0 {
                column /= T::of_f64(len as f64);
            }
        }
        out
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<T>) -> &'t DMatrix<T> {
        trace
    }

    fn lrp(
        &self,
        trace: &DMatrix<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let rule = context.rules.rule_at(&Site::attention());
        let packing = context.packing;
        let explained = context.explained();
        let longest = explained.iter().map(|&s| packing.length(s)).max().unwrap_or(0);
        // One set of buffers for the whole batch, each sequence using a
        // prefix of them.
        let d = self.width;
        let mut states = vec![T::zero(); d * longest];
        let mut shares = vec![T::zero(); d * longest];
        let mut weights = vec![T::zero(); longest];
        for slot in explained {
            let len = packing.length(slot);
            if len == 0 {
                continue;
            }
            let (states, shares, weights) = (&mut states[..d * len], &mut shares[..d * len], &mut weights[..len]);
            gather_into(packing, input, slot, states);
            shares.fill(T::zero());
            weights.fill(T::one() / T::of_f64(len as f64));
            let groups = [InputGroup {
                input: states,
                connection: Connection::Pooling(weights),
            }];
            let mean = trace.column(slot);
            let step = LinearStep {
                groups: &groups,
                bias: None,
                output: mean.as_slice(),
            };
            context.leftovers.unexplained[slot] += rule.redistribute(
                &step,
                relevance_out.column(slot).as_slice(),
                &mut [shares],
                &mut context.workspace,
            );
            for (t, share) in shares.chunks_exact(d).enumerate() {
                for (to, &r) in relevance_in.column_mut(packing.column(t, slot)).iter_mut().zip(share) {
                    *to += r;
                }
            }
        }
    }

    fn gradient(
        &self,
        packing: &Packing,
        _trace: &DMatrix<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        for slot in 0..packing.sequences() {
            let len = packing.length(slot);
            let scale = T::one() / T::of_f64(len.max(1) as f64);
            for t in 0..len {
                let mut column = grad_in.column_mut(packing.column(t, slot));
                column.axpy(scale, &grad_out.column(slot), T::one());
            }
        }
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        rules.rule_at(&Site::attention()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![Site::attention()]
    }

    fn trace_numbers_per_position(&self) -> usize {
        0
    }
}

/// The maximum of every dimension over each sequence's positions,
/// `[D, N] -> [D, S]`: `m_j = max_t h_{t,j}`, the first position on ties.
///
/// LRP: dimension `j`'s relevance goes whole to the position that won it
/// (`R(h_{t,j}) = R(m_j)` for the winner, 0 elsewhere); the gradient
/// likewise. No rule is involved, and nothing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPooling {
    width: usize,
}

impl MaxPooling {
    /// The maximum over positions of `width` values.
    pub fn new(width: usize) -> Self {
        Self { width }
    }
}

/// The forward pass of a [`MaxPooling`].
#[derive(Debug)]
pub struct MaxPoolingTrace<T: Float> {
    /// `[D, S]`.
    output: DMatrix<T>,
    /// `[D, S]`: the packed column each maximum came from.
    winners: DMatrix<usize>,
}

impl<T: Float> MaxPoolingTrace<T> {
    /// The packed column (see [`Packing::column`]) whose value won
    /// dimension `j` of the sequence in `slot`.
    pub fn winner_column(&self, j: usize, slot: usize) -> usize {
        self.winners[(j, slot)]
    }
}

impl<T: Float> Stage<T> for MaxPooling {
    type Trace = MaxPoolingTrace<T>;

    fn name(&self) -> String {
        "the max pooling".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::sequences(self.width)
    }

    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> MaxPoolingTrace<T> {
        let s = packing.sequences();
        let mut output = DMatrix::zeros(self.width, s);
        let mut winners = DMatrix::from_element(self.width, s, 0usize);
        for slot in 0..s {
            for t in 0..packing.length(slot) {
                let col = packing.column(t, slot);
                for (j, &v) in input.column(col).iter().enumerate() {
                    // Strictly larger: the first position keeps a tie. A
                    // NaN never wins, and the finiteness check reports it.
                    if t == 0 || v > output[(j, slot)] {
                        output[(j, slot)] = v;
                        winners[(j, slot)] = col;
                    }
                }
            }
        }
        MaxPoolingTrace { output, winners }
    }

    fn output_of<'t>(&self, trace: &'t MaxPoolingTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    fn lrp(
        &self,
        trace: &MaxPoolingTrace<T>,
        _input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        for slot in context.explained() {
            if context.packing.length(slot) == 0 {
                continue;
            }
            for j in 0..self.width {
                relevance_in[(j, trace.winners[(j, slot)])] += relevance_out[(j, slot)];
            }
        }
    }

    fn gradient(
        &self,
        packing: &Packing,
        trace: &MaxPoolingTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        for slot in 0..packing.sequences() {
            if packing.length(slot) == 0 {
                continue;
            }
            for j in 0..self.width {
                grad_in[(j, trace.winners[(j, slot)])] += grad_out[(j, slot)];
            }
        }
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (the winner takes all)".into()
    }

    fn trace_numbers_per_position(&self) -> usize {
        0
    }
}

/// Every position keeps its own state, `[D, N] -> [D, N]`: the pooling
/// of a per-step head (`head.input` `"each"`). Its trace is a copy of the
/// encoder's output, which the head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EachPosition {
    width: usize,
}

impl EachPosition {
    /// Positions of `width` values, passed on as they are.
    pub fn new(width: usize) -> Self {
        Self { width }
    }
}

impl<T: Float> Stage<T> for EachPosition {
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the positions".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::positions(self.width)
    }

    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let mut out = crate::buffers::overwritten(input.nrows(), input.ncols());
        out.copy_from(input);
        out
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
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        *grad_in += grad_out;
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (a copy)".into()
    }
}

/// A linear head applied at every position, `[D, N] -> [C, N]`:
/// `y_t = W h_t + b`, the head of a tagger or a forecaster. LRP explains
/// the outputs that carry relevance (in practice the one asked for) with
/// the rule at `Site::head()`, each into its own position's state.
#[derive(Debug, Clone, PartialEq)]
pub struct StepHead<T: Float> {
    linear: Linear<T>,
}

impl<T: Float> StepHead<T> {
    /// `linear` at every position.
    pub fn new(linear: Linear<T>) -> Self {
        Self { linear }
    }

    /// The layer applied at each position.
    pub fn linear(&self) -> &Linear<T> {
        &self.linear
    }
}

impl<T: Float> Stage<T> for StepHead<T> {
    /// The outputs `[C, N]`.
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the per-step head".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.linear.weight.ncols())
    }

    fn output(&self) -> Port {
        Port::positions(self.linear.weight.nrows())
    }

    /// One product for every position of the batch.
    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let bias = self.linear.bias.as_ref().map_or(&[][..], |b| b.as_slice());
        let (rows, n) = (self.linear.weight.nrows(), input.ncols());
        let mut output = crate::buffers::overwritten(rows, n);
        crate::cell::project(
            &self.linear.weight,
            bias,
            lrp_core::Block::of(input, 0, input.nrows(), 0, n),
            lrp_core::BlockMut::of(&mut output, 0, rows, 0, n),
        );
        output
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<T>) -> &'t DMatrix<T> {
        trace
    }

    fn lrp(
        &self,
        trace: &DMatrix<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let rule = context.rules.rule_at(&Site::head());
        let packing = context.packing;
        for slot in context.explained() {
            for t in 0..packing.length(slot) {
                let col = packing.column(t, slot);
                let message = relevance_out.column(col);
                // Only the asked-for position carries relevance; the
                // others would cost a rule call each for nothing.
                if message.iter().all(|v| v.is_zero()) {
                    continue;
                }
                context.leftovers.unexplained[slot] += self.linear.redistribute(
                    rule,
                    input.column(col).as_slice(),
                    trace.column(col).as_slice(),
                    message.as_slice(),
                    relevance_in.column_mut(col).as_mut_slice(),
                    &mut context.workspace,
                );
            }
        }
    }

    fn gradient(
        &self,
        _packing: &Packing,
        _trace: &DMatrix<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        grad_in.gemm_tr(T::one(), &self.linear.weight, grad_out, T::one());
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        rules.rule_at(&Site::head()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![Site::head()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maximum_keeps_the_first_of_tied_positions_and_sends_relevance_there() {
        // One dimension, sequences of lengths 3 and 1: columns
        // (t0 s0, t0 s1, t1 s0, t2 s0).
        let packing = Packing::new(&[3, 1]);
        let states = DMatrix::from_row_slice(2, 4, &[2.0, -1.0, 5.0, 5.0, 0.0, 7.0, 0.0, -3.0]);
        let stage = MaxPooling::new(2);
        let trace = Stage::<f64>::forward(&stage, &packing, &states);
        assert_eq!(trace.output.as_slice(), &[5.0, 0.0, -1.0, 7.0]);
        // Dimension 0 of slot 0: 5 at t1 and t2, the first wins (column 2);
        // dimension 1: 0 at t0 and t1, column 0.
        assert_eq!((trace.winner_column(0, 0), trace.winner_column(1, 0)), (2, 0));
        let rules = Composite::epsilon(0.0, 1.0).unwrap();
        let mut context = Backward::new(&packing, &rules, vec![true, true]);
        let message = DMatrix::from_row_slice(2, 2, &[1.5, 2.0, -0.5, 3.0]);
        let mut below = DMatrix::zeros(2, 4);
        Stage::lrp(&stage, &trace, &states, &message, &mut below, &mut context);
        assert_eq!(below.as_slice(), &[0.0, -0.5, 2.0, 3.0, 1.5, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn the_mean_conserves_with_bias_factor_1_and_its_gradient_is_1_over_t() {
        let packing = Packing::new(&[3, 2]);
        let states = DMatrix::from_fn(2, 5, |r, c| (r as f64 + 1.0) * (c as f64 - 1.5));
        let stage = MeanPooling::new(2);
        let means = Stage::<f64>::forward(&stage, &packing, &states);
        let rules = Composite::epsilon(0.0, 1.0).unwrap();
        let mut context = Backward::new(&packing, &rules, vec![true, true]);
        let mut below = DMatrix::zeros(2, 5);
        Stage::lrp(&stage, &means, &states, &means, &mut below, &mut context);
        // Relevance m_j into each h_tj: h_tj / T, which sums to m_j.
        assert!((below.sum() - means.sum()).abs() < 1e-12);
        let mut grad = DMatrix::zeros(2, 5);
        Stage::<f64>::gradient(
            &stage,
            &packing,
            &means,
            &states,
            &DMatrix::from_element(2, 2, 1.0),
            &mut grad,
        );
        // Slot 0 (length 3) holds columns 0, 2, 4; slot 1 (length 2) 1, 3.
        assert!((grad[(0, 0)] - 1.0 / 3.0).abs() < 1e-15 && (grad[(1, 3)] - 0.5).abs() < 1e-15);
    }
}
