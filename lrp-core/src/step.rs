use nalgebra::DMatrixView;

use crate::Float;

/// How one group of inputs feeds the outputs of a [`LinearStep`].
///
/// `M` is the number of output units of the step, `n` the number of inputs
/// in the group. Every variant is a linear map `W' : R^n -> R^M`; the
/// variants exist so that sums and poolings need no materialised matrix.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Connection<'a, T: Float> {
    /// `z_j += sum_i W[j, i] x_i`, with `W` of shape `[M, n]` (any strides,
    /// so a gate's rows of a fused PyTorch matrix are a view, not a copy).
    Dense(DMatrixView<'a, T>),
    /// `z_j += s_j * sum_i W[j, i] x_i`: a weight matrix `[M, n]` whose rows
    /// are scaled by per-output constants `s` `[M]` (the GRU reset gate
    /// folded into the recurrent weights, `docs/rules.md`).
    RowScaled {
        /// `W`, shape `[M, n]`.
        weights: DMatrixView<'a, T>,
        /// `s`, shape `[M]`.
        scale: &'a [T],
    },
    /// `z_j += x_j` (`n = M`): one summand of an element-wise sum, such as
    /// `f * c_{t-1}` in `c_t = f * c_{t-1} + i * g`.
    Identity,
    /// `z_j += d_j x_j` (`n = M`): a diagonal weight matrix `diag(d)`, `d`
    /// `[M]`, such as a peephole LSTM's `p ⊙ c_{t-1}`. Its only edges are
    /// `j -> j`, so rules that count edges (flat) count one per output.
    Diagonal(&'a [T]),
    /// `z_j += sum_t a_t x[t * M + j]` (`n = M * len(a)`): attention pooling
    /// `c = sum_t a_t h_t`, with the attention weights `a` as connection
    /// weights and the inputs all `h_{t,j}`, position-major.
    Pooling(&'a [T]),
}

impl<'a, T: Float> Connection<'a, T> {
    /// Number of inputs `n` of this group, for a step with `outputs` units.
    pub fn fan_in(&self, outputs: usize) -> usize {
        match self {
            Connection::Dense(w) => w.ncols(),
            Connection::RowScaled { weights, .. } => weights.ncols(),
            Connection::Identity | Connection::Diagonal(_) => outputs,
            Connection::Pooling(a) => outputs * a.len(),
        }
    }

    /// The effective weight `W'[j, i]` from input `i` to output `j`, for a
    /// step with `outputs` units. Slow; for formula-level rules and tests.
    pub fn weight(&self, j: usize, i: usize, outputs: usize) -> T {
        match self {
            Connection::Dense(w) => w[(j, i)],
            Connection::RowScaled { weights, scale } => scale[j] * weights[(j, i)],
            Connection::Identity => {
                if i == j {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Connection::Diagonal(d) => {
                if i == j {
                    d[j]
                } else {
                    T::zero()
                }
            }
            Connection::Pooling(a) => {
                if i % outputs == j {
                    a[i / outputs]
                } else {
                    T::zero()
                }
            }
        }
    }

    /// Calls `visit(j, i, w)` for every structural edge of the group: input
    /// `i` feeds output `j` with effective weight `w` (every pair for a
    /// matrix, the diagonal for [`Connection::Identity`], position blocks for
    /// [`Connection::Pooling`]). For rules that look at single contributions.
    pub fn for_each_edge(&self, outputs: usize, mut visit: impl FnMut(usize, usize, T)) {
        match self {
            Connection::Dense(w) => {
                for i in 0..w.ncols() {
                    for j in 0..outputs {
                        visit(j, i, w[(j, i)]);
                    }
                }
            }
            Connection::RowScaled { weights, scale } => {
                for i in 0..weights.ncols() {
                    for j in 0..outputs {
                        visit(j, i, scale[j] * weights[(j, i)]);
                    }
                }
            }
            Connection::Identity => {
                for j in 0..outputs {
                    visit(j, j, T::one());
                }
            }
            Connection::Diagonal(d) => {
                for (j, &dj) in d.iter().enumerate().take(outputs) {
                    visit(j, j, dj);
                }
            }
            Connection::Pooling(a) => {
                for (t, &at) in a.iter().enumerate() {
                    for j in 0..outputs {
                        visit(j, t * outputs + j, at);
                    }
                }
            }
        }
    }

    /// Whether input `i` feeds output `j` at all (structurally, whatever the
    /// weight's value), for a step with `outputs` units.
    pub fn connects(&self, j: usize, i: usize, outputs: usize) -> bool {
        match self {
            Connection::Dense(_) | Connection::RowScaled { .. } => true,
            Connection::Identity | Connection::Diagonal(_) => i == j,
            Connection::Pooling(_) => i % outputs == j,
        }
    }

    /// `out = W'^T r`: `r` is `[M]`, `out` is `[n]` and is overwritten.
    /// `scratch` needs `M` entries (used by [`Connection::RowScaled`]).
    pub fn transpose_product(&self, r: &[T], out: &mut [T], scratch: &mut [T]) {
        let m = r.len();
        match self {
            Connection::Dense(w) => {
                let r = DMatrixView::from_slice(r, m, 1);
                let mut out = nalgebra::DVectorViewMut::from_slice(out, w.ncols());
                out.gemv_tr(T::one(), w, &r.column(0), T::zero());
            }
            Connection::RowScaled { weights, scale } => {
                let scaled = &mut scratch[..m];
                for ((s, &rj), &sj) in scaled.iter_mut().zip(r).zip(scale.iter()) {
                    *s = rj * sj;
                }
                let scaled = nalgebra::DVectorView::from_slice(scaled, m);
                let mut out = nalgebra::DVectorViewMut::from_slice(out, weights.ncols());
                out.gemv_tr(T::one(), weights, &scaled, T::zero());
            }
            Connection::Identity => out[..m].copy_from_slice(r),
            Connection::Diagonal(d) => {
                for ((o, &rj), &dj) in out[..m].iter_mut().zip(r).zip(d.iter()) {
                    *o = dj * rj;
                }
            }
            Connection::Pooling(a) => {
                for (block, &at) in out.chunks_exact_mut(m).zip(a.iter()) {
                    for (o, &rj) in block.iter_mut().zip(r) {
                        *o = at * rj;
                    }
                }
            }
        }
    }

    /// `z += W' x`: adds this group's contribution to the outputs `z` `[M]`.
    /// `scratch` needs `M` entries.
    pub fn add_forward(&self, x: &[T], z: &mut [T], scratch: &mut [T]) {
        let m = z.len();
        match self {
            Connection::Dense(w) => {
                let x = nalgebra::DVectorView::from_slice(x, w.ncols());
                let mut z = nalgebra::DVectorViewMut::from_slice(z, m);
                z.gemv(T::one(), w, &x, T::one());
            }
            Connection::RowScaled { weights, scale } => {
                let tmp = &mut scratch[..m];
                let x = nalgebra::DVectorView::from_slice(x, weights.ncols());
                let mut tmpv = nalgebra::DVectorViewMut::from_slice(tmp, m);
                tmpv.gemv(T::one(), weights, &x, T::zero());
                for ((zj, &tj), &sj) in z.iter_mut().zip(tmp.iter()).zip(scale.iter()) {
                    *zj += sj * tj;
                }
            }
            Connection::Identity => {
                for (zj, &xj) in z.iter_mut().zip(x) {
                    *zj += xj;
                }
            }
            Connection::Diagonal(d) => {
                for ((zj, &xj), &dj) in z.iter_mut().zip(x).zip(d.iter()) {
                    *zj += dj * xj;
                }
            }
            Connection::Pooling(a) => {
                for (block, &at) in x.chunks_exact(m).zip(a.iter()) {
                    for (zj, &xj) in z.iter_mut().zip(block) {
                        *zj += at * xj;
                    }
                }
            }
        }
    }
}

/// One group of inputs of a linear step: the forward values and how they
/// connect to the outputs.
#[derive(Debug, Clone, Copy)]
pub struct InputGroup<'a, T: Float> {
    /// Forward values of the inputs, `[n]`.
    pub input: &'a [T],
    /// How they feed the outputs.
    pub connection: Connection<'a, T>,
}

/// A linear step `z = sum_g W'_g x_g + b` as a rule sees it: its input
/// groups, its bias and its forward outputs.
///
/// A step that reads several inputs (an LSTM gate reads `x_t` and
/// `h_{t-1}`) is one step with several groups, so that its fan-in
/// `N` counts all of them (`docs/rules.md`, the bias-factor convention).
#[derive(Debug, Clone, Copy)]
pub struct LinearStep<'a, T: Float> {
    /// The input groups; relevance comes back in the same order.
    pub groups: &'a [InputGroup<'a, T>],
    /// The bias `b`, `[M]`, or `None` for a step without one.
    pub bias: Option<&'a [T]>,
    /// The forward outputs `z` `[M]`, every contribution and the bias
    /// included.
    pub output: &'a [T],
}

impl<T: Float> LinearStep<'_, T> {
    /// Number of output units `M`.
    pub fn outputs(&self) -> usize {
        self.output.len()
    }

    /// Number of input units `N` of the step, all groups together.
    pub fn fan_in(&self) -> usize {
        let m = self.outputs();
        self.groups.iter().map(|g| g.connection.fan_in(m)).sum()
    }

    /// Largest group size: what a rule's per-input scratch must hold.
    pub fn largest_group(&self) -> usize {
        let m = self.outputs();
        self.groups.iter().map(|g| g.connection.fan_in(m)).max().unwrap_or(0)
    }

    /// The bias of output `j` (zero without a bias).
    pub fn bias_of(&self, j: usize) -> T {
        self.bias.map_or(T::zero(), |b| b[j])
    }
}
