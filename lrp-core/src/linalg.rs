//! The one matrix product of the batched engine.
//!
//! Every product of the recurrence (input projections, recurrent products,
//! the rules' block products, the gradient's) goes through [`gemm`], which
//! calls matrixmultiply directly for f32 and f64 with the operands' own
//! strides. Two reasons:
//!
//! - **Batching does not change results.** matrixmultiply sums each entry of
//!   a product in the same order whatever the number of columns, so a
//!   sequence's numbers are bit for bit the same alone or in any batch.
//!   nalgebra's `gemm` switches to a different loop for small operands (a
//!   dimension of 5 or less), and that switch made a sequence's last bits
//!   depend on its batch, which rules like `prop` amplify.
//! - **Transposes cost nothing.** `Aᵀ B` is the same call with `A`'s strides
//!   swapped; no copy, and no small-operand path that mishandles row strides.
//!
//! matrixmultiply picks its kernel (AVX-512, AVX2/FMA, SSE2) at run time.

use std::any::TypeId;

use nalgebra::{Dyn, Matrix, Storage, StorageMut};

use crate::Float;

/// `C = alpha op(A) B + beta C`, with `op(A) = Aᵀ` when `transpose_a`.
/// Shapes: `op(A)` `[m, k]`, `B` `[k, n]`, `C` `[m, n]`; any strides. When
/// `beta` is zero `C` is not read (it may hold anything, NaN included).
///
/// # Panics
/// When the shapes do not fit (a programming error in the caller).
///
/// ```
/// use lrp_core::linalg::gemm;
/// use lrp_core::nalgebra::DMatrix;
///
/// let a = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// let b = DMatrix::from_row_slice(2, 1, &[1.0, -1.0]);
/// let mut c = DMatrix::from_element(3, 1, f64::NAN);
/// gemm(&mut c, 1.0, &a, true, &b, 0.0); // c = aᵀ b
/// assert_eq!(c.as_slice(), &[-3.0, -3.0, -3.0]);
/// ```
pub fn gemm<T, SA, SB, SC>(
    c: &mut Matrix<T, Dyn, Dyn, SC>,
    alpha: T,
    a: &Matrix<T, Dyn, Dyn, SA>,
    transpose_a: bool,
    b: &Matrix<T, Dyn, Dyn, SB>,
    beta: T,
) where
    T: Float,
    SA: Storage<T, Dyn, Dyn>,
    SB: Storage<T, Dyn, Dyn>,
    SC: StorageMut<T, Dyn, Dyn>,
{
    let (a_rows, a_cols) = a.shape();
    let (a_rs, a_cs) = a.strides();
    let (m, k, rsa, csa) = if transpose_a {
        (a_cols, a_rows, a_cs, a_rs)
    } else {
        (a_rows, a_cols, a_rs, a_cs)
    };
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.shape() == (m, n),
        "gemm: [{m}, {k}] x [{}, {n}] into {:?}",
        b.nrows(),
        c.shape()
    );
    if m == 0 || n == 0 {
        return;
    }
    let (rsb, csb) = b.strides();
    let (rsc, csc) = c.strides();
    let s = |v: usize| v as isize;
    let (a_ptr, b_ptr, c_ptr) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: T is f64 (checked above), so the casts are identities; the
        // shapes are checked, the strides are the operands' own, so every
        // address matrixmultiply forms lies inside its operand; `c` is
        // borrowed mutably and so overlaps neither `a` nor `b`.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                alpha.as_f64(),
                a_ptr.cast::<f64>(),
                s(rsa),
                s(csa),
                b_ptr.cast::<f64>(),
                s(rsb),
                s(csb),
                beta.as_f64(),
                c_ptr.cast::<f64>(),
                s(rsc),
                s(csc),
            )
        }
    } else if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: as above, with T = f32 (the conversions through f64 are
        // exact for f32 values).
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha.as_f64() as f32,
                a_ptr.cast::<f32>(),
                s(rsa),
                s(csa),
                b_ptr.cast::<f32>(),
                s(rsb),
                s(csb),
                beta.as_f64() as f32,
                c_ptr.cast::<f32>(),
                s(rsc),
                s(csc),
            )
        }
    } else if transpose_a {
        c.gemm_tr(alpha, a, b, beta);
    } else {
        c.gemm(alpha, a, b, beta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    /// Each column of a product is bit for bit the same whatever the number
    /// of columns beside it, and views with strides give what copies give.
    #[test]
    fn columns_do_not_depend_on_their_neighbours() {
        let a = DMatrix::from_fn(7, 9, |i, j| ((i * 13 + j * 7) % 17) as f64 / 7.0 - 1.1);
        let b = DMatrix::from_fn(9, 40, |i, j| ((i * 5 + j * 3) % 11) as f64 / 3.0 - 1.7);
        let mut all = DMatrix::zeros(7, 40);
        gemm(&mut all, 1.0, &a, false, &b, 0.0);
        for width in [1, 2, 3, 5, 8] {
            let mut part = DMatrix::zeros(7, width);
            gemm(&mut part, 1.0, &a, false, &b.columns(0, width), 0.0);
            assert_eq!(part, all.columns(0, width), "{width} columns");
        }
        let at = a.transpose();
        let mut via_transpose = DMatrix::zeros(7, 40);
        gemm(&mut via_transpose, 1.0, &at, true, &b, 0.0);
        assert_eq!(via_transpose, all);
        let mut into_rows = DMatrix::from_element(10, 40, 5.0);
        gemm(&mut into_rows.rows_mut(2, 7), 2.0, &a, false, &b, 1.0);
        assert_eq!(into_rows.rows(2, 7), &all * 2.0 + DMatrix::from_element(7, 40, 5.0));
        let f32s = (a.map(|v| v as f32), b.map(|v| v as f32));
        let mut single = DMatrix::<f32>::zeros(7, 40);
        gemm(&mut single, 1.0, &f32s.0, false, &f32s.1, 0.0);
        assert!((single.map(f64::from) - &all).amax() < 1e-5);
    }
}
