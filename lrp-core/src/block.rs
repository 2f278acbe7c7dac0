//! Linear steps over a block of sequences: the same step taken by `B`
//! sequences at once, one column per sequence.
//!
//! The batched engine of `lrp-models` runs every recurrence step for all
//! sequences still active at that step, so a rule sees a step's inputs as
//! `[n, B]` and its outputs as `[M, B]` and can work with matrix-matrix
//! products. A rule that only knows one sequence at a time still works: the
//! default [`crate::LinearRule::redistribute_block`] hands it each column as a
//! [`LinearStep`] of its own.

use nalgebra::{DMatrixView, DMatrixViewMut, Dyn};

use crate::{Connection, Float, InputGroup, LinearStep};

/// A read-only column-major block `[rows, cols]` whose columns are
/// contiguous (`ld` apart), such as a range of columns of a packed matrix or
/// the rows of one gate in it. Each column is one sequence.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    ld: usize,
}

/// A mutable column-major block `[rows, cols]` with contiguous columns
/// (`ld` apart); see [`Block`].
#[derive(Debug)]
pub struct BlockMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    ld: usize,
}

fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if cols == 0 {
        0
    } else {
        (cols - 1) * ld + rows
    }
}

impl<'a, T: Float> Block<'a, T> {
    /// The block `[rows, cols]` starting at `data[0]`, columns `ld >= rows`
    /// apart. `None` when `data` is too short or `ld < rows`.
    pub fn new(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Option<Self> {
        (ld >= rows && data.len() >= span(rows, cols, ld)).then_some(Self { data, rows, cols, ld })
    }

    /// A whole contiguous `[rows, cols]` slice. `None` when the length
    /// differs.
    pub fn contiguous(data: &'a [T], rows: usize) -> Option<Self> {
        if rows == 0 {
            return (data.is_empty()).then_some(Self {
                data,
                rows,
                cols: 0,
                ld: 0,
            });
        }
        (data.len() % rows == 0).then_some(Self {
            data,
            rows,
            cols: data.len() / rows,
            ld: rows,
        })
    }

    /// `values` `[rows]` repeated as every one of `cols` columns (`ld = 0`):
    /// a bias shared by every sequence.
    pub fn broadcast(values: &'a [T], cols: usize) -> Self {
        Self {
            data: values,
            rows: values.len(),
            cols,
            ld: 0,
        }
    }

    /// Rows `[from, from + rows)` and columns `[col, col + cols)` of a
    /// column-major matrix `m`.
    ///
    /// # Panics
    /// When the range lies outside `m` (a programming error in the caller).
    pub fn of(m: &'a nalgebra::DMatrix<T>, from: usize, rows: usize, col: usize, cols: usize) -> Self {
        assert!(
            from + rows <= m.nrows() && col + cols <= m.ncols(),
            "block outside the matrix"
        );
        let ld = m.nrows();
        let start = col * ld + from;
        Self {
            data: &m.as_slice()[start..start + span(rows, cols, ld)],
            rows,
            cols,
            ld,
        }
    }

    /// Number of rows (units).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (sequences).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Column `b` as a slice of `rows` values.
    #[inline]
    pub fn column(&self, b: usize) -> &'a [T] {
        &self.data[b * self.ld..b * self.ld + self.rows]
    }

    /// Rows `[from, from + rows)` of every column: one gate's rows of a
    /// fused block, say. Panics, like slice indexing, past the last row.
    pub fn part(&self, from: usize, rows: usize) -> Block<'a, T> {
        assert!(from + rows <= self.rows, "rows outside the block");
        let data = if self.cols == 0 {
            &self.data[..0]
        } else {
            &self.data[from..from + span(rows, self.cols, self.ld)]
        };
        Block {
            data,
            rows,
            cols: self.cols,
            ld: self.ld,
        }
    }

    /// Columns `[from, from + cols)`. Panics past the last column.
    pub fn columns(&self, from: usize, cols: usize) -> Block<'a, T> {
        assert!(from + cols <= self.cols, "columns outside the block");
        let data = if cols == 0 {
            &self.data[..0]
        } else {
            &self.data[from * self.ld..from * self.ld + span(self.rows, cols, self.ld)]
        };
        Block {
            data,
            rows: self.rows,
            cols,
            ld: self.ld,
        }
    }

    /// `[rows, cols]` zeros in `data`, which holds at least `rows · cols`
    /// values and is filled with zeros here: a zero state for a step.
    pub fn zeros(data: &'a mut [T], rows: usize, cols: usize) -> Block<'a, T> {
        let data = &mut data[..rows * cols];
        data.fill(T::zero());
        Block {
            data,
            rows,
            cols,
            ld: rows,
        }
    }

    /// Matrix view `[rows, cols]` of the block, for nalgebra and
    /// [`crate::linalg::gemm`].
    pub fn view(&self) -> DMatrixView<'a, T, nalgebra::U1, Dyn> {
        DMatrixView::from_slice_with_strides_generic(
            self.data,
            Dyn(self.rows),
            Dyn(self.cols),
            nalgebra::U1,
            Dyn(self.ld),
        )
    }
}

impl<'a, T: Float> BlockMut<'a, T> {
    /// The block `[rows, cols]` starting at `data[0]`, columns `ld >= rows`
    /// apart. `None` when `data` is too short or `ld < rows`.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Option<Self> {
        (ld >= rows && data.len() >= span(rows, cols, ld)).then_some(Self { data, rows, cols, ld })
    }

    /// Rows `[from, from + rows)` and columns `[col, col + cols)` of a
    /// column-major matrix `m`.
    ///
    /// # Panics
    /// When the range lies outside `m` (a programming error in the caller).
    pub fn of(m: &'a mut nalgebra::DMatrix<T>, from: usize, rows: usize, col: usize, cols: usize) -> Self {
        assert!(
            from + rows <= m.nrows() && col + cols <= m.ncols(),
            "block outside the matrix"
        );
        let ld = m.nrows();
        let start = col * ld + from;
        Self {
            data: &mut m.as_mut_slice()[start..start + span(rows, cols, ld)],
            rows,
            cols,
            ld,
        }
    }

    /// Number of rows (units).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (sequences).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Column `b` as a slice of `rows` values.
    #[inline]
    pub fn column(&self, b: usize) -> &[T] {
        &self.data[b * self.ld..b * self.ld + self.rows]
    }

    /// Column `b` as a mutable slice of `rows` values.
    #[inline]
    pub fn column_mut(&mut self, b: usize) -> &mut [T] {
        &mut self.data[b * self.ld..b * self.ld + self.rows]
    }

    /// Rows `[from, from + rows)` of every column, mutably (a reborrow).
    /// Panics, like slice indexing, past the last row.
    pub fn part(&mut self, from: usize, rows: usize) -> BlockMut<'_, T> {
        assert!(from + rows <= self.rows, "rows outside the block");
        let range = if self.cols == 0 {
            0..0
        } else {
            from..from + span(rows, self.cols, self.ld)
        };
        BlockMut {
            data: &mut self.data[range],
            rows,
            cols: self.cols,
            ld: self.ld,
        }
    }

    /// The same block, read-only (a reborrow).
    pub fn as_block(&self) -> Block<'_, T> {
        Block {
            data: &*self.data,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }

    /// Sets every value of the block to `value`.
    pub fn fill(&mut self, value: T) {
        for b in 0..self.cols {
            self.column_mut(b).fill(value);
        }
    }

    /// Adds `other` (same shape) element-wise.
    pub fn add(&mut self, other: Block<'_, T>) {
        assert_eq!(
            (self.rows, self.cols),
            (other.rows(), other.cols()),
            "blocks of different shapes"
        );
        for b in 0..self.cols {
            for (a, &v) in self.column_mut(b).iter_mut().zip(other.column(b)) {
                *a += v;
            }
        }
    }

    /// Matrix view `[rows, cols]` of the block, for nalgebra and
    /// [`crate::linalg::gemm`].
    pub fn view_mut(&mut self) -> DMatrixViewMut<'_, T, nalgebra::U1, Dyn> {
        DMatrixViewMut::from_slice_with_strides_generic(
            &mut *self.data,
            Dyn(self.rows),
            Dyn(self.cols),
            nalgebra::U1,
            Dyn(self.ld),
        )
    }
}

/// How one group of inputs feeds the outputs of a [`BlockStep`]: the
/// block form of [`Connection`] (attention pooling, whose weights differ
/// per sequence, has no block form; it is explained one sequence at a time).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum BlockConnection<'a, T: Float> {
    /// `Z += W X` with `W` `[M, n]`, the same for every sequence.
    Dense(DMatrixView<'a, T>),
    /// `Z += S ⊙ (W X)`: the rows of `W` `[M, n]` scaled per output and per
    /// sequence by `S` `[M, B]` (the GRU reset gate on the recurrent
    /// weights).
    RowScaled {
        /// `W`, shape `[M, n]`.
        weights: DMatrixView<'a, T>,
        /// `S`, shape `[M, B]`.
        scale: Block<'a, T>,
    },
    /// `Z += X` (`n = M`): one summand of an element-wise sum.
    Identity,
    /// `Z += diag(d) X` (`n = M`), `d` `[M]` the same for every sequence:
    /// see [`Connection::Diagonal`]. The built-in rules take it column by
    /// column.
    Diagonal(&'a [T]),
}

impl<T: Float> BlockConnection<'_, T> {
    /// Number of inputs `n` of this group, for a step with `outputs` units.
    pub fn fan_in(&self, outputs: usize) -> usize {
        match self {
            BlockConnection::Dense(w) => w.ncols(),
            BlockConnection::RowScaled { weights, .. } => weights.ncols(),
            BlockConnection::Identity | BlockConnection::Diagonal(_) => outputs,
        }
    }
}

/// One group of inputs of a [`BlockStep`]: values `[n, B]` and how they
/// feed the outputs.
#[derive(Debug, Clone, Copy)]
pub struct BlockInput<'a, T: Float> {
    /// Forward values of the inputs, `[n, B]`.
    pub input: Block<'a, T>,
    /// How they feed the outputs.
    pub connection: BlockConnection<'a, T>,
}

/// A linear step `Z = sum_g W'_g X_g + b` taken by `B` sequences at once:
/// [`LinearStep`] with one column per sequence.
#[derive(Debug, Clone, Copy)]
pub struct BlockStep<'a, T: Float> {
    /// The input groups; relevance comes back in the same order.
    pub groups: &'a [BlockInput<'a, T>],
    /// The bias `b` `[M, B]`, or `None`. A bias shared by every sequence
    /// is a [`Block::broadcast`]; the GRU's candidate bias `b_in + r ⊙ b_hn`
    /// differs per sequence.
    pub bias: Option<Block<'a, T>>,
    /// The forward outputs `Z` `[M, B]`, bias included.
    pub output: Block<'a, T>,
}

/// The most input groups [`BlockStep::with_column`] serves without
/// allocating.
const INLINE_GROUPS: usize = 4;

impl<'a, T: Float> BlockStep<'a, T> {
    /// Number of output units `M`.
    pub fn outputs(&self) -> usize {
        self.output.rows()
    }

    /// Number of sequences `B`.
    pub fn columns(&self) -> usize {
        self.output.cols()
    }

    /// Number of input units `N` of one sequence, all groups together (the
    /// `N` of the bias-factor convention).
    pub fn fan_in(&self) -> usize {
        let m = self.outputs();
        self.groups.iter().map(|g| g.connection.fan_in(m)).sum()
    }

    /// Largest group size `n`.
    pub fn largest_group(&self) -> usize {
        let m = self.outputs();
        self.groups.iter().map(|g| g.connection.fan_in(m)).max().unwrap_or(0)
    }

    /// Calls `f` with sequence `b`'s step alone, as a [`LinearStep`]: the
    /// per-sequence view for rules that look at one sequence at a time.
    pub fn with_column<R>(&self, b: usize, f: impl FnOnce(&LinearStep<'_, T>) -> R) -> R {
        let group = |g: &BlockInput<'a, T>| InputGroup {
            input: g.input.column(b),
            connection: match g.connection {
                BlockConnection::Dense(w) => Connection::Dense(w),
                BlockConnection::RowScaled { weights, scale } => Connection::RowScaled {
                    weights,
                    scale: scale.column(b),
                },
                BlockConnection::Identity => Connection::Identity,
                BlockConnection::Diagonal(d) => Connection::Diagonal(d),
            },
        };
        let output = self.output.column(b);
        if self.groups.len() <= INLINE_GROUPS {
            let empty = InputGroup {
                input: &[][..],
                connection: Connection::Identity,
            };
            let mut inline = [empty; INLINE_GROUPS];
            for (slot, g) in inline.iter_mut().zip(self.groups) {
                *slot = group(g);
            }
            f(&LinearStep {
                groups: &inline[..self.groups.len()],
                bias: self.bias.map(|bias| bias.column(b)),
                output,
            })
        } else {
            let groups: Vec<InputGroup<'_, T>> = self.groups.iter().map(group).collect();
            f(&LinearStep {
                groups: &groups,
                bias: self.bias.map(|bias| bias.column(b)),
                output,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    #[test]
    fn blocks_address_rows_and_columns_of_a_matrix() {
        let m = DMatrix::from_fn(6, 4, |r, c| (r * 10 + c) as f64);
        let b = Block::of(&m, 2, 3, 1, 2);
        assert_eq!((b.rows(), b.cols()), (3, 2));
        assert_eq!(b.column(0), &[21.0, 31.0, 41.0]);
        assert_eq!(b.column(1), &[22.0, 32.0, 42.0]);
        assert_eq!(b.view()[(2, 1)], 42.0);
        assert!(Block::new(&[1.0, 2.0, 3.0], 2, 2, 2).is_none(), "too short");
        assert!(Block::<f64>::contiguous(&[1.0, 2.0, 3.0], 2).is_none());
        let shared = Block::broadcast(&[1.0, 2.0], 3);
        assert_eq!((shared.column(2), shared.view()[(1, 2)]), (&[1.0, 2.0][..], 2.0));
    }
}
