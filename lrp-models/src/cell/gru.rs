use lrp_core::{Connection, Float, InputGroup, LinearStep, Relevance, Workspace};
use lrp_layers::LayerRules;
use nalgebra::{DMatrix, DVector, DVectorView, DVectorViewMut};

use super::{
    add_columns_by_position, add_into, column, column_part, position, project_inputs, run_together, sigmoid, sum, tanh,
    Leftover, Recurrence,
};

/// Gate blocks in the fused matrices, PyTorch order.
const R: usize = 0;
const Z: usize = 1;
const N: usize = 2;
/// The gates' names in the order of the fused matrices, for rule sites (the
/// reset gate, folded into `n`'s weights, has no site of its own).
pub(crate) const GATES: [&str; 3] = ["r", "z", "n"];
/// The products' names for rule sites: `(1 - z) * n`, then `z * h_{t-1}`.
pub(crate) const PRODUCTS: [&str; 2] = ["1-z", "z"];

/// One direction of a GRU layer (`nn.GRU` semantics):
///
/// ```text
/// r = σ(W_ir x + b_ir + W_hr h + b_hr)
/// z = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
/// h_t = (1 - z) * n + z * h_{t-1}
/// ```
///
/// ## Parameters
/// - `w_ih`: `[3H, E]`, gate blocks r, z, n
/// - `w_hh`: `[3H, H]`
/// - `b_ih`, `b_hh`: `[3H]` (kept apart: `b_hn` sits inside `r * (...)`)
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GruCell<T: Float> {
    pub(crate) w_ih: DMatrix<T>,
    pub(crate) w_hh: DMatrix<T>,
    pub(crate) b_ih: DVector<T>,
    pub(crate) b_hh: DVector<T>,
}

/// The forward pass of one GRU direction, in processing order.
///
/// ## Shapes
/// - `pre`: `[3H, T]` pre-activations of r, z and n (for n:
///   `W_in x + b_in + r * hn`)
/// - `gates`: `[3H, T]` activations r, z, n
/// - `hn`: `[H, T]`, `W_hn h_{t-1} + b_hn`
/// - `h`: `[H, T + 1]`, column 0 the zero initial state
#[derive(Debug, Clone)]
pub(crate) struct GruTrace<T: Float> {
    pub(crate) reverse: bool,
    pub(crate) pre: DMatrix<T>,
    pub(crate) gates: DMatrix<T>,
    pub(crate) hn: DMatrix<T>,
    pub(crate) h: DMatrix<T>,
}

impl<T: Float> Recurrence<T> for GruTrace<T> {
    fn states(&self) -> &DMatrix<T> {
        &self.h
    }

    /// Step `s`, given `W_hh h_{s} + b_hh` `[3H]`: completes the
    /// pre-activations and computes r, z, n and `h_{s+1}`.
    fn step(&mut self, s: usize, recurrent: &[T]) {
        let h = self.hn.nrows();
        let pre_s = &mut self.pre.as_mut_slice()[s * 3 * h..(s + 1) * 3 * h];
        let gates_s = &mut self.gates.as_mut_slice()[s * 3 * h..(s + 1) * 3 * h];
        let hn_s = &mut self.hn.as_mut_slice()[s * h..(s + 1) * h];
        let (h_prev, h_next) = self.h.as_mut_slice().split_at_mut((s + 1) * h);
        let (h_prev, h_next) = (&h_prev[s * h..], &mut h_next[..h]);
        for k in 0..2 * h {
            pre_s[k] += recurrent[k];
            gates_s[k] = sigmoid(pre_s[k]);
        }
        for k in 0..h {
            hn_s[k] = recurrent[N * h + k];
            pre_s[N * h + k] += gates_s[R * h + k] * hn_s[k];
        }
        for k in 0..h {
            let n = tanh(pre_s[N * h + k]);
            let z = gates_s[Z * h + k];
            gates_s[N * h + k] = n;
            h_next[k] = (T::one() - z) * n + z * h_prev[k];
        }
    }
}

impl<T: Float> GruCell<T> {
    pub(crate) fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    fn block<'a>(&self, m: &'a DMatrix<T>, k: usize) -> nalgebra::DMatrixView<'a, T> {
        let h = self.hidden_size();
        m.rows(k * h, h)
    }

    /// Runs sequences of equal length together (see `run_together`);
    /// `b_hh` goes with the recurrent product, since `b_hn` sits inside
    /// `r * (...)`.
    pub(crate) fn forward_batch(&self, inputs: &[&DMatrix<T>], reverse: bool) -> Vec<GruTrace<T>> {
        let h = self.hidden_size();
        let mut traces: Vec<GruTrace<T>> = inputs
            .iter()
            .map(|x| {
                let len = x.ncols();
                GruTrace {
                    reverse,
                    pre: project_inputs(&self.w_ih, &self.b_ih, x, reverse),
                    gates: DMatrix::zeros(3 * h, len),
                    hn: DMatrix::zeros(h, len),
                    h: DMatrix::zeros(h, len + 1),
                }
            })
            .collect();
        run_together(&self.w_hh, Some(&self.b_hh), &mut traces);
        traces
    }

    /// LRP through the sequence (`docs/rules.md`, GRU cell). Per step:
    /// `R(h_t)` = outside + recurrence; `h_t = (1-z) n + z h_{t-1}` as an
    /// accumulation step; the products by the gate rule; `n`'s
    /// pre-activation as a projection step over `x_t` (weights `W_in`) and
    /// `h_{t-1}` (weights `r_j W_hn[j, :]`, the reset gate folded in) with
    /// bias `b_in + r * b_hn`. With a gate rule that feeds gates, the update
    /// gate's share (from both products) goes through its own projection;
    /// the reset gate is always folded and receives nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lrp(
        &self,
        tr: &GruTrace<T>,
        input: &DMatrix<T>,
        external: &Relevance<T>,
        offset: usize,
        relevance_in: &mut Relevance<T>,
        rules: &LayerRules<'_, T>,
        workspace: &mut Workspace<T>,
    ) -> Leftover<T> {
        let h = self.hidden_size();
        let len = input.ncols();
        // Each operation's rule, looked up by site once per sequence.
        let (candidate_projection, update_projection) = (rules.projection(GATES[N]), rules.projection(GATES[Z]));
        let accumulation = rules.accumulation();
        let (new_product, kept_product) = (rules.product(PRODUCTS[0]), rules.product(PRODUCTS[1]));
        let feed_gates = new_product.gate_receives_relevance() || kept_product.gate_receives_relevance();
        let b_in = &self.b_ih.as_slice()[N * h..(N + 1) * h];
        let b_hn = &self.b_hh.as_slice()[N * h..(N + 1) * h];
        let b_z: Vec<T> = (0..h).map(|k| self.b_ih[Z * h + k] + self.b_hh[Z * h + k]).collect();

        let zero = || vec![T::zero(); h];
        let mut r_h_prev = zero();
        let (mut r_h, mut one_minus_z, mut kept_n, mut kept_h) = (zero(), zero(), zero(), zero());
        let (mut r_kept_n, mut r_kept_h, mut r_n) = (zero(), zero(), zero());
        let (mut r_z_new, mut r_z_old, mut n_bias) = (zero(), zero(), zero());
        let mut unexplained = T::zero();

        for s in (0..len).rev() {
            let p = position(s, len, tr.reverse);
            let gate = |k: usize| column_part(&tr.gates, s, k * h, h);
            let h_prev = column(&tr.h, s);
            add_into(
                &mut r_h,
                &external.position(p).expect("a position of the sequence")[offset..offset + h],
                &r_h_prev,
            );

            // h_t = (1 - z) * n + z * h_{t-1}: one linear step, N = 2H.
            for k in 0..h {
                one_minus_z[k] = T::one() - gate(Z)[k];
                kept_n[k] = one_minus_z[k] * gate(N)[k];
                kept_h[k] = gate(Z)[k] * h_prev[k];
            }
            r_kept_n.fill(T::zero());
            r_kept_h.fill(T::zero());
            let summands = [
                InputGroup {
                    input: &kept_n,
                    connection: Connection::Identity,
                },
                InputGroup {
                    input: &kept_h,
                    connection: Connection::Identity,
                },
            ];
            let step = LinearStep {
                groups: &summands,
                bias: None,
                output: column(&tr.h, s + 1),
            };
            unexplained += accumulation.redistribute(&step, &r_h, &mut [&mut r_kept_n, &mut r_kept_h], workspace);
            new_product.split(&one_minus_z, gate(N), &r_kept_n, &mut r_z_new, &mut r_n);
            kept_product.split(gate(Z), h_prev, &r_kept_h, &mut r_z_old, &mut r_h_prev);

            // n's pre-activation, the reset gate folded into W_hn and b_hn.
            let x = column(input, p);
            let r = gate(R);
            for k in 0..h {
                n_bias[k] = b_in[k] + r[k] * b_hn[k];
            }
            let groups = [
                InputGroup {
                    input: x,
                    connection: Connection::Dense(self.block(&self.w_ih, N)),
                },
                InputGroup {
                    input: h_prev,
                    connection: Connection::RowScaled {
                        weights: self.block(&self.w_hh, N),
                        scale: r,
                    },
                },
            ];
            let step = LinearStep {
                groups: &groups,
                bias: Some(&n_bias),
                output: column_part(&tr.pre, s, N * h, h),
            };
            unexplained += candidate_projection.redistribute(
                &step,
                &r_n,
                &mut [
                    relevance_in.position_mut(p).expect("a position of the sequence"),
                    &mut r_h_prev,
                ],
                workspace,
            );

            if feed_gates {
                // Both products' gate shares reach z's pre-activation
                // (1 - z = σ(-pre_z) passes relevance unchanged too).
                for k in 0..h {
                    r_z_new[k] += r_z_old[k];
                }
                let groups = [
                    InputGroup {
                        input: x,
                        connection: Connection::Dense(self.block(&self.w_ih, Z)),
                    },
                    InputGroup {
                        input: h_prev,
                        connection: Connection::Dense(self.block(&self.w_hh, Z)),
                    },
                ];
                let step = LinearStep {
                    groups: &groups,
                    bias: Some(&b_z),
                    output: column_part(&tr.pre, s, Z * h, h),
                };
                unexplained += update_projection.redistribute(
                    &step,
                    &r_z_new,
                    &mut [
                        relevance_in.position_mut(p).expect("a position of the sequence"),
                        &mut r_h_prev,
                    ],
                    workspace,
                );
            }
        }
        Leftover {
            initial_state: sum(&r_h_prev),
            unexplained,
        }
    }

    /// Backpropagation through time; see `LstmCell::gradient`.
    pub(crate) fn gradient(
        &self,
        tr: &GruTrace<T>,
        input: &DMatrix<T>,
        external: &DMatrix<T>,
        offset: usize,
        grad_in: &mut DMatrix<T>,
    ) {
        let h = self.hidden_size();
        let len = input.ncols();
        let mut d_gi = DMatrix::zeros(3 * h, len);
        let mut d_gh = DVector::zeros(3 * h);
        let mut dh_next = DVector::zeros(h);
        let mut dh = vec![T::zero(); h];
        for s in (0..len).rev() {
            let p = position(s, len, tr.reverse);
            add_into(&mut dh, column_part(external, p, offset, h), dh_next.as_slice());
            let g = column(&tr.gates, s);
            let hn = column(&tr.hn, s);
            let h_prev = column(&tr.h, s);
            let d = &mut d_gi.as_mut_slice()[s * 3 * h..(s + 1) * 3 * h];
            for k in 0..h {
                let (r, z, n) = (g[R * h + k], g[Z * h + k], g[N * h + k]);
                let dn_pre = dh[k] * (T::one() - z) * (T::one() - n * n);
                let dz_pre = dh[k] * (h_prev[k] - n) * z * (T::one() - z);
                let dr_pre = dn_pre * hn[k] * r * (T::one() - r);
                d[R * h + k] = dr_pre;
                d[Z * h + k] = dz_pre;
                d[N * h + k] = dn_pre;
                d_gh[R * h + k] = dr_pre;
                d_gh[Z * h + k] = dz_pre;
                d_gh[N * h + k] = dn_pre * r;
            }
            for k in 0..h {
                dh_next[k] = dh[k] * g[Z * h + k];
            }
            let mut dh_view = DVectorViewMut::from_slice(dh_next.as_mut_slice(), h);
            dh_view.gemv_tr(
                T::one(),
                &self.w_hh,
                &DVectorView::from_slice(d_gh.as_slice(), 3 * h),
                T::one(),
            );
        }
        let mut dx = DMatrix::zeros(input.nrows(), len);
        dx.gemm_tr(T::one(), &self.w_ih, &d_gi, T::zero());
        add_columns_by_position(grad_in, &dx, tr.reverse);
    }
}
