//! Stages: the parts a model is composed of.
//!
//! A model is a chain of stages, built-in (`[embedding] -> encoder ->
//! pooling -> head`) or built in code with [`crate::Model::builder`] (any
//! stages in any order whose [`Port`]s fit), and every stage has the same
//! three passes over a packed batch (see
//! [`Packing`]): `forward` keeps a trace of the stage's own type, `lrp`
//! splits the relevance that reaches the stage's outputs over its inputs,
//! and `gradient` does the same with gradients. What flows between stages
//! is a matrix with one column per position (`[W, N]`, packed) or one per
//! sequence (`[W, S]`, column = slot): a [`Port`] says which, and how wide.
//!
//! The built-in stages are [`Embedding`], [`crate::RecurrentLayer`] (one
//! or two directions of a [`crate::RecurrentCell`]), [`crate::Encoder`]
//! (stacked layers), [`FinalState`] and [`AttentionPooling`] (positions to
//! sequences) and [`crate::Linear`] (the head). A stage of your own crate
//! goes into a model with [`crate::Model::builder`] (anywhere in the chain)
//! or [`crate::Model::with_pooling_and_head`]; `tests/tests/stages.rs` and
//! `tests/tests/chain.rs` add some.

use std::any::Any;
use std::fmt;

use lrp_core::{Float, Workspace};
use lrp_layers::{Composite, Site};
use nalgebra::{DMatrix, DVector};

use crate::attention::{Attention, AttentionTrace};
use crate::cell::Leftovers;
use crate::packing::Packing;
use crate::tensors::{Manifest, Ordered};
use crate::{Error, Linear};

/// Whether a stage's values belong to positions or to whole sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// One column per position of the packed batch: `[W, N]`, column
    /// `packing.column(t, slot)` is step `t` of the sequence in `slot`.
    Position,
    /// One column per sequence: `[W, S]`, column `slot`.
    Sequence,
}

/// What a stage reads or writes: `width` values per position or per
/// sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// Values per column.
    pub width: usize,
    /// Whose columns they are.
    pub per: Per,
}

impl Port {
    /// `width` values per position.
    pub fn positions(width: usize) -> Self {
        Self {
            width,
            per: Per::Position,
        }
    }

    /// `width` values per sequence.
    pub fn sequences(width: usize) -> Self {
        Self {
            width,
            per: Per::Sequence,
        }
    }

    /// Columns of a batch packed as `packing`: `N` or `S`.
    pub fn columns(&self, packing: &Packing) -> usize {
        match self.per {
            Per::Position => packing.columns(),
            Per::Sequence => packing.sequences(),
        }
    }

    /// The columns of the sequence in `slot`, in position order (one for a
    /// per-sequence port).
    pub fn columns_of(&self, packing: &Packing, slot: usize) -> Vec<usize> {
        match self.per {
            Per::Position => (0..packing.length(slot)).map(|t| packing.column(t, slot)).collect(),
            Per::Sequence => vec![slot],
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per {
            Per::Position => write!(f, "{} values per position", self.width),
            Per::Sequence => write!(f, "{} values per sequence", self.width),
        }
    }
}

/// The rule context of a backward pass: the batch's packing (the
/// per-sequence view), the rules, a workspace, and per sequence what could
/// not be handed down and whether the sequence is being explained.
pub struct Backward<'a, T: Float> {
    /// How the batch is packed.
    pub packing: &'a Packing,
    /// The rules, by site.
    pub rules: &'a Composite<T>,
    /// Scratch memory for the rules.
    pub workspace: Workspace<T>,
    /// Per slot: relevance that reached initial states or was dropped.
    pub leftovers: Leftovers<T>,
    /// The model's number of the recurrent layer being explained, for its
    /// rules' sites: set by the model to the number of a stage's first
    /// layer (see [`Stage::recurrent_layers`]), by [`crate::Encoder`] to
    /// each of its layers in turn, and read by [`crate::RecurrentLayer`].
    pub layer: usize,
    /// Per slot: whether an explanation was asked for.
    asked: Vec<bool>,
    /// Per slot: why the sequence's explanation stopped, if it did.
    failures: Vec<Option<Error>>,
}

impl<'a, T: Float> Backward<'a, T> {
    /// A context for a batch packed as `packing` that explains the
    /// sequences in the slots where `asked` is true.
    pub fn new(packing: &'a Packing, rules: &'a Composite<T>, asked: Vec<bool>) -> Self {
        let sequences = packing.sequences();
        Self {
            packing,
            rules,
            workspace: crate::buffers::workspace(),
            leftovers: Leftovers::zeros(sequences),
            layer: 0,
            asked,
            failures: (0..sequences).map(|_| None).collect(),
        }
    }

    /// Whether the sequence in `slot` is being explained (asked for, and
    /// finite so far). Per-sequence stages skip the others.
    pub fn explains(&self, slot: usize) -> bool {
        self.asked.get(slot) == Some(&true) && self.failures[slot].is_none()
    }

    /// The slots being explained.
    pub fn explained(&self) -> Vec<usize> {
        (0..self.packing.sequences())
            .filter(|&slot| self.explains(slot))
            .collect()
    }

    /// Marks every explained sequence whose relevance in `relevance`
    /// (arranged as `port`) or whose leftovers stopped being finite as
    /// failed, naming the `stage` and its `rules`, and clears the failed
    /// sequences' columns, so that nothing of them travels further down.
    pub fn check(&mut self, port: Port, relevance: &mut DMatrix<T>, stage: &str, rules: impl Fn() -> String) {
        // The usual case, everything finite, in one pass over memory.
        let finite_leftovers = |slot: usize| {
            self.leftovers.initial_state[slot].is_finite() && self.leftovers.unexplained[slot].is_finite()
        };
        if relevance.iter().all(|v| v.is_finite()) && (0..self.packing.sequences()).all(finite_leftovers) {
            return;
        }
        for slot in 0..self.packing.sequences() {
            if !self.explains(slot) {
                continue;
            }
            let columns = port.columns_of(self.packing, slot);
            let finite_leftovers =
                self.leftovers.initial_state[slot].is_finite() && self.leftovers.unexplained[slot].is_finite();
            let bad_column = columns
                .iter()
                .position(|&col| relevance.column(col).iter().any(|v| !v.is_finite()));
            if bad_column.is_none() && finite_leftovers {
                continue;
            }
            self.failures[slot] = Some(Error::NonFiniteRelevance {
                method: "lrp",
                stage: stage.to_string(),
                rules: rules(),
                position: match port.per {
                    Per::Position => Some(bad_column.unwrap_or(0)),
                    Per::Sequence => None,
                },
            });
            for col in columns {
                relevance.column_mut(col).fill(T::zero());
            }
        }
    }

    /// The leftovers and, per slot, the failure (if any) of the pass. The
    /// workspace is kept for this thread's next pass.
    pub fn finish(self) -> (Leftovers<T>, Vec<Option<Error>>) {
        crate::buffers::recycle_workspace(self.workspace);
        (self.leftovers, self.failures)
    }
}

/// One stage of a model, run over a packed batch. Implement it in your own
/// crate to add a stage anywhere in a model's chain ([`crate::Model::builder`]:
/// a projection or a layer norm in front of the encoder, a pooling, a head);
/// new recurrent cells implement [`crate::RecurrentCell`] instead.
///
/// ## Shapes
/// `input` is `[I, N]` or `[I, S]` as [`Stage::input`] says, the output
/// `[O, N]` or `[O, S]` as [`Stage::output`] says (`N` positions, `S`
/// sequences of the [`Packing`]).
pub trait Stage<T: Float>: Send + Sync + fmt::Debug + 'static {
    /// What the forward pass keeps for the backward passes.
    type Trace: Send + Sync + 'static;

    /// The stage in messages (`"the head"`).
    fn name(&self) -> String;

    /// What the stage reads.
    fn input(&self) -> Port;

    /// What the stage writes.
    fn output(&self) -> Port;

    /// Runs the batch. The output ([`Stage::output_of`]) must be the
    /// matrix [`Stage::output`] promises, `[O, N]` or `[O, S]`: the model
    /// checks it, and an output of another shape fails the batch with
    /// [`Error::StageShape`] naming the stage (as does a message of
    /// another shape than the input's from `lrp` or `gradient`).
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Self::Trace;

    /// The outputs of a trace, arranged as [`Stage::output`].
    fn output_of<'t>(&self, trace: &'t Self::Trace) -> &'t DMatrix<T>;

    /// Whether every value of the trace is finite.
    fn is_finite(&self, trace: &Self::Trace) -> bool {
        self.output_of(trace).iter().all(|v| v.is_finite())
    }

    /// LRP: splits `relevance_out` (arranged as the output) over the
    /// inputs, *adding* into `relevance_in` (arranged as the input).
    /// Sequences the context does not explain may be skipped; relevance
    /// that goes nowhere is added to `context.leftovers`.
    fn lrp(
        &self,
        trace: &Self::Trace,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    );

    /// Backpropagation: `grad_out` arranged as the output, the input
    /// gradient *added* into `grad_in`.
    fn gradient(
        &self,
        packing: &Packing,
        trace: &Self::Trace,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    );

    /// The rules this stage uses under `rules`, for messages.
    fn rule_names(&self, rules: &Composite<T>) -> String;

    /// The sites at which this stage asks the composite for a rule (none by
    /// default). [`crate::Model::sites`] gathers them, and `--rules` keys
    /// that select none of a model's sites are refused, so a stage that
    /// looks rules up lists its sites here.
    fn sites(&self) -> Vec<Site> {
        Vec::new()
    }

    /// Numbers the trace keeps per position, for sizing batches.
    fn trace_numbers_per_position(&self) -> usize {
        self.output().width
    }

    /// The length of a sequence of `length` positions after this stage
    /// (its own length by default). A stage that changes lengths (a
    /// strided convolution, a pooling over windows) writes its output
    /// packed as `packing.resized(|len| self.output_length(len))` (see
    /// [`Packing::resized`]), and the stages after it see that packing.
    /// It must not decrease for longer sequences (a batch where it does
    /// fails with [`Error::StagesDoNotFit`]), and a sequence it would leave
    /// empty is refused ([`Error::TooShort`]).
    fn output_length(&self, length: usize) -> usize {
        length
    }

    /// How many recurrent layers the stage holds (none by default; one
    /// for a [`crate::RecurrentLayer`], all of them for an
    /// [`crate::Encoder`]). A model numbers its recurrent layers along the
    /// chain, counting only these, so a stage in front that holds none
    /// (a projection, a layer norm) leaves the numbers behind it alone. A
    /// stage numbers its own layers from 0 in [`Stage::sites`] and the
    /// model shifts them; during LRP, [`Backward::layer`] is the model's
    /// number of the stage's first layer.
    fn recurrent_layers(&self) -> usize {
        0
    }
}

/// A [`Stage`] with its trace type erased, so that a model can hold stages
/// of any kind.
pub(crate) trait AnyStage<T: Float>: Send + Sync + fmt::Debug {
    fn name(&self) -> String;
    fn input(&self) -> Port;
    fn output(&self) -> Port;
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Box<dyn Any + Send + Sync>;
    fn output_of<'t>(&self, trace: &'t (dyn Any + Send + Sync)) -> &'t DMatrix<T>;
    fn is_finite(&self, trace: &(dyn Any + Send + Sync)) -> bool;
    fn lrp(
        &self,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    );
    fn gradient(
        &self,
        packing: &Packing,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    );
    fn rule_names(&self, rules: &Composite<T>) -> String;
    fn sites(&self) -> Vec<Site>;
    fn trace_numbers_per_position(&self) -> usize;
    fn output_length(&self, length: usize) -> usize;
    fn recurrent_layers(&self) -> usize;
    /// The stage itself, to find the built-in stages in a chain.
    fn as_any(&self) -> &dyn Any;
}

/// The trace of a stage, back from its erased form. A trace always comes
/// from the stage that reads it (the model keeps both together), so a
/// mismatch is a bug in this crate.
pub(crate) fn typed<S: Stage<T>, T: Float>(trace: &(dyn Any + Send + Sync)) -> &S::Trace {
    trace
        .downcast_ref::<S::Trace>()
        .expect("a stage's trace always comes from the same stage")
}

impl<T: Float, S: Stage<T>> AnyStage<T> for S {
    fn name(&self) -> String {
        Stage::name(self)
    }
    fn input(&self) -> Port {
        Stage::input(self)
    }
    fn output(&self) -> Port {
        Stage::output(self)
    }
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> Box<dyn Any + Send + Sync> {
        Box::new(Stage::forward(self, packing, input))
    }
    fn output_of<'t>(&self, trace: &'t (dyn Any + Send + Sync)) -> &'t DMatrix<T> {
        Stage::output_of(self, typed::<S, T>(trace))
    }
    fn is_finite(&self, trace: &(dyn Any + Send + Sync)) -> bool {
        Stage::is_finite(self, typed::<S, T>(trace))
    }
    fn lrp(
        &self,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        Stage::lrp(self, typed::<S, T>(trace), input, relevance_out, relevance_in, context)
    }
    fn gradient(
        &self,
        packing: &Packing,
        trace: &(dyn Any + Send + Sync),
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        Stage::gradient(self, packing, typed::<S, T>(trace), input, grad_out, grad_in)
    }
    fn rule_names(&self, rules: &Composite<T>) -> String {
        Stage::rule_names(self, rules)
    }
    fn sites(&self) -> Vec<Site> {
        Stage::sites(self)
    }
    fn trace_numbers_per_position(&self) -> usize {
        Stage::trace_numbers_per_position(self)
    }
    fn output_length(&self, length: usize) -> usize {
        Stage::output_length(self, length)
    }
    fn recurrent_layers(&self) -> usize {
        Stage::recurrent_layers(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A lookup table from token ids to vectors (`nn.Embedding`).
///
/// As a stage it reads the token ids as values, `[1, N]` (exact: a
/// vocabulary has at most 2^24 rows, which `f32` holds exactly), and writes
/// their vectors `[E, N]`. Its LRP gives each token the relevance of its
/// vector, summed over dimensions; ids are discrete, so it has no gradient.
///
/// ## Parameters
/// - `table`: `[E, V]`, column `k` is the vector of token `k`
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding<T: Float> {
    table: DMatrix<T>,
}

/// The largest vocabulary: ids below 2^24 are exact in `f32`.
const MAX_VOCABULARY: usize = 1 << 24;

impl<T: Float> Embedding<T> {
    /// An embedding of `table` `[E, V]` (column `k` is token `k`'s vector).
    pub fn new(table: DMatrix<T>) -> Result<Self, Error> {
        if table.ncols() > MAX_VOCABULARY {
            return Err(Error::Config {
                key: "vocab_size".into(),
                message: format!("{} rows is more than the {MAX_VOCABULARY} supported", table.ncols()),
            });
        }
        Ok(Self { table })
    }

    /// The tensor of a PyTorch `nn.Embedding` of `vocab_size` rows of
    /// width `width`: `embedding.weight` `[V, E]`.
    pub fn pytorch_tensors(vocab_size: usize, width: usize) -> Manifest {
        vec![("embedding.weight".into(), vec![vocab_size, width])]
    }

    /// The table from its [`Embedding::pytorch_tensors`], checked and in
    /// order.
    pub(crate) fn from_pytorch(tensors: &mut Ordered) -> Result<Self, Error> {
        // Stored [V, E]; kept transposed so a token's vector is a column.
        Self::new(tensors.matrix::<T>()?.transpose())
    }

    /// Width `E` of the vectors.
    pub fn width(&self) -> usize {
        self.table.nrows()
    }

    /// The vector `[E]` of token `id` (panics past the vocabulary).
    pub(crate) fn vector(&self, id: usize) -> nalgebra::DMatrixView<'_, T> {
        self.table.columns(id, 1)
    }

    /// Number of tokens `V`.
    pub fn vocab_size(&self) -> usize {
        self.table.ncols()
    }

    /// The token ids of one sequence as a `[1, T]` stage input, after
    /// checking that each is in the vocabulary.
    pub fn ids(&self, ids: &[usize]) -> Result<DMatrix<T>, Error> {
        if let Some((position, &id)) = ids.iter().enumerate().find(|(_, &id)| id >= self.vocab_size()) {
            return Err(Error::TokenOutOfRange {
                position,
                id,
                vocab_size: self.vocab_size(),
            });
        }
        Ok(DMatrix::from_iterator(
            1,
            ids.len(),
            ids.iter().map(|&id| T::of_f64(id as f64)),
        ))
    }
}

impl<T: Float> Stage<T> for Embedding<T> {
    /// The vectors `[E, N]`.
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the embedding".into()
    }

    fn input(&self) -> Port {
        Port::positions(1)
    }

    fn output(&self) -> Port {
        Port::positions(self.width())
    }

    /// Ids past the vocabulary (which [`Embedding::ids`] refuses) give
    /// zero vectors.
    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let mut vectors = DMatrix::zeros(self.width(), input.ncols());
        for (col, &id) in input.iter().enumerate() {
            let id = id.as_f64();
            if id >= 0.0 && (id as usize) < self.vocab_size() {
                vectors.set_column(col, &self.table.column(id as usize));
            }
        }
        vectors
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
        for (col, r) in relevance_out.column_iter().enumerate() {
            relevance_in[(0, col)] += r.sum();
        }
    }

    fn gradient(&self, _: &Packing, _: &DMatrix<T>, _: &DMatrix<T>, _: &DMatrix<T>, _: &mut DMatrix<T>) {}

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (a token keeps its vector's relevance)".into()
    }
}

/// Where the final state of the sequence in `slot` lives in a `[D, N]`
/// output (PyTorch's `h_n`): the forward direction after `x_T`, the
/// reverse direction after `x_1`. An empty sequence has none.
fn final_columns(packing: &Packing, slot: usize) -> Option<[usize; 2]> {
    let len = packing.length(slot);
    (len > 0).then(|| [packing.column(len - 1, slot), packing.column(0, slot)])
}

/// The final state `[D]` of every sequence: each direction's state after
/// the last input it read. Positions to sequences, `[D, N] -> [D, S]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalState {
    hidden: usize,
    directions: usize,
}

impl FinalState {
    /// The final state of an output of `directions` (1 or 2) directions
    /// of `hidden` units each.
    pub fn new(hidden: usize, directions: usize) -> Self {
        Self { hidden, directions }
    }

    /// Copies the final state of `slot` out of `states` `[D, N]` into `out`.
    pub(crate) fn gather<T: Float>(&self, packing: &Packing, slot: usize, states: &DMatrix<T>, out: &mut [T]) {
        let h = self.hidden;
        let columns = final_columns(packing, slot).into_iter().flatten();
        for (d, col) in columns.take(self.directions).enumerate() {
            out[d * h..(d + 1) * h].copy_from_slice(&states.column(col).as_slice()[d * h..(d + 1) * h]);
        }
    }

    /// Adds `message` `[D]`, addressed to the final state of `slot`, into
    /// `board` `[D, N]` at the positions each half came from.
    pub(crate) fn scatter<T: Float>(&self, packing: &Packing, slot: usize, board: &mut DMatrix<T>, message: &[T]) {
        let h = self.hidden;
        let columns = final_columns(packing, slot).into_iter().flatten();
        for (d, col) in columns.take(self.directions).enumerate() {
            for k in 0..h {
                board[(d * h + k, col)] += message[d * h + k];
            }
        }
    }
}

impl<T: Float> Stage<T> for FinalState {
    /// The final states `[D, S]`.
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the final state".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.hidden * self.directions)
    }

    fn output(&self) -> Port {
        Port::sequences(self.hidden * self.directions)
    }

    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let mut out = DMatrix::zeros(input.nrows(), packing.sequences());
        for slot in 0..packing.sequences() {
            self.gather(packing, slot, input, out.column_mut(slot).as_mut_slice());
        }
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
        context: &mut Backward<'_, T>,
    ) {
        for slot in context.explained() {
            self.scatter(
                context.packing,
                slot,
                relevance_in,
                relevance_out.column(slot).as_slice(),
            );
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
            self.scatter(packing, slot, grad_in, grad_out.column(slot).as_slice());
        }
    }

    fn rule_names(&self, _rules: &Composite<T>) -> String {
        "none (a copy)".into()
    }

    fn trace_numbers_per_position(&self) -> usize {
        0
    }
}

/// Attention pooling (see [`Attention`]) of every sequence, with the
/// final state as the query where the kind uses one: writes the context
/// `[D]`, or the context and the final state `[2D]` (`context+last`).
/// Positions to sequences, `[D, N] -> [D or 2D, S]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionPooling<T: Float> {
    attention: Attention<T>,
    last: FinalState,
    with_last: bool,
}

/// The forward pass of an [`AttentionPooling`].
#[derive(Debug)]
pub struct AttentionPoolingTrace<T: Float> {
    /// Per slot.
    sequences: Vec<AttentionTrace<T>>,
    /// `[D or 2D, S]`.
    output: DMatrix<T>,
}

impl<T: Float> AttentionPoolingTrace<T> {
    /// The attention of the sequence in `slot`.
    pub fn sequence(&self, slot: usize) -> &AttentionTrace<T> {
        &self.sequences[slot]
    }
}

impl<T: Float> AttentionPooling<T> {
    /// `attention` over an output of `directions` directions of `hidden`
    /// units, writing the context, and the final state after it when
    /// `with_last`. An error ([`Error::PartShape`]) when the attention's
    /// parts do not fit each other or outputs of `hidden * directions`
    /// values per position.
    ///
    /// ```
    /// use lrp_models::{Attention, AttentionPooling};
    /// use nalgebra::DMatrix;
    /// // A bilinear attention over 4 values per position, given an encoder of 3 units:
    /// let attention = Attention::<f64>::General { bilinear: DMatrix::zeros(4, 4) };
    /// let err = AttentionPooling::new(attention, 3, 1, false).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "shape: the attention's bilinear weight (over 3 values per position) is [4, 4]; it must be [3, 3]"
    /// );
    /// ```
    pub fn new(attention: Attention<T>, hidden: usize, directions: usize, with_last: bool) -> Result<Self, Error> {
        attention.check_width(hidden.saturating_mul(directions))?;
        Ok(Self {
            attention,
            last: FinalState::new(hidden, directions),
            with_last,
        })
    }

    fn width(&self) -> usize {
        self.last.hidden * self.last.directions
    }
}

impl<T: Float> Stage<T> for AttentionPooling<T> {
    type Trace = AttentionPoolingTrace<T>;

    fn name(&self) -> String {
        "the attention pooling".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width())
    }

    fn output(&self) -> Port {
        Port::sequences(if self.with_last { 2 } else { 1 } * self.width())
    }

    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> AttentionPoolingTrace<T> {
        let d = self.width();
        let mut output = DMatrix::zeros(Stage::<T>::output(self).width, packing.sequences());
        let mut sequences = Vec::with_capacity(packing.sequences());
        let mut last = DVector::zeros(d);
        for slot in 0..packing.sequences() {
            self.last.gather(packing, slot, input, last.as_mut_slice());
            let trace = self.attention.forward(&packing.gather(input, slot), &last);
            let mut column = output.column_mut(slot);
            column.rows_mut(0, d).copy_from(trace.context());
            if self.with_last {
                column.rows_mut(d, d).copy_from(&last);
            }
            sequences.push(trace);
        }
        AttentionPoolingTrace { sequences, output }
    }

    fn output_of<'t>(&self, trace: &'t AttentionPoolingTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    /// The context is a linear step with the attention weights as
    /// connection weights (`docs/rules.md`), explained with the rule at
    /// `Site::attention()`; the final state's part goes back where it
    /// came from.
    fn lrp(
        &self,
        trace: &AttentionPoolingTrace<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let d = self.width();
        let rule = context.rules.rule_at(&Site::attention());
        let packing = context.packing;
        for slot in context.explained() {
            let message = relevance_out.column(slot);
            let mut r_seq = DMatrix::zeros(d, packing.length(slot));
            context.leftovers.unexplained[slot] += Attention::redistribute(
                rule,
                &trace.sequences[slot],
                &packing.gather(input, slot),
                &message.as_slice()[..d],
                r_seq.as_mut_slice(),
                &mut context.workspace,
            );
            packing.scatter_add(relevance_in, slot, &r_seq);
            if self.with_last {
                self.last.scatter(packing, slot, relevance_in, &message.as_slice()[d..]);
            }
        }
    }

    /// The true gradient, through the softmax and the score function.
    fn gradient(
        &self,
        packing: &Packing,
        trace: &AttentionPoolingTrace<T>,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let d = self.width();
        for slot in 0..packing.sequences() {
            let message = grad_out.column(slot);
            if message.iter().all(|v| v.is_zero()) {
                continue;
            }
            let mut last = DVector::zeros(d);
            self.last.gather(packing, slot, input, last.as_mut_slice());
            let seq = packing.gather(input, slot);
            let mut d_seq = DMatrix::zeros(d, seq.ncols());
            let mut d_last = DVector::zeros(d);
            if self.with_last {
                d_last.copy_from(&message.rows(d, d));
            }
            let d_context = message.rows(0, d).into_owned();
            self.attention
                .gradient(&trace.sequences[slot], &seq, &last, &d_context, &mut d_seq, &mut d_last);
            packing.scatter_add(grad_in, slot, &d_seq);
            self.last.scatter(packing, slot, grad_in, d_last.as_slice());
        }
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        rules.rule_at(&Site::attention()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![Site::attention()]
    }

    fn trace_numbers_per_position(&self) -> usize {
        16
    }
}

/// A linear layer over per-sequence features: the head of a classifier,
/// `[F, S] -> [C, S]`, explained with the rule at `Site::head()`.
impl<T: Float> Stage<T> for Linear<T> {
    /// The outputs `[C, S]`.
    type Trace = DMatrix<T>;

    fn name(&self) -> String {
        "the head".into()
    }

    fn input(&self) -> Port {
        Port::sequences(self.weight.ncols())
    }

    fn output(&self) -> Port {
        Port::sequences(self.weight.nrows())
    }

    fn forward(&self, _packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
        let mut out = DMatrix::zeros(self.weight.nrows(), input.ncols());
        for (col, x) in input.column_iter().enumerate() {
            out.set_column(col, &Linear::forward(self, &x.into_owned()));
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
        let rule = context.rules.rule_at(&Site::head());
        for slot in context.explained() {
            context.leftovers.unexplained[slot] += self.redistribute(
                rule,
                input.column(slot).as_slice(),
                trace.column(slot).as_slice(),
                relevance_out.column(slot).as_slice(),
                relevance_in.column_mut(slot).as_mut_slice(),
                &mut context.workspace,
            );
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
        grad_in.gemm_tr(T::one(), &self.weight, grad_out, T::one());
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        rules.rule_at(&Site::head()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![Site::head()]
    }

    fn trace_numbers_per_position(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tokens of width 2: token `k` is `(k, -k)`.
    fn embedding() -> Embedding<f64> {
        Embedding::new(DMatrix::from_fn(
            2,
            3,
            |r, k| if r == 0 { k as f64 } else { -(k as f64) },
        ))
        .unwrap()
    }

    #[test]
    fn an_embedding_looks_tokens_up_and_gives_each_its_vectors_relevance() {
        let embedding = embedding();
        let packing = Packing::new(&[3, 1]);
        // Packed by step: (t0 s0, t0 s1, t1 s0, t2 s0) for ids [2, 0, 1] and [1].
        let ids = DMatrix::from_row_slice(1, 4, &[2.0, 1.0, 0.0, 1.0]);
        let vectors = Stage::forward(&embedding, &packing, &ids);
        assert_eq!(vectors.as_slice(), &[2.0, -2.0, 1.0, -1.0, 0.0, 0.0, 1.0, -1.0]);
        let rules = Composite::epsilon(0.0, 0.0).unwrap();
        let mut context = Backward::new(&packing, &rules, vec![true, true]);
        let relevance_out = DMatrix::from_row_slice(2, 4, &[0.5, 1.0, 2.0, 4.0, 0.25, -1.0, 8.0, 0.0]);
        let mut relevance_in = DMatrix::zeros(1, 4);
        Stage::lrp(
            &embedding,
            &vectors,
            &ids,
            &relevance_out,
            &mut relevance_in,
            &mut context,
        );
        assert_eq!(relevance_in.as_slice(), &[0.75, 0.0, 10.0, 4.0]);
    }

    #[test]
    fn an_embedding_refuses_ids_past_its_vocabulary() {
        assert_eq!(
            embedding().ids(&[0, 3]).unwrap_err(),
            Error::TokenOutOfRange {
                position: 1,
                id: 3,
                vocab_size: 3
            }
        );
        assert_eq!(embedding().ids(&[2, 0]).unwrap().as_slice(), &[2.0, 0.0]);
    }

    #[test]
    fn the_final_state_reads_each_direction_where_it_ended_and_sends_relevance_back_there() {
        // Two directions of 1 unit; sequences of lengths 2 and 1.
        let stage = FinalState::new(1, 2);
        let packing = Packing::new(&[2, 1]);
        // Columns: (t0 s0, t0 s1, t1 s0); rows: forward, backward state.
        let states = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
        let last = Stage::<f64>::forward(&stage, &packing, &states);
        // Forward after the last step, backward after the first.
        assert_eq!(last.as_slice(), &[3.0, 10.0, 2.0, 20.0]);
        let mut board = DMatrix::zeros(2, 3);
        Stage::<f64>::gradient(&stage, &packing, &last, &states, &last, &mut board);
        assert_eq!(board.as_slice(), &[0.0, 10.0, 2.0, 20.0, 3.0, 0.0]);
    }
}
