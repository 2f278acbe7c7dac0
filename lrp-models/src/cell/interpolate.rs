//! The state updates that cell families share. GRUs and their relatives:
//! `h_t = (1 − u)·n + u·h_{t-1}`, where the gate `u` keeps the previous
//! state and `1 − u` lets the candidate `n` in (a GRU's `u` is its update
//! gate `z`; a minGRU's is `1 − z`).
//!
//! LRP treats it as one linear step, the sum of the two products (site
//! `sum`), followed by the gate rule of each product; the gradient is
//! `δn = δ (1 − u)`, `δu = δ (h_{t-1} − n)`, `δh_{t-1} = δ u`.
//!
//! LSTMs and their relatives: `c_t = f ⊙ c_{t-1} + i ⊙ g` ([`CellUpdate`]),
//! one linear step for the sum and the gate rules of the products `"f"`
//! and `"i"`.

use lrp_core::{Block, BlockMut, Float};
use lrp_layers::LayerRules;

use super::LinearSteps;

/// `next = (1 − keep)·candidate + keep·previous`, element-wise.
#[inline(always)]
pub fn interpolate<T: Float>(keep: &[T], candidate: &[T], previous: &[T], next: &mut [T]) {
    for (((next, &u), &n), &hp) in next.iter_mut().zip(keep).zip(candidate).zip(previous) {
        *next = (T::one() - u) * n + u * hp;
    }
}

/// One step's interpolation, `[H, B]` each: the gate `keep`, the
/// `candidate`, and the states before and after.
#[derive(Debug, Clone, Copy)]
pub struct Interpolation<'a, T> {
    /// The gate `u` that keeps the previous state.
    pub keep: Block<'a, T>,
    /// The candidate `n`.
    pub candidate: Block<'a, T>,
    /// `h_{t-1}`.
    pub previous: Block<'a, T>,
    /// `h_t`.
    pub next: Block<'a, T>,
}

/// Where [`Interpolation::lrp`] writes, `[H, B]` each.
#[derive(Debug)]
pub struct InterpolationRelevance<'a, T> {
    /// The candidate's relevance (overwritten).
    pub candidate: BlockMut<'a, T>,
    /// The gate's, both products' shares (overwritten; meaningful when
    /// [`Interpolation::lrp`] returns true).
    pub keep: BlockMut<'a, T>,
    /// The previous state's share (overwritten: call it before anything
    /// else adds to the previous state's relevance).
    pub previous: BlockMut<'a, T>,
    /// Five blocks of scratch.
    pub scratch: [BlockMut<'a, T>; 5],
}

impl<T: Float> Interpolation<'_, T> {
    /// LRP: the sum as one linear step (`N = 2H`), then the products
    /// `(1 − u)·n` (gate rule of site `products[0]`) and `u·h_{t-1}`
    /// (`products[1]`). Returns whether either rule gives the gate
    /// relevance.
    #[inline(always)]
    pub fn lrp(
        &self,
        rules: &LayerRules<'_, T>,
        products: [&'static str; 2],
        relevance: Block<'_, T>,
        out: InterpolationRelevance<'_, T>,
        steps: &mut LinearSteps<'_, T>,
    ) -> bool {
        let (new_product, kept_product) = (rules.product(products[0]), rules.product(products[1]));
        let InterpolationRelevance {
            candidate: r_candidate,
            keep: mut r_keep,
            previous: r_previous,
            scratch: [mut let_in, mut kept_n, mut kept_h, mut r_kept_n, mut r_kept_h],
        } = out;
        let h = relevance.rows();
        for b in 0..relevance.cols() {
            let (u, n, hp) = (
                &self.keep.column(b)[..h],
                &self.candidate.column(b)[..h],
                &self.previous.column(b)[..h],
            );
            let (let_in, kept_n, kept_h) = (
                &mut let_in.column_mut(b)[..h],
                &mut kept_n.column_mut(b)[..h],
                &mut kept_h.column_mut(b)[..h],
            );
            for k in 0..h {
                let_in[k] = T::one() - u[k];
                kept_n[k] = let_in[k] * n[k];
                kept_h[k] = u[k] * hp[k];
            }
        }
        steps.sum(
            rules.accumulation(),
            kept_n.as_block(),
            kept_h.as_block(),
            self.next,
            relevance,
            r_kept_n.part(0, h),
            r_kept_h.part(0, h),
        );
        // The first product's gate share goes to `keep` (1 - u passes
        // relevance unchanged), the second's is added to it.
        new_product.split_block(
            let_in.as_block(),
            self.candidate,
            r_kept_n.as_block(),
            r_keep.part(0, h),
            r_candidate,
        );
        kept_product.split_block(
            self.keep,
            self.previous,
            r_kept_h.as_block(),
            kept_n.part(0, h),
            r_previous,
        );
        let fed = new_product.gate_receives_relevance() || kept_product.gate_receives_relevance();
        if fed {
            r_keep.add(kept_n.as_block());
        }
        fed
    }

    /// The gradient: `δn` into `d_candidate`, `δu` into `d_keep` (both
    /// overwritten), `δ u` added into `d_previous`, for `δ` = `grad`.
    #[inline(always)]
    pub fn gradient(
        &self,
        grad: Block<'_, T>,
        mut d_candidate: BlockMut<'_, T>,
        mut d_keep: BlockMut<'_, T>,
        mut d_previous: BlockMut<'_, T>,
    ) {
        for b in 0..grad.cols() {
            let (u, n, hp, dh) = (
                self.keep.column(b),
                self.candidate.column(b),
                self.previous.column(b),
                grad.column(b),
            );
            let (dn, du, dp) = (
                d_candidate.column_mut(b),
                d_keep.column_mut(b),
                d_previous.column_mut(b),
            );
            for k in 0..dh.len() {
                dn[k] = dh[k] * (T::one() - u[k]);
                du[k] = dh[k] * (hp[k] - n[k]);
                dp[k] += dh[k] * u[k];
            }
        }
    }
}

/// The LSTM's cell update of one step, `c_t = f ⊙ c_{t-1} + i ⊙ g`, `[H, B]`
/// each: the gates, the candidate and the cell states before and after.
/// Cells of the LSTM family (the built-in LSTM, a peephole LSTM) share its
/// LRP.
#[derive(Debug, Clone, Copy)]
pub struct CellUpdate<'a, T> {
    /// The input gate `i`.
    pub input: Block<'a, T>,
    /// The forget gate `f`.
    pub forget: Block<'a, T>,
    /// The candidate `g`.
    pub candidate: Block<'a, T>,
    /// `c_{t-1}`.
    pub previous: Block<'a, T>,
    /// `c_t`.
    pub next: Block<'a, T>,
}

/// Where [`CellUpdate::lrp`] writes, `[H, B]` each (all overwritten).
#[derive(Debug)]
pub struct CellUpdateRelevance<'a, T> {
    /// The input gate's share of `i ⊙ g`.
    pub input: BlockMut<'a, T>,
    /// The forget gate's share of `f ⊙ c_{t-1}`.
    pub forget: BlockMut<'a, T>,
    /// The candidate's share of `i ⊙ g`.
    pub candidate: BlockMut<'a, T>,
    /// `c_{t-1}`'s share of `f ⊙ c_{t-1}` (call it before anything else
    /// adds to the previous memory's relevance).
    pub previous: BlockMut<'a, T>,
    /// Four blocks of scratch.
    pub scratch: [BlockMut<'a, T>; 4],
}

impl<T: Float> CellUpdate<'_, T> {
    /// LRP: the sum as one linear step (site `sum`, `N = 2H`), then the
    /// products `f ⊙ c_{t-1}` (gate rule of site `"f"`) and `i ⊙ g` (site
    /// `"i"`). `relevance` is what reaches `c_t`.
    #[inline(always)]
    pub fn lrp(
        &self,
        rules: &LayerRules<'_, T>,
        relevance: Block<'_, T>,
        out: CellUpdateRelevance<'_, T>,
        steps: &mut LinearSteps<'_, T>,
    ) {
        let CellUpdateRelevance {
            input: r_i,
            forget: r_f,
            candidate: r_g,
            previous: r_previous,
            scratch: [mut fc, mut ig, mut r_fc, mut r_ig],
        } = out;
        let h = relevance.rows();
        for b in 0..relevance.cols() {
            let (i, f, g) = (
                &self.input.column(b)[..h],
                &self.forget.column(b)[..h],
                &self.candidate.column(b)[..h],
            );
            let (c_prev, fc, ig) = (
                &self.previous.column(b)[..h],
                &mut fc.column_mut(b)[..h],
                &mut ig.column_mut(b)[..h],
            );
            for k in 0..h {
                fc[k] = f[k] * c_prev[k];
                ig[k] = i[k] * g[k];
            }
        }
        steps.sum(
            rules.accumulation(),
            fc.as_block(),
            ig.as_block(),
            self.next,
            relevance,
            r_fc.part(0, h),
            r_ig.part(0, h),
        );
        rules
            .product("f")
            .split_block(self.forget, self.previous, r_fc.as_block(), r_f, r_previous);
        rules
            .product("i")
            .split_block(self.input, self.candidate, r_ig.as_block(), r_i, r_g);
    }
}
