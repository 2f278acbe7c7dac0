//! Reused memory for the matrices of traces and backward passes.
//!
//! A batch's trace is tens of megabytes of fresh matrices, dropped when the
//! batch is explained, and the next batch asks for the same sizes again.
//! Allocating them anew each time cost a fifth of a batched run in page
//! faults and the kernel's zeroing of pages. So the engine takes its large
//! matrices from a per-thread free list and gives them back when a trace or
//! a backward pass is done with them: after the first batch, a thread's
//! batches run in memory it already holds. The list keeps at most
//! [`KEPT_VALUES`] numbers per thread, so memory stays bounded by the batch.

use std::any::Any;
use std::cell::RefCell;

use lrp_core::{Float, Workspace};
use nalgebra::DMatrix;

/// Matrices smaller than this many values are not worth keeping.
const SMALLEST_KEPT: usize = 1 << 12;
/// The most values (of either precision) a thread keeps for reuse: 4M,
/// 32 MB in f64, the trace of a batch of 64 SST sentences with room to
/// spare (the CLI's chunks); a larger batch's overflow is allocated anew.
const KEPT_VALUES: usize = 1 << 22;

thread_local! {
    /// Free buffers of this thread, each a `Vec<T>` of some `T: Float`.
    static FREE: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
    /// The rules' workspaces this thread's finished backward passes gave
    /// back, at most one per precision (each a `Workspace<T>`): a workspace
    /// grows to the largest step of a pass, and the next batch needs the
    /// same sizes again.
    static WORKSPACES: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// A rules' workspace of this thread, reused from an earlier backward pass
/// when there is one.
pub(crate) fn workspace<T: Float>() -> Workspace<T> {
    WORKSPACES
        .with(|kept| {
            let mut kept = kept.borrow_mut();
            let at = kept.iter().position(|w| w.is::<Workspace<T>>())?;
            kept.swap_remove(at).downcast::<Workspace<T>>().ok().map(|w| *w)
        })
        .unwrap_or_else(Workspace::new)
}

/// Workspaces kept per precision: a backward pass holds two at once (the
/// rules' and a cell's scratch).
const KEPT_WORKSPACES: usize = 2;

/// Gives a workspace back for [`workspace`] to hand out again (at most
/// [`KEPT_WORKSPACES`] of a precision are kept; the oldest goes first).
pub(crate) fn recycle_workspace<T: Float>(workspace: Workspace<T>) {
    WORKSPACES.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.iter().filter(|w| w.is::<Workspace<T>>()).count() >= KEPT_WORKSPACES {
            if let Some(at) = kept.iter().position(|w| w.is::<Workspace<T>>()) {
                kept.remove(at);
            }
        }
        kept.push(Box::new(workspace));
    });
}

/// A `[rows, cols]` matrix of zeros, in memory a finished trace of this
/// thread gave back when there is some large enough.
pub(crate) fn zeros<T: Float>(rows: usize, cols: usize) -> DMatrix<T> {
    let mut values = take::<T>(rows * cols);
    values.clear();
    values.resize(rows * cols, T::zero());
    DMatrix::from_vec(rows, cols, values)
}

/// A `[rows, cols]` matrix for the caller to overwrite entirely before
/// reading it: reused memory keeps whatever numbers it held (finite or not,
/// never uninitialised), which saves clearing it.
pub(crate) fn overwritten<T: Float>(rows: usize, cols: usize) -> DMatrix<T> {
    let len = rows * cols;
    let mut values = take::<T>(len);
    if values.len() >= len {
        values.truncate(len);
    } else {
        values.resize(len, T::zero());
    }
    DMatrix::from_vec(rows, cols, values)
}

/// A free buffer of this thread with room for `len` values, or a new empty
/// one.
fn take<T: Float>(len: usize) -> Vec<T> {
    let reused = if len < SMALLEST_KEPT {
        None
    } else {
        FREE.with(|free| {
            let mut free = free.borrow_mut();
            // The smallest buffer that fits, else the largest (it grows).
            let sizes = free
                .iter()
                .enumerate()
                .filter_map(|(k, b)| b.downcast_ref::<Vec<T>>().map(|v| (k, v.capacity())));
            let fitting = sizes
                .clone()
                .filter(|&(_, capacity)| capacity >= len)
                .min_by_key(|&(_, c)| c);
            let best = fitting.or_else(|| sizes.max_by_key(|&(_, c)| c)).map(|(k, _)| k)?;
            free.swap_remove(best).downcast::<Vec<T>>().ok().map(|v| *v)
        })
    };
    reused.unwrap_or_default()
}

/// Gives a matrix's memory back for [`zeros`] to hand out again.
pub(crate) fn recycle<T: Float>(matrix: DMatrix<T>) {
    let values: Vec<T> = matrix.data.into();
    if values.capacity() < SMALLEST_KEPT {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        free.push(Box::new(values));
        // Over the bound, the smallest buffers go first (the large ones are
        // the expensive ones to fault in again).
        let held = |free: &Vec<Box<dyn Any>>| free.iter().map(|b| capacity_of(b.as_ref())).sum::<usize>();
        while held(&free) > KEPT_VALUES {
            let smallest = (0..free.len())
                .min_by_key(|&k| capacity_of(free[k].as_ref()))
                .expect("over the bound, so not empty");
            free.swap_remove(smallest);
        }
    });
}

/// Takes a matrix out of `slot`, leaving an empty one, and recycles it: for
/// `Drop` implementations of traces.
pub(crate) fn recycle_in_place<T: Float>(slot: &mut DMatrix<T>) {
    recycle(std::mem::replace(slot, DMatrix::zeros(0, 0)));
}

fn capacity_of(buffer: &dyn Any) -> usize {
    if let Some(v) = buffer.downcast_ref::<Vec<f64>>() {
        v.capacity()
    } else if let Some(v) = buffer.downcast_ref::<Vec<f32>>() {
        v.capacity()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_memory_comes_back_zeroed_and_of_the_asked_shape() {
        let mut m = zeros::<f64>(64, 100);
        m.fill(3.0);
        let pointer = m.as_ptr();
        recycle(m);
        let again = zeros::<f64>(50, 100);
        assert_eq!(again.as_ptr(), pointer, "the same memory");
        assert_eq!(again.shape(), (50, 100));
        assert!(again.iter().all(|&v| v == 0.0));
        // The other precision does not take it.
        let other = zeros::<f32>(64, 100);
        assert_ne!(other.as_ptr() as *const u8, pointer as *const u8);
    }
}
