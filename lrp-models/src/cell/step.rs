//! A cell that writes one step, and the time loop the library runs around
//! it.
//!
//! A recurrent cell's three passes share a loop that has nothing to do with
//! the cell: which sequences of a packed batch are still running at step
//! `t`, where their previous states are, the zero initial state, the
//! relevance and gradient the recurrence carries from step `t + 1` back to
//! step `t`, and what reaches the initial state at the end. [`StepCell`] is
//! the cell without that loop: it says how one step goes, forwards and
//! backwards, for the `B` sequences running at it, and every [`StepCell`]
//! is a [`RecurrentCell`] through the loop written here once.
//!
//! ## The state and the record
//! A cell carries a *state* from one step to the next: the hidden state `h`
//! `[H, B]`, which the layer outputs, and a *memory* `[M, B]` it keeps to
//! itself (an LSTM's cell state `c`, `M = H`; nothing for a GRU, `M = 0`).
//! Per step it also keeps a *record* `[R, B]` for the backward passes
//! (pre-activations, gate values). The first `P` rows of the record are the
//! *projection*, the part of the step that reads the input alone (`W x + b`):
//! the library computes it for every step at once with
//! [`StepCell::project`], one matrix product for the whole batch, and the
//! step may add its recurrent part to it in place.
//!
//! All blocks handed to a cell have one column per sequence running at the
//! step (see [`Block`]).

use std::fmt;

use lrp_core::{Block, BlockConnection, BlockInput, BlockMut, BlockStep, Float, LinearRule, Workspace};
use lrp_layers::{LayerRules, Operation};
use nalgebra::DMatrix;

use super::{all_finite, Leftovers, RecurrentCell};
use crate::buffers;
use crate::packing::Packing;

/// A cell's state for the `B` sequences of a step, read-only: the hidden
/// state `h` `[H, B]` and the memory `[M, B]` (`M` may be 0).
#[derive(Debug, Clone, Copy)]
pub struct State<'a, T> {
    /// The hidden state `[H, B]`, what the layer outputs.
    pub h: Block<'a, T>,
    /// What else the cell carries `[M, B]` (an LSTM's `c`).
    pub memory: Block<'a, T>,
}

/// A cell's state for the `B` sequences of a step, to be written; see
/// [`State`].
#[derive(Debug)]
pub struct StateMut<'a, T> {
    /// The hidden state `[H, B]`.
    pub h: BlockMut<'a, T>,
    /// The memory `[M, B]`.
    pub memory: BlockMut<'a, T>,
}

impl<T: Float> StateMut<'_, T> {
    /// The same state, read-only (a reborrow).
    pub fn as_state(&self) -> State<'_, T> {
        State {
            h: self.h.as_block(),
            memory: self.memory.as_block(),
        }
    }
}

/// What the forward pass of one step left, as the backward passes see it.
///
/// ## Shapes
/// - `x`: `[E, B]`, the step's inputs
/// - `previous`, `next`: the state before and after the step (`previous`
///   is zero at a sequence's first step)
/// - `record`: `[R, B]`, what [`StepCell::step`] recorded
#[derive(Debug, Clone, Copy)]
pub struct Step<'a, T> {
    /// The inputs `x_t` `[E, B]`.
    pub x: Block<'a, T>,
    /// The state the step started from.
    pub previous: State<'a, T>,
    /// The step's record `[R, B]`.
    pub record: Block<'a, T>,
    /// The state the step wrote.
    pub next: State<'a, T>,
}

/// Where one forward step writes, for the `B` sequences running at it:
/// `record` `[R, B]` holds the projection in its first `P` rows (the step
/// may change them, typically adding its recurrent part) and its other rows
/// are to be written, as is `next`. `scratch` is the cell's to use.
pub struct StepForward<'s, T: Float> {
    /// The state the step starts from (zero at a sequence's first step).
    pub previous: State<'s, T>,
    /// The step's record `[R, B]`.
    pub record: BlockMut<'s, T>,
    /// The state the step writes.
    pub next: StateMut<'s, T>,
    /// Scratch for the cell's own buffers ([`Workspace::blocks`]).
    pub scratch: &'s mut Workspace<T>,
}

/// What one LRP step reads and writes besides the forward [`Step`].
/// `relevance` is what reaches the next state: for `h`, what came from
/// outside the recurrence (head, attention, the layer above) plus what the
/// step after this one sent back; for the memory, what the step after sent
/// back. The cell *adds* the relevance of its inputs into `x` `[E, B]` and
/// of the previous state into `previous` (zeroed on entry), and runs its
/// linear steps through `steps`.
pub struct StepLrp<'s, 'r, T: Float> {
    /// The relevance of the next state.
    pub relevance: State<'s, T>,
    /// The inputs' relevance `[E, B]`, added to.
    pub x: BlockMut<'s, T>,
    /// The previous state's relevance, added to (zero on entry).
    pub previous: StateMut<'s, T>,
    /// The rules of this cell, by operation.
    pub rules: &'s LayerRules<'r, T>,
    /// Scratch for the cell's own buffers ([`Workspace::blocks`]).
    pub scratch: &'s mut Workspace<T>,
    /// Where the cell's linear steps run.
    pub steps: LinearSteps<'s, T>,
}

/// What one gradient step reads and writes besides the forward [`Step`]:
/// from the gradient at the next state, the cell writes the gradient of
/// the projection `[P, B]` and adds that of the previous state (zero on
/// entry). The library turns the projections' gradients into the inputs'
/// ([`StepCell::project_gradient`]).
pub struct StepGradient<'s, T: Float> {
    /// The gradient at the next state.
    pub next: State<'s, T>,
    /// The gradient of the projection `[P, B]`, overwritten.
    pub projection: BlockMut<'s, T>,
    /// The gradient of the previous state, added to.
    pub previous: StateMut<'s, T>,
    /// Scratch for the cell's own buffers.
    pub scratch: &'s mut Workspace<T>,
}

/// The sizes of a [`StepCell`]: it reads `input` values per step, carries
/// `hidden` (the output `h`) and `memory` values from step to step, and
/// keeps `record` values per step, the first `projection` of them the part
/// that reads only the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellShape {
    /// `E`.
    pub input: usize,
    /// `H`.
    pub hidden: usize,
    /// `M`.
    pub memory: usize,
    /// `P`.
    pub projection: usize,
    /// `R >= P`.
    pub record: usize,
}

impl CellShape {
    /// A cell with inputs `E`, hidden state `H` and a projection of `P`
    /// rows, which records nothing else and carries nothing besides `h`.
    pub fn new(input: usize, hidden: usize, projection: usize) -> Self {
        Self {
            input,
            hidden,
            memory: 0,
            projection,
            record: projection,
        }
    }

    /// The same with a memory of `memory` values.
    pub fn memory(self, memory: usize) -> Self {
        Self { memory, ..self }
    }

    /// The same recording `record` values per step.
    pub fn record(self, record: usize) -> Self {
        Self { record, ..self }
    }
}

/// What every linear step of a cell's LRP step shares: the rules'
/// workspace, and per sequence of the step the relevance dropped at zero
/// denominators (`[B]`, added to). Kept apart from the scratch so that a
/// cell can hold scratch blocks while it runs steps.
pub struct LinearSteps<'s, T: Float> {
    /// Scratch for the rules.
    pub workspace: &'s mut Workspace<T>,
    /// Per sequence of the step: relevance dropped at zero denominators.
    pub unexplained: &'s mut [T],
}

impl<T: Float> LinearSteps<'_, T> {
    /// LRP through one linear step of the cell, `output = Σ_g W_g input_g +
    /// bias` over the groups `groups` (`[M, B]` outputs): `rule` splits
    /// `relevance` `[M, B]` and adds each group's share into the matching
    /// block of `targets`.
    pub fn linear(
        &mut self,
        rule: &dyn LinearRule<T>,
        groups: &[BlockInput<'_, T>],
        bias: Option<Block<'_, T>>,
        output: Block<'_, T>,
        relevance: Block<'_, T>,
        targets: &mut [BlockMut<'_, T>],
    ) {
        let step = BlockStep { groups, bias, output };
        rule.redistribute_block(&step, relevance, targets, self.unexplained, self.workspace);
    }

    /// LRP through the element-wise sum `sum = a + b` (`[H, B]` each) as
    /// one linear step, `N = 2H` (LSTM `c_t = f c_{t-1} + i g`): `r_a` and
    /// `r_b` are overwritten with the summands' relevance.
    #[allow(clippy::too_many_arguments)]
    pub fn sum(
        &mut self,
        rule: &dyn LinearRule<T>,
        a: Block<'_, T>,
        b: Block<'_, T>,
        sum: Block<'_, T>,
        relevance: Block<'_, T>,
        mut r_a: BlockMut<'_, T>,
        mut r_b: BlockMut<'_, T>,
    ) {
        r_a.fill(T::zero());
        r_b.fill(T::zero());
        let groups = [
            BlockInput {
                input: a,
                connection: BlockConnection::Identity,
            },
            BlockInput {
                input: b,
                connection: BlockConnection::Identity,
            },
        ];
        self.linear(rule, &groups, None, sum, relevance, &mut [r_a, r_b]);
    }
}

/// A group of a linear step whose input is `input` and whose weights are
/// the dense matrix `w` (`[M, n]` for inputs `[n, B]`), such as one gate's
/// rows of a fused matrix.
pub fn dense<'a, T: Float>(input: Block<'a, T>, w: nalgebra::DMatrixView<'a, T>) -> BlockInput<'a, T> {
    BlockInput {
        input,
        connection: BlockConnection::Dense(w),
    }
}

/// One step of a recurrent cell. Implement it in your own crate to add a
/// cell: the library runs it over time, in both directions, over packed
/// batches, as the cell of a decoder, and explains it. Every `StepCell` is
/// a [`RecurrentCell`] (wrap it in a [`crate::RecurrentLayer`] to use it).
///
/// The passes, for the `B` sequences running at a step:
/// - [`StepCell::project`]: `projection = W x + b`, for all steps at once
///   (by default from [`StepCell::input_weights`]);
/// - [`StepCell::step`]: from the previous state and the projection, the
///   next state and the record;
/// - [`StepCell::lrp_step`]: from the relevance of the next state, the
///   relevance of the inputs and of the previous state;
/// - [`StepCell::gradient_step`] and [`StepCell::project_gradient`]: the
///   same with gradients.
///
/// A cell also names the operations that take a rule
/// ([`StepCell::operations`]), its candidate among them.
///
/// ## Shapes
/// `E`, `H`, `M`, `P`, `R` of [`StepCell::shape`], `B` the sequences
/// running at the step.
pub trait StepCell<T: Float>: Send + Sync + fmt::Debug + 'static {
    /// A short name for messages (`"lstm"`).
    fn kind(&self) -> &str;

    /// The cell's sizes.
    fn shape(&self) -> CellShape;

    /// The input projection's weights `W` `[P, E]` and bias `b` `[P]`.
    fn input_weights(&self) -> (&DMatrix<T>, &[T]);

    /// Writes the projection `[P, n]` of inputs `x` `[E, n]` (any number of
    /// columns: the library calls it once for a whole batch). `W x + b` by
    /// default.
    fn project(&self, x: Block<'_, T>, projection: BlockMut<'_, T>) {
        let (w, b) = self.input_weights();
        super::project(w, b, x, projection);
    }

    /// Adds the gradient of inputs `[E, n]` given the gradient of their
    /// projections `[P, n]`: `Wᵀ d` by default.
    fn project_gradient(&self, grad_projection: Block<'_, T>, grad_x: BlockMut<'_, T>) {
        super::add_transposed_product(grad_x, self.input_weights().0, grad_projection);
    }

    /// One step forwards.
    fn step(&self, step: StepForward<'_, T>);

    /// One step of LRP.
    fn lrp_step(&self, step: Step<'_, T>, lrp: StepLrp<'_, '_, T>);

    /// One step of backpropagation through time.
    fn gradient_step(&self, step: Step<'_, T>, grad: StepGradient<'_, T>);

    /// The operations of this cell that ask for a rule: the sites of one
    /// direction of one layer, without the layer and direction. `--rules`
    /// keys are checked against them. The candidate's projection is an
    /// [`Operation::Candidate`], the gates' [`Operation::Projection`]s.
    fn operations(&self) -> Vec<Operation>;

    /// Whether every value of the records `[R, N]` is finite. By default
    /// the projections' rows are checked, where the pre-activations are (an
    /// overflow shows there first).
    #[inline(always)]
    fn is_finite(&self, record: &DMatrix<T>) -> bool {
        let p = self.shape().projection;
        let rows = record.nrows();
        record
            .as_slice()
            .chunks_exact(rows.max(1))
            .all(|column| all_finite(&column[..p.min(rows)]))
    }
}

/// The forward pass of a [`StepCell`] over a packed batch, in processing
/// order.
///
/// ## Shapes
/// - `record`: `[R, N]`
/// - `h`: `[H, N]`
/// - `memory`: `[M, N]`
#[derive(Debug)]
pub struct StepTrace<T: Float> {
    record: DMatrix<T>,
    h: DMatrix<T>,
    memory: DMatrix<T>,
}

impl<T: Float> StepTrace<T> {
    /// The records of every step `[R, N]`.
    pub fn record(&self) -> &DMatrix<T> {
        &self.record
    }

    /// The memories of every step `[M, N]`.
    pub fn memory(&self) -> &DMatrix<T> {
        &self.memory
    }

    /// The state before step `t` and after it, for the sequences running
    /// at it, and that step's record.
    fn step<'a>(
        &'a self,
        packing: &Packing,
        t: usize,
        input: &'a DMatrix<T>,
        zero: &'a StateBuffers<T>,
    ) -> Step<'a, T> {
        let cols = packing.step_columns(t);
        let active = cols.len();
        let previous = match packing.previous_start(t) {
            Some(from) => State {
                h: Block::of(&self.h, 0, self.h.nrows(), from, active),
                memory: Block::of(&self.memory, 0, self.memory.nrows(), from, active),
            },
            None => zero.state(active),
        };
        Step {
            x: Block::of(input, 0, input.nrows(), cols.start, active),
            previous,
            record: Block::of(&self.record, 0, self.record.nrows(), cols.start, active),
            next: State {
                h: Block::of(&self.h, 0, self.h.nrows(), cols.start, active),
                memory: Block::of(&self.memory, 0, self.memory.nrows(), cols.start, active),
            },
        }
    }
}

/// The trace's memory goes back to this thread's free list for the next
/// batch (see `buffers`).
impl<T: Float> Drop for StepTrace<T> {
    fn drop(&mut self) {
        for m in [&mut self.record, &mut self.h, &mut self.memory] {
            buffers::recycle_in_place(m);
        }
    }
}

/// A pair `[H, B]`, `[M, B]` of per-slot buffers: zero initial states, or
/// what the recurrence carries from one step to the one before.
struct StateBuffers<T: Float> {
    h: DMatrix<T>,
    memory: DMatrix<T>,
}

impl<T: Float> StateBuffers<T> {
    fn zeros(hidden: usize, memory: usize, sequences: usize) -> Self {
        Self {
            h: DMatrix::zeros(hidden, sequences),
            memory: DMatrix::zeros(memory, sequences),
        }
    }

    fn state(&self, active: usize) -> State<'_, T> {
        State {
            h: Block::of(&self.h, 0, self.h.nrows(), 0, active),
            memory: Block::of(&self.memory, 0, self.memory.nrows(), 0, active),
        }
    }

    fn state_mut(&mut self, active: usize) -> StateMut<'_, T> {
        let (h, m) = (self.h.nrows(), self.memory.nrows());
        StateMut {
            h: BlockMut::of(&mut self.h, 0, h, 0, active),
            memory: BlockMut::of(&mut self.memory, 0, m, 0, active),
        }
    }

    /// `self[:, ..active] = outside[:, cols]` (h only, when given) plus,
    /// for the first `carried` slots, `from[:, slot]`.
    #[inline(always)]
    fn arriving(&mut self, outside: Option<Block<'_, T>>, from: &StateBuffers<T>, active: usize, carried: usize) {
        for (mine, theirs, outside) in [(&mut self.h, &from.h, outside), (&mut self.memory, &from.memory, None)] {
            let rows = mine.nrows();
            for slot in 0..active {
                let column = &mut mine.as_mut_slice()[slot * rows..(slot + 1) * rows];
                match outside {
                    Some(outside) => column.copy_from_slice(outside.column(slot)),
                    None => column.fill(T::zero()),
                }
                if slot < carried {
                    for (v, &c) in column
                        .iter_mut()
                        .zip(&theirs.as_slice()[slot * rows..(slot + 1) * rows])
                    {
                        *v += c;
                    }
                }
            }
        }
    }

    /// Zeroes the first `active` columns.
    fn clear(&mut self, active: usize) {
        self.h.columns_mut(0, active).fill(T::zero());
        self.memory.columns_mut(0, active).fill(T::zero());
    }

    /// The sum of slot `slot`'s column, `h` then memory.
    fn total(&self, slot: usize) -> T {
        let sum = |m: &DMatrix<T>| super::sum(&m.as_slice()[slot * m.nrows()..(slot + 1) * m.nrows()]);
        sum(&self.h) + sum(&self.memory)
    }
}

/// The time loop: every [`StepCell`] is a [`RecurrentCell`].
impl<T: Float, C: StepCell<T>> RecurrentCell<T> for C {
    type Trace = StepTrace<T>;

    fn kind(&self) -> &str {
        StepCell::kind(self)
    }

    fn input_size(&self) -> usize {
        self.shape().input
    }

    fn hidden_size(&self) -> usize {
        self.shape().hidden
    }

    /// The projections of all steps in one call, then per step the cell's
    /// step for the sequences still running.
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> StepTrace<T> {
        lrp_core::simd::wide(|| {
            let CellShape {
                hidden: h,
                memory: m,
                projection: p,
                record: r,
                ..
            } = self.shape();
            let n = input.ncols();
            // Every column is some step of some sequence: all written below.
            let mut trace = StepTrace {
                record: buffers::overwritten(r, n),
                h: buffers::overwritten(h, n),
                memory: buffers::overwritten(m, n),
            };
            self.project(
                Block::of(input, 0, input.nrows(), 0, n),
                BlockMut::of(&mut trace.record, 0, p, 0, n),
            );
            let zero = StateBuffers::zeros(h, m, packing.sequences());
            // The cell's scratch, reused from this thread's last pass.
            let mut scratch = buffers::workspace();
            for t in 0..packing.steps() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                // The previous step's columns lie before this step's.
                let (h_before, h_now) = trace.h.as_mut_slice().split_at_mut(cols.start * h);
                let (m_before, m_now) = trace.memory.as_mut_slice().split_at_mut(cols.start * m);
                let previous = match packing.previous_start(t) {
                    Some(from) => State {
                        h: block(&h_before[from * h..], h, active),
                        memory: block(&m_before[from * m..], m, active),
                    },
                    None => zero.state(active),
                };
                let next = StateMut {
                    h: block_mut(h_now, h, active),
                    memory: block_mut(m_now, m, active),
                };
                self.step(StepForward {
                    previous,
                    record: BlockMut::of(&mut trace.record, 0, r, cols.start, active),
                    next,
                    scratch: &mut scratch,
                });
            }
            buffers::recycle_workspace(scratch);
            trace
        })
    }

    fn hidden<'t>(&self, trace: &'t StepTrace<T>) -> &'t DMatrix<T> {
        &trace.h
    }

    /// The cell's check, compiled for AVX2 where the CPU has it.
    fn is_finite(&self, trace: &StepTrace<T>) -> bool {
        lrp_core::simd::wide(|| StepCell::is_finite(self, &trace.record))
    }

    /// From the last step to the first: what reaches each step's state
    /// (from outside, and carried back from the step after), the cell's LRP
    /// step, and what it sends to the previous state carried on; what
    /// reaches the zero initial state is each sequence's leftover.
    fn lrp(
        &self,
        packing: &Packing,
        trace: &StepTrace<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
        leftovers: &mut Leftovers<T>,
    ) {
        lrp_core::simd::wide(|| {
            let (shape, batch) = (self.shape(), packing.sequences());
            let (h, m) = (shape.hidden, shape.memory);
            let zero = StateBuffers::zeros(h, m, batch);
            let mut arriving = StateBuffers::zeros(h, m, batch);
            let mut carried = StateBuffers::zeros(h, m, batch);
            // The cell's scratch, reused from this thread's last pass.
            let mut scratch = buffers::workspace();
            let e = input.nrows();
            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                let outside = Block::of(relevance_out, 0, h, cols.start, active);
                arriving.arriving(Some(outside), &carried, active, packing.continuing(t));
                carried.clear(active);
                self.lrp_step(
                    trace.step(packing, t, input, &zero),
                    StepLrp {
                        relevance: arriving.state(active),
                        x: BlockMut::of(relevance_in, 0, e, cols.start, active),
                        previous: carried.state_mut(active),
                        rules,
                        scratch: &mut scratch,
                        steps: LinearSteps {
                            workspace: &mut *workspace,
                            unexplained: &mut leftovers.unexplained[..active],
                        },
                    },
                );
            }
            if packing.steps() > 0 {
                for slot in 0..batch {
                    leftovers.initial_state[slot] += carried.total(slot);
                }
            }
            buffers::recycle_workspace(scratch);
        })
    }

    /// From the last step to the first, the cell's gradient step; then the
    /// inputs' gradient from all projections' at once.
    fn gradient(
        &self,
        packing: &Packing,
        trace: &StepTrace<T>,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        lrp_core::simd::wide(|| {
            let (shape, batch) = (self.shape(), packing.sequences());
            let (h, m, p, n) = (shape.hidden, shape.memory, shape.projection, grad_out.ncols());
            let mut grad_projection = buffers::overwritten(p, n);
            let zero = StateBuffers::zeros(h, m, batch);
            let mut arriving = StateBuffers::zeros(h, m, batch);
            let mut carried = StateBuffers::zeros(h, m, batch);
            // The cell's scratch, reused from this thread's last pass.
            let mut scratch = buffers::workspace();
            for t in (0..packing.steps()).rev() {
                let cols = packing.step_columns(t);
                let active = cols.len();
                let outside = Block::of(grad_out, 0, h, cols.start, active);
                arriving.arriving(Some(outside), &carried, active, packing.continuing(t));
                carried.clear(active);
                self.gradient_step(
                    trace.step(packing, t, input, &zero),
                    StepGradient {
                        next: arriving.state(active),
                        projection: BlockMut::of(&mut grad_projection, 0, p, cols.start, active),
                        previous: carried.state_mut(active),
                        scratch: &mut scratch,
                    },
                );
            }
            let e = grad_in.nrows();
            self.project_gradient(
                Block::of(&grad_projection, 0, p, 0, n),
                BlockMut::of(grad_in, 0, e, 0, n),
            );
            buffers::recycle(grad_projection);
            buffers::recycle_workspace(scratch);
        })
    }

    fn operations(&self) -> Vec<Operation> {
        StepCell::operations(self)
    }
}

/// `[rows, cols]` at the start of `data`, columns contiguous.
pub(crate) fn block<T: Float>(data: &[T], rows: usize, cols: usize) -> Block<'_, T> {
    Block::new(data, rows, cols, rows).expect("a state block inside its matrix")
}

/// Mutable form of [`block`].
pub(crate) fn block_mut<T: Float>(data: &mut [T], rows: usize, cols: usize) -> BlockMut<'_, T> {
    BlockMut::new(data, rows, cols, rows).expect("a state block inside its matrix")
}
