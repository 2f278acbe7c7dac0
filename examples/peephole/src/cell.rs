use lrp_core::{Block, BlockConnection, BlockInput, BlockMut, BlockStep, Float, LinearRule, Workspace};
use lrp_layers::LayerRules;
use lrp_models::activation::{sigmoid, tanh};
use lrp_models::{
    add_recurrent_product, column, column_part, project_inputs, redistribute_sum, step_block, step_block_mut, Encoder,
    Error, Leftovers, Packing, RecurrentCell, RecurrentLayer, Tensors,
};
use nalgebra::{DMatrix, DVector};

/// Gate blocks in the fused matrices, PyTorch order (as `LstmCell`).
const I: usize = 0;
const F: usize = 1;
const G: usize = 2;
const O: usize = 3;
/// The gates' names in the order of the fused matrices: the rule sites.
const GATES: [&str; 4] = ["i", "f", "g", "o"];
/// Which peephole (index into [`PeepholeCell::peepholes`]) gate `k` has.
const PEEPHOLE_OF: [Option<usize>; 4] = [Some(0), Some(1), None, Some(2)];

fn sum<T: Float>(values: &[T]) -> T {
    values.iter().fold(T::zero(), |a, &b| a + b)
}

/// One direction of a peephole LSTM layer (see the crate documentation for
/// the equations and the LRP).
///
/// ## Parameters
/// - `w_ih`: `[4H, E]`, gate blocks i, f, g, o (PyTorch order)
/// - `w_hh`: `[4H, H]`
/// - `bias`: `[4H]`, `b_ih + b_hh`
/// - `peepholes`: `p_i`, `p_f`, `p_o`, `[H]` each
#[derive(Debug, Clone, PartialEq)]
pub struct PeepholeCell<T: Float> {
    w_ih: DMatrix<T>,
    w_hh: DMatrix<T>,
    bias: DVector<T>,
    peepholes: [DVector<T>; 3],
}

/// The forward pass of one peephole LSTM direction over a packed batch, in
/// processing order (the zero initial states are not stored).
///
/// ## Shapes
/// - `pre`: `[4H, N]` gate pre-activations, bias and peephole terms included
/// - `gates`: `[4H, N]` activations i, f, g, o
/// - `c`, `h`, `tanh_c`: `[H, N]`
#[derive(Debug, Clone)]
pub struct PeepholeTrace<T: Float> {
    pre: DMatrix<T>,
    gates: DMatrix<T>,
    c: DMatrix<T>,
    h: DMatrix<T>,
    tanh_c: DMatrix<T>,
}

fn check_shape(name: &str, expected: Vec<usize>, found: Vec<usize>) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::TensorShape {
            name: name.into(),
            expected,
            found,
        })
    }
}

/// The first non-finite value of a matrix, by row-major index (the index
/// convention of [`Error::NonFiniteWeight`]).
fn check_finite<T: Float>(name: &str, m: &DMatrix<T>) -> Result<(), Error> {
    for r in 0..m.nrows() {
        for c in 0..m.ncols() {
            let value = m[(r, c)];
            if !value.is_finite() {
                return Err(Error::NonFiniteWeight {
                    name: name.into(),
                    index: r * m.ncols() + c,
                    value: value.as_f64(),
                });
            }
        }
    }
    Ok(())
}

impl<T: Float> PeepholeCell<T> {
    /// A cell from its weights: `w_ih` `[4H, E]`, `w_hh` `[4H, H]` (gate
    /// blocks i, f, g, o), `bias` `[4H]` (`b_ih + b_hh`) and the peepholes
    /// `[p_i, p_f, p_o]`, `[H]` each. Shapes and finiteness are checked; the
    /// errors name the parameter as `new` takes it.
    pub fn new(
        w_ih: DMatrix<T>,
        w_hh: DMatrix<T>,
        bias: DVector<T>,
        peepholes: [DVector<T>; 3],
    ) -> Result<Self, Error> {
        let h = w_hh.ncols();
        check_shape("w_hh", vec![4 * h, h], vec![w_hh.nrows(), h])?;
        check_shape("w_ih", vec![4 * h, w_ih.ncols()], vec![w_ih.nrows(), w_ih.ncols()])?;
        check_shape("bias", vec![4 * h], vec![bias.len()])?;
        for (name, p) in ["p_i", "p_f", "p_o"].iter().zip(&peepholes) {
            check_shape(name, vec![h], vec![p.len()])?;
        }
        check_finite("w_ih", &w_ih)?;
        check_finite("w_hh", &w_hh)?;
        check_finite("bias", &DMatrix::from_column_slice(bias.len(), 1, bias.as_slice()))?;
        for (name, p) in ["p_i", "p_f", "p_o"].iter().zip(&peepholes) {
            check_finite(name, &DMatrix::from_column_slice(p.len(), 1, p.as_slice()))?;
        }
        Ok(Self {
            w_ih,
            w_hh,
            bias,
            peepholes,
        })
    }

    /// A cell from named tensors (row-major values, as `lrp-io` reads them):
    /// `{prefix}weight_ih` `[4H, E]`, `{prefix}weight_hh` `[4H, H]`,
    /// `{prefix}bias_ih` and `{prefix}bias_hh` `[4H]`, and
    /// `{prefix}peephole_i`, `{prefix}peephole_f`, `{prefix}peephole_o`
    /// `[H]`. Errors: missing tensors (all of them named), wrong shapes,
    /// non-finite values.
    ///
    /// A plain map, not [`lrp_models::Tensors`]: that type has no public
    /// way to read a tensor back out.
    pub fn load(tensors: &Tensors, prefix: &str) -> Result<Self, Error> {
        let names = [
            "weight_ih",
            "weight_hh",
            "bias_ih",
            "bias_hh",
            "peephole_i",
            "peephole_f",
            "peephole_o",
        ]
        .map(|n| format!("{prefix}{n}"));
        let missing: Vec<String> = names.iter().filter(|n| !tensors.contains(n)).cloned().collect();
        if !missing.is_empty() {
            return Err(Error::MissingTensors { names: missing });
        }
        let get = |k: usize| tensors.get(&names[k]).expect("presence checked above");
        let hh = get(1);
        let h = hh.shape.get(1).copied().unwrap_or(0);
        let e = get(0).shape.get(1).copied().unwrap_or(0);
        let expected = [
            vec![4 * h, e],
            vec![4 * h, h],
            vec![4 * h],
            vec![4 * h],
            vec![h],
            vec![h],
            vec![h],
        ];
        for (k, shape) in expected.iter().enumerate() {
            let t = get(k);
            check_shape(&names[k], shape.clone(), t.shape.clone())?;
            if let Some((index, &value)) = t.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFiniteWeight {
                    name: names[k].clone(),
                    index,
                    value,
                });
            }
            // A tensor whose values do not fill its shape is malformed.
            let count: usize = t.shape.iter().product();
            if t.values.len() != count {
                return Err(Error::TensorShape {
                    name: names[k].clone(),
                    expected: shape.clone(),
                    found: vec![t.values.len()],
                });
            }
        }
        let matrix = |k: usize| {
            let t = get(k);
            DMatrix::from_row_iterator(t.shape[0], t.shape[1], t.values.iter().map(|&v| T::of_f64(v)))
        };
        let vector =
            |k: usize| DVector::from_iterator(get(k).values.len(), get(k).values.iter().map(|&v| T::of_f64(v)));
        Self::new(
            matrix(0),
            matrix(1),
            vector(2) + vector(3),
            [vector(4), vector(5), vector(6)],
        )
    }

    /// The peepholes `[p_i, p_f, p_o]`.
    pub fn peepholes(&self) -> &[DVector<T>; 3] {
        &self.peepholes
    }

    /// Rows of gate block `k` of a fused `[4H, _]` matrix, as a view.
    fn block<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        let h = self.w_hh.ncols();
        m.rows(k * h, h)
    }

    /// LRP through gate `k`'s pre-activation for the `active` sequences of
    /// step `cols`: one linear step over `x_t`, `h_{t-1}` and, for a gate
    /// with a peephole, the cell state it reads. Adds into `relevance_in`
    /// (`[E, N]`, columns `cols`), `r_h_prev` and `r_peephole` (`[H, B]`,
    /// columns `0..active`).
    #[allow(clippy::too_many_arguments)]
    fn gate_step(
        &self,
        k: usize,
        rule: &dyn LinearRule<T>,
        tr: &PeepholeTrace<T>,
        cols: std::ops::Range<usize>,
        inputs: [Block<'_, T>; 3],
        relevance: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        r_h_prev: &mut DMatrix<T>,
        r_peephole: &mut DMatrix<T>,
        unexplained: &mut [T],
        workspace: &mut Workspace<T>,
    ) {
        let (h, e, active) = (self.w_hh.ncols(), self.w_ih.ncols(), cols.len());
        let [x, h_prev, state] = inputs;
        let mut groups = vec![
            BlockInput {
                input: x,
                connection: BlockConnection::Dense(self.block(&self.w_ih, k)),
            },
            BlockInput {
                input: h_prev,
                connection: BlockConnection::Dense(self.block(&self.w_hh, k)),
            },
        ];
        if let Some(p) = PEEPHOLE_OF[k] {
            groups.push(BlockInput {
                input: state,
                connection: BlockConnection::Diagonal(self.peepholes[p].as_slice()),
            });
        }
        let step = BlockStep {
            groups: &groups,
            bias: Some(Block::broadcast(&self.bias.as_slice()[k * h..(k + 1) * h], active)),
            output: step_block(&tr.pre, k * h, h, cols.clone()),
        };
        let mut targets: Vec<BlockMut<'_, T>> = vec![
            step_block_mut(relevance_in, 0, e, cols.clone()),
            step_block_mut(r_h_prev, 0, h, 0..active),
        ];
        if PEEPHOLE_OF[k].is_some() {
            targets.push(step_block_mut(r_peephole, 0, h, 0..active));
        }
        rule.redistribute_block(
            &step,
            step_block(relevance, 0, h, 0..active),
            &mut targets,
            unexplained,
            workspace,
        );
    }
}

impl<T: Float> RecurrentCell<T> for PeepholeCell<T> {
    type Trace = PeepholeTrace<T>;

    fn kind(&self) -> &str {
        "peephole-lstm"
    }

    fn input_size(&self) -> usize {
        self.w_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    /// The input projections of all steps in one product, then per step one
    /// product `W_hh [h_{t-1}]` for the sequences still running; the
    /// peephole terms are added element-wise (`i`, `f` before `c_t`, `o`
    /// after).
    fn forward(&self, packing: &Packing, input: &DMatrix<T>) -> PeepholeTrace<T> {
        let (h, n) = (self.w_hh.ncols(), input.ncols());
        let [p_i, p_f, p_o] = &self.peepholes;
        let mut tr = PeepholeTrace {
            pre: project_inputs(&self.w_ih, self.bias.as_slice(), input),
            gates: DMatrix::zeros(4 * h, n),
            c: DMatrix::zeros(h, n),
            h: DMatrix::zeros(h, n),
            tanh_c: DMatrix::zeros(h, n),
        };
        for t in 0..packing.steps() {
            let cols = packing.step_columns(t);
            let prev = packing.previous_start(t);
            if let Some(from) = prev {
                add_recurrent_product(&mut tr.pre, cols.clone(), &self.w_hh, &tr.h, from);
            }
            for (slot, col) in cols.enumerate() {
                let pre = &mut tr.pre.as_mut_slice()[col * 4 * h..(col + 1) * 4 * h];
                let gates = &mut tr.gates.as_mut_slice()[col * 4 * h..(col + 1) * 4 * h];
                // The previous step's columns precede this step's.
                let (before, from_col) = tr.c.as_mut_slice().split_at_mut(col * h);
                let c_next = &mut from_col[..h];
                let c_prev = prev.map(|from| &before[(from + slot) * h..(from + slot + 1) * h]);
                let tc = &mut tr.tanh_c.as_mut_slice()[col * h..(col + 1) * h];
                let h_next = &mut tr.h.as_mut_slice()[col * h..(col + 1) * h];
                for k in 0..h {
                    if let Some(c) = c_prev {
                        pre[I * h + k] += p_i[k] * c[k];
                        pre[F * h + k] += p_f[k] * c[k];
                    }
                    let (i, f, g) = (sigmoid(pre[I * h + k]), sigmoid(pre[F * h + k]), tanh(pre[G * h + k]));
                    let kept = c_prev.map_or(T::zero(), |c| f * c[k]);
                    c_next[k] = kept + i * g;
                    pre[O * h + k] += p_o[k] * c_next[k];
                    let o = sigmoid(pre[O * h + k]);
                    tc[k] = tanh(c_next[k]);
                    h_next[k] = o * tc[k];
                    gates[I * h + k] = i;
                    gates[F * h + k] = f;
                    gates[G * h + k] = g;
                    gates[O * h + k] = o;
                }
            }
        }
        tr
    }

    fn hidden<'t>(&self, trace: &'t PeepholeTrace<T>) -> &'t DMatrix<T> {
        &trace.h
    }

    fn is_finite(&self, trace: &PeepholeTrace<T>) -> bool {
        trace.pre.iter().all(|v| v.is_finite())
    }

    /// LRP through the batch, per step from the last (the crate
    /// documentation says why in this order): `R(h_t)` = outside +
    /// recurrence; `h = o tanh(c)` by the gate rule; `o`'s step (its
    /// peephole share joins `R(c_t)`); `c_t = f c_{t-1} + i g` as an
    /// accumulation step; the products by the gate rule; `g`'s step, then
    /// `i`'s and `f`'s (their peephole shares join `R(c_{t-1})`).
    fn lrp(
        &self,
        packing: &Packing,
        tr: &PeepholeTrace<T>,
        input: &DMatrix<T>,
        relevance_out: &DMatrix<T>,
        relevance_in: &mut DMatrix<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
        leftovers: &mut Leftovers<T>,
    ) {
        let (h, e, batch) = (self.w_hh.ncols(), self.w_ih.ncols(), packing.sequences());
        let projection = GATES.map(|gate| rules.projection(gate));
        let accumulation = rules.accumulation();
        let (output_product, forget_product, input_product) = (
            rules.product(GATES[O]),
            rules.product(GATES[F]),
            rules.product(GATES[I]),
        );
        // Gate relevance passes the sigmoid unchanged; a gate whose
        // product's rule never feeds it (signal-take-all) is skipped.
        let feeds = [
            input_product.gate_receives_relevance(),
            forget_product.gate_receives_relevance(),
            true,
            output_product.gate_receives_relevance(),
        ];

        // Per-step buffers `[H, B]`: column `slot` is the sequence in it.
        let zero = || DMatrix::<T>::zeros(h, batch);
        // Relevance the recurrence carries back to h_{t-1} and c_{t-1}.
        let (mut r_h_rec, mut r_c_rec) = (zero(), zero());
        let (mut r_c, mut r_tanh_c) = (zero(), zero());
        let (mut fc, mut ig, mut r_fc, mut r_ig) = (zero(), zero(), zero(), zero());
        let mut r_gate = [zero(), zero(), zero(), zero()];
        // h_0 = c_0 = 0, the recurrent and peephole inputs of step 0.
        let state_zero = zero();
        let mut r_h = vec![T::zero(); h];

        for t in (0..packing.steps()).rev() {
            let cols = packing.step_columns(t);
            let active = cols.len();
            let running_on = packing.continuing(t);
            let prev = packing.previous_start(t);
            for (slot, col) in cols.clone().enumerate() {
                let gate = |k: usize| column_part(&tr.gates, col, k * h, h);
                // Outside (head, attention, layer above) + the recurrence.
                r_h.copy_from_slice(column(relevance_out, col));
                if slot < running_on {
                    for (r, &from_next) in r_h.iter_mut().zip(column(&r_h_rec, slot)) {
                        *r += from_next;
                    }
                }
                // h_t = o * tanh(c_t); tanh passes relevance unchanged.
                let r_tc = &mut r_tanh_c.as_mut_slice()[slot * h..(slot + 1) * h];
                output_product.split(
                    gate(O),
                    column(&tr.tanh_c, col),
                    &r_h,
                    &mut r_gate[O].as_mut_slice()[slot * h..(slot + 1) * h],
                    r_tc,
                );
                let from_next = column(&r_c_rec, slot);
                let r_c = &mut r_c.as_mut_slice()[slot * h..(slot + 1) * h];
                for k in 0..h {
                    r_c[k] = r_tc[k] + if slot < running_on { from_next[k] } else { T::zero() };
                }
                let c_prev = prev.map(|from| column(&tr.c, from + slot));
                let (fc, ig) = (
                    &mut fc.as_mut_slice()[slot * h..(slot + 1) * h],
                    &mut ig.as_mut_slice()[slot * h..(slot + 1) * h],
                );
                for k in 0..h {
                    fc[k] = c_prev.map_or(T::zero(), |c| gate(F)[k] * c[k]);
                    ig[k] = gate(I)[k] * gate(G)[k];
                }
            }
            // r_h_rec has been read for this step; from here on it collects
            // what the gate steps send to h_{t-1}.
            r_h_rec.columns_mut(0, active).fill(T::zero());
            let x = step_block(input, 0, e, cols.clone());
            let (h_prev, c_prev) = match prev {
                Some(from) => (
                    step_block(&tr.h, 0, h, from..from + active),
                    step_block(&tr.c, 0, h, from..from + active),
                ),
                None => (
                    step_block(&state_zero, 0, h, 0..active),
                    step_block(&state_zero, 0, h, 0..active),
                ),
            };

            // o reads c_t: its peephole share is relevance of c_t, so it
            // joins R(c_t) before c_t is split below.
            if feeds[O] {
                self.gate_step(
                    O,
                    projection[O],
                    tr,
                    cols.clone(),
                    [x, h_prev, step_block(&tr.c, 0, h, cols.clone())],
                    &r_gate[O],
                    relevance_in,
                    &mut r_h_rec,
                    &mut r_c,
                    &mut leftovers.unexplained[..active],
                    workspace,
                );
            }

            // c_t = f * c_{t-1} + i * g: one linear step, N = 2H.
            redistribute_sum(
                accumulation,
                &fc,
                &ig,
                step_block(&tr.c, 0, h, cols.clone()),
                &r_c,
                &mut r_fc,
                &mut r_ig,
                &mut leftovers.unexplained,
                workspace,
            );
            for (slot, col) in cols.clone().enumerate() {
                let gate = |k: usize| column_part(&tr.gates, col, k * h, h);
                let c_prev = prev.map_or(column(&state_zero, slot), |from| column(&tr.c, from + slot));
                let [r_i, r_f, r_g, _] = &mut r_gate;
                // Overwrites r_c_rec: the peephole shares are added after.
                forget_product.split(
                    gate(F),
                    c_prev,
                    column(&r_fc, slot),
                    &mut r_f.as_mut_slice()[slot * h..(slot + 1) * h],
                    &mut r_c_rec.as_mut_slice()[slot * h..(slot + 1) * h],
                );
                input_product.split(
                    gate(I),
                    gate(G),
                    column(&r_ig, slot),
                    &mut r_i.as_mut_slice()[slot * h..(slot + 1) * h],
                    &mut r_g.as_mut_slice()[slot * h..(slot + 1) * h],
                );
            }

            // g (no peephole), then i and f, whose peephole shares are
            // relevance of c_{t-1} and join what the recurrence carries.
            for k in [G, I, F] {
                if !feeds[k] {
                    continue;
                }
                self.gate_step(
                    k,
                    projection[k],
                    tr,
                    cols.clone(),
                    [x, h_prev, c_prev],
                    &r_gate[k],
                    relevance_in,
                    &mut r_h_rec,
                    &mut r_c_rec,
                    &mut leftovers.unexplained[..active],
                    workspace,
                );
            }
        }
        if packing.steps() > 0 {
            for slot in 0..batch {
                leftovers.initial_state[slot] += sum(column(&r_h_rec, slot)) + sum(column(&r_c_rec, slot));
            }
        }
    }

    /// Backpropagation through time with the peephole paths: `o` reads
    /// `c_t`, so `dc_t` gains `p_o ⊙ d(pre_o)`; `i` and `f` read `c_{t-1}`,
    /// so the gradient carried to `c_{t-1}` gains `p_i ⊙ d(pre_i) + p_f ⊙
    /// d(pre_f)`.
    fn gradient(
        &self,
        packing: &Packing,
        tr: &PeepholeTrace<T>,
        _input: &DMatrix<T>,
        grad_out: &DMatrix<T>,
        grad_in: &mut DMatrix<T>,
    ) {
        let (h, batch) = (self.w_hh.ncols(), packing.sequences());
        let [p_i, p_f, p_o] = &self.peepholes;
        let mut d_pre = DMatrix::zeros(4 * h, grad_out.ncols());
        let (mut dh_rec, mut dc_rec) = (DMatrix::<T>::zeros(h, batch), DMatrix::<T>::zeros(h, batch));
        let mut dh = vec![T::zero(); h];
        for t in (0..packing.steps()).rev() {
            let cols = packing.step_columns(t);
            let running_on = packing.continuing(t);
            let prev = packing.previous_start(t);
            for (slot, col) in cols.clone().enumerate() {
                let carried = slot < running_on;
                for (k, d) in dh.iter_mut().enumerate() {
                    *d = grad_out[(k, col)] + if carried { dh_rec[(k, slot)] } else { T::zero() };
                }
                let g = column(&tr.gates, col);
                let tc = column(&tr.tanh_c, col);
                let c_prev = prev.map(|from| column(&tr.c, from + slot));
                let d = &mut d_pre.as_mut_slice()[col * 4 * h..(col + 1) * 4 * h];
                let dc_next = &mut dc_rec.as_mut_slice()[slot * h..(slot + 1) * h];
                for k in 0..h {
                    let (i, f, gg, o) = (g[I * h + k], g[F * h + k], g[G * h + k], g[O * h + k]);
                    let carried_c = if carried { dc_next[k] } else { T::zero() };
                    let d_o = dh[k] * tc[k] * o * (T::one() - o);
                    let dc = carried_c + dh[k] * o * (T::one() - tc[k] * tc[k]) + d_o * p_o[k];
                    let d_i = dc * gg * i * (T::one() - i);
                    let d_f = c_prev.map_or(T::zero(), |c| dc * c[k] * f * (T::one() - f));
                    dc_next[k] = dc * f + d_i * p_i[k] + d_f * p_f[k];
                    d[I * h + k] = d_i;
                    d[F * h + k] = d_f;
                    d[G * h + k] = dc * i * (T::one() - gg * gg);
                    d[O * h + k] = d_o;
                }
            }
            if t > 0 {
                let active = cols.len();
                let mut carry = dh_rec.columns_mut(0, active);
                carry.gemm_tr(T::one(), &self.w_hh, &d_pre.columns(cols.start, active), T::zero());
            }
        }
        grad_in.gemm_tr(T::one(), &self.w_ih, &d_pre, T::one());
    }

    fn rule_names(&self, rules: &LayerRules<'_, T>) -> [String; 3] {
        let distinct = |names: Vec<&str>| {
            let mut seen: Vec<&str> = Vec::new();
            for name in names {
                if !seen.contains(&name) {
                    seen.push(name);
                }
            }
            seen.join("/")
        };
        [
            distinct(GATES.iter().map(|&gate| rules.projection(gate).name()).collect()),
            rules.accumulation().name().to_string(),
            distinct(["o", "f", "i"].iter().map(|&gate| rules.product(gate).name()).collect()),
        ]
    }
}

/// An encoder of peephole LSTM layers from named tensors: layer `k`'s
/// forward cell is [`PeepholeCell::load`] with prefix `{prefix}l{k}.`, its
/// backward cell (when `bidirectional`) `{prefix}l{k}_reverse.`. Layer 0
/// reads the width of its `weight_ih`; each layer above reads the one
/// below (the encoder checks the widths).
pub fn peephole_encoder<T: Float>(
    tensors: &Tensors,
    prefix: &str,
    num_layers: usize,
    bidirectional: bool,
) -> Result<Encoder<T>, Error> {
    let mut layers = Vec::with_capacity(num_layers);
    for k in 0..num_layers {
        let forward = PeepholeCell::<T>::load(tensors, &format!("{prefix}l{k}."))?;
        layers.push(if bidirectional {
            let backward = PeepholeCell::<T>::load(tensors, &format!("{prefix}l{k}_reverse."))?;
            RecurrentLayer::bidirectional(forward, backward)?
        } else {
            RecurrentLayer::unidirectional(forward)
        });
    }
    Encoder::new(layers)
}
