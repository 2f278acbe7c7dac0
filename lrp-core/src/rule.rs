use crate::{Block, BlockMut, BlockStep, Float, LinearStep};

/// A rule that redistributes the relevance of a linear step's outputs over
/// its inputs (epsilon, z+, gamma, ...).
///
/// Object safe, so a composite can hold one `Box<dyn LinearRule<T>>` per
/// layer role. Implement it in your own crate to add a rule.
pub trait LinearRule<T: Float>: Send + Sync {
    /// Splits `relevance_out` `[M]` over the inputs of `step`, *adding* into
    /// `relevance_in[g]` (same length as group `g`'s input) for every group.
    ///
    /// Returns the relevance that could not be passed on because its
    /// denominator was exactly zero (reported as unexplained relevance;
    /// never NaN).
    fn redistribute(
        &self,
        step: &LinearStep<'_, T>,
        relevance_out: &[T],
        relevance_in: &mut [&mut [T]],
        workspace: &mut Workspace<T>,
    ) -> T;

    /// The same step taken by `B` sequences at once (`docs/rules.md`, "Blocks"):
    /// splits `relevance_out` `[M, B]` over the inputs, *adding* into
    /// `relevance_in[g]` `[n_g, B]`, and adds each sequence's unexplained
    /// relevance into `unexplained[b]`.
    ///
    /// The default runs [`LinearRule::redistribute`] on each column, so a
    /// rule written for one sequence works in the batched engine unchanged;
    /// the built-in rules override it with matrix-matrix products.
    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        relevance_out: Block<'_, T>,
        relevance_in: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        workspace: &mut Workspace<T>,
    ) {
        for_each_column(self, step, relevance_out, relevance_in, unexplained, workspace)
    }

    /// The rule's name, for messages (an error names the rule whose
    /// relevance stopped being finite). `"custom rule"` unless overridden.
    fn name(&self) -> &str {
        "custom rule"
    }
}

impl<T: Float, R: LinearRule<T> + ?Sized> LinearRule<T> for &R {
    fn redistribute(
        &self,
        step: &LinearStep<'_, T>,
        relevance_out: &[T],
        relevance_in: &mut [&mut [T]],
        workspace: &mut Workspace<T>,
    ) -> T {
        (**self).redistribute(step, relevance_out, relevance_in, workspace)
    }

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        relevance_out: Block<'_, T>,
        relevance_in: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        workspace: &mut Workspace<T>,
    ) {
        (**self).redistribute_block(step, relevance_out, relevance_in, unexplained, workspace)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

impl<T: Float, R: LinearRule<T> + ?Sized> LinearRule<T> for Box<R> {
    fn redistribute(
        &self,
        step: &LinearStep<'_, T>,
        relevance_out: &[T],
        relevance_in: &mut [&mut [T]],
        workspace: &mut Workspace<T>,
    ) -> T {
        (**self).redistribute(step, relevance_out, relevance_in, workspace)
    }

    fn redistribute_block(
        &self,
        step: &BlockStep<'_, T>,
        relevance_out: Block<'_, T>,
        relevance_in: &mut [BlockMut<'_, T>],
        unexplained: &mut [T],
        workspace: &mut Workspace<T>,
    ) {
        (**self).redistribute_block(step, relevance_out, relevance_in, unexplained, workspace)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// A rule for an element-wise product `y = gate * signal` (LSTM and GRU
/// gates): how `R(y)` is split between the gate and the signal.
///
/// Relevance given to a gate passes its sigmoid unchanged and continues
/// through the gate's own weights; the model does that part.
pub trait GateRule<T: Float>: Send + Sync {
    /// For each element, splits `relevance[k]` of `gate[k] * signal[k]` into
    /// `to_gate[k]` and `to_signal[k]` (both overwritten; all slices have
    /// the same length).
    fn split(&self, gate: &[T], signal: &[T], relevance: &[T], to_gate: &mut [T], to_signal: &mut [T]);

    /// [`GateRule::split`] for a block of sequences, one column each:
    /// `gate`, `signal`, `relevance`, `to_gate` and `to_signal` are all
    /// `[H, B]` (the two outputs overwritten). The default splits column by
    /// column; a rule may override it with a vectorised form.
    fn split_block(
        &self,
        gate: Block<'_, T>,
        signal: Block<'_, T>,
        relevance: Block<'_, T>,
        mut to_gate: BlockMut<'_, T>,
        mut to_signal: BlockMut<'_, T>,
    ) {
        for b in 0..relevance.cols() {
            self.split(
                gate.column(b),
                signal.column(b),
                relevance.column(b),
                to_gate.column_mut(b),
                to_signal.column_mut(b),
            );
        }
    }

    /// Whether this rule can ever give relevance to a gate. Models skip the
    /// gates' linear steps when it cannot (signal-take-all), which is what
    /// makes the default rule cheap.
    fn gate_receives_relevance(&self) -> bool {
        true
    }

    /// The rule's name, for messages. `"custom gate rule"` unless overridden.
    fn name(&self) -> &str {
        "custom gate rule"
    }
}

impl<T: Float, R: GateRule<T> + ?Sized> GateRule<T> for &R {
    fn split(&self, g: &[T], s: &[T], r: &[T], tg: &mut [T], ts: &mut [T]) {
        (**self).split(g, s, r, tg, ts)
    }
    fn gate_receives_relevance(&self) -> bool {
        (**self).gate_receives_relevance()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

impl<T: Float, R: GateRule<T> + ?Sized> GateRule<T> for Box<R> {
    fn split(&self, g: &[T], s: &[T], r: &[T], tg: &mut [T], ts: &mut [T]) {
        (**self).split(g, s, r, tg, ts)
    }
    fn gate_receives_relevance(&self) -> bool {
        (**self).gate_receives_relevance()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Scratch memory a rule may use, owned by the caller and reused across
/// steps so that the backward time loop allocates nothing once warm.
///
/// Two independent sets of grow-only buffers: [`Workspace::buffers`] for
/// one sequence's step, [`Workspace::block_buffers`] for a block of
/// sequences. A block rule that falls back to the per-sequence form for some
/// columns can use both, one after the other.
#[derive(Debug, Clone, Default)]
pub struct Workspace<T: Float> {
    per_output: Vec<T>,
    per_output_extra: Vec<T>,
    per_input: Vec<T>,
    block: Vec<T>,
}

impl<T: Float> Workspace<T> {
    /// An empty workspace; it grows to the largest step it serves.
    pub fn new() -> Self {
        Self {
            per_output: Vec::new(),
            per_output_extra: Vec::new(),
            per_input: Vec::new(),
            block: Vec::new(),
        }
    }

    /// Three buffers: two of `outputs` entries and one of `inputs` entries.
    /// Their contents are unspecified on entry.
    pub fn buffers(&mut self, outputs: usize, inputs: usize) -> (&mut [T], &mut [T], &mut [T]) {
        grow(&mut self.per_output, outputs);
        grow(&mut self.per_output_extra, outputs);
        grow(&mut self.per_input, inputs);
        (
            &mut self.per_output[..outputs],
            &mut self.per_output_extra[..outputs],
            &mut self.per_input[..inputs],
        )
    }

    /// `K` disjoint buffers of the given lengths, for rules working on a
    /// [`BlockStep`]: ratios `[M, B]`, transformed weights `[M, n]`,
    /// products `[n, B]` and the like. They are carved from one grow-only
    /// allocation (separate from [`Workspace::buffers`]), so once the
    /// workspace has served the largest block no call allocates. Their
    /// contents are unspecified on entry.
    pub fn block_buffers<const K: usize>(&mut self, lens: [usize; K]) -> [&mut [T]; K] {
        let total = lens.iter().sum();
        grow(&mut self.block, total);
        let mut rest = &mut self.block[..total];
        lens.map(|len| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            head
        })
    }
}

impl<T: Float> Workspace<T> {
    /// `K` disjoint blocks `[rows[k], cols]` (columns contiguous), carved
    /// from [`Workspace::block_buffers`]: the per-step scratch of a cell,
    /// which allocates nothing once the workspace has served the largest
    /// step. Their contents are unspecified on entry.
    ///
    /// ```
    /// use lrp_core::Workspace;
    ///
    /// let mut scratch = Workspace::<f64>::new();
    /// let [mut a, b] = scratch.blocks([3, 2], 4);
    /// a.fill(1.0);
    /// assert_eq!((a.rows(), a.cols(), b.rows()), (3, 4, 2));
    /// ```
    pub fn blocks<const K: usize>(&mut self, rows: [usize; K], cols: usize) -> [BlockMut<'_, T>; K] {
        let buffers = self.block_buffers(rows.map(|r| r * cols));
        let mut k = 0;
        buffers.map(|data| {
            let r = rows[k];
            k += 1;
            BlockMut::new(data, r, cols, r).expect("a buffer of rows x cols values")
        })
    }
}

fn grow<T: Float>(buffer: &mut Vec<T>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, T::zero());
    }
}

/// [`LinearRule::redistribute_block`] by columns: each sequence's step
/// through [`LinearRule::redistribute`]. Public so that a rule that
/// overrides the block form for some connections can fall back to it for
/// the others.
pub fn for_each_column<T: Float, R: LinearRule<T> + ?Sized>(
    rule: &R,
    step: &BlockStep<'_, T>,
    relevance_out: Block<'_, T>,
    relevance_in: &mut [BlockMut<'_, T>],
    unexplained: &mut [T],
    workspace: &mut Workspace<T>,
) {
    const INLINE: usize = 4;
    for (b, lost) in unexplained.iter_mut().enumerate().take(step.columns()) {
        let r = relevance_out.column(b);
        *lost += step.with_column(b, |one| {
            let groups = relevance_in.len();
            if groups <= INLINE {
                let mut columns: [&mut [T]; INLINE] = [&mut [], &mut [], &mut [], &mut []];
                for (slot, block) in columns.iter_mut().zip(relevance_in.iter_mut()) {
                    *slot = block.column_mut(b);
                }
                rule.redistribute(one, r, &mut columns[..groups], workspace)
            } else {
                let mut columns: Vec<&mut [T]> = relevance_in.iter_mut().map(|block| block.column_mut(b)).collect();
                rule.redistribute(one, r, &mut columns, workspace)
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_buffers_are_disjoint_and_of_the_asked_lengths() {
        let mut workspace = Workspace::<f64>::new();
        let [a, b, c] = workspace.block_buffers([3, 0, 2]);
        assert_eq!((a.len(), b.len(), c.len()), (3, 0, 2));
        a.fill(1.0);
        c.fill(2.0);
        assert_eq!(a, &[1.0; 3]);
        // Smaller requests reuse the same allocation.
        let [d] = workspace.block_buffers([4]);
        assert_eq!(d.len(), 4);
    }
}
