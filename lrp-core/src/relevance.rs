use nalgebra::DMatrix;

use crate::{Error, Float};

/// Relevance per position and dimension of a sequence: conceptually `[T, D]`.
///
/// This is the message board of the backward pass. Everything that reads a
/// sequence position in the forward pass (the recurrence, an attention
/// pooling, a head, the layer above) adds the relevance it sends back into
/// that position here; a recurrent layer then consumes the sum.
///
/// Storage is an nalgebra matrix of shape `D x T` (column-major), so one
/// position is one contiguous column and the whole board is one contiguous
/// slice with position `t` at `[t * D, (t + 1) * D)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Relevance<T: Float> {
    data: DMatrix<T>,
}

impl<T: Float> Relevance<T> {
    /// A board of zeros for `len` positions of `dim` dimensions each.
    pub fn zeros(len: usize, dim: usize) -> Self {
        Self {
            data: DMatrix::zeros(dim, len),
        }
    }

    /// Wraps a `D x T` matrix (column `t` is position `t`).
    pub fn from_matrix(data: DMatrix<T>) -> Self {
        Self { data }
    }

    /// Number of positions `T`.
    pub fn len(&self) -> usize {
        self.data.ncols()
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.data.ncols() == 0
    }

    /// Number of dimensions per position `D`.
    pub fn dim(&self) -> usize {
        self.data.nrows()
    }

    /// Sets every entry back to zero, keeping the allocation.
    pub fn clear(&mut self) {
        self.data.fill(T::zero());
    }

    /// Resizes to `len x dim` and zeroes; reuses the allocation when it fits.
    pub fn reset(&mut self, len: usize, dim: usize) {
        if self.data.shape() != (dim, len) {
            self.data = DMatrix::zeros(dim, len);
        } else {
            self.clear();
        }
    }

    /// The relevance of position `t`, `[D]`; `None` when `t >= len()`.
    pub fn position(&self, t: usize) -> Option<&[T]> {
        let d = self.dim();
        (t < self.len()).then(|| &self.data.as_slice()[t * d..(t + 1) * d])
    }

    /// Mutable relevance of position `t`, `[D]`; `None` when `t >= len()`.
    pub fn position_mut(&mut self, t: usize) -> Option<&mut [T]> {
        let d = self.dim();
        if t < self.len() {
            Some(&mut self.data.as_mut_slice()[t * d..(t + 1) * d])
        } else {
            None
        }
    }

    /// The first position holding a NaN or an infinity, if any.
    pub fn first_non_finite_position(&self) -> Option<usize> {
        let d = self.dim().max(1);
        self.as_slice().iter().position(|v| !v.is_finite()).map(|k| k / d)
    }

    /// Adds a message `[D]` to position `t`.
    pub fn add_to_position(&mut self, t: usize, message: &[T]) -> Result<(), Error> {
        if t >= self.len() {
            return Err(Error::PositionOutOfRange {
                position: t,
                len: self.len(),
            });
        }
        if message.len() != self.dim() {
            return Err(Error::ShapeMismatch {
                what: format!("relevance message for position {t}"),
                expected: vec![self.dim()],
                found: vec![message.len()],
            });
        }
        let d = self.dim();
        for (r, m) in self.data.as_mut_slice()[t * d..(t + 1) * d].iter_mut().zip(message) {
            *r += *m;
        }
        Ok(())
    }

    /// All positions as one contiguous slice (position-major).
    pub fn as_slice(&self) -> &[T] {
        self.data.as_slice()
    }

    /// All positions as one contiguous mutable slice (position-major).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data.as_mut_slice()
    }

    /// The underlying `D x T` matrix.
    pub fn as_matrix(&self) -> &DMatrix<T> {
        &self.data
    }

    /// The underlying `D x T` matrix, mutably.
    pub fn as_matrix_mut(&mut self) -> &mut DMatrix<T> {
        &mut self.data
    }

    /// Relevance per position, summed over dimensions: `[T]`. For input
    /// relevance this is the token relevance `R(token t) = sum_e R(x_{t,e})`.
    pub fn per_position(&self) -> Vec<T> {
        self.columns()
            .map(|column| column.iter().fold(T::zero(), |a, &b| a + b))
            .collect()
    }

    /// Sum of every entry.
    pub fn total(&self) -> T {
        self.as_slice().iter().fold(T::zero(), |a, &b| a + b)
    }

    /// Copies out as nested rows `[T][D]`, in `f64`.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        self.columns()
            .map(|column| column.iter().map(|v| v.as_f64()).collect())
            .collect()
    }

    /// Every position's `[D]` slice, in order.
    fn columns(&self) -> impl Iterator<Item = &[T]> {
        let d = self.dim();
        let slice = self.as_slice();
        (0..self.len()).map(move |t| &slice[t * d..(t + 1) * d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_add_up_per_position() {
        let mut board = Relevance::<f64>::zeros(3, 2);
        board.add_to_position(1, &[1.0, 2.0]).unwrap();
        board.add_to_position(1, &[0.5, -1.0]).unwrap();
        board.add_to_position(2, &[4.0, 0.0]).unwrap();
        assert_eq!(board.position(1), Some(&[1.5, 1.0][..]));
        assert_eq!(board.position(3), None, "past the end is None, not a panic");
        assert!(board.position_mut(3).is_none());
        assert_eq!(board.first_non_finite_position(), None);
        assert_eq!(board.per_position(), vec![0.0, 2.5, 4.0]);
        assert_eq!(board.total(), 6.5);
        assert_eq!(
            board.add_to_position(3, &[1.0, 1.0]),
            Err(Error::PositionOutOfRange { position: 3, len: 3 })
        );
        assert!(board.add_to_position(0, &[1.0]).is_err());
        board.as_mut_slice()[5] = f64::NAN;
        assert_eq!(board.first_non_finite_position(), Some(2));
    }
}
