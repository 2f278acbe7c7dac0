//! How a batch of sequences of different lengths is laid out for the
//! batched engine: packed by step, longest first, as PyTorch's
//! `PackedSequence` does.
//!
//! Sequences are sorted by length, longest first (ties keep input order),
//! and their positions are stored step by step: the columns of step `t` are
//! the sequences still running at `t`, which are always a prefix of that
//! order. So every recurrence step is one matrix product over a contiguous
//! block of columns, no sequence is padded, and a sequence that has ended
//! costs nothing. A batch of one sequence is the sequence itself, column
//! `t` = position `t`.
//!
//! ```text
//! lengths 3, 1, 2   ->   slots (longest first): 0 -> input 0 (3), 1 -> input 2 (2), 2 -> input 1 (1)
//! columns:  step 0: [s0 s1 s2]   step 1: [s0 s1]   step 2: [s0]
//! ```

use std::ops::Range;

use lrp_core::Float;
use nalgebra::DMatrix;

/// The packed layout of a batch: which column holds which position of which
/// sequence. See the module documentation.
///
/// The accessors take a step `t` below [`Packing::steps`] and a slot below
/// [`Packing::sequences`] (and, for [`Packing::column`], below the slot's
/// length); like slice indexing, they panic otherwise.
///
/// ```
/// use lrp_models::Packing;
///
/// let packing = Packing::new(&[3, 1, 2]);
/// // Longest first: slot 1 holds input 2 (length 2), slot 2 input 1.
/// assert_eq!(packing.slots(), vec![0, 2, 1]);
/// // Step 1 runs the two sequences still going, in columns 3 and 4.
/// assert_eq!((packing.active(1), packing.step_columns(1)), (2, 3..5));
/// assert_eq!(packing.column(1, 1), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packing {
    /// Length of the sequence in each slot, longest first.
    lengths: Vec<usize>,
    /// The input index of the sequence in each slot.
    order: Vec<usize>,
    /// `offsets[t]`: the first column of step `t`; `offsets[T_max]` is the
    /// number of columns.
    offsets: Vec<usize>,
    /// The column of the same sequence `len - 1 - t` steps in: the
    /// processing order of a direction that reads backwards. An involution.
    reversed: Vec<usize>,
}

impl Packing {
    /// The packing of sequences with these lengths, in input order. Lengths
    /// of zero are allowed (such a sequence occupies no column).
    pub fn new(lengths: &[usize]) -> Self {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
        let sorted: Vec<usize> = order.iter().map(|&k| lengths[k]).collect();
        Self::of_slots(sorted, order)
    }

    /// The same sequences in the same slots, each of length
    /// `length(its length)`: how a stage that changes lengths (a strided
    /// convolution, a pooling over windows) packs its output. `None` when
    /// a shorter sequence would come out longer than a longer one (the
    /// slots must stay longest first): `length` must not decrease for
    /// longer sequences, as a window's `floor((T + c) / s) + 1` does not.
    ///
    /// ```
    /// use lrp_models::Packing;
    /// let halved = Packing::new(&[3, 1, 4]).resized(|len| len / 2).unwrap();
    /// assert_eq!((halved.length(0), halved.length(1), halved.length(2)), (2, 1, 0));
    /// assert_eq!(halved.slots(), Packing::new(&[3, 1, 4]).slots());
    /// assert!(Packing::new(&[3, 1]).resized(|len| 5 - len).is_none());
    /// ```
    pub fn resized(&self, length: impl Fn(usize) -> usize) -> Option<Self> {
        let lengths: Vec<usize> = self.lengths.iter().map(|&len| length(len)).collect();
        lengths
            .windows(2)
            .all(|w| w[0] >= w[1])
            .then(|| Self::of_slots(lengths, self.order.clone()))
    }

    /// The packing of sequences already in slot order (`lengths` longest
    /// first, `order[slot]` the input index).
    fn of_slots(sorted: Vec<usize>, order: Vec<usize>) -> Self {
        let steps = sorted.first().copied().unwrap_or(0);
        let mut offsets = Vec::with_capacity(steps + 1);
        let mut total = 0;
        for t in 0..steps {
            offsets.push(total);
            total += sorted.partition_point(|&len| len > t);
        }
        offsets.push(total);
        let mut packing = Self {
            lengths: sorted,
            order,
            offsets,
            reversed: Vec::new(),
        };
        let mut reversed = vec![0; total];
        for (slot, &len) in packing.lengths.iter().enumerate() {
            for t in 0..len {
                reversed[packing.column(t, slot)] = packing.column(len - 1 - t, slot);
            }
        }
        packing.reversed = reversed;
        packing
    }

    /// Number of sequences `B`.
    pub fn sequences(&self) -> usize {
        self.lengths.len()
    }

    /// Number of columns `N`: all positions of all sequences.
    pub fn columns(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// Number of steps: the longest length.
    pub fn steps(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// How many sequences are still running at step `t` (a prefix of the slots).
    pub fn active(&self, t: usize) -> usize {
        self.offsets[t + 1] - self.offsets[t]
    }

    /// How many sequences go on to step `t + 1` (none after the last step):
    /// in a backward pass, the slots below this carry a message back from
    /// step `t + 1`, the others start from nothing.
    pub fn continuing(&self, t: usize) -> usize {
        if t + 1 < self.steps() {
            self.active(t + 1)
        } else {
            0
        }
    }

    /// The first column of step `t - 1`, whose first `active(t)` columns are
    /// the previous states of the sequences running at step `t`; `None` at
    /// step 0, where the previous states are the zero initial ones.
    pub fn previous_start(&self, t: usize) -> Option<usize> {
        (t > 0).then(|| self.offsets[t - 1])
    }

    /// The columns of step `t`.
    pub fn step_columns(&self, t: usize) -> Range<usize> {
        self.offsets[t]..self.offsets[t + 1]
    }

    /// The column of position `t` of the sequence in `slot` (`t` below its length).
    #[inline]
    pub fn column(&self, t: usize, slot: usize) -> usize {
        self.offsets[t] + slot
    }

    /// The length of the sequence in `slot`.
    pub fn length(&self, slot: usize) -> usize {
        self.lengths[slot]
    }

    /// The input index of the sequence in `slot`.
    pub fn input_index(&self, slot: usize) -> usize {
        self.order[slot]
    }

    /// The slots in input order: `slots()[k]` holds input `k`.
    pub fn slots(&self) -> Vec<usize> {
        let mut slots = vec![0; self.order.len()];
        for (slot, &k) in self.order.iter().enumerate() {
            slots[k] = slot;
        }
        slots
    }

    /// The columns of the sequence in `slot` out of a packed `[W, N]`
    /// matrix, in position order: `[W, T]`.
    ///
    /// ```
    /// use lrp_models::Packing;
    /// use nalgebra::DMatrix;
    ///
    /// let packing = Packing::new(&[2, 1]); // columns: (t0 s0, t0 s1, t1 s0)
    /// let packed = DMatrix::from_row_slice(1, 3, &[1.0, 2.0, 3.0]);
    /// assert_eq!(packing.gather(&packed, 0).as_slice(), &[1.0, 3.0]);
    /// let mut board = DMatrix::zeros(1, 3);
    /// packing.scatter_add(&mut board, 0, &DMatrix::from_row_slice(1, 2, &[5.0, 7.0]));
    /// assert_eq!(board.as_slice(), &[5.0, 0.0, 7.0]);
    /// ```
    pub fn gather<T: Float>(&self, packed: &DMatrix<T>, slot: usize) -> DMatrix<T> {
        DMatrix::from_fn(packed.nrows(), self.length(slot), |r, t| {
            packed[(r, self.column(t, slot))]
        })
    }

    /// Adds `sequence` `[W, T]` (position order) into the columns of the
    /// sequence in `slot` of a packed `[W, N]` matrix: the inverse of
    /// [`Packing::gather`] for a board that messages are added into.
    pub fn scatter_add<T: Float>(&self, packed: &mut DMatrix<T>, slot: usize, sequence: &DMatrix<T>) {
        for t in 0..self.length(slot) {
            let mut column = packed.column_mut(self.column(t, slot));
            column += sequence.column(t);
        }
    }

    /// For every column, the column of the same sequence mirrored in time
    /// (position `t` <-> position `len - 1 - t`): how a direction that reads
    /// backwards maps its processing steps to positions.
    pub fn reversed(&self) -> &[usize] {
        &self.reversed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_longest_first_by_step() {
        let p = Packing::new(&[3, 1, 2]);
        assert_eq!((p.sequences(), p.columns(), p.steps()), (3, 6, 3));
        assert_eq!((p.input_index(0), p.input_index(1), p.input_index(2)), (0, 2, 1));
        assert_eq!((p.active(0), p.active(1), p.active(2)), (3, 2, 1));
        assert_eq!(p.column(1, 1), 4);
        assert_eq!(p.slots(), vec![0, 2, 1]);
        assert_eq!((p.continuing(0), p.continuing(1), p.continuing(2)), (2, 1, 0));
        assert_eq!(
            (p.previous_start(0), p.previous_start(1), p.previous_start(2)),
            (None, Some(0), Some(3))
        );
        // Slot 0 (length 3): columns 0, 3, 5; slot 1 (length 2): 1, 4.
        assert_eq!(p.reversed(), &[5, 4, 2, 3, 1, 0]);
    }

    #[test]
    fn one_sequence_is_itself_and_empty_batches_are_empty() {
        let p = Packing::new(&[4]);
        assert_eq!(p.reversed(), &[3, 2, 1, 0]);
        assert_eq!(p.step_columns(2), 2..3);
        let none = Packing::new(&[]);
        assert_eq!((none.columns(), none.steps()), (0, 0));
    }
}
