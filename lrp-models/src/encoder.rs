use std::any::Any;
use std::sync::Arc;

use lrp_core::{Float, Workspace};
use lrp_layers::{Composite, Direction};
use nalgebra::DMatrix;

use crate::buffers;
use crate::cell::{distinct, AnyCell, Leftovers, RecurrentCell};
use crate::packing::Packing;
use crate::Error;

/// One recurrent layer: one cell reading forwards, or two (the second
/// reading backwards) whose outputs are concatenated, `[h_fwd(t); h_bwd(t)]`.
///
/// Cells are shared, not copied, when a layer is cloned.
#[derive(Debug, Clone)]
pub struct RecurrentLayer<T: Float> {
    directions: Vec<Arc<dyn AnyCell<T>>>,
}

impl<T: Float> RecurrentLayer<T> {
    /// A layer reading forwards only.
    pub fn unidirectional(cell: impl RecurrentCell<T>) -> Self {
        Self {
            directions: vec![Arc::new(cell)],
        }
    }

    /// A layer of two directions: `forward` reads `x_1 .. x_T`, `backward`
    /// reads `x_T .. x_1`. Both must read the same width and have the same
    /// hidden size.
    pub fn bidirectional(forward: impl RecurrentCell<T>, backward: impl RecurrentCell<T>) -> Result<Self, Error> {
        if (forward.input_size(), forward.hidden_size()) != (backward.input_size(), backward.hidden_size()) {
            return Err(Error::Config {
                key: "encoder".into(),
                message: format!(
                    "the two directions differ: {}x{} forwards, {}x{} backwards (input x hidden)",
                    forward.input_size(),
                    forward.hidden_size(),
                    backward.input_size(),
                    backward.hidden_size()
                ),
            });
        }
        Ok(Self {
            directions: vec![Arc::new(forward), Arc::new(backward)],
        })
    }

    /// Number of directions (1 or 2).
    pub fn directions(&self) -> usize {
        self.directions.len()
    }

    /// The kind of the forward cell, for messages (`"lstm"`).
    pub fn kind(&self) -> &str {
        self.directions[0].kind()
    }

    /// Width `E` of the inputs.
    pub fn input_size(&self) -> usize {
        self.directions[0].input_size()
    }

    /// Hidden size `H` of one direction.
    pub fn hidden_size(&self) -> usize {
        self.directions[0].hidden_size()
    }

    /// Width `D = H * directions` of one output position.
    pub fn output_width(&self) -> usize {
        self.hidden_size() * self.directions()
    }

    /// The cell of direction `d` (0 forwards, 1 backwards) as `C`, when it
    /// is one.
    pub fn cell<C: RecurrentCell<T>>(&self, d: usize) -> Option<&C> {
        self.directions.get(d)?.as_any().downcast_ref::<C>()
    }
}

/// A stack of recurrent layers (`nn.LSTM` / `nn.GRU` with `num_layers` and
/// `bidirectional`, or layers of any [`RecurrentCell`]).
///
/// Layer `k + 1` reads layer `k`'s outputs, both directions concatenated.
#[derive(Debug, Clone)]
pub struct Encoder<T: Float> {
    layers: Vec<RecurrentLayer<T>>,
}

/// The forward pass of an encoder over a packed batch (see [`Packing`]).
///
/// ## Shapes
/// - `outputs[k]`: `[D, N]`, layer `k`'s outputs in position order
pub struct EncoderTrace<T: Float> {
    pub(crate) outputs: Vec<DMatrix<T>>,
    /// `cells[k][d]`: the trace of direction `d` of layer `k`.
    cells: Vec<Vec<Box<dyn Any + Send + Sync>>>,
}

impl<T: Float> std::fmt::Debug for EncoderTrace<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderTrace")
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

/// The layers' outputs go back to this thread's free list (see `buffers`).
impl<T: Float> Drop for EncoderTrace<T> {
    fn drop(&mut self) {
        for m in &mut self.outputs {
            buffers::recycle_in_place(m);
        }
    }
}

impl<T: Float> EncoderTrace<T> {
    /// The top layer's outputs `[D, N]`.
    pub fn top(&self) -> &DMatrix<T> {
        self.outputs.last().expect("an encoder has at least one layer")
    }

    /// Every layer's outputs `[D, N]`, bottom first.
    pub fn layer_outputs(&self) -> &[DMatrix<T>] {
        &self.outputs
    }
}

/// Rows `[from, from + rows)` of `m` `[_, N]`, with the columns mirrored in
/// time per sequence when `mirror` (what a backwards direction reads in
/// processing order), in memory from the free list.
fn rows_in_order<T: Float>(packing: &Packing, m: &DMatrix<T>, from: usize, rows: usize, mirror: bool) -> DMatrix<T> {
    let (ld, n) = (m.nrows(), m.ncols());
    let mut out = buffers::overwritten(rows, n);
    let (source, target) = (m.as_slice(), out.as_mut_slice());
    for col in 0..n {
        let at = if mirror { packing.reversed()[col] } else { col };
        target[col * rows..(col + 1) * rows].copy_from_slice(&source[at * ld + from..at * ld + from + rows]);
    }
    out
}

/// `input`'s columns mirrored in time per sequence: what a backwards
/// direction reads in processing order. `[E, N]`.
fn mirrored<T: Float>(packing: &Packing, input: &DMatrix<T>) -> DMatrix<T> {
    rows_in_order(packing, input, 0, input.nrows(), true)
}

/// Runs a backward `pass` for every direction of `layer`: the pass gets
/// the direction's index, its input and the message arriving at its
/// outputs (rows `d * H ..` of `arriving`), both in processing order, and
/// a board in processing order to add its input message into, which ends
/// up in `below` in position order.
fn each_direction<T: Float>(
    packing: &Packing,
    layer: &RecurrentLayer<T>,
    input: &DMatrix<T>,
    arriving: &DMatrix<T>,
    below: &mut DMatrix<T>,
    mut pass: impl FnMut(usize, &dyn AnyCell<T>, &DMatrix<T>, &DMatrix<T>, &mut DMatrix<T>),
) {
    let h = layer.hidden_size();
    for (d, cell) in layer.directions.iter().enumerate() {
        let backwards = d == 1;
        let own = rows_in_order(packing, arriving, d * h, h, backwards);
        if backwards {
            let input = mirrored(packing, input);
            let mut processed = buffers::zeros(input.nrows(), input.ncols());
            pass(d, cell.as_ref(), &input, &own, &mut processed);
            for (col, &position) in packing.reversed().iter().enumerate() {
                let mut target = below.column_mut(position);
                target += processed.column(col);
            }
            buffers::recycle(processed);
            buffers::recycle(input);
        } else {
            pass(d, cell.as_ref(), input, &own, below);
        }
        buffers::recycle(own);
    }
}

impl<T: Float> Encoder<T> {
    /// A stack of layers, bottom first. Each layer must read the width the
    /// layer below writes.
    pub fn new(layers: Vec<RecurrentLayer<T>>) -> Result<Self, Error> {
        if layers.is_empty() {
            return Err(Error::Config {
                key: "encoder".into(),
                message: "an encoder needs at least one layer".into(),
            });
        }
        for (k, pair) in layers.windows(2).enumerate() {
            if pair[1].input_size() != pair[0].output_width() {
                return Err(Error::Config {
                    key: "encoder".into(),
                    message: format!(
                        "layer {} reads {} values per position, layer {} writes {}",
                        k + 2,
                        pair[1].input_size(),
                        k + 1,
                        pair[0].output_width()
                    ),
                });
            }
        }
        Ok(Self { layers })
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[RecurrentLayer<T>] {
        &self.layers
    }

    /// Width `E` of the input vectors.
    pub fn input_size(&self) -> usize {
        self.layers[0].input_size()
    }

    /// Hidden size `H` of one direction of the top layer.
    pub fn hidden_size(&self) -> usize {
        self.top_layer().hidden_size()
    }

    /// Number of directions of the top layer (1 or 2).
    pub fn directions(&self) -> usize {
        self.top_layer().directions()
    }

    /// Width `D` of one output position.
    pub fn output_width(&self) -> usize {
        self.top_layer().output_width()
    }

    /// Number of stacked layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn top_layer(&self) -> &RecurrentLayer<T> {
        self.layers.last().expect("an encoder has at least one layer")
    }

    /// Numbers kept per position by the forward trace, all layers (for
    /// sizing batches): about a dozen per hidden unit and direction.
    pub(crate) fn trace_numbers_per_position(&self) -> usize {
        self.layers.iter().map(|l| l.output_width() * 12).sum()
    }

    /// Runs every layer over a packed batch `x` `[E, N]`.
    pub(crate) fn forward(&self, packing: &Packing, x: &DMatrix<T>) -> EncoderTrace<T> {
        let mut trace = EncoderTrace {
            outputs: Vec::with_capacity(self.layers.len()),
            cells: Vec::with_capacity(self.layers.len()),
        };
        for layer in &self.layers {
            let input = trace.outputs.last().unwrap_or(x);
            let h = layer.hidden_size();
            // Every column of every direction is written below.
            let mut out = buffers::overwritten(layer.output_width(), input.ncols());
            let mut cells = Vec::with_capacity(layer.directions());
            for (d, cell) in layer.directions.iter().enumerate() {
                let cell_trace = if d == 0 {
                    cell.forward(packing, input)
                } else {
                    let backwards = mirrored(packing, input);
                    let trace = cell.forward(packing, &backwards);
                    buffers::recycle(backwards);
                    trace
                };
                let states = cell.hidden(cell_trace.as_ref());
                for col in 0..input.ncols() {
                    let position = if d == 0 { col } else { packing.reversed()[col] };
                    out.view_mut((d * h, position), (h, 1)).copy_from(&states.column(col));
                }
                cells.push(cell_trace);
            }
            trace.outputs.push(out);
            trace.cells.push(cells);
        }
        trace
    }

    /// Whether every cell's trace is finite.
    pub(crate) fn is_finite(&self, trace: &EncoderTrace<T>) -> bool {
        self.layers
            .iter()
            .zip(&trace.cells)
            .all(|(layer, cells)| layer.directions.iter().zip(cells).all(|(c, t)| c.is_finite(t.as_ref())))
    }

    /// The final state of the sequence in `slot` `[D]` (PyTorch's `h_n` of
    /// the top layer): the forward direction after `x_T`, the reverse
    /// direction after `x_1`; as the two columns of the top layer's outputs
    /// they come from.
    pub(crate) fn last_columns(&self, packing: &Packing, slot: usize) -> [usize; 2] {
        let len = packing.length(slot);
        [packing.column(len - 1, slot), packing.column(0, slot)]
    }

    /// Adds `message` `[D]`, addressed to the final state of `slot`, into a
    /// `[D, N]` board of the top layer's outputs (where each half of the
    /// final state came from).
    pub(crate) fn add_to_last(&self, packing: &Packing, slot: usize, board: &mut DMatrix<T>, message: &[T]) {
        let h = self.hidden_size();
        let [forwards, backwards] = self.last_columns(packing, slot);
        for d in 0..self.directions() {
            let col = if d == 0 { forwards } else { backwards };
            for k in 0..h {
                board[(d * h + k, col)] += message[d * h + k];
            }
        }
    }

    /// LRP from the top layer's outputs down to the inputs. `top` `[D, N]`
    /// is the relevance arriving at each top output position from outside
    /// the encoder; layer by layer, each direction adds what it sends to its
    /// inputs into the board of the layer below.
    ///
    /// Returns the input relevance `[E, N]` and each sequence's leftovers.
    /// A sequence whose relevance stops being finite gets an error naming
    /// the layer, its rules and the first such position; the others are
    /// unaffected (sequences never mix).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lrp(
        &self,
        packing: &Packing,
        trace: &EncoderTrace<T>,
        x: &DMatrix<T>,
        top: DMatrix<T>,
        composite: &Composite<T>,
        workspace: &mut Workspace<T>,
        failures: &mut [Option<Error>],
    ) -> (DMatrix<T>, Leftovers<T>) {
        let mut leftovers = Leftovers::zeros(packing.sequences());
        let mut arriving = top;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &trace.outputs[k - 1] };
            let mut below = buffers::zeros(input.nrows(), input.ncols());
            each_direction(
                packing,
                layer,
                input,
                &arriving,
                &mut below,
                |d, cell, input, own, board| {
                    let rules = composite.layer(k, Direction::of_index(d));
                    let cell_trace = trace.cells[k][d].as_ref();
                    cell.lrp(
                        packing,
                        cell_trace,
                        input,
                        own,
                        board,
                        &rules,
                        workspace,
                        &mut leftovers,
                    );
                },
            );
            for (slot, failure) in failures.iter_mut().enumerate() {
                if failure.is_some() {
                    continue;
                }
                let finite_leftovers =
                    leftovers.initial_state[slot].is_finite() && leftovers.unexplained[slot].is_finite();
                let first_bad = (0..packing.length(slot))
                    .find(|&t| below.column(packing.column(t, slot)).iter().any(|v| !v.is_finite()))
                    .or((!finite_leftovers).then_some(0));
                if let Some(position) = first_bad {
                    *failure = Some(Error::NonFiniteRelevance {
                        method: "lrp",
                        stage: format!("layer {} of {}", k + 1, self.num_layers()),
                        rules: self.rule_names(k, composite),
                        position: Some(position),
                    });
                }
            }
            buffers::recycle(std::mem::replace(&mut arriving, below));
        }
        (arriving, leftovers)
    }

    /// Both directions' rules of layer `k`, each name once, for messages.
    fn rule_names(&self, k: usize, composite: &Composite<T>) -> String {
        let names: Vec<[String; 3]> = self.layers[k]
            .directions
            .iter()
            .enumerate()
            .map(|(d, cell)| cell.rule_names(&composite.layer(k, Direction::of_index(d))))
            .collect();
        let part = |i: usize| distinct(names.iter().flat_map(|n| n[i].split('/')));
        format!("{} (projections), {} (sums), {} (gates)", part(0), part(1), part(2))
    }

    /// Gradient from the top layer's outputs (`top` `[D, N]`) to the inputs
    /// `[E, N]`.
    pub(crate) fn gradient(
        &self,
        packing: &Packing,
        trace: &EncoderTrace<T>,
        x: &DMatrix<T>,
        top: DMatrix<T>,
    ) -> DMatrix<T> {
        let mut arriving = top;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &trace.outputs[k - 1] };
            let mut below = buffers::zeros(input.nrows(), input.ncols());
            each_direction(
                packing,
                layer,
                input,
                &arriving,
                &mut below,
                |d, cell, input, own, board| {
                    cell.gradient(packing, trace.cells[k][d].as_ref(), input, own, board);
                },
            );
            buffers::recycle(std::mem::replace(&mut arriving, below));
        }
        arriving
    }
}
