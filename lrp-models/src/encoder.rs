use lrp_core::{Float, Relevance, Workspace};
use lrp_layers::{Composite, Direction};
use nalgebra::{DMatrix, DVector};

use crate::cell::{distinct, position, Cell, CellTrace};
use crate::Error;

/// A stack of recurrent layers, each with one or two directions
/// (`nn.LSTM` / `nn.GRU` with `num_layers` and `bidirectional`).
///
/// Layer `k + 1` reads layer `k`'s outputs, both directions concatenated:
/// the output of a layer at position `t` is `[h_fwd(t); h_bwd(t)]`, width
/// `D = H * directions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder<T: Float> {
    /// `layers[k][d]`: layer `k`, direction `d` (0 forward, 1 reverse).
    pub(crate) layers: Vec<Vec<Cell<T>>>,
    pub(crate) input_size: usize,
}

/// The forward pass of an encoder.
///
/// ## Shapes
/// - `outputs[k]`: `[D, T]`, layer `k`'s outputs (column `t` = position `t`)
#[derive(Debug, Clone)]
pub struct EncoderTrace<T: Float> {
    pub(crate) outputs: Vec<DMatrix<T>>,
    pub(crate) cells: Vec<Vec<CellTrace<T>>>,
}

impl<T: Float> EncoderTrace<T> {
    /// Whether every pre-activation of every layer is finite.
    pub fn is_finite(&self) -> bool {
        self.cells.iter().flatten().all(|c| c.is_finite())
    }

    /// The top layer's outputs `[D, T]`.
    pub fn top(&self) -> &DMatrix<T> {
        self.outputs.last().expect("an encoder has at least one layer")
    }

    /// Every layer's outputs `[D, T]`, bottom first.
    pub fn layer_outputs(&self) -> &[DMatrix<T>] {
        &self.outputs
    }
}

impl<T: Float> Encoder<T> {
    /// Width `E` of the input vectors.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Hidden size `H` of one direction.
    pub fn hidden_size(&self) -> usize {
        self.layers[0][0].hidden_size()
    }

    /// Number of directions (1 or 2).
    pub fn directions(&self) -> usize {
        self.layers[0].len()
    }

    /// Width `D` of one output position.
    pub fn output_width(&self) -> usize {
        self.hidden_size() * self.directions()
    }

    /// Number of stacked layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Runs every layer over equal-length sequences `[E, T]` together (one
    /// recurrent matrix product per step and direction for the batch).
    pub(crate) fn forward_batch(&self, xs: &[&DMatrix<T>]) -> Vec<EncoderTrace<T>> {
        let h = self.hidden_size();
        let len = xs.first().map_or(0, |x| x.ncols());
        let mut traces: Vec<EncoderTrace<T>> = xs
            .iter()
            .map(|_| EncoderTrace {
                outputs: Vec::new(),
                cells: Vec::new(),
            })
            .collect();
        for layer in &self.layers {
            let inputs: Vec<&DMatrix<T>> = xs
                .iter()
                .zip(&traces)
                .map(|(x, tr)| tr.outputs.last().unwrap_or(x))
                .collect();
            // by_direction[d][b]: direction d of sequence b.
            let by_direction: Vec<Vec<CellTrace<T>>> = layer
                .iter()
                .enumerate()
                .map(|(d, cell)| cell.forward_batch(&inputs, d == 1))
                .collect();
            let mut per_sequence: Vec<Vec<CellTrace<T>>> = xs.iter().map(|_| Vec::with_capacity(layer.len())).collect();
            for direction in by_direction {
                for (b, trace) in direction.into_iter().enumerate() {
                    per_sequence[b].push(trace);
                }
            }
            for (tr, cells) in traces.iter_mut().zip(per_sequence) {
                let mut out = DMatrix::zeros(h * layer.len(), len);
                for (d, trace) in cells.iter().enumerate() {
                    let states = trace.hidden();
                    for s in 0..len {
                        let p = position(s, len, d == 1);
                        out.view_mut((d * h, p), (h, 1)).copy_from(&states.column(s + 1));
                    }
                }
                tr.outputs.push(out);
                tr.cells.push(cells);
            }
        }
        traces
    }

    /// The final state `[D]` (PyTorch's `h_n` of the top layer): the forward
    /// direction after `x_T`, the reverse direction after `x_1`.
    pub(crate) fn last(&self, trace: &EncoderTrace<T>) -> DVector<T> {
        let top = trace.top();
        let (h, len) = (self.hidden_size(), top.ncols());
        let mut last = DVector::zeros(self.output_width());
        last.rows_mut(0, h).copy_from(&top.view((0, len - 1), (h, 1)));
        if self.directions() == 2 {
            last.rows_mut(h, h).copy_from(&top.view((h, 0), (h, 1)));
        }
        last
    }

    /// Adds `message` `[D]`, addressed to the final state, into a `[D, T]`
    /// board of the top layer's outputs (where each half of `last` came from).
    pub(crate) fn add_to_last(&self, board: &mut [T], message: &[T]) {
        let (h, d) = (self.hidden_size(), self.output_width());
        let len = board.len() / d;
        if len == 0 || message.len() != d {
            return;
        }
        let add = |board: &mut [T], p: usize, from: usize| {
            for k in 0..h {
                board[p * d + from + k] += message[from + k];
            }
        };
        add(board, len - 1, 0);
        if self.directions() == 2 {
            add(board, 0, h);
        }
    }

    /// LRP from the top layer's outputs down to the inputs. `top` is the
    /// relevance arriving at each top output position from outside the
    /// encoder; layer by layer, each direction adds what it sends to its
    /// inputs into the board of the layer below.
    ///
    /// Returns the input relevance `[T, E]`, the initial-state relevance of
    /// all layers and directions, and the unexplained relevance; or, as soon
    /// as a layer's relevance stops being finite, an error naming the layer,
    /// its rules and the first such position.
    pub(crate) fn lrp(
        &self,
        trace: &EncoderTrace<T>,
        x: &DMatrix<T>,
        top: Relevance<T>,
        composite: &Composite<T>,
        workspace: &mut Workspace<T>,
    ) -> Result<(Relevance<T>, T, T), Error> {
        let h = self.hidden_size();
        let len = x.ncols();
        let (mut initial, mut unexplained) = (T::zero(), T::zero());
        let mut arriving = top;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &trace.outputs[k - 1] };
            let mut below = Relevance::zeros(len, input.nrows());
            for (d, cell) in layer.iter().enumerate() {
                let rules = composite.layer(k, Direction::of_index(d));
                let left = cell.lrp(
                    &trace.cells[k][d],
                    input,
                    &arriving,
                    d * h,
                    &mut below,
                    &rules,
                    workspace,
                );
                initial += left.initial_state;
                unexplained += left.unexplained;
            }
            let leftovers_finite = initial.is_finite() && unexplained.is_finite();
            if let Some(position) = below.first_non_finite_position().or((!leftovers_finite).then_some(0)) {
                return Err(Error::NonFiniteRelevance {
                    method: "lrp",
                    stage: format!("layer {} of {}", k + 1, self.num_layers()),
                    rules: {
                        // Both directions' rules, each name once.
                        let names: Vec<[String; 3]> = layer
                            .iter()
                            .enumerate()
                            .map(|(d, cell)| cell.rule_names(&composite.layer(k, Direction::of_index(d))))
                            .collect();
                        let part = |i: usize| distinct(names.iter().flat_map(|n| n[i].split('/')));
                        format!("{} (projections), {} (sums), {} (gates)", part(0), part(1), part(2))
                    },
                    position: Some(position),
                });
            }
            arriving = below;
        }
        Ok((arriving, initial, unexplained))
    }

    /// Gradient from the top layer's outputs (`top` `[D, T]`) to the inputs
    /// `[E, T]`.
    pub(crate) fn gradient(&self, trace: &EncoderTrace<T>, x: &DMatrix<T>, top: DMatrix<T>) -> DMatrix<T> {
        let h = self.hidden_size();
        let mut arriving = top;
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let input = if k == 0 { x } else { &trace.outputs[k - 1] };
            let mut below = DMatrix::zeros(input.nrows(), input.ncols());
            for (d, cell) in layer.iter().enumerate() {
                cell.gradient(&trace.cells[k][d], input, &arriving, d * h, &mut below);
            }
            arriving = below;
        }
        arriving
    }
}
