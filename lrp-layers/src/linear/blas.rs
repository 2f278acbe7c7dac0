//! Matrix helpers shared by the block forms of the linear rules: products
//! through [`lrp_core::linalg::gemm`] (so that a sequence's relevance does
//! not depend on its batch), and one column of a block through a rule's
//! per-sequence form.

use lrp_core::linalg::gemm;
use lrp_core::nalgebra::{DMatrixView, DMatrixViewMut, Dyn, U1};
use lrp_core::{Block, BlockConnection, BlockMut, BlockStep, Float, LinearRule, Workspace};

/// Whether every group of `step` has a connection the block forms handle
/// (dense, row-scaled or identity); otherwise the rules go by columns.
pub(crate) fn blockable<T: Float>(step: &BlockStep<'_, T>) -> bool {
    step.groups.iter().all(|g| {
        matches!(
            g.connection,
            BlockConnection::Dense(_) | BlockConnection::RowScaled { .. } | BlockConnection::Identity
        )
    })
}

/// A contiguous column-major `[rows, cols]` view of `data`.
pub(crate) fn view<T: Float>(data: &[T], rows: usize, cols: usize) -> DMatrixView<'_, T> {
    DMatrixView::from_slice_generic(&data[..rows * cols], Dyn(rows), Dyn(cols))
}

/// A contiguous column-major mutable `[rows, cols]` view of `data`.
pub(crate) fn view_mut<T: Float>(data: &mut [T], rows: usize, cols: usize) -> DMatrixViewMut<'_, T> {
    DMatrixViewMut::from_slice_generic(&mut data[..rows * cols], Dyn(rows), Dyn(cols))
}

/// `out = W^T S + beta * out`: `W` is `[m, n]` (any column stride), `S` is a
/// contiguous `[m, b]` column-major slice, `out` a contiguous `[n, b]` one.
/// One call of [`lrp_core::linalg::gemm`] with `W`'s strides swapped.
pub(crate) fn gemm_tn<T: Float>(out: &mut [T], w: &DMatrixView<'_, T>, s: &[T], b: usize, beta: T) {
    let (m, n) = w.shape();
    let out = &mut out[..n * b];
    if n == 0 || b == 0 {
        return;
    }
    if m == 0 {
        scale(out, beta);
        return;
    }
    gemm(&mut view_mut(out, n, b), T::one(), w, true, &view(s, m, b), beta);
}

/// `out = A X + beta * out`: `A` `[m, k]`, `X` a contiguous `[k, b]`
/// column-major slice, `out` a contiguous `[m, b]` one.
pub(crate) fn gemm_nn<T: Float>(out: &mut [T], a: &DMatrixView<'_, T>, x: &[T], b: usize, beta: T) {
    let (m, k) = a.shape();
    let out = &mut out[..m * b];
    if m == 0 || b == 0 {
        return;
    }
    if k == 0 {
        scale(out, beta);
        return;
    }
    gemm(&mut view_mut(out, m, b), T::one(), a, false, &view(x, k, b), beta);
}

/// `out *= beta`, with a zero `beta` clearing `out` (as a product with
/// `beta = 0` does, whatever `out` held).
fn scale<T: Float>(out: &mut [T], beta: T) {
    if beta == T::zero() {
        out.fill(T::zero());
    } else {
        for o in out.iter_mut() {
            *o *= beta;
        }
    }
}

/// The weights of a dense or row-scaled block connection.
pub(crate) fn weights<'a, T: Float>(connection: &BlockConnection<'a, T>) -> Option<DMatrixView<'a, T, U1, Dyn>> {
    match connection {
        BlockConnection::Dense(w) | BlockConnection::RowScaled { weights: w, .. } => Some(*w),
        _ => None,
    }
}

/// Column `b` of a block step through `rule`'s per-sequence form: adds into
/// column `b` of every `relevance_in` block and returns the unexplained
/// relevance (what [`lrp_core::for_each_column`] does for every column).
pub(crate) fn one_column<T: Float, R: LinearRule<T> + ?Sized>(
    rule: &R,
    step: &BlockStep<'_, T>,
    relevance_out: Block<'_, T>,
    relevance_in: &mut [BlockMut<'_, T>],
    b: usize,
    workspace: &mut Workspace<T>,
) -> T {
    const INLINE: usize = 4;
    let r = relevance_out.column(b);
    step.with_column(b, |one| {
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
    })
}
