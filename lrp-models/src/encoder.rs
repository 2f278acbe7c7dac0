use std::any::Any;
use std::sync::Arc;

use lrp_core::Float;
use lrp_layers::{Composite, Direction, Site};
use nalgebra::DMatrix;

use crate::buffers;
use crate::cell::{distinct, AnyCell, RecurrentCell};
use crate::packing::Packing;
use crate::stage::{Backward, FinalState, Port, Stage};
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

    /// The sites of this layer when it is layer `layer` of an encoder: each
    /// direction's cell's operations.
    pub fn sites_at(&self, layer: usize) -> Vec<Site> {
        let mut sites = Vec::new();
        for (d, cell) in self.directions.iter().enumerate() {
            let direction = Direction::of_index(d);
            sites.extend(
                cell.operations()
                    .into_iter()
                    .map(|op| Site::encoder(layer, direction, op)),
            );
        }
        sites
    }

    /// Both directions' rules when this is layer `layer` of an encoder,
    /// each name once, for messages.
    fn rule_names_at(&self, layer: usize, composite: &Composite<T>) -> String {
        let names: Vec<[String; 3]> = self
            .directions
            .iter()
            .enumerate()
            .map(|(d, cell)| cell.rule_names(&composite.layer(layer, Direction::of_index(d))))
            .collect();
        let part = |i: usize| distinct(names.iter().flat_map(|n| n[i].split('/')));
        format!("{} (projections), {} (sums), {} (gates)", part(0), part(1), part(2))
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

/// The forward pass of one [`RecurrentLayer`] over a packed batch.
///
/// ## Shapes
/// - `output`: `[D, N]`, both directions' states in position order
pub struct LayerTrace<T: Float> {
    output: DMatrix<T>,
    /// `cells[d]`: the trace of direction `d`.
    cells: Vec<Box<dyn Any + Send + Sync>>,
}

impl<T: Float> LayerTrace<T> {
    /// The layer's outputs `[D, N]`.
    pub fn output(&self) -> &DMatrix<T> {
        &self.output
    }
}

impl<T: Float> std::fmt::Debug for LayerTrace<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerTrace")
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// The layer's outputs go back to this thread's free list (see `buffers`).
impl<T: Float> Drop for LayerTrace<T> {
    fn drop(&mut self) {
        buffers::recycle_in_place(&mut self.output);
    }
}

/// The forward pass of an encoder over a packed batch (see [`Packing`]):
/// one [`LayerTrace`] per layer, bottom first.
#[derive(Debug)]
pub struct EncoderTrace<T: Float> {
    layers: Vec<LayerTrace<T>>,
}

impl<T: Float> EncoderTrace<T> {
    /// The top layer's outputs `[D, N]`.
    pub fn top(&self) -> &DMatrix<T> {
        &self.layers.last().expect("an encoder has at least one layer").output
    }

    /// Every layer's outputs `[D, N]`, bottom first.
    pub fn layer_outputs(&self) -> impl Iterator<Item = &DMatrix<T>> {
        self.layers.iter().map(|layer| &layer.output)
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

    /// The final state of the top layer, as a stage.
    pub fn final_state(&self) -> FinalState {
        FinalState::new(self.hidden_size(), self.directions())
    }
}

impl<T: Float> Stage<T> for RecurrentLayer<T> {
    type Trace = LayerTrace<T>;

    fn name(&self) -> String {
        format!("a {} layer", self.kind())
    }

    fn input(&self) -> Port {
        Port::positions(self.input_size())
    }

    fn output(&self) -> Port {
        Port::positions(self.output_width())
    }

    /// Each direction over the batch, the backward one over the inputs
    /// mirrored per sequence; the states are written back in position
    /// order, `[h_fwd(t); h_bwd(t)]`.
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> LayerTrace<T> {
        let h = self.hidden_size();
        // Every column of every direction is written below.
        let mut output = buffers::overwritten(self.output_width(), input.ncols());
        let mut cells = Vec::with_capacity(self.directions());
        for (d, cell) in self.directions.iter().enumerate() {
            let cell_trace = if d == 0 {
                cell.forward(packing, input)
            } else {
                let backwards = mirrored(packing, input);
                let trace = cell.forward(packing, &backwards);
                buffers::recycle(backwards);
                trace
            };
            let states = cell.hidden(cell_trace.as_ref());
            if states.shape() != (h, input.ncols()) {
                // A cell whose states disagree with its hidden size: an
                // output of the shape it gave, which the model refuses,
                // naming this stage (a cell of another crate may do this).
                let shape = (states.nrows() * self.directions(), states.ncols());
                cells.push(cell_trace);
                buffers::recycle(output);
                return LayerTrace {
                    output: DMatrix::zeros(shape.0, shape.1),
                    cells,
                };
            }
            for col in 0..input.ncols() {
                let position = if d == 0 { col } else { packing.reversed()[col] };
                output
                    .view_mut((d * h, position), (h, 1))
                    .copy_from(&states.column(col));
            }
            cells.push(cell_trace);
        }
        LayerTrace { output, cells }
    }

    fn output_of<'t>(&self, trace: &'t LayerTrace<T>) -> &'t DMatrix<T> {
        &trace.output
    }

    fn is_finite(&self, trace: &LayerTrace<T>) -> bool {
        self.directions
            .iter()
            .zip(&trace.cells)
            .all(|(cell, t)| cell.is_finite(t.as_ref()))
    }

    /// Each direction with the rules of layer `context.layer` and its
    /// direction.
    fn lrp(
        &self,
        trace: &LayerTrace<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        let (packing, k) = (context.packing, context.layer);
        each_direction(
            packing,
            self,
            input,
            relevance_out,
            relevance_in,
            |d, cell, input, own, board| {
                let rules = context.rules.layer(k, Direction::of_index(d));
                cell.lrp(
                    packing,
                    trace.cells[d].as_ref(),
                    input,
                    own,
                    board,
                    &rules,
                    &mut context.workspace,
                    &mut context.leftovers,
                );
            },
        );
    }

    fn gradient(
        &self,
        packing: &Packing,
        trace: &LayerTrace<T>,
        input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        each_direction(packing, self, input, grad_out, grad_in, |d, cell, input, own, board| {
            cell.gradient(packing, trace.cells[d].as_ref(), input, own, board);
        });
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        self.rule_names_at(0, rules)
    }

    fn sites(&self) -> Vec<Site> {
        self.sites_at(0)
    }

    /// About a dozen numbers per hidden unit and direction (gates,
    /// pre-activations, states).
    fn trace_numbers_per_position(&self) -> usize {
        self.output_width() * 12
    }
    fn recurrent_layers(&self) -> usize {
        1
    }
}

impl<T: Float> Stage<T> for Encoder<T> {
    type Trace = EncoderTrace<T>;

    fn name(&self) -> String {
        "the encoder".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.input_size())
    }

    fn output(&self) -> Port {
        Port::positions(self.output_width())
    }

    /// Every layer over a packed batch `x` `[E, N]`, each reading the
    /// outputs of the one below.
    fn forward(&self, packing: &Packing, x: &DMatrix<T>) -> EncoderTrace<T> {
        let mut layers: Vec<LayerTrace<T>> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let input = layers.last().map_or(x, |below| &below.output);
            let trace = Stage::forward(layer, packing, input);
            // A layer whose output has another shape than it says stops
            // the encoder there; the model refuses its output.
            let fits = trace.output.shape() == (layer.output_width(), x.ncols());
            layers.push(trace);
            if !fits {
                break;
            }
        }
        EncoderTrace { layers }
    }

    fn output_of<'t>(&self, trace: &'t EncoderTrace<T>) -> &'t DMatrix<T> {
        trace.top()
    }

    fn is_finite(&self, trace: &EncoderTrace<T>) -> bool {
        self.layers
            .iter()
            .zip(&trace.layers)
            .all(|(layer, t)| Stage::is_finite(layer, t))
    }

    /// From the top layer's outputs down to the inputs: layer by layer,
    /// each direction adds what it sends to its inputs into the board of
    /// the layer below. A sequence whose relevance stops being finite
    /// fails there, naming the layer, its rules and the first such
    /// position; the others are unaffected (sequences never mix).
    fn lrp(
        &self,
        trace: &EncoderTrace<T>,
        x: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        context: &mut Backward<'_, T>,
    ) {
        // The model's number of this encoder's bottom layer.
        let first = context.layer;
        let mut arriving: Option<DMatrix<T>> = None;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &trace.layers[k - 1].output };
            let mut below = if k == 0 {
                std::mem::replace(relevance_in, DMatrix::zeros(0, 0))
            } else {
                buffers::zeros(input.nrows(), input.ncols())
            };
            context.layer = first + k;
            Stage::lrp(
                layer,
                &trace.layers[k],
                input,
                arriving.as_ref().unwrap_or(relevance_out),
                &mut below,
                context,
            );
            let (stage, rules) = (
                format!("layer {} of {}", first + k + 1, first + self.num_layers()),
                context.rules,
            );
            context.check(Stage::<T>::input(layer), &mut below, &stage, || {
                layer.rule_names_at(first + k, rules)
            });
            if let Some(done) = arriving.replace(below) {
                buffers::recycle(done);
            }
        }
        *relevance_in = arriving.expect("an encoder has at least one layer");
    }

    fn gradient(
        &self,
        packing: &Packing,
        trace: &EncoderTrace<T>,
        x: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let mut arriving: Option<DMatrix<T>> = None;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &trace.layers[k - 1].output };
            let mut below = if k == 0 {
                std::mem::replace(grad_in, DMatrix::zeros(0, 0))
            } else {
                buffers::zeros(input.nrows(), input.ncols())
            };
            Stage::gradient(
                layer,
                packing,
                &trace.layers[k],
                input,
                arriving.as_ref().unwrap_or(grad_out),
                &mut below,
            );
            if let Some(done) = arriving.replace(below) {
                buffers::recycle(done);
            }
        }
        *grad_in = arriving.expect("an encoder has at least one layer");
    }

    fn rule_names(&self, rules: &Composite<T>) -> String {
        (0..self.num_layers())
            .map(|k| format!("layer {}: {}", k + 1, self.layers[k].rule_names_at(k, rules)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn sites(&self) -> Vec<Site> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(k, layer)| layer.sites_at(k))
            .collect()
    }

    fn trace_numbers_per_position(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| Stage::trace_numbers_per_position(layer))
            .sum()
    }
    fn recurrent_layers(&self) -> usize {
        self.num_layers()
    }
}
